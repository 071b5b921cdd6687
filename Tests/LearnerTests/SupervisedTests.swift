import Foundation
import Model
@testable import Learner
import Tasks
import Testing

@Test func shortPretrainingLowersTheLoss() throws {
    let suite = TaskSuite.builtIn(seed: 1, trainCount: 2_000, testCount: 10)
    let model = try Transformer(config: .tiny())
    model.initialize(seed: 1)
    var s = SupervisedTrainer.Settings()
    s.batchSize = 32
    s.learningRate = 3e-3
    s.warmupSteps = 10
    let trainer = try SupervisedTrainer(model: model, tokenizer: .standard, problems: suite.train, settings: s)
    var first = 0.0, last = 0.0
    for i in 0..<150 {
        let (loss, _) = try trainer.step(progress: Double(i) / 150)
        if i < 10 { first += loss / 10 }
        if i >= 140 { last += loss / 10 }
    }
    #expect(first > 2.5, "initial loss \(first)")
    #expect(last < first * 0.6, "loss \(first) → \(last)")
}

@Test func learningRateWarmsUpAndDecays() throws {
    let model = try Transformer(config: .tiny())
    var s = SupervisedTrainer.Settings()
    s.warmupSteps = 1
    let trainer = try SupervisedTrainer(model: model, tokenizer: .standard,
                                        problems: [Problem(id: 0, prompt: "1+1=", answer: "2")], settings: s)
    #expect(trainer.learningRate(progress: 0.5) == s.learningRate)
    #expect(abs(trainer.learningRate(progress: 1.0) - s.learningRate * s.finalLRFraction) < 1e-9)
}

@Test func aSlipReplacesOneAnswerCharacterByAnotherOfItsKind() throws {
    let tok = CharTokenizer.standard
    var rng = SplitMix64(seed: 7)
    for (prompt, answer) in [("123+45=", "168"), ("sort:dbca=", "abcd"), ("3-45=", "-42")] {
        let promptTokens = try tok.encode(prompt)
        let clean = promptTokens + (try tok.encode(answer, addBOS: false)) + [CharTokenizer.eos]
        for _ in 0..<50 {
            var t = clean
            SupervisedTrainer.slip(&t, answerStart: promptTokens.count, tokenizer: tok, rng: &rng)
            let changed = t.indices.filter { t[$0] != clean[$0] }
            #expect(changed.count == 1, "\(answer) → \(tok.decode(Array(t[promptTokens.count...])))")
            guard let at = changed.first else { continue }
            #expect(at >= promptTokens.count && at < clean.count - 1, "the slip stays in the answer")
            let was = tok.decode([clean[at]]), now = tok.decode([t[at]])
            #expect(was.allSatisfy(\.isNumber) == now.allSatisfy(\.isNumber), "\(was) → \(now) keeps its kind")
            #expect(now != "-")
        }
    }
}

@Test func slipRateSetsTheShareOfCorruptedExamples() throws {
    let problems = [Problem(id: 0, prompt: "12+34=", answer: "46")]
    let model = try Transformer(config: .tiny())
    model.initialize(seed: 1)
    var s = SupervisedTrainer.Settings()
    s.slipRate = 0.3
    s.batchSize = 400
    let trainer = try SupervisedTrainer(model: model, tokenizer: .standard, problems: problems, settings: s)
    let batch = trainer.drawBatch()
    let clean = try CharTokenizer.standard.encode("12+34=46") + [CharTokenizer.eos]
    let slipped = batch.filter { $0.tokens != clean }.count
    // Binomial(400, 0.3): mean 120, sd 9.2; 5 sd either side.
    #expect(abs(slipped - 120) < 46, "\(slipped) of 400 slipped")
}
