import Foundation
import Testing
@testable import Wire

/// One example of every kind, shared by the round-trip, Python interop and fuzz tests.
enum Samples {
    static let group = RolloutGroup(
        promptID: 1234, weightsVersion: 7, actorID: 101, promptTokens: [1, 2, 3, 40_000],
        completions: [
            Completion(tokens: [5, 6, 7], logProbs: [-0.5, -1.25, -0.0], reward: 1),
            Completion(tokens: [], logProbs: [], reward: 0),
            Completion(tokens: [9], logProbs: [-3.5], reward: 0.5),
        ],
        generationSeconds: 0.75)

    static let envelopes: [Envelope] = [
        Envelope(sender: 101, message: .rolloutGroup(group)),
        Envelope(sender: 101, message: .assignmentRequest(AssignmentRequest(actorID: 101, capacity: 4, weightsVersion: 6))),
        Envelope(sender: 1, message: .assignmentGrant(AssignmentGrant(
            step: 12, weightsVersion: 7, promptIDs: [3, 1, 4, 1 << 40], groupSize: 8, temperature: 1,
            maxNewTokens: 16))),
        Envelope(sender: 102, message: .weightsRequest(WeightsRequest(actorID: 102, weightsVersion: WeightsRequest.none))),
        Envelope(sender: 1, message: .weights(WeightsChunk(
            weightsVersion: 8, totalBytes: 40, byteOffset: 16, chunkIndex: 1, chunkCount: 3,
            payload: [0.5, -2, 1e-30, .leastNonzeroMagnitude]))),
        Envelope(sender: 2, message: .heartbeat(WorkerStats(role: .learner, state: .working, pid: 4242, weightsVersion: 8,
                                                            sentAt: 1.7e9, values: [:]))),
        Envelope(sender: 101, message: .stats(WorkerStats(
            role: .actor, state: .syncing, pid: 77, weightsVersion: 8, sentAt: 1.7e9 + 0.5,
            values: ["groups_sent_total": 12, "phase_seconds_total.generation": 3.25, "tokens_per_s": 950.5, "ünïcode": -1],
            labels: ["host": "gpu1", "run_id": "20261125-120000", "ñ": ""]))),
        Envelope(sender: 1, message: .control(Control(.drain, weightsVersion: 8, reason: "checkpoint at step 100"))),
        // Reference work (DOTS with training.reference_rollouts = "actors"); last, so the indices above stay.
        Envelope(sender: 1, message: .assignmentGrant(AssignmentGrant(
            step: 12, weightsVersion: 7, promptIDs: [9, 2], groupSize: 4, temperature: 0.5, maxNewTokens: 16, work: .reference))),
    ]
}

@Suite struct CodecTests {
    let codec = WireCodec()

    @Test(arguments: Samples.envelopes)
    func roundTrip(_ envelope: Envelope) throws {
        let frames = WireCodec.encode(envelope)
        #expect(frames.count == 1 + envelope.message.kind.bodyFrameCount)
        #expect(try codec.decode(frames) == envelope)
        #expect(try codec.decodeBlob(WireCodec.encodeBlob(envelope)) == envelope)
    }

    @Test func everyKindHasASample() throws {
        #expect(Set(Samples.envelopes.map(\.message.kind)) == Set(MessageKind.allCases))
        for c in Control.Command.allCases {
            let e = Envelope(sender: 0, message: .control(Control(c)))
            #expect(try codec.decode(WireCodec.encode(e)) == e)
        }
    }

    @Test func grantWorkKindRoundTripsAndAnUnknownOneIsRejected() throws {
        let reference = try #require(Samples.envelopes.last)
        guard case .assignmentGrant(let grant) = reference.message else { Issue.record("the last sample is a grant"); return }
        #expect(grant.work == .reference)
        var frames = WireCodec.encode(reference)
        #expect(frames[1].count == 28 && frames[1][24] == 1)  // the work field, after the prompt count
        #expect(try codec.decode(frames) == reference)
        frames[1][24] = 7
        #expect(throws: Rejection.self) { try codec.decode(frames) }
        do { _ = try codec.decode(frames) } catch { #expect(error.reason == .invalidField) }
    }

    @Test func headerLayoutIsAsDocumented() {
        let frames = WireCodec.encode(Samples.envelopes[1])
        let h = frames[0]
        #expect(h.count == 32 + 8)
        #expect(Array(h[0..<4]) == Array("DOTS".utf8))
        #expect(h[4] == 3 && h[5] == 0)  // version 3, little-endian
        #expect(h[6] == 2 && h[7] == 0)  // AssignmentRequest
        #expect(h[8] == 101)  // sender
        #expect(h[16] == 6)  // weights version
        #expect(h[24] == 1)  // one body frame
        #expect(h[32] == 16)  // of 16 bytes
        #expect(Array(h.prefix(8)) == WireCodec.topic(.assignmentRequest))
    }

    @Test func rejectsCarryTypedReasons() throws {
        let good = WireCodec.encode(Samples.envelopes[0])
        func reason(_ frames: [[UInt8]], _ c: WireCodec = WireCodec()) -> RejectReason? {
            do { _ = try c.decode(frames); return nil } catch { return error.reason }
        }
        var f = good
        f[0][0] = UInt8(ascii: "X")
        #expect(reason(f) == .badMagic)
        f = good; f[0][4] = 9
        #expect(reason(f) == .unsupportedVersion)
        f = good; f[0][6] = 99
        #expect(reason(f) == .unknownKind)
        #expect(reason([]) == .truncated)
        #expect(reason([Array(good[0].prefix(10))]) == .truncated)
        #expect(reason(Array(good.dropLast())) == .truncated)
        f = good; f[4].append(0)
        #expect(reason(f) == .lengthMismatch)
        f = good; f[0][28] = 1
        #expect(reason(f) == .invalidField)
        var small = DecodeLimits()
        small.maxMessageBytes = 64
        #expect(reason(good, WireCodec(limits: small)) == .oversized)
        // NaN reward, with the header untouched (the frame keeps its length).
        f = good; f[4].replaceSubrange(0..<4, with: withUnsafeBytes(of: Float.nan.bitPattern.littleEndian, Array.init))
        #expect(reason(f) == .nonFinite)
        // A positive log-probability is not a log-probability.
        f = good; f[6].replaceSubrange(0..<4, with: withUnsafeBytes(of: Float(2).bitPattern.littleEndian, Array.init))
        #expect(reason(f) == .invalidField)
        // An absurd group size.
        var meta = good[1]
        meta.replaceSubrange(32..<36, with: [0xFF, 0xFF, 0xFF, 0x7F])
        f = good; f[1] = meta
        #expect(reason(f) == .oversized)
        // tokens generated disagrees with the completion lengths.
        meta = good[1]; meta[24] &+= 1
        f = good; f[1] = meta
        #expect(reason(f) == .lengthMismatch)
    }

    /// Heartbeat/Stats body as docs/protocol.md 1.7 lays it out, byte by byte.
    @Test func statsLayoutIsAsDocumented() throws {
        let stats = WorkerStats(role: .actor, state: .waiting, pid: 0x01020304, weightsVersion: 3, sentAt: 2.5,
                                values: ["b_total": 1, "a": 2], labels: ["host": "h1"])
        let frames = WireCodec.encode(Envelope(sender: 1000, message: .heartbeat(stats)))
        #expect(frames.count == 4)
        #expect(frames[1] == [3, 0, 2, 0, 4, 3, 2, 1] + withUnsafeBytes(of: Double(2.5).bitPattern.littleEndian, Array.init))
        // Entries sorted by key: "a" before "b_total".
        #expect(Array(frames[2][0..<7]) == [2, 0, 0, 0, 1, 0, UInt8(ascii: "a")])
        #expect(frames[3] == [1, 0, 0, 0, 4, 0] + Array("host".utf8) + [2, 0] + Array("h1".utf8))
        #expect(try codec.decode(frames) == Envelope(sender: 1000, message: .heartbeat(stats)))
    }

    @Test func statsRejects() {
        let good = WireCodec.encode(Samples.envelopes[6])
        func reason(_ frames: [[UInt8]]) -> RejectReason? {
            // Keep the header's length table true to the frames, so only the body rule can fail.
            var f = frames
            for i in 1..<f.count { f[0].replaceSubrange(32 + 8 * (i - 1)..<32 + 8 * i, with: withUnsafeBytes(of: UInt64(f[i].count).littleEndian, Array.init)) }
            do { _ = try codec.decode(f); return nil } catch { return error.reason }
        }
        var f = good; f[1][2] = 0
        #expect(reason(f) == .invalidField)  // state 0
        f = good; f[1][2] = 6
        #expect(reason(f) == .invalidField)  // state 6
        f = good; f[3] = [65, 0, 0, 0] + Array(f[3].dropFirst(4))
        #expect(reason(f) == .oversized)  // 65 labels
        f = good; f[3] = [1, 0, 0, 0, 1, 0, 0xFF, 0, 0]
        #expect(reason(f) == .invalidField)  // key not UTF-8
        f = good; f[3] = [1, 0, 0, 0, 1, 0, UInt8(ascii: "k"), 0x01, 0x04] + [UInt8](repeating: 0x61, count: 1025)
        #expect(reason(f) == .oversized)  // value of 1025 bytes
        f = good; f[3] = [2, 0, 0, 0, 1, 0, UInt8(ascii: "k"), 0, 0, 1, 0, UInt8(ascii: "k"), 0, 0]
        #expect(reason(f) == .invalidField)  // duplicate key
        f = good; f[3] = [1, 0, 0, 0, 1, 0, UInt8(ascii: "k"), 0, 0, 9]
        #expect(reason(f) == .lengthMismatch)  // a byte after the last label
        f = good; f[3] = [1, 0, 0, 0, 1, 0, UInt8(ascii: "k"), 5, 0]
        #expect(reason(f) == .truncated)  // value shorter than its length
        f = good; f.removeLast()
        #expect(reason(f) == .lengthMismatch || reason(f) == .truncated)  // the old two-frame body
    }

    @Test func counterCountsAndRateLimitsLogLines() {
        let lines = LockedLines()
        let counter = RejectCounter(name: "test", logInterval: .seconds(60)) { lines.append($0) }
        let codec = WireCodec()
        for _ in 0..<5 { #expect(codec.decode([[1, 2, 3, 4, 5]], rejects: counter) == nil) }
        #expect(codec.decode([[UInt8]](), rejects: counter) == nil)
        #expect(codec.decode(WireCodec.encode(Samples.envelopes[2]), rejects: counter) != nil)
        #expect(counter.count(.badMagic) == 5)
        #expect(counter.count(.truncated) == 1)
        #expect(counter.total == 6)
        #expect(lines.all.count == 2)
        #expect(lines.all[0].contains("bad_magic"))
    }

    @Test(arguments: Samples.envelopes)
    func encodeFramesMatchesEncode(_ envelope: Envelope) {
        let frames = WireCodec.encodeFrames(envelope).map { $0.withUnsafeBytes { [UInt8]($0) } }
        #expect(frames == WireCodec.encode(envelope))
    }

    /// The one-copy path: frames straight into the assembler, NaN refused, a recycled buffer reused.
    @Test func assemblerTakesFramesDirectly() throws {
        let parameters = (0..<5000).map { Float($0) - 2500 }
        let chunks = WeightsChunk.split(parameters, version: 4, chunkBytes: 4096)
        var assembler = WeightsAssembler(recycling: [Float](repeating: 9, count: 5000))
        var poisoned = WireCodec.encode(Envelope(sender: 1, message: .weights(chunks[1])))
        poisoned[2].replaceSubrange(400..<404, with: withUnsafeBytes(of: Float.nan.bitPattern.littleEndian, Array.init))
        do {
            _ = try assembler.add(weightsFrames: poisoned)
            Issue.record("a NaN payload must be rejected")
        } catch {
            #expect(error.reason == .nonFinite)
        }
        var outcome: WeightsAssembler.Outcome = .incomplete
        for chunk in chunks {
            outcome = try assembler.add(weightsFrames: WireCodec.encode(Envelope(sender: 1, message: .weights(chunk))))
        }
        #expect(outcome == .complete(version: 4, parameters: parameters))
        do {
            _ = try assembler.add(weightsFrames: WireCodec.encode(Samples.envelopes[1]))
            Issue.record("only Weights messages belong here")
        } catch {
            #expect(error.reason == .invalidField)
        }
    }

    @Test func weightsSplitAndAssembleOutOfOrder() {
        let parameters = (0..<10_001).map { Float($0) * 0.5 }
        var chunks = WeightsChunk.split(parameters, version: 3, chunkBytes: 4000)
        #expect(chunks.count == 11)
        chunks.reverse()
        var assembler = WeightsAssembler()
        #expect(assembler.add(WeightsChunk.split([1, 2], version: 2)[0]) == .complete(version: 2, parameters: [1, 2]))
        var last: WeightsAssembler.Outcome = .incomplete
        for (i, chunk) in chunks.enumerated() {
            // Round trip each chunk through the codec, as on the wire.
            let wire = try! WireCodec().decode(WireCodec.encode(Envelope(sender: 1, message: .weights(chunk))))
            guard case .weights(let decoded) = wire.message else { Issue.record("kind"); return }
            last = assembler.add(decoded)
            if i == 3 {
                #expect(assembler.add(decoded) == .ignored("chunk \(decoded.chunkIndex) arrived twice"))
                #expect(assembler.missingChunks.count == 7)
            }
        }
        #expect(last == .complete(version: 3, parameters: parameters))
        if case .ignored = assembler.add(chunks[0]) {} else { Issue.record("a completed version must be ignored") }
    }
}

final class LockedLines: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    func append(_ line: String) { lock.withLock { lines.append(line) } }
    var all: [String] { lock.withLock { lines } }
}
