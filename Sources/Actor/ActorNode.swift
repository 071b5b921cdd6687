import Foundation
import Model
import Synchronization
import Tasks
import Wire

/// The actor process: asks the coordinator for prompts (credit-based ROUTER/DEALER), makes sure it holds
/// the weights version of the grant (fetching a snapshot if not), samples G completions per prompt with
/// the KV cache, scores them, and pushes one rollout group per prompt straight to the learner.
/// Heartbeats go out from their own thread every second, so a long generation never looks like death.
public final class ActorNode {
    let config: ClusterConfig
    let node: WireNode
    let actorID: UInt64
    let problems: [UInt64: Problem]
    let rejects = RejectCounter(name: "actor")
    let codec = WireCodec()
    var engine: RolloutEngine
    var version: UInt64?
    /// Versions announced on PUB, assembled as their chunks arrive.
    var announced = WeightsAssembler()
    /// Prompts asked for per request: a few groups, so work spreads over actors and a dead one loses little.
    let capacity: Int
    private let counters = Counters()

    public init(config: ClusterConfig, security: WireSecurity?, actorID: UInt64) throws {
        self.config = config
        self.actorID = actorID
        node = try WireNode(config: config, security: security)
        let suite = TaskSuite.builtIn(seed: 1)
        var byID: [UInt64: Problem] = [:]
        for p in suite.train + suite.test { byID[UInt64(p.id)] = p }
        problems = byID
        // The model's shape comes with the weights; until then a placeholder of the configured checkpoint.
        let (model, tok) = try Checkpoint.load(URL(fileURLWithPath: config.model.checkpoint))
        engine = RolloutEngine(model: model, tokenizer: tok)
        let perActor = max(1, config.training.batchSize / max(1, config.actors.count) / 2)
        capacity = min(perActor, max(1, 256 / max(1, config.training.groupSize)))
    }

    public func run() throws {
        setComputeThreads(config.model.threads)
        let heartbeat = startHeartbeats()
        defer { heartbeat.set() }
        var assignment = try node.connect(.assignment, identity: actorID)
        let weightsSocket = try node.connect(.weights, identity: actorID)
        let rollouts = try node.connect(.rollouts)
        let announce = try node.connect(.announce)
        defer { [assignment, weightsSocket, rollouts, announce].forEach { $0.close() }; node.close() }
        roleLog("actor \(actorID)", "started; capacity \(capacity) prompt(s) a request")
        // Until a grant arrives, say "no weights": a restarted actor has the same id as the one that died,
        // and this is how the coordinator learns that whatever it granted that id before is lost.
        var joined = false
        while !StopSignal.requested {
            checkAnnouncements(announce)
            // Lazy Pirate: ask, wait a bounded time, and on silence reconnect and ask again.
            let request = AssignmentRequest(actorID: actorID, capacity: UInt32(capacity),
                                            weightsVersion: joined ? version ?? WeightsRequest.none : WeightsRequest.none)
            _ = try assignment.send(WireCodec.encode(.assignmentRequest(request), sender: actorID))
            guard let frames = try assignment.receive(timeout: .seconds(3)) else {
                assignment.close()
                assignment = try node.connect(.assignment, identity: actorID)
                continue
            }
            guard let env = codec.decode(frames, rejects: rejects), case .assignmentGrant(let grant) = env.message else { continue }
            joined = true
            if grant.promptIDs.isEmpty {
                Thread.sleep(forTimeInterval: 0.05)
                continue
            }
            checkAnnouncements(announce)
            if version != grant.weightsVersion {
                guard try fetchWeights(weightsSocket, want: grant.weightsVersion) else { continue }
            }
            try work(grant, rollouts)
        }
        roleLog("actor \(actorID)", "stopped")
    }

    private func checkAnnouncements(_ socket: ZMQSocket) {
        while let frames = try? socket.receive(timeout: .zero) {
            guard let env = codec.decode(frames, rejects: rejects) else { continue }
            switch env.message {
            case .control(let c) where c.command == .shutdown:
                roleLog("actor \(actorID)", "shutdown announced: \(c.reason)")
                StopSignal.request()
            case .weights(let chunk):
                if case .complete(let v, let params) = announced.add(chunk), v > (version ?? 0) || version == nil,
                   params.count == engine.model.parameterCount {
                    engine.model.parameters.write(params, at: 0)
                    setVersion(v)
                }
            default: break
            }
        }
    }

    private func setVersion(_ v: UInt64) {
        // A snapshot older than what was announced means the learner resumed from a checkpoint.
        if let last = announced.lastCompleted, v < last { announced = WeightsAssembler() }
        version = v
        counters.update { $0["weights_version"] = Double(v) }
    }

    /// Fetches the current weights snapshot (the Clone pattern's snapshot half).
    private func fetchWeights(_ socket: ZMQSocket, want: UInt64) throws -> Bool {
        _ = try socket.send(WireCodec.encode(.weightsRequest(WeightsRequest(actorID: actorID, weightsVersion: version ?? WeightsRequest.none)), sender: actorID))
        var assembler = WeightsAssembler()
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline, !StopSignal.requested {
            guard let frames = try socket.receive(timeout: .seconds(1)) else { continue }
            guard let env = codec.decode(frames, rejects: rejects), case .weights(let chunk) = env.message else { continue }
            if case .complete(let v, let params) = assembler.add(chunk) {
                guard params.count == engine.model.parameterCount else {
                    roleLog("actor \(actorID)", "weights version \(v) have \(params.count) parameters, the model \(engine.model.parameterCount); ignored")
                    return false
                }
                engine.model.parameters.write(params, at: 0)
                setVersion(v)
                return true
            }
        }
        return false
    }

    private func work(_ grant: AssignmentGrant, _ rollouts: ZMQSocket) throws {
        let items = grant.promptIDs.compactMap { id -> Problem? in
            guard let p = problems[id] else { rejects.record(Rejection(.unknownPromptID, "prompt id \(id) is not in the dataset")); return nil }
            return p
        }
        let start = Date()
        let opts = SamplingOptions(temperature: grant.temperature, maxNewTokens: Int(grant.maxNewTokens),
                                   seed: UInt64(config.training.seed) &* 1_000_003 &+ grant.step &* 7919 &+ actorID)
        let out = try engine.rollout(items, samples: Int(grant.groupSize), options: opts)
        let seconds = Date().timeIntervalSince(start)
        var tokens = 0
        for r in out {
            let completions: [Wire.Completion] = r.completions.map { c in
                Wire.Completion(tokens: c.tokens.map { UInt32(bitPattern: $0) }, logProbs: c.logProbs, reward: Float(c.reward))
            }
            let promptTokens: [UInt32] = r.promptTokens.map { UInt32(bitPattern: $0) }
            let group = RolloutGroup(promptID: UInt64(r.problem.id), weightsVersion: grant.weightsVersion, actorID: actorID,
                                     promptTokens: promptTokens, completions: completions,
                                     generationSeconds: seconds / Double(out.count))
            tokens += group.tokensGenerated
            // Waits at the high-water mark (a slow learner slows the actors instead of losing groups), but
            // never past a stop request: a learner that is gone must not keep an actor alive.
            try sendPatiently(rollouts, WireCodec.encode(.rolloutGroup(group), sender: actorID))
        }
        counters.update { c in
            c["groups_sent", default: 0] += Double(out.count)
            c["tokens_generated", default: 0] += Double(tokens)
            c["tokens_per_s"] = Double(tokens) / max(seconds, 1e-9)
        }
    }

    /// Sends a heartbeat with this actor's counters every second from a thread of its own (its own socket).
    private func startHeartbeats() -> Flag {
        let stop = Flag()
        let node = self.node, id = actorID, counters = self.counters
        let thread = Thread {
            guard let socket = try? node.connect(.stats) else { return }
            defer { socket.close() }
            while !stop.isSet && !StopSignal.requested {
                let values = counters.snapshot()
                let held = values["weights_version"].map { UInt64($0) } ?? WeightsRequest.none
                let hb = WorkerStats(role: .actor, pid: UInt32(getpid()), weightsVersion: held,
                                     sentAt: Date().timeIntervalSince1970, values: values)
                _ = try? socket.send(WireCodec.encode(.heartbeat(hb), sender: id), dontWait: true)
                Thread.sleep(forTimeInterval: 1)
            }
        }
        thread.start()
        return stop
    }
}

/// A flag shared between threads.
final class Flag: Sendable {
    private let value = Atomic<Bool>(false)
    var isSet: Bool { value.load(ordering: .relaxed) }
    func set() { value.store(true, ordering: .relaxed) }
}

/// Counters shared with the heartbeat thread.
final class Counters: Sendable {
    private let values = Mutex<[String: Double]>([:])
    func update(_ body: (inout [String: Double]) -> Void) { values.withLock { body(&$0) } }
    func snapshot() -> [String: Double] { values.withLock { $0 } }
}
