import Foundation
import Model
import Tasks
import Testing
@testable import Coordinator

@Test("Prompt embeddings: each prompt's mean-pooled hidden state is the same packed or alone, and the cache returns what was computed")
func promptEmbeddingsPackingAndCache() throws {
    let model = try Transformer(config: .tiny())
    model.initialize(seed: 3)
    let problems = [Problem(id: 0, prompt: "12+34=", answer: "46"), Problem(id: 1, prompt: "sort:cba=", answer: "abc"),
                    Problem(id: 2, prompt: "7*8=", answer: "56")]
    let packed = try PromptEmbeddings.compute(problems, model: model, tokenizer: .standard)
    let dim = model.config.hiddenSize
    #expect(packed.count == problems.count * dim)
    for (i, p) in problems.enumerated() {
        let alone = try PromptEmbeddings.compute([p], model: model, tokenizer: .standard)
        for j in 0..<dim { #expect(abs(alone[j] - packed[i * dim + j]) < 1e-5) }
    }
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dots-embeddings-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: dir) }
    let ckpt = dir.appendingPathComponent("ckpt"), cache = dir.appendingPathComponent("cache")
    try Checkpoint.save(model, tokenizer: .standard, to: ckpt)
    let first = try PromptEmbeddings.cached(problems, embedder: ckpt, cacheDir: cache)
    #expect(first.dim == dim && first.values == packed)
    #expect(try FileManager.default.contentsOfDirectory(atPath: cache.path).count == 1)
    let second = try PromptEmbeddings.cached(problems, embedder: ckpt, cacheDir: cache)
    #expect(second.values == packed)
    // Other prompts, another cache entry.
    _ = try PromptEmbeddings.cached(Array(problems.prefix(2)), embedder: ckpt, cacheDir: cache)
    #expect(try FileManager.default.contentsOfDirectory(atPath: cache.path).count == 2)
}
