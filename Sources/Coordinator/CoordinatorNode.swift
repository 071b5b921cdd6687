import Foundation
import Model
import Monitor
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

    public init(config: ClusterConfig, security: WireSecurity?) throws {
        self.config = config
        log = roleLogger(.coordinator, worker: ClusterConfig.coordinatorID)
        report = StatsReporter(role: .coordinator, sender: ClusterConfig.coordinatorID, host: config.coordinatorHost.name, rejects: rejects)
        report.set(["prompts_granted_total": 0, "prompts_requeued_total": 0])
        node = try WireNode(config: config, security: security)
        let suite = TaskSuite.builtIn(seed: 1)
        let t = config.training
        scheduler = Scheduler(promptIDs: suite.train.map { UInt64($0.id) }, batchSize: t.batchSize,
                              maxLag: t.maxLag, seed: UInt64(t.seed), promptsForStep: { t.freshGroups(step: $0) })
    }

    public func run() throws {
        let assignment = try node.bind(.assignment)
        let weightsSocket = try node.bind(.weights)
        let announce = try node.bind(.announce)
        let updates = try node.bind(.updates)
        let stats = try node.bind(.stats)
        let metrics = startMetricsServer()
        defer { [assignment, weightsSocket, announce, updates, stats].forEach { $0.close() }; metrics?.close(); node.close() }
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
        guard let w = weights else {
            try reply(socket, id, .assignmentGrant(emptyGrant(version: 0)))
            return
        }
        // An actor asking without weights is a new process (or one whose fetch failed): it cannot have done
        // the work granted to its id before.
        if req.weightsVersion == WeightsRequest.none { requeue(req.actorID, because: "asks without weights") }
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
            if rewind || weights.map({ version <= $0.version }) == true {
                scheduler.rewind(toVersion: Int(version))
                log.info("the learner resumed; its steps are issued again", metadata: ["weights_version": "\(version)"])
            }
            let chunks = WeightsChunk.split(params, version: version)
            weights = (version, chunks)
            for c in chunks {
                // PUB drops at its high-water mark rather than block: the snapshot path covers a loss.
                _ = try? announce.send(WireCodec.encode(.weights(c), sender: ClusterConfig.coordinatorID), dontWait: true)
            }
            scheduler.advance(toVersion: Int(version))
            log.debug("new weights version", metadata: ["weights_version": "\(version)", "queued_through_step": "\(scheduler.nextStep - 1)"])
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

    /// Puts an actor's outstanding prompts back at the front of the queue. A restart quicker than the 3 s
    /// reaping would otherwise lose them: the new process's first request would count them as done.
    private func requeue(_ actor: UInt64, because reason: String) {
        guard let held = scheduler.outstanding[actor], !held.isEmpty else { return }
        scheduler.actorDied(actor, currentVersion: Int(weights?.version ?? 0))
        report.add("prompts_requeued_total", Double(held.count))
        log.warning("actor \(reason); its outstanding prompts are re-queued", metadata: ["actor": "\(actor)", "prompts": "\(held.count)"])
    }

    private func reapDeadActors() {
        let now = Date()
        for (actor, seen) in lastSeen where now.timeIntervalSince(seen) > deadAfter {
            lastSeen[actor] = nil
            let held = scheduler.outstanding[actor]?.count ?? 0
            scheduler.actorDied(actor, currentVersion: Int(weights?.version ?? 0))
            report.add("prompts_requeued_total", Double(held))
            log.warning("actor missed its heartbeats; its prompts are re-queued", metadata: ["actor": "\(actor)", "prompts": "\(held)"])
        }
    }
}
