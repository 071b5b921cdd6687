/// Puts the chunks of a weights version back into one flat parameter buffer.
///
/// Chunks may arrive in any order. A chunk of a newer version abandons the partial older one (only the
/// newest weights matter); chunks of older versions are ignored. A broadcast that loses a chunk (PUB drops
/// at its high-water mark) never completes: the holder notices a newer grant or heartbeat version it
/// cannot reach and fetches a snapshot over ROUTER/DEALER instead.
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
    private var parameters: [Float] = []
    private var seen: [Bool] = []
    private var totalBytes: UInt64 = 0
    private var bytesReceived: UInt64 = 0
    /// The newest version completed, so its late duplicates are ignored rather than restarted.
    public private(set) var lastCompleted: UInt64?

    public init() {}

    /// Chunk indices of the current version still missing.
    public var missingChunks: [Int] { seen.indices.filter { !seen[$0] } }

    public mutating func add(_ chunk: WeightsChunk) -> Outcome {
        if let done = lastCompleted, chunk.weightsVersion <= done {
            return .ignored("version \(chunk.weightsVersion) is not newer than \(done), already complete")
        }
        if let current = version, chunk.weightsVersion < current {
            return .ignored("version \(chunk.weightsVersion) is older than \(current), being assembled")
        }
        if version != chunk.weightsVersion {
            // The decoder has bounded totalBytes by DecodeLimits.maxWeightsBytes.
            version = chunk.weightsVersion
            totalBytes = chunk.totalBytes
            parameters = [Float](repeating: 0, count: Int(chunk.totalBytes / 4))
            seen = [Bool](repeating: false, count: Int(chunk.chunkCount))
            bytesReceived = 0
        }
        let bytes = UInt64(chunk.payload.count * 4)
        guard chunk.totalBytes == totalBytes, Int(chunk.chunkCount) == seen.count,
              chunk.byteOffset % 4 == 0, chunk.byteOffset <= totalBytes, bytes <= totalBytes - chunk.byteOffset,
              Int(chunk.chunkIndex) < seen.count
        else { return .ignored("chunk \(chunk.chunkIndex) disagrees with the other chunks of version \(chunk.weightsVersion)") }
        guard !seen[Int(chunk.chunkIndex)] else { return .ignored("chunk \(chunk.chunkIndex) arrived twice") }
        seen[Int(chunk.chunkIndex)] = true
        let start = Int(chunk.byteOffset / 4)
        parameters.withUnsafeMutableBufferPointer { out in
            chunk.payload.withUnsafeBufferPointer { src in
                guard let base = src.baseAddress else { return }
                (out.baseAddress! + start).update(from: base, count: src.count)
            }
        }
        bytesReceived += bytes
        guard !seen.contains(false) else { return .incomplete }
        let finished = version!
        defer { self = WeightsAssembler(lastCompleted: finished) }
        guard bytesReceived == totalBytes else {
            return .ignored("version \(finished): chunks cover \(bytesReceived) of \(totalBytes) bytes")
        }
        return .complete(version: finished, parameters: parameters)
    }

    private init(lastCompleted: UInt64) { self.lastCompleted = lastCompleted }
}
