import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `dots launch` end to end: the real binary, a coordinator, a learner and two actors as separate
/// processes on loopback, with the tiny model so a few steps take seconds.
@Suite("dots launch, multi-process", .serialized, .timeLimit(.minutes(5)))
struct LaunchTests {
    @Test("A short run exits 0: versions advance, both actors' rollouts are used, metrics and a final checkpoint are written")
    func shortRun() async throws {
        let cluster = try TestCluster()
        defer { cluster.cleanUp() }
        // 60 steps, not 3: a 3-step run can end (in about a second) before a slow-starting actor asks for work.
        let launch = try cluster.launch(["--steps", "60"])
        guard await cluster.expectEnd(launch, within: 180) else { return }

        let steps = cluster.metrics()
        #expect(steps.count >= 3, "metrics.jsonl has \(steps.count) lines, expected ≥ 3.\n\(cluster.diagnostics())")
        let versions = steps.compactMap { ($0["weights_version"] as? NSNumber)?.intValue }
        #expect(versions.count == steps.count && zip(versions, versions.dropFirst()).allSatisfy { $0 < $1 },
                "weights_version must strictly increase, is \(versions).")
        let actors = Set(steps.flatMap { ($0["groups_by_actor"] as? [String: Any])?.keys.map { $0 } ?? [] })
        #expect(actors.count == 2, "groups_by_actor over the run names actors \(actors.sorted()); expected both actors' ids.\n\(cluster.diagnostics())")
        let final = cluster.runDir.appendingPathComponent("checkpoints/final/model.safetensors").path
        #expect(FileManager.default.fileExists(atPath: final), "no \(final).\n\(cluster.diagnostics())")
    }

    @Test("With replay on, steps after the first round take δ·B fresh groups and report the buffer")
    func replayRun() async throws {
        let cluster = try TestCluster()
        defer { cluster.cleanUp() }
        let launch = try cluster.launch(["--steps", "5", "--set", "training.replay=true", "--set", "training.selection_every=2"])
        guard await cluster.expectEnd(launch, within: 180) else { return }
        let steps = cluster.metrics()
        #expect(steps.count == 5, "metrics.jsonl has \(steps.count) lines.\n\(cluster.diagnostics())")
        for line in steps {
            let step = (line["step"] as? NSNumber)?.intValue ?? -1
            let fresh = ((line["groups_by_actor"] as? [String: Any]) ?? [:]).values.compactMap { ($0 as? NSNumber)?.intValue }.reduce(0, +)
            let replay = line["replay"] as? [String: Any]
            #expect(replay != nil, "step \(step) has no replay metrics")
            // B = 4, δ = 0.5, μ = 2: steps 1–2 (the first round) are all fresh, later ones half.
            #expect(fresh == (step <= 2 ? 4 : 2), "step \(step) trained on \(fresh) fresh groups")
            if step > 2 { #expect((replay?["wanted"] as? NSNumber)?.intValue == 2) }
        }
    }

    @Test("With selection = dots the coordinator runs a selection round every μ steps and the run trains")
    func dotsRun() async throws {
        try await dotsRun(referenceRollouts: "coordinator")
    }

    @Test("With reference_rollouts = actors the actors roll out each round's reference prompts, and the run trains")
    func dotsRunReferencesOnActors() async throws {
        try await dotsRun(referenceRollouts: "actors")
    }

    @Test("With reference_lead = 1 each round after the first is labelled on the weights one version before it, and the run trains")
    func dotsRunWithReferenceLead() async throws {
        try await dotsRun(referenceRollouts: "actors", lead: 1)
    }

    func dotsRun(referenceRollouts: String, lead: Int = 0) async throws {
        let cluster = try TestCluster()
        defer { cluster.cleanUp() }
        let predictor = try cluster.trainTinyPredictor()
        let launch = try cluster.launch(["--steps", "4", "--set", "training.selection=dots", "--set", "training.predictor=\(predictor.path)",
                                         "--set", "training.reference_size=8", "--set", "training.selection_every=2",
                                         "--set", "training.selection_pool=300", "--set", "training.reference_feed=true",
                                         "--set", "training.reference_rollouts=\(referenceRollouts)", "--set", "training.reference_lead=\(lead)"])
        guard await cluster.expectEnd(launch, within: 180) else { return }
        #expect(cluster.metrics().count == 4, "metrics.jsonl has \(cluster.metrics().count) lines.\n\(cluster.diagnostics())")
        let text = (try? String(contentsOf: cluster.runDir.appendingPathComponent("selection.jsonl"), encoding: .utf8)) ?? ""
        let rounds = text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(rounds.map { ($0["round"] as? NSNumber)?.intValue ?? -1 } == [0, 1], "selection.jsonl: \(text)\n\(cluster.diagnostics())")
        for r in rounds {
            #expect((r["selected"] as? NSNumber)?.intValue == 8 && (r["references"] as? NSNumber)?.intValue == 8)
        }
        // Round 1 (steps 2–3) is labelled on version 2, or on version 1 with a lead (round 0 on 0 either way).
        #expect(rounds.map { ($0["weights_version"] as? NSNumber)?.intValue ?? -1 } == [0, 2 - lead], "selection.jsonl: \(text)")
        #expect((cluster.metrics().last?["dropped_stale_total"] as? NSNumber)?.intValue == 0, "the learner dropped groups as stale.\n\(cluster.diagnostics())")
        auditTrainedGroups(cluster.metrics(), maxLag: lead)
        let roundLines = cluster.metrics().filter { $0["round"] != nil }
        #expect(roundLines.count == 2, "metrics.jsonl should report each round's realised difficulty")
        for r in rounds {
            #expect(r["reference_rollouts"] as? String == referenceRollouts)
            if referenceRollouts == "actors" {
                // All K reference groups came back from the actors (ids 1000, 1001).
                let byActor = r["reference_groups_by_actor"] as? [String: NSNumber] ?? [:]
                #expect(byActor.values.map(\.intValue).reduce(0, +) == 8 && Set(byActor.keys).isSubset(of: ["1000", "1001"]),
                        "reference groups by actor: \(byActor)\n\(cluster.diagnostics())")
            }
        }
        // Reference groups fed to the learner name who generated them: an actor, never the coordinator (1).
        let trainedBy = Set(cluster.metrics().flatMap { ($0["fresh_groups"] as? [[String: Any]] ?? []).compactMap { ($0["actor"] as? NSNumber)?.intValue } })
        if referenceRollouts == "actors" { #expect(!trainedBy.contains(1), "the coordinator generated groups itself") }
        // Every round's plan is on disk for a restart.
        let state = try Data(contentsOf: cluster.runDir.appendingPathComponent("selection-state.json"))
        let saved = try JSONSerialization.jsonObject(with: state) as? [String: Any]
        #expect((saved?["rounds"] as? [Any])?.count == 2, "selection-state.json: \(String(decoding: state, as: UTF8.self).prefix(300))")
    }

    @Test("kill -9 of an actor mid-run: its work is re-queued, the launcher restarts it, every step completes")
    func actorKilled() async throws {
        let cluster = try TestCluster()
        defer { cluster.cleanUp() }
        // Long enough that the run is still going when the launcher's restart comes due (40 steps of the
        // tiny model can end first).
        let total = 200
        let launch = try cluster.launch(["--steps", "\(total)"])
        let deadline = Date().addingTimeInterval(150)
        while cluster.metrics().count < 2 {
            guard launch.isRunning, Date() < deadline else {
                Issue.record("no progress before the kill.\n\(cluster.diagnostics())")
                return
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        let victims = cluster.actorProcesses(index: 0)
        try #require(victims.count == 1, "expected one actor-0 process, found \(victims.map(\.commandLine))")
        kill(victims[0].pid, SIGKILL)
        guard await cluster.expectEnd(launch, within: 180, after: "after the kill") else { return }
        let steps = cluster.metrics()
        #expect(steps.count == total, "\(steps.count) of \(total) steps logged.\n\(cluster.diagnostics())")
        let leftBehind = processes(mentioning: cluster.runDir.path)
        #expect(leftBehind.isEmpty, "processes left behind: \(leftBehind.map(\.commandLine))")
        #expect(cluster.count("msg=started", inLog: "actor-0") >= 2, "actor-0 was not restarted.\n\(cluster.diagnostics())")
        // Its re-queued prompts were trained once: no group in two steps, none of a wrong version.
        auditTrainedGroups(cluster.metrics(), maxLag: 0)
    }

    @Test("kill -9 of the learner: the launcher restarts it with --resume and the run finishes with the same step numbering")
    func learnerKilled() async throws {
        let cluster = try TestCluster()
        defer { cluster.cleanUp() }
        let total = 30
        // Checkpoints every 2 steps (the test cluster's setting), so a resume loses at most one step.
        let launch = try cluster.launch(["--steps", "\(total)"] + TestCluster.longSteps)
        let deadline = Date().addingTimeInterval(150)
        while cluster.metrics().count < 5 {
            guard launch.isRunning, Date() < deadline else {
                Issue.record("no progress before the kill.\n\(cluster.diagnostics())")
                return
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        let victims = processes(mentioning: cluster.runDir.path).filter { $0.commandLine.contains(" learner ") }
        try #require(victims.count == 1, "expected one learner, found \(victims.map(\.commandLine))")
        kill(victims[0].pid, SIGKILL)
        guard await cluster.expectEnd(launch, within: 180, after: "after the kill") else { return }
        let steps = cluster.metrics().compactMap { ($0["step"] as? NSNumber)?.intValue }
        // Steps after the last checkpoint are trained again after the resume; none is skipped, and the
        // numbering continues where the checkpoint left it.
        #expect(Set(steps) == Set(1...total), "steps logged: \(steps).\n\(cluster.diagnostics())")
        #expect(steps.last == total)
        let log = cluster.log("learner")
        #expect(log.contains("resumed from"), "the learner did not resume.\n\(cluster.diagnostics())")
        #expect(FileManager.default.fileExists(atPath: cluster.runDir.appendingPathComponent("checkpoints/final/learner_state.json").path))
        // Resumed at a checkpoint step s: the next line logged is step s + 1, trained on version s groups.
        if let line = log.range(of: "resumed from"), let at = log[line.upperBound...].range(of: " at step "),
           let s = Int(log[at.upperBound...].prefix { $0.isNumber }) {
            #expect(s % 2 == 0 && s >= 2, "resumed at step \(s), not a checkpoint step")
            // The resumed learner's clock ("time") starts again from zero.
            let lines = cluster.metrics()
            let all = lines.compactMap { ($0["step"] as? NSNumber)?.intValue }
            let times = lines.compactMap { ($0["time"] as? NSNumber)?.doubleValue }
            if let first = times.indices.dropFirst().first(where: { times[$0] < times[$0 - 1] }) {
                #expect(all[first] == s + 1, "after the resume at step \(s) the steps logged go \(all)")
            }
        }
        auditTrainedGroups(cluster.metrics(), maxLag: 0)
    }

    @Test("SIGINT to the launcher stops the run within 60 s (exit 130) and leaves no process behind")
    func interrupt() async throws {
        let cluster = try TestCluster()
        defer { cluster.cleanUp() }
        let launch = try cluster.launch(["--steps", "1000"])

        let deadline = Date().addingTimeInterval(150)
        while cluster.metrics().isEmpty {
            guard launch.isRunning else {
                Issue.record("dots launch exited (\(String(describing: await launch.wait(seconds: 1)))) before the first step.\n\(cluster.diagnostics())")
                return
            }
            guard Date() < deadline else {
                Issue.record("No step in metrics.jsonl within 150 s.\n\(cluster.diagnostics())")
                return
            }
            try await Task.sleep(for: .milliseconds(200))
        }

        launch.signal(SIGINT)
        guard await cluster.expectEnd(launch, within: 60, status: .exit(130), after: "of SIGINT") else { return }
        let final = cluster.runDir.appendingPathComponent("checkpoints/final/model.safetensors").path
        #expect(FileManager.default.fileExists(atPath: final), "no final checkpoint \(final) after SIGINT.\n\(cluster.diagnostics())")
        let left = processes(mentioning: cluster.runDir.path)
        #expect(left.isEmpty, "processes left behind:\n\(left.map { "  \($0.pid) \($0.commandLine)" }.joined(separator: "\n"))\n\(cluster.diagnostics())")
    }
}

// MARK: - helpers

/// A temporary cluster: a tiny checkpoint and a cluster.conf on free loopback ports.
struct TestCluster {
    let root: URL
    var runDir: URL { root.appendingPathComponent("run") }
    var configFile: URL { root.appendingPathComponent("cluster.conf") }
    var output: URL { root.appendingPathComponent("launch.out") }
    let dots: URL
    /// The coordinator's /metrics port, when made with `monitoring: true`.
    let metricsPort: Int?

    init(monitoring: Bool = false) throws {
        dots = try dotsBinary()
        root = FileManager.default.temporaryDirectory.appendingPathComponent("dots-multiprocess-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        let checkpoint = root.appendingPathComponent("ckpt").path
        let initOutput = root.appendingPathComponent("init.out")
        let status = try run(dots, ["model", "init", "--size", "tiny", "--seed", "1", "--out", checkpoint], output: initOutput)
        guard status == .exit(0) else {
            throw TestFailure("`dots model init` ended with \(status): \(tailOfFile(initOutput.path, lines: 10))")
        }
        let port = try freePortBase(count: 7)
        metricsPort = monitoring ? port + 6 : nil
        try """
            [hosts.local]
            address = "127.0.0.1"
            actors = 2

            [roles]
            coordinator = "local"
            learner = "local"

            [endpoints]
            rollouts = \(port)
            assignment = \(port + 1)
            weights = \(port + 2)
            announce = \(port + 3)
            updates = \(port + 4)
            stats = \(port + 5)

            [model]
            checkpoint = "\(checkpoint)"

            [training]
            batch_size = 4
            group_size = 4
            mini_batch_size = 4
            max_new_tokens = 8
            steps = 3
            eval_every = 2
            checkpoint_every = 2

            """.appending(metricsPort.map { "[monitoring]\nmetrics_port = \($0)\n" } ?? "")
            .write(to: configFile, atomically: true, encoding: .utf8)
    }

    /// Steps of 512 completions of 40 tokens (the test config's are 16 of 8, a few hundredths of a second), for
    /// tests that fault a run after its first steps and need it still going when the fault lands, even when
    /// the test process, sharing two cores with the rest of the suite, is slow to see those steps.
    static let longSteps = ["--set", "training.batch_size=8", "--set", "training.group_size=64", "--set", "training.max_new_tokens=40"]

    /// A tiny difficulty predictor trained on this cluster's checkpoint (a few seconds), for DOTS runs.
    func trainTinyPredictor() throws -> URL {
        let predictor = root.appendingPathComponent("predictor")
        let checkpoint = root.appendingPathComponent("ckpt").path
        let trainOutput = root.appendingPathComponent("predictor.out")
        let trained = try runDots(dots, ["predictor", "train", "--sources", checkpoint, "--embedder", checkpoint,
                                         "--out", predictor.path, "--prompts", "40", "--samples", "2", "--steps", "10",
                                         "--batch-size", "16", "--references", "8", "--hidden", "16", "--output-dim", "8"],
                                  output: trainOutput)
        guard trained == .exit(0) else {
            throw TestFailure("dots predictor train ended with \(trained): \(tailOfFile(trainOutput.path, lines: 10))")
        }
        return predictor
    }

    /// Waits up to `seconds` for `launch` to end and expects it to end with `expected`; a timeout or another
    /// status is recorded with the cluster's diagnostics. Returns false on a timeout, so the test stops there.
    /// `what` names the launch and `context` says what it waited after, both for the messages.
    func expectEnd(_ launch: Launch, within seconds: Double, status expected: Launch.Status = .exit(0),
                   _ what: String = "dots launch", after context: String = "",
                   sourceLocation: SourceLocation = #_sourceLocation) async -> Bool {
        guard let status = await launch.wait(seconds: seconds) else {
            Issue.record("\(what) did not finish within \(Int(seconds)) s\(context.isEmpty ? "" : " " + context).\n\(diagnostics())",
                         sourceLocation: sourceLocation)
            return false
        }
        #expect(status == expected, "\(what) ended with \(status), expected \(expected).\n\(diagnostics())", sourceLocation: sourceLocation)
        return true
    }

    /// The running processes of actor `index` on this cluster's host (the one the launcher restarted, if any).
    func actorProcesses(index: Int) -> [(pid: pid_t, commandLine: String)] {
        processes(mentioning: runDir.path).filter { $0.commandLine.contains(" actor ") && $0.commandLine.contains("--index \(index)") }
    }

    /// Starts `dots launch` on this cluster (with `--config` and `--run-dir`, unless `extra` resumes a run:
    /// then as a user would, the run's own settings), its output (stdout and stderr) to `output`.
    func launch(_ extra: [String]) throws -> Launch {
        let process = Process()
        process.executableURL = dots
        process.arguments = ["launch"] + (extra.contains("--resume") ? [] : ["--config", configFile.path, "--run-dir", runDir.path]) + extra
        _ = FileManager.default.createFile(atPath: output.path, contents: nil)
        let handle = try FileHandle(forWritingTo: output)
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        try handle.close()
        return Launch(process: process)
    }

    /// metrics.jsonl, a JSON object a line.
    func metrics() -> [[String: Any]] {
        guard let text = try? String(contentsOf: runDir.appendingPathComponent("metrics.jsonl"), encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    /// The end of the launcher's output and of every child's log, for failure messages.
    func diagnostics() -> String {
        var parts = ["--- dots launch output (\(output.path)), last lines:", tailOfFile(output.path, lines: 30)]
        let logs = runDir.appendingPathComponent("logs")
        for name in ((try? FileManager.default.contentsOfDirectory(atPath: logs.path)) ?? []).sorted() {
            parts += ["--- logs/\(name), last lines:", tailOfFile(logs.appendingPathComponent(name).path, lines: 15)]
        }
        return parts.joined(separator: "\n")
    }

    /// Kills whatever a failed test left running and removes the folder.
    func cleanUp() {
        for process in processes(mentioning: root.path) { kill(process.pid, SIGKILL) }
        try? FileManager.default.removeItem(at: root)
    }
}

/// A running `dots launch`.
///
/// Whether it still runs is also asked of the kernel: Foundation's `Process` sometimes misses its child's
/// SIGCHLD when several children end at once, and then reports a finished (zombie) child as running for
/// ever. Reaping it here, when Foundation has not, keeps a test from waiting on it without end.
final class Launch: @unchecked Sendable {
    let process: Process
    private let lock = NSLock()
    private var ended: Status?

    init(process: Process) { self.process = process }

    /// How it ended, or nil while it runs.
    func endStatus() -> Status? {
        lock.withLock {
            if let ended { return ended }
            if !process.isRunning { ended = status(process); return ended }
            var raw: Int32 = 0
            let pid = process.processIdentifier
            guard waitpid(pid, &raw, WNOHANG) == pid else { return nil }
            ended = raw & 0x7f == 0 ? .exit((raw >> 8) & 0xff) : .signal(raw & 0x7f)
            return ended
        }
    }

    enum Status: Equatable, CustomStringConvertible {
        case exit(Int32), signal(Int32)
        var description: String {
            switch self {
            case .exit(let code): "exit status \(code)"
            case .signal(let sig): "signal \(sig)"
            }
        }
    }

    var isRunning: Bool { endStatus() == nil }

    /// Blocks until it ends (for short commands; `wait(seconds:)` is the async, bounded one).
    func waitForExit() -> Status {
        while true {
            if let end = endStatus() { return end }
            usleep(20_000)
        }
    }

    func signal(_ sig: Int32) { kill(process.processIdentifier, sig) }

    /// How it ended, or nil (after killing it) if it is still running after `seconds`.
    func wait(seconds: Double) async -> Status? {
        let deadline = Date().addingTimeInterval(seconds)
        while isRunning {
            if Date() >= deadline {
                kill(process.processIdentifier, SIGKILL)
                return nil
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return endStatus()
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

private func status(_ process: Process) -> Launch.Status {
    process.terminationReason == .exit ? .exit(process.terminationStatus) : .signal(process.terminationStatus)
}

/// Runs `dots` with arguments to completion, its output to a file.
func runDots(_ dots: URL, _ arguments: [String], output: URL) throws -> Launch.Status {
    try run(dots, arguments, output: output)
}

/// Runs a command to completion, its output to a file.
func run(_ executable: URL, _ arguments: [String], output: URL) throws -> Launch.Status {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    _ = FileManager.default.createFile(atPath: output.path, contents: nil)
    let handle = try FileHandle(forWritingTo: output)
    process.standardOutput = handle
    process.standardError = handle
    try process.run()
    let end = Launch(process: process).waitForExit()
    try handle.close()
    return end
}

/// The `dots` executable SwiftPM built beside the test bundle (the test target depends on it).
func dotsBinary() throws -> URL {
    var folders: [URL] = []
    if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
        folders.append(URL(fileURLWithPath: exe).deletingLastPathComponent())
    }
    folders.append(Bundle.main.bundleURL.deletingLastPathComponent())
    folders += Bundle.allBundles.filter { $0.bundlePath.hasSuffix(".xctest") }.map { $0.bundleURL.deletingLastPathComponent() }
    let candidates = folders.map { $0.appendingPathComponent("dots") }
    guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }) else {
        throw TestFailure("No dots executable next to the test bundle; looked at \(candidates.map(\.path)). Build it with `swift build --product dots`.")
    }
    return found
}

/// The first of `count` consecutive TCP ports in 20000–60000 that are all free on 127.0.0.1 now.
/// `count` consecutive loopback ports free now, below the kernel's ephemeral range: a port inside it can be
/// taken by any outgoing connection (this suite's clusters open dozens) between this check and the bind,
/// and a coordinator that cannot bind is restarted until the launcher gives up.
private func freePortBase(count: Int) throws -> Int {
    let range = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8))?
        .split(whereSeparator: \.isWhitespace).compactMap { Int($0) } ?? []
    let upper = min(range.first ?? 32768, 65536) - count
    let lower = upper > 11000 ? 10000 : 1024
    for _ in 0..<200 {
        let base = Int.random(in: lower...upper)
        if (base..<base + count).allSatisfy(portIsFree) { return base }
    }
    throw TestFailure("No \(count) consecutive free ports found in \(lower)–\(upper + count).")
}

private func portIsFree(_ port: Int) -> Bool {
    #if canImport(Glibc)
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    #else
    let fd = socket(AF_INET, SOCK_STREAM, 0)
    #endif
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
    }
}

/// Live processes (not this one) whose command line contains `text`, from /proc.
func processes(mentioning text: String) -> [(pid: pid_t, commandLine: String)] {
    let me = getpid()
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap { entry in
        guard let pid = pid_t(entry), pid != me,
              let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline"), !data.isEmpty else { return nil }
        let commandLine = String(decoding: data.map { $0 == 0 ? UInt8(ascii: " ") : $0 }, as: UTF8.self)
        return commandLine.contains(text) ? (pid, commandLine) : nil
    }
}

func tailOfFile(_ path: String, lines: Int) -> String {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return "    (missing)" }
    let tail = text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines)
    return tail.map { "    " + $0 }.joined(separator: "\n")
}
