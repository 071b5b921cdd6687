import Foundation
import Model

/// Offline training of the difficulty predictor (`dots predictor train`).
public struct PredictorTrainingSettings: Sendable {
    public var steps = 2000
    /// Query prompts per batch.
    public var batchSize = 256
    /// K: reference prompts per batch, a fresh random set each batch.
    public var references = 128
    /// Adam's peak learning rate (the paper's 1e-3).
    public var learningRate: Float = 1e-3
    /// Linear warm-up over this fraction of the steps, then linear decay to 0.
    public var warmupFraction = 0.05
    public var seed: UInt64 = 0
    public init() {}
}

/// What a trained predictor scores on held-out prompts.
public struct PredictorScore: Sendable, Codable {
    /// Pearson ρ between the prediction (after the linear re-fit, if on) and the measured difficulty.
    public var rho: Double
    /// ρ of the calibrated prediction without the re-fit.
    public var rhoWithoutRefit: Double
    /// Mean absolute error of the prediction, with and without the re-fit.
    public var meanAbsoluteError: Double
    public var meanAbsoluteErrorWithoutRefit: Double
    public var prompts: Int
    public var references: Int
}

public enum PredictorTrainer {
    /// Trains with BCE on soft labels: each step picks a source policy at random, draws K reference
    /// prompts and a batch of query prompts (disjoint) from `rows`, and predicts the queries' difficulty
    /// under that source from the references' difficulty under it. Adam with warm-up then linear decay.
    /// - Parameters:
    ///   - embeddings: (n, dim) frozen prompt embeddings; `labels[s][i]` is prompt i's difficulty under source s.
    ///   - progress: called every step with (step, running mean loss).
    public static func train(_ predictor: DifficultyPredictor, embeddings: [Float], labels: [[Float]], rows: [Int],
                             settings: PredictorTrainingSettings, progress: ((Int, Double) -> Void)? = nil) {
        let dim = predictor.config.embeddingDim
        let k = min(settings.references, rows.count / 2), b = min(settings.batchSize, rows.count - k)
        precondition(k >= 1 && b >= 1 && !labels.isEmpty, "too few labelled prompts to train on")
        var rng = SplitMix64(seed: settings.seed)
        var pool = rows
        var m = [Float](repeating: 0, count: predictor.parameterCount), v = m
        let beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8
        let warmup = max(1, Int(Double(settings.steps) * settings.warmupFraction))
        var running = 0.0
        for step in 1...settings.steps {
            // Partial Fisher–Yates: the first k + b of `pool` are a fresh uniform draw.
            for i in 0..<(k + b) { pool.swapAt(i, i + Int(rng.next() % UInt64(pool.count - i))) }
            let refs = Array(pool[0..<k]), queries = Array(pool[k..<(k + b)])
            let source = Int(rng.next() % UInt64(labels.count))
            let pass = predictor.forward(queries: gatherRows(embeddings, dim: dim, queries),
                                         references: gatherRows(embeddings, dim: dim, refs),
                                         labels: refs.map { labels[source][$0] }, dropoutSeed: rng.next())
            predictor.zeroGradients()
            let loss = predictor.backward(pass, targets: queries.map { labels[source][$0] })
            running = step == 1 ? loss : 0.98 * running + 0.02 * loss
            let lr = step <= warmup ? settings.learningRate * Float(step) / Float(warmup)
                : settings.learningRate * Float(settings.steps - step + 1) / Float(settings.steps - warmup + 1)
            let c1 = 1 - powf(beta1, Float(step)), c2 = 1 - powf(beta2, Float(step))
            predictor.parameters.withUnsafeMutableBufferPointer { p in
                predictor.gradients.withUnsafeBufferPointer { g in
                    for i in 0..<p.count {
                        m[i] = beta1 * m[i] + (1 - beta1) * g[i]
                        v[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i]
                        p[i] -= lr * (m[i] / c1) / ((v[i] / c2).squareRoot() + eps)
                    }
                }
            }
            progress?(step, running)
        }
    }

    /// Scores the predictor: predicts `queryRows` from `referenceRows` (labels from `measured`) and
    /// correlates with the queries' measured difficulty.
    public static func score(_ predictor: DifficultyPredictor, embeddings: [Float], measured: [Float],
                             referenceRows: [Int], queryRows: [Int]) -> PredictorScore {
        let dim = predictor.config.embeddingDim
        let refs = gatherRows(embeddings, dim: dim, referenceRows), labels = referenceRows.map { measured[$0] }
        let queries = gatherRows(embeddings, dim: dim, queryRows)
        let raw = predictor.predict(queries: queries, references: refs, labels: labels, refit: false)
        let fitted = predictor.predict(queries: queries, references: refs, labels: labels, refit: true)
        let truth = queryRows.map { Double(measured[$0]) }
        func mae(_ p: [Float]) -> Double { zip(p, truth).map { abs(Double($0) - $1) }.reduce(0, +) / Double(max(1, truth.count)) }
        return PredictorScore(rho: pearson(fitted.map(Double.init), truth), rhoWithoutRefit: pearson(raw.map(Double.init), truth),
                              meanAbsoluteError: mae(fitted), meanAbsoluteErrorWithoutRefit: mae(raw),
                              prompts: queryRows.count, references: referenceRows.count)
    }
}
