import ArgumentParser
import Foundation
import Learner
import Model
import RolloutActor
import Tasks
import Wire

/// `dots bench ttt`: the paper's headline — steps and wall-clock to reach plain GRPO's accuracy.
struct BenchTTTCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ttt",
        abstract: "Time to target: steps and wall-clock each method needs to reach plain GRPO's held-out accuracy.",
        discussion: """
        From the same base checkpoint, with the same settings and seeds, runs `dots launch` for each method — \
        grpo (uniform, no replay), dots (DOTS selection), rr (rollout replay), dots+rr — one after another, \
        seed by seed, with a checkpoint every --checkpoint-every steps and no evaluation during training. \
        Then it evaluates every checkpoint on the held-out split (outside the training clock; the training \
        clock also leaves out checkpoint writing), smooths each curve with a trailing mean over --window \
        checkpoints, takes the target = GRPO's final smoothed accuracy (mean over seeds), and reports for each \
        method the first step and training time at which its smoothed curve reaches the target, in the form \
        of the paper's Table 1. Beneath it, each method's learner budget from its runs' metrics.jsonl: update \
        seconds and informative groups (rewards not all equal) a step and up to the target, and the most time \
        the method could save if everything but its learner's update took no time. Writes OUT/summary.json, \
        OUT/table.md and OUT/accuracy.svg. With --compare it trains nothing and puts curves from several earlier \
        OUT folders in one table, the first as the baseline.
        """)

    @Option(help: "The cluster file the runs start from (its [training] settings are shared by every method).")
    var config = "cluster.conf"
    @Flag(help: "A ten-minute version: 1 seed, 40 steps, the same code path.")
    var quick = false
    @Option(help: "Seeds per method (default 3; 1 with --quick).") var seeds: Int?
    @Option(help: "Training steps per run (default 200; 40 with --quick).") var steps: Int?
    @Option(help: "Methods to run, comma-separated, the baseline first.") var methods = "grpo,dots,rr,dots+rr"
    @Option(help: "Steps between checkpoints (each one is evaluated).") var checkpointEvery = 2
    @Option(help: "Smoothing window in checkpoints (trailing mean).") var window = 5
    @Option(help: "Output folder (default runs/ttt-<yyyyMMdd-HHmmss>).") var out: String?
    @Option(help: "A setting for every run, as in dots launch (repeatable).") var set: [String] = []
    @Option(help: "OpenBLAS threads for evaluating checkpoints (nothing else runs then).") var evalThreads = 2
    @Flag(help: "Keep every evaluated checkpoint (by default only each run's final one is kept).")
    var keepCheckpoints = false
    @Flag(help: "Only summarise again (table and picture) from the curves in OUT/summary.json, e.g. with another --window.")
    var reportOnly = false
    @Option(name: .customLong("compare"), help: ArgumentHelp(
        "Compare curves from several bench ttt folders, e.g. --compare runs/a:grpo --compare runs/b:grpo (repeatable; the first is the baseline). Prints the tables only: trains nothing, writes nothing.",
        valueName: "RUN:METHOD"))
    var comparisons: [String] = []

    static let methodSettings: [String: [String]] = [
        "grpo": ["training.selection=uniform", "training.replay=false"],
        "dots": ["training.selection=dots", "training.replay=false"],
        "rr": ["training.selection=uniform", "training.replay=true"],
        "dots+rr": ["training.selection=dots", "training.replay=true"],
    ]

    var methodList: [String] { methods.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
    var seedCount: Int { seeds ?? (quick ? 1 : 3) }
    var stepCount: Int { steps ?? (quick ? 40 : 200) }

    func validate() throws {
        for m in methodList where Self.methodSettings[m] == nil {
            throw ValidationError("Unknown method \"\(m)\"; choose from grpo, dots, rr, dots+rr.")
        }
        if methodList.isEmpty { throw ValidationError("--methods names no method.") }
        if seedCount < 1 || stepCount < 1 || checkpointEvery < 1 || window < 1 {
            throw ValidationError("--seeds, --steps, --checkpoint-every and --window must be at least 1.")
        }
    }

    func run() throws {
        if !comparisons.isEmpty { return try compare() }
        var cluster: ClusterConfig
        do {
            cluster = try ClusterConfig.load(path: config)
            try cluster.set(assignments: set)
        } catch { throw UserError("\(error)") }
        let stamp = DateFormatter()
        stamp.dateFormat = "yyyyMMdd-HHmmss"
        let outDir = URL(fileURLWithPath: out ?? "runs/ttt-\(stamp.string(from: Date()))")
        try FileManager.default.createDirectory(at: outDir, withIntermediateDirectories: true)
        let list = methodList
        let total = list.count * seedCount
        say("Time to target: \(list.joined(separator: ", ")) × \(seedCount) seed(s) × \(stepCount) steps, checkpoints every \(checkpointEvery); output \(outDir.path)")

        if reportOnly {
            let saved = try Self.loadSummary(outDir)
            try summarise(saved.curves, methods: saved.methods, seeds: saved.seeds, outDir: outDir)
            return
        }
        // 1. Train: seed by seed, methods interleaved, so a slow spell of the machine hits every method.
        var done = 0
        let started = Date()
        for seed in 1...seedCount {
            for m in list {
                let runDir = outDir.appendingPathComponent("\(m)-seed\(seed)")
                let runStart = Date()
                try train(method: m, seed: seed, runDir: runDir)
                done += 1
                let el = Date().timeIntervalSince(started)
                say(String(format: "[%d/%d] trained %@ seed %d: %d steps in %@ (ETA of training %@)", done, total, m, seed,
                             stepCount, formatDuration(Date().timeIntervalSince(runStart)),
                             formatDuration(el / Double(done) * Double(total - done))))
            }
        }

        // 2. Evaluate every checkpoint, outside the training clock.
        setComputeThreads(evalThreads)
        let test = TaskSuite.builtIn(seed: 1).test
        var curves: [String: [[TimeToTarget.Point]]] = [:]
        done = 0
        for seed in 1...seedCount {
            for m in list {
                let runDir = outDir.appendingPathComponent("\(m)-seed\(seed)")
                let curve = try evaluate(runDir: runDir, test: test, training: cluster.training)
                curves[m, default: []].append(curve)
                done += 1
                say(String(format: "[%d/%d] evaluated %@ seed %d: %d checkpoints, %.1f%% → %.1f%%", done, total, m, seed,
                             curve.count, 100 * (curve.first?.accuracy ?? .nan), 100 * (curve.last?.accuracy ?? .nan)))
            }
        }

        try summarise(curves, methods: list, seeds: seedCount, outDir: outDir)
    }

    struct SavedSummary: Decodable { var methods: [String]; var seeds: Int; var curves: [String: [[TimeToTarget.Point]]] }

    static func loadSummary(_ dir: URL) throws -> SavedSummary {
        let file = dir.appendingPathComponent("summary.json")
        guard let data = try? Data(contentsOf: file), let saved = try? JSONDecoder().decode(SavedSummary.self, from: data) else {
            throw UserError("\(file.path) is missing or is not a summary written by dots bench ttt.")
        }
        return saved
    }

    /// `--compare`: one method's curves from each of several output folders (the same method at two batch
    /// sizes, say), in one table with the first as the baseline, by the same smoothing and reach as a run's own.
    func compare() throws {
        var curves: [String: [[TimeToTarget.Point]]] = [:], labels: [String] = [], parsed: [TimeToTarget.ComparedRun] = []
        for spec in comparisons {
            guard let compared = TimeToTarget.ComparedRun(spec) else {
                throw UserError("--compare \(spec): expected RUN:METHOD, e.g. runs/ttt9-b64:grpo.")
            }
            let run = compared.folder, method = compared.method
            let saved = try Self.loadSummary(URL(fileURLWithPath: run))
            guard let runs = saved.curves[method], !runs.isEmpty else {
                throw UserError("--compare \(spec): \(run)/summary.json has no \(method) curves; it has \(saved.methods.joined(separator: ", ")).")
            }
            guard curves[spec] == nil else { throw UserError("--compare \(spec) is named twice.") }
            curves[spec] = runs
            labels.append(spec)
            parsed.append(compared)
        }
        let (target, rows) = TimeToTarget.table(runs: curves, methods: labels, baseline: labels[0], window: window)
        let seeds = curves[labels[0]]!.count
        say(TimeToTarget.markdown(target: target, rows: rows, seeds: seeds, baseline: labels[0] + "'s"))
        for l in labels where curves[l]!.count != seeds {
            say("Note: \(l) has \(curves[l]!.count) seed(s) against the baseline's \(seeds); the ± spread pairs seeds by position.")
        }
        // Milestones every ten checkpoints of the baseline's first curve (every 20 steps at the default 2).
        let gap = curves[labels[0]]![0].dropFirst().first.map { max(1, $0.step) } ?? 1
        say(TimeToTarget.milestones(curves: curves, methods: labels, window: window, every: 10 * gap))
        say(TimeToTarget.budgetMarkdown(Self.budgets(zip(labels, parsed).map { ($0, URL(fileURLWithPath: $1.folder), $1.method) },
                                                     rows: rows), baselineSeconds: rows.first?.meanSeconds))
    }

    /// Each run's learner budget from the metrics.jsonl of its seeds (DIR/METHOD-seedK, K from 1 as in its
    /// row), up to each seed's reach; a run none of whose metrics can be read is left out.
    static func budgets(_ runs: [(label: String, dir: URL, method: String)], rows: [TimeToTarget.Row]) -> [(method: String, budget: TimeToTarget.Budget)] {
        runs.compactMap { run in
            guard let row = rows.first(where: { $0.method == run.label }) else { return nil }
            let seeds = row.steps.enumerated().compactMap { k, reach -> TimeToTarget.Budget? in
                let file = run.dir.appendingPathComponent("\(run.method)-seed\(k + 1)/metrics.jsonl")
                guard let text = try? String(contentsOf: file, encoding: .utf8) else { return nil }
                return TimeToTarget.Budget(TimeToTarget.StepRecord.parse(text), reach: reach)
            }
            return TimeToTarget.Budget.mean(seeds).map { (run.label, $0) }
        }
    }

    /// The table, summary.json and the picture, from the evaluated curves.
    func summarise(_ curves: [String: [[TimeToTarget.Point]]], methods list: [String], seeds seedCount: Int, outDir: URL) throws {
        let (target, rows) = TimeToTarget.table(runs: curves, methods: list, baseline: list[0], window: window)
        var table = TimeToTarget.markdown(target: target, rows: rows, seeds: seedCount, baseline: list[0] == "grpo" ? "GRPO's" : "\(list[0])'s")
        let budget = TimeToTarget.budgetMarkdown(Self.budgets(list.map { ($0, outDir, $0) }, rows: rows),
                                                 baselineSeconds: rows.first?.meanSeconds)
        if !budget.isEmpty { table += "\n" + budget }
        say("\n" + table)
        try table.write(to: outDir.appendingPathComponent("table.md"), atomically: true, encoding: .utf8)
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        struct Summary: Encodable {
            var methods: [String], seeds: Int, steps: Int, checkpointEvery: Int, window: Int
            var target: Double?, rows: [TimeToTarget.Row], curves: [String: [[TimeToTarget.Point]]]
        }
        let steps = curves.values.flatMap { $0.compactMap { $0.last?.step } }.max() ?? stepCount
        try enc.encode(Summary(methods: list, seeds: seedCount, steps: steps, checkpointEvery: checkpointEvery,
                               window: window, target: target, rows: rows, curves: curves))
            .write(to: outDir.appendingPathComponent("summary.json"))
        let svg = TimeToTargetPlot.svg(curves: curves, methods: list, window: window, target: target)
        try svg.write(to: outDir.appendingPathComponent("accuracy.svg"), atomically: true, encoding: .utf8)
        say("Wrote \(outDir.path)/table.md, summary.json and accuracy.svg")
    }

    /// One `dots launch` as a child process, its output in RUN_DIR.log; throws unless it exits 0.
    func train(method: String, seed: Int, runDir: URL) throws {
        try? FileManager.default.removeItem(at: runDir)
        let settings = set + Self.methodSettings[method]! + [
            "training.seed=\(seed)", "training.eval_every=0", "training.checkpoint_every=\(checkpointEvery)",
        ]
        let args = ["launch", "--config", config, "--run-dir", runDir.path, "--steps", "\(stepCount)"]
            + settings.flatMap { ["--set", $0] }
        let logPath = runDir.path + ".log"
        try? FileManager.default.removeItem(atPath: logPath)
        let child = try ChildProcess.spawn(executable: currentExecutablePath(), arguments: args,
                                           environment: ProcessInfo.processInfo.environment, logPath: logPath)
        while true {
            if let end = child.poll() {
                guard case .exited(0) = end else {
                    throw UserError("The \(method) run (seed \(seed)) failed (\(end)); its output is in \(logPath).")
                }
                return
            }
            Thread.sleep(forTimeInterval: 0.2)
        }
    }

    /// Held-out accuracy of every `step-N` checkpoint of a run (and step 0 = the base), with the run's
    /// training clock: metrics.jsonl's `time` less the checkpoint writing up to that step.
    func evaluate(runDir: URL, test: [Problem], training: ClusterConfig.TrainingConfig) throws -> [TimeToTarget.Point] {
        let metrics = try String(contentsOf: runDir.appendingPathComponent("metrics.jsonl"), encoding: .utf8)
        let clock = TimeToTarget.StepRecord.trainingClock(TimeToTarget.StepRecord.parse(metrics))
        let dir = runDir.appendingPathComponent("checkpoints")
        var steps = (try FileManager.default.contentsOfDirectory(atPath: dir.path))
            .compactMap { $0.hasPrefix("step-") ? Int($0.dropFirst(5)) : nil }.sorted()
        steps.insert(0, at: 0)
        // The run's own config names the base checkpoint as the learner read it.
        let base = URL(fileURLWithPath: try ClusterConfig.load(path: runDir.appendingPathComponent("cluster.conf").path).model.checkpoint)
        var points: [TimeToTarget.Point] = []
        for step in steps {
            guard let seconds = clock[step] else { continue }
            let ckpt = step == 0 ? base : dir.appendingPathComponent("step-\(step)")
            let (model, tok) = try Checkpoint.load(ckpt)
            let acc = try heldOutAccuracy(RolloutEngine(model: model, tokenizer: tok), test,
                                          temperature: Float(training.evalTemperature), maxNewTokens: training.maxNewTokens)
            points.append(.init(step: step, seconds: seconds, accuracy: acc))
            if step != 0 && !keepCheckpoints { try? FileManager.default.removeItem(at: ckpt) }
        }
        return points
    }

    /// Unbuffered, so progress reaches a log file as it happens.
    private func say(_ line: String) { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }
}
