import Foundation
import Testing
@testable import Model

func tempDir(_ name: String) -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("dots-tests-\(name)-\(UUID().uuidString)")
    try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

@Test(arguments: [Float(0), 0.7, 1.0])
func kvCacheGenerationEqualsFullRecomputation(temperature: Float) throws {
    let model = try tinyModel(seed: 31)
    // Repeated prompts share one prefill: their copied caches must give the same log-probs as recomputation.
    let prompts: [[Int32]] = [[1, 20, 21, 22], [1, 40], [1, 20, 21, 22], [1, 50, 51, 52, 53, 54, 55], [1, 40]]
    let outs = try model.generate(prompts: prompts, options: SamplingOptions(
        temperature: temperature, maxNewTokens: 12, stopToken: 2, seed: 5))
    for (p, c) in zip(prompts, outs) {
        #expect(!c.tokens.isEmpty && c.tokens.count == c.logProbs.count)
        let full = try model.targetLogProbs(TokenBatch(sequences: [p + c.tokens]), temperature: temperature == 0 ? 1 : temperature)
        for (k, lp) in c.logProbs.enumerated() {
            #expect(abs(full[p.count - 1 + k] - lp) < 1e-4, "token \(k): cache \(lp) vs full \(full[p.count - 1 + k])")
        }
        if temperature == 0 {
            // Greedy picks the argmax of the full forward at every position.
            let logits = try model.forward(TokenBatch(sequences: [p + c.tokens]))
            let v = model.config.vocabSize
            for k in 0..<c.tokens.count {
                let row = p.count - 1 + k
                let best = (0..<v).max { logits[row * v + $0] < logits[row * v + $1] }!
                #expect(Int32(best) == c.tokens[k])
            }
        }
    }
}

@Test func generationIsIndependentOfBatchComposition() throws {
    let model = try tinyModel(seed: 32)
    let opts = SamplingOptions(temperature: 1, maxNewTokens: 10, seed: 9)
    let both = try model.generate(prompts: [[1, 10, 11], [1, 30]], options: opts)
    let first = try model.generate(prompts: [[1, 10, 11]], options: opts)
    // Same tokens; log-probs agree to rounding (BLAS blocks differently for other batch sizes).
    #expect(both[0].tokens == first[0].tokens)
    for (a, b) in zip(both[0].logProbs, first[0].logProbs) { #expect(abs(a - b) < 1e-4) }
    let again = try model.generate(prompts: [[1, 10, 11], [1, 30]], options: opts)
    #expect(both == again)
}

/// A group's G samples of one prompt: prefilled once and copied, they draw what G separate prefills draw.
@Test func repeatedPromptsSharePrefillWithoutChangingSamples() throws {
    let model = try tinyModel(seed: 34)
    let a: [Int32] = [1, 20, 21, 22, 23, 24, 25, 26, 27, 28], b: [Int32] = [1, 40, 41]  // a spans two key tiles
    let prompts = [a, a, b, a, b, a, a, a, b]
    let opts = SamplingOptions(temperature: 1, maxNewTokens: 12, stopToken: 2, seed: 7)
    let shared = try model.generate(prompts: prompts, options: opts)
    let separate = try model.generate(prompts: prompts, options: opts, sharePrompts: false)
    for (s, (x, y)) in zip(shared, separate).enumerated() {
        #expect(x.tokens == y.tokens, "sequence \(s)")
        // To rounding: the two prefill different row counts, so BLAS may block them differently.
        for (lx, ly) in zip(x.logProbs, y.logProbs) { #expect(abs(lx - ly) < 1e-4, "sequence \(s)") }
    }
    // Each copy still samples on its own stream.
    #expect(Set(zip(prompts, shared).filter { $0.0 == a }.map(\.1.tokens)).count > 1)
}

@Test func topPOneTokenIsGreedy() throws {
    let model = try tinyModel(seed: 33)
    let greedy = try model.generate(prompts: [[1, 5, 6]], options: SamplingOptions(temperature: 0, maxNewTokens: 8, stopToken: nil))
    let nucleus = try model.generate(prompts: [[1, 5, 6]], options: SamplingOptions(temperature: 1, topP: 1e-6, maxNewTokens: 8, stopToken: nil, seed: 3))
    #expect(greedy[0].tokens == nucleus[0].tokens)
}

@Test(arguments: [false, true])
func checkpointRoundTripIsBitExact(tied: Bool) throws {
    let model = try tinyModel(seed: 41, tied: tied)
    let dir = tempDir("ckpt")
    try Checkpoint.save(model, tokenizer: .standard, to: dir)
    let (loaded, tok) = try Checkpoint.load(dir)
    #expect(loaded.config == model.config)
    #expect(tok == .standard)
    #expect(loaded.parameters.array.map(\.bitPattern) == model.parameters.array.map(\.bitPattern))
    let config = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("config.json"))) as! [String: Any]
    #expect(config["model_type"] as? String == "llama")
    let (tensors, _) = try SafeTensors.read(dir.appendingPathComponent("model.safetensors"))
    #expect(tensors["model.layers.1.mlp.down_proj.weight"]?.shape == [32, 64])
    #expect(tensors["model.layers.0.self_attn.k_proj.weight"]?.shape == [16, 32])
    #expect((tensors["lm_head.weight"] != nil) == !tied)
}

@Test func badCheckpointsGiveClearErrors() throws {
    let model = try tinyModel(seed: 42)
    let dir = tempDir("bad")
    try Checkpoint.save(model, tokenizer: .standard, to: dir)
    let weights = dir.appendingPathComponent("model.safetensors")
    let good = try Data(contentsOf: weights)

    func message(_ body: () throws -> Void) -> String {
        do { try body(); return "no error" } catch { return "\(error)" }
    }
    // Truncated data section.
    try good.prefix(good.count - 100).write(to: weights)
    #expect(message { _ = try Checkpoint.load(dir) }.contains("truncated"))
    // Truncated inside the header.
    try good.prefix(5).write(to: weights)
    #expect(message { _ = try Checkpoint.load(dir) }.contains("truncated"))
    // Missing file.
    try FileManager.default.removeItem(at: weights)
    #expect(message { _ = try Checkpoint.load(dir) }.contains("missing"))
    // A tensor with the wrong shape: claim a bigger model in config.json.
    try good.write(to: weights)
    let cfgURL = dir.appendingPathComponent("config.json")
    var cfg = try JSONSerialization.jsonObject(with: Data(contentsOf: cfgURL)) as! [String: Any]
    cfg["intermediate_size"] = 80
    try JSONSerialization.data(withJSONObject: cfg).write(to: cfgURL)
    let shapeMsg = message { _ = try Checkpoint.load(dir) }
    #expect(shapeMsg.contains("gate_proj.weight") && shapeMsg.contains("shape"))
    // A missing key in config.json.
    cfg["intermediate_size"] = nil
    try JSONSerialization.data(withJSONObject: cfg).write(to: cfgURL)
    #expect(message { _ = try Checkpoint.load(dir) }.contains("intermediate_size"))
    // No folder at all.
    #expect(message { _ = try Checkpoint.load(dir.appendingPathComponent("nope")) }.contains("No checkpoint folder"))
}

@Test func tinyModelOverfitsAFewSequences() throws {
    let model = try Transformer(config: .tiny())
    model.initialize(seed: 51)
    let tok = CharTokenizer.standard
    let texts = ["12+34=46", "sort:cab=abc", "7*8=56", "99-9=90"]
    let batch = TokenBatch(sequences: try texts.map { try tok.encode($0) + [CharTokenizer.eos] })
    // The first character after BOS can't be predicted (4 sequences start differently): not trained.
    var w = [Float](repeating: 1, count: batch.rowCount)
    for s in 0..<batch.sequenceCount { w[batch.seqStarts[s]] = 0 }
    let opt = AdamW(model: model, learningRate: 1e-2, weightDecay: 0)
    var first = 0.0, last = 0.0
    for step in 0..<300 {
        model.zeroGradients()
        let r = try model.loss(batch, .crossEntropy(weights: w))
        if step == 0 { first = r.loss }
        last = r.loss
        opt.update(model)
    }
    #expect(first > 3)
    #expect(last < 0.05, "loss after 300 steps: \(last)")
    // And it now completes a memorised prompt greedily.
    let out = try model.generate(prompts: [try tok.encode("sort:cab=")], options: SamplingOptions(temperature: 0, maxNewTokens: 6))
    #expect(tok.decode(out[0].tokens) == "abc")
}

@Test func tokenizerRoundTripAndErrors() throws {
    let tok = CharTokenizer.standard
    let ids = try tok.encode("a+B 9=\n")
    #expect(ids.first == CharTokenizer.bos)
    #expect(tok.decode(Array(ids.dropFirst())) == "a+B 9=\n")
    #expect(tok.decode([try tok.encode("ab", addBOS: false)[0], CharTokenizer.eos, 40]) == "a")
    #expect(throws: ModelError.self) { try tok.encode("é") }
    let dir = tempDir("tok")
    try tok.save(to: dir.appendingPathComponent("t.json"))
    #expect(try CharTokenizer.load(from: dir.appendingPathComponent("t.json")) == tok)
}

@Test func badInputsAreRejected() throws {
    let model = try tinyModel(seed: 61)
    #expect(throws: ModelError.self) { try model.forward(TokenBatch(sequences: [[1, 500]])) }
    #expect(throws: ModelError.self) { try model.generate(prompts: [[]], options: SamplingOptions()) }
    #expect(throws: ModelError.self) {
        try model.generate(prompts: [[1]], options: SamplingOptions(maxNewTokens: 1000))
    }
    #expect(throws: ModelError.self) { try model.loss(TokenBatch(sequences: [[1, 2, 3]]), .crossEntropy(weights: [1])) }
}

/// Head dim 32 takes the register-blocked decode kernel; it must agree with the full forward too.
@Test func kvCacheFastPathHeadDim32() throws {
    let cfg = ModelConfig(vocabSize: 100, hiddenSize: 64, intermediateSize: 96, numHiddenLayers: 2,
                          numAttentionHeads: 2, numKeyValueHeads: 1, maxPositionEmbeddings: 64)
    let model = try Transformer(config: cfg)
    model.initialize(seed: 77)
    var rng = SplitMix64(seed: 78)
    for i in 0..<model.parameterCount { model.parameters[i] += 0.2 * rng.nextGaussian() }
    let prompts: [[Int32]] = [[1, 20, 21, 22, 23, 24, 25, 26, 27, 28], [1, 40], [1, 20, 21, 22, 23, 24, 25, 26, 27, 28]]
    // Up to 50 positions: the decode kernel's four-tile score loop (32 positions) and its tail both run,
    // and the full forward takes the product path (16 rows or more).
    let outs = try model.generate(prompts: prompts, options: SamplingOptions(temperature: 1, maxNewTokens: 40, stopToken: nil, seed: 5))
    for (p, c) in zip(prompts, outs) {
        let full = try model.targetLogProbs(TokenBatch(sequences: [p + c.tokens]))
        for (k, lp) in c.logProbs.enumerated() { #expect(abs(full[p.count - 1 + k] - lp) < 1e-4) }
    }
}

/// The vectorised AdamW against a plain scalar transcription of the update (clip, moments, bias
/// correction, decoupled decay on matrices only), over three steps; also split over 2 and 3 threads (the
/// learner's), on the tiny model and on one whose tensors are not multiples of eight long (12-wide norms,
/// a 101 × 12 embedding), so runs end mid-vector and the scalar tails are split too. With `extras`, the
/// gradient arrives in pieces, as a data-parallel learner's shares give it: the model's buffer holds one
/// piece and `update(_:adding:)` reads the others.
@Test(arguments: [1, 2, 3], [false, true])
func adamWMatchesScalarReference(threads: Int, oddSizes: Bool) throws {
    for extras in [0, 1, 2] { try adamWMatchesScalarReference(threads: threads, oddSizes: oddSizes, extras: extras) }
}

func adamWMatchesScalarReference(threads: Int, oddSizes: Bool, extras: Int) throws {
    let model: Transformer
    if oddSizes {
        model = try Transformer(config: ModelConfig(vocabSize: 101, hiddenSize: 12, intermediateSize: 20, numHiddenLayers: 1,
                                                    numAttentionHeads: 2, numKeyValueHeads: 1, maxPositionEmbeddings: 16))
        model.initialize(seed: 91)
    } else {
        model = try tinyModel(seed: 91)
    }
    let opt = AdamW(model: model, learningRate: 1e-2, beta1: 0.9, beta2: 0.95, weightDecay: 0.1, maxGradNorm: 0.5)
    opt.threads = threads
    var p = model.parameters.array.map(Double.init)
    var m = [Double](repeating: 0, count: p.count), v = m
    var rng = SplitMix64(seed: 92)
    for step in 1...3 {
        let g = (0..<p.count).map { _ in Double(rng.nextGaussian()) * 0.01 }
        // Pieces that add up to g (to Float rounding): the extras hold small multiples of 2⁻¹², the model the rest.
        var rest = g.map(Float.init)
        let pieces = (0..<extras).map { _ in
            let b = FloatBuffer(count: p.count)
            for i in 0..<p.count {
                let x = Float(Int(rng.next() % 41) - 20) / 4096
                b[i] = x
                rest[i] -= x
            }
            return b
        }
        model.gradients.write(rest, at: 0)
        let before = pieces.map(\.array)
        opt.update(model, adding: pieces)
        if extras == 1 { #expect(pieces[0].array == before[0], "a single extra buffer is only read") }
        let norm = g.map { $0 * $0 }.reduce(0, +).squareRoot()
        let scale = norm > 0.5 ? 0.5 / norm : 1
        for e in model.layout.entries {
            let decay = e.shape.count == 2 ? 1 - 1e-2 * 0.1 : 1
            for i in e.offset..<(e.offset + e.count) {
                let gi = g[i] * scale
                m[i] = 0.9 * m[i] + 0.1 * gi
                v[i] = 0.95 * v[i] + 0.05 * gi * gi
                let mh = m[i] / (1 - pow(0.9, Double(step))), vh = v[i] / (1 - pow(0.95, Double(step)))
                p[i] = p[i] * decay - 1e-2 * mh / (vh.squareRoot() + 1e-8)
            }
        }
    }
    let worst = zip(model.parameters.array, p).map { abs(Double($0) - $1) }.max()!
    #expect(worst < 1e-5, "max difference \(worst) with \(extras) extra gradient buffers")
}

@Test("OpenBLAS's kernel choice: a pre-AVX2 fallback on an AVX2 or AVX-512 CPU is replaced, a fitting choice is kept")
func blasCoreChoice() {
    let avx512: Set<String> = ["sse3", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd"]
    #expect(BLASCore.betterCoreType(current: "Prescott", cpuFlags: avx512) == "SkylakeX")
    #expect(BLASCore.betterCoreType(current: "Prescott", cpuFlags: ["sse3", "avx", "avx2", "fma"]) == "Haswell")
    #expect(BLASCore.betterCoreType(current: "Sandybridge", cpuFlags: ["avx", "avx2", "fma", "avx512f"]) == "Haswell")
    // Already fitting, or a CPU the fallback is right for: nothing to change.
    #expect(BLASCore.betterCoreType(current: "Haswell", cpuFlags: avx512) == nil)
    #expect(BLASCore.betterCoreType(current: "Zen", cpuFlags: avx512) == nil)
    #expect(BLASCore.betterCoreType(current: "Prescott", cpuFlags: ["sse3", "avx"]) == nil)
    #expect(!BLASCore.name.isEmpty && BLASCore.name != "unknown")
}

@Test func largeBuffersAreHugePageAlignedAndBehaveLikeSmallOnes() {
    // One float short of a huge page, exactly one, and one past it: each filled, written, copied and freed.
    let page = FloatBuffer.hugePageBytes / MemoryLayout<Float>.stride
    for count in [page - 1, page, page + 1] {
        let b = FloatBuffer(count: count, value: 1.5)
        #if os(Linux)
        if count >= page { #expect(Int(bitPattern: b.pointer) % FloatBuffer.hugePageBytes == 0) }
        #endif
        #expect(b[0] == 1.5 && b[count - 1] == 1.5)
        b[count - 1] = 3
        let c = FloatBuffer(count: count)
        c.copy(from: b)
        #expect(c[count - 1] == 3 && c[count / 2] == 1.5)
        c.zero()
        #expect(c[count - 1] == 0)
    }
}
