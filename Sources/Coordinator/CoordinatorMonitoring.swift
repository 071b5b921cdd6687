import Foundation
import Monitor
import Wire

/// The coordinator's monitoring side: every process's reports (heartbeats on `stats`) aggregated in
/// `ClusterStats`, its own report added directly, and the /metrics endpoint served from the same poll
/// loop (`MetricsServer`).
extension CoordinatorNode {
    /// Listens for scrapes when `monitoring.metrics_port` is set. A port that cannot be bound turns
    /// monitoring off with an error line; it never stops training.
    func startMetricsServer() -> MetricsServer? {
        guard config.metricsPort != 0 else { return nil }
        do {
            let server = try MetricsServer(context: node.context, endpoint: config.metricsBindEndpoint)
            log.info("serving metrics", metadata: ["url": "\(config.metricsURL.map(\.description) ?? server.endpoint)"])
            return server
        } catch {
            log.error("cannot serve /metrics; monitoring is off for this run", metadata: ["error": "\(error)"])
            return nil
        }
    }

    /// A heartbeat or stats message from any process.
    func record(_ sender: UInt64, _ stats: WorkerStats) {
        cluster.record(sender: sender, stats)
    }

    /// The coordinator's own report, refreshed before each scrape and every second.
    func recordSelf() {
        report.setVersion(weights?.version ?? WeightsRequest.none)
        // Serving from the first weights on; "starting" until then.
        if weights != nil { report.setState(.working) }
        report.set("actors_alive", Double(lastSeen.count))
        cluster.record(sender: ClusterConfig.coordinatorID, report.snapshot())
        cluster.prune()
    }

    /// The /metrics body.
    func exposition() -> String {
        recordSelf()
        return cluster.exposition()
    }
}
