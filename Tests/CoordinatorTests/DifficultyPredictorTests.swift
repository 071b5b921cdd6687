import Foundation
import Model
import Testing
@testable import Coordinator

private func gaussians(_ n: Int, _ rng: inout SplitMix64, scale: Float = 1) -> [Float] {
    (0..<n).map { _ in scale * rng.nextGaussian() }
}

@Test("Predictor backward matches central finite differences for every parameter")
func predictorGradientCheck() {
    let config = PredictorConfig(embeddingDim: 6, hiddenDim: 8, outputDim: 5, calibrationHidden: 10, dropout: 0)
    let p = DifficultyPredictor(config: config)
    p.initialize(seed: 3)
    var rng = SplitMix64(seed: 11)
    // Move every parameter off its special initial value (unit gains, zero biases, near-identity head).
    for i in p.parameters.indices { p.parameters[i] += 0.3 * rng.nextGaussian() }
    let n = 4, k = 5
    let queries = gaussians(n * 6, &rng), refs = gaussians(k * 6, &rng)
    let labels: [Float] = [0.1, 0.35, 0.5, 0.8, 0.9], targets: [Float] = [0, 0.25, 0.6, 1]

    p.zeroGradients()
    let pass = p.forward(queries: queries, references: refs, labels: labels)
    p.backward(pass, targets: targets)
    let analytic = p.gradients
    let scale = analytic.map(abs).max()!
    #expect(scale > 1e-3)
    func loss() -> Double { DifficultyPredictor.bce(p.forward(queries: queries, references: refs, labels: labels), targets: targets) }
    let h: Float = 1e-2
    var worst = 0.0
    for i in p.parameters.indices {
        let keep = p.parameters[i]
        p.parameters[i] = keep + h; let up = loss()
        p.parameters[i] = keep - h; let down = loss()
        p.parameters[i] = keep
        let numeric = Float((up - down) / Double(2 * h))
        let tol = 3e-2 * max(abs(analytic[i]), 0.05 * scale) + 1e-4
        worst = max(worst, Double(abs(analytic[i] - numeric) / tol))
        #expect(abs(analytic[i] - numeric) <= tol, "parameter \(i): analytic \(analytic[i]) vs finite difference \(numeric)")
    }
    #expect(worst <= 1)
}

@Test("Leave-one-out attention never looks at the prompt itself")
func leaveOneOutExcludesSelf() {
    let p = DifficultyPredictor(config: PredictorConfig(embeddingDim: 4, hiddenDim: 8, outputDim: 4, dropout: 0))
    p.initialize(seed: 1)
    var rng = SplitMix64(seed: 2)
    let refs = gaussians(3 * 4, &rng)
    let pass = p.forward(queries: refs, references: refs, labels: [0.2, 0.5, 0.9], excludeSelf: true)
    for i in 0..<3 { #expect(pass.probs[i * 3 + i] == 0) }
}

@Test("Trained on synthetic embeddings with known difficulty, the predictor recovers it on held-out prompts")
func predictorRecoversSyntheticDifficulty() {
    var rng = SplitMix64(seed: 5)
    let dim = 16, n = 1200
    let z = gaussians(n * dim, &rng)
    let w = gaussians(dim, &rng, scale: 0.6)
    // Three "source policies" of different strength: the same ordering of prompts, shifted.
    func difficulty(_ i: Int, shift: Float) -> Float {
        let s = (0..<dim).reduce(Float(0)) { $0 + w[$1] * z[i * dim + $1] }
        return 1 / (1 + expf(-(s + shift)))
    }
    let labels = [-1, 0, 1].map { shift in (0..<n).map { difficulty($0, shift: Float(shift)) } }
    let train = Array(0..<1000), heldOut = Array(1000..<n)
    let p = DifficultyPredictor(config: PredictorConfig(embeddingDim: dim, hiddenDim: 32, outputDim: 16, dropout: 0.1))
    p.initialize(seed: 7)
    var settings = PredictorTrainingSettings()
    settings.steps = 400
    settings.batchSize = 64
    settings.references = 64
    settings.learningRate = 3e-3
    PredictorTrainer.train(p, embeddings: z, labels: labels, rows: train, settings: settings)
    // A policy it never saw (shift 0.5), judged only through 64 labelled references.
    let unseen = (0..<n).map { difficulty($0, shift: 0.5) }
    let score = PredictorTrainer.score(p, embeddings: z, measured: unseen, referenceRows: Array(0..<64), queryRows: heldOut)
    #expect(score.rho > 0.9, "ρ = \(score.rho) (without re-fit \(score.rhoWithoutRefit))")
    #expect(score.meanAbsoluteError < 0.1, "MAE = \(score.meanAbsoluteError)")
}

@Test("The selection draw follows P ∝ exp(−|d̂ − α|/τ) (chi-square, seeded)")
func selectionDistribution() {
    let d: [Float] = [0, 0.1, 0.2, 0.3, 0.45, 0.5, 0.6, 0.75, 0.9, 1]
    let alpha = 0.5, tau = 0.2
    let w = d.map { exp(Selection.logWeight(difficulty: $0, alpha: alpha, tau: tau)) }
    let total = w.reduce(0, +)
    var counts = [Int](repeating: 0, count: d.count)
    var rng = SplitMix64(seed: 42)
    let trials = 20_000
    for _ in 0..<trials { counts[Selection.draw(difficulties: d, count: 1, alpha: alpha, tau: tau, rng: &rng)[0]] += 1 }
    var chi2 = 0.0
    for i in d.indices {
        let expected = Double(trials) * w[i] / total
        chi2 += (Double(counts[i]) - expected) * (Double(counts[i]) - expected) / expected
    }
    // 9 degrees of freedom: P(χ² > 27.9) = 0.001.
    #expect(chi2 < 27.9, "χ² = \(chi2), counts \(counts)")
}

@Test("Selection draws without replacement, and with the paper's τ = 1e-3 takes the prompts nearest α")
func selectionWithoutReplacement() {
    var rng = SplitMix64(seed: 1)
    let d: [Float] = (0..<100).map { Float($0) / 99 }
    let some = Selection.draw(difficulties: d, count: 60, alpha: 0.5, tau: 1, rng: &rng)
    #expect(Set(some).count == 60)
    let sharp = Selection.draw(difficulties: d, count: 10, alpha: 0.5, tau: 1e-3, rng: &rng)
    #expect(Set(sharp) == Set(45...54))
}

@Test("A saved predictor loads back identical; a bad folder is one clear sentence")
func predictorSaveLoad() throws {
    let p = DifficultyPredictor(config: PredictorConfig(embeddingDim: 4, hiddenDim: 6, outputDim: 3))
    p.initialize(seed: 9)
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dots-predictor-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: dir) }
    try p.save(to: dir, info: ["note": "test"])
    let (q, info) = try DifficultyPredictor.load(from: dir)
    #expect(q.parameters == p.parameters && q.config == p.config)
    #expect(info["note"] as? String == "test")
    do {
        _ = try DifficultyPredictor.load(from: dir.appendingPathComponent("nope"))
        Issue.record("loading a missing folder succeeded")
    } catch {
        #expect("\(error)".contains("No predictor folder"))
    }
}

@Test("Predicting from cached query encodings gives the same result as from embeddings")
func encodedQueriesMatch() {
    let p = DifficultyPredictor(config: PredictorConfig(embeddingDim: 8, hiddenDim: 12, outputDim: 6))
    p.initialize(seed: 4)
    var rng = SplitMix64(seed: 8)
    let q = gaussians(10 * 8, &rng), r = gaussians(5 * 8, &rng)
    let labels: [Float] = [0.1, 0.3, 0.5, 0.7, 1]
    let a = p.predict(queries: q, references: r, labels: labels, refit: true)
    let b = p.predict(encodedQueries: p.encodeQueries(q), references: r, labels: labels, mode: .linear)
    #expect(zip(a, b).allSatisfy { abs($0 - $1) < 1e-6 })
}

@Test("The isotonic re-fit is monotone and follows a curved relation")
func isotonicRefit() {
    // Measured difficulty is a step of the prediction, with one violator.
    let x: [Float] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
    let y: [Float] = [0, 0, 0.2, 0.1, 0.9, 1, 1, 1]
    let (xs, ys) = DifficultyPredictor.isotonicFit(predicted: x, measured: y)
    #expect(zip(ys, ys.dropFirst()).allSatisfy { $0 <= $1 })
    #expect(abs(DifficultyPredictor.interpolate(0.35, xs, ys) - 0.15) < 1e-6)  // the pooled violators
    #expect(DifficultyPredictor.interpolate(0.0, xs, ys) == 0 && DifficultyPredictor.interpolate(0.9, xs, ys) == 1)
}

@Test("The linear re-fit maps a rising line and refuses a falling one (predictions then used as they are)")
func linearRefitRefusesAFallingLine() throws {
    let x: [Float] = [0.1, 0.3, 0.5, 0.7, 0.9]
    let rising = try #require(DifficultyPredictor.linearCalibration(predicted: x, measured: x.map { 0.5 * $0 + 0.2 }))
    #expect(abs(rising(0.6) - 0.5) < 1e-6)
    #expect(rising(10) == 1 && rising(-10) == 0)  // clamped to a difficulty
    // References whose measured difficulty falls as the prediction rises: a flipped map would select the
    // prompts furthest from the target.
    #expect(DifficultyPredictor.linearCalibration(predicted: x, measured: x.map { 1 - $0 }) == nil)
    #expect(DifficultyPredictor.linearCalibration(predicted: [0.4, 0.4, 0.4], measured: [0, 0.5, 1]) == nil)
}

/// The committed predictor (what `cluster.conf` points `training.predictor` at) loads, its embedder link
/// resolves to a checkpoint as wide as the predictor's embeddings, and its prediction is a difficulty.
@Test("The committed checkpoints/predictor loads with its embedder")
func committedPredictorLoads() throws {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let dir = root.appendingPathComponent("checkpoints/predictor")
    let (p, info) = try DifficultyPredictor.load(from: dir)
    #expect(info["embedder"] as? String == "embedder")
    let (embedder, _) = try Checkpoint.load(dir.appendingPathComponent("embedder"))
    #expect(embedder.config.hiddenSize == p.config.embeddingDim)
    var rng = SplitMix64(seed: 3)
    let d = p.predict(queries: gaussians(4 * p.config.embeddingDim, &rng), references: gaussians(6 * p.config.embeddingDim, &rng),
                      labels: [0, 0.2, 0.4, 0.6, 0.8, 1], refit: false)
    #expect(d.count == 4 && d.allSatisfy { $0 >= 0 && $0 <= 1 })
}
