import Foundation
import Model
import Learner
import Testing

@Test func advantagesAreGroupRelative() {
    let a = groupAdvantages([1, 0, 0, 1])
    #expect(a.map { ($0 * 1000).rounded() / 1000 } == [1, -1, -1, 1])
    #expect(groupAdvantages([1, 1, 1]).allSatisfy { $0 == 0 })
    let b = groupAdvantages([1, 0, 0, 0], divideByStd: false)
    #expect(b == [0.75, -0.25, -0.25, -0.25])
}

/// Rewarding one completion and penalising another moves the policy towards the rewarded one.
@Test func grpoUpdateRaisesTheRewardedCompletion() throws {
    let model = try Transformer(config: .tiny())
    model.initialize(seed: 5)
    let prompt: [Int32] = [1, 20, 21]
    let good: [Int32] = [30, 31, 2], bad: [Int32] = [40, 41, 2]
    func logProb(_ c: [Int32]) throws -> Float {
        let lp = try model.targetLogProbs(TokenBatch(sequences: [prompt + c]))
        return lp[(prompt.count - 1)..<(prompt.count - 1 + c.count)].reduce(0, +)
    }
    let behGood = try model.targetLogProbs(TokenBatch(sequences: [prompt + good]))
    let behBad = try model.targetLogProbs(TokenBatch(sequences: [prompt + bad]))
    let group = TrainingGroup(
        promptID: 1, promptTokens: prompt,
        completions: [(good, Array(behGood[2..<5]), 1), (bad, Array(behBad[2..<5]), 0)],
        weightsVersion: 0, actorID: 1000, generationSeconds: 0)
    var s = GRPOSettings()
    s.learningRate = 1e-2
    let updater = GRPOUpdater(model: model, settings: s)
    let before = (try logProb(good), try logProb(bad))
    for _ in 0..<5 { _ = try updater.update([group]) }
    let after = (try logProb(good), try logProb(bad))
    #expect(after.0 > before.0 + 0.5, "good: \(before.0) → \(after.0)")
    #expect(after.1 < before.1 - 0.5, "bad: \(before.1) → \(after.1)")
}

/// For fresh on-policy data (behaviour = current) the decoupled loss is PPO-clip at r = 1: −mean(A).
@Test func onPolicyLossIsMinusMeanAdvantage() throws {
    let model = try Transformer(config: .tiny())
    model.initialize(seed: 6)
    let seq: [Int32] = [1, 10, 11, 12, 2]
    let lp = try model.targetLogProbs(TokenBatch(sequences: [seq]))
    let adv: [Float] = [0, 0.5, 0.5, -1, 0], mask: [Float] = [0, 1, 1, 1, 0]
    let r = try model.loss(TokenBatch(sequences: [seq]), .ppoClip(PPOInputs(advantages: adv, behaviourLogProbs: lp, mask: mask)), backward: false)
    #expect(abs(r.loss - 0) < 1e-5)  // −(0.5 + 0.5 − 1)/3
    // Replayed data: behaviour log-probs 0.3 lower than now → r = e^0.3 > 1 + ε: clipped for A > 0.
    let beh = lp.map { $0 - 0.3 }
    let r2 = try model.loss(TokenBatch(sequences: [seq]), .ppoClip(PPOInputs(advantages: adv, behaviourLogProbs: beh, mask: mask)), backward: false)
    // Hand computation: A>0 rows → −A·clamp(r)=−0.5·1.2 each; A<0 row → max(1·e^0.3, 1·1.2) = e^0.3.
    let expected = (-0.5 * 1.2 * 2 + exp(0.3)) / 3
    #expect(abs(r2.loss - expected) < 1e-4, "\(r2.loss) vs \(expected)")
    #expect(abs(r2.clipFraction - 2.0 / 3) < 1e-9)
}
