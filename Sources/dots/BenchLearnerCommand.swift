import ArgumentParser
import Foundation
import Learner
import Model
import RolloutActor
import Tasks
import Wire

/// `dots bench learner`: the GRPO learner's update alone, on real rollout groups, against OpenBLAS's sgemm
/// peak measured in the same run: how much of the machine a training step's update uses.
struct BenchLearnerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "learner",
        abstract: "Speed of the GRPO learner's update on real rollout groups, as a fraction of this machine's sgemm peak.",
        discussion: """
        Rolls out B prompts of the training split G times each with the checkpoint (cluster.conf's B, G, \
        temperature and max_new_tokens), then runs the learner's update on those groups as `dots launch`'s \
        learner does: mini-batches of mini_batch_size groups, each shared over learner_threads data-parallel \
        threads, all-equal groups skipped, AdamW after every mini-batch. Every update sees the same groups \
        as fresh on-policy data, so there is no π_old pass. Updates and OpenBLAS's one-thread sgemm peak are \
        measured in interleaved rounds, each keeping its fastest repetition, as in `dots bench model`.

        GFLOP/s counts the model's matrix products, 6·P per trained row (forward and backward; a shared \
        prompt's rows once; attention is done but not counted); the fraction divides by learner_threads × the \
        one-thread peak. The cost per informative group (rewards not all equal) is of the fastest update; \
        `dots bench ttt`'s learner budget gives the mean over real runs' steps, which also pay for π_old passes \
        (DOTS reference groups, replay) and share the cores with actors.
        """)

    @Option(help: "The cluster file whose [model] and [training] settings the learner uses.") var config = "cluster.conf"
    @Option(help: "Checkpoint to train (default: the cluster file's model.checkpoint).") var checkpoint: String?
    @Option(help: "Updates to time, over all rounds (after one warm-up update).") var updates = 12
    @Option(help: "Interleaved rounds of the peak and the updates.") var rounds = 3
    @Option(help: "Seed of the prompts drawn and of their rollouts.") var seed: UInt64 = 1
    @Option(name: .customLong("set"), help: "A setting, as in dots launch (repeatable).") var settings: [String] = []
    @Flag(help: "Print one JSON object.") var json = false

    func run() throws {
        guard updates >= 1, rounds >= 1 else { throw ValidationError("--updates and --rounds must be at least 1.") }
        var cluster: ClusterConfig
        do {
            cluster = try ClusterConfig.load(path: config)
            try cluster.set(assignments: settings)
        } catch { throw UserError("\(error)") }
        let t = cluster.training, threads = cluster.model.learnerThreads
        let ckpt = checkpoint ?? cluster.model.checkpoint
        let loaded: (model: Transformer, tokenizer: CharTokenizer)
        do { loaded = try Checkpoint.load(URL(fileURLWithPath: ckpt)) } catch { throw UserError("\(error)") }
        let bar = ProgressLine(), start = Date()

        // The groups: B training prompts, G rollouts each, as an actor would send them.
        bar.update(fraction: 0, "rolling out \(t.batchSize) prompts × \(t.groupSize)")
        var rng = SplitMix64(seed: seed)
        let train = TaskSuite.builtIn(seed: 1).train
        let problems = (0..<t.batchSize).map { _ in train[Int(rng.next() % UInt64(train.count))] }
        setComputeThreads(threads)
        let engine = RolloutEngine(model: loaded.model, tokenizer: loaded.tokenizer)
        let rollouts = try engine.rollout(problems, samples: t.groupSize, options: SamplingOptions(
            temperature: Float(t.temperature), maxNewTokens: t.maxNewTokens, seed: seed))
        let groups = rollouts.enumerated().map { i, r in
            TrainingGroup(promptID: UInt64(i), promptTokens: r.promptTokens,
                          completions: r.completions.map { ($0.tokens, $0.logProbs, Float($0.reward)) },
                          weightsVersion: 0, actorID: 0, generationSeconds: 0)
        }
        let informative = groups.filter { !$0.isUninformative }.count

        // The learner as LearnerNode sets it up: shares on their own threads, OpenBLAS on one.
        setComputeThreads(1)
        let updater = GRPOUpdater(model: loaded.model, settings: GRPOSettings(training: t))
        updater.threads = threads
        updater.optimizer.threads = threads
        var last = try updater.update(groups, onPolicyVersion: 0)

        var peak = 0.0, times: [Double] = [], optimizer: [Double] = []
        let perRound = (updates + rounds - 1) / rounds
        for round in 0..<rounds {
            bar.update(fraction: Double(round) / Double(rounds), "round \(round + 1)/\(rounds): sgemm peak, then updates")
            peak = max(peak, ModelBenchmark.sgemmPeak(seconds: 1))
            for _ in 0..<min(perRound, updates - times.count) {
                let t0 = Date()
                last = try updater.update(groups, onPolicyVersion: 0)
                times.append(Date().timeIntervalSince(t0))
                optimizer.append(last.optimizerSeconds)
            }
        }
        bar.update(fraction: 1, "done in \(formatDuration(Date().timeIntervalSince(start)))")
        bar.finish()

        let p = Double(loaded.model.layout.matmulParameterCount)
        let best = times.min()!, median = times.sorted()[times.count / 2]
        let medianOptimizer = optimizer.sorted()[optimizer.count / 2]
        let gflops = 6 * p * Double(last.trainedRows) / best / 1e9
        let fraction = peak > 0 ? gflops / (Double(threads) * peak) : 0
        let msPerGroup = informative > 0 ? 1000 * best / Double(informative) : 0
        let result: [String: Any] = [
            "checkpoint": ckpt, "threads": threads, "blas_core": BLASCore.name,
            "batch_size": t.batchSize, "group_size": t.groupSize, "mini_batch_size": t.miniBatchSize,
            "informative_groups": informative, "trained_rows": last.trainedRows, "mini_batches": last.miniBatches,
            "update_s_best": best, "update_s_median": median, "optimizer_s_median": medianOptimizer,
            "ms_per_informative_group": msPerGroup,
            "learner_gflops": gflops, "sgemm_peak_gflops": peak, "fraction_of_peak": fraction,
        ]
        if json {
            print(String(decoding: try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys]), as: UTF8.self))
            return
        }
        print("""
        GRPO learner update, \(ckpt): B = \(t.batchSize) prompts × G = \(t.groupSize), mini-batches of \(t.miniBatchSize) groups, \(threads) data-parallel thread\(threads == 1 ? "" : "s") (OpenBLAS \(BLASCore.name) kernels)
          informative groups      \(informative) of \(t.batchSize), \(last.trainedRows) rows trained in \(last.miniBatches) mini-batches
          update                  \(String(format: "%.3f s fastest, %.3f s median (optimizer %.3f s of it)", best, median, medianOptimizer))
          per informative group   \(String(format: "%.2f ms", msPerGroup))
          learner                 \(String(format: "%.1f GFLOP/s = %.1f%% of %d × %.1f GFLOP/s", gflops, 100 * fraction, threads, peak)) (one-thread sgemm peak, same run)
        """)
    }
}
