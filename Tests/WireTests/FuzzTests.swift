import Foundation
import Testing
@testable import Wire

/// A small seeded generator, so a failing case can be replayed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite struct FuzzTests {
    /// 120,000 random and mutated messages: the decoder refuses the bad ones with a typed reason, the
    /// counter counts every refusal, the log gets one line per reason, and nothing traps.
    @Test func decoderSurvivesGarbage() throws {
        var rng = SplitMix64(state: 0xD075)
        var limits = DecodeLimits()
        limits.maxMessageBytes = 64 << 10  // so "oversized" is cheap to reach
        let codec = WireCodec(limits: limits)
        let lines = LockedLines()
        let counter = RejectCounter(name: "fuzz", logInterval: .seconds(3600)) { lines.append($0) }
        let valid = Samples.envelopes.map(WireCodec.encode)
        let iterations = 120_000
        var accepted = 0

        for i in 0..<iterations {
            var frames = valid[Int.random(in: 0..<valid.count, using: &rng)]
            switch i % 12 {
            case 0:  // pure noise
                frames = (0..<Int.random(in: 0...7, using: &rng)).map { _ in
                    (0..<Int.random(in: 0...80, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                }
            case 1:  // flip a few bytes anywhere
                for _ in 0..<Int.random(in: 1...4, using: &rng) {
                    let f = Int.random(in: 0..<frames.count, using: &rng)
                    guard !frames[f].isEmpty else { continue }
                    frames[f][Int.random(in: 0..<frames[f].count, using: &rng)] ^= UInt8.random(in: 1...255, using: &rng)
                }
            case 2:  // truncate a frame
                let f = Int.random(in: 0..<frames.count, using: &rng)
                frames[f] = Array(frames[f].prefix(Int.random(in: 0...max(0, frames[f].count - 1), using: &rng)))
            case 3:  // drop, duplicate or add frames
                if Bool.random(using: &rng), frames.count > 1 { frames.remove(at: Int.random(in: 0..<frames.count, using: &rng)) }
                else { frames.append(frames[Int.random(in: 0..<frames.count, using: &rng)]) }
            case 4:  // wrong magic
                frames[0][Int.random(in: 0..<4, using: &rng)] ^= 0x20
            case 5:  // wrong version
                frames[0].replaceSubrange(4..<6, with: le(WireCodec.protocolVersion &+ UInt16.random(in: 1...UInt16.max - 1, using: &rng)))
            case 6:  // unknown kind
                frames[0].replaceSubrange(6..<8, with: le(UInt16.random(in: 9...UInt16.max, using: &rng)))
            case 7:  // absurd lengths in the header's length table and frame count
                if Bool.random(using: &rng) {
                    frames[0].replaceSubrange(24..<28, with: le(UInt32.random(in: 17...UInt32.max, using: &rng)))
                } else if frames[0].count >= 40 {
                    frames[0].replaceSubrange(32..<40, with: le(UInt64.random(in: 1 << 20...UInt64.max, using: &rng)))
                }
            case 8:  // absurd counts inside the first body frame (G, P, n, entries, total bytes…)
                let f = 1
                if frames[f].count >= 4 {
                    let at = Int.random(in: 0...(frames[f].count - 4), using: &rng) & ~3
                    frames[f].replaceSubrange(at..<at + 4, with: le(UInt32.random(in: 1 << 16...UInt32.max, using: &rng)))
                }
            case 9:  // NaN or Inf written over a 4-byte-aligned spot of some body frame
                let f = Int.random(in: 1..<frames.count, using: &rng)
                if frames[f].count >= 4 {
                    let at = Int.random(in: 0...(frames[f].count - 4), using: &rng) & ~3
                    let bad: [Float] = [.nan, .infinity, -.infinity, .signalingNaN]
                    frames[f].replaceSubrange(at..<at + 4, with: le(bad[Int.random(in: 0..<4, using: &rng)].bitPattern))
                }
            case 10:  // oversized: a frame beyond the limit, with a header that agrees
                let big = (limits.maxMessageBytes / 2) * Int.random(in: 1...3, using: &rng)
                frames = Array(frames.prefix(1)) + [[UInt8](repeating: 7, count: big)] + frames.dropFirst(2)
            default:  // a valid message, untouched
                break
            }
            if let e = codec.decode(frames, rejects: counter) {
                accepted += 1
                // Whatever is accepted is a well-formed message: it re-encodes and decodes to itself.
                #expect(try codec.decode(WireCodec.encode(e)) == e)
            }
        }

        let counts = counter.counts
        #expect(accepted + counter.total == iterations)
        for reason: RejectReason in [.badMagic, .unsupportedVersion, .unknownKind, .truncated, .lengthMismatch,
                                     .oversized, .nonFinite, .invalidField] {
            #expect(counts[reason, default: 0] > 0, "no \(reason) rejects")
        }
        #expect(accepted >= iterations / 12)
        #expect(lines.all.count == counts.count, "one log line per reason")
        print("fuzz: \(iterations) messages, \(accepted) accepted, rejects by reason: "
              + counts.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))
    }
}

private func le(_ v: some FixedWidthInteger) -> [UInt8] { withUnsafeBytes(of: v.littleEndian, Array.init) }
