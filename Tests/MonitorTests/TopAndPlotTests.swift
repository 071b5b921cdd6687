import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing
@testable import Monitor
import Wire

@Suite struct TopTableTests {
    /// Two scrapes of a cluster whose actors report once a second: a row per actor with its rates.
    @Test func rowPerWorkerWithRates() throws {
        var cluster = ClusterStats()
        var top = TopModel()
        let t0 = Date()
        for (i, at) in [0.0, 1.0, 2.0].enumerated() {
            for (actor, speed) in [(UInt64(1000), 100.0), (1001, 250.0)] {
                cluster.record(sender: actor, WorkerStats(
                    role: .actor, state: .working, pid: 7, weightsVersion: 5, sentAt: 100 + at,
                    values: ["tokens_generated_total": speed * at, "groups_sent_total": 2 * at,
                             "phase_seconds_total.waiting": 0.25 * at, "restarts_total": actor == 1001 ? 2 : 0],
                    labels: ["host": "h"]), at: t0.addingTimeInterval(at))
            }
            cluster.record(sender: 2, WorkerStats(role: .learner, pid: 8, weightsVersion: 6, sentAt: 100 + at,
                                                  values: ["step": 6, "step_seconds": 1.5, "step_phase_seconds.collect": 1,
                                                           "step_phase_seconds.update": 0.4, "step_phase_seconds.publish": 0.1,
                                                           "groups_received_total": 4 * at]),
                           at: t0.addingTimeInterval(at))
            cluster.record(sender: 1, WorkerStats(role: .coordinator, pid: 9, weightsVersion: 6, sentAt: 100 + at,
                                                  values: ["prompts_granted_total": 8 * at]), at: t0.addingTimeInterval(at))
            top.add(try PrometheusText.parse(cluster.exposition(now: t0.addingTimeInterval(at + 0.1))))
            if i == 0 { #expect(top.render(source: "test").contains("(rates need two reports")) }
        }
        let text = top.render(source: "test")
        let lines = text.split(separator: "\n").map(String.init)
        func row(_ first: String) -> [String]? {
            lines.first { $0.split(separator: " ").first.map(String.init) == first }?.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        }
        #expect(top.actorIDs == ["1000", "1001"])
        // ACTOR HOST STATE VERSION LAG TOKENS/S GROUPS/S IDLE HEARTBEAT RESTARTS
        #expect(row("1000") == ["1000", "h", "working", "5", "1", "100", "2.00", "25%", "0.10", "s", "0"])
        #expect(row("1001") == ["1001", "h", "working", "5", "1", "250", "2.00", "25%", "0.10", "s", "2"])
        // LEARNER HOST STATE STEP STEP TIME COLLECT UPDATE PUBLISH GROUPS/S …
        #expect(row("2")?.prefix(12) == ["2", "-", "working", "6", "1.50", "s", "1.00", "s", "0.40", "s", "0.10", "s"])
        #expect(row("1")?.contains("8.0") == true)  // prompts/s
        #expect(lines.contains { $0.hasPrefix("LEARNER") } && lines.contains { $0.hasPrefix("COORDINATOR") })
        #expect(!text.contains("(rates need"))
    }
}

@Suite struct PlotTests {
    /// Four steps of a real metrics.jsonl's shape (dots launch, 2 actors), accuracy at steps 0 and 2.
    static let fixture = """
        {"dropped_stale":0,"frac_all_equal":0.5,"groups_by_actor":{"1000":2,"1001":2},"lag":0,"loss":0.01,"mean_reward":0.4,"seconds":{"collect":0.9,"generation":0.8,"publish":0.01,"update":0.3},"step":1,"test_accuracy":0.35,"test_seconds":2.1,"test_step":0,"time":1.3,"tokens_per_s":{"1000":1800.5,"1001":1650},"weights_version":1}
        {"dropped_stale":0,"frac_all_equal":0.25,"groups_by_actor":{"1000":2,"1001":2},"lag":0,"loss":0.02,"mean_reward":0.45,"seconds":{"collect":0.8,"generation":0.7,"publish":0.01,"update":0.3},"step":2,"time":2.5,"tokens_per_s":{"1000":1900,"1001":1700},"weights_version":2}
        {"dropped_stale":0,"frac_all_equal":0.25,"groups_by_actor":{"1000":3,"1001":1},"lag":0,"loss":0.02,"mean_reward":0.5,"seconds":{"collect":0.8,"generation":0.7,"publish":0.01,"update":0.3},"step":3,"test_accuracy":0.41,"test_seconds":2.0,"test_step":2,"time":3.6,"tokens_per_s":{"1000":2000,"1001":1500},"weights_version":3}
        {"dropped_stale":0,"frac_all_equal":0.5,"groups_by_actor":{"1000":2,"1001":2},"lag":0,"loss":0.0,"mean_reward":0.5,"seconds":{"collect":0.8,"generation":0.7,"publish":0.01,"update":0.3},"step":4,"time":4.8,"tokens_per_s":{"1000":1950,"1001":1720},"weights_version":4}
        {"step": 5, "time": 
        """

    @Test func writesValidSVG() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dots-plot-\(UUID().uuidString)/run-a")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir.deletingLastPathComponent()) }
        try Self.fixture.write(to: dir.appendingPathComponent("metrics.jsonl"), atomically: true, encoding: .utf8)
        let run = try RunMetrics.load(runDir: dir.path)
        #expect(run.name == "run-a" && run.steps == 4)  // the half-written last line is skipped
        #expect(run.accuracy.map(\.1) == [0.35, 0.41])
        #expect(run.tokensPerSecond["1001"]?.count == 4)
        let svg = Plot.svg([run])
        // Well-formed XML, with an accuracy line of two points and a line per actor.
        let parser = XMLParser(data: Data(svg.utf8))
        let counter = ElementCounter()
        parser.delegate = counter
        #expect(parser.parse(), "not well-formed: \(parser.parserError.map { "\($0)" } ?? "")")
        #expect(counter.counts["svg"] == 1)
        #expect(counter.counts["polyline", default: 0] >= 3 + 2)  // 2 axes, 1 accuracy line, 2 actor lines
        #expect(counter.counts["circle"] == 2)
        #expect(svg.contains("actor 1000") && svg.contains("actor 1001") && svg.contains("run-a"))
        #expect(svg.contains("seconds"))  // a 5-second run is drawn in seconds
    }

    @Test func badRunFoldersAreOneSentence() throws {
        #expect(throws: PlotError.self) { try RunMetrics.load(runDir: "/nonexistent/run") }
        let empty = FileManager.default.temporaryDirectory.appendingPathComponent("dots-plot-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: empty) }
        do { _ = try RunMetrics.load(runDir: empty.path) } catch {
            #expect(error.description.hasSuffix("has no metrics.jsonl; is it a run folder written by `dots launch`?"))
        }
    }

    @Test func ticksAreRound() {
        #expect(Plot.ticks(0, 4.8) == [0, 1, 2, 3, 4, 5])
        #expect(Plot.ticks(32.4, 41) == [32, 34, 36, 38, 40, 42])
        #expect(Plot.ticks(0, 2000) == [0, 500, 1000, 1500, 2000])
    }
}

final class ElementCounter: NSObject, XMLParserDelegate {
    var counts: [String: Int] = [:]
    func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                attributes: [String: String] = [:]) {
        counts[name, default: 0] += 1
    }
}
