import Foundation
import Wire

/// The coordinator's picture of every process: the latest report (heartbeat or stats) of each sender,
/// and when it arrived. Rendered as Prometheus metric families for /metrics.
///
/// Ages are measured on the coordinator's clock (arrival), never from `sentAt`, so clocks that differ
/// across hosts do not distort them.
public struct ClusterStats: Sendable {
    public struct Worker: Sendable {
        public var sender: UInt64
        public var stats: WorkerStats
        /// When the latest report arrived.
        public var receivedAt: Date
    }

    public private(set) var workers: [UInt64: Worker] = [:]
    /// A worker silent this long is shown as down (`dots_up` 0): three missed one-second heartbeats.
    public var deadAfter: TimeInterval
    /// A worker silent this long is forgotten, and its series leave /metrics.
    public var forgetAfter: TimeInterval

    public init(deadAfter: TimeInterval = 3, forgetAfter: TimeInterval = 120) {
        self.deadAfter = deadAfter
        self.forgetAfter = forgetAfter
    }

    /// Keeps a report as the sender's latest.
    public mutating func record(sender: UInt64, _ stats: WorkerStats, at date: Date = Date()) {
        workers[sender] = Worker(sender: sender, stats: stats, receivedAt: date)
    }

    /// Forgets workers silent for `forgetAfter`.
    public mutating func prune(now: Date = Date()) {
        workers = workers.filter { now.timeIntervalSince($0.value.receivedAt) <= forgetAfter }
    }

    /// The newest weights version any process holds: what lag is measured against.
    public var newestVersion: UInt64? {
        workers.values.map(\.stats.weightsVersion).filter { $0 != WeightsRequest.none }.max()
    }

    /// Every metric family, for /metrics.
    public func families(now: Date = Date()) -> [MetricFamily] {
        var byName: [String: MetricFamily] = [:]
        var order: [String] = []
        func add(_ name: String, _ kind: MetricFamily.Kind, _ help: String, _ labels: [(String, String)], _ value: Double) {
            if byName[name] == nil {
                byName[name] = MetricFamily(name, kind, help: help)
                order.append(name)
            }
            byName[name]!.samples.append(.init(labels, value))
        }
        let newest = newestVersion
        let sorted = workers.values.sorted { ($0.stats.role.rawValue, $0.sender) < ($1.stats.role.rawValue, $1.sender) }
        for w in sorted {
            let s = w.stats
            let id: [(String, String)] = [("role", s.role.description), ("worker", String(w.sender)), ("host", s.labels["host"] ?? "")]
            let age = max(0, now.timeIntervalSince(w.receivedAt))
            add("dots_up", .gauge, "1 while the worker's heartbeats arrive, 0 after 3 s of silence", id, age <= deadAfter ? 1 : 0)
            add("dots_worker_info", .gauge, "the worker's pid, state and run id, as labels",
                id + [("pid", String(s.pid)), ("state", s.state.description), ("run_id", s.labels["run_id"] ?? "")], 1)
            add("dots_last_heartbeat_age_seconds", .gauge, "seconds since the worker's latest report arrived", id, age)
            add("dots_report_timestamp_seconds", .gauge, "when the worker sent its latest report (its own clock, Unix seconds)", id, s.sentAt)
            if s.weightsVersion != WeightsRequest.none {
                add("dots_weights_version", .gauge, "the weights version the worker holds", id, Double(s.weightsVersion))
                if let newest {
                    add("dots_weights_lag", .gauge, "versions the worker is behind the newest version in the cluster", id,
                        Double(newest - min(newest, s.weightsVersion)))
                }
            }
            for (key, value) in s.values.sorted(by: { $0.key < $1.key }) {
                let (name, qualifier) = Self.metricName(key)
                let kind: MetricFamily.Kind = name.hasSuffix("_total") ? .counter : .gauge
                let labels = qualifier.map { id + [(Self.qualifierLabel(name), $0)] } ?? id
                add(name, kind, Self.help[name] ?? "reported by the worker as \(key)", labels, value)
            }
        }
        return order.sorted().map { byName[$0]! }
    }

    /// The Prometheus exposition of `families(now:)`.
    public func exposition(now: Date = Date()) -> String { PrometheusText.render(families(now: now)) }

    /// A stats key as a metric name and the value of its one extra label: "phase_seconds_total.update" →
    /// ("dots_phase_seconds_total", "update"). Characters Prometheus does not allow in names become "_".
    static func metricName(_ key: String) -> (String, String?) {
        let parts = key.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        let base = String(parts[0]).map { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") ? $0 : "_" }
        let qualifier = parts.count > 1 ? String(parts[1]) : nil
        return ("dots_" + String(base), qualifier)
    }

    /// The label a family's qualifier goes in.
    static func qualifierLabel(_ name: String) -> String {
        switch name {
        case "dots_phase_seconds_total", "dots_step_phase_seconds": "phase"
        case "dots_messages_rejected_total": "reason"
        default: "kind"
        }
    }

    static let help: [String: String] = [
        "dots_tokens_generated_total": "completion tokens the actor generated",
        "dots_groups_sent_total": "rollout groups the actor sent to the learner",
        "dots_groups_received_total": "rollout groups the learner accepted",
        "dots_groups_dropped_stale_total": "rollout groups the learner dropped as more than max_lag versions old",
        "dots_groups_duplicate_total": "rollout groups the learner dropped as a second group of a prompt in one step",
        "dots_bytes_sent_total": "bytes the process sent over ZeroMQ (frame payloads)",
        "dots_bytes_received_total": "bytes the process received over ZeroMQ (frame payloads)",
        "dots_messages_rejected_total": "messages the process refused, by reason (docs/protocol.md 1.9)",
        "dots_phase_seconds_total": "seconds spent in each phase; rate() is the fraction of time in it",
        "dots_restarts_total": "times the launcher restarted this worker before its current start",
        "dots_steps_total": "GRPO steps the learner finished since it started",
        "dots_step": "the learner's step (updates done)",
        "dots_step_seconds": "the latest step's wall-clock seconds (collect + update + publish)",
        "dots_step_phase_seconds": "the latest step's seconds in each phase",
        "dots_mean_reward": "the latest step's mean reward over its fresh groups",
        "dots_test_accuracy": "the latest held-out accuracy (greedy)",
        "dots_tokens_per_s": "the actor's generation speed over its latest grant",
        "dots_prompts_granted_total": "prompts the coordinator handed out",
        "dots_prompts_requeued_total": "prompts the coordinator re-queued from dead actors",
        "dots_actors_alive": "actors whose heartbeats arrive",
    ]
}
