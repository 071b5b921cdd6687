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
    /// Counters, timings and state for the coordinator (heartbeats), from a thread of its own.
    let report: StatsReporter
    let log: Logger

    public init(config: ClusterConfig, security: WireSecurity?, actorID: UInt64, host: String) throws {
        self.config = config
        self.actorID = actorID
        log = roleLogger(.actor, worker: actorID)
        report = StatsReporter(role: .actor, sender: actorID, host: host, rejects: rejects)
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
        report.startReporting(node)
        defer { report.stopReporting() }
        var assignment = try node.connect(.assignment, identity: actorID)
        let weightsSocket = try node.connect(.weights, identity: actorID)
        let rollouts = try node.connect(.rollouts)
        let announce = try node.connect(.announce)
        defer { [assignment, weightsSocket, rollouts, announce].forEach { $0.close() }; node.close() }
        log.info("started", metadata: ["capacity": "\(capacity)"])
        // Until a grant arrives, say "no weights": a restarted actor has the same id as the one that died,
        // and this is how the coordinator learns that whatever it granted that id before is lost.
        var joined = false
        while !StopSignal.requested {
            checkAnnouncements(announce)
            // Lazy Pirate: ask, wait a bounded time, and on silence reconnect and ask again.
            let request = AssignmentRequest(actorID: actorID, capacity: UInt32(capacity),
                                            weightsVersion: joined ? version ?? WeightsRequest.none : WeightsRequest.none)
            if version != nil { report.setState(.waiting) }
            let grant: AssignmentGrant? = try report.phase("waiting") {
                _ = try assignment.send(WireCodec.encode(.assignmentRequest(request), sender: actorID))
                guard let frames = try assignment.receive(timeout: .seconds(3)) else {
                    log.debug("no answer from the coordinator in 3 s; reconnecting")
                    assignment.close()
                    assignment = try node.connect(.assignment, identity: actorID)
                    return nil
                }
                guard let env = codec.decode(frames, rejects: rejects), case .assignmentGrant(let grant) = env.message else { return nil }
                joined = true
                if grant.promptIDs.isEmpty { Thread.sleep(forTimeInterval: 0.05) }
                return grant
            }
            guard let grant, !grant.promptIDs.isEmpty else { continue }
            checkAnnouncements(announce)
            if version != grant.weightsVersion {
                report.setState(.syncing)
                guard try report.phase("weights_fetch", { try fetchWeights(weightsSocket, want: grant.weightsVersion) }) else { continue }
            }
            report.setState(.working)
            // Reference work (a DOTS round's reference prompts) goes back to the coordinator on the DEALER
            // it came from; training groups go to the learner.
            try work(grant, grant.work == .reference ? assignment : rollouts)
        }
        report.setState(.stopping)
        log.info("stopped")
    }

    private func checkAnnouncements(_ socket: ZMQSocket) {
        while let frames = try? socket.receive(timeout: .zero) {
            guard let env = codec.decode(frames, rejects: rejects) else { continue }
            switch env.message {
            case .control(let c) where c.command == .shutdown:
                log.info("shutdown announced", metadata: ["reason": "\(c.reason)"])
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
        if version == nil { log.info("joined", metadata: ["weights_version": "\(v)"]) }
        log.debug("holding weights version \(v)")
        version = v
        report.setVersion(v)
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
                    log.error("weights version \(v) have \(params.count) parameters, the model \(engine.model.parameterCount); ignored")
                    return false
                }
                engine.model.parameters.write(params, at: 0)
                setVersion(v)
                return true
            }
        }
        return false
    }

    private func work(_ grant: AssignmentGrant, _ destination: ZMQSocket) throws {
        let reference = grant.work == .reference
        let items = grant.promptIDs.compactMap { id -> Problem? in
            guard let p = problems[id] else { rejects.record(Rejection(.unknownPromptID, "prompt id \(id) is not in the dataset")); return nil }
            return p
        }
        let start = Date()
        let opts = SamplingOptions(temperature: grant.temperature, maxNewTokens: Int(grant.maxNewTokens),
                                   seed: UInt64(config.training.seed) &* 1_000_003 &+ grant.step &* 7919 &+ actorID &+ (reference ? 0xD075 : 0))
        let out = try report.phase("generation") { try engine.rollout(items, samples: Int(grant.groupSize), options: opts) }
        let seconds = Date().timeIntervalSince(start)
        var tokens = 0
        for r in out {
            let completions: [Wire.Completion] = r.completions.map { c in
                Wire.Completion(tokens: c.tokens.map { UInt32(bitPattern: $0) }, logProbs: c.logProbs, reward: Float(c.reward))
            }
            let promptTokens: [UInt32] = r.promptTokens.map { UInt32(bitPattern: $0) }
            // A reference group says the version it was really sampled with (the coordinator refuses older ones).
            let group = RolloutGroup(promptID: UInt64(r.problem.id), weightsVersion: reference ? version ?? grant.weightsVersion : grant.weightsVersion,
                                     actorID: actorID,
                                     promptTokens: promptTokens, completions: completions,
                                     generationSeconds: seconds / Double(out.count))
            tokens += group.tokensGenerated
            // Waits at the high-water mark (a slow learner slows the actors instead of losing groups), but
            // never past a stop request: a learner that is gone must not keep an actor alive.
            try report.phase("sending") { try sendPatiently(destination, WireCodec.encode(.rolloutGroup(group), sender: actorID)) }
            report.add(reference ? "reference_groups_sent_total" : "groups_sent_total", 1)
            report.add("tokens_generated_total", Double(group.tokensGenerated))
        }
        report.set("tokens_per_s", Double(tokens) / max(seconds, 1e-9))
    }
}
