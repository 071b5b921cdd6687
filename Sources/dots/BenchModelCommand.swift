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
        Shapes: training = batch 32 × 64 tokens, forward + backward + AdamW; decode = 256 sequences, \
        16-token prompts, 32 new tokens, sampling at temperature 1 with the KV cache. GFLOP/s counts the \
        matrix products of the model (6·P per trained token, 2·P per generated token; P = parameters in \
        matrix products, LM head included); attention and prefill are done but not counted.

        The sgemm peak, training and decode are measured in interleaved rounds and each keeps its fastest \
        repetition (one product, one step, one batched generation), so other work on the host slows the \
        peak and the model alike.
        """)

    @Option(help: "Seconds to spend on each measurement, over all its rounds (after warm-up).") var seconds: Double = 4
    @Option(help: "Interleaved rounds of the three measurements; each keeps its fastest repetition.") var rounds: Int = 4
    @Option(help: ArgumentHelp("Measure only these (peak, training, decode), e.g. to profile one of them; ratios need the peak.",
                               valueName: "list")) var only = "peak,training,decode"
    @Flag(help: "Print one JSON object.") var json = false
    @OptionGroup var compute: ComputeOptions

    func run() throws {
        compute.apply()
        guard rounds >= 1, seconds > 0 else { throw ValidationError("--rounds must be at least 1 and --seconds positive.") }
        // Three measurements of about `seconds` each (plus warm-up), in `rounds` rounds: progress with the ETA.
        let bar = ProgressLine(), start = Date(), windows = 3 * rounds
        var measurements = Set<ModelBenchmark.Measurement>()
        for name in only.split(separator: ",") {
            guard let m = ModelBenchmark.Measurement(rawValue: name.trimmingCharacters(in: .whitespaces)) else {
                throw ValidationError("--only takes peak, training and decode, comma-separated; '\(name)' is none of them.")
            }
            measurements.insert(m)
        }
        let r = try ModelBenchmark.run(seconds: seconds, rounds: rounds, only: measurements) { i, name in
            let elapsed = Date().timeIntervalSince(start)
            let eta = i == 0 ? 3 * seconds : elapsed / Double(i) * Double(windows - i)
            bar.update(fraction: Double(i) / Double(windows), "measuring \(name) (\(i + 1)/\(windows))  ETA \(formatDuration(eta))")
        }
        bar.update(fraction: 1, "done in \(formatDuration(Date().timeIntervalSince(start)))")
        bar.finish()
        let result: [String: Any] = [
            "threads": compute.threads, "blas_core": BLASCore.name, "rounds": rounds, "parameters": r.parameters, "matmul_parameters": r.matmulParameters,
            "sgemm_peak_gflops": r.sgemmPeakGFLOPs,
            "train_tokens_per_s": r.trainTokensPerSecond, "train_gflops": r.trainGFLOPs,
            "train_fraction_of_peak": r.sgemmPeakGFLOPs > 0 ? r.trainGFLOPs / r.sgemmPeakGFLOPs : 0,
            "train_ms_forward": r.trainMillis.forward, "train_ms_backward": r.trainMillis.backward,
            "train_ms_optimizer": r.trainMillis.optimizer,
            "decode_tokens_per_s": r.decodeTokensPerSecond, "decode_gflops": r.decodeGFLOPs,
            "decode_fraction_of_peak": r.sgemmPeakGFLOPs > 0 ? r.decodeGFLOPs / r.sgemmPeakGFLOPs : 0,
        ]
        if json {
            print(String(decoding: try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys]), as: UTF8.self))
        } else {
            print(r.table(threads: compute.threads))
        }
    }
}
