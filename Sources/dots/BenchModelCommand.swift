import ArgumentParser
import Foundation
import Model

/// `dots bench model`: training and decode speed of the `small` model against OpenBLAS's own sgemm
/// peak, measured in the same run on the same thread count.
struct BenchModelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model",
        abstract: "Training and batched-decode speed of the small model, as a fraction of this machine's sgemm peak.",
        discussion: """
        Shapes: training = batch 32 × 64 tokens, forward + backward + AdamW; decode = 256 sequences, 16-token
        prompts, 32 new tokens, sampling at temperature 1 with the KV cache. GFLOP/s counts the matrix
        products of the model (6·P per trained token, 2·P per generated token; P = parameters in matrix
        products, LM head included); attention and prefill are done but not counted.
        """)

    @Option(help: "Seconds to spend on each measurement (after warm-up).") var seconds: Double = 4
    @Flag(help: "Print one JSON object.") var json = false
    @OptionGroup var compute: ComputeOptions

    func run() throws {
        compute.apply()
        let peak = Self.sgemmPeak(seconds: seconds)
        let model = try Transformer(config: .small())
        model.initialize(seed: 1)
        let p = Double(model.layout.matmulParameterCount)

        // Training.
        var rng = SplitMix64(seed: 7)
        let vocab = model.config.vocabSize
        let seqs = (0..<32).map { _ in (0..<64).map { _ in Int32(4 + Int(rng.next() % UInt64(vocab - 4))) } }
        let batch = TokenBatch(sequences: seqs)
        let weights = [Float](repeating: 1, count: batch.rowCount)
        let opt = AdamW(model: model, learningRate: 1e-4)
        func trainStep() throws {
            model.zeroGradients()
            _ = try model.loss(batch, .crossEntropy(weights: weights))
            opt.update(model)
        }
        try trainStep()
        var steps = 0
        let t0 = Date()
        while Date().timeIntervalSince(t0) < seconds || steps < 2 { try trainStep(); steps += 1 }
        let trainTime = Date().timeIntervalSince(t0)
        let trainTokens = Double(steps * batch.rowCount)
        let trainTPS = trainTokens / trainTime, trainGF = 6 * p * trainTPS / 1e9

        // Decode.
        let prompts = (0..<256).map { _ in [CharTokenizer.bos] + (0..<15).map { _ in Int32(4 + Int(rng.next() % UInt64(vocab - 4))) } }
        let opts = SamplingOptions(temperature: 1, maxNewTokens: 32, stopToken: nil, seed: 3)
        _ = try model.generate(prompts: Array(prompts.prefix(32)), options: opts)
        var runs = 0
        let t1 = Date()
        while Date().timeIntervalSince(t1) < seconds || runs < 1 { _ = try model.generate(prompts: prompts, options: opts); runs += 1 }
        let decodeTime = Date().timeIntervalSince(t1)
        let decodeTPS = Double(runs * 256 * 32) / decodeTime, decodeGF = 2 * p * decodeTPS / 1e9

        let result: [String: Any] = [
            "threads": compute.threads, "parameters": model.parameterCount, "matmul_parameters": Int(p),
            "sgemm_peak_gflops": peak,
            "train_tokens_per_s": trainTPS, "train_gflops": trainGF, "train_fraction_of_peak": trainGF / peak,
            "decode_tokens_per_s": decodeTPS, "decode_gflops": decodeGF, "decode_fraction_of_peak": decodeGF / peak,
        ]
        if json {
            print(String(decoding: try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys]), as: UTF8.self))
        } else {
            print("small model, \(model.parameterCount) parameters, \(compute.threads) thread(s)")
            print(String(format: "sgemm peak (n = 512/1024)      %8.1f GFLOP/s", peak))
            print(String(format: "training  32×64, fwd+bwd+AdamW %8.0f tokens/s %7.1f GFLOP/s  %5.1f%% of peak", trainTPS, trainGF, 100 * trainGF / peak))
            print(String(format: "decode    256 seqs, 32 new     %8.0f tokens/s %7.1f GFLOP/s  %5.1f%% of peak", decodeTPS, decodeGF, 100 * decodeGF / peak))
        }
    }

    /// Best sgemm throughput over square sizes 512 and 1024.
    static func sgemmPeak(seconds: Double) -> Double {
        var best = 0.0
        for n in [512, 1024] {
            let a = [Float](repeating: 0.5, count: n * n), b = a
            var c = [Float](repeating: 0, count: n * n)
            var reps = 0
            let t0 = Date()
            while Date().timeIntervalSince(t0) < seconds / 2 || reps < 2 {
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
