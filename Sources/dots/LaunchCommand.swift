import ArgumentParser
import Foundation
import Monitor
import Wire
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `dots launch`: the main job. Starts this host's share of the cluster as child processes, shows
/// training progress, restarts what crashes, and stops everything in order.
struct LaunchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "launch",
        abstract: "Train: start the processes cluster.conf places on this host, show progress, supervise them.",
        discussion: """
        What happens: cluster.conf is loaded and checked with every --set applied, a run folder is \
        made, and this host's processes start as children of this one, each `dots <role>` from this \
        same executable: the coordinator and the learner if [roles] places them here, and the host's \
        `actors` actor processes. They talk over ZeroMQ; the learner trains training.steps GRPO steps.

        Where output goes (RUN_DIR: --run-dir, by default runs/<yyyyMMdd-HHmmss>):
          RUN_DIR/cluster.conf    the effective config the children read
          RUN_DIR/logs/ROLE.log   each child's output (coordinator, learner, actor-0…)
          RUN_DIR/metrics.jsonl   one JSON object per training step (the learner's)
          RUN_DIR/checkpoints/    step-N every training.checkpoint_every steps; final
        The terminal shows one line per step: mean reward, fraction of groups whose rewards are all \
        equal, tokens/s over all actors, held-out test accuracy when measured, elapsed time and ETA.

        Supervision: a child that crashes is restarted after 1, 2, 4 … 30 s (the learner with \
        --resume, from its latest checkpoint); more than 5 crashes in a row of one child stop the run. \
        When the learner has trained all its steps, every child is stopped and the launcher exits 0. \
        Ctrl-C asks the learner to write a final checkpoint (up to 30 s), then stops the rest and exits \
        130; a second Ctrl-C kills everything at once. Launching again with the same --run-dir (or \
        --resume RUN_DIR) resumes from its checkpoints with the run's own settings, RUN_DIR/cluster.conf.

        Examples:
          dots launch --steps 200
          dots launch --set training.selection=uniform     (plain GRPO, the baseline)
          dots launch --set training.batch_size=32 --set training.max_lag=1
          dots launch --host gpu1     (on each host of a multi-host cluster)
          dots launch --resume runs/20261125-101500     (after a crash or Ctrl-C)
        """)

    @Option(help: "The cluster file: hosts, roles, endpoints and the [model] and [training] settings (default: cluster.conf; with --resume, the run's own RUN_DIR/cluster.conf).")
    var config: String?

    @Option(help: "Training steps; the same as --set training.steps=N.")
    var steps: Int?

    @Option(help: "Run folder for the logs, metrics and checkpoints (default: runs/<yyyyMMdd-HHmmss>).")
    var runDir: String?

    @Option(help: ArgumentHelp("Continue the run in RUN_DIR from its newest checkpoint with its own settings (RUN_DIR/cluster.conf, which holds its --set flags; new --set flags apply on top): the same step numbering, optimizer state, replay buffer and prompt draw (an error if RUN_DIR has no checkpoint).",
                               valueName: "RUN_DIR"))
    var resume: String?

    @Option(help: "Which [hosts.NAME] of the config this machine is (default: the one at 127.0.0.1, localhost or ::1, else the only one).")
    var host: String?

    @Option(name: .customLong("set"),
            help: ArgumentHelp("Override a config key, e.g. --set training.batch_size=64 (repeatable; every key is listed in Sources/Wire/ConfigSchema.swift).",
                               valueName: "key=value"))
    var overrides: [String] = []

    @Flag(help: "Every child logs every event (debug level), not only those that matter.")
    var verbose = false

    func run() async throws {
        if verbose { setenv("DOTS_LOG_LEVEL", "debug", 1) }
        if let resume { try Self.checkResumable(resume, runDir: runDir) }
        // A resumed run keeps the settings it was started with (batch size, seed, selection…): the prompt
        // draw and the step clock continue only if they are the same.
        let configPath = config ?? Self.runConfig(resume ?? runDir) ?? "cluster.conf"
        let plan = try LaunchPlan(configPath: configPath, steps: steps, runDir: resume ?? runDir, hostName: host, overrides: overrides)
        let code = await Supervisor(plan: plan).run()
        if code != 0 { throw ExitCode(code) }
    }
}

extension LaunchCommand {
    /// The effective config of an earlier run in `runDir` that has checkpoints to continue from, if any.
    static func runConfig(_ runDir: String?) -> String? {
        guard let runDir, LaunchPlan.hasCheckpoints(runDir) else { return nil }
        let file = (runDir as NSString).appendingPathComponent("cluster.conf")
        return FileManager.default.fileExists(atPath: file) ? file : nil
    }
}

/// A launcher-level user error: one sentence, printed by ArgumentParser as "Error: …".
struct LaunchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A process the launcher runs; its name is also its log file's.
enum Role: Hashable {
    case coordinator, learner
    /// The index among this host's actors.
    case actor(Int)

    var name: String {
        switch self {
        case .coordinator: "coordinator"
        case .learner: "learner"
        case .actor(let i): "actor-\(i)"
        }
    }
}

/// Everything decided before the first child starts: the validated config, this host, the run folder.
struct LaunchPlan {
    let config: ClusterConfig
    let host: ClusterConfig.Host
    /// As given (for messages) and absolute (for the children).
    let runDirDisplay: String
    let runDir: String
    /// The effective config in the run folder, which every child reads.
    let configFile: String
    /// `--set` flags as given (path values made absolute), `--steps` as training.steps; passed on to
    /// every child.
    let setFlags: [String]
    let roles: [Role]
    /// The run folder already holds checkpoints: the learner starts with --resume.
    let resume: Bool
    let executable = currentExecutablePath()

    init(configPath: String, steps: Int?, runDir: String?, hostName: String?, overrides: [String]) throws {
        var config = try ClusterConfig.load(path: configPath)
        let assignments = overrides + (steps.map { ["training.steps=\($0)"] } ?? [])
        try config.set(assignments: assignments)
        self.config = config
        let configDir = (configPath as NSString).deletingLastPathComponent
        setFlags = assignments.flatMap { assignment -> [String] in
            let key = String(assignment.prefix { $0 != "=" }).trimmingCharacters(in: .whitespaces)
            guard Self.isPathKey(key),
                  case .string(let path)? = config.value(key).map({ Self.resolved(key, $0, configDir: configDir) })
            else { return ["--set", assignment] }
            return ["--set", "\(key)=\(path)"]
        }
        host = try Self.thisHost(config, named: hostName)

        var roles: [Role] = []
        if config.coordinatorHost.name == host.name { roles.append(.coordinator) }
        if config.learnerHost.name == host.name { roles.append(.learner) }
        roles += (0..<host.actors).map(Role.actor)
        guard !roles.isEmpty else {
            throw LaunchError("Host \"\(host.name)\" runs nothing: [roles] places neither the coordinator nor the learner on it and hosts.\(host.name).actors is 0.")
        }
        self.roles = roles
        // DOTS without its predictor would only fail when the coordinator starts, restarted five times; say it now.
        if roles.contains(.coordinator), config.training.selection == "dots" {
            guard let dir = config.string("training.predictor"), !dir.isEmpty else {
                throw LaunchError("training.selection = \"dots\" needs training.predictor, a folder made by `dots predictor train` (set it in \(configPath) or with --set training.predictor=DIR).")
            }
            guard FileManager.default.fileExists(atPath: (dir as NSString).appendingPathComponent("predictor.json")) else {
                throw LaunchError("training.predictor = \(dir) is not a predictor folder (no predictor.json there); make one with `dots predictor train`.")
            }
        }

        let stamp = DateFormatter()
        stamp.locale = Locale(identifier: "en_US_POSIX")
        stamp.dateFormat = "yyyyMMdd-HHmmss"
        runDirDisplay = runDir ?? "runs/\(stamp.string(from: Date()))"
        self.runDir = URL(fileURLWithPath: runDirDisplay).standardizedFileURL.path
        resume = Self.hasCheckpoints(self.runDir)
        if roles.contains(.learner), !resume, !FileManager.default.fileExists(atPath: config.model.checkpoint) {
            throw LaunchError("model.checkpoint: \(config.model.checkpoint) does not exist; make one with `dots model init --out \(config.model.checkpoint)` or point model.checkpoint at one.")
        }

        configFile = (self.runDir as NSString).appendingPathComponent("cluster.conf")
        do {
            try FileManager.default.createDirectory(atPath: (self.runDir as NSString).appendingPathComponent("logs"),
                                                    withIntermediateDirectories: true)
            let header = """
                # The effective configuration of this run: \(configPath) with --set applied and every default
                # written out. Written by: \(CommandLine.arguments.joined(separator: " "))
                """
            try Self.effectiveTOML(config, header: header, configDir: configDir).write(toFile: configFile, atomically: true, encoding: .utf8)
        } catch {
            throw LaunchError("Cannot write the run folder \(runDirDisplay): \(error.localizedDescription)")
        }
        // Children must read exactly what this launcher validated.
        do { _ = try ClusterConfig.load(path: configFile) } catch {
            throw LaunchError("The effective config \(configFile) does not load back (a launcher bug): \(error)")
        }
    }

    /// Whether a predictor folder holds any prompt-embedding cache (the coordinator's first DOTS run makes one).
    static func hasEmbeddingCache(predictor dir: String) -> Bool {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: (dir as NSString).appendingPathComponent("embeddings"))) ?? []
        return files.contains { $0.hasPrefix("embeddings-") && $0.hasSuffix(".safetensors") }
    }

    /// `runDir`/checkpoints holds anything: launching into it continues that run.
    static func hasCheckpoints(_ runDir: String) -> Bool {
        let checkpoints = (runDir as NSString).appendingPathComponent("checkpoints")
        return !((try? FileManager.default.contentsOfDirectory(atPath: checkpoints)) ?? []).isEmpty
    }

    func logPath(_ role: Role) -> String { "\(runDir)/logs/\(role.name).log" }

    func arguments(_ role: Role, restart: Bool) -> [String] {
        switch role {
        case .coordinator:
            return ["coordinator", "--config", configFile, "--run-dir", runDir] + setFlags
        case .learner:
            return ["learner", "--config", configFile, "--run-dir", runDir] + setFlags + (restart || resume ? ["--resume"] : [])
        case .actor(let i):
            return ["actor", "--config", configFile, "--host", host.name, "--index", String(i)] + setFlags
        }
    }

    /// `--host`, else the host at a loopback address, else the only host.
    static func thisHost(_ config: ClusterConfig, named name: String?) throws -> ClusterConfig.Host {
        let names = config.hosts.map(\.name).joined(separator: ", ")
        if let name {
            guard let host = config.host(named: name) else {
                throw LaunchError("--host \(name): the config has no [hosts.\(name)] table (hosts: \(names)).")
            }
            return host
        }
        let local = config.hosts.filter { ["127.0.0.1", "localhost", "::1"].contains($0.address) }
        if local.count == 1 { return local[0] }
        if local.count > 1 {
            throw LaunchError("Several hosts are at a loopback address (\(local.map(\.name).joined(separator: ", "))); choose this one with --host NAME.")
        }
        if config.hosts.count == 1 { return config.hosts[0] }
        throw LaunchError("Cannot tell which host of the config this machine is; pass --host NAME (hosts: \(names)).")
    }

    /// Whether a key holds a file path: key files are read relative to the config file's folder,
    /// model.checkpoint relative to the working directory.
    static func isPathKey(_ key: String) -> Bool {
        key == "model.checkpoint" || key.hasPrefix("security.server_") || key == "security.allowed_keys"
            || (key.hasPrefix("hosts.") && (key.hasSuffix(".public_key") || key.hasSuffix(".secret_key")))
    }

    /// Path values made absolute, so the copy of the config in the run folder names the same files.
    static func resolved(_ key: String, _ value: ConfigValue, configDir: String) -> ConfigValue {
        guard isPathKey(key), case .string(let path) = value, !path.hasPrefix("/") else { return value }
        let base = key == "model.checkpoint" || configDir.isEmpty ? FileManager.default.currentDirectoryPath
            : URL(fileURLWithPath: configDir).standardizedFileURL.path
        return .string(URL(fileURLWithPath: path, relativeTo: URL(fileURLWithPath: base, isDirectory: true)).standardizedFileURL.path)
    }

    /// The config as TOML with every key's effective value (paths absolute), hosts first, in schema order.
    static func effectiveTOML(_ config: ClusterConfig, header: String, configDir: String) -> String {
        var text = header + "\n"
        var table = ""
        func emit(_ path: String) {
            guard let value = config.value(path).map({ resolved(path, $0, configDir: configDir) }) else { return }
            let cut = path.lastIndex(of: ".")!
            let section = String(path[..<cut])
            if section != table {
                text += "\n[\(section)]\n"
                table = section
            }
            text += "\(path[path.index(after: cut)...]) = \(tomlLiteral(value))\n"
        }
        let hostKeys = ConfigSchema.keys.filter { $0.path.hasPrefix("hosts.*.") }
        for host in config.hosts {
            for key in hostKeys { emit(key.path.replacingOccurrences(of: "*", with: host.name)) }
        }
        for key in ConfigSchema.keys where !key.path.hasPrefix("hosts.") { emit(key.path) }
        return text
    }

    static func tomlLiteral(_ value: ConfigValue) -> String {
        switch value {
        case .int(let v): return String(v)
        case .double(let v): return "\(v)"
        case .bool(let v): return v ? "true" : "false"
        case .string(let s):
            var out = "\""
            for scalar in s.unicodeScalars {
                switch scalar {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                case _ where scalar.value < 0x20 || scalar.value == 0x7f:
                    out += String(format: "\\u%04X", scalar.value)
                default: out.unicodeScalars.append(scalar)
                }
            }
            return out + "\""
        }
    }
}

/// Runs the children and decides when to restart and when to stop. Confined to the main actor, whose
/// executor is the main thread: children must be spawned from a thread that lives as long as the
/// launcher (see `ChildProcess`), and confinement keeps the state free of locks.
@MainActor
final class Supervisor {
    private struct Child {
        let role: Role
        var process: ChildProcess?
        var startedAt = Date()
        var starts = 0
        /// Crashes in a row; reset by a run of 60 s or more.
        var crashes = 0
        var restartAt: Date?
        /// Exited 0 by itself and is not restarted.
        var finished = false
    }

    private enum Outcome {
        case trained
        case interrupted(Int32)
        case failed(String)
        case allExited
    }

    private let plan: LaunchPlan
    private var children: [Child]
    private let display: StepDisplay
    private var signalSources: [DispatchSourceSignal] = []
    /// SIGINT/SIGTERM received, in order.
    private var received: [Int32] = []
    /// Each child's termination while stopping.
    private var lastEnd: [Int: ChildTermination] = [:]
    private let started = Date()
    /// Starts each line the launcher writes into a child's log before starting it.
    private static let bannerPrefix = "=== dots launch"

    init(plan: LaunchPlan) {
        self.plan = plan
        children = plan.roles.map { Child(role: $0) }
        display = StepDisplay(metricsPath: "\(plan.runDir)/metrics.jsonl", totalSteps: plan.config.training.steps)
    }

    func run() async -> Int32 {
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .main)
            source.setEventHandler { MainActor.assumeIsolated { self.received.append(sig) } }
            source.resume()
            signalSources.append(source)
        }
        killChildrenAtExit()

        let r = plan.runDirDisplay
        display.say("Run folder \(r): config \(r)/cluster.conf, logs \(r)/logs/, metrics \(r)/metrics.jsonl, checkpoints \(r)/checkpoints/")
        display.say("Host \"\(plan.host.name)\" (\(plan.host.address)): starting \(plan.roles.map(\.name).joined(separator: ", "))"
                    + (plan.resume ? "; the learner resumes from \(r)/checkpoints/." : "."))
        if plan.roles.contains(.coordinator), let url = plan.config.metricsURL {
            display.say("Watch it: `dots top --config \(plan.runDirDisplay)/cluster.conf`, or Prometheus metrics at \(url).")
        }
        if plan.roles.contains(.learner) {
            display.say("Training \(plan.config.training.steps) steps. Ctrl-C stops cleanly: the learner writes a final checkpoint first.")
            let t = plan.config.training
            if plan.roles.contains(.coordinator), t.selection == "dots" {
                if let dir = plan.config.string("training.predictor"), !LaunchPlan.hasEmbeddingCache(predictor: dir) {
                    display.say("DOTS: before the first step the coordinator embeds the candidate prompts with the predictor's embedder, unless they are cached (in \(dir)/embeddings/); the first time it takes a while (10–20 s for 20,000 prompts here).")
                }
                if t.maxLag > 0, plan.config.bool("training.reference_feed") == true || (plan.config.int("training.reference_lead") ?? 0) > 0 {
                    display.say("Note: with max_lag = \(t.maxLag) DOTS feeds no reference groups to the learner (training.reference_feed needs max_lag = 0), and reference_lead adds to how far a round's references may run ahead of its weights.")
                }
            }
        } else {
            display.say("The learner runs on host \"\(plan.config.learnerHost.name)\" (progress and checkpoints are there); Ctrl-C stops this host's processes.")
        }

        for i in children.indices {
            if let error = start(i) { return await finish(.failed(error)) }
        }
        return await finish(await supervise())
    }

    // MARK: running

    private func supervise() async -> Outcome {
        while true {
            if let sig = received.first { return .interrupted(sig) }
            let now = Date()
            for i in children.indices {
                if let ended = reap(i), let outcome = childEnded(i, ended, at: now) { return outcome }
                if children[i].process == nil, let at = children[i].restartAt, at <= now {
                    children[i].restartAt = nil
                    if let error = start(i) { return .failed(error) }
                }
            }
            if children.allSatisfy(\.finished) { return .allExited }
            if plan.roles.contains(.learner) { display.poll() }
            try? await Task.sleep(for: .milliseconds(200))
        }
    }

    /// Starts (or restarts) child `i`; an error message if it could not be started.
    private func start(_ i: Int) -> String? {
        dispatchPrecondition(condition: .onQueue(.main))
        let role = children[i].role
        let arguments = plan.arguments(role, restart: children[i].starts > 0)
        let log = plan.logPath(role)
        let banner = "\(Self.bannerPrefix), \(Date()): start \(children[i].starts + 1) of \(role.name): dots \(arguments.joined(separator: " ")) ===\n"
        if let handle = FileHandle(forWritingAtPath: log) ?? (FileManager.default.createFile(atPath: log, contents: nil) ? FileHandle(forWritingAtPath: log) : nil) {
            handle.seekToEndOfFile()
            handle.write(Data(banner.utf8))
            try? handle.close()
        }
        var environment = ProcessInfo.processInfo.environment
        environment[launcherPIDVariable] = String(getpid())
        // Each child's log lines and reports name the run; its reports count the restarts.
        environment["DOTS_RUN_ID"] = URL(fileURLWithPath: plan.runDir).lastPathComponent
        environment["DOTS_RESTARTS"] = String(children[i].starts)
        do {
            children[i].process = try ChildProcess.spawn(executable: plan.executable, arguments: arguments,
                                                         environment: environment, logPath: log)
        } catch {
            return "Cannot start the \(role.name): \(error)."
        }
        children[i].startedAt = Date()
        children[i].starts += 1
        return nil
    }

    /// Child `i`'s termination if it has just ended.
    private func reap(_ i: Int) -> ChildTermination? {
        guard let ended = children[i].process?.poll() else { return nil }
        children[i].process = nil
        return ended
    }

    /// Decides what a child's end means while the run is going.
    private func childEnded(_ i: Int, _ ended: ChildTermination, at now: Date) -> Outcome? {
        let role = children[i].role
        let log = plan.logPath(role)
        switch (role, ended) {
        case (.learner, .exited(0)):
            return .trained
        case (_, .exited(0)):
            children[i].finished = true
            display.say("\(role.name) exited by itself (status 0); it is not restarted.")
            return nil
        case (_, .exited(64)):
            // EX_USAGE, ArgumentParser's status for a rejected command line: restarting cannot help.
            return .failed("\(role.name) rejected its command line or configuration (status 64); see \(log):\n\(tail(of: log))")
        default:
            let uptime = now.timeIntervalSince(children[i].startedAt)
            if uptime >= 60 { children[i].crashes = 0 }
            children[i].crashes += 1
            let crashes = children[i].crashes
            if crashes > 5 {
                return .failed("\(role.name) crashed \(crashes) times in a row (last: it \(ended)); giving up. Its log: \(log)\n\(tail(of: log))")
            }
            let delay = min(30, 1 << (crashes - 1))
            children[i].restartAt = now.addingTimeInterval(TimeInterval(delay))
            display.say("\(role.name) \(ended) after \(clock(uptime)); restarting it in \(delay) s"
                        + (role == .learner ? " with --resume" : "") + " (crash \(crashes) in a row). Log: \(log)\n\(tail(of: log))")
            return nil
        }
    }

    // MARK: stopping

    private func finish(_ outcome: Outcome) async -> Int32 {
        switch outcome {
        case .trained:
            await stopAll(learnerFirst: false)
            display.poll()
            display.summary(runDir: plan.runDirDisplay, wallTime: Date().timeIntervalSince(started))
            return 0
        case .interrupted(let sig):
            display.say("\(sig == SIGINT ? "Interrupted" : "Terminated"): stopping every process.")
            await stopAll(learnerFirst: true)
            display.poll()
            let final = "\(plan.runDir)/checkpoints/final"
            if plan.roles.contains(.learner) {
                display.say(FileManager.default.fileExists(atPath: final)
                            ? "Stopped. Final checkpoint: \(plan.runDirDisplay)/checkpoints/final; continue with --run-dir \(plan.runDirDisplay)."
                            : "Stopped; no final checkpoint was written (see \(plan.logPath(.learner))).")
            }
            return 128 + sig
        case .failed(let message):
            display.say(message)
            await stopAll(learnerFirst: true)
            display.say("Stopped every process; the run failed.")
            return 1
        case .allExited:
            display.say("Every process on this host has exited.")
            return 0
        }
    }

    /// SIGTERM to the learner (it writes a final checkpoint) and up to 30 s for it, then SIGTERM to the
    /// rest and SIGKILL after 5 s. A further signal from the user skips straight to SIGKILL.
    private func stopAll(learnerFirst: Bool) async {
        for i in children.indices { children[i].restartAt = nil }
        let patience = received.count
        var hurry: Bool { received.count > patience }
        if learnerFirst, let l = children.firstIndex(where: { $0.role == .learner && $0.process != nil }) {
            display.say("Asking the learner to write its final checkpoint (up to 30 s; press Ctrl-C again to kill everything now)…")
            children[l].process?.signal(SIGTERM)
            let stopped = await waitForExit(seconds: 30, until: { children[l].process == nil || hurry })
            if !stopped {
                display.say("The learner has not stopped within 30 s; stopping it with the rest.")
            } else if case .exited(let code)? = lastEnd[l], code != 0 {
                display.say("The learner exited with status \(code) while stopping; see \(plan.logPath(.learner)).")
            }
        }
        if !hurry {
            for child in children { child.process?.signal(SIGTERM) }
            _ = await waitForExit(seconds: 5, until: { children.allSatisfy { $0.process == nil } || hurry })
        }
        for child in children where child.process != nil {
            if !hurry { display.say("\(child.role.name) did not stop within 5 s of SIGTERM; killing it (see \(plan.logPath(child.role))).") }
            child.process?.signal(SIGKILL)
        }
        _ = await waitForExit(seconds: 5, until: { children.allSatisfy { $0.process == nil } })
    }

    /// Reaps children until `done` holds or the time is up; whether `done` held.
    private func waitForExit(seconds: Double, until done: () -> Bool) async -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            for i in children.indices { if let ended = reap(i) { lastEnd[i] = ended } }
            if done() { return true }
            if Date() >= deadline { return false }
            try? await Task.sleep(for: .milliseconds(100))
        }
    }

    /// The last lines a child wrote since its latest start, indented, for messages about it.
    private func tail(of path: String, lines count: Int = 5) -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else { return "    (no log)" }
        defer { try? handle.close() }
        let size = handle.seekToEndOfFile()
        handle.seek(toFileOffset: size > 8192 ? size - 8192 : 0)
        let lines = String(decoding: handle.readDataToEndOfFile(), as: UTF8.self).split(separator: "\n")
        let sinceStart = lines.lastIndex { $0.hasPrefix(Self.bannerPrefix) }.map { lines[($0 + 1)...] } ?? lines[...]
        return sinceStart.isEmpty ? "    (nothing in its log)" : sinceStart.suffix(count).map { "    " + $0 }.joined(separator: "\n")
    }
}

/// One line of RUN_DIR/metrics.jsonl: the fields the terminal shows.
struct StepMetrics: Decodable {
    let step: Int
    let meanReward: Double?
    let fracAllEqual: Double?
    let tokensPerS: [String: Double]?
    let testAccuracy: Double?

    enum CodingKeys: String, CodingKey {
        case step, meanReward = "mean_reward", fracAllEqual = "frac_all_equal", tokensPerS = "tokens_per_s"
        case testAccuracy = "test_accuracy"
    }
}

/// The terminal side: follows metrics.jsonl and shows a line per step — redrawn in place on a terminal,
/// one after another otherwise — with the launcher's own messages (on stderr) printed above it.
@MainActor
final class StepDisplay {
    private let metricsPath: String
    private let totalSteps: Int
    private let isTTY = isatty(STDOUT_FILENO) != 0
    private let started = Date()
    private var offset: UInt64 = 0
    private var pending = Data()
    /// The last step already in the file when the launch began (a resumed run).
    private var baseStep = 0
    private var first: (step: Int, at: Date)?
    private(set) var last: StepMetrics?
    private var lastAccuracy: Double?
    /// The status line currently drawn (TTY only), so messages can clear and redraw it.
    private var drawn: String?
    private var lastRedraw = Date.distantPast

    init(metricsPath: String, totalSteps: Int) {
        self.metricsPath = metricsPath
        self.totalSteps = totalSteps
        if let data = FileManager.default.contents(atPath: metricsPath) {
            offset = UInt64(data.count)
            let lastLine = data.split(separator: UInt8(ascii: "\n")).last.map { Data($0) }
            baseStep = lastLine.flatMap { try? JSONDecoder().decode(StepMetrics.self, from: $0) }?.step ?? 0
        }
    }

    /// Reads the lines appended since the last call and shows each.
    func poll() {
        if let handle = FileHandle(forReadingAtPath: metricsPath) {
            defer { try? handle.close() }
            if handle.seekToEndOfFile() < offset { offset = 0 } // rewritten
            handle.seek(toFileOffset: offset)
            let data = handle.readDataToEndOfFile()
            offset += UInt64(data.count)
            pending.append(data)
        }
        while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
            let line = pending[pending.startIndex..<newline]
            pending = Data(pending[(newline + 1)...])
            guard let metrics = try? JSONDecoder().decode(StepMetrics.self, from: line) else { continue }
            if first == nil { first = (metrics.step, Date()) }
            last = metrics
            if let accuracy = metrics.testAccuracy { lastAccuracy = accuracy }
            show(render(metrics))
        }
        // Keep elapsed time and ETA moving on a terminal between steps.
        if isTTY, Date().timeIntervalSince(lastRedraw) >= 1 {
            show(last.map(render) ?? "waiting for the first step… \(clock(Date().timeIntervalSince(started)))")
        }
    }

    /// A launcher message, on stderr, above the status line.
    func say(_ message: String) {
        if isTTY, drawn != nil { write("\r\u{1B}[2K", to: FileHandle.standardOutput) }
        write(message + "\n", to: FileHandle.standardError)
        if isTTY, let drawn { write(drawn, to: FileHandle.standardOutput) }
    }

    func summary(runDir: String, wallTime: Double) {
        if isTTY, drawn != nil { write("\n", to: FileHandle.standardOutput) }
        drawn = nil
        var lines = ["Trained \(last?.step ?? totalSteps) steps in \(clock(wallTime))."]
        if let last { lines.append("Last step: \(render(last, withTime: false))") }
        let final = "\(runDir)/checkpoints/final"
        lines.append(FileManager.default.fileExists(atPath: final) ? "Final checkpoint: \(final)"
                     : "No final checkpoint at \(final): see \(runDir)/logs/learner.log.")
        lines.append("Metrics: \(runDir)/metrics.jsonl; logs: \(runDir)/logs/")
        write(lines.joined(separator: "\n") + "\n", to: FileHandle.standardOutput)
    }

    private func show(_ line: String) {
        lastRedraw = Date()
        if isTTY {
            // A wrapped line could not be redrawn in place: clip it to the terminal's width.
            var size = winsize()
            let columns = ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0 ? Int(size.ws_col) : 0
            let line = columns > 1 && line.count >= columns ? String(line.prefix(columns - 1)) : line
            drawn = line
            write("\r\u{1B}[2K" + line, to: FileHandle.standardOutput)
        } else {
            write(line + "\n", to: FileHandle.standardOutput)
        }
    }

    private func render(_ m: StepMetrics) -> String {
        render(m, withTime: true)
    }

    private func render(_ m: StepMetrics, withTime: Bool) -> String {
        var parts = ["step \(m.step)/\(totalSteps)"]
        if let r = m.meanReward { parts.append(String(format: "reward %.3f", r)) }
        if let f = m.fracAllEqual { parts.append(String(format: "all-equal %.0f%%", 100 * f)) }
        if let t = m.tokensPerS { parts.append(String(format: "%.0f tok/s", t.values.reduce(0, +))) }
        if let a = m.testAccuracy ?? lastAccuracy { parts.append(String(format: "test %.1f%%", 100 * a)) }
        if withTime {
            let elapsed = Date().timeIntervalSince(started)
            var perStep = elapsed / Double(max(1, m.step - baseStep))
            if let first, m.step > first.step { perStep = Date().timeIntervalSince(first.at) / Double(m.step - first.step) }
            parts.append("\(clock(elapsed)) elapsed, ETA \(clock(perStep * Double(max(0, totalSteps - m.step))))")
        }
        return parts.joined(separator: "  ")
    }

    /// Unbuffered, so progress shows at once even through a pipe.
    private func write(_ text: String, to handle: FileHandle) { handle.write(Data(text.utf8)) }
}

/// m:ss or h:mm:ss.
private func clock(_ seconds: Double) -> String {
    guard seconds.isFinite, seconds >= 0 else { return "--:--" }
    let t = Int(seconds.rounded())
    return t >= 3600 ? String(format: "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60) : String(format: "%d:%02d", t / 60, t % 60)
}
