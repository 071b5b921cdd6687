import Foundation
import TOMLKit

/// One problem in cluster.conf, naming the key and the line it is on.
public struct ConfigIssue: Sendable, Equatable, CustomStringConvertible {
    public let key: String
    /// 1-based; nil for a `--set` override or a key that is absent with no enclosing table written down.
    public let line: Int?
    public let message: String
    /// The file name, or "--set".
    public let source: String

    public var description: String {
        if source == "--set" { return "--set \(key): \(message)" }
        return "\(source):\(line.map(String.init) ?? "-"): \(key): \(message)"
    }
}

/// cluster.conf is not valid; every problem found, one a line.
public struct ClusterConfigError: Error, Sendable, CustomStringConvertible {
    public let issues: [ConfigIssue]
    public var description: String { issues.map(\.description).joined(separator: "\n") }
}

/// The validated contents of cluster.conf: the hosts, which roles run where, the endpoints, the keys, and
/// the `[model]` and `[training]` settings. The keys and their defaults are listed in `ConfigSchema`.
public struct ClusterConfig: Sendable {
    public struct Host: Sendable, Equatable {
        public let name: String
        public let address: String
        /// Actor processes on this host.
        public let actors: Int
        public let publicKey: String?
        public let secretKey: String?
    }

    public struct Security: Sendable, Equatable {
        public let curve: Bool
        public let serverPublicKey: String?
        public let serverSecretKey: String?
        public let allowedKeys: String?
    }

    public struct ModelSettings: Sendable, Equatable {
        public let checkpoint: String
        public let threads: Int
        /// The learner's compute threads (`model.learner_threads`; 0 there means `threads`): data-parallel
        /// shares of each mini-batch, one BLAS thread each.
        public let learnerThreads: Int
        public init(checkpoint: String, threads: Int, learnerThreads: Int = 0) {
            self.checkpoint = checkpoint
            self.threads = threads
            self.learnerThreads = learnerThreads > 0 ? learnerThreads : threads
        }
    }

    /// The `[training]` table, typed. Symbols as in the paper (DESIGN.md).
    public struct TrainingConfig: Sendable, Equatable {
        /// B.
        public let batchSize: Int
        /// G.
        public let groupSize: Int
        public let learningRate: Double
        public let maxLag: Int
        public let temperature: Double
        public let maxNewTokens: Int
        public let miniBatchSize: Int
        public let steps: Int
        public let checkpointEvery: Int
        public let evalEvery: Int
        /// Temperature of `test_accuracy` (greedy accuracy is logged beside it).
        public let evalTemperature: Double
        /// "uniform" or "dots".
        public let selection: String
        /// K.
        public let referenceSize: Int
        /// μ.
        public let selectionEvery: Int
        /// α.
        public let alpha: Double
        /// τ.
        public let tau: Double
        public let replay: Bool
        /// C.
        public let replayCapacity: Int
        /// δ.
        public let replayFractionDelta: Double
        public let seed: Int
    }

    /// The file name used in messages.
    public let source: String
    /// Hosts sorted by name.
    public private(set) var hosts: [Host] = []
    public private(set) var coordinatorHost: Host
    public private(set) var learnerHost: Host
    public private(set) var security: Security
    public private(set) var model: ModelSettings
    public private(set) var training: TrainingConfig
    /// More than one distinct host address: tcp with CURVE keys is then required.
    public var spansMachines: Bool { Set(hosts.map(\.address)).count > 1 }

    /// Values written in the file or set with `set`, by dotted key.
    private var explicit: [String: ConfigValue]
    /// Tables written in the file (so `[hosts.gpu1]` exists even before it has keys).
    private var tables: Set<String>
    private var lines: TOMLLines
    /// Keys whose value came from `--set`.
    private var overridden: Set<String> = []

    // MARK: loading

    /// Reads and validates a cluster.conf file.
    public static func load(path: String) throws(ClusterConfigError) -> ClusterConfig {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw ClusterConfigError(issues: [ConfigIssue(key: "-", line: nil, message: "cannot read \(path): \(error.localizedDescription)",
                                                          source: path)])
        }
        return try ClusterConfig(toml: text, source: (path as NSString).lastPathComponent)
    }

    /// Parses and validates TOML text.
    public init(toml text: String, source: String = "cluster.conf") throws(ClusterConfigError) {
        self.source = source
        lines = TOMLLines(text)
        let root: TOMLTable
        do { root = try TOMLTable(string: text) } catch let error as TOMLParseError {
            throw ClusterConfigError(issues: [ConfigIssue(key: "-", line: error.source.begin.line,
                                                          message: "not valid TOML: \(error.description)", source: source)])
        } catch {
            throw ClusterConfigError(issues: [ConfigIssue(key: "-", line: nil, message: "not valid TOML: \(error)", source: source)])
        }
        var values: [String: ConfigValue] = [:]
        var tables: Set<String> = []
        var issues: [ConfigIssue] = []
        Self.flatten(root, prefix: "", into: &values, tables: &tables, issues: &issues, lines: lines, source: source)
        explicit = values
        self.tables = tables
        // Placeholders until `build` runs; a failed build throws, so they are never seen.
        coordinatorHost = Host(name: "", address: "", actors: 0, publicKey: nil, secretKey: nil)
        learnerHost = coordinatorHost
        security = Security(curve: false, serverPublicKey: nil, serverSecretKey: nil, allowedKeys: nil)
        model = ModelSettings(checkpoint: "", threads: 1)
        training = Self.placeholderTraining
        try build(extra: issues)
    }

    /// Overrides one key (`--set training.batch_size=64`), with the same validation as the file.
    public mutating func set(_ key: String, _ text: String) throws(ClusterConfigError) {
        guard let schema = ConfigSchema.key(for: key) else {
            throw ClusterConfigError(issues: [issue(key, Self.unknownKeyMessage(key), setByFlag: true)])
        }
        guard let value = schema.type.parse(text) else {
            throw ClusterConfigError(issues: [issue(key, "expected \(schema.type.noun), got \"\(text)\"", setByFlag: true)])
        }
        var copy = self
        copy.explicit[key] = value
        copy.overridden.insert(key)
        try copy.build(extra: [])
        self = copy
    }

    /// Parses `key=value` as given on the command line and applies it.
    public mutating func set(assignment: String) throws(ClusterConfigError) {
        guard let eq = assignment.firstIndex(of: "=") else {
            throw ClusterConfigError(issues: [issue(assignment, "expected key=value", setByFlag: true)])
        }
        try set(String(assignment[..<eq]).trimmingCharacters(in: .whitespaces), String(assignment[assignment.index(after: eq)...]))
    }

    /// Applies several `key=value` overrides together and validates once, so their order doesn't matter
    /// (e.g. lowering batch_size and mini_batch_size in one command line).
    public mutating func set(assignments: [String]) throws(ClusterConfigError) {
        var copy = self
        for a in assignments {
            guard let eq = a.firstIndex(of: "=") else {
                throw ClusterConfigError(issues: [issue(a, "expected key=value", setByFlag: true)])
            }
            let key = String(a[..<eq]).trimmingCharacters(in: .whitespaces), text = String(a[a.index(after: eq)...])
            guard let schema = ConfigSchema.key(for: key) else {
                throw ClusterConfigError(issues: [issue(key, Self.unknownKeyMessage(key), setByFlag: true)])
            }
            guard let value = schema.type.parse(text) else {
                throw ClusterConfigError(issues: [issue(key, "expected \(schema.type.noun), got \"\(text)\"", setByFlag: true)])
            }
            copy.explicit[key] = value
            copy.overridden.insert(key)
        }
        try copy.build(extra: [])
        self = copy
    }

    // MARK: reading values

    /// A key's value: as written, else its default; nil for an absent optional key.
    public func value(_ key: String) -> ConfigValue? {
        if let v = explicit[key] {
            // Integers written for float keys read as floats.
            if case .int(let i) = v, case .double = ConfigSchema.key(for: key)?.type { return .double(Double(i)) }
            return v
        }
        if case .defaults(let v)? = ConfigSchema.key(for: key)?.requirement { return v }
        return nil
    }

    public func int(_ key: String) -> Int? { if case .int(let v)? = value(key) { v } else { nil } }
    public func double(_ key: String) -> Double? { if case .double(let v)? = value(key) { v } else { nil } }
    public func bool(_ key: String) -> Bool? { if case .bool(let v)? = value(key) { v } else { nil } }
    public func string(_ key: String) -> String? { if case .string(let v)? = value(key) { v } else { nil } }

    // MARK: endpoints and ids

    /// The port of a channel.
    public func port(_ channel: Channel) -> Int { int("endpoints.\(channel.rawValue)") ?? 0 }

    /// Where the channel's binding role binds: its host's address (any interface if that is a name).
    public func bindEndpoint(_ channel: Channel) -> String {
        if string("endpoints.transport") == "ipc" { return connectEndpoint(channel) }
        let host = channel.binder == .learner ? learnerHost : coordinatorHost
        let interface = Self.isIPLiteral(host.address) ? Self.bracketed(host.address) : "*"
        return "tcp://\(interface):\(port(channel))"
    }

    /// Where the other side connects.
    public func connectEndpoint(_ channel: Channel) -> String {
        if string("endpoints.transport") == "ipc" {
            return "ipc://\(string("endpoints.ipc_dir") ?? "/tmp/dots")/\(channel.rawValue)"
        }
        let host = channel.binder == .learner ? learnerHost : coordinatorHost
        return "tcp://\(Self.bracketed(host.address)):\(port(channel))"
    }

    /// Sender ids: coordinator 1, learner 2, launcher 3, actors 1000 + their index over all hosts (sorted
    /// by host name). Fixed by the config, so every process agrees without asking.
    public static let coordinatorID: UInt64 = 1
    public static let learnerID: UInt64 = 2
    public static let launcherID: UInt64 = 3

    /// Every actor in the cluster: its host, its index on that host, and its sender id.
    public var actors: [(host: String, index: Int, id: UInt64)] {
        var out: [(String, Int, UInt64)] = []
        for host in hosts {
            for i in 0..<host.actors { out.append((host.name, i, 1000 + UInt64(out.count))) }
        }
        return out
    }

    public func actorID(host: String, index: Int) -> UInt64? {
        actors.first { $0.host == host && $0.index == index }?.id
    }

    public func host(named name: String) -> Host? { hosts.first { $0.name == name } }

    // MARK: validation

    private func issue(_ key: String, _ message: String, setByFlag: Bool = false) -> ConfigIssue {
        if setByFlag || overridden.contains(key) {
            return ConfigIssue(key: key, line: nil, message: message, source: "--set")
        }
        return ConfigIssue(key: key, line: lines.line(of: key), message: message, source: source)
    }

    private static func unknownKeyMessage(_ key: String) -> String {
        let parts = key.split(separator: ".")
        let table = parts.dropLast().joined(separator: ".")
        let siblings = ConfigSchema.keys.filter {
            let p = $0.path.split(separator: ".")
            return p.count == parts.count && ConfigKey(p.dropLast().joined(separator: "."), .bool, .optional, "").matches(table)
        }.map { String($0.path.split(separator: ".").last!) }
        if siblings.isEmpty {
            let tables = Set(ConfigSchema.keys.map { String($0.path.split(separator: ".")[0]) }).sorted()
            return "unknown key (tables are: \(tables.joined(separator: ", ")))"
        }
        return "unknown key (known here: \(siblings.joined(separator: ", ")))"
    }

    private static func flatten(_ table: TOMLTable, prefix: String, into values: inout [String: ConfigValue],
                                tables: inout Set<String>, issues: inout [ConfigIssue], lines: TOMLLines,
                                source: String) {
        for key in table.keys {
            guard let item = table[key] else { continue }
            let path = prefix.isEmpty ? key : "\(prefix).\(key)"
            let value: ConfigValue
            switch item.type {
            case .table:
                tables.insert(path)
                if let sub = item.table {
                    flatten(sub, prefix: path, into: &values, tables: &tables, issues: &issues, lines: lines, source: source)
                }
                continue
            case .int: value = .int(item.int ?? 0)
            case .double: value = .double(item.double ?? 0)
            case .bool: value = .bool(item.bool ?? false)
            case .string: value = .string(item.string ?? "")
            default:
                let expected = ConfigSchema.key(for: path)?.type.noun
                issues.append(ConfigIssue(key: path, line: lines.line(of: path),
                                          message: expected.map { "expected \($0), found \(item.type == .array ? "an array" : "a \(item.type)")" }
                                              ?? unknownKeyMessage(path), source: source))
                continue
            }
            values[path] = value
        }
    }

    /// Checks everything and fills the typed properties; throws every issue found.
    private mutating func build(extra: [ConfigIssue]) throws(ClusterConfigError) {
        var issues = extra
        // Keys: known, well-typed, in range.
        for (key, value) in explicit.sorted(by: { $0.key < $1.key }) {
            guard let schema = ConfigSchema.key(for: key) else {
                // A scalar where a table belongs ("training = 5") reads better as a type error.
                let isTable = ConfigSchema.keys.contains { $0.path.hasPrefix(key + ".") }
                issues.append(issue(key, isTable ? "expected a table, found \(value.typeNoun)" : Self.unknownKeyMessage(key)))
                continue
            }
            if case .failure(let complaint) = schema.type.check(value) { issues.append(issue(key, complaint.message)) }
        }
        for table in tables where !ConfigSchema.keys.contains(where: { k in
            let p = k.path.split(separator: ".")
            return (1..<p.count).contains { ConfigKey(p.prefix($0).joined(separator: "."), .bool, .optional, "").matches(table) }
        }) {
            issues.append(issue(table, Self.unknownKeyMessage(table)))
        }

        // Hosts: every [hosts.NAME] table, with the required keys.
        let hostNames = Set(tables.compactMap { t -> String? in
            let p = t.split(separator: ".")
            return p.count == 2 && p[0] == "hosts" ? String(p[1]) : nil
        }).union(explicit.keys.compactMap { k -> String? in
            let p = k.split(separator: ".")
            return p.count == 3 && p[0] == "hosts" ? String(p[1]) : nil
        }).sorted()
        if hostNames.isEmpty { issues.append(issue("hosts", "missing: at least one [hosts.NAME] table with an address")) }
        for key in ConfigSchema.keys {
            guard case .required = key.requirement else { continue }
            let concrete = key.path.hasPrefix("hosts.*.")
                ? hostNames.map { key.path.replacingOccurrences(of: "*", with: $0) } : [key.path]
            for path in concrete where explicit[path] == nil { issues.append(issue(path, "missing (\(key.help))")) }
        }
        var hosts: [Host] = []
        for name in hostNames {
            let p = "hosts.\(name)"
            let address = string("\(p).address") ?? ""
            if explicit["\(p).address"] != nil, let problem = Self.addressProblem(address) {
                issues.append(issue("\(p).address", problem))
            }
            hosts.append(Host(name: name, address: address, actors: int("\(p).actors") ?? 0,
                              publicKey: string("\(p).public_key"), secretKey: string("\(p).secret_key")))
        }
        self.hosts = hosts
        if !hosts.isEmpty && hosts.allSatisfy({ $0.actors == 0 }) {
            issues.append(issue("hosts.\(hosts[0].name).actors", "no host runs an actor: set actors = N on at least one host"))
        }

        // Roles: each names a host that exists.
        func roleHost(_ role: String) -> Host? {
            let key = "roles.\(role)"
            guard let name = string(key) else { return nil }
            if let host = hosts.first(where: { $0.name == name }) { return host }
            if explicit[key] != nil {
                issues.append(issue(key, "names host \"\(name)\", which has no [hosts.\(name)] table"
                                    + (hostNames.isEmpty ? "" : " (hosts: \(hostNames.joined(separator: ", ")))")))
            }
            return nil
        }
        let coordinator = roleHost("coordinator")
        let learner = roleHost("learner")

        // Ports: the sockets bound on one host must not share a port.
        if string("endpoints.transport") == "tcp", let coordinator, let learner {
            var taken: [String: [Int: String]] = [:]
            for channel in Channel.allCases {
                let host = channel.binder == .learner ? learner : coordinator
                let key = "endpoints.\(channel.rawValue)"
                let port = self.port(channel)
                if let other = taken[host.address]?[port] {
                    issues.append(issue(key, "port \(port) is already used by \(other) on \(host.address)"))
                } else {
                    taken[host.address, default: [:]][port] = key
                }
            }
        }

        if let metrics = int("monitoring.metrics_port"), metrics != 0, string("endpoints.transport") == "tcp", let coordinator,
           let other = Channel.allCases.first(where: { port($0) == metrics && ($0.binder == .coordinator || learner?.address == coordinator.address) }) {
            issues.append(issue("monitoring.metrics_port", "port \(metrics) is already used by endpoints.\(other.rawValue) on \(coordinator.address)"))
        }

        // Security: keys are optional on one host, required across machines.
        let security = Security(curve: bool("security.curve") ?? false,
                                serverPublicKey: string("security.server_public_key"),
                                serverSecretKey: string("security.server_secret_key"),
                                allowedKeys: string("security.allowed_keys"))
        if spansMachines {
            if string("endpoints.transport") == "ipc" {
                issues.append(issue("endpoints.transport", "ipc only works on one host, and the hosts have different addresses"))
            }
            if !security.curve {
                issues.append(issue("security.curve", "must be true: the hosts have different addresses, and a cluster across machines requires keys (`dots keys generate`)"))
            }
        }
        if security.curve {
            for key in ["security.server_public_key", "security.server_secret_key"] where explicit[key] == nil {
                issues.append(issue(key, "missing (required when security.curve = true)"))
            }
            for host in hosts {
                for key in ["public_key", "secret_key"] where explicit["hosts.\(host.name).\(key)"] == nil {
                    issues.append(issue("hosts.\(host.name).\(key)", "missing (required when security.curve = true)"))
                }
            }
        }

        if let mini = int("training.mini_batch_size"), let batch = int("training.batch_size"), batch >= 1, mini > batch {
            issues.append(issue("training.mini_batch_size", "must be at most training.batch_size (\(batch)), is \(mini)"))
        }

        guard issues.isEmpty, let coordinator, let learner else {
            // Sorted by line so the file reads top to bottom.
            throw ClusterConfigError(issues: issues.sorted { ($0.line ?? .max, $0.key) < ($1.line ?? .max, $1.key) })
        }
        coordinatorHost = coordinator
        learnerHost = learner
        self.security = security
        model = ModelSettings(checkpoint: string("model.checkpoint")!, threads: int("model.threads")!,
                              learnerThreads: int("model.learner_threads") ?? 0)
        training = TrainingConfig(
            batchSize: int("training.batch_size")!, groupSize: int("training.group_size")!,
            learningRate: double("training.learning_rate")!, maxLag: int("training.max_lag")!,
            temperature: double("training.temperature")!, maxNewTokens: int("training.max_new_tokens")!,
            miniBatchSize: int("training.mini_batch_size")!, steps: int("training.steps")!,
            checkpointEvery: int("training.checkpoint_every")!, evalEvery: int("training.eval_every")!,
            evalTemperature: double("training.eval_temperature")!,
            selection: string("training.selection")!, referenceSize: int("training.reference_size")!,
            selectionEvery: int("training.selection_every")!, alpha: double("training.alpha")!,
            tau: double("training.tau")!, replay: bool("training.replay")!,
            replayCapacity: int("training.replay_capacity")!,
            replayFractionDelta: double("training.replay_fraction_delta")!, seed: int("training.seed")!)
    }

    private static let placeholderTraining = TrainingConfig(
        batchSize: 0, groupSize: 0, learningRate: 0, maxLag: 0, temperature: 0, maxNewTokens: 0, miniBatchSize: 0,
        steps: 0, checkpointEvery: 0, evalEvery: 0, evalTemperature: 0, selection: "", referenceSize: 0, selectionEvery: 0, alpha: 0,
        tau: 0, replay: false, replayCapacity: 0, replayFractionDelta: 0, seed: 0)

    // MARK: addresses

    /// Nil if `address` is a usable IPv4, IPv6 or DNS name; otherwise why not.
    static func addressProblem(_ address: String) -> String? {
        if address.isEmpty { return "empty address" }
        if address.contains(":") {
            let ok = address.allSatisfy { $0.isHexDigit || $0 == ":" || $0 == "." } && address.count <= 45
            return ok ? nil : "\"\(address)\" is not an IPv6 address"
        }
        let labels = address.split(separator: ".", omittingEmptySubsequences: false)
        if labels.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isNumber) }) {
            guard labels.count == 4, labels.allSatisfy({ $0.count <= 3 && Int($0)! <= 255 }) else {
                return "\"\(address)\" is not an IPv4 address (four numbers 0–255)"
            }
            return nil
        }
        let valid = address.count <= 253 && labels.allSatisfy { label in
            !label.isEmpty && label.count <= 63 && label.first != "-" && label.last != "-"
                && label.allSatisfy { ($0.isASCII && ($0.isLetter || $0.isNumber)) || $0 == "-" }
        }
        return valid ? nil : "\"\(address)\" is neither an IP address nor a host name"
    }

    static func isIPLiteral(_ address: String) -> Bool {
        address.contains(":") || address.split(separator: ".").allSatisfy { $0.allSatisfy(\.isNumber) }
    }

    private static func bracketed(_ address: String) -> String { address.contains(":") ? "[\(address)]" : address }
}
