import Foundation
import Testing
@testable import Wire

@Suite struct ClusterConfigTests {
    /// The repository's cluster.conf.
    static var repoConfigPath: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("cluster.conf").path
    }

    static let minimal = """
        [hosts.a]
        address = "127.0.0.1"
        actors = 2

        [roles]
        coordinator = "a"
        learner = "a"
        """

    func issues(_ text: String) -> [ConfigIssue] {
        do { _ = try ClusterConfig(toml: text); return [] } catch { return error.issues }
    }

    @Test func defaultClusterConf() throws {
        let c = try ClusterConfig.load(path: Self.repoConfigPath)
        #expect(c.hosts.map(\.name) == ["local"])
        #expect(c.coordinatorHost.address == "127.0.0.1" && c.learnerHost.name == "local")
        #expect(c.actors.map(\.id) == [1000, 1001])
        // Hyper-parameters in the file are tuned by the training code; the schema defaults are tested below.
        #expect(c.training.batchSize >= 1 && c.training.groupSize >= 2)
        #expect(c.bindEndpoint(.rollouts) == "tcp://127.0.0.1:5701")
        #expect(c.connectEndpoint(.announce) == "tcp://127.0.0.1:5704")
        #expect(!c.security.curve && !c.spansMachines)
        #expect(Set(Channel.allCases.map(c.port)).count == Channel.allCases.count)
    }

    @Test func defaultsApplyAndIntegersReadAsFloats() throws {
        let d = try ClusterConfig(toml: Self.minimal)
        #expect(d.training.batchSize == 32 && d.training.groupSize == 8 && d.training.learningRate == 5e-5)
        #expect(d.training.maxLag == 0 && d.training.temperature == 1 && d.training.maxNewTokens == 16)
        #expect(d.training.selection == "uniform" && !d.training.replay && d.training.replayCapacity == 256)
        #expect(d.training.replayFractionDelta == 0.5 && d.training.seed == 0)
        let c = try ClusterConfig(toml: Self.minimal + "\n[training]\nlearning_rate = 1\n")
        #expect(c.training.learningRate == 1)
        #expect(c.training.batchSize == 32)
        #expect(c.double("training.tau") == 1e-3)
        #expect(c.model.checkpoint == "checkpoints/base")
    }

    @Test func unknownKeyNamesKeyAndLine() {
        let found = issues(Self.minimal + "\n[training]\nbatch_sise = 4\n")
        #expect(found.count == 1)
        #expect(found[0].key == "training.batch_sise")
        #expect(found[0].line == 9)
        #expect(found[0].description.hasPrefix("cluster.conf:9: training.batch_sise: unknown key (known here: "))
        #expect(issues(Self.minimal + "\n[trainin]\nsteps = 4\n").map(\.line) == [8, 9])
    }

    @Test func wrongTypeAndRange() {
        let found = issues(Self.minimal + "\n[training]\nbatch_size = \"big\"\ngroup_size = 1\nreplay = [1]\n")
        #expect(found.map(\.key) == ["training.batch_size", "training.group_size", "training.replay"])
        #expect(found.map(\.line) == [9, 10, 11])
        #expect(found[0].message == "expected an integer, found a string")
        #expect(found[1].message == "must be in 2...1024, is 1")
        #expect(found[2].message == "expected true or false, found an array")
    }

    @Test func missingField() {
        let found = issues("""
            [hosts.a]
            actors = 1
            [roles]
            coordinator = "a"
            """)
        #expect(found.map(\.key) == ["hosts.a.address", "roles.learner"])
        #expect(found[0].line == 1)  // the [hosts.a] table
        #expect(found[1].line == 3)  // the [roles] table
        #expect(found[1].message.hasPrefix("missing"))
    }

    @Test func roleWithNoHost() {
        let found = issues(Self.minimal.replacingOccurrences(of: "learner = \"a\"", with: "learner = \"gpu9\""))
        #expect(found.count == 1)
        #expect(found[0].key == "roles.learner" && found[0].line == 7)
        #expect(found[0].message.contains("no [hosts.gpu9] table"))
    }

    @Test func portClash() {
        let found = issues(Self.minimal + "\n[endpoints]\nrollouts = 6000\nstats = 6000\n")
        #expect(found.count == 1)
        #expect(found[0].key == "endpoints.stats" && found[0].line == 10)
        #expect(found[0].message == "port 6000 is already used by endpoints.rollouts on 127.0.0.1")
        // On different hosts the same port is fine (with keys, since that spans machines).
        #expect(issues(Self.minimal + "\n[endpoints]\nrollouts = 80\n").first?.message == "port must be in 1024...65535, is 80")
    }

    @Test func badAddress() {
        for bad in ["127.0.0.300", "10.0.0", "local host", "-x.example", "::g"] {
            let found = issues(Self.minimal.replacingOccurrences(of: "127.0.0.1", with: bad))
            #expect(found.map(\.key) == ["hosts.a.address"], "\(bad)")
            #expect(found.first?.line == 2)
        }
        for good in ["10.1.2.3", "gpu-1.cluster.local", "::1", "localhost"] {
            #expect(issues(Self.minimal.replacingOccurrences(of: "127.0.0.1", with: good)) == [], "\(good)")
        }
    }

    @Test func acrossMachinesRequiresKeys() throws {
        let two = Self.minimal + """

            [hosts.b]
            address = "10.0.0.2"
            actors = 4
            """
        let found = issues(two)
        #expect(found.map(\.key) == ["security.curve"])
        let keyed = two.replacingOccurrences(of: "[roles]", with: """
            public_key = "k/a.public"
            secret_key = "k/a.secret"
            [roles]
            """) + """

            public_key = "k/b.public"
            secret_key = "k/b.secret"
            [security]
            curve = true
            server_public_key = "k/s.public"
            server_secret_key = "k/s.secret"
            """
        let c = try ClusterConfig(toml: keyed)
        #expect(c.spansMachines && c.security.curve)
        #expect(c.actors.map(\.id) == Array(1000...1005))
        #expect(c.actorID(host: "b", index: 0) == 1002)
    }

    @Test func setOverridesWithTheSameValidation() throws {
        var c = try ClusterConfig(toml: Self.minimal)
        try c.set("training.batch_size", "64")
        try c.set(assignment: "training.selection=dots")
        try c.set(assignment: "training.learning_rate = 1e-4")
        try c.set("hosts.a.actors", "3")
        #expect(c.training.batchSize == 64 && c.training.selection == "dots" && c.training.learningRate == 1e-4)
        #expect(c.actors.count == 3)
        func failure(_ key: String, _ value: String) -> String {
            var copy = c
            do { try copy.set(key, value); return "" } catch { return error.description }
        }
        #expect(failure("training.batch_size", "lots") == "--set training.batch_size: expected an integer, got \"lots\"")
        #expect(failure("training.batch_size", "0") == "--set training.batch_size: must be in 1...65536, is 0")
        #expect(failure("training.selection", "best") == "--set training.selection: must be one of \"uniform\", \"dots\", is \"best\"")
        #expect(failure("training.nope", "1").hasPrefix("--set training.nope: unknown key"))
        #expect(failure("roles.learner", "b").contains("no [hosts.b] table"))
        #expect(failure("endpoints.stats", "5701") == "--set endpoints.stats: port 5701 is already used by endpoints.rollouts on 127.0.0.1")
        // A failed set leaves the config as it was.
        #expect(c.training.batchSize == 64)
    }

    @Test func syntaxErrorHasALine() {
        let found = issues("[hosts.a]\naddress = \n")
        #expect(found.count == 1 && found[0].line == 2)
    }

    @Test func ipcEndpoints() throws {
        let c = try ClusterConfig(toml: Self.minimal + "\n[endpoints]\ntransport = \"ipc\"\nipc_dir = \"/tmp/x\"\n")
        #expect(c.bindEndpoint(.weights) == "ipc:///tmp/x/weights")
        #expect(c.connectEndpoint(.weights) == "ipc:///tmp/x/weights")
    }
}
