import ArgumentParser
import Foundation
import Learner
import Model
import Tasks

struct PretrainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pretrain",
        abstract: "Supervised pre-training of a fresh small model on the built-in tasks' prompt → answer pairs.",
        discussion: """
        Writes OUT/base (the checkpoint RL starts from) and OUT/source-1 … OUT/source-3, snapshots at 25%, \
        50% and 75% of training: policies of different strength for `dots predictor train`. Give a budget \
        in minutes or in steps (steps make the run exactly reproducible from --seed).
        """)

    @Option(help: "Output folder.") var out: String = "checkpoints"
    @Option(help: "Training budget in minutes.") var minutes: Double?
    @Option(help: "Training budget in optimizer steps (overrides --minutes).") var steps: Int?
    @Option(help: "Model size.") var size: ModelSize = .small
    @Option(help: "Continue from this checkpoint instead of a fresh model (its size wins over --size).") var initFrom: String?
    @Option(help: "Prompts per step.") var batchSize: Int = 64
    @Option(help: "Peak learning rate (AdamW).") var learningRate: Float = 1e-3
    @Option(help: "Seed of initialisation and data order.") var seed: UInt64 = 1
    @Option(help: ArgumentHelp("Probability that an example's answer has one slipped digit or letter.",
                               discussion: "Drawn afresh at every use: a corpus with careless errors. The committed base uses 0.3.")) var slipRate: Double = 0
    @Option(help: "Seed of the built-in task suite.") var suiteSeed: UInt64 = 1
    @Option(help: "Write a checkpoint to OUT/latest every this many steps (0 = never).") var checkpointEvery: Int = 500
    @OptionGroup var compute: ComputeOptions

    func validate() throws {
        if steps == nil && minutes == nil { throw ValidationError("Give a budget: --minutes M or --steps N.") }
        if let s = steps, s < 1 { throw ValidationError("--steps must be at least 1.") }
        if let m = minutes, !(m > 0) { throw ValidationError("--minutes must be positive.") }
        if batchSize < 1 { throw ValidationError("--batch-size must be at least 1.") }
        if !(0...1).contains(slipRate) { throw ValidationError("--slip-rate must be between 0 and 1.") }
    }

    func run() throws {
        compute.apply()
        let suite = TaskSuite.builtIn(seed: suiteSeed)
        let model: Transformer
        if let initFrom {
            model = try Checkpoint.load(URL(fileURLWithPath: initFrom)).model
        } else {
            model = try Transformer(config: size.config)
            model.initialize(seed: seed)
        }
        var settings = SupervisedTrainer.Settings()
        settings.batchSize = batchSize
        settings.learningRate = learningRate
        settings.seed = seed
        settings.slipRate = slipRate
        let trainer = try SupervisedTrainer(model: model, tokenizer: .standard, problems: suite.train, settings: settings)
        trainer.optimizer.threads = compute.threads
        let outURL = URL(fileURLWithPath: out)
        let bar = ProgressLine()
        let start = Date()
        var sourcesWritten = 0
        var emaLoss: Double?, tokens = 0
        func progress() -> Double {
            if let steps { return Double(trainer.step) / Double(steps) }
            return Date().timeIntervalSince(start) / (minutes! * 60)
        }
        func save(_ name: String) throws {
            try Checkpoint.save(model, tokenizer: .standard, to: outURL.appendingPathComponent(name),
                                metadata: ["step": "\(trainer.step)", "seed": "\(seed)", "suite_seed": "\(suiteSeed)",
                                           "slip_rate": "\(slipRate)"])
        }
        while progress() < 1 {
            let (loss, n) = try trainer.step(progress: progress())
            tokens += n
            emaLoss = emaLoss.map { 0.95 * $0 + 0.05 * loss } ?? loss
            let p = progress(), elapsed = Date().timeIntervalSince(start)
            while sourcesWritten < 3 && p >= Double(sourcesWritten + 1) * 0.25 {
                sourcesWritten += 1
                try save("source-\(sourcesWritten)")
            }
            if checkpointEvery > 0 && trainer.step % checkpointEvery == 0 { try save("latest") }
            bar.update(fraction: p, String(format: "step %d  loss %.3f  %.0f tokens/s  ETA %@", trainer.step, emaLoss!,
                                           Double(tokens) / elapsed, formatDuration(elapsed / max(p, 1e-9) - elapsed)))
        }
        bar.finish()
        try save("base")
        let secs = Date().timeIntervalSince(start)
        print(String(format: "Trained %d steps in %@ (%.0f tokens/s), final loss %.3f; wrote %@/base and %d source checkpoints.",
                     trainer.step, formatDuration(secs), Double(tokens) / secs, emaLoss ?? .nan, out, sourcesWritten))
    }
}
