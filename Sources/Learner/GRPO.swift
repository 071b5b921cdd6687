import Foundation
import Model

/// One rollout group as the learner trains on it: a prompt and its G sampled completions, with the
/// behaviour log-probs recorded at generation and the weights version that generated them.
public struct TrainingGroup: Sendable {
    public var promptID: UInt64
    public var promptTokens: [Int32]
    public var completions: [(tokens: [Int32], logProbs: [Float], reward: Float)]
    public var weightsVersion: UInt64
    public var actorID: UInt64
    public var generationSeconds: Double

    public init(promptID: UInt64, promptTokens: [Int32], completions: [(tokens: [Int32], logProbs: [Float], reward: Float)],
                weightsVersion: UInt64, actorID: UInt64, generationSeconds: Double) {
        self.promptID = promptID
        self.promptTokens = promptTokens
        self.completions = completions
        self.weightsVersion = weightsVersion
        self.actorID = actorID
        self.generationSeconds = generationSeconds
    }

    public var meanReward: Float { completions.map(\.reward).reduce(0, +) / Float(max(1, completions.count)) }
    /// All rewards equal: the group's advantages are all zero and it carries no gradient.
    public var isUninformative: Bool { Set(completions.map(\.reward)).count <= 1 }
}

/// GRPO's group-relative advantage: Aᵢ = (rᵢ − mean) / (std + 1e-6), or rᵢ − mean without the std
/// division (the paper's equation omits it). std is the population standard deviation.
public func groupAdvantages(_ rewards: [Float], divideByStd: Bool = true) -> [Float] {
    let n = Float(rewards.count)
    let mean = rewards.reduce(0, +) / n
    let std = (rewards.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / n).squareRoot()
    return rewards.map { divideByStd ? ($0 - mean) / (std + 1e-6) : $0 - mean }
}

public struct GRPOSettings: Sendable {
    public var learningRate: Float = 5e-5
    /// ε of the PPO clip.
    public var clipEpsilon: Float = 0.2
    /// Groups per optimizer mini-batch; a step's groups are split into ⌈n / this⌉ updates.
    public var miniBatchGroups = 8
    /// The sampling temperature: log-probs are taken under softmax(logits / T), as the actors sampled.
    public var temperature: Float = 1
    public var divideByStd = true
    public var maxGradNorm: Float = 1
    /// Compute each group's prompt once for all its completions (a `TokenBatch` parent) instead of once
    /// per completion: the same loss and gradients, about half the rows on the built-in tasks.
    public var sharePrompts = true
    public init() {}
}

public struct UpdateStats: Sendable {
    /// loss and clipFraction: means over the step's mini-batches; gradNorm: the largest of their
    /// gradient norms before clipping.
    public var loss = 0.0, clipFraction = 0.0, gradNorm = 0.0
    public var tokens = 0, miniBatches = 0
    /// Mean |log π_old − log π_beh| over trained tokens: how off-policy the data was.
    public var behaviourGap = 0.0
    /// Mini-batches that needed the π_old pass (they held a group older than the step's weights and
    /// came after the first mini-batch, which takes π_old from its own forward).
    public var oldLogProbBatches = 0
    /// Rows run forward and backward (shared prompt rows once).
    public var trainedRows = 0
    /// Seconds in the optimizer (summing the shares' gradients and AdamW), of the whole update.
    public var optimizerSeconds = 0.0
}

/// The GRPO update of DESIGN.md: group advantages, π_old recomputed just before the update, then the
/// decoupled PPO-clip loss over mini-batches with AdamW and gradient clipping.
public final class GRPOUpdater: @unchecked Sendable {
    public let model: Transformer
    public let optimizer: AdamW
    public var settings: GRPOSettings
    /// Threads each mini-batch is shared over (data parallelism): its groups are dealt into this many
    /// shares of about equal rows, each share's forward and backward runs on its own replica of the model
    /// (the same parameter buffer; its own activations and gradients) at the same time as the others, the
    /// gradients are summed and one AdamW step follows. The replicas' matrix products run on their own
    /// threads, so OpenBLAS should be set to one (`setComputeThreads(1)`): the elementwise kernels,
    /// attention and the loss then run in parallel too, which BLAS threads alone leave on one core.
    /// 1 (the default): the model alone, one share.
    public var threads = 1 {
        didSet {
            threads = max(1, threads)
            if replicas.count != threads - 1 { replicas = (1..<threads).map { _ in Transformer(sharingParametersOf: model) } }
        }
    }
    private var replicas: [Transformer] = []

    public init(model: Transformer, settings: GRPOSettings) {
        self.model = model
        self.settings = settings
        optimizer = AdamW(model: model, learningRate: settings.learningRate, weightDecay: 0, maxGradNorm: settings.maxGradNorm)
    }

    /// The rows of a mini-batch's sequences: row i predicts token i+1. With `sharePrompts` a group's
    /// prompt but its last token is one parent sequence, and each completion's sequence is that last
    /// token then the completion, so completion token k is predicted by the sequence's row k; otherwise
    /// each sequence is the whole prompt then the completion, and completion token k (at position P + k)
    /// is predicted by row P + k − 1. A completion's final token is only a target (nothing attends to
    /// its row, whose own target would be past the end): it is the sequence's `lastTargets` entry, not
    /// a row, which spares one row of every layer, forward and backward, per completion.
    struct Packed {
        var sequences: [[Int32]] = [], parents: [Int] = [], lastTargets: [Int32] = []
        var advantages: [Float] = [], behaviour: [Float] = [], mask: [Float] = []
        var tokens = 0

        mutating func append(_ sequence: [Int32], parent: Int = -1, lastTarget: Int32 = -1) {
            sequences.append(sequence)
            parents.append(parent)
            lastTargets.append(lastTarget)
            advantages += [Float](repeating: 0, count: sequence.count)
            behaviour += [Float](repeating: 0, count: sequence.count)
            mask += [Float](repeating: 0, count: sequence.count)
        }

        var batch: TokenBatch { TokenBatch(sequences: sequences, parents: parents, lastTargets: lastTargets) }
    }

    func pack(_ groups: [TrainingGroup]) -> Packed {
        var p = Packed()
        for g in groups {
            let adv = groupAdvantages(g.completions.map(\.reward), divideByStd: settings.divideByStd)
            p.tokens += g.completions.map(\.tokens.count).reduce(0, +)
            // A zero advantage contributes nothing but its tokens to the token mean: skip its compute.
            let trained = zip(g.completions, adv).filter { $0.1 != 0 && !$0.0.tokens.isEmpty }
            // Every completion token needs a row before it to predict it: no prompt, nothing to train.
            guard !trained.isEmpty, !g.promptTokens.isEmpty else { continue }
            let promptLen = g.promptTokens.count
            var parent = -1, head = g.promptTokens
            if settings.sharePrompts && promptLen >= 2 {
                parent = p.sequences.count
                p.append(Array(g.promptTokens.dropLast()))
                head = [g.promptTokens[promptLen - 1]]
            }
            for (c, a) in trained {
                let rowStart = p.advantages.count
                p.append(head + c.tokens.dropLast(), parent: parent, lastTarget: c.tokens.last!)
                for k in 0..<c.tokens.count {
                    let row = rowStart + head.count + k - 1
                    p.advantages[row] = a
                    p.behaviour[row] = c.logProbs[k]
                    p.mask[row] = 1
                }
            }
        }
        return p
    }

    /// A mini-batch's groups dealt into `threads` shares of about equal rows (the largest group first,
    /// each to the share with the fewest rows so far), each share packed on its own. Every share's `tokens`
    /// counts its groups' completion tokens, all-equal groups included: the loss divides by their sum.
    func shares(_ groups: [TrainingGroup]) -> [Packed] {
        guard threads > 1 else { return [pack(groups)] }
        let rows = groups.map { pack([$0]).advantages.count }
        var load = [Int](repeating: 0, count: threads), members = [[TrainingGroup]](repeating: [], count: threads)
        for i in groups.indices.sorted(by: { rows[$0] != rows[$1] ? rows[$0] > rows[$1] : $0 < $1 }) {
            let k = load.indices.min { load[$0] < load[$1] }!
            members[k].append(groups[i])
            load[k] += rows[i]
        }
        return members.map(pack)
    }

    /// Runs `body` for every share with rows, share k on model k (the model, then the replicas), all at
    /// once; returns each share's result (nil for an empty share) or throws the first share's error.
    private func eachShare<R>(_ shares: [Packed], _ body: @escaping @Sendable (Transformer, Packed, Int) throws -> R) throws -> [R?] {
        let models = [model] + replicas, results = ShareResults<R>(shares.count)
        let run: @Sendable (Int) -> Void = { k in
            guard !shares[k].sequences.isEmpty else { return }
            results.set(k, Result { try body(models[k], shares[k], k) })
        }
        if shares.count == 1 { run(0) } else { DispatchQueue.concurrentPerform(iterations: shares.count, execute: run) }
        return try results.values.map { try $0?.get() }
    }

    /// One AdamW update from the gradients of the shares that ran (`ran[k]`): the model's own, plus the
    /// replicas', which the optimizer reads in its own passes rather than having them summed first.
    private func applyUpdate(ran: [Bool]) -> Float {
        if !ran[0] { model.zeroGradients() }
        return optimizer.update(model, adding: replicas.indices.filter { ran[$0 + 1] }.map { replicas[$0].gradients })
    }

    /// One GRPO step over `groups` (fresh, lagged or replayed alike). Groups sampled with the weights
    /// the step starts from (`onPolicyVersion`) need no π_old pass: π_old is then π_beh, r_old = 1, and
    /// the loss is plain PPO-clip. A mini-batch with any older group (lagged, replayed, DOTS reference
    /// groups rolled out a step early) needs π_old, the step's starting weights, as DESIGN.md's decoupled
    /// loss asks. The first mini-batch is trained at those very weights, so its own forward gives π_old
    /// and it needs no pass either: older groups fill it first, then the current ones follow, then the
    /// rest of the older ones, each in arrival order, so as few mini-batches as possible need the pass
    /// (with no `onPolicyVersion`, every mini-batch but the first gets it).
    public func update(_ groups: [TrainingGroup], onPolicyVersion: UInt64? = nil) throws -> UpdateStats {
        var stats = UpdateStats()
        let mb = max(1, settings.miniBatchGroups)
        let groups = onPolicyVersion.map { v in
            let older = groups.filter { $0.weightsVersion != v }
            return older.prefix(mb) + groups.filter { $0.weightsVersion == v } + older.dropFirst(mb)
        } ?? groups
        // Each mini-batch as `threads` shares (one, packed whole, without data parallelism).
        var batches: [[Packed]] = [], onPolicy: [Bool] = []
        for start in stride(from: 0, to: groups.count, by: mb) {
            let slice = groups[start..<min(start + mb, groups.count)]
            batches.append(shares(Array(slice)))
            onPolicy.append(onPolicyVersion.map { v in slice.allSatisfy { $0.weightsVersion == v } } ?? false)
        }
        func hasRows(_ b: [Packed]) -> Bool { b.contains { !$0.sequences.isEmpty } }
        // π_old of each mini-batch: π_beh for current groups; for older ones, the log-probs under the
        // weights before this step's first update: the first trained mini-batch's own forward gives
        // them, later ones need a separate pass.
        let first = batches.firstIndex(where: hasRows)
        var old: [[OldPolicy]] = []
        var gapSum = 0.0, gapN = 0
        func addGap(_ lp: [Float], _ b: Packed) {
            for i in 0..<lp.count where b.mask[i] > 0 { gapSum += Double(abs(lp[i] - b.behaviour[i])); gapN += 1 }
        }
        let temperature = settings.temperature
        for (i, (b, fresh)) in zip(batches, onPolicy).enumerated() {
            if !hasRows(b) || fresh { old.append(b.map { _ in .behaviour }); continue }
            if i == first { old.append(b.map { _ in .current }); continue }
            stats.oldLogProbBatches += 1
            let lps = try eachShare(b) { m, share, _ in try m.targetLogProbs(share.batch, temperature: temperature) }
            for (lp, share) in zip(lps, b) { if let lp { addGap(lp, share) } }
            old.append(lps.map { $0.map { .logProbs($0) } ?? .behaviour })
        }
        optimizer.learningRate = settings.learningRate
        let s = settings
        for (b, o) in zip(batches, old) {
            let tokens = b.map(\.tokens).reduce(0, +)
            stats.tokens += tokens
            guard hasRows(b), tokens > 0 else { continue }
            let results = try eachShare(b) { m, share, k in
                let inputs = PPOInputs(advantages: share.advantages, behaviourLogProbs: share.behaviour, old: o[k],
                                       mask: share.mask, epsilon: s.clipEpsilon, temperature: s.temperature,
                                       normalizer: Float(tokens))
                return try m.loss(share.batch, .ppoClip(inputs), gradients: .replace)
            }
            stats.trainedRows += b.map(\.advantages.count).reduce(0, +)
            let optimizerStart = Date()
            stats.gradNorm = max(stats.gradNorm, Double(applyUpdate(ran: results.map { $0 != nil })))
            stats.optimizerSeconds += Date().timeIntervalSince(optimizerStart)
            for (k, r) in results.enumerated() { if let r, case .current = o[k] { addGap(r.logProbs, b[k]) } }
            let ran = results.compactMap { $0 }, counted = ran.map(\.tokens).reduce(0, +)
            stats.loss += ran.map(\.loss).reduce(0, +)
            stats.clipFraction += counted > 0 ? ran.map { $0.clipFraction * Double($0.tokens) }.reduce(0, +) / Double(counted) : 0
            stats.miniBatches += 1
        }
        stats.behaviourGap = gapN > 0 ? gapSum / Double(gapN) : 0
        if stats.miniBatches > 0 {
            stats.loss /= Double(stats.miniBatches)
            stats.clipFraction /= Double(stats.miniBatches)
        }
        return stats
    }
}

/// One slot per share for `eachShare`'s results, in memory allocated up front: each slot is written by
/// one thread only, and nothing else changes while they run.
private final class ShareResults<R>: @unchecked Sendable {
    private let slots: UnsafeMutableBufferPointer<Result<R, any Error>?>
    init(_ n: Int) { slots = .allocate(capacity: n); slots.initialize(repeating: nil) }
    deinit { _ = slots.deinitialize(); slots.deallocate() }
    func set(_ k: Int, _ r: Result<R, any Error>) { slots[k] = r }
    var values: [Result<R, any Error>?] { Array(slots) }
}
