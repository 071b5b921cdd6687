import Foundation

/// What `dots top` shows, built from successive scrapes of the coordinator's /metrics: one row per
/// actor, a learner row and a coordinator row. Rates come from the workers' own counters between two
/// of their reports (`dots_report_timestamp_seconds`), not between scrapes, so they do not jitter with
/// the scrape timing.
public struct TopModel: Sendable {
    /// One worker as the latest scrape shows it.
    struct Worker: Sendable {
        var role = "", worker = "", host = "", state = "", pid = ""
        var up = true
        var version: Double?
        var lag: Double?
        var age: Double?
        var restarts: Double?
        var gauges: [String: Double] = [:]
        /// Counters at each of the worker's distinct reports, oldest first: (report time, values).
        var history: [(at: Double, values: [String: Double])] = []
    }

    private var workers: [String: Worker] = [:]
    /// Seconds of reports a rate is computed over.
    public var window: Double = 5
    public private(set) var scrapes = 0

    public init() {}

    /// Takes one scrape.
    public mutating func add(_ samples: [PrometheusText.ParsedSample]) {
        scrapes += 1
        var seen: [String: Worker] = [:]
        var counters: [String: [String: Double]] = [:]
        var stamps: [String: Double] = [:]
        for s in samples {
            guard let worker = s.labels["worker"], let role = s.labels["role"] else { continue }
            let key = "\(role)/\(worker)"
            var w = seen[key] ?? workers[key] ?? Worker()
            w.role = role
            w.worker = worker
            w.host = s.labels["host"] ?? w.host
            let qualified = s.name + (s.labels["phase"].map { ".\($0)" } ?? "")
            switch s.name {
            case "dots_up": w.up = s.value != 0
            case "dots_worker_info":
                w.state = s.labels["state"] ?? ""
                w.pid = s.labels["pid"] ?? ""
            case "dots_weights_version": w.version = s.value
            case "dots_weights_lag": w.lag = s.value
            case "dots_last_heartbeat_age_seconds": w.age = s.value
            case "dots_restarts_total": w.restarts = s.value
            case "dots_report_timestamp_seconds": stamps[key] = s.value
            case _ where s.name.hasSuffix("_total"): counters[key, default: [:]][qualified, default: 0] += s.value
            default: w.gauges[qualified] = s.value
            }
            seen[key] = w
        }
        for (key, var w) in seen {
            if let at = stamps[key], w.history.last.map({ at > $0.at }) ?? true {
                let values = counters[key] ?? [:]
                // A counter that went down means the worker restarted: its old reports no longer compare.
                if let last = w.history.last, values.contains(where: { $0.value < (last.values[$0.key] ?? 0) }) {
                    w.history = []
                }
                w.history.append((at, values))
                w.history.removeAll { at - $0.at > window }
            }
            seen[key] = w
        }
        workers = seen
    }

    /// Per-second rate of a counter over the worker's recent reports; nil until there are two.
    func rate(_ w: Worker, _ counter: String) -> Double? {
        guard let first = w.history.first, let last = w.history.last, last.at > first.at else { return nil }
        guard let a = first.values[counter], let b = last.values[counter] else { return nil }
        return (b - a) / (last.at - first.at)
    }

    /// The table as text lines (no terminal control codes).
    public func render(source: String, now: Date = Date()) -> String {
        let all = workers.values.sorted { ($0.role, Int($0.worker) ?? 0) < ($1.role, Int($1.worker) ?? 0) }
        let time = DateFormatter()
        time.dateFormat = "HH:mm:ss"
        var header = "dots top — \(source) — \(time.string(from: now))"
        if let newest = all.compactMap(\.version).max() { header += " — newest weights version \(Int(newest))" }
        var lines = [header, ""]
        func host(_ w: Worker) -> String { w.host.isEmpty ? "-" : w.host }
        func state(_ w: Worker) -> String { w.up ? (w.state.isEmpty ? "-" : w.state) : "DOWN" }
        func int(_ v: Double?) -> String { v.map { String(Int($0)) } ?? "-" }
        func fixed(_ v: Double?, _ digits: Int = 1) -> String { v.map { String(format: "%.\(digits)f", $0) } ?? "-" }
        func secs(_ v: Double?) -> String { v.map { String(format: $0 < 10 ? "%.2f s" : "%.1f s", $0) } ?? "-" }
        func percent(_ v: Double?) -> String { v.map { String(format: "%.0f%%", 100 * min(1, max(0, $0))) } ?? "-" }

        let actors = all.filter { $0.role == "actor" }
        var rows = [["ACTOR", "HOST", "STATE", "VERSION", "LAG", "TOKENS/S", "GROUPS/S", "IDLE", "HEARTBEAT", "RESTARTS"]]
        for w in actors {
            rows.append([w.worker, host(w), state(w), int(w.version), int(w.lag),
                         fixed(rate(w, "dots_tokens_generated_total"), 0), fixed(rate(w, "dots_groups_sent_total"), 2),
                         percent(rate(w, "dots_phase_seconds_total.waiting")), secs(w.age), int(w.restarts)])
        }
        if actors.isEmpty { rows.append(["(no actor has reported)"]) }
        lines += Self.columns(rows)

        lines.append("")
        rows = [["LEARNER", "HOST", "STATE", "STEP", "STEP TIME", "COLLECT", "UPDATE", "PUBLISH", "GROUPS/S", "IDLE",
                 "HEARTBEAT", "RESTARTS"]]
        let learners = all.filter { $0.role == "learner" }
        for w in learners {
            rows.append([w.worker, host(w), state(w), int(w.gauges["dots_step"]), secs(w.gauges["dots_step_seconds"]),
                         secs(w.gauges["dots_step_phase_seconds.collect"]), secs(w.gauges["dots_step_phase_seconds.update"]),
                         secs(w.gauges["dots_step_phase_seconds.publish"]), fixed(rate(w, "dots_groups_received_total"), 2),
                         percent(rate(w, "dots_phase_seconds_total.waiting")), secs(w.age), int(w.restarts)])
        }
        if learners.isEmpty { rows.append(["(the learner has not reported)"]) }
        lines += Self.columns(rows)

        lines.append("")
        rows = [["COORDINATOR", "HOST", "STATE", "VERSION", "PROMPTS/S", "REQUEUED", "SELECTION", "REFERENCE", "HEARTBEAT"]]
        for w in all where w.role == "coordinator" {
            rows.append([w.worker, host(w), state(w), int(w.version), fixed(rate(w, "dots_prompts_granted_total"), 1),
                         int(w.gauges["dots_prompts_requeued"] ?? workerCounter(w, "dots_prompts_requeued_total")),
                         secs(w.gauges["dots_selection_seconds"]), secs(w.gauges["dots_reference_seconds"]), secs(w.age)])
        }
        lines += Self.columns(rows)
        if scrapes < 2 || actors.contains(where: { $0.history.count < 2 }) {
            lines += ["", "(rates need two reports of a worker: they show after a second or two)"]
        }
        return lines.joined(separator: "\n") + "\n"
    }

    private func workerCounter(_ w: Worker, _ name: String) -> Double? { w.history.last?.values[name] }

    /// Rows as left-aligned columns two spaces apart.
    static func columns(_ rows: [[String]]) -> [String] {
        var widths: [Int] = []
        for row in rows where row.count > 1 {
            for (i, cell) in row.enumerated() {
                if i >= widths.count { widths.append(0) }
                widths[i] = max(widths[i], cell.count)
            }
        }
        return rows.map { row in
            guard row.count > 1 else { return row.joined() }
            return row.enumerated().map { i, cell in
                i == row.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }
    }

    /// The number of actor rows and their ids (for tests and scripts).
    public var actorIDs: [String] { workers.values.filter { $0.role == "actor" }.map(\.worker).sorted() }
}
