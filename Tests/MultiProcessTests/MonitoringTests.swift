import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Monitoring end to end: a real run serving /metrics, scraped by curl while it trains, `dots top
/// --once` against it, and `dots plot` of the run folder it wrote. In the launch suite, which runs its
/// tests one at a time, so two clusters never share the two cores (that starves one of them).
extension LaunchTests {
    @Test("curl scrapes /metrics during a run: every actor's counters move; dots top has a row per actor; dots plot draws the run")
    func scrapeDuringRun() async throws {
        let cluster = try TestCluster(monitoring: true)
        defer { cluster.cleanUp() }
        let port = try #require(cluster.metricsPort)
        let launch = try cluster.launch(["--steps", "400"])
        defer { launch.signal(SIGKILL) }
        let deadline = Date().addingTimeInterval(120)
        while cluster.metrics().count < 2 {
            guard launch.isRunning, Date() < deadline else {
                Issue.record("no progress.\n\(cluster.diagnostics())")
                return
            }
            try await Task.sleep(for: .milliseconds(100))
        }

        // The first scrape that shows every actor's reports.
        var first = try curl(port)
        while ["1000", "1001"].contains(where: { sample(first.body, "dots_tokens_generated_total", worker: $0) == nil }) {
            guard Date() < deadline else {
                Issue.record("the actors' reports never reached /metrics:\n\(first.body)\n\(cluster.diagnostics())")
                return
            }
            try await Task.sleep(for: .milliseconds(200))
            first = try curl(port)
        }
        #expect(first.headers.contains("200 OK") && first.headers.lowercased().contains("content-type: text/plain; version=0.0.4"),
                "headers: \(first.headers)")
        #expect(first.body.contains("# TYPE dots_tokens_generated_total counter"))
        #expect(first.body.contains("# TYPE dots_weights_lag gauge"))
        try await Task.sleep(for: .seconds(2.5))
        let second = try curl(port)
        let actors = ["1000", "1001"]
        for actor in actors {
            for counter in ["dots_tokens_generated_total", "dots_groups_sent_total", "dots_bytes_sent_total"] {
                let a = sample(first.body, counter, worker: actor), b = sample(second.body, counter, worker: actor)
                #expect(a != nil && b != nil && b! > a!, "\(counter) of actor \(actor): \(String(describing: a)) then \(String(describing: b))")
            }
            #expect(sample(second.body, "dots_up", worker: actor) == 1)
            #expect(second.body.contains("dots_weights_lag{role=\"actor\",worker=\"\(actor)\",host=\"local\"}"))
        }
        #expect((sample(second.body, "dots_steps_total", worker: "2") ?? 0) > (sample(first.body, "dots_steps_total", worker: "2") ?? 0))
        #expect(sample(second.body, "dots_up", worker: "1") == 1, "the coordinator reports itself")

        // dots top --once: a row per actor, the learner's and the coordinator's.
        let topOut = cluster.root.appendingPathComponent("top.out")
        let status = try run(cluster.dots, ["top", "--once", "--coordinator", "127.0.0.1:\(port)"], output: topOut)
        let table = (try? String(contentsOf: topOut, encoding: .utf8)) ?? ""
        #expect(status == .exit(0), "dots top: \(table)")
        let rows = table.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        for actor in actors {
            let row = rows.first { $0.first == actor }
            #expect(row != nil && row![1] == "local", "no row for actor \(actor):\n\(table)")
            #expect(row.map { Double($0[5]) != nil } == true, "actor \(actor) has no tokens/s:\n\(table)")
        }
        #expect(rows.contains { $0.first == "LEARNER" } && rows.contains { $0.first == "2" } && rows.contains { $0.first == "1" },
                "\(table)")

        launch.signal(SIGINT)
        _ = await launch.wait(seconds: 60)

        // Structured log lines: run id, role and worker on each.
        let actorLog = cluster.log("actor-1")
        #expect(actorLog.contains("level=info run=run role=actor worker=1001 msg=started"), "\(actorLog.suffix(500))")

        // dots plot of the run it just wrote.
        let svg = cluster.root.appendingPathComponent("run.svg")
        let plotOut = cluster.root.appendingPathComponent("plot.out")
        #expect(try run(cluster.dots, ["plot", cluster.runDir.path, "--out", svg.path], output: plotOut) == .exit(0))
        let picture = (try? String(contentsOf: svg, encoding: .utf8)) ?? ""
        #expect(picture.hasPrefix("<svg") && picture.contains("actor 1000") && picture.hasSuffix("</svg>\n"))
    }

    @Test("user mistakes are one sentence: an unreachable coordinator, a bad run folder, an unknown picture type")
    func oneSentenceErrors() throws {
        let cluster = try TestCluster(monitoring: true)
        defer { cluster.cleanUp() }
        let out = cluster.root.appendingPathComponent("err.out")
        let cases: [([String], String)] = [
            (["top", "--once", "--coordinator", "127.0.0.1:\(cluster.metricsPort!)"], "Cannot read the coordinator's metrics at http://127.0.0.1:"),
            (["top", "--once", "--config", cluster.configFile.path.replacingOccurrences(of: "cluster.conf", with: "none.conf")], "cannot read"),
            (["plot", "/nonexistent/run", "--out", "x.svg"], "/nonexistent/run is not a folder"),
            (["plot", cluster.root.path, "--out", "x.jpg"], "unknown picture type \".jpg\""),
        ]
        for (arguments, expected) in cases {
            let status = try run(cluster.dots, arguments, output: out)
            let text = (try? String(contentsOf: out, encoding: .utf8)) ?? ""
            #expect(status == .exit(1), "\(arguments): \(status)")
            #expect(text.contains(expected), "\(arguments): \(text)")
            #expect(text.split(separator: "\n").count == 1 && !text.contains("Fatal error"), "\(arguments): not one sentence: \(text)")
        }
    }
}

/// One GET with curl: (status line and headers, body).
private func curl(_ port: Int) throws -> (headers: String, body: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["curl", "-sS", "-i", "--max-time", "5", "http://127.0.0.1:\(port)/metrics"]
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    let end = Launch(process: process).waitForExit()
    let text = String(decoding: data, as: UTF8.self)
    guard end == .exit(0), let split = text.range(of: "\r\n\r\n") else {
        throw TestFailure("curl http://127.0.0.1:\(port)/metrics failed (\(end)): \(text.prefix(300))")
    }
    return (String(text[..<split.lowerBound]), String(text[split.upperBound...]))
}

/// The value of a series with role-independent `worker` label (and no further labels beyond role/host).
private func sample(_ body: String, _ name: String, worker: String) -> Double? {
    for line in body.split(separator: "\n") where line.hasPrefix(name + "{") && line.contains("worker=\"\(worker)\"") {
        return line.split(separator: " ").last.flatMap { Double($0) }
    }
    return nil
}
