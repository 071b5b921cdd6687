import ArgumentParser
import Coordinator
import Foundation
import Learner
import Model
import Tasks
import RolloutActor
import Wire

/// Options every role shares: the cluster file and its overrides.
struct ClusterOptions: ParsableArguments {
    @Option(help: "The cluster file (TOML): hosts, roles, endpoints, model and training settings.")
    var config: String = "cluster.conf"

    @Option(name: .customLong("set"), parsing: .singleValue,
            help: ArgumentHelp("Override a cluster.conf key, e.g. --set training.batch_size=64 (repeatable).", valueName: "key=value"))
    var overrides: [String] = []

    @Flag(help: "Log every event (debug level), not only those that matter; the same as DOTS_LOG_LEVEL=debug.")
    var verbose = false

    /// The config with overrides applied; errors are the config's one-sentence messages.
    func load() throws -> ClusterConfig {
        var c: ClusterConfig
        do { c = try ClusterConfig.load(path: config) } catch { throw UserError(error.description) }
        do { try c.set(assignments: overrides) } catch { throw UserError(error.description) }
        return c
    }

    var baseDirectory: String { (config as NSString).deletingLastPathComponent.isEmpty ? "." : (config as NSString).deletingLastPathComponent }

    func security(_ c: ClusterConfig, host: String, server: Bool) throws -> WireSecurity? {
        do { return try WireSecurity.load(c, host: host, baseDirectory: baseDirectory, server: server) } catch {
            throw UserError("\(error)")
        }
    }
}

struct CoordinatorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coordinator",
        abstract: "Run the coordinator: the step clock, prompt assignment, weights snapshots and membership.",
        discussion: "Usually started by `dots launch`. Binds the assignment, weights, announce, updates and stats endpoints of cluster.conf.")

    @OptionGroup var cluster: ClusterOptions
    @Option(help: "Run folder (logs, and selection.jsonl with DOTS).") var runDir: String = "runs/manual"

    func run() throws {
        let node = try startRole(cluster, runDir: runDir) {
            let c = try cluster.load()
            return try CoordinatorNode(config: c, security: try cluster.security(c, host: c.coordinatorHost.name, server: true),
                                       runDir: URL(fileURLWithPath: runDir))
        }
        try node.run()
    }
}

struct LearnerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "learner",
        abstract: "Run the learner: gathers rollout groups, runs the GRPO updates, publishes weights, checkpoints.",
        discussion: """
        Usually started by `dots launch`. Trains training.steps steps, writes RUN_DIR/metrics.jsonl (a line a \
        step) and RUN_DIR/checkpoints/{step-N,final}, then exits 0. On SIGINT/SIGTERM it writes the final \
        checkpoint and exits 0. --resume continues from the newest checkpoint in RUN_DIR.
        """)

    @OptionGroup var cluster: ClusterOptions
    @Option(help: "Run folder (metrics and checkpoints).") var runDir: String = "runs/manual"
    @Flag(help: "Continue from the newest checkpoint in the run folder.") var resume = false

    func run() throws {
        let node = try startRole(cluster, runDir: runDir) {
            let c = try cluster.load()
            return try LearnerNode(config: c, security: try cluster.security(c, host: c.learnerHost.name, server: true),
                                   runDir: URL(fileURLWithPath: runDir), resume: resume)
        }
        try node.run()
    }
}

struct ActorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "actor",
        abstract: "Run a rollout actor: generates and scores completions, streams rollout groups to the learner.",
        discussion: """
        `dots launch` starts the actors cluster.conf places on its host. To add one on another machine, \
        copy cluster.conf (and this host's key files) there and run `dots actor --config cluster.conf \
        --host NAME --index I`; it fetches the current weights from the coordinator and joins.
        """)

    @OptionGroup var cluster: ClusterOptions
    @Option(help: "This machine's host name in cluster.conf (default: the coordinator's host).") var host: String?
    @Option(help: "Which of the host's actors this is (0-based).") var index: Int = 0
    @Option(help: "Run folder (unused by actors; accepted for symmetry with the other roles).") var runDir: String?

    func run() throws {
        let node = try startRole(cluster, runDir: runDir) {
            let c = try cluster.load()
            let hostName = host ?? c.coordinatorHost.name
            guard let id = c.actorID(host: hostName, index: index) else {
                throw UserError("cluster.conf places no actor \(index) on host \(hostName) (hosts.\(hostName).actors).")
            }
            return try ActorNode(config: c, security: try cluster.security(c, host: hostName, server: false), actorID: id, host: hostName)
        }
        try node.run()
    }
}

/// An error a user caused, printed as its one sentence (no usage text, no stack trace).
struct UserError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A role's start-up: tie its lifetime to the launcher, turn SIGINT/SIGTERM into a clean stop, install the
/// log format (a line an event, naming the run, role and worker), then build the role. A mistake in the
/// config, keys, checkpoint or dataset prints its sentence and exits 64 (EX_USAGE), which tells
/// `dots launch` that restarting cannot help.
func startRole<T>(_ options: ClusterOptions, runDir: String?, _ body: () throws -> T) throws -> T {
    bindLifetimeToLauncher()
    StopSignal.install()
    LineLogHandler.bootstrap(verbose: options.verbose)
    LogContext.set(run: LogContext.runID(runDir: runDir))
    do { return try body() } catch let e where e is UserError || e is ModelError || e is DatasetError {
        FileHandle.standardError.write(Data("Error: \(e)\n".utf8))
        throw ExitCode(64)
    }
}
