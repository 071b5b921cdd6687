import Foundation
import Model
import RolloutActor
import Tasks

/// DOTS in the coordinator: once a round (μ steps), roll out K reference prompts G times with the current
/// weights on the coordinator's own copy of the model, label them (d = 1 − pass rate), predict d̂ for every
/// other candidate prompt, and draw the round's prompts with P ∝ exp(−|d̂ − α|/τ) (`Selection`).
/// Used by one thread at a time (the coordinator's selection thread), hence `@unchecked Sendable`.
public final class DotsSelector: @unchecked Sendable {
    public struct Settings: Sendable {
        /// K.
        public var references = 128
        /// G of the reference rollouts.
        public var groupSize = 8
        /// α, τ.
        public var alpha = 0.5, tau = 1e-3
        public var temperature: Float = 1
        public var maxNewTokens = 10
        /// How predictions are re-fitted on each round's reference set.
        public var refit = DifficultyPredictor.Refit.linear
        public var seed: UInt64 = 0
        public init() {}
    }

    /// One round's outcome: the prompts, in the order to hand them out, and what to log about it.
    /// `record` holds JSON values only (numbers, strings, arrays and objects of them).
    public struct Round: @unchecked Sendable {
        public var prompts: [UInt64]
        public var record: [String: Any]
        /// The reference groups with 0 < pass rate < 1 (training data for the appendix variant).
        public var informative: [ProblemRollout] = []
        public var referenceSeconds = 0.0
        public var referenceCount = 0
    }

    let predictor: DifficultyPredictor
    let settings: Settings
    let pool: [Problem]
    /// Row of each prompt id in `pool`.
    let poolIndex: [UInt64: Int]
    /// (pool, dim) frozen embeddings of the candidate pool.
    let embeddings: [Float]
    /// (pool, h) the pool's query-tower encodings, computed once.
    let encoded: [Float]
    /// The coordinator's own copy of the policy, for reference rollouts done here; nil when the actors do them.
    let engine: RolloutEngine?

    /// - Parameters:
    ///   - predictorDir: a `dots predictor train` folder (adapter, its embedder, its embedding cache).
    ///   - pool: the candidate prompts (the train split, or a subset of it).
    ///   - modelCheckpoint: gives the policy's shape; the weights are replaced each round. Loaded only when
    ///     `rolloutsHere` (reference rollouts on the coordinator).
    public init(predictorDir: URL, pool: [Problem], modelCheckpoint: URL, settings: Settings, rolloutsHere: Bool = true) throws {
        guard settings.references < pool.count else {
            throw ModelError.input("DOTS needs more candidate prompts (\(pool.count)) than reference prompts K = \(settings.references).")
        }
        (predictor, _) = try DifficultyPredictor.load(from: predictorDir)
        let emb = try PromptEmbeddings.cached(pool, embedder: predictorDir.appendingPathComponent("embedder"),
                                              cacheDir: predictorDir.appendingPathComponent("embeddings"))
        guard emb.dim == predictor.config.embeddingDim else {
            throw ModelError.checkpoint("The predictor in \(predictorDir.path) expects \(predictor.config.embeddingDim)-wide embeddings but its embedder gives \(emb.dim).")
        }
        embeddings = emb.values
        encoded = predictor.encodeQueries(emb.values)
        self.pool = pool
        poolIndex = Dictionary(pool.enumerated().map { (UInt64($0.element.id), $0.offset) }, uniquingKeysWith: { a, _ in a })
        self.settings = settings
        if rolloutsHere {
            let (model, tok) = try Checkpoint.load(modelCheckpoint)
            engine = RolloutEngine(model: model, tokenizer: tok)
        } else {
            engine = nil
        }
    }

    /// A round's K reference prompts: the first half of a round, drawn from the round's seeded stream.
    public struct ReferenceDraw: Sendable {
        public var round: Int
        /// Rows of `pool`.
        public var rows: [Int]
        /// The prompt ids of `rows`, in the same order.
        public var promptIDs: [UInt64]
        /// Rows of `pool` not in the reference set: the candidates, in the draw's order.
        var candidates: [Int]
        /// Seed of the coordinator's own reference rollouts.
        public var samplingSeed: UInt64
        /// The round's stream after the reference draw: the selection draw continues it, so a round picks
        /// the same prompts from the same labels wherever its reference rollouts ran.
        var rng: SplitMix64
    }

    /// K reference prompts for round `round`, uniformly (the same draw in both reference_rollouts modes).
    public func referenceDraw(round: Int) -> ReferenceDraw {
        var rng = SplitMix64.stream(seed: settings.seed &+ 0xD075, index: UInt64(round))
        var order = Array(pool.indices)
        for i in 0..<settings.references { order.swapAt(i, i + Int(rng.next() % UInt64(order.count - i))) }
        let rows = Array(order[0..<settings.references])
        let seed = rng.next()
        return ReferenceDraw(round: round, rows: rows, promptIDs: rows.map { UInt64(pool[$0].id) },
                             candidates: Array(order[settings.references...]), samplingSeed: seed, rng: rng)
    }

    /// The problem of a prompt id in the candidate pool, if it is there.
    public func problem(id: UInt64) -> Problem? { poolIndex[id].map { pool[$0] } }

    /// Selects `count` prompts for round `round`, rolling its reference prompts out here with the policy
    /// `weights` (version `version`): `training.reference_rollouts = "coordinator"`.
    public func select(count: Int, round: Int, weights: [Float], version: UInt64) throws -> Round {
        guard let engine else {
            throw ModelError.input("this selector was made for reference rollouts on the actors; it holds no model to roll out with")
        }
        guard weights.count == engine.model.parameterCount else {
            throw ModelError.input("weights version \(version) has \(weights.count) parameters, the coordinator's model \(engine.model.parameterCount)")
        }
        engine.model.parameters.write(weights, at: 0)
        let draw = referenceDraw(round: round)
        let t0 = Date()
        let opts = SamplingOptions(temperature: settings.temperature, maxNewTokens: settings.maxNewTokens, seed: draw.samplingSeed)
        let refRollouts = try engine.rollout(draw.rows.map { pool[$0] }, samples: settings.groupSize, options: opts)
        var round = select(count: count, draw: draw, labels: refRollouts.map { Float(1 - $0.passRate) },
                           version: version, referenceSeconds: Date().timeIntervalSince(t0))
        round.informative = refRollouts.filter { $0.passRate > 0 && $0.passRate < 1 }
        return round
    }

    /// The second half of a round: given the reference prompts' measured difficulties (d = 1 − pass rate,
    /// in `draw.rows` order), predicts d̂ for every other candidate and draws `count` prompts.
    public func select(count: Int, draw: ReferenceDraw, labels: [Float], version: UInt64, referenceSeconds: Double) -> Round {
        precondition(labels.count == draw.rows.count)
        var rng = draw.rng
        let dim = predictor.config.embeddingDim
        let refRows = draw.rows, candidates = draw.candidates

        // d̂ for every other candidate.
        let t1 = Date()
        let refZ = gatherRows(embeddings, dim: dim, refRows)
        let predicted = predictor.predict(encodedQueries: gatherRows(encoded, dim: predictor.config.outputDim, candidates),
                                          references: refZ, labels: labels, mode: settings.refit)
        let loo = predictor.forward(queries: refZ, references: refZ, labels: labels, excludeSelf: true).output
        let predictSeconds = Date().timeIntervalSince(t1)

        var picked = Selection.draw(difficulties: predicted, count: count, alpha: settings.alpha, tau: settings.tau, rng: &rng)
        picked.shuffle(using: &rng)
        let chosen = picked.map { predicted[$0] }
        let mean = { (x: [Float]) in x.isEmpty ? 0 : Double(x.reduce(0, +)) / Double(x.count) }
        let record: [String: Any] = [
            "round": draw.round, "weights_version": version, "references": refRows.count, "reference_group_size": settings.groupSize,
            "candidates": candidates.count, "selected": picked.count,
            "seconds": ["reference_rollouts": referenceSeconds, "prediction": predictSeconds],
            "reference_mean_difficulty": mean(labels),
            "reference_frac_effective": Double(labels.filter { $0 > 0 && $0 < 1 }.count) / Double(labels.count),
            "reference_loo_rho": pearson(loo.map(Double.init), labels.map(Double.init)),
            "predicted_mean_difficulty_all": mean(predicted),
            "predicted_mean_difficulty_selected": mean(chosen),
            "predicted_mean_abs_gap_selected": chosen.isEmpty ? 0 : chosen.map { abs(Double($0) - settings.alpha) }.reduce(0, +) / Double(chosen.count),
        ]
        return Round(prompts: picked.map { UInt64(pool[candidates[$0]].id) }, record: record,
                     referenceSeconds: referenceSeconds, referenceCount: refRows.count)
    }
}
