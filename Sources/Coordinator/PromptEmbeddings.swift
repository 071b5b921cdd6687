import Foundation
import Model
import RolloutActor
import Tasks

/// Frozen prompt embeddings z_q for the difficulty predictor: the mean over a prompt's tokens of the
/// embedder checkpoint's final hidden state (after its final RMSNorm). Computed once per (embedder,
/// dataset) and cached on disk, keyed by a hash of the embedder's weights and of the prompt texts.
public enum PromptEmbeddings {
    /// Prompts per forward pass.
    static let batch = 512

    /// Embeds `problems` with `model`; (problems, hidden) row-major.
    public static func compute(_ problems: [Problem], model: Transformer, tokenizer: CharTokenizer,
                               progress: ((Int, Int) -> Void)? = nil) throws -> [Float] {
        var out: [Float] = []
        out.reserveCapacity(problems.count * model.config.hiddenSize)
        var start = 0
        while start < problems.count {
            let slice = problems[start..<min(start + batch, problems.count)]
            out += try model.meanPooledHiddenStates(slice.map { try PromptFormat.promptTokens($0, tokenizer) })
            start += slice.count
            progress?(start, problems.count)
        }
        return out
    }

    /// The embeddings of `problems` under the checkpoint at `embedder`, read from `cacheDir` when a file
    /// for this (embedder weights, prompts) pair is there, else computed and written there.
    public static func cached(_ problems: [Problem], embedder: URL, cacheDir: URL,
                              progress: ((Int, Int) -> Void)? = nil) throws -> (dim: Int, values: [Float]) {
        let weights = embedder.appendingPathComponent(Checkpoint.weightsFile)
        guard let bytes = try? Data(contentsOf: weights, options: .alwaysMapped) else {
            throw ModelError.checkpoint("No embedder checkpoint at \(embedder.path) (its \(Checkpoint.weightsFile) is missing).")
        }
        var hash = FNV1a()
        hash.add(bytes)
        for p in problems { hash.add(Data(p.prompt.utf8)); hash.add(Data([0])) }
        let file = cacheDir.appendingPathComponent(String(format: "embeddings-%016llx.safetensors", hash.value))
        if let (tensors, _) = try? SafeTensors.read(file), let t = tensors["embeddings"], t.shape.count == 2,
           t.shape[0] == problems.count {
            return (t.shape[1], SafeTensors.floats(t))
        }
        let (model, tok) = try Checkpoint.load(embedder)
        let values = try compute(problems, model: model, tokenizer: tok, progress: progress)
        let dim = model.config.hiddenSize
        try FileManager.default.createDirectory(at: cacheDir, withIntermediateDirectories: true)
        let tensor = values.withUnsafeBufferPointer { SafeTensors.float32($0, shape: [problems.count, dim]) }
        try SafeTensors.write([("embeddings", tensor)], metadata: ["embedder": embedder.path, "prompts": "\(problems.count)"], to: file)
        return (dim, values)
    }
}

/// 64-bit FNV-1a: a content hash for cache keys (not for security).
public struct FNV1a: Sendable {
    public private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325
    public init() {}
    public mutating func add(_ data: Data) {
        var h = value
        data.withUnsafeBytes { raw in
            for b in raw { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        }
        value = h
    }
}

/// Rows `indices` of a row-major (n, dim) matrix.
public func gatherRows(_ m: [Float], dim: Int, _ indices: [Int]) -> [Float] {
    var out = [Float](repeating: 0, count: indices.count * dim)
    for (r, i) in indices.enumerated() {
        for j in 0..<dim { out[r * dim + j] = m[i * dim + j] }
    }
    return out
}
