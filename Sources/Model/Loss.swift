import Foundation

/// What a training step optimises, per row of a `TokenBatch` (row i predicts token i+1 of its sequence;
/// the last row of each sequence has no target and is ignored).
public enum Objective: Sendable {
    /// Σᵢ wᵢ·CEᵢ / Σᵢ wᵢ: weighted mean next-token cross-entropy (supervised training; weight 0 = not trained).
    case crossEntropy(weights: [Float])
    /// The decoupled PPO-clip loss of DESIGN.md, token-mean.
    case ppoClip(PPOInputs)
}

/// Inputs of the decoupled PPO-clip loss: r = π_θ/π_beh, r_old = π_old/π_beh,
/// Lᵢ = max(−Aᵢ·r, −Aᵢ·clamp(r, r_old(1−ε), r_old(1+ε))), summed over rows with mask > 0 and divided by
/// `normalizer` (the number of masked rows when nil, i.e. a token mean). Log-probs are of the row's target
/// under softmax(logits / temperature), the distribution the actor sampled from.
public struct PPOInputs: Sendable {
    public var advantages: [Float]
    public var behaviourLogProbs: [Float]
    /// Where π_old comes from.
    public var old: OldPolicy
    public var mask: [Float]
    public var epsilon: Float
    public var temperature: Float
    public var normalizer: Float?

    public init(advantages: [Float], behaviourLogProbs: [Float], old: OldPolicy = .behaviour, mask: [Float],
                epsilon: Float = 0.2, temperature: Float = 1, normalizer: Float? = nil) {
        self.advantages = advantages
        self.behaviourLogProbs = behaviourLogProbs
        self.old = old
        self.mask = mask
        self.epsilon = epsilon
        self.temperature = temperature
        self.normalizer = normalizer
    }
}

/// π_old of the decoupled PPO-clip loss.
public enum OldPolicy: Sendable {
    /// π_old = π_beh: fresh on-policy data, r_old = 1.
    case behaviour
    /// π_old's log-probs per row, recomputed just before the update.
    case logProbs([Float])
    /// The weights this loss is evaluated at (a step's first mini-batch, before any update): r_old = r,
    /// held constant, exactly what a separate pass at these weights would give.
    case current
}

public struct LossResult: Sendable {
    public var loss: Double
    /// log π_θ(target) of every row under the objective's temperature (0 for rows without a target).
    public var logProbs: [Float]
    /// Rows that contributed (weight or mask > 0, with a target).
    public var tokens: Int
    /// PPO only: the fraction of contributing rows whose gradient was cut by the clip.
    public var clipFraction: Double
}

extension Transformer {
    /// Forward, loss, and (unless `backward` is false) the backward pass, adding into `gradients`, or
    /// writing over them with `gradients: .replace` (no separate zeroing pass needed).
    public func loss(_ batch: TokenBatch, _ objective: Objective, backward: Bool = true,
                     gradients mode: GradientMode = .accumulate) throws -> LossResult {
        let n = batch.rowCount, vocab = config.vocabSize
        func checkCount(_ a: [Float], _ what: String) throws {
            if a.count != n { throw ModelError.input("\(what) has \(a.count) entries for a batch of \(n) tokens.") }
        }
        let temperature: Float
        switch objective {
        case .crossEntropy(let w):
            try checkCount(w, "The loss weight array")
            temperature = 1
        case .ppoClip(let pi):
            try checkCount(pi.advantages, "The advantage array")
            try checkCount(pi.behaviourLogProbs, "The behaviour log-prob array")
            try checkCount(pi.mask, "The loss mask")
            if case .logProbs(let old) = pi.old { try checkCount(old, "The old log-prob array") }
            guard pi.temperature > 0 else { throw ModelError.input("The PPO temperature must be positive.") }
            temperature = pi.temperature
        }
        let logits = try forward(batch)
        let targets = batch.targets
        // dLoss/dlogits in a buffer kept between steps (a fresh array this size costs page faults each step).
        let dLogits = lossScratch.reserve(backward ? n * vocab : 0)
        if backward { dLogits.update(repeating: 0, count: n * vocab) }
        var logProbs = [Float](repeating: 0, count: n)
        var probs = [Float](repeating: 0, count: vocab)
        let invT = 1 / temperature
        var total = 0.0, count = 0, clipped = 0

        // First pass: log-probs of the targets (and the softmax, per row, recomputed in the second pass).
        func rowSoftmax(_ i: Int) -> Float {
            let z = logits.baseAddress! + i * vocab
            let mx = rowMax(z, vocab) * invT  // T > 0
            let sum = probs.withUnsafeMutableBufferPointer { expShiftSum($0.baseAddress!, z, shift: mx, scale: invT, vocab) }
            let inv = 1 / sum
            for j in 0..<vocab { probs[j] *= inv }
            return z[Int(targets[i])] * invT - mx - logf(sum)
        }
        // dL/dz_j = coeff · (p_j − 1[j = target]) / T for a loss whose derivative in log π(target) is −coeff.
        func addGradient(_ i: Int, _ coeff: Float) {
            guard backward, coeff != 0 else { return }
            let t = Int(targets[i])
            for j in 0..<vocab { dLogits[i * vocab + j] = coeff * invT * (probs[j] - (j == t ? 1 : 0)) }
        }

        switch objective {
        case .crossEntropy(let w):
            var wsum: Float = 0
            for i in 0..<n where targets[i] >= 0 && w[i] > 0 { wsum += w[i] }
            for i in 0..<n where targets[i] >= 0 {
                let lp = rowSoftmax(i)
                logProbs[i] = lp
                guard w[i] > 0 else { continue }
                total += Double(-lp * w[i] / wsum)
                count += 1
                addGradient(i, w[i] / wsum)
            }
        case .ppoClip(let pi):
            var active = 0
            for i in 0..<n where targets[i] >= 0 && pi.mask[i] > 0 { active += 1 }
            let norm = pi.normalizer ?? Float(max(active, 1))
            for i in 0..<n where targets[i] >= 0 {
                let lp = rowSoftmax(i)
                logProbs[i] = lp
                guard pi.mask[i] > 0 else { continue }
                let adv = pi.advantages[i], beh = pi.behaviourLogProbs[i]
                let r = expf(lp - beh)
                let rOld: Float
                switch pi.old {
                case .behaviour: rOld = 1
                case .logProbs(let old): rOld = expf(old[i] - beh)
                case .current: rOld = r
                }
                let clampedR = min(max(r, rOld * (1 - pi.epsilon)), rOld * (1 + pi.epsilon))
                let unclippedLoss = -adv * r, clippedLoss = -adv * clampedR
                let m = pi.mask[i] / norm
                count += 1
                if unclippedLoss >= clippedLoss {
                    total += Double(unclippedLoss * m)
                    // d(−A·r)/d log π = −A·r
                    addGradient(i, adv * r * m)
                } else {
                    total += Double(clippedLoss * m)
                    clipped += 1
                }
            }
        }
        if backward {
            self.backward(dLogits: dLogits, gradients: mode)
        }
        return LossResult(loss: total, logProbs: logProbs, tokens: count,
                          clipFraction: count > 0 ? Double(clipped) / Double(count) : 0)
    }

    /// log p(tokens[i+1] | tokens[0…i]) of every row at `temperature`, without touching gradients.
    public func targetLogProbs(_ batch: TokenBatch, temperature: Float = 1) throws -> [Float] {
        let w = [Float](repeating: 0, count: batch.rowCount)
        if temperature == 1 {
            return try loss(batch, .crossEntropy(weights: w), backward: false).logProbs
        }
        let inputs = PPOInputs(advantages: w, behaviourLogProbs: w, mask: w, temperature: temperature)
        return try loss(batch, .ppoClip(inputs), backward: false).logProbs
    }
}
