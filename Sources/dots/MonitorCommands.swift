import ArgumentParser
import Foundation
import Monitor
import Wire

/// `dots top`: what every worker is doing, live, from the coordinator's /metrics.
struct TopCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "top",
        abstract: "A live table of the cluster: per-actor throughput, the learner's step times, the coordinator.",
        discussion: """
        Reads the coordinator's Prometheus endpoint (http://HOST:PORT/metrics, served when cluster.conf sets \
        [monitoring] metrics_port), so it works from any machine that can reach the coordinator, and needs \
        nothing else from the cluster. Refreshes every second; Ctrl-C quits.

        Actors: tokens/s and groups/s (from the actor's own counters between two of its reports), version lag \
        behind the newest weights, idle fraction (share of time waiting for work), last-heartbeat age, \
        restarts. Learner: step, the latest step's time and its collect/update/publish breakdown. \
        Coordinator: prompts handed out a second, prompts re-queued from dead actors, selection and \
        reference-rollout time ("-" until the coordinator reports them).

        Examples:
          dots top                                  (cluster.conf in this folder)
          dots top --coordinator 10.0.0.5:5707 --once
        """)

    @Option(help: "The cluster file: the coordinator's address and monitoring.metrics_port (default: cluster.conf).")
    var config: String?

    @Option(help: "The coordinator's metrics endpoint instead: HOST:PORT or http://HOST:PORT.")
    var coordinator: String?

    @Flag(help: "Print one table (after two samples, so rates show) and exit.")
    var once = false

    @Option(help: "Seconds between refreshes.")
    var interval: Double = 1

    func run() throws {
        let url = try metricsURL()
        var model = TopModel()
        if once {
            // Rates need two reports of each worker (they report once a second).
            for sample in 0..<3 {
                model.add(try scrape(url))
                if sample >= 1 && model.render(source: "\(url)").contains("(rates need") == false { break }
                Thread.sleep(forTimeInterval: 1.1)
            }
            print(model.render(source: "\(url)"), terminator: "")
            return
        }
        let tty = isatty(STDOUT_FILENO) != 0
        var lastError: String?
        var succeeded = false
        while true {
            do {
                model.add(try scrape(url))
                succeeded = true
                lastError = nil
            } catch {
                guard succeeded else { throw error }
                lastError = "\(error)"
            }
            var screen = model.render(source: "\(url)")
            if let lastError { screen += "\n(no answer now: \(lastError))\n" }
            // Home and clear on a terminal; one table after another through a pipe.
            // Unbuffered, so each table shows at once even through a pipe.
            FileHandle.standardOutput.write(Data((tty ? "\u{1B}[H\u{1B}[2J" + screen : screen + "\n").utf8))
            Thread.sleep(forTimeInterval: max(0.2, interval))
        }
    }

    private func metricsURL() throws -> MetricsURL {
        if config != nil && coordinator != nil { throw UserError("Give --config or --coordinator, not both.") }
        if let coordinator {
            guard let url = MetricsURL(coordinator) else {
                throw UserError("--coordinator \(coordinator): expected HOST:PORT or http://HOST:PORT (the coordinator's monitoring.metrics_port).")
            }
            return url
        }
        let path = config ?? "cluster.conf"
        let c: ClusterConfig
        do { c = try ClusterConfig.load(path: path) } catch { throw UserError(error.description) }
        guard let url = c.metricsURL else {
            throw UserError("\(path) sets no [monitoring] metrics_port, so the coordinator serves no metrics; set it (e.g. 5707) and restart the run, or pass --coordinator HOST:PORT.")
        }
        return url
    }

    private func scrape(_ url: MetricsURL) throws -> [PrometheusText.ParsedSample] {
        let body: String
        do { body = try HTTPGet.fetch(url) } catch {
            throw UserError("Cannot read the coordinator's metrics at \(url): \(error). Is the coordinator running, with monitoring.metrics_port set?")
        }
        do { return try PrometheusText.parse(body) } catch {
            throw UserError("\(url) did not answer with Prometheus metrics (\(error)); is that the coordinator's metrics port?")
        }
    }
}

/// `dots plot`: charts of one or more runs.
struct PlotCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plot",
        abstract: "Chart runs: held-out accuracy against wall-clock time, and tokens/s per actor over time.",
        discussion: """
        Reads RUN_DIR/metrics.jsonl of each run folder (written by `dots launch`): `time` (seconds since the \
        learner started), `test_accuracy` (every training.eval_every steps) and `tokens_per_s` (per actor, \
        each step). Writes SVG; PNG when rsvg-convert is installed (Debian: librsvg2-bin).

        Example:
          dots plot runs/20261125-101500 runs/20261125-113000 --out compare.svg
        """)

    @Argument(help: "Run folders (each with a metrics.jsonl).")
    var runDirs: [String] = []

    @Option(help: "The picture to write: FILE.svg, or FILE.png.")
    var out: String

    func run() throws {
        guard !runDirs.isEmpty else { throw UserError("Name at least one run folder, e.g. `dots plot runs/20261125-101500 --out run.svg`.") }
        let ext = (out as NSString).pathExtension.lowercased()
        guard ext == "svg" || ext == "png" else {
            throw UserError("--out \(out): unknown picture type \(ext.isEmpty ? "(no extension)" : "\".\(ext)\""); write FILE.svg or FILE.png.")
        }
        var runs: [RunMetrics] = []
        for dir in runDirs {
            do { runs.append(try RunMetrics.load(runDir: dir)) } catch { throw UserError(error.description) }
        }
        let svg = Plot.svg(runs)
        let svgPath = ext == "svg" ? out : out + ".svg.tmp"
        do { try svg.write(toFile: svgPath, atomically: true, encoding: .utf8) } catch {
            throw UserError("Cannot write \(svgPath): \(error.localizedDescription)")
        }
        if ext == "png" {
            defer { try? FileManager.default.removeItem(atPath: svgPath) }
            try convertToPNG(svgPath, out)
        }
        let points = runs.map(\.accuracy.count).reduce(0, +)
        print("Wrote \(out): \(runs.count) run(s), \(points) accuracy point(s), \(Set(runs.flatMap(\.tokensPerSecond.keys)).count) actor(s).")
    }

    private func convertToPNG(_ svg: String, _ png: String) throws {
        let search = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
        guard let tool = search.map({ "\($0)/rsvg-convert" }).first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw UserError("PNG output needs rsvg-convert, which is not installed (Debian: apt-get install librsvg2-bin); --out FILE.svg needs nothing.")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = ["--background-color", "white", "-o", png, svg]
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw UserError("rsvg-convert could not convert the chart to \(png) (status \(process.terminationStatus)).") }
    }
}
