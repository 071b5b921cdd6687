/// The kinds of Dots messages: the `kind` field of every header (u16). Numbers are part of the protocol;
/// never reuse one.
public enum MessageKind: UInt16, Sendable, CaseIterable, CustomStringConvertible {
    case rolloutGroup = 1
    case assignmentRequest = 2
    case assignmentGrant = 3
    case weightsRequest = 4
    case weights = 5
    case heartbeat = 6
    case stats = 7
    case control = 8

    /// Body frames each kind has: fixed, so a count mismatch is rejected before any parsing.
    public var bodyFrameCount: Int {
        switch self {
        case .rolloutGroup: 6
        case .assignmentRequest, .weightsRequest: 1
        case .assignmentGrant, .weights, .control: 2
        case .heartbeat, .stats: 3
        }
    }

    public var description: String {
        switch self {
        case .rolloutGroup: "RolloutGroup"
        case .assignmentRequest: "AssignmentRequest"
        case .assignmentGrant: "AssignmentGrant"
        case .weightsRequest: "WeightsRequest"
        case .weights: "Weights"
        case .heartbeat: "Heartbeat"
        case .stats: "Stats"
        case .control: "Control"
        }
    }
}

/// One sampled completion of a rollout group: what the learner needs to recompute log-probs and the loss.
public struct Completion: Sendable, Equatable {
    /// Token ids of the completion only (the prompt is in the group).
    public var tokens: [UInt32]
    /// log π_beh of each completion token, recorded by the actor at generation (one per token).
    public var logProbs: [Float]
    /// The verifier's reward r (binary in Dots' tasks, but any finite value travels).
    public var reward: Float

    public init(tokens: [UInt32], logProbs: [Float], reward: Float) {
        self.tokens = tokens
        self.logProbs = logProbs
        self.reward = reward
    }
}

/// G completions of one prompt sampled with one weights version: the unit GRPO computes advantages over.
public struct RolloutGroup: Sendable, Equatable {
    public var promptID: UInt64
    /// The version the actor sampled with; the learner drops groups more than `max_lag` behind.
    public var weightsVersion: UInt64
    /// The actor that generated the group (not necessarily the sender: the coordinator relays its own).
    public var actorID: UInt64
    public var promptTokens: [UInt32]
    /// The G completions.
    public var completions: [Completion]
    /// Wall-clock seconds the actor spent generating the group.
    public var generationSeconds: Double

    public init(promptID: UInt64, weightsVersion: UInt64, actorID: UInt64, promptTokens: [UInt32],
                completions: [Completion], generationSeconds: Double) {
        self.promptID = promptID
        self.weightsVersion = weightsVersion
        self.actorID = actorID
        self.promptTokens = promptTokens
        self.completions = completions
        self.generationSeconds = generationSeconds
    }

    /// Tokens generated over all completions (sent on the wire as a consistency check).
    public var tokensGenerated: Int { completions.reduce(0) { $0 + $1.tokens.count } }
}

/// An actor asks the coordinator for work (ROUTER/DEALER, credit-based: an actor is never sent more
/// prompts than it asked for, which is what keeps fast and slow actors fairly loaded).
public struct AssignmentRequest: Sendable, Equatable {
    public var actorID: UInt64
    /// Prompts the actor can take now.
    public var capacity: UInt32
    /// The weights version the actor holds.
    public var weightsVersion: UInt64

    public init(actorID: UInt64, capacity: UInt32, weightsVersion: UInt64) {
        self.actorID = actorID
        self.capacity = capacity
        self.weightsVersion = weightsVersion
    }
}

/// The coordinator's answer: which prompts to roll out, with which weights and sampling settings.
public struct AssignmentGrant: Sendable, Equatable {
    /// What the actor does with the groups it generates.
    public enum Work: UInt32, Sendable, CaseIterable {
        /// Training data: each group goes to the learner (`rollouts`).
        case training = 0
        /// A DOTS selection round's reference prompts (`training.reference_rollouts = "actors"`): each group
        /// goes back to the coordinator on the `assignment` DEALER, which labels the prompts' difficulty.
        case reference = 1
    }

    /// The training step these prompts are for (reference work: the first step of the selection round).
    public var step: UInt64
    /// The weights version to sample with; an actor holding an older one fetches it first.
    public var weightsVersion: UInt64
    public var promptIDs: [UInt64]
    /// G, completions per prompt.
    public var groupSize: UInt32
    public var temperature: Float
    public var maxNewTokens: UInt32
    public var work: Work

    public init(step: UInt64, weightsVersion: UInt64, promptIDs: [UInt64], groupSize: UInt32,
                temperature: Float, maxNewTokens: UInt32, work: Work = .training) {
        self.work = work
        self.step = step
        self.weightsVersion = weightsVersion
        self.promptIDs = promptIDs
        self.groupSize = groupSize
        self.temperature = temperature
        self.maxNewTokens = maxNewTokens
    }
}

/// A worker asks for the current weights (on join, or after missing a broadcast chunk): the snapshot
/// half of the zguide's Clone pattern.
public struct WeightsRequest: Sendable, Equatable {
    public var actorID: UInt64
    /// The version the worker holds; `WeightsRequest.none` if it holds none.
    public var weightsVersion: UInt64

    public static let none = UInt64.max

    public init(actorID: UInt64, weightsVersion: UInt64) {
        self.actorID = actorID
        self.weightsVersion = weightsVersion
    }
}

/// One chunk of a weights version: the flat f32 parameter buffer, cut so a 100 MB model never travels as
/// one message. `WeightsAssembler` puts the chunks back together.
public struct WeightsChunk: Sendable, Equatable {
    public var weightsVersion: UInt64
    /// Bytes of the whole parameter buffer (4 × parameters).
    public var totalBytes: UInt64
    /// Where this chunk's payload starts in the whole buffer, in bytes.
    public var byteOffset: UInt64
    public var chunkIndex: UInt32
    public var chunkCount: UInt32
    public var payload: [Float]

    public init(weightsVersion: UInt64, totalBytes: UInt64, byteOffset: UInt64, chunkIndex: UInt32,
                chunkCount: UInt32, payload: [Float]) {
        self.weightsVersion = weightsVersion
        self.totalBytes = totalBytes
        self.byteOffset = byteOffset
        self.chunkIndex = chunkIndex
        self.chunkCount = chunkCount
        self.payload = payload
    }

    /// Cuts a flat parameter buffer into chunks of at most `chunkBytes` (rounded down to whole floats).
    public static func split(_ parameters: [Float], version: UInt64, chunkBytes: Int = 4 << 20) -> [WeightsChunk] {
        let perChunk = max(1, chunkBytes / 4)
        let count = max(1, (parameters.count + perChunk - 1) / perChunk)
        return (0..<count).map { i in
            let start = i * perChunk
            let end = min(parameters.count, start + perChunk)
            return WeightsChunk(weightsVersion: version, totalBytes: UInt64(parameters.count * 4),
                                byteOffset: UInt64(start * 4), chunkIndex: UInt32(i), chunkCount: UInt32(count),
                                payload: Array(parameters[start..<end]))
        }
    }
}

/// Who sent a heartbeat or stats message.
public enum Role: UInt16, Sendable, CaseIterable, CustomStringConvertible {
    case coordinator = 1
    case learner = 2
    case actor = 3
    case launcher = 4

    public var description: String {
        switch self {
        case .coordinator: "coordinator"
        case .learner: "learner"
        case .actor: "actor"
        case .launcher: "launcher"
        }
    }
}

/// What a process is doing when it reports, so `dots top` and /metrics can show it.
public enum WorkerState: UInt16, Sendable, CaseIterable, CustomStringConvertible {
    /// Loading, binding or joining; no work yet.
    case starting = 1
    /// Waiting: for a grant (actor), for rollout groups (learner), for requests (coordinator).
    case waiting = 2
    /// Generating (actor), updating (learner), selecting (coordinator).
    case working = 3
    /// Fetching or publishing weights.
    case syncing = 4
    /// Draining before exit.
    case stopping = 5

    public var description: String {
        switch self {
        case .starting: "starting"
        case .waiting: "waiting"
        case .working: "working"
        case .syncing: "syncing"
        case .stopping: "stopping"
        }
    }
}

/// A worker's liveness and counters. The same body travels as `Heartbeat` (membership: the coordinator
/// declares a worker dead after missing several) and as `Stats` (aggregated for `dots top`, /metrics).
///
/// `values` follows Prometheus naming: a key ending in `_total` (before any `.qualifier`) is a counter
/// that only grows during the process's life ("tokens_generated_total", "phase_seconds_total.update");
/// any other key is a gauge ("step", "step_seconds"). docs/protocol.md lists the keys each role sends.
public struct WorkerStats: Sendable, Equatable {
    public var role: Role
    public var state: WorkerState
    public var pid: UInt32
    /// The weights version the worker holds (`WeightsRequest.none` if none yet).
    public var weightsVersion: UInt64
    /// Seconds since the Unix epoch when sent (for rates and staleness; clocks across hosts may differ).
    public var sentAt: Double
    /// Counters and gauges by name. Keys: 1–255 bytes of UTF-8.
    public var values: [String: Double]
    /// Text facts about the sender: "host" (its cluster.conf host name), "run_id". Keys 1–255 bytes,
    /// values at most 1024 bytes of UTF-8.
    public var labels: [String: String]

    public init(role: Role, state: WorkerState = .working, pid: UInt32, weightsVersion: UInt64, sentAt: Double,
                values: [String: Double] = [:], labels: [String: String] = [:]) {
        self.role = role
        self.state = state
        self.pid = pid
        self.weightsVersion = weightsVersion
        self.sentAt = sentAt
        self.values = values
        self.labels = labels
    }

    /// Longest label value on the wire.
    public static let maxLabelBytes = 1024
}

/// A control-plane command, broadcast by the coordinator or launcher.
public struct Control: Sendable, Equatable {
    public enum Command: UInt16, Sendable, CaseIterable {
        /// Stop taking new work; keep state.
        case pause = 1
        case resume = 2
        /// Finish and send what is in flight, then idle (before a checkpoint or a shutdown).
        case drain = 3
        /// Exit cleanly.
        case shutdown = 4
    }

    public var command: Command
    /// The weights version current when sent.
    public var weightsVersion: UInt64
    /// Why, for the logs (at most 1 KiB of UTF-8).
    public var reason: String

    public init(_ command: Command, weightsVersion: UInt64 = 0, reason: String = "") {
        self.command = command
        self.weightsVersion = weightsVersion
        self.reason = reason
    }
}

/// Any Dots message.
public enum Message: Sendable, Equatable {
    case rolloutGroup(RolloutGroup)
    case assignmentRequest(AssignmentRequest)
    case assignmentGrant(AssignmentGrant)
    case weightsRequest(WeightsRequest)
    case weights(WeightsChunk)
    case heartbeat(WorkerStats)
    case stats(WorkerStats)
    case control(Control)

    public var kind: MessageKind {
        switch self {
        case .rolloutGroup: .rolloutGroup
        case .assignmentRequest: .assignmentRequest
        case .assignmentGrant: .assignmentGrant
        case .weightsRequest: .weightsRequest
        case .weights: .weights
        case .heartbeat: .heartbeat
        case .stats: .stats
        case .control: .control
        }
    }

    /// The version the message belongs to; it travels in the header, never twice.
    public var weightsVersion: UInt64 {
        switch self {
        case .rolloutGroup(let m): m.weightsVersion
        case .assignmentRequest(let m): m.weightsVersion
        case .assignmentGrant(let m): m.weightsVersion
        case .weightsRequest(let m): m.weightsVersion
        case .weights(let m): m.weightsVersion
        case .heartbeat(let m), .stats(let m): m.weightsVersion
        case .control(let m): m.weightsVersion
        }
    }
}

/// A message with the id of the process that sent it.
public struct Envelope: Sendable, Equatable {
    /// The sender's id (see `ClusterConfig.senderID`); distinct from e.g. `RolloutGroup.actorID`, which
    /// names who generated the data.
    public var sender: UInt64
    public var message: Message

    public init(sender: UInt64, message: Message) {
        self.sender = sender
        self.message = message
    }
}

// Rollout groups also go to disk: the coordinator's selection state keeps the reference groups a round fed.
extension Completion: Codable {}
extension RolloutGroup: Codable {}
