import Foundation
import Model
import Monitor
import Synchronization
import Tasks
import Wire

/// The coordinator process: the control plane. It holds the current weights (pushed by the learner on
/// `updates`), serves them to joining or lagging workers (`weights`), hands out prompts step by step
/// (`assignment`), tracks membership from heartbeats (`stats`), and re-queues a dead actor's work.
public final class CoordinatorNode {
    let config: ClusterConfig
    let node: WireNode
    let rejects = RejectCounter(name: "coordinator")
    let codec = WireCodec()
    var scheduler: Scheduler
    var weights: (version: UInt64, chunks: [WeightsChunk])?
    var assembler = WeightsAssembler()
    var lastSeen: [UInt64: Date] = [:]
    /// Heartbeats are sent every second; three missed mean dead.
    let deadAfter: TimeInterval = 3
    /// Every process's latest report, for /metrics (CoordinatorMonitoring.swift).
    var cluster = ClusterStats()
    let report: StatsReporter
    let log: Logger
    /// DOTS selection (`training.selection = "dots"`), its log (RUN_DIR/selection.jsonl), and the first
    /// step whose prompts no round has selected yet.
    var selector: DotsSelector?
    var selectionLog: JSONLinesWriter?
    var selectedThrough = 0
    /// The weights of the newest version (DOTS rolls its reference prompts out with them).
    var latestParams: [Float] = []
    /// A selection round runs on a thread of its own, so the coordinator keeps answering actors and
    /// heartbeats meanwhile; the scheduler advances when it is done.
    var selectionInFlight = false
    let selectionResult = SelectionInbox()
    /// PUSH to the learner's rollouts endpoint, when rounds feed their informative reference groups.
    var referenceFeed: ZMQSocket?
    var feedReferences: Bool {
        selector != nil && config.bool("training.reference_feed") == true && config.training.maxLag == 0
    }

    public init(config: ClusterConfig, security: WireSecurity?, runDir: URL? = nil) throws {
        self.config = config
        log = roleLogger(.coordinator, worker: ClusterConfig.coordinatorID)
        report = StatsReporter(role: .coordinator, sender: ClusterConfig.coordinatorID, host: config.coordinatorHost.name, rejects: rejects)
        report.set(["prompts_granted_total": 0, "prompts_requeued_total": 0])
        node = try WireNode(config: config, security: security)
        let suite = TaskSuite.builtIn(seed: 1)
        let t = config.training
        scheduler = Scheduler(promptIDs: suite.train.map { UInt64($0.id) }, batchSize: t.batchSize,
                              maxLag: t.maxLag, seed: UInt64(t.seed), promptsForStep: { t.freshGroups(step: $0) })
        if t.selection == "dots" {
            (selector, selectionLog) = try Self.makeSelector(config, train: suite.train, runDir: runDir)
        }
    }

    public func run() throws {
        let assignment = try node.bind(.assignment)
        let weightsSocket = try node.bind(.weights)
        let announce = try node.bind(.announce)
        let updates = try node.bind(.updates)
        let stats = try node.bind(.stats)
        let metrics = startMetricsServer()
        // The informative reference groups of each round go to the learner as training data (reference_feed).
        if feedReferences { referenceFeed = try node.connect(.rollouts) }
        defer { [assignment, weightsSocket, announce, updates, stats].forEach { $0.close() }; referenceFeed?.close(); metrics?.close(); node.close() }
        let poller = ZMQPoller()
        let pa = poller.add(assignment), pw = poller.add(weightsSocket), pu = poller.add(updates), ps = poller.add(stats)
        let pm = metrics.map { poller.add($0.socket) }
        log.info("listening; waiting for the learner's weights")
        var lastCheck = Date()
        while !StopSignal.requested {
            for i in try poller.poll(timeout: .milliseconds(200)) {
                while let frames = try poller[i].receive(timeout: .zero) {
                    switch i {
                    case pa: try handleAssignment(frames, assignment)
                    case pw: try handleWeightsRequest(frames, weightsSocket)
                    case pu: handleUpdate(frames, announce)
                    case ps: handleStats(frames)
                    case pm: metrics?.handle(frames, metrics: exposition)
                    default: break
                    }
                }
            }
            if let done = selectionResult.take() { finishSelection(done) }
            if Date().timeIntervalSince(lastCheck) > 1 {
                lastCheck = Date()
                reapDeadActors()
                recordSelf()
            }
        }
        _ = try? announce.send(WireCodec.encode(.control(Control(.shutdown, weightsVersion: weights?.version ?? 0, reason: "coordinator stopping")),
                                                sender: ClusterConfig.coordinatorID), dontWait: true)
        log.info("stopped")
    }

    /// ROUTER frames: [routing id, message frames…].
    private func split(_ frames: [[UInt8]]) -> (id: [UInt8], envelope: Envelope)? {
        guard frames.count >= 2 else { return nil }
        guard let env = codec.decode(Array(frames.dropFirst()), rejects: rejects) else { return nil }
        return (frames[0], env)
    }

    private func handleAssignment(_ frames: [[UInt8]], _ socket: ZMQSocket) throws {
        guard let (id, env) = split(frames), case .assignmentRequest(let req) = env.message else { return }
        lastSeen[req.actorID] = Date()
        // An actor holding no weights has just started: if its id holds a grant, the process it was granted
        // to died and was replaced before it was missed (3 s), and those prompts were never done.
        if req.weightsVersion == WeightsRequest.none { requeue(req.actorID, because: "restarted") }
        guard let w = weights else {
            try reply(socket, id, .assignmentGrant(emptyGrant(version: 0)))
            return
        }
        let items = scheduler.grant(actor: req.actorID, capacity: Int(req.capacity))
        report.add("prompts_granted_total", Double(items.count))
        let t = config.training
        let grant = AssignmentGrant(step: UInt64(items.first?.step ?? 0), weightsVersion: w.version,
                                    promptIDs: items.map(\.promptID), groupSize: UInt32(t.groupSize),
                                    temperature: Float(t.temperature), maxNewTokens: UInt32(t.maxNewTokens))
        try reply(socket, id, .assignmentGrant(grant))
    }

    private func emptyGrant(version: UInt64) -> AssignmentGrant {
        AssignmentGrant(step: 0, weightsVersion: version, promptIDs: [], groupSize: UInt32(config.training.groupSize),
                        temperature: Float(config.training.temperature), maxNewTokens: UInt32(config.training.maxNewTokens))
    }

    private func reply(_ socket: ZMQSocket, _ id: [UInt8], _ message: Message) throws {
        do {
            _ = try socket.send([id] + WireCodec.encode(message, sender: ClusterConfig.coordinatorID), dontWait: true)
        } catch let e where e.hostUnreachable {
            // The requester went away between asking and our reply (ROUTER_MANDATORY): nothing to do.
        }
    }

    private func handleWeightsRequest(_ frames: [[UInt8]], _ socket: ZMQSocket) throws {
        guard let (id, env) = split(frames), case .weightsRequest = env.message, let w = weights else { return }
        for chunk in w.chunks { try reply(socket, id, .weights(chunk)) }
    }

    /// A new version from the learner: keep it for snapshots, and announce it (Clone's update half) so
    /// subscribed actors have it before their next grant; one that misses a chunk fetches a snapshot.
    private func handleUpdate(_ frames: [[UInt8]], _ announce: ZMQSocket) {
        guard let env = codec.decode(frames, rejects: rejects), case .weights(let chunk) = env.message else { return }
        // The learner is the only producer and sends a version's chunks in order; chunk 0 of a version not
        // newer than ours means it restarted from a checkpoint: follow it back.
        let rewind = chunk.chunkIndex == 0 && weights.map { chunk.weightsVersion <= $0.version } == true
        if rewind { assembler = WeightsAssembler() }
        if case .complete(let version, let params) = assembler.add(chunk) {
            if weights == nil && version > 0 {
                // Started beside a learner that is already training (this coordinator was restarted, or the
                // run resumed): the step clock is the learner's version, and the draw skips what it took.
                scheduler.fastForward(toStep: Int(version))
                roleLog("coordinator", "joined the learner at weights version \(version); issuing steps from \(version)")
            } else if rewind || weights.map({ version <= $0.version }) == true {
                scheduler.rewind(toVersion: Int(version))
                selectedThrough = scheduler.nextStep
                log.info("the learner re-sent its weights (it resumed, or its connection came back); its steps are issued again",
                         metadata: ["weights_version": "\(version)"])
            }
            if selector != nil { latestParams = params }
            let chunks = WeightsChunk.split(params, version: version)
            weights = (version, chunks)
            for c in chunks {
                // PUB drops at its high-water mark rather than block: the snapshot path covers a loss.
                _ = try? announce.send(WireCodec.encode(.weights(c), sender: ClusterConfig.coordinatorID), dontWait: true)
            }
            advanceSchedule()
        }
    }

    private func handleStats(_ frames: [[UInt8]]) {
        guard let env = codec.decode(frames, rejects: rejects) else { return }
        switch env.message {
        case .heartbeat(let s), .stats(let s):
            if s.role == .actor {
                // A new pid under a known id: the actor restarted, and its predecessor's grant is lost.
                if let before = cluster.workers[env.sender]?.stats.pid, before != s.pid { requeue(env.sender, because: "restarted") }
                lastSeen[env.sender] = Date()
            }
            record(env.sender, s)
        default: break
        }
    }

    private func reapDeadActors() {
        let now = Date()
        for (actor, seen) in lastSeen where now.timeIntervalSince(seen) > deadAfter {
            lastSeen[actor] = nil
            requeue(actor, because: "missed its heartbeats", always: true)
        }
    }

    /// Puts the prompts `actor` holds back at the front of the queue, and says so (naming them). A restart
    /// quicker than the 3 s reaping would otherwise lose them: the new process's first request, or its first
    /// heartbeat with a new pid, is how the coordinator learns of it.
    private func requeue(_ actor: UInt64, because reason: String, always: Bool = false) {
        let held = scheduler.outstanding[actor] ?? []
        guard always || !held.isEmpty else { return }
        scheduler.actorDied(actor, currentVersion: Int(weights?.version ?? 0))
        report.add("prompts_requeued_total", Double(held.count))
        log.warning("actor \(reason); its outstanding prompts are re-queued",
                    metadata: ["actor": "\(actor)", "prompts": "\(held.count)",
                               "prompt_at_step": "\(held.map { "\($0.promptID)@\($0.step)" }.joined(separator: " "))"])
    }
}

// MARK: - DOTS selection rounds

extension CoordinatorNode {
    static func makeSelector(_ config: ClusterConfig, train: [Problem], runDir: URL?) throws -> (DotsSelector, JSONLinesWriter?) {
        let t = config.training
        guard let dir = config.string("training.predictor"), !dir.isEmpty else {
            throw ModelError.input("training.selection = \"dots\" needs training.predictor, a folder made by `dots predictor train`.")
        }
        var s = DotsSelector.Settings()
        s.references = t.referenceSize
        s.groupSize = t.groupSize
        s.alpha = t.alpha
        s.tau = t.tau
        s.temperature = Float(t.temperature)
        s.maxNewTokens = t.maxNewTokens
        s.refit = DifficultyPredictor.Refit(rawValue: config.string("training.predictor_refit") ?? "linear") ?? .linear
        s.seed = UInt64(t.seed)
        // A seeded random subset of the train split when training.selection_pool asks for one.
        var pool = train
        let size = config.int("training.selection_pool") ?? 0
        if size > 0 && size < pool.count {
            var rng = SplitMix64(seed: UInt64(t.seed) &+ 0x9001)
            pool.shuffle(using: &rng)
            pool = Array(pool.prefix(size))
        }
        let start = Date()
        let selector = try DotsSelector(predictorDir: URL(fileURLWithPath: dir), pool: pool,
                                        modelCheckpoint: URL(fileURLWithPath: config.model.checkpoint), settings: s)
        roleLog("coordinator", String(format: "DOTS selection: predictor %@, %d candidate prompts, K = %d, μ = %d, α = %g, τ = %g (ready in %.1f s)",
                                      dir, pool.count, s.references, t.selectionEvery, s.alpha, s.tau, Date().timeIntervalSince(start)))
        if config.bool("training.reference_feed") == true && t.maxLag > 0 {
            roleLog("coordinator", "training.reference_feed needs max_lag = 0; the reference groups are not fed to the learner")
        }
        var log: JSONLinesWriter?
        if let runDir {
            try FileManager.default.createDirectory(at: runDir, withIntermediateDirectories: true)
            log = try JSONLinesWriter(path: runDir.appendingPathComponent("selection.jsonl").path)
        }
        return (selector, log)
    }

    /// Queues the steps the newest weights version allows, after the selection rounds they need: a round
    /// (its steps from the first unselected one to the round's end) is selected before its first step is
    /// issued. A round in flight holds the queue back; its completion calls this again.
    func advanceSchedule() {
        guard let w = weights else { return }
        let version = Int(w.version), t = config.training, mu = t.selectionEvery
        if let selector {
            if selectionInFlight { return }
            selectedThrough = max(selectedThrough, scheduler.nextStep, version)
            if selectedThrough <= version + t.maxLag && selectedThrough < t.steps {
                let start = selectedThrough, end = min((start / mu + 1) * mu, t.steps)
                let counts = (start..<end).map { t.freshGroups(step: $0) }
                selectionInFlight = true
                let params = latestParams, result = selectionResult, v = w.version
                Thread.detachNewThread {
                    let outcome: SelectionOutcome
                    do {
                        let round = try selector.select(count: counts.reduce(0, +), round: start / mu, weights: params, version: v)
                        outcome = SelectionOutcome(start: start, counts: counts, version: v, round: round, error: nil)
                    } catch {
                        outcome = SelectionOutcome(start: start, counts: counts, version: v, round: nil, error: "\(error)")
                    }
                    result.put(outcome)
                }
                return
            }
        }
        scheduler.advance(toVersion: version)
        log.debug("new weights version", metadata: ["weights_version": "\(version)", "queued_through_step": "\(scheduler.nextStep - 1)"])
    }

    /// A selection round is done: plan its steps, log it, and go on queueing.
    func finishSelection(_ outcome: SelectionOutcome) {
        selectionInFlight = false
        let mu = config.training.selectionEvery, end = outcome.start + outcome.counts.count
        if let round = outcome.round {
            // With reference_feed, the round's informative reference groups stand in for as many of its
            // first step's prompts: the actors get fewer, the learner gets those groups from here.
            let fed = feedReferences ? Array(round.informative.prefix(outcome.counts[0])) : []
            var offset = 0
            for (k, (step, n)) in zip(outcome.start..<end, outcome.counts).enumerated() {
                let take = k == 0 ? n - fed.count : n
                scheduler.plan(step: step, prompts: Array(round.prompts[min(offset, round.prompts.count)..<min(offset + take, round.prompts.count)]),
                               exact: k == 0 && !fed.isEmpty)
                offset += n
            }
            if let socket = referenceFeed {
                for r in fed {
                    let group = RolloutGroup(promptID: UInt64(r.problem.id), weightsVersion: outcome.version, actorID: ClusterConfig.coordinatorID,
                                             promptTokens: r.promptTokens.map { UInt32(bitPattern: $0) },
                                             completions: r.completions.map { Wire.Completion(tokens: $0.tokens.map { UInt32(bitPattern: $0) }, logProbs: $0.logProbs, reward: Float($0.reward)) },
                                             generationSeconds: round.referenceSeconds / Double(max(1, round.referenceCount)))
                    try? sendPatiently(socket, WireCodec.encode(.rolloutGroup(group), sender: ClusterConfig.coordinatorID))
                }
            }
            var record = round.record
            record["fed_to_learner"] = fed.count
            record["steps"] = Array(outcome.start..<end)
            record["time"] = Date().timeIntervalSince1970
            selectionLog?.write(record)
            let secs = record["seconds"] as? [String: Double] ?? [:]
            report.set(["selection_seconds": secs["prediction"] ?? 0, "reference_seconds": secs["reference_rollouts"] ?? 0])
            roleLog("coordinator", String(format: "selection round %d (steps %d–%d) on version %llu: references %.2f s, prediction %.2f s, predicted difficulty of the selected %.3f",
                                          outcome.start / mu, outcome.start, end - 1, outcome.version, secs["reference_rollouts"] ?? 0,
                                          secs["prediction"] ?? 0, record["predicted_mean_difficulty_selected"] as? Double ?? 0))
        } else {
            roleLog("coordinator", "selection round \(outcome.start / mu) failed (\(outcome.error ?? "?")); its steps get uniform prompts")
        }
        selectedThrough = end
        advanceSchedule()
    }
}

/// Where a selection thread leaves its outcome for the coordinator's loop.
final class SelectionInbox: Sendable {
    private let value = Mutex<SelectionOutcome?>(nil)
    func put(_ outcome: SelectionOutcome) { value.withLock { $0 = outcome } }
    func take() -> SelectionOutcome? { value.withLock { v in defer { v = nil }; return v } }
}

/// What a selection thread hands back to the coordinator's loop.
struct SelectionOutcome: Sendable {
    var start: Int
    var counts: [Int]
    var version: UInt64
    var round: DotsSelector.Round?
    var error: String?
}
