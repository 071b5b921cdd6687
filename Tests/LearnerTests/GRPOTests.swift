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

/// Groups sampled by the step's starting weights skip the π_old pass (r_old = 1); with exact behaviour
/// log-probs that is the same update as recomputing π_old, across several mini-batches. A group of an
/// older version in a mini-batch brings the pass back for that mini-batch.
@Test func onPolicyGroupsSkipThePiOldPassWithTheSameUpdate() throws {
    func makeGroups(_ model: Transformer, version: UInt64) throws -> [TrainingGroup] {
        (0..<4).map { g in
            let prompt: [Int32] = [1, Int32(20 + g), 21]
            let comps: [[Int32]] = [[30, 31, 2], [40, Int32(41 + g), 2], [50, 2]]
            return TrainingGroup(
                promptID: UInt64(g), promptTokens: prompt,
                completions: comps.enumerated().map { k, c in
                    let lp = try! model.targetLogProbs(TokenBatch(sequences: [prompt + c]))
                    return (c, Array(lp[(prompt.count - 1)..<(prompt.count - 1 + c.count)]), Float(k == g % 3 ? 1 : 0))
                },
                weightsVersion: version, actorID: 1000, generationSeconds: 0)
        }
    }
    var s = GRPOSettings()
    s.learningRate = 1e-2
    s.miniBatchGroups = 2
    let a = try Transformer(config: .tiny()), b = try Transformer(config: .tiny())
    a.initialize(seed: 8)
    b.initialize(seed: 8)
    let groups = try makeGroups(a, version: 7)
    let ua = GRPOUpdater(model: a, settings: s), ub = GRPOUpdater(model: b, settings: s)
    let sa = try ua.update(groups, onPolicyVersion: 7)
    let sb = try ub.update(groups)
    #expect(sa.miniBatches == 2 && sb.miniBatches == 2)
    // Without a version every mini-batch counts as older; the first takes π_old from its own forward.
    #expect(sa.oldLogProbBatches == 0 && sb.oldLogProbBatches == 1)
    #expect(sa.behaviourGap == 0, "no π_old pass ran, so no gap was measured")
    #expect(sb.behaviourGap < 1e-5)
    let worst = zip(a.parameters.array, b.parameters.array).map { abs($0 - $1) }.max()!
    #expect(worst < 1e-5, "parameters differ by \(worst)")
    #expect(abs(sa.loss - sb.loss) < 1e-5)
    // A stale group goes into the first mini-batch, which measures π_old in its own forward (a nonzero
    // gap once the weights have moved) and needs no pass.
    var stale = try makeGroups(b, version: 7)
    stale[3].weightsVersion = 6
    _ = try ub.update(stale, onPolicyVersion: 8)
    let sc = try ub.update(stale, onPolicyVersion: 7)
    #expect(sc.behaviourGap > 0)
    #expect(sc.oldLogProbBatches == 0)
    // Older groups interleaved with current ones (as DOTS reference groups rolled out a step early or
    // replayed groups arrive) fill the first mini-batch, then the current ones, then the rest of the older:
    // three older groups of four, one pass (the second mini-batch), where older-last packing needed two.
    var mixed = try makeGroups(b, version: 9)
    for i in [0, 1, 2] { mixed[i].weightsVersion = 8 }
    let d = try Transformer(config: .tiny()), e = try Transformer(config: .tiny())
    d.parameters.copy(from: b.parameters)
    e.parameters.copy(from: b.parameters)
    let sd = try GRPOUpdater(model: d, settings: s).update(mixed, onPolicyVersion: 9)
    #expect(sd.miniBatches == 2 && sd.oldLogProbBatches == 1)
    // The same update as the groups in that order with π_old recomputed for every later mini-batch.
    let se = try GRPOUpdater(model: e, settings: s).update([mixed[0], mixed[1], mixed[3], mixed[2]])
    #expect(se.oldLogProbBatches == 1)
    #expect(d.parameters.array == e.parameters.array)
    // Two older groups of four fill the first mini-batch: no pass at all.
    mixed[1].weightsVersion = 9
    let f = try Transformer(config: .tiny())
    f.parameters.copy(from: b.parameters)
    let sf = try GRPOUpdater(model: f, settings: s).update(mixed, onPolicyVersion: 9)
    #expect(sf.miniBatches == 2 && sf.oldLogProbBatches == 0)
}

/// Computing each group's prompt once for all its completions is the same update as repeating it in
/// front of each completion, across mini-batches and with π_old recomputed.
@Test func sharingPromptsGivesTheSameUpdate() throws {
    let reference = try Transformer(config: .tiny())
    reference.initialize(seed: 5)
    let groups: [TrainingGroup] = (0..<5).map { g in
        let prompt: [Int32] = g == 4 ? [1] : [1, Int32(20 + g), 21, Int32(22 + g)]
        let comps: [[Int32]] = [[30, 31, 2], [40, Int32(41 + g), 2], [50, 2], [33, 2]]
        return TrainingGroup(
            promptID: UInt64(g), promptTokens: prompt,
            completions: comps.enumerated().map { k, c in
                let lp = try! reference.targetLogProbs(TokenBatch(sequences: [prompt + c]))
                // Slightly off-policy behaviour log-probs, so the clip and the π_old pass matter.
                return (c, lp[(prompt.count - 1)..<(prompt.count - 1 + c.count)].map { $0 - 0.05 * Float(k) }, Float((k + g) % 3 == 0 ? 1 : 0))
            },
            weightsVersion: 3, actorID: 1000, generationSeconds: 0)
    }
    func trained(share: Bool) throws -> (Transformer, UpdateStats) {
        var s = GRPOSettings()
        s.learningRate = 1e-2
        s.miniBatchGroups = 2
        s.sharePrompts = share
        let m = try Transformer(config: .tiny())
        m.initialize(seed: 5)
        let stats = try GRPOUpdater(model: m, settings: s).update(groups)
        return (m, stats)
    }
    let (a, sa) = try trained(share: true), (b, sb) = try trained(share: false)
    #expect(sa.miniBatches == 3 && sb.miniBatches == 3 && sa.tokens == sb.tokens)
    #expect(abs(sa.loss - sb.loss) < 1e-5 && abs(sa.behaviourGap - sb.behaviourGap) < 1e-5 && sa.clipFraction == sb.clipFraction)
    let worst = zip(a.parameters.array, b.parameters.array).map { abs($0 - $1) }.max()!
    #expect(worst < 1e-5, "parameters differ by \(worst)")
    let moved = zip(a.parameters.array, reference.parameters.array).map { abs($0 - $1) }.max()!
    #expect(moved > 1e-3, "the update did not move the model")
}

/// The learner's packing (the prompt once, each completion's final token only a target, not a row) gives
/// the update the decoupled loss over whole prompt + completion sequences gives, written out by hand.
@Test(arguments: [false, true])
func packedUpdateEqualsTheLossOverWholeSequences(sharePrompts: Bool) throws {
    let a = try Transformer(config: .tiny()), b = try Transformer(config: .tiny())
    a.initialize(seed: 12)
    b.initialize(seed: 12)
    let prompt: [Int32] = [1, 20, 21, 22]
    let comps: [[Int32]] = [[30, 31, 2], [40], [50, 51, 52, 2]], rewards: [Float] = [1, 0, 0]
    var s = GRPOSettings()
    s.learningRate = 1e-2
    s.temperature = 0.9
    s.sharePrompts = sharePrompts
    // Behaviour log-probs a little off the current weights', so the ratios are not all 1.
    let behaviour = try comps.map { c in
        let lp = try a.targetLogProbs(TokenBatch(sequences: [prompt + c]), temperature: s.temperature)
        return lp[(prompt.count - 1)..<(prompt.count - 1 + c.count)].enumerated().map { $1 - 0.05 * Float($0 + 1) }
    }
    let group = TrainingGroup(promptID: 1, promptTokens: prompt,
                              completions: (0..<3).map { (comps[$0], behaviour[$0], rewards[$0]) },
                              weightsVersion: 0, actorID: 1000, generationSeconds: 0)
    let start = a.parameters.array
    _ = try GRPOUpdater(model: a, settings: s).update([group], onPolicyVersion: 0)

    let whole = TokenBatch(sequences: comps.map { prompt + $0 })
    var adv = [Float](repeating: 0, count: whole.rowCount), beh = adv, mask = adv
    for (j, (c, A)) in zip(comps, groupAdvantages(rewards, divideByStd: s.divideByStd)).enumerated() {
        for k in 0..<c.count {
            let row = whole.seqStarts[j] + prompt.count - 1 + k
            (adv[row], beh[row], mask[row]) = (A, behaviour[j][k], 1)
        }
    }
    let inputs = PPOInputs(advantages: adv, behaviourLogProbs: beh, mask: mask, epsilon: s.clipEpsilon,
                           temperature: s.temperature, normalizer: Float(comps.map(\.count).reduce(0, +)))
    b.zeroGradients()
    _ = try b.loss(whole, .ppoClip(inputs))
    AdamW(model: b, learningRate: s.learningRate, weightDecay: 0, maxGradNorm: s.maxGradNorm).update(b)
    let worst = zip(a.parameters.array, b.parameters.array).map { abs($0 - $1) }.max()!
    let moved = zip(a.parameters.array, start).map { abs($0 - $1) }.max()!
    #expect(moved > 1e-3 && worst < 1e-5, "largest difference \(worst), largest move \(moved)")
}

/// Sharing each mini-batch's groups over threads (replicas of the model, gradients summed) is the same
/// update as one thread: across mini-batches, with π_old passes, an all-equal group, and a second step
/// that the replicas must see the first step's weights for.
@Test(arguments: [2, 3])
func dataParallelSharesGiveTheSameUpdate(threads: Int) throws {
    let reference = try Transformer(config: .tiny())
    reference.initialize(seed: 9)
    let groups: [TrainingGroup] = (0..<7).map { g in
        let prompt: [Int32] = [1, Int32(20 + g), 21, Int32(22 + g)].prefix(g % 3 + 2).map { $0 }
        let comps: [[Int32]] = [[30, 31, 2], [40, Int32(41 + g), 2], [50, 2], [Int32(33 + g), 34, 35, 2]]
        return TrainingGroup(
            promptID: UInt64(g), promptTokens: prompt,
            completions: comps.enumerated().map { k, c in
                let lp = try! reference.targetLogProbs(TokenBatch(sequences: [prompt + c]))
                // Group 5's rewards are all equal: packed, it has no rows, but its tokens count.
                return (c, lp[(prompt.count - 1)..<(prompt.count - 1 + c.count)].map { $0 - 0.04 * Float(k) },
                        g == 5 ? 1 : Float((k + g) % 3 == 0 ? 1 : 0))
            },
            // Groups 0, 1, 4 and 6 are a version older than the step: the first three fill the first
            // mini-batch, group 6 goes last and its mini-batch needs a π_old pass.
            weightsVersion: [0, 1, 4, 6].contains(g) ? 2 : 3, actorID: 1000, generationSeconds: 0)
    }
    func trained(threads: Int) throws -> (Transformer, [UpdateStats]) {
        var s = GRPOSettings()
        s.learningRate = 1e-2
        s.miniBatchGroups = 3
        let m = try Transformer(config: .tiny())
        m.initialize(seed: 9)
        let updater = GRPOUpdater(model: m, settings: s)
        updater.threads = threads
        let stats = [try updater.update(groups, onPolicyVersion: 3), try updater.update(groups, onPolicyVersion: 3)]
        return (m, stats)
    }
    let (a, sa) = try trained(threads: 1), (b, sb) = try trained(threads: threads)
    for (x, y) in zip(sa, sb) {
        #expect(x.miniBatches == 3 && y.miniBatches == 3 && x.tokens == y.tokens)
        #expect(x.oldLogProbBatches == y.oldLogProbBatches && y.oldLogProbBatches > 0)
        #expect(abs(x.loss - y.loss) < 1e-5 && abs(x.clipFraction - y.clipFraction) < 1e-9)
        #expect(abs(x.behaviourGap - y.behaviourGap) < 1e-5 && abs(x.gradNorm - y.gradNorm) < 1e-4)
    }
    let worst = zip(a.parameters.array, b.parameters.array).map { abs($0 - $1) }.max()!
    #expect(worst < 1e-5, "parameters differ by \(worst)")
    let moved = zip(b.parameters.array, reference.parameters.array).map { abs($0 - $1) }.max()!
    #expect(moved > 1e-3, "the update did not move the model")
}
