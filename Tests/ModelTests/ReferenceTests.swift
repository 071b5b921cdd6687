import Foundation
import Testing
@testable import Model

/// Compares the whole model — logits, loss and every gradient tensor — with PyTorch + Hugging Face
/// transformers' LlamaForCausalLM on the same weights (fixtures from scripts/make_model_fixtures.py).
@Test(arguments: ["tiny_gqa", "tiny_tied"])
func matchesTransformersReference(fixture: String) throws {
    let dir = try #require(Bundle.module.url(forResource: "Fixtures", withExtension: nil)).appendingPathComponent(fixture)
    let (model, _) = try Checkpoint.load(dir)
    let base = try SafeTensors.read(dir.appendingPathComponent("reference.safetensors")).tensors
    for file in ["reference", "weighted"] {
        let (ref, _) = try SafeTensors.read(dir.appendingPathComponent("\(file).safetensors"))
        let idsTensor = try #require(ref["input_ids"] ?? base["input_ids"])
        let ids: [Int32] = idsTensor.data.withUnsafeBytes { raw in
            (0..<(idsTensor.data.count / 4)).map { Int32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self)) }
        }
        let (b, t) = (idsTensor.shape[0], idsTensor.shape[1])
        let batch = TokenBatch(sequences: (0..<b).map { Array(ids[($0 * t)..<(($0 + 1) * t)]) })
        var weights = [Float](repeating: 0, count: b * t)
        if let w = ref["w"] {
            let wv = SafeTensors.floats(w)
            for bi in 0..<b { for ti in 0..<(t - 1) { weights[bi * t + ti] = wv[bi * (t - 1) + ti] } }
        } else {
            for bi in 0..<b { for ti in 0..<(t - 1) { weights[bi * t + ti] = 1 } }
        }
        if let logitsRef = ref["logits"] {
            let expected = SafeTensors.floats(logitsRef)
            let logits = Array(try model.forward(batch))
            let worst = zip(logits, expected).map { abs($0 - $1) }.max()!
            #expect(worst < 1e-4, "\(fixture) logits differ by up to \(worst)")
        }
        model.zeroGradients()
        let result = try model.loss(batch, .crossEntropy(weights: weights))
        let expectedLoss = Double(SafeTensors.floats(try #require(ref["loss"]))[0])
        #expect(abs(result.loss - expectedLoss) < 1e-5, "\(fixture)/\(file) loss \(result.loss) vs \(expectedLoss)")
        for e in model.layout.entries {
            let g = SafeTensors.floats(try #require(ref["grad.\(e.name)"], "no reference gradient for \(e.name)"))
            let mine = model.gradients.slice(e.offset, e.count)
            let scale = g.map(abs).max()!
            let worst = zip(mine, g).map { abs($0 - $1) }.max()!
            #expect(worst <= 1e-4 * max(scale, 1e-3), "\(fixture)/\(file) \(e.name): max gradient difference \(worst), scale \(scale)")
        }
    }
}
