import Foundation
import Model
import Learner
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
