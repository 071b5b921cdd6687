/// Puts the chunks of a weights version back into one flat parameter buffer.
///
/// Chunks may arrive in any order. A chunk of a newer version abandons the partial older one (only the
/// newest weights matter); chunks of older versions are ignored. A broadcast that loses a chunk (PUB drops
/// at its high-water mark) never completes: the holder notices a newer grant or heartbeat version it
/// cannot reach and fetches a snapshot over ROUTER/DEALER instead.
///
/// For large models, receive with `ZMQSocket.receiveFrames` and call `add(weightsFrames:)`: the payload
/// is then copied once, from libzmq's buffer straight into the parameters, and checked for NaN on the
/// way. Hand the previous version's buffer back with `recycle` so the next one reuses its memory instead
/// of faulting in a fresh 100 MB.
public struct WeightsAssembler: Sendable {
    public enum Outcome: Sendable, Equatable {
        /// More chunks are needed.
        case incomplete
        /// The last chunk arrived: the whole buffer of that version.
        case complete(version: UInt64, parameters: [Float])
        /// The chunk did not fit (older version, duplicate, or disagreeing with earlier chunks); why.
        case ignored(String)
    }

    /// The version being assembled, if any.
    public private(set) var version: UInt64?
    /// The newest version completed, so its late duplicates are ignored rather than restarted.
    public private(set) var lastCompleted: UInt64?
    private var parameters: [Float] = []
    private var seen: [Bool] = []
    private var totalBytes: UInt64 = 0
    private var bytesReceived: UInt64 = 0
    private var spare: [Float]?

    /// - Parameter buffer: memory to assemble the first version into, if it has the right size.
    public init(recycling buffer: [Float]? = nil) { spare = buffer }

    /// Offers an old version's buffer for the next version to be assembled into.
    public mutating func recycle(_ buffer: [Float]) { spare = buffer }

    /// Chunk indices of the current version still missing.
    public var missingChunks: [Int] { seen.indices.filter { !seen[$0] } }

    /// Adds a decoded chunk.
    public mutating func add(_ chunk: WeightsChunk) -> Outcome {
        let meta = WeightsMeta(totalBytes: chunk.totalBytes, byteOffset: chunk.byteOffset,
                               chunkIndex: chunk.chunkIndex, chunkCount: chunk.chunkCount)
        return accept(version: chunk.weightsVersion, meta, bytes: chunk.payload.count * 4) { dst in
            chunk.payload.withUnsafeBytes { dst.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            return nil
        }
    }

    /// Decodes a Weights message and copies its payload straight into the parameters, validating it as
    /// `WireCodec.decode` would (a NaN anywhere rejects the chunk).
    public mutating func add(weightsFrames frames: [ZMQFrame], codec: WireCodec = WireCodec()) throws(Rejection) -> Outcome {
        try addFrames(frames, codec: codec)
    }

    public mutating func add(weightsFrames frames: [[UInt8]], codec: WireCodec = WireCodec()) throws(Rejection) -> Outcome {
        try addFrames(frames, codec: codec)
    }

    private mutating func addFrames<F: WireFrame>(_ frames: [F], codec: WireCodec) throws(Rejection) -> Outcome {
        guard let first = frames.first else { throw Rejection(.truncated, "message has no frames") }
        let header = try codec.header(first, bodyFrames: frames.dropFirst().map(\.count))
        guard header.kind == .weights else { throw Rejection(.invalidField, "expected Weights, got \(header.kind)") }
        let meta = try codec.weightsMeta(frames[1], payloadBytes: frames[2].count)
        var bad: Int?
        let outcome = accept(version: header.weightsVersion, meta, bytes: frames[2].count) { dst in
            frames[2].withUnsafeBytes { raw in copyFinite(raw, to: dst, count: raw.count / 4) }
        } rejected: { bad = $0 }
        if let bad {
            throw Rejection(.nonFinite, "Weights payload[\(bad)] is not finite")
        }
        return outcome
    }

    /// Checks a chunk against the version being assembled and lets `copy` write its payload in place.
    /// `copy` returns the index of a non-finite value it found, which un-marks the chunk.
    private mutating func accept(version chunkVersion: UInt64, _ meta: WeightsMeta, bytes: Int,
                                 copy: (UnsafeMutableRawPointer) -> Int?,
                                 rejected: (Int) -> Void = { _ in }) -> Outcome {
        if let done = lastCompleted, chunkVersion <= done {
            return .ignored("version \(chunkVersion) is not newer than \(done), already complete")
        }
        if let current = version, chunkVersion < current {
            return .ignored("version \(chunkVersion) is older than \(current), being assembled")
        }
        if version != chunkVersion {
            // The decoder has bounded totalBytes by DecodeLimits.maxWeightsBytes.
            let count = Int(meta.totalBytes / 4)
            if version != nil, parameters.count == count { spare = parameters }
            if let reuse = spare, reuse.count == count {
                parameters = reuse
            } else {
                parameters = [Float](repeating: 0, count: count)
            }
            spare = nil
            version = chunkVersion
            totalBytes = meta.totalBytes
            seen = [Bool](repeating: false, count: Int(meta.chunkCount))
            bytesReceived = 0
        }
        let index = Int(meta.chunkIndex)
        guard meta.totalBytes == totalBytes, Int(meta.chunkCount) == seen.count, meta.byteOffset % 4 == 0,
              meta.byteOffset <= totalBytes, UInt64(bytes) <= totalBytes - meta.byteOffset, index < seen.count
        else { return .ignored("chunk \(index) disagrees with the other chunks of version \(chunkVersion)") }
        guard !seen[index] else { return .ignored("chunk \(index) arrived twice") }
        if bytes > 0 {
            let bad = parameters.withUnsafeMutableBytes { copy($0.baseAddress! + Int(meta.byteOffset)) }
            if let bad {
                rejected(bad)
                return .incomplete
            }
        }
        seen[index] = true
        bytesReceived += UInt64(bytes)
        guard !seen.contains(false) else { return .incomplete }
        let finished = chunkVersion
        let result = parameters
        let (received, total) = (bytesReceived, totalBytes)
        self = WeightsAssembler(recycling: spare)
        lastCompleted = finished
        guard received == total else {
            return .ignored("version \(finished): chunks cover \(received) of \(total) bytes")
        }
        return .complete(version: finished, parameters: result)
    }
}
