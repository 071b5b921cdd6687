/// The first frame of every message. Layout (little-endian), see docs/protocol.md:
///
///     0  magic "DOTS"   4 bytes
///     4  version        u16
///     6  kind           u16
///     8  sender         u64
///    16  weightsVersion u64
///    24  frameCount     u32   body frames that follow
///    28  flags          u32   reserved, 0
///    32  frameLength    u64 × frameCount
public struct WireHeader: Sendable, Equatable {
    public var version: UInt16
    public var kind: MessageKind
    public var sender: UInt64
    public var weightsVersion: UInt64
    /// Byte length of each body frame, in order.
    public var frameLengths: [UInt64]

    public static let magic: [UInt8] = Array("DOTS".utf8)
    /// Bytes before the frame-length table.
    public static let fixedSize = 32
    /// Body frames per message; more is an `oversized` reject.
    public static let maxFrames = 16
}

/// Encodes and decodes Dots messages. Decoding validates every field against `limits` and throws a
/// typed `Rejection`; it never traps on any input.
public struct WireCodec: Sendable {
    /// The protocol version this build speaks. Bump on any change to a layout (see docs/protocol.md,
    /// "Versioning"); peers of different versions refuse each other's messages.
    public static let protocolVersion: UInt16 = 3

    public var limits: DecodeLimits

    public init(limits: DecodeLimits = .standard) { self.limits = limits }

    /// The first 8 header bytes for a kind: a SUB socket subscribes to this to receive only that kind.
    public static func topic(_ kind: MessageKind) -> [UInt8] {
        var w = ByteWriter(capacity: 8)
        w.put(raw: WireHeader.magic)
        w.put(protocolVersion)
        w.put(kind.rawValue)
        return w.bytes
    }

    // MARK: encode

    /// The frames of a message: header first, then the kind's body frames.
    public static func encode(_ envelope: Envelope) -> [[UInt8]] {
        let body = encodeBody(envelope.message)
        return [header(envelope, lengths: body.map(\.count))] + body
    }

    /// The same message as `encode`, for `ZMQSocket.send`: a Weights payload goes out straight from its
    /// `[Float]` storage instead of being copied into a byte array first.
    public static func encodeFrames(_ envelope: Envelope) -> [OutgoingFrame] {
        #if _endian(little)
        if case .weights(let chunk) = envelope.message {
            let meta = encodeBody(.weights(WeightsChunk(weightsVersion: 0, totalBytes: chunk.totalBytes,
                                                        byteOffset: chunk.byteOffset, chunkIndex: chunk.chunkIndex,
                                                        chunkCount: chunk.chunkCount, payload: [])))[0]
            return [.bytes(header(envelope, lengths: [meta.count, chunk.payload.count * 4])), .bytes(meta),
                    .floats(chunk.payload)]
        }
        #endif
        return encode(envelope).map(OutgoingFrame.bytes)
    }

    private static func header(_ envelope: Envelope, lengths: [Int]) -> [UInt8] {
        var w = ByteWriter(capacity: WireHeader.fixedSize + 8 * lengths.count)
        w.put(raw: WireHeader.magic)
        w.put(protocolVersion)
        w.put(envelope.message.kind.rawValue)
        w.put(envelope.sender)
        w.put(envelope.message.weightsVersion)
        w.put(UInt32(lengths.count))
        w.put(UInt32(0))
        for length in lengths { w.put(UInt64(length)) }
        return w.bytes
    }

    public static func encode(_ message: Message, sender: UInt64) -> [[UInt8]] {
        encode(Envelope(sender: sender, message: message))
    }

    /// One byte string: the frames concatenated. The header's length table makes it self-delimiting, so
    /// this is how messages go to files (the Python interop test) and any stream transport.
    public static func encodeBlob(_ envelope: Envelope) -> [UInt8] { encode(envelope).flatMap { $0 } }

    private static func encodeBody(_ message: Message) -> [[UInt8]] {
        switch message {
        case .rolloutGroup(let g):
            var meta = ByteWriter(capacity: 40)
            meta.put(g.promptID)
            meta.put(g.actorID)
            meta.put(g.generationSeconds)
            meta.put(UInt64(g.tokensGenerated))
            meta.put(UInt32(g.completions.count))
            meta.put(UInt32(g.promptTokens.count))
            return [
                meta.bytes,
                littleEndianBytes(g.promptTokens),
                littleEndianBytes(g.completions.map { UInt32($0.tokens.count) }),
                littleEndianBytes(g.completions.map(\.reward)),
                littleEndianBytes(concatenating: g.completions.map(\.tokens)),
                littleEndianBytes(concatenating: g.completions.map(\.logProbs)),
            ]
        case .assignmentRequest(let r):
            var w = ByteWriter(capacity: 16)
            w.put(r.actorID)
            w.put(r.capacity)
            w.put(UInt32(0))
            return [w.bytes]
        case .assignmentGrant(let a):
            var w = ByteWriter(capacity: 28)
            w.put(a.step)
            w.put(a.groupSize)
            w.put(a.maxNewTokens)
            w.put(a.temperature)
            w.put(UInt32(a.promptIDs.count))
            w.put(a.work.rawValue)
            return [w.bytes, littleEndianBytes(a.promptIDs)]
        case .weightsRequest(let r):
            var w = ByteWriter(capacity: 8)
            w.put(r.actorID)
            return [w.bytes]
        case .weights(let c):
            var w = ByteWriter(capacity: 24)
            w.put(c.totalBytes)
            w.put(c.byteOffset)
            w.put(c.chunkIndex)
            w.put(c.chunkCount)
            return [w.bytes, littleEndianBytes(c.payload)]
        case .heartbeat(let s), .stats(let s):
            var w = ByteWriter(capacity: 16)
            w.put(s.role.rawValue)
            w.put(s.state.rawValue)
            w.put(s.pid)
            w.put(s.sentAt)
            var table = ByteWriter(capacity: 4 + s.values.count * 32)
            table.put(UInt32(s.values.count))
            // Sorted, so equal stats encode to equal bytes.
            for (key, value) in s.values.sorted(by: { $0.key < $1.key }) {
                let utf8 = utf8Prefix(key, maxBytes: 255)
                table.put(UInt16(utf8.count))
                table.put(raw: utf8)
                table.put(value)
            }
            var labels = ByteWriter(capacity: 4 + s.labels.count * 32)
            labels.put(UInt32(s.labels.count))
            for (key, value) in s.labels.sorted(by: { $0.key < $1.key }) {
                let k = utf8Prefix(key, maxBytes: 255), v = utf8Prefix(value, maxBytes: WorkerStats.maxLabelBytes)
                labels.put(UInt16(k.count))
                labels.put(raw: k)
                labels.put(UInt16(v.count))
                labels.put(raw: v)
            }
            return [w.bytes, table.bytes, labels.bytes]
        case .control(let c):
            var w = ByteWriter(capacity: 4)
            w.put(c.command.rawValue)
            w.put(UInt16(0))
            return [w.bytes, utf8Prefix(c.reason, maxBytes: Control.maxReasonBytes)]
        }
    }

    // MARK: decode

    /// Checks the header frame alone, against the frames that follow it (their byte counts, if given).
    public func decodeHeader(_ frame: [UInt8], bodyFrames: [Int]? = nil) throws(Rejection) -> WireHeader {
        try header(frame, bodyFrames: bodyFrames)
    }

    public func decodeHeader(_ frame: ZMQFrame, bodyFrames: [Int]? = nil) throws(Rejection) -> WireHeader {
        try header(frame, bodyFrames: bodyFrames)
    }

    // The public entry points are concrete overloads rather than generics: a generic called from another
    // module runs unspecialized, several times slower.
    func header(_ headerFrame: some WireFrame, bodyFrames: [Int]? = nil) throws(Rejection) -> WireHeader {
        let size = headerFrame.count
        // A valid header is at most 160 bytes; copy no more than that, whatever the frame holds.
        let frame = headerFrame.withUnsafeBytes { [UInt8]($0.prefix(WireHeader.fixedSize + 8 * WireHeader.maxFrames)) }
        var r = ByteReader(frame, what: "header")
        guard size >= 4 else { throw Rejection(.truncated, "header has \(size) bytes, needs 32") }
        guard Array(frame[0..<4]) == WireHeader.magic else {
            throw Rejection(.badMagic, "header starts with \(hex(frame.prefix(4))), not \"DOTS\"")
        }
        _ = try r.getBytes(4)
        let version: UInt16 = try r.get()
        guard version == Self.protocolVersion else {
            throw Rejection(.unsupportedVersion, "protocol version \(version), this build speaks \(Self.protocolVersion)")
        }
        let rawKind: UInt16 = try r.get()
        guard let kind = MessageKind(rawValue: rawKind) else { throw Rejection(.unknownKind, "kind \(rawKind)") }
        let sender: UInt64 = try r.get()
        let weightsVersion: UInt64 = try r.get()
        let frameCount: UInt32 = try r.get()
        let flags: UInt32 = try r.get()
        guard flags == 0 else { throw Rejection(.invalidField, "\(kind) header flags \(flags), must be 0") }
        guard frameCount <= WireHeader.maxFrames else {
            throw Rejection(.oversized, "\(kind) header declares \(frameCount) body frames, at most \(WireHeader.maxFrames)")
        }
        guard Int(frameCount) == kind.bodyFrameCount else {
            throw Rejection(.lengthMismatch, "\(kind) header declares \(frameCount) body frames, the kind has \(kind.bodyFrameCount)")
        }
        let expected = WireHeader.fixedSize + 8 * Int(frameCount)
        guard size >= expected else {
            throw Rejection(.truncated, "\(kind) header has \(size) bytes, needs \(expected)")
        }
        guard size == expected else {
            throw Rejection(.lengthMismatch, "\(kind) header has \(size) bytes, expected \(expected)")
        }
        var lengths: [UInt64] = []
        var total: UInt64 = UInt64(size)
        for _ in 0..<frameCount {
            let length: UInt64 = try r.get()
            lengths.append(length)
            total = total.addingReportingOverflow(length).overflow ? .max : total + length
        }
        guard total <= UInt64(limits.maxMessageBytes) else {
            throw Rejection(.oversized, "\(kind) declares \(total) bytes, limit \(limits.maxMessageBytes)")
        }
        if let bodyFrames {
            guard bodyFrames.count == lengths.count else {
                throw Rejection(bodyFrames.count < lengths.count ? .truncated : .lengthMismatch,
                                "\(kind) has \(bodyFrames.count) body frames, header declares \(lengths.count)")
            }
            for (i, (actual, declared)) in zip(bodyFrames, lengths).enumerated() where UInt64(actual) != declared {
                throw Rejection(UInt64(actual) < declared ? .truncated : .lengthMismatch,
                                "\(kind) body frame \(i) has \(actual) bytes, header declares \(declared)")
            }
        }
        return WireHeader(version: version, kind: kind, sender: sender, weightsVersion: weightsVersion,
                          frameLengths: lengths)
    }

    /// Decodes one message from its frames (ROUTER identity frames already removed).
    public func decode(_ frames: [[UInt8]]) throws(Rejection) -> Envelope { try decodeFrames(frames) }

    /// Decodes frames still in libzmq's buffers (`ZMQSocket.receiveFrames`): one copy fewer.
    public func decode(_ frames: [ZMQFrame]) throws(Rejection) -> Envelope { try decodeFrames(frames) }

    func decodeFrames<F: WireFrame>(_ frames: [F]) throws(Rejection) -> Envelope {
        guard let first = frames.first else { throw Rejection(.truncated, "message has no frames") }
        // Cheap size check first, so nothing below ever walks a huge message that must be refused anyway.
        var size = 0
        for frame in frames { size += frame.count }
        guard size <= limits.maxMessageBytes else {
            throw Rejection(.oversized, "message of \(size) bytes, limit \(limits.maxMessageBytes)")
        }
        let header = try header(first, bodyFrames: frames.dropFirst().map(\.count))
        let body = Array(frames.dropFirst())
        let message = try decodeBody(header, body)
        return Envelope(sender: header.sender, message: message)
    }

    /// Decodes a message written by `encodeBlob`.
    public func decodeBlob(_ blob: [UInt8]) throws(Rejection) -> Envelope {
        guard blob.count >= WireHeader.fixedSize else {
            // Let the header check name the precise problem (magic, version…) where it can.
            _ = try decodeHeader(blob)
            throw Rejection(.truncated, "blob has \(blob.count) bytes")
        }
        guard blob.count <= limits.maxMessageBytes else {
            throw Rejection(.oversized, "blob of \(blob.count) bytes, limit \(limits.maxMessageBytes)")
        }
        var r = ByteReader(blob, what: "blob")
        _ = try r.getBytes(24)
        let frameCount = min(Int(try r.get(UInt32.self)), WireHeader.maxFrames + 1)
        let headerSize = min(blob.count, WireHeader.fixedSize + 8 * frameCount)
        let header = try decodeHeader(Array(blob[0..<headerSize]))
        var frames = [Array(blob[0..<headerSize])]
        var offset = headerSize
        for (i, length) in header.frameLengths.enumerated() {
            guard UInt64(blob.count - offset) >= length else {
                throw Rejection(.truncated, "blob ends inside \(header.kind) body frame \(i)")
            }
            frames.append(Array(blob[offset..<offset + Int(length)]))
            offset += Int(length)
        }
        guard offset == blob.count else {
            throw Rejection(.lengthMismatch, "blob has \(blob.count - offset) bytes after its last frame")
        }
        return try decode(frames)
    }

    /// Decodes, counting and logging a reject instead of throwing: the shape every receive loop wants.
    public func decode(_ frames: [[UInt8]], rejects: RejectCounter) -> Envelope? {
        counting(rejects) { () throws(Rejection) in try decodeFrames(frames) }
    }

    public func decode(_ frames: [ZMQFrame], rejects: RejectCounter) -> Envelope? {
        counting(rejects) { () throws(Rejection) in try decodeFrames(frames) }
    }

    private func counting(_ rejects: RejectCounter, _ body: () throws(Rejection) -> Envelope) -> Envelope? {
        do { return try body() } catch {
            rejects.record(error)
            return nil
        }
    }

    /// Frame 0 of a Weights message, checked against the payload's length (which is not read here).
    func weightsMeta(_ frame: some WireFrame, payloadBytes: Int) throws(Rejection) -> WeightsMeta {
        let kind = MessageKind.weights
        guard frame.count == 24 else {
            throw Rejection(frame.count < 24 ? .truncated : .lengthMismatch, "\(kind) frame 0 has \(frame.count) bytes, expected 24")
        }
        var r = ByteReader(frame.withUnsafeBytes { [UInt8]($0) }, what: "\(kind) frame 0")
        let m = WeightsMeta(totalBytes: try r.get(), byteOffset: try r.get(), chunkIndex: try r.get(), chunkCount: try r.get())
        guard m.totalBytes <= limits.maxWeightsBytes else {
            throw Rejection(.oversized, "\(kind) total \(m.totalBytes) bytes, limit \(limits.maxWeightsBytes)")
        }
        guard m.totalBytes % 4 == 0, m.byteOffset % 4 == 0 else {
            throw Rejection(.invalidField, "\(kind) total \(m.totalBytes) or offset \(m.byteOffset) is not whole f32s")
        }
        guard m.chunkCount >= 1, m.chunkIndex < m.chunkCount else {
            throw Rejection(.invalidField, "\(kind) chunk \(m.chunkIndex) of \(m.chunkCount)")
        }
        guard payloadBytes % 4 == 0 else {
            throw Rejection(.lengthMismatch, "\(kind) payload of \(payloadBytes) bytes is not whole f32s")
        }
        guard m.byteOffset <= m.totalBytes, UInt64(payloadBytes) <= m.totalBytes - m.byteOffset else {
            throw Rejection(.lengthMismatch, "\(kind) chunk at \(m.byteOffset)+\(payloadBytes) overruns total \(m.totalBytes)")
        }
        return m
    }

    private func decodeBody<F: WireFrame>(_ h: WireHeader, _ f: [F]) throws(Rejection) -> Message {
        let kind = h.kind
        func fixed(_ i: Int, _ size: Int) throws(Rejection) -> ByteReader {
            guard f[i].count >= size else {
                throw Rejection(.truncated, "\(kind) frame \(i) has \(f[i].count) bytes, needs \(size)")
            }
            guard f[i].count == size else {
                throw Rejection(.lengthMismatch, "\(kind) frame \(i) has \(f[i].count) bytes, expected \(size)")
            }
            return ByteReader(f[i].withUnsafeBytes { [UInt8]($0) }, what: "\(kind) frame \(i)")
        }
        func count(_ value: some FixedWidthInteger, _ limit: Int, _ name: String) throws(Rejection) -> Int {
            guard value <= limit else { throw Rejection(.oversized, "\(kind) \(name) \(value), limit \(limit)") }
            return Int(value)
        }
        func reserved<T: FixedWidthInteger>(_ r: inout ByteReader, _: T.Type) throws(Rejection) {
            let v: T = try r.get()
            guard v == 0 else { throw Rejection(.invalidField, "\(kind) reserved field is \(v), must be 0") }
        }
        func finite(_ x: Double, _ name: String) throws(Rejection) {
            guard x.isFinite else { throw Rejection(.nonFinite, "\(kind) \(name) is \(x)") }
        }

        switch kind {
        case .rolloutGroup:
            var m = try fixed(0, 40)
            let promptID: UInt64 = try m.get()
            let actorID: UInt64 = try m.get()
            let seconds = try m.getDouble()
            let tokensGenerated: UInt64 = try m.get()
            let g = try count(try m.get(UInt32.self), limits.maxGroupSize, "group size")
            let promptCount = try count(try m.get(UInt32.self), limits.maxSequenceTokens, "prompt length")
            try finite(seconds, "generation seconds")
            guard seconds >= 0 else { throw Rejection(.invalidField, "\(kind) generation seconds \(seconds) < 0") }
            guard g >= 1 else { throw Rejection(.invalidField, "\(kind) has no completions") }
            let prompt = try scalars(f[1], count: promptCount, as: UInt32.self, what: "\(kind) prompt tokens")
            let lengths = try scalars(f[2], count: g, as: UInt32.self, what: "\(kind) completion lengths")
            let rewards = try finiteFloats(f[3], count: g, what: "\(kind) rewards")
            var total = 0
            for length in lengths {
                let n = try count(length, limits.maxSequenceTokens, "completion length")
                total += n
            }
            guard UInt64(total) == tokensGenerated else {
                throw Rejection(.lengthMismatch, "\(kind) says \(tokensGenerated) tokens generated, completions hold \(total)")
            }
            let tokens = try scalars(f[4], count: total, as: UInt32.self, what: "\(kind) completion tokens")
            let logProbs = try finiteFloats(f[5], count: total, what: "\(kind) log-probs")
            // A log-probability is at most 0; allow float rounding, refuse anything that is not one.
            if let bad = logProbs.firstIndex(where: { $0 > 1e-3 }) {
                throw Rejection(.invalidField, "\(kind) log-prob[\(bad)] = \(logProbs[bad]) > 0")
            }
            var completions: [Completion] = []
            completions.reserveCapacity(g)
            var start = 0
            for i in 0..<g {
                let end = start + Int(lengths[i])
                completions.append(Completion(tokens: Array(tokens[start..<end]),
                                              logProbs: Array(logProbs[start..<end]), reward: rewards[i]))
                start = end
            }
            return .rolloutGroup(RolloutGroup(promptID: promptID, weightsVersion: h.weightsVersion, actorID: actorID,
                                              promptTokens: prompt, completions: completions,
                                              generationSeconds: seconds))

        case .assignmentRequest:
            var r = try fixed(0, 16)
            let actorID: UInt64 = try r.get()
            let capacity: UInt32 = try r.get()
            try reserved(&r, UInt32.self)
            return .assignmentRequest(AssignmentRequest(actorID: actorID, capacity: capacity,
                                                        weightsVersion: h.weightsVersion))

        case .assignmentGrant:
            var r = try fixed(0, 28)
            let step: UInt64 = try r.get()
            let g: UInt32 = try r.get()
            let maxNew: UInt32 = try r.get()
            let temperature = try r.getFloat()
            let n = try count(try r.get(UInt32.self), limits.maxPromptsPerGrant, "prompt count")
            let rawWork: UInt32 = try r.get()
            guard let work = AssignmentGrant.Work(rawValue: rawWork) else { throw Rejection(.invalidField, "\(kind) work \(rawWork)") }
            _ = try count(g, limits.maxGroupSize, "group size")
            _ = try count(maxNew, limits.maxSequenceTokens, "max new tokens")
            guard g >= 1 else { throw Rejection(.invalidField, "\(kind) group size 0") }
            try finite(Double(temperature), "temperature")
            guard temperature >= 0 else { throw Rejection(.invalidField, "\(kind) temperature \(temperature) < 0") }
            let ids = try scalars(f[1], count: n, as: UInt64.self, what: "\(kind) prompt ids")
            return .assignmentGrant(AssignmentGrant(step: step, weightsVersion: h.weightsVersion, promptIDs: ids,
                                                    groupSize: g, temperature: temperature, maxNewTokens: maxNew, work: work))

        case .weightsRequest:
            var r = try fixed(0, 8)
            return .weightsRequest(WeightsRequest(actorID: try r.get(), weightsVersion: h.weightsVersion))

        case .weights:
            let meta = try weightsMeta(f[0], payloadBytes: f[1].count)
            let payload = try finiteFloats(f[1], count: f[1].count / 4, what: "\(kind) payload")
            return .weights(WeightsChunk(weightsVersion: h.weightsVersion, totalBytes: meta.totalBytes,
                                         byteOffset: meta.byteOffset, chunkIndex: meta.chunkIndex,
                                         chunkCount: meta.chunkCount, payload: payload))

        case .heartbeat, .stats:
            var r = try fixed(0, 16)
            let rawRole: UInt16 = try r.get()
            let rawState: UInt16 = try r.get()
            let pid: UInt32 = try r.get()
            let sentAt = try r.getDouble()
            guard let role = Role(rawValue: rawRole) else { throw Rejection(.invalidField, "\(kind) role \(rawRole)") }
            guard let state = WorkerState(rawValue: rawState) else { throw Rejection(.invalidField, "\(kind) state \(rawState)") }
            try finite(sentAt, "sent-at time")
            var t = ByteReader(f[1].withUnsafeBytes { [UInt8]($0) }, what: "\(kind) stats table")
            let n = try count(try t.get(UInt32.self), limits.maxStatsEntries, "entry count")
            // Each entry takes at least 10 bytes: refuse a count the frame cannot hold before looping.
            guard n * 10 <= t.remaining else {
                throw Rejection(.truncated, "\(kind) declares \(n) entries in \(t.remaining) bytes")
            }
            var values: [String: Double] = [:]
            for _ in 0..<n {
                let keyLength = Int(try t.get(UInt16.self))
                guard (1...255).contains(keyLength) else {
                    throw Rejection(.invalidField, "\(kind) key of \(keyLength) bytes")
                }
                let raw = try t.getBytes(keyLength)
                guard let key = String(validating: raw, as: UTF8.self) else {
                    throw Rejection(.invalidField, "\(kind) key is not UTF-8")
                }
                let value = try t.getDouble()
                try finite(value, "value of \(key)")
                guard values.updateValue(value, forKey: key) == nil else {
                    throw Rejection(.invalidField, "\(kind) key \(key) appears twice")
                }
            }
            guard t.remaining == 0 else {
                throw Rejection(.lengthMismatch, "\(kind) stats table has \(t.remaining) bytes after its entries")
            }
            var l = ByteReader(f[2].withUnsafeBytes { [UInt8]($0) }, what: "\(kind) labels")
            let m = try count(try l.get(UInt32.self), limits.maxLabels, "label count")
            // Each label takes at least 5 bytes.
            guard m * 5 <= l.remaining else {
                throw Rejection(.truncated, "\(kind) declares \(m) labels in \(l.remaining) bytes")
            }
            var labels: [String: String] = [:]
            for _ in 0..<m {
                let keyLength = Int(try l.get(UInt16.self))
                guard (1...255).contains(keyLength) else {
                    throw Rejection(.invalidField, "\(kind) label key of \(keyLength) bytes")
                }
                guard let key = String(validating: try l.getBytes(keyLength), as: UTF8.self) else {
                    throw Rejection(.invalidField, "\(kind) label key is not UTF-8")
                }
                let valueLength = Int(try l.get(UInt16.self))
                guard valueLength <= WorkerStats.maxLabelBytes else {
                    throw Rejection(.oversized, "\(kind) label \(key) of \(valueLength) bytes, limit \(WorkerStats.maxLabelBytes)")
                }
                guard let value = String(validating: try l.getBytes(valueLength), as: UTF8.self) else {
                    throw Rejection(.invalidField, "\(kind) label \(key) is not UTF-8")
                }
                guard labels.updateValue(value, forKey: key) == nil else {
                    throw Rejection(.invalidField, "\(kind) label \(key) appears twice")
                }
            }
            guard l.remaining == 0 else {
                throw Rejection(.lengthMismatch, "\(kind) labels have \(l.remaining) bytes after their entries")
            }
            let stats = WorkerStats(role: role, state: state, pid: pid, weightsVersion: h.weightsVersion, sentAt: sentAt,
                                    values: values, labels: labels)
            return kind == .heartbeat ? .heartbeat(stats) : .stats(stats)

        case .control:
            var r = try fixed(0, 4)
            let raw: UInt16 = try r.get()
            try reserved(&r, UInt16.self)
            guard let command = Control.Command(rawValue: raw) else {
                throw Rejection(.invalidField, "\(kind) command \(raw)")
            }
            guard f[1].count <= Control.maxReasonBytes else {
                throw Rejection(.oversized, "\(kind) reason of \(f[1].count) bytes, limit \(Control.maxReasonBytes)")
            }
            guard let reason = String(validating: f[1].withUnsafeBytes { [UInt8]($0) }, as: UTF8.self) else {
                throw Rejection(.invalidField, "\(kind) reason is not UTF-8")
            }
            return .control(Control(command, weightsVersion: h.weightsVersion, reason: reason))
        }
    }
}

/// The fixed fields of a Weights chunk.
struct WeightsMeta {
    var totalBytes: UInt64
    var byteOffset: UInt64
    var chunkIndex: UInt32
    var chunkCount: UInt32
}

extension Control {
    /// Longest reason text on the wire.
    public static let maxReasonBytes = 1024
}

/// The longest prefix of `text` that fits `maxBytes` of UTF-8 without splitting a character's scalar.
private func utf8Prefix(_ text: String, maxBytes: Int) -> [UInt8] {
    var out: [UInt8] = []
    for scalar in text.unicodeScalars {
        let bytes = Array(String(scalar).utf8)
        if out.count + bytes.count > maxBytes { break }
        out += bytes
    }
    return out
}

private func hex(_ bytes: some Sequence<UInt8>) -> String {
    bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
}
