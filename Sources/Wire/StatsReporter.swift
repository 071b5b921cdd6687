import Foundation
import Synchronization

/// A process's report to the coordinator: its counters, gauges and state, sent as a `Heartbeat` on
/// `stats` every second from a thread of its own (with its own PUSH socket), so a long generation or
/// update never looks like death. Role code updates it from any thread.
///
/// Counters follow the Prometheus convention the coordinator re-exports (see `WorkerStats`): names end in
/// `_total` and only grow. `phase(_:)` accumulates seconds per phase in `phase_seconds_total.PHASE`, so
/// `rate()` of one phase is the fraction of time spent in it (of `waiting`: the idle fraction).
public final class StatsReporter: Sendable {
    public let role: Role
    public let sender: UInt64
    private struct Current {
        var values: [String: Double] = [:]
        var state: WorkerState = .starting
        var version: UInt64 = WeightsRequest.none
    }
    private let current = Mutex(Current())
    private let labels: [String: String]
    private let rejects: RejectCounter?
    private let stop = Atomic<Bool>(false)

    /// - Parameters:
    ///   - host: the cluster.conf host name the process runs on.
    ///   - restarts: how many times the launcher restarted this process before (`DOTS_RESTARTS`).
    ///   - rejects: the process's reject counter, reported as `messages_rejected_total.REASON`.
    public init(role: Role, sender: UInt64, host: String, rejects: RejectCounter? = nil,
                restarts: Int = StatsReporter.restartsFromEnvironment) {
        self.role = role
        self.sender = sender
        self.rejects = rejects
        labels = ["host": host, "run_id": LogContext.current.run]
        current.withLock { $0.values["restarts_total"] = Double(restarts) }
    }

    /// `DOTS_RESTARTS`, which `dots launch` sets for each child it starts: earlier starts of that child.
    public static var restartsFromEnvironment: Int {
        ProcessInfo.processInfo.environment["DOTS_RESTARTS"].flatMap(Int.init) ?? 0
    }

    public func add(_ key: String, _ amount: Double) { current.withLock { $0.values[key, default: 0] += amount } }
    public func set(_ key: String, _ value: Double) { current.withLock { $0.values[key] = value } }
    public func set(_ values: [String: Double]) { current.withLock { $0.values.merge(values) { $1 } } }
    public func setVersion(_ version: UInt64) { current.withLock { $0.version = version } }

    public func setState(_ state: WorkerState) { current.withLock { $0.state = state } }

    /// Runs `body`, adding its wall-clock seconds to `phase_seconds_total.PHASE`.
    public func phase<T>(_ name: String, _ body: () throws -> T) rethrows -> T {
        let start = ContinuousClock.now
        defer { add("phase_seconds_total.\(name)", (ContinuousClock.now - start).inSeconds) }
        return try body()
    }

    /// What would be sent now.
    public func snapshot(at date: Date = Date()) -> WorkerStats {
        var (values, state, version) = current.withLock { ($0.values, $0.state, $0.version) }
        values["bytes_sent_total"] = Double(WireTraffic.sent.load(ordering: .relaxed))
        values["bytes_received_total"] = Double(WireTraffic.received.load(ordering: .relaxed))
        for (reason, n) in rejects?.counts ?? [:] { values["messages_rejected_total.\(reason)"] = Double(n) }
        if state == .starting && version != WeightsRequest.none { state = .waiting }
        return WorkerStats(role: role, state: state, pid: UInt32(getpid()), weightsVersion: version,
                           sentAt: date.timeIntervalSince1970, values: values, labels: labels)
    }

    /// Starts the heartbeat thread: one report at once, then one a second until `stopReporting` (or a
    /// stop signal, after one last report with state `stopping`). A report that cannot go yet (the
    /// connection is not up: `ZMQ_IMMEDIATE`) is tried again 50 ms later rather than a second later.
    public func startReporting(_ node: WireNode) {
        let thread = Thread { [self] in
            guard let socket = try? node.connect(.stats) else { return }
            defer { socket.close() }
            var due = ContinuousClock.now
            while !stop.load(ordering: .relaxed) {
                let stopping = StopSignal.requested
                if stopping { setState(.stopping) }
                if ContinuousClock.now >= due || stopping {
                    // Non-blocking: a coordinator that is away must not stall the role.
                    let sent = (try? socket.send(WireCodec.encode(.heartbeat(snapshot()), sender: sender), dontWait: true)) ?? false
                    due = ContinuousClock.now + (sent ? .seconds(1) : .milliseconds(50))
                }
                if stopping { break }
                Thread.sleep(forTimeInterval: 0.05)
            }
        }
        thread.start()
    }

    public func stopReporting() { stop.store(true, ordering: .relaxed) }
}

extension Duration {
    /// In seconds, as a Double.
    public var inSeconds: Double {
        let (s, attos) = components
        return Double(s) + Double(attos) * 1e-18
    }
}
