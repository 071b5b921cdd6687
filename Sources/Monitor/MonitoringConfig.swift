import Wire

extension ClusterConfig {
    /// `monitoring.metrics_port`: where the coordinator serves /metrics; 0 = it serves none.
    public var metricsPort: Int { int("monitoring.metrics_port") ?? 0 }

    /// Where the coordinator listens for scrapes: its host's address if that is an IP literal, else every
    /// interface (the rule of the ZeroMQ endpoints).
    public var metricsBindEndpoint: String {
        let a = coordinatorHost.address
        let v4 = a.split(separator: ".").count == 4 && a.split(separator: ".").allSatisfy { UInt8($0) != nil }
        let interface = a.contains(":") ? "[\(a)]" : v4 ? a : "*"
        return "tcp://\(interface):\(metricsPort)"
    }

    /// Where `dots top` finds the coordinator's metrics; nil when monitoring is off.
    public var metricsURL: MetricsURL? {
        metricsPort == 0 ? nil : MetricsURL(host: coordinatorHost.address, port: metricsPort)
    }
}
