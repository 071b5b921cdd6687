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
    /// `training.reference_rollouts = "actors"`: the round's reference prompts are actor work, and this is
    /// the round collecting their groups (with the steps it selects for).
    var referenceOnActors: Bool { config.string("training.reference_rollouts") == "actors" }
    /// `training.reference_lead`: a round's reference rollouts start this many steps before its first
    /// step, so they run while the learner updates (on the weights of that earlier version).
    var referenceLead: Int { selector == nil ? 0 : config.int("training.reference_lead") ?? 0 }
    /// With a lead, a round's informative reference groups wait here until the learner trains the round's
    /// first step (sent earlier they would count toward the step before).
    var pendingFeed: (start: Int, groups: [RolloutGroup])?
    var reference: (work: ReferenceWork, start: Int, counts: [Int], draw: DotsSelector.ReferenceDraw)?
    /// The reference prompts of the latest complete round: a late second group of one is no bad message.
    var completedReferences: Set<UInt64> = []
    /// The rounds selected so far (RUN_DIR/selection-state.json), restored on start.
    var selectionState = SelectionState()
    var runDir: URL?

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
            self.runDir = runDir
            if let runDir, let saved = try SelectionState.load(runDir: runDir) {
                selectionState = saved
                roleLog("coordinator", "selection state of \(saved.rounds.count) round(s) found in \(runDir.path); unfinished rounds keep their prompts")
            }
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
        guard let (id, env) = split(frames) else { return }
        if case .rolloutGroup(let group) = env.message {
            acceptReference(group, from: env.sender)
            return
        }
        guard case .assignmentRequest(let req) = env.message else {
            rejects.record(Rejection(.invalidField, "\(env.message.kind) on the assignment socket"))
            return
        }
        lastSeen[req.actorID] = Date()
        // An actor holding no weights has just started: if its id holds a grant, the process it was granted
        // to died and was replaced before it was missed (3 s), and those prompts were never done.
        if req.weightsVersion == WeightsRequest.none { requeue(req.actorID, because: "restarted") }
        guard let w = weights else {
            try reply(socket, id, .assignmentGrant(emptyGrant(version: 0)))
            return
        }
        let t = config.training
        // A selection round's reference prompts go before any training work: the round's steps wait on them.
        // With a lead they go after it: the step before the round is trained first, the references fill
        // the actors' wait for its update.
        if reference != nil && (referenceLead == 0 || !scheduler.hasQueuedWork) {
            let ids = reference!.work.grant(actor: req.actorID, capacity: Int(req.capacity))
            if !ids.isEmpty {
                _ = scheduler.grant(actor: req.actorID, capacity: 0)
                report.add("reference_prompts_granted_total", Double(ids.count))
                let grant = AssignmentGrant(step: UInt64(reference!.start), weightsVersion: w.version, promptIDs: ids,
                                            groupSize: UInt32(t.groupSize), temperature: Float(t.temperature),
                                            maxNewTokens: UInt32(t.maxNewTokens), work: .reference)
                try reply(socket, id, .assignmentGrant(grant))
                return
            }
        }
        let items = scheduler.grant(actor: req.actorID, capacity: Int(req.capacity))
        report.add("prompts_granted_total", Double(items.count))
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
            if weights == nil {
                if version > 0 {
                    // Started beside a learner that is already training (this coordinator was restarted, or the
                    // run resumed): the step clock is the learner's version, and the draw skips what it took.
                    scheduler.fastForward(toStep: Int(version))
                    roleLog("coordinator", "joined the learner at weights version \(version); issuing steps from \(version)")
                }
                restoreSelection(learnerAt: Int(version))
            } else if rewind || weights.map({ version <= $0.version }) == true {
                // Nothing is queued until advanceSchedule below, after the saved rounds are planned again: the
                // first step issued gets its round's prompts. (A round in flight covers later steps than any
                // saved one, so the two never plan the same step.)
                scheduler.rewind(toVersion: Int(version))
                selectedThrough = scheduler.nextStep
                if reference != nil { reference = nil; selectionInFlight = false }
                pendingFeed = nil
                log.info("the learner re-sent its weights (it resumed, or its connection came back); its steps are issued again",
                         metadata: ["weights_version": "\(version)"])
                restoreSelection(learnerAt: Int(version))
            }
            if selector != nil && !referenceOnActors { latestParams = params }
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
        let heldReference = reference?.work.held(by: actor) ?? []
        guard always || !held.isEmpty || !heldReference.isEmpty else { return }
        scheduler.actorDied(actor, currentVersion: Int(weights?.version ?? 0))
        reference?.work.release(actor)
        report.add("prompts_requeued_total", Double(held.count + heldReference.count))
        log.warning("actor \(reason); its outstanding prompts are re-queued",
                    metadata: ["actor": "\(actor)", "prompts": "\(held.count)",
                               "prompt_at_step": "\(held.map { "\($0.promptID)@\($0.step)" }.joined(separator: " "))",
                               "reference_prompts": "\(heldReference.map(String.init).joined(separator: " "))"])
    }

    /// A reference group an actor sent back on its assignment DEALER; the round's selection starts when
    /// the last of its K groups is in.
    private func acceptReference(_ group: RolloutGroup, from sender: UInt64) {
        // Only an actor of the cluster counts as alive by sending one (a stray sender id must not become a member).
        if config.actors.contains(where: { $0.id == sender }) { lastSeen[sender] = Date() }
        guard reference != nil else {
            if completedReferences.contains(group.promptID) {
                log.debug("a late second reference group of prompt \(group.promptID); ignored")
                return
            }
            rejects.record(Rejection(.unknownPromptID, "reference group for prompt \(group.promptID) from \(sender), but no selection round is collecting"))
            return
        }
        do {
            guard try reference!.work.accept(group) else {
                log.debug("a second reference group of prompt \(group.promptID); ignored")
                return
            }
        } catch {
            rejects.record(error)
            return
        }
        report.add("reference_groups_received_total", 1)
        guard reference!.work.isComplete, let selector, let r = reference else { return }
        reference = nil
        completedReferences = Set(r.work.promptIDs)
        let groups = r.work.groups, seconds = Date().timeIntervalSince(r.work.started)
        let labels = groups.map(\.difficulty), count = r.counts.reduce(0, +)
        let result = selectionResult, version = r.work.weightsVersion, start = r.start, counts = r.counts, draw = r.draw
        // Prediction stays on the coordinator, on a thread of its own like a whole round in "coordinator" mode.
        let byActor = Dictionary(groups.map { (String($0.actorID), 1) }, uniquingKeysWith: +)
        Thread.detachNewThread {
            var round = selector.select(count: count, draw: draw, labels: labels, version: version, referenceSeconds: seconds)
            round.record["reference_groups_by_actor"] = byActor
            result.put(SelectionOutcome(start: start, counts: counts, version: version, round: round,
                                        informative: groups.filter(\.isInformative), error: nil))
        }
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
                                        modelCheckpoint: URL(fileURLWithPath: config.model.checkpoint), settings: s,
                                        rolloutsHere: config.string("training.reference_rollouts") != "actors")
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
            if let feed = pendingFeed, version >= feed.start {
                send(feed.groups)
                pendingFeed = nil
            }
            // Issues the steps the version allows that are already selected (all of them without a lead
            // while a round is in flight: the round's own steps come after it).
            func issueSelected() {
                let through = min(version, selectedThrough - 1 - t.maxLag)
                if through >= 0 && through + t.maxLag >= scheduler.nextStep { scheduler.advance(toVersion: through) }
            }
            if selectionInFlight { issueSelected(); return }
            selectedThrough = max(selectedThrough, scheduler.nextStep, version)
            if selectedThrough <= version + t.maxLag + referenceLead && selectedThrough < t.steps {
                let start = selectedThrough, end = min((start / mu + 1) * mu, t.steps)
                let counts = (start..<end).map { t.freshGroups(step: $0) }
                selectionInFlight = true
                if referenceOnActors {
                    // The round's first half: its K reference prompts become actor work (granted first).
                    let draw = selector.referenceDraw(round: start / mu)
                    reference = (ReferenceWork(round: start / mu, firstStep: start, weightsVersion: w.version,
                                               promptIDs: draw.promptIDs, groupSize: t.groupSize), start, counts, draw)
                    log.debug("selection round \(start / mu): \(draw.promptIDs.count) reference prompts queued for the actors")
                    issueSelected()
                    return
                }
                let params = latestParams, result = selectionResult, v = w.version
                Thread.detachNewThread {
                    let outcome: SelectionOutcome
                    do {
                        let round = try selector.select(count: counts.reduce(0, +), round: start / mu, weights: params, version: v)
                        let informative = round.informative.map { r in
                            RolloutGroup(promptID: UInt64(r.problem.id), weightsVersion: v, actorID: ClusterConfig.coordinatorID,
                                         promptTokens: r.promptTokens.map { UInt32(bitPattern: $0) },
                                         completions: r.completions.map { Wire.Completion(tokens: $0.tokens.map { UInt32(bitPattern: $0) }, logProbs: $0.logProbs, reward: Float($0.reward)) },
                                         generationSeconds: round.referenceSeconds / Double(max(1, round.referenceCount)))
                        }
                        outcome = SelectionOutcome(start: start, counts: counts, version: v, round: round, informative: informative, error: nil)
                    } catch {
                        outcome = SelectionOutcome(start: start, counts: counts, version: v, round: nil, informative: [], error: "\(error)")
                    }
                    result.put(outcome)
                }
                issueSelected()
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
            let fed = feedReferences ? Array(outcome.informative.prefix(outcome.counts[0])) : []
            var offset = 0, plans: [[UInt64]] = []
            for (k, (step, n)) in zip(outcome.start..<end, outcome.counts).enumerated() {
                let take = k == 0 ? n - fed.count : n
                let prompts = Array(round.prompts[min(offset, round.prompts.count)..<min(offset + take, round.prompts.count)])
                scheduler.plan(step: step, prompts: prompts, exact: k == 0 && !fed.isEmpty)
                plans.append(prompts)
                offset += n
            }
            if let w = weights, Int(w.version) < outcome.start { pendingFeed = (outcome.start, fed) } else { send(fed) }
            saveSelection(SelectionState.Round(round: outcome.start / mu, steps: Array(outcome.start..<end),
                                               weightsVersion: outcome.version, prompts: plans, fed: fed))
            var record = round.record
            record["fed_to_learner"] = fed.count
            record["reference_rollouts"] = referenceOnActors ? "actors" : "coordinator"
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

extension CoordinatorNode {
    /// Reference groups fed to the learner (`training.reference_feed`); the learner keeps one group per
    /// prompt and step, so one sent twice (after a restart) is harmless.
    func send(_ fed: [RolloutGroup]) {
        guard let socket = referenceFeed else { return }
        for group in fed { try? sendPatiently(socket, WireCodec.encode(.rolloutGroup(group), sender: ClusterConfig.coordinatorID)) }
    }

    /// Records a round in RUN_DIR/selection-state.json. Rounds are kept while a checkpoint the learner
    /// could resume from may still need them (two checkpoint intervals).
    func saveSelection(_ round: SelectionState.Round) {
        let every = config.training.checkpointEvery, version = Int(weights?.version ?? 0)
        selectionState.record(round, keepFrom: every > 0 ? version - 2 * every : version)
        guard let runDir else { return }
        do { try selectionState.save(runDir: runDir) } catch {
            log.error("could not save the selection state; a restart would select this round afresh", metadata: ["error": "\(error)"])
        }
    }

    /// Plans the steps of every saved round the learner (at `version`) has not finished with the prompts
    /// the round selected, and re-sends a round's fed reference groups if its first step is unfinished.
    func restoreSelection(learnerAt version: Int) {
        guard selector != nil else { return }
        for r in selectionState.unfinished(learnerAt: version) {
            for (k, (step, prompts)) in zip(r.steps, r.prompts).enumerated() where step >= version {
                scheduler.plan(step: step, prompts: prompts, exact: k == 0 && !r.fed.isEmpty)
            }
            if r.steps.first == version { send(r.fed) }
            selectedThrough = max(selectedThrough, (r.steps.last ?? 0) + 1)
            roleLog("coordinator", "selection round \(r.round) (steps \(r.steps.first ?? 0)–\(r.steps.last ?? 0)) restored from the selection state")
        }
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
    /// The round's reference groups with 0 < pass rate < 1, each tagged with the version that sampled it.
    var informative: [RolloutGroup]
    var error: String?
}
