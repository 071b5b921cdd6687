import Foundation
import Model
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

    public init(config: ClusterConfig, security: WireSecurity?) throws {
        self.config = config
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
        defer { [assignment, weightsSocket, announce, updates, stats].forEach { $0.close() }; node.close() }
        let poller = ZMQPoller()
        let pa = poller.add(assignment), pw = poller.add(weightsSocket), pu = poller.add(updates), ps = poller.add(stats)
        roleLog("coordinator", "listening; waiting for the learner's weights")
        var lastCheck = Date()
        while !StopSignal.requested {
            for i in try poller.poll(timeout: .milliseconds(200)) {
                while let frames = try poller[i].receive(timeout: .zero) {
                    switch i {
                    case pa: try handleAssignment(frames, assignment)
                    case pw: try handleWeightsRequest(frames, weightsSocket)
                    case pu: handleUpdate(frames, announce)
                    case ps: handleStats(frames)
                    default: break
                    }
                }
            }
            if Date().timeIntervalSince(lastCheck) > 1 {
                lastCheck = Date()
                reapDeadActors()
            }
        }
        _ = try? announce.send(WireCodec.encode(.control(Control(.shutdown, weightsVersion: weights?.version ?? 0, reason: "coordinator stopping")),
                                                sender: ClusterConfig.coordinatorID), dontWait: true)
        roleLog("coordinator", "stopped")
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
                roleLog("coordinator", "the learner re-sent version \(version) (it resumed, or its connection came back); steps from \(version) are issued again")
            }
            let chunks = WeightsChunk.split(params, version: version)
            weights = (version, chunks)
            for c in chunks {
                // PUB drops at its high-water mark rather than block: the snapshot path covers a loss.
                _ = try? announce.send(WireCodec.encode(.weights(c), sender: ClusterConfig.coordinatorID), dontWait: true)
            }
            scheduler.advance(toVersion: Int(version))
            roleLog("coordinator", "weights version \(version); queued through step \(scheduler.nextStep - 1)")
        }
    }

    private func handleStats(_ frames: [[UInt8]]) {
        guard let env = codec.decode(frames, rejects: rejects) else { return }
        switch env.message {
        case .heartbeat(let s), .stats(let s):
            if s.role == .actor { lastSeen[env.sender] = Date() }
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

    /// Puts the prompts `actor` holds back at the front of the queue, and says so (naming them).
    private func requeue(_ actor: UInt64, because reason: String, always: Bool = false) {
        let held = scheduler.outstanding[actor] ?? []
        guard always || !held.isEmpty else { return }
        scheduler.actorDied(actor, currentVersion: Int(weights?.version ?? 0))
        roleLog("coordinator", "actor \(actor) \(reason); re-queued \(held.count) prompt(s)"
                + (held.isEmpty ? "" : " (prompt@step: \(held.map { "\($0.promptID)@\($0.step)" }.joined(separator: " ")))"))
    }
}
