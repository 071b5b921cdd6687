import Foundation
import Model
import RolloutActor
import Tasks
import Testing

/// A tiny model trained for a moment on one problem answers it, and the rollout engine scores that.
@Test func rolloutScoresCompletionsWithTheVerifier() throws {
    let tok = CharTokenizer.standard
    let model = try Transformer(config: .tiny())
    model.initialize(seed: 3)
    let problem = Problem(id: 7, prompt: "2+2=", answer: "4", family: "add", level: 1)
    let seq = try PromptFormat.promptTokens(problem, tok) + PromptFormat.answerTokens(problem, tok)
    let batch = TokenBatch(sequences: [seq])
    var w = [Float](repeating: 0, count: seq.count)
    for i in 4..<(seq.count - 1) { w[i] = 1 }  // rows predicting the answer and EOS
    let opt = AdamW(model: model, learningRate: 1e-2)
    for _ in 0..<100 { model.zeroGradients(); _ = try model.loss(batch, .crossEntropy(weights: w)); opt.update(model) }

    let engine = RolloutEngine(model: model, tokenizer: tok)
    let wrong = Problem(id: 8, prompt: "2+2=", answer: "5", family: "add", level: 1)
    let out = try engine.rollout([problem, wrong], samples: 4, options: SamplingOptions(temperature: 0, maxNewTokens: 4))
    #expect(out.count == 2 && out.allSatisfy { $0.completions.count == 4 })
    #expect(out[0].passRate == 1)
    #expect(out[1].passRate == 0)
    #expect(out[0].completions[0].text == "4")
    let report = EvaluationReport(out, samples: 4, temperature: 0)
    #expect(report.accuracy == 0.5 && report.cells.count == 1)
}

@Test func promptsOutsideTheVocabularyAreAClearError() throws {
    let p = Problem(id: 3, prompt: "2×2=", answer: "4")
    #expect(throws: ModelError.self) { try PromptFormat.promptTokens(p, .standard) }
}
