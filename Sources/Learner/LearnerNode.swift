import Foundation
import Model
import RolloutActor
import Synchronization
import Tasks
import Wire

extension GRPOSettings {
    /// The update's settings from a cluster file's [training] table, as the learner trains with them
    /// (`dots bench learner` too); the rest keep their defaults.
    public init(training t: ClusterConfig.TrainingConfig) {
        self.init()
        learningRate = Float(t.learningRate)
        miniBatchGroups = t.miniBatchSize
        temperature = Float(t.temperature)
    }
}

/// The learner process: owns the trainable weights and the optimizer. Each step it gathers B fresh rollout
/// groups from the actors (PULL; groups more than `max_lag` versions old are dropped and counted), runs the
/// GRPO update, pushes the new weights version to the coordinator, and logs the step to metrics.jsonl.
/// Held-out accuracy is measured on a copy of the weights in a thread of its own, off the training clock.
public final class LearnerNode {
    let config: ClusterConfig
    let runDir: URL
    let node: WireNode
    let rejects = RejectCounter(name: "learner")
    let codec = WireCodec()
    let updater: GRPOUpdater
    let tokenizer: CharTokenizer
    let testSet: [Problem]
    var version: UInt64 = 0
    var step = 0
    var droppedStale = 0, duplicates = 0
    /// Fresh groups of the current selection round, for its `round` metrics line.
    var roundGroups: [TrainingGroup] = []
    let evaluator: BackgroundEvaluator
    /// Rollout replay (on with `training.replay`).
    var replay: ReplayBuffer
    /// Counters, timings and state for the coordinator (heartbeats), from a thread of its own.
    let report: StatsReporter
    let log: Logger

    public init(config: ClusterConfig, security: WireSecurity?, runDir: URL, resume: Bool) throws {
        self.config = config
        self.runDir = runDir
        log = roleLogger(.learner, worker: ClusterConfig.learnerID)
        report = StatsReporter(role: .learner, sender: ClusterConfig.learnerID, host: config.learnerHost.name, rejects: rejects)
        node = try WireNode(config: config, security: security)
        let t = config.training
        let start = try LearnerStart.load(base: URL(fileURLWithPath: config.model.checkpoint),
                                          checkpoints: resume ? runDir.appendingPathComponent("checkpoints") : nil,
                                          settings: GRPOSettings(training: t), replay: ReplayBuffer(capacity: t.replayCapacity, seed: UInt64(t.seed) &+ 17))
        updater = start.updater
        tokenizer = start.tokenizer
        replay = start.replay
        step = start.step
        version = start.version
        let model = updater.model, tok = tokenizer
        testSet = TaskSuite.builtIn(seed: 1).test
        evaluator = BackgroundEvaluator(config: model.config, tokenizer: tok, problems: testSet,
                                        maxNewTokens: t.maxNewTokens, temperature: Float(t.evalTemperature))
    }

    public func run() throws {
        // learner_threads run data-parallel shares of each mini-batch, each share's products on its own
        // thread: OpenBLAS itself stays on one.
        setComputeThreads(1)
        updater.threads = config.model.learnerThreads
        updater.optimizer.threads = config.model.learnerThreads
        let t = config.training
        try FileManager.default.createDirectory(at: runDir.appendingPathComponent("checkpoints"), withIntermediateDirectories: true)
        let metrics = try JSONLinesWriter(path: runDir.appendingPathComponent("metrics.jsonl").path)
        let rollouts = try node.bind(.rollouts)
        let updates = try node.connect(.updates)
        report.setVersion(version)
        report.set("step", Double(step))
        report.startReporting(node)
        defer { report.stopReporting(); rollouts.close(); updates.close(); node.close() }
        // A coordinator restarted by its launcher knows no weights: send it the current ones when it is back.
        let coordinatorWatch = try PeerWatch(updates)
        defer { coordinatorWatch.close() }
        let runStart = Date()
        report.setState(.syncing)
        try publish(updates)
        if step == 0 && t.evalEvery > 0 { evaluator.start(parameters: updater.model.parameters.array, step: 0) }
        log.info("training", metadata: ["steps": "\(step)…\(t.steps - 1)", "B": "\(t.batchSize)", "G": "\(t.groupSize)",
                                         "max_lag": "\(t.maxLag)", "replay": "\(t.replay)"])

        var checkpointSeconds = 0.0
        let feedLead = t.selection == "dots" && config.bool("training.reference_feed") == true ? config.int("training.reference_lead") ?? 0 : 0
        while step < t.steps && !StopSignal.requested {
            let collectStart = Date()
            var groups: [TrainingGroup] = []
            var seen = Set<UInt64>()
            var staleThisStep = 0
            let freshWanted = t.freshGroups(step: step)
            report.setState(.waiting)
            while groups.count < freshWanted && !StopSignal.requested {
                if coordinatorWatch.reconnected() {
                    log.info("the coordinator is back; sending it the current weights", metadata: ["weights_version": "\(version)"])
                    try publish(updates)
                }
                guard let frames = try rollouts.receive(timeout: .milliseconds(200)) else { continue }
                guard let env = codec.decode(frames, rejects: rejects), case .rolloutGroup(let g) = env.message else { continue }
                // DOTS reference groups fed by the coordinator may be `reference_lead` versions older: they
                // were rolled out on the weights one step before their round (and need π_old, as lagged groups do).
                let lag = t.maxLag + (env.sender == ClusterConfig.coordinatorID ? feedLead : 0)
                if g.weightsVersion + UInt64(lag) < version || g.weightsVersion > version {
                    staleThisStep += 1
                    continue
                }
                guard seen.insert(g.promptID).inserted else { duplicates += 1; report.add("groups_duplicate_total", 1); continue }
                report.add("groups_received_total", 1)
                groups.append(TrainingGroup(
                    promptID: g.promptID, promptTokens: g.promptTokens.map { Int32(bitPattern: $0) },
                    completions: g.completions.map { ($0.tokens.map { Int32(bitPattern: $0) }, $0.logProbs, $0.reward) },
                    weightsVersion: g.weightsVersion, actorID: g.actorID, generationSeconds: g.generationSeconds))
            }
            if StopSignal.requested { break }
            droppedStale += staleThisStep
            report.add("groups_dropped_stale_total", Double(staleThisStep))
            let collect = Date().timeIntervalSince(collectStart)
            report.setState(.working)
            // Replay fills the step up to B with stored informative groups (fewer if it holds fewer).
            let replayWanted = t.replay ? t.batchSize - freshWanted : 0
            let replayed = replayWanted > 0 ? replay.sample(replayWanted) : []
            let updateStart = Date()
            let stats = try updater.update(groups + replayed, onPolicyVersion: version)
            let update = Date().timeIntervalSince(updateStart)
            if t.replay { replay.add(groups) }
            step += 1
            version += 1
            report.setState(.syncing)
            let publishStart = Date()
            // A coordinator that came back during the update learns the new version from this publish.
            _ = coordinatorWatch.reconnected()
            try publish(updates)
            let publishTime = Date().timeIntervalSince(publishStart)
            report.setVersion(version)
            report.add("steps_total", 1)
            report.add("phase_seconds_total.waiting", collect)
            report.add("phase_seconds_total.update", update)
            report.add("phase_seconds_total.publish", publishTime)
            report.set(["step": Double(step), "step_seconds": collect + update + publishTime,
                        "step_phase_seconds.collect": collect, "step_phase_seconds.update": update,
                        "step_phase_seconds.publish": publishTime,
                        "mean_reward": Double(groups.map(\.meanReward).reduce(0, +)) / Double(max(1, groups.count))])
            log.debug("step done", metadata: ["step": "\(step)", "seconds": "\(String(format: "%.3f", collect + update + publishTime))"])

            // eval_every = 0 means never, not even after the last step (`dots bench ttt` evaluates checkpoints
            // outside the training clock instead).
            if t.evalEvery > 0 && (step % t.evalEvery == 0 || step == t.steps) {
                evaluator.start(parameters: updater.model.parameters.array, step: step, waitForPrevious: step == t.steps)
                if step == t.steps { evaluator.wait() }
            }

            var line = stepMetrics(groups, stats: stats)
            if t.replay {
                let meanGen = groups.map(\.generationSeconds).reduce(0, +) / Double(max(1, groups.count))
                line["replay"] = [
                    "buffer_size": replay.count, "replayed": replayed.count, "wanted": replayWanted,
                    "replayed_fraction": Double(replayed.count) / Double(max(1, groups.count + replayed.count)),
                    "age_mean": replayed.isEmpty ? 0 : replayed.map { Double(version - 1 - $0.weightsVersion) }.reduce(0, +) / Double(replayed.count),
                    "fresh_seconds_saved": Double(replayed.count) * meanGen,
                ] as [String: Any]
                line["frac_all_equal_trained"] = Double((groups + replayed).filter(\.isUninformative).count) / Double(max(1, groups.count + replayed.count))
            }
            // Per selection round (μ steps): what the selected prompts turned out to be under the policy.
            roundGroups += groups
            if step % max(1, t.selectionEvery) == 0 {
                let n = Double(max(1, roundGroups.count))
                line["round"] = ["index": step / max(1, t.selectionEvery) - 1, "groups": roundGroups.count,
                                 "realised_difficulty": 1 - Double(roundGroups.map(\.meanReward).reduce(0, +)) / n,
                                 "frac_effective": Double(roundGroups.filter { !$0.isUninformative }.count) / n] as [String: Any]
                roundGroups = []
            }
            line["time"] = Date().timeIntervalSince(runStart)
            line["dropped_stale"] = staleThisStep
            line["dropped_stale_total"] = droppedStale
            line["duplicates_total"] = duplicates
            // Which groups the step trained on, so a run can be audited: no group twice, none of a wrong version.
            line["fresh_groups"] = groups.map { ["prompt": $0.promptID, "version": $0.weightsVersion, "actor": $0.actorID] }
            // checkpoint: writing the previous step's checkpoint, which happened within this line's time.
            // optimizer: the part of `update` spent summing the shares' gradients and in AdamW.
            line["seconds"] = ["collect": collect, "update": update, "optimizer": stats.optimizerSeconds,
                               "publish": publishTime, "checkpoint": checkpointSeconds,
                               "generation": groups.map(\.generationSeconds).reduce(0, +) / Double(max(1, Set(groups.map(\.actorID)).count))]
            for r in evaluator.takeResults() {
                report.set("test_accuracy", r.accuracy)
                log.info("evaluated", metadata: ["step": "\(r.step)", "test_accuracy": "\(String(format: "%.4f", r.accuracy))"])
                line["test_accuracy"] = r.accuracy
                line["test_accuracy_greedy"] = r.greedyAccuracy
                line["test_temperature"] = r.temperature
                line["test_step"] = r.step
                line["test_seconds"] = r.seconds
            }
            metrics.write(line)
            // After the metrics line: a learner killed in between trains and logs this step again on resume,
            // instead of resuming past a step metrics.jsonl never saw.
            let checkpointStart = Date()
            if t.checkpointEvery > 0 && step % t.checkpointEvery == 0 {
                try save("step-\(step)")
                log.debug("checkpoint written", metadata: ["step": "\(step)"])
            }
            checkpointSeconds = Date().timeIntervalSince(checkpointStart)
            report.add("phase_seconds_total.checkpoint", checkpointSeconds)
        }
        report.setState(.stopping)
        try save("final")
        log.info("stopped", metadata: ["step": "\(step)", "checkpoint": "\(runDir.appendingPathComponent("checkpoints/final").path)"])
    }

    private func stepMetrics(_ groups: [TrainingGroup], stats: UpdateStats) -> [String: Any] {
        var tokensByActor: [UInt64: Int] = [:], secondsByActor: [UInt64: Double] = [:], groupsByActor: [UInt64: Int] = [:]
        for g in groups {
            tokensByActor[g.actorID, default: 0] += g.completions.map(\.tokens.count).reduce(0, +)
            secondsByActor[g.actorID, default: 0] += g.generationSeconds
            groupsByActor[g.actorID, default: 0] += 1
        }
        var tps: [String: Double] = [:]
        for (a, n) in tokensByActor { tps[String(a)] = Double(n) / max(1e-9, secondsByActor[a] ?? 0) }
        let lags = groups.map { Double(version - 1 - $0.weightsVersion) }
        return [
            "step": step, "weights_version": version,
            "mean_reward": Double(groups.map(\.meanReward).reduce(0, +)) / Double(max(1, groups.count)),
            "frac_all_equal": Double(groups.filter(\.isUninformative).count) / Double(max(1, groups.count)),
            "tokens_per_s": tps, "groups_by_actor": Dictionary(uniqueKeysWithValues: groupsByActor.map { (String($0.key), $0.value) }),
            "lag": lags.reduce(0, +) / Double(max(1, lags.count)),
            "loss": stats.loss, "clip_fraction": stats.clipFraction, "grad_norm": stats.gradNorm,
            "behaviour_gap": stats.behaviourGap, "old_logprob_batches": stats.oldLogProbBatches, "tokens": stats.tokens,
        ]
    }

    /// Pushes the current weights to the coordinator, chunked.
    private func publish(_ socket: ZMQSocket) throws {
        for chunk in WeightsChunk.split(updater.model.parameters.array, version: version) {
            try sendPatiently(socket, WireCodec.encode(.weights(chunk), sender: ClusterConfig.learnerID))
        }
    }

    /// Writes a checkpoint into a temporary folder and renames it into place, so a learner killed
    /// mid-write leaves either the whole checkpoint or none (never one a resume would choke on).
    private func save(_ name: String) throws {
        let parent = runDir.appendingPathComponent("checkpoints")
        let dir = parent.appendingPathComponent(name), tmp = parent.appendingPathComponent(".\(name).partial")
        let fm = FileManager.default
        try? fm.removeItem(at: tmp)
        try Checkpoint.save(updater.model, tokenizer: tokenizer, to: tmp, metadata: ["step": "\(step)", "weights_version": "\(version)"])
        try LearnerState(step: step, version: version, adamStep: updater.optimizer.step).save(tmp, optimizer: updater.optimizer)
        if config.training.replay { try replay.save(to: tmp.appendingPathComponent("replay.json")) }
        try? fm.removeItem(at: dir)
        try fm.moveItem(at: tmp, to: dir)
    }
}

/// What a learner checkpoint adds to the model folder so a run resumes exactly: the step, the weights
/// version, and AdamW's moments.
struct LearnerState: Codable {
    var step: Int
    var version: UInt64
    var adamStep: Int

    func save(_ dir: URL, optimizer: AdamW) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try enc.encode(self).write(to: dir.appendingPathComponent("learner_state.json"), options: .atomic)
        let m = UnsafeBufferPointer(start: optimizer.m.pointer, count: optimizer.m.count)
        let v = UnsafeBufferPointer(start: optimizer.v.pointer, count: optimizer.v.count)
        try SafeTensors.write([("adam.m", SafeTensors.float32(m, shape: [m.count])), ("adam.v", SafeTensors.float32(v, shape: [v.count]))],
                              to: dir.appendingPathComponent("optimizer.safetensors"))
    }

    static func load(_ dir: URL) throws -> LearnerState {
        let url = dir.appendingPathComponent("learner_state.json")
        guard let data = try? Data(contentsOf: url), let s = try? JSONDecoder().decode(LearnerState.self, from: data) else {
            throw ModelError.checkpoint("\(url.path) is missing or unreadable; cannot resume from \(dir.path).")
        }
        return s
    }

    func restore(into optimizer: AdamW, from dir: URL) throws {
        let (t, _) = try SafeTensors.read(dir.appendingPathComponent("optimizer.safetensors"))
        guard let m = t["adam.m"], let v = t["adam.v"], m.shape == [optimizer.m.count], v.shape == [optimizer.v.count] else {
            throw ModelError.checkpoint("\(dir.path)/optimizer.safetensors does not match the model's \(optimizer.m.count) parameters.")
        }
        optimizer.m.write(SafeTensors.floats(m), at: 0)
        optimizer.v.write(SafeTensors.floats(v), at: 0)
        optimizer.restore(step: adamStep)
    }
}

/// Held-out accuracy as the learner's evaluation and `dots bench ttt` both measure it: one completion a
/// prompt at `temperature` (0 = greedy), with the same sampling seed every time, so successive evaluations
/// share their sampling noise.
public func heldOutAccuracy(_ engine: RolloutEngine, _ problems: [Problem], temperature: Float, maxNewTokens: Int) throws -> Double {
    let options = SamplingOptions(temperature: temperature, maxNewTokens: maxNewTokens, seed: 20_251_125)
    let out = try engine.rollout(problems, samples: 1, options: options)
    return out.map(\.passRate).reduce(0, +) / Double(max(1, out.count))
}

/// Held-out accuracy (at the evaluation temperature, and greedy), computed on a snapshot of the weights in a
/// background thread.
final class BackgroundEvaluator: @unchecked Sendable {
    /// `accuracy` at `temperature` (one sample a prompt, the same seed every time, so successive evaluations
    /// share their sampling noise), and greedy.
    struct Result { var step: Int; var accuracy: Double; var greedyAccuracy: Double; var temperature: Double; var seconds: Double }
    let config: ModelConfig
    let tokenizer: CharTokenizer
    let problems: [Problem]
    let maxNewTokens: Int
    let temperature: Float
    private let results = Mutex<[Result]>([])
    private let busy = Atomic<Bool>(false)
    private var thread: Thread?
    private let done = NSCondition()

    init(config: ModelConfig, tokenizer: CharTokenizer, problems: [Problem], maxNewTokens: Int, temperature: Float) {
        self.temperature = temperature
        self.config = config
        self.tokenizer = tokenizer
        self.problems = problems
        self.maxNewTokens = maxNewTokens
    }

    /// Starts an evaluation unless one is running (then this one is skipped, unless asked to wait).
    func start(parameters: [Float], step: Int, waitForPrevious: Bool = false) {
        if waitForPrevious { wait() }
        guard busy.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged else { return }
        let t = Thread { [self] in
            defer { done.lock(); busy.store(false, ordering: .releasing); done.broadcast(); done.unlock() }
            let start = Date()
            guard let model = try? Transformer(config: config) else { return }
            model.parameters.write(parameters, at: 0)
            let engine = RolloutEngine(model: model, tokenizer: tokenizer)
            func accuracy(_ temperature: Float) -> Double? {
                try? heldOutAccuracy(engine, problems, temperature: temperature, maxNewTokens: maxNewTokens)
            }
            guard let greedy = accuracy(0) else { return }
            guard let sampled = temperature == 0 ? greedy : accuracy(temperature) else { return }
            results.withLock {
                $0.append(Result(step: step, accuracy: sampled, greedyAccuracy: greedy, temperature: Double(temperature),
                                 seconds: Date().timeIntervalSince(start)))
            }
        }
        thread = t
        t.start()
    }

    func wait() {
        done.lock()
        while busy.load(ordering: .acquiring) { done.wait() }
        done.unlock()
    }

    func takeResults() -> [Result] { results.withLock { r in defer { r = [] }; return r } }
}
