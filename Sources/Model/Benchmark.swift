import Foundation

/// The measurements behind `dots bench model`: training and batched decode of the `small` model, and
/// OpenBLAS's own sgemm peak in the same process on the same thread count, so the ratio is fair.
public struct ModelBenchmark: Sendable {
    public enum Measurement: String, CaseIterable, Sendable { case peak, training, decode }

    public var parameters = 0, matmulParameters = 0
    public var sgemmPeakGFLOPs = 0.0
    public var trainTokensPerSecond = 0.0, trainGFLOPs = 0.0
    /// Mean milliseconds per training step in each phase.
    public var trainMillis = (forward: 0.0, backward: 0.0, optimizer: 0.0)
    public var decodeTokensPerSecond = 0.0, decodeGFLOPs = 0.0

    /// The three measurements run in `rounds` interleaved rounds (sgemm, training, decode, then again),
    /// and each keeps its fastest repetition (one product, one training step, one batched generation):
    /// a host shared with other work slows whichever repetition it lands on, and interleaving gives the
    /// peak and the model the same chances, so the ratio stays fair.
    /// - Parameter phase: called as each window starts (index 0 ..< 3·rounds, its name), for a progress
    ///   display; each takes about `seconds` / `rounds`.
    /// - Parameter only: measure just these (for profiling one of them); the others stay 0.
    public static func run(seconds: Double, rounds: Int = 4, only: Set<Measurement> = Set(Measurement.allCases),
                           phase: (Int, String) -> Void = { _, _ in }) throws -> ModelBenchmark {
        var r = ModelBenchmark()
        let window = seconds / Double(max(1, rounds))
        let model = try Transformer(config: .small())
        model.initialize(seed: 1)
        r.parameters = model.parameterCount
        let p = Double(model.layout.matmulParameterCount)
        r.matmulParameters = Int(p)

        // Training: batch 32 × 64, cross-entropy, forward + backward + AdamW.
        var rng = SplitMix64(seed: 7)
        let vocab = model.config.vocabSize
        func randomToken() -> Int32 { Int32(4 + Int(rng.next() % UInt64(vocab - 4))) }
        let batch = TokenBatch(sequences: (0..<32).map { _ in (0..<64).map { _ in randomToken() } })
        let weights = [Float](repeating: 1, count: batch.rowCount)
        let opt = AdamW(model: model, learningRate: 1e-4)
        func trainStep() throws {
            _ = try model.loss(batch, .crossEntropy(weights: weights), gradients: .replace)
            opt.update(model)
        }
        // Decode: 256 sequences, 16-token prompts, 32 new tokens each, temperature 1.
        let prompts = (0..<256).map { _ in [CharTokenizer.bos] + (0..<15).map { _ in randomToken() } }
        let opts = SamplingOptions(temperature: 1, maxNewTokens: 32, stopToken: nil, seed: 3)
        try trainStep()
        _ = try model.generate(prompts: prompts, options: opts)

        for round in 0..<max(1, rounds) {
            phase(3 * round, "sgemm peak")
            if only.contains(.peak) { r.sgemmPeakGFLOPs = max(r.sgemmPeakGFLOPs, sgemmPeak(seconds: window)) }
            phase(3 * round + 1, "training")
            var start = Date()
            if only.contains(.training) { repeat {
                let t0 = Date()
                try trainStep()
                r.trainTokensPerSecond = max(r.trainTokensPerSecond, Double(batch.rowCount) / Date().timeIntervalSince(t0))
            } while Date().timeIntervalSince(start) < window }
            phase(3 * round + 2, "decode")
            start = Date()
            if only.contains(.decode) { repeat {
                let t0 = Date()
                _ = try model.generate(prompts: prompts, options: opts)
                r.decodeTokensPerSecond = max(r.decodeTokensPerSecond, Double(256 * 32) / Date().timeIntervalSince(t0))
            } while Date().timeIntervalSince(start) < window }
        }
        r.trainGFLOPs = 6 * p * r.trainTokensPerSecond / 1e9
        r.decodeGFLOPs = 2 * p * r.decodeTokensPerSecond / 1e9

        // The phase split of a training step, from three separately instrumented steps.
        var fwd = 0.0, bwd = 0.0, upd = 0.0
        for _ in 0..<3 {
            let t0 = Date()
            _ = try model.loss(batch, .crossEntropy(weights: weights), backward: false)
            let t1 = Date()
            _ = try model.loss(batch, .crossEntropy(weights: weights), gradients: .replace)
            let t2 = Date()
            opt.update(model)
            let t3 = Date()
            fwd += t1.timeIntervalSince(t0)
            bwd += t2.timeIntervalSince(t1) - t1.timeIntervalSince(t0)
            upd += t3.timeIntervalSince(t2)
        }
        r.trainMillis = (fwd / 3 * 1000, bwd / 3 * 1000, upd / 3 * 1000)
        return r
    }

    public func table(threads: Int) -> String {
        let peak = sgemmPeakGFLOPs
        return [
            "small model, \(parameters) parameters, \(threads) thread(s), OpenBLAS \(BLASCore.name) kernels",
            String(format: "sgemm peak (n = 512/1024)      %8.1f GFLOP/s", peak),
            String(format: "training  32×64, fwd+bwd+AdamW %8.0f tokens/s %7.1f GFLOP/s  %5.1f%% of peak", trainTokensPerSecond, trainGFLOPs, peak > 0 ? 100 * trainGFLOPs / peak : 0),
            String(format: "          per step: forward %.0f ms, backward %.0f ms, AdamW %.0f ms", trainMillis.forward, trainMillis.backward, trainMillis.optimizer),
            String(format: "decode    256 seqs, 32 new     %8.0f tokens/s %7.1f GFLOP/s  %5.1f%% of peak", decodeTokensPerSecond, decodeGFLOPs, peak > 0 ? 100 * decodeGFLOPs / peak : 0),
        ].joined(separator: "\n")
    }

    /// Best sgemm throughput over square sizes 512 and 1024.
    public static func sgemmPeak(seconds: Double) -> Double {
        var best = 0.0
        for n in [512, 1024] {
            let a = [Float](repeating: 0.5, count: n * n), b = a
            var c = [Float](repeating: 0, count: n * n)
            var reps = 0
            let t0 = Date()
            while Date().timeIntervalSince(t0) < seconds / 2 || reps < 3 {
                let start = Date()
                sgemmForBenchmark(n: n, a, b, &c)
                let dt = Date().timeIntervalSince(start)
                if reps > 0 { best = max(best, 2 * pow(Double(n), 3) / dt / 1e9) }
                reps += 1
            }
        }
        return best
    }
}
