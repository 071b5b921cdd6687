import ArgumentParser
import Foundation
import Model
import Wire
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `dots bench soak`: a long `dots launch` with an actor killed at a random moment of every minute.
struct BenchSoakCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "soak",
        abstract: "Train for M minutes while an actor is killed (SIGKILL) at a random moment of every minute; report what survived.",
        discussion: """
        Starts `dots launch` (this executable) on cluster.conf with training.steps set high, kills a random \
        actor process at a random moment of every minute (--kill-every), samples every process's resident memory from \
        /proc each second, then stops the launcher with SIGINT (final checkpoint) and reports: steps \
        trained, actors killed and restarted, groups lost with them (prompts the coordinator re-queued), \
        groups that arrived twice or too late and were dropped, messages rejected, the longest wait for a \
        step's groups, and the peak resident memory (VmHWM) of each process over all its restarts. The \
        report is printed and written to RUN_DIR/soak.json.

        Example: dots bench soak --minutes 30
        """)

    @Option(help: "How long to train, in minutes.") var minutes: Double = 10
    @Option(help: "The cluster file.") var config = "cluster.conf"
    @Option(help: "Run folder (default: runs/soak-<yyyyMMdd-HHmmss>).") var runDir: String?
    @Option(help: "Seed for when and which actor is killed.") var seed: UInt64 = 1
    @Option(help: "Seconds between kills: one at a random moment of each such period.") var killEvery: Double = 60
    @Option(name: .customLong("set"), help: ArgumentHelp("Override a config key (repeatable), as for dots launch.", valueName: "key=value"))
    var overrides: [String] = []
    @Flag(help: "Print the report as JSON.") var json = false

    func run() async throws {
        guard minutes > 0 else { throw ValidationError("--minutes must be positive.") }
        guard killEvery >= 2 else { throw ValidationError("--kill-every must be at least 2 seconds.") }
        let stamp = DateFormatter()
        stamp.locale = Locale(identifier: "en_US_POSIX")
        stamp.dateFormat = "yyyyMMdd-HHmmss"
        let dir = URL(fileURLWithPath: runDir ?? "runs/soak-\(stamp.string(from: Date()))").standardizedFileURL
        let out = dir.appendingPathComponent("launch.out")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        // Its own process group (ChildProcess): Ctrl-C reaches only this command, which then stops the
        // launcher with one SIGINT, so the learner still writes its final checkpoint.
        StopSignal.install()
        let launch: ChildProcess
        do {
            launch = try ChildProcess.spawn(executable: currentExecutablePath(),
                                            arguments: ["launch", "--config", config, "--run-dir", dir.path, "--set", "training.steps=10000000"]
                                                + overrides.flatMap { ["--set", $0] },
                                            environment: ProcessInfo.processInfo.environment, logPath: out.path)
        } catch {
            throw UserError("Cannot start dots launch: \(error).")
        }
        var ended: ChildTermination?
        say("Soak: \(format(minutes)) min in \(dir.path) (launcher output: \(out.path)); an actor is killed once every \(format(killEvery)) s.")

        var rng = SplitMix64(seed: seed)  // seeded, so a soak can be repeated
        let start = Date(), end = start.addingTimeInterval(minutes * 60)
        var peaks: [String: Int] = [:]
        var trend: [String: (early: [Int], late: [Int])] = [:]
        var kills: [(at: Double, actor: String)] = []
        // The first period starts after the cluster has had a moment to come up.
        var nextKill = start.addingTimeInterval(Double.random(in: min(5, killEvery / 2)..<killEvery, using: &rng))
        var period = 0
        while Date() < end && !StopSignal.requested {
            try await Task.sleep(for: .seconds(1))
            if let e = launch.poll() { ended = e; break }
            for p in runProcesses(dir.path) {
                if let kib = memoryKiB(p.pid, field: "VmHWM") { peaks[p.role] = max(peaks[p.role] ?? 0, kib) }
                // Resident memory in the first and the last tenth of the soak: a leak shows as a rise.
                let elapsed = Date().timeIntervalSince(start) / (minutes * 60)
                if elapsed < 0.1 || elapsed > 0.9, let kib = memoryKiB(p.pid, field: "VmRSS") {
                    trend[p.role, default: ([], [])].0 += elapsed < 0.1 ? [kib] : []
                    trend[p.role, default: ([], [])].1 += elapsed > 0.9 ? [kib] : []
                }
            }
            // No kill in the last 5 s: the launcher gets to restart every victim before the run stops.
            if Date() >= nextKill && end.timeIntervalSinceNow > 5 {
                let actors = runProcesses(dir.path).filter { $0.role.hasPrefix("actor-") }
                if let victim = actors.randomElement(using: &rng) {
                    kill(victim.pid, SIGKILL)
                    kills.append((Date().timeIntervalSince(start), victim.role))
                    say(String(format: "%6.1f s: killed %@ (pid %d)", Date().timeIntervalSince(start), victim.role, victim.pid))
                }
                period += 1
                nextKill = start.addingTimeInterval(Double(period) * killEvery + Double.random(in: 0..<killEvery, using: &rng))
            }
        }
        let crashed = ended != nil
        if !crashed {
            launch.signal(SIGINT)
            let deadline = Date().addingTimeInterval(90)
            while ended == nil && Date() < deadline {
                try await Task.sleep(for: .milliseconds(200))
                ended = launch.poll()
            }
            if ended == nil {
                launch.signal(SIGKILL)
                while ended == nil { try await Task.sleep(for: .milliseconds(100)); ended = launch.poll() }
            }
        }
        var status: Int32 = -1
        if case .exited(let code)? = ended { status = code }
        let report = SoakReport(runDir: dir, minutes: Date().timeIntervalSince(start) / 60, kills: kills.count,
                                peaks: peaks, trend: trend, launcherStatus: status, endedEarly: crashed)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(report)
        try data.write(to: dir.appendingPathComponent("soak.json"))
        if json { print(String(decoding: data, as: UTF8.self)) } else { print(report.table) }
        if crashed { throw UserError("dots launch stopped by itself (it \(ended!)) before the soak ended; see \(out.path).") }
    }

    private func say(_ line: String) { FileHandle.standardError.write(Data((line + "\n").utf8)) }
}

/// What a soak run survived, from the run folder's metrics.jsonl and logs.
struct SoakReport: Codable {
    var minutes: Double
    var stepsTrained: Int
    var stepsPerMinute: Double
    var actorsKilled: Int
    var actorRestarts: Int
    /// Prompts a killed actor held: the coordinator took them back and handed them out again.
    var groupsLost: Int
    /// Of those, the ones a step then trained on (found in metrics.jsonl's fresh_groups of their step).
    var groupsRegenerated: Int
    /// Groups that reached the learner twice (a killed actor had sent one before dying, then its prompt was
    /// handed out again) or too old.
    var duplicatesDropped: Int
    var staleDropped: Int
    var rejects: [String: Int]
    var longestCollectSeconds: Double
    var medianCollectSeconds: Double
    var peakResidentMiB: [String: Double]
    /// Mean VmRSS over the first and the last tenth of the soak (an actor restarted in between starts afresh).
    var residentEarlyLateMiB: [String: [Double]]
    var launcherStatus: Int32
    var endedEarly: Bool

    init(runDir: URL, minutes: Double, kills: Int, peaks: [String: Int], trend: [String: (early: [Int], late: [Int])],
         launcherStatus: Int32, endedEarly: Bool) {
        self.minutes = minutes
        actorsKilled = kills
        self.launcherStatus = launcherStatus
        self.endedEarly = endedEarly
        peakResidentMiB = peaks.mapValues { (Double($0) / 1024 * 10).rounded() / 10 }
        func mean(_ kib: [Int]) -> Double { (Double(kib.reduce(0, +)) / Double(max(1, kib.count)) / 1024 * 10).rounded() / 10 }
        residentEarlyLateMiB = trend.filter { !$0.value.early.isEmpty && !$0.value.late.isEmpty }.mapValues { [mean($0.early), mean($0.late)] }
        let lines = ((try? String(contentsOf: runDir.appendingPathComponent("metrics.jsonl"), encoding: .utf8)) ?? "")
            .split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        func int(_ line: [String: Any]?, _ key: String) -> Int { (line?[key] as? NSNumber)?.intValue ?? 0 }
        stepsTrained = Set(lines.map { int($0, "step") }).count
        stepsPerMinute = Double(stepsTrained) / max(minutes, 1e-9)
        duplicatesDropped = int(lines.last, "duplicates_total")
        staleDropped = int(lines.last, "dropped_stale_total")
        let collects = lines.compactMap { (($0["seconds"] as? [String: Any])?["collect"] as? NSNumber)?.doubleValue }.sorted()
        longestCollectSeconds = collects.last ?? 0
        medianCollectSeconds = collects.isEmpty ? 0 : collects[collects.count / 2]

        let logs = runDir.appendingPathComponent("logs")
        func log(_ name: String) -> String { (try? String(contentsOf: logs.appendingPathComponent(name), encoding: .utf8)) ?? "" }
        // logfmt: msg="actor 1001 restarted; its outstanding prompts are re-queued" actor=1001 prompts=2
        // prompt_at_step="812@40 17@40" (a single item is not quoted; none is "").
        var requeued: [(prompt: Int, step: Int)] = []
        for line in log("coordinator.log").split(separator: "\n") where line.contains("re-queued") {
            guard let key = line.range(of: " prompt_at_step=") else { continue }
            let rest = line[key.upperBound...]
            let value = rest.first == "\"" ? rest.dropFirst().prefix { $0 != "\"" } : rest.prefix { $0 != " " }
            for item in value.split(separator: " ") {
                let parts = item.split(separator: "@").compactMap { Int($0) }
                if parts.count == 2 { requeued.append((parts[0], parts[1])) }
            }
        }
        // The step that trains on step s's prompts logs step s + 1 (the last line of a step wins).
        var trained: [Int: Set<Int>] = [:]
        for line in lines {
            let groups = (line["fresh_groups"] as? [[String: Any]]) ?? []
            trained[int(line, "step")] = Set(groups.map { int($0, "prompt") })
        }
        groupsLost = requeued.count
        groupsRegenerated = requeued.filter { trained[$0.step + 1]?.contains($0.prompt) == true }.count
        let actorLogs = ((try? FileManager.default.contentsOfDirectory(atPath: logs.path)) ?? []).filter { $0.hasPrefix("actor-") }
        actorRestarts = actorLogs.map { log($0).components(separatedBy: "=== dots launch").count - 2 }.reduce(0, +)
        // Reject lines end "(total N…)": the largest N per process and reason.
        var rejects: [String: Int] = [:]
        for name in ((try? FileManager.default.contentsOfDirectory(atPath: logs.path)) ?? []) {
            var worst: [String: Int] = [:]
            for line in log(name).split(separator: "\n") where line.contains("rejected (") {
                guard let r = line.range(of: "rejected ("), let t = line.range(of: "(total ") else { continue }
                let reason = String(line[r.upperBound...].prefix { $0 != ")" })
                worst[reason] = max(worst[reason] ?? 0, Int(line[t.upperBound...].prefix { $0.isNumber }) ?? 0)
            }
            for (reason, n) in worst { rejects[reason, default: 0] += n }
        }
        self.rejects = rejects
    }

    var table: String {
        var rows: [(String, String)] = [
            ("minutes", format(minutes)),
            ("steps trained", "\(stepsTrained) (\(format(stepsPerMinute)) a minute)"),
            ("actors killed / restarted", "\(actorsKilled) / \(actorRestarts)"),
            ("groups lost with them (re-queued)", "\(groupsLost)"),
            ("… trained in their step (sent before the kill, or regenerated)", "\(groupsRegenerated)"),
            ("groups dropped: duplicate / stale", "\(duplicatesDropped) / \(staleDropped)"),
            ("messages rejected", rejects.isEmpty ? "0" : rejects.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")),
            ("wait for a step's groups: median / longest", "\(format(medianCollectSeconds)) s / \(format(longestCollectSeconds)) s"),
        ]
        for (role, mib) in peakResidentMiB.sorted(by: { $0.key < $1.key }) {
            let trend = residentEarlyLateMiB[role].map { "; resident \(format($0[0])) → \(format($0[1])) MiB, first → last tenth" } ?? ""
            rows.append(("peak resident memory, \(role)", "\(format(mib)) MiB" + trend))
        }
        if endedEarly { rows.append(("NOTE", "dots launch ended before the soak did (status \(launcherStatus))")) }
        let width = rows.map(\.0.count).max() ?? 0
        return rows.map { $0.0.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + $0.1 }.joined(separator: "\n")
    }
}

private func format(_ x: Double) -> String { String(format: x >= 100 ? "%.0f" : "%.2f", x) }

/// The run's processes (the launcher and its children), named by role, from /proc.
private func runProcesses(_ runDir: String) -> [(pid: pid_t, role: String)] {
    let me = getpid()
    return ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { entry in
        guard let pid = pid_t(entry), pid != me,
              let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline"), !data.isEmpty else { return nil }
        let args = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        guard args.contains(where: { $0.contains(runDir) }), args.count > 1 else { return nil }
        switch args[1] {
        case "launch": return (pid, "launcher")
        case "coordinator", "learner": return (pid, args[1])
        case "actor":
            let index = args.firstIndex(of: "--index").flatMap { args.indices.contains($0 + 1) ? args[$0 + 1] : nil } ?? "?"
            return (pid, "actor-\(index)")
        default: return nil
        }
    }
}

/// A field of /proc/PID/status in KiB (VmRSS, VmHWM).
private func memoryKiB(_ pid: pid_t, field: String) -> Int? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
          let line = text.split(separator: "\n").first(where: { $0.hasPrefix(field + ":") }) else { return nil }
    return line.split(separator: " ").dropFirst().first.flatMap { Int($0) }
}

