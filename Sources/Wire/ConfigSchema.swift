import Foundation

/// A scalar value of cluster.conf.
public enum ConfigValue: Sendable, Equatable, CustomStringConvertible {
    case int(Int)
    case double(Double)
    case bool(Bool)
    case string(String)

    public var description: String {
        switch self {
        case .int(let v): "\(v)"
        case .double(let v): "\(v)"
        case .bool(let v): "\(v)"
        case .string(let v): "\"\(v)\""
        }
    }
}

/// What a key's value must be.
public enum ConfigType: Sendable {
    case int(ClosedRange<Int>)
    /// Integers are accepted too ("learning_rate = 1").
    case double(ClosedRange<Double>)
    case bool
    case string
    case choice([String])
    /// 1024–65535: below is privileged.
    case port

    var noun: String {
        switch self {
        case .int, .port: "an integer"
        case .double: "a number"
        case .bool: "true or false"
        case .string: "a string"
        case .choice(let options): "one of " + options.map { "\"\($0)\"" }.joined(separator: ", ")
        }
    }

    /// The value, converted where that loses nothing, or a one-line complaint.
    func check(_ value: ConfigValue) -> Result<ConfigValue, ConfigComplaint> {
        switch (self, value) {
        case (.int(let range), .int(let v)):
            return range.contains(v) ? .success(value) : .failure(.init("must be in \(range.lowerBound)...\(range.upperBound), is \(v)"))
        case (.port, .int(let v)):
            return (1024...65535).contains(v) ? .success(value) : .failure(.init("port must be in 1024...65535, is \(v)"))
        case (.double(let range), .double(let v)):
            return range.contains(v) ? .success(value) : .failure(.init("must be in \(range.lowerBound)...\(range.upperBound), is \(v)"))
        case (.double, .int(let v)):
            return check(.double(Double(v)))
        case (.bool, .bool), (.string, .string):
            return .success(value)
        case (.choice(let options), .string(let v)):
            return options.contains(v) ? .success(value) : .failure(.init("must be \(noun), is \"\(v)\""))
        default:
            return .failure(.init("expected \(noun), found \(value.typeNoun)", wrongType: true))
        }
    }

    /// Parses a `--set key=value` string as this type; quotes around strings are optional.
    func parse(_ text: String) -> ConfigValue? {
        let t = text.trimmingCharacters(in: .whitespaces)
        switch self {
        case .int, .port: return Int(t).map(ConfigValue.int)
        case .double: return Double(t).map(ConfigValue.double)
        case .bool: return t == "true" ? .bool(true) : t == "false" ? .bool(false) : nil
        case .string, .choice:
            if t.count >= 2, t.first == "\"", t.last == "\"" { return .string(String(t.dropFirst().dropLast())) }
            return .string(t)
        }
    }
}

struct ConfigComplaint: Error {
    let message: String
    let wrongType: Bool
    init(_ message: String, wrongType: Bool = false) {
        self.message = message
        self.wrongType = wrongType
    }
}

extension ConfigValue {
    var typeNoun: String {
        switch self {
        case .int: "an integer"
        case .double: "a floating-point number"
        case .bool: "a boolean"
        case .string: "a string"
        }
    }
}

/// One key of cluster.conf: where, what type, its default, and what it means.
public struct ConfigKey: Sendable {
    public enum Requirement: Sendable {
        case required
        /// May be absent; no value then.
        case optional
        case defaults(ConfigValue)
    }

    /// Dotted path; `*` stands for any name (the host tables: `hosts.*.address`).
    public let path: String
    public let type: ConfigType
    public let requirement: Requirement
    public let help: String

    public init(_ path: String, _ type: ConfigType, _ requirement: Requirement, _ help: String) {
        self.path = path
        self.type = type
        self.requirement = requirement
        self.help = help
    }

    func matches(_ key: String) -> Bool {
        let a = path.split(separator: ".", omittingEmptySubsequences: false)
        let b = key.split(separator: ".", omittingEmptySubsequences: false)
        return a.count == b.count && zip(a, b).allSatisfy { $0 == "*" || $0 == $1 }
    }
}

/// Every key cluster.conf may hold, in one place. To add a hyper-parameter: add a line here and read it
/// with `ClusterConfig.int/double/bool/string("training.name")` (or add a property to `TrainingConfig`).
public enum ConfigSchema {
    public static let keys: [ConfigKey] = [
        // A table per host, named by the table: [hosts.gpu1].
        .init("hosts.*.address", .string, .required, "IP address (or DNS name) the other hosts reach this host at"),
        .init("hosts.*.actors", .int(0...1024), .defaults(.int(0)), "actor processes `dots launch` starts on this host"),
        .init("hosts.*.public_key", .string, .optional, "this host's CURVE public key file (Z85); required when security.curve"),
        .init("hosts.*.secret_key", .string, .optional, "this host's CURVE secret key file (Z85, mode 0600), read only on that host"),

        .init("roles.coordinator", .string, .required, "host that runs the one coordinator"),
        .init("roles.learner", .string, .required, "host that runs the one learner"),

        .init("endpoints.transport", .choice(["tcp", "ipc"]), .defaults(.string("tcp")), "tcp (any cluster) or ipc (one host only)"),
        .init("endpoints.ipc_dir", .string, .defaults(.string("/tmp/dots")), "folder of the ipc:// socket files"),
        .init("endpoints.rollouts", .port, .defaults(.int(5701)), "learner PULL ← actors PUSH: rollout groups (pipeline)"),
        .init("endpoints.assignment", .port, .defaults(.int(5702)), "coordinator ROUTER ← actor DEALERs: assignment requests and grants"),
        .init("endpoints.weights", .port, .defaults(.int(5703)), "coordinator ROUTER ← DEALERs: weights snapshot on join"),
        .init("endpoints.announce", .port, .defaults(.int(5704)), "coordinator PUB → SUBs: weights updates and control"),
        .init("endpoints.updates", .port, .defaults(.int(5705)), "coordinator PULL ← learner PUSH: each new weights version"),
        .init("endpoints.stats", .port, .defaults(.int(5706)), "coordinator PULL ← everyone PUSH: heartbeats and stats"),

        .init("monitoring.metrics_port", .int(0...65535), .defaults(.int(0)),
              "coordinator's HTTP port for /metrics (Prometheus text; what `dots top` reads); 0 = off"),

        .init("security.curve", .bool, .defaults(.bool(false)), "CURVE-encrypt and authenticate every tcp socket; required across hosts"),
        .init("security.server_public_key", .string, .optional, "public key file of the binding side (coordinator and learner)"),
        .init("security.server_secret_key", .string, .optional, "its secret key file, read only where the coordinator or learner runs"),
        .init("security.allowed_keys", .string, .optional, "folder of *.public files (or one file, a key a line): the allow-list; default: every host's public_key"),

        .init("model.checkpoint", .string, .defaults(.string("checkpoints/base")), "checkpoint folder training starts from"),
        .init("model.threads", .int(1...256), .defaults(.int(1)), "compute threads per process"),
        .init("model.learner_threads", .int(0...256), .defaults(.int(0)), "compute threads of the learner; 0 = model.threads (with max_lag = 0 the actors wait while it updates, so it may take every core)"),

        .init("training.batch_size", .int(1...65536), .defaults(.int(32)), "B: prompts per step"),
        .init("training.group_size", .int(2...1024), .defaults(.int(8)), "G: completions per prompt"),
        .init("training.learning_rate", .double(1e-12...1), .defaults(.double(5e-5)), "AdamW learning rate (constant)"),
        .init("training.max_lag", .int(0...1000), .defaults(.int(0)), "rollouts at most this many versions old are used; 0 = synchronous"),
        .init("training.temperature", .double(0...10), .defaults(.double(1.0)), "sampling temperature of the actors"),
        .init("training.max_new_tokens", .int(1...65536), .defaults(.int(16)), "completion length cap"),
        .init("training.mini_batch_size", .int(1...65536), .defaults(.int(8)), "prompts (groups) per optimizer mini-batch within a step"),
        .init("training.steps", .int(1...10_000_000), .defaults(.int(100)), "training steps"),
        .init("training.checkpoint_every", .int(0...10_000_000), .defaults(.int(50)), "steps between checkpoints; 0 = only at the end"),
        .init("training.eval_every", .int(0...10_000_000), .defaults(.int(10)), "steps between evaluations; 0 = never"),
        .init("training.eval_temperature", .double(0...10), .defaults(.double(1.0)), "temperature of the held-out test_accuracy (one sample a prompt, fixed seed); test_accuracy_greedy is logged too"),
        .init("training.selection", .choice(["uniform", "dots"]), .defaults(.string("uniform")), "prompt selection: uniform baseline or DOTS"),
        .init("training.reference_size", .int(1...1_000_000), .defaults(.int(32)), "K: reference prompts rolled out per selection round"),
        .init("training.selection_every", .int(1...1000), .defaults(.int(2)), "μ: steps per selection round"),
        .init("training.alpha", .double(0...1), .defaults(.double(0.5)), "α: target adaptive difficulty"),
        .init("training.tau", .double(1e-9...100), .defaults(.double(1e-3)), "τ: selection temperature"),
        .init("training.predictor", .string, .optional, "DOTS: difficulty predictor folder (`dots predictor train`); required when selection is dots"),
        .init("training.predictor_refit", .choice(["linear", "isotonic", "none"]), .defaults(.string("linear")), "DOTS: re-fit of the predictions on each round's reference set"),
        .init("training.reference_feed", .bool, .defaults(.bool(false)), "DOTS: train on each round's informative reference groups (the paper's appendix variant; max_lag 0 only)"),
        .init("training.reference_lead", .int(0...1), .defaults(.int(0)), "DOTS: 1 = roll out a round's reference prompts one step early, on the weights one version before the round (the actors are otherwise idle while the learner updates); 0 = on the round's own weights, as the paper does"),
        .init("training.reference_rollouts", .choice(["actors", "coordinator"]), .defaults(.string("actors")), "DOTS: who rolls out each round's K reference prompts: the actors as reference work, or the coordinator on its own copy of the weights (docs/benchmarks.md compares them)"),
        .init("training.selection_pool", .int(0...100_000_000), .defaults(.int(0)), "DOTS: candidate prompts, a seeded random subset of the train split; 0 = all of it"),
        .init("training.replay", .bool, .defaults(.bool(false)), "rollout replay on or off"),
        .init("training.replay_capacity", .int(1...10_000_000), .defaults(.int(256)), "C: replay buffer capacity in groups"),
        .init("training.replay_fraction_delta", .double(1e-6...1), .defaults(.double(0.5)), "δ: fraction of each batch that is fresh when replay is on"),
        .init("training.seed", .int(0...Int.max), .defaults(.int(0)), "seed of every random choice in the run"),
    ]

    static func key(for path: String) -> ConfigKey? { keys.first { $0.matches(path) } }
}
