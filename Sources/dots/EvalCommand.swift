import ArgumentParser
import Foundation
import Model
import RolloutActor
import Tasks

struct EvalCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Accuracy of a checkpoint on a task split, by family and level; or per-prompt pass rates.",
        discussion: """
        Accuracy is the mean reward over --samples completions per prompt at --temperature (0 = greedy). \
        With --pass-rates, writes one JSON line per prompt with its pass rate (the paper's adaptive \
        difficulty is 1 minus it) to --out.
        """)

    @Option(help: "Checkpoint folder.") var checkpoint: String
    @Option(help: "Split of the built-in suite: train or test.") var split: String = "test"
    @Option(help: "A JSONL dataset to evaluate instead of the built-in suite.") var dataset: String?
    @Option(help: "Completions per prompt.") var samples: Int = 1
    @Option(help: "Sampling temperature (0 = greedy).") var temperature: Float = 1
    @Option(help: "Maximum new tokens per completion.") var maxTokens: Int = 12
    @Option(help: "Evaluate only the first N prompts.") var limit: Int?
    @Option(help: "Sampling seed.") var seed: UInt64 = 0
    @Option(help: "Seed of the built-in task suite.") var suiteSeed: UInt64 = 1
    @Flag(help: "Write per-prompt pass rates (needs --out).") var passRates = false
    @Option(help: "Output JSONL file for --pass-rates.") var out: String?
    @Flag(help: "Print the report as JSON.") var json = false
    @OptionGroup var compute: ComputeOptions

    func validate() throws {
        guard Split(rawValue: split) != nil else { throw ValidationError("--split must be train or test, not \(split).") }
        if samples < 1 { throw ValidationError("--samples must be at least 1.") }
        if passRates && out == nil { throw ValidationError("--pass-rates needs --out FILE.jsonl.") }
    }

    func run() throws {
        compute.apply()
        let (model, tok) = try Checkpoint.load(URL(fileURLWithPath: checkpoint))
        var problems = try dataset.map { try loadJSONL(path: $0) } ?? TaskSuite.builtIn(seed: suiteSeed).problems(Split(rawValue: split)!)
        if let limit { problems = Array(problems.prefix(limit)) }
        let engine = RolloutEngine(model: model, tokenizer: tok)
        let bar = ProgressLine()
        let start = Date()
        let rollouts = try engine.rollout(problems, samples: samples,
                                          options: SamplingOptions(temperature: temperature, maxNewTokens: maxTokens, seed: seed)) { done, total in
            let el = Date().timeIntervalSince(start), f = Double(done) / Double(total)
            bar.update(fraction: f, String(format: "%d/%d completions  %.1f/s  ETA %@", done, total, Double(done) / max(el, 1e-9),
                                           formatDuration(el / f - el)))
        }
        bar.finish()
        let report = EvaluationReport(rollouts, samples: samples, temperature: Double(temperature))
        if passRates, let out {
            var lines = ""
            for r in rollouts {
                let obj: [String: Any] = ["id": r.problem.id, "prompt": r.problem.prompt, "answer": r.problem.answer,
                                          "family": r.problem.family, "level": r.problem.level,
                                          "samples": r.completions.count, "pass_rate": r.passRate]
                lines += String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), as: UTF8.self) + "\n"
            }
            try lines.write(toFile: out, atomically: true, encoding: .utf8)
            var hist = [Int](repeating: 0, count: samples + 1)
            for r in rollouts { hist[Int((r.passRate * Double(samples)).rounded())] += 1 }
            print("pass-rate histogram (k of \(samples) correct: prompts)")
            for (k, n) in hist.enumerated() {
                print(String(format: "  %2d/%d  %6d  %5.1f%%", k, samples, n, 100 * Double(n) / Double(max(1, rollouts.count))))
            }
            let between = rollouts.filter { $0.passRate > 0 && $0.passRate < 1 }.count
            print(String(format: "strictly between 0 and 1: %.1f%%; at 0 or 1: %.1f%%. Wrote %@",
                         100 * Double(between) / Double(max(1, rollouts.count)),
                         100 * Double(rollouts.count - between) / Double(max(1, rollouts.count)), out))
        }
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.sortedKeys]
            print(String(decoding: try enc.encode(report), as: UTF8.self))
        } else if !passRates {
            print(report.table)
        }
    }
}
