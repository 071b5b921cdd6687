import Foundation
import Testing
@testable import Monitor
@testable import Wire

@Suite struct MonitoringConfigTests {
    static let minimal = """
        [hosts.a]
        address = "10.0.0.5"
        actors = 1

        [roles]
        coordinator = "a"
        learner = "a"

        """

    @Test func metricsPortDefaultsToOff() throws {
        let c = try ClusterConfig(toml: Self.minimal)
        #expect(c.metricsPort == 0 && c.metricsURL == nil)
    }

    @Test func metricsEndpointFollowsTheCoordinatorsAddress() throws {
        let c = try ClusterConfig(toml: Self.minimal + "[monitoring]\nmetrics_port = 5707\n")
        #expect(c.metricsBindEndpoint == "tcp://10.0.0.5:5707")
        #expect(c.metricsURL?.description == "http://10.0.0.5:5707/metrics")
        let named = try ClusterConfig(toml: Self.minimal.replacingOccurrences(of: "10.0.0.5", with: "localhost")
                                      + "[monitoring]\nmetrics_port = 5707\n")
        #expect(named.metricsBindEndpoint == "tcp://*:5707")
    }

    @Test func theRepositoryConfigServesMetrics() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("cluster.conf").path
        #expect(try ClusterConfig.load(path: path).metricsPort == 5707)
    }

    @Test func aClashingPortIsOneIssue() {
        do {
            _ = try ClusterConfig(toml: Self.minimal + "[monitoring]\nmetrics_port = 5706\n")
            Issue.record("accepted a metrics port equal to endpoints.stats")
        } catch {
            #expect(error.issues.map(\.message) == ["port 5706 is already used by endpoints.stats on 10.0.0.5"])
        }
    }
}
