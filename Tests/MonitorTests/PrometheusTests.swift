import Foundation
import Synchronization
import Testing
@testable import Monitor
import Wire

@Suite struct PrometheusTextTests {
    @Test func rendersTheTextFormat() {
        let families = [
            MetricFamily("dots_groups_sent_total", .counter, help: "rollout groups sent", samples: [
                .init([("role", "actor"), ("worker", "1000"), ("host", "gpu\"1\\")], 12),
                .init([("role", "actor"), ("worker", "1001"), ("host", "a\nb")], 0.5),
            ]),
            MetricFamily("dots_empty", .gauge, help: "left out: no samples"),
            MetricFamily("dots_up", .gauge, help: "line one\nline two", samples: [.init([], 1)]),
        ]
        #expect(PrometheusText.render(families) == """
            # HELP dots_groups_sent_total rollout groups sent
            # TYPE dots_groups_sent_total counter
            dots_groups_sent_total{role="actor",worker="1000",host="gpu\\"1\\\\"} 12
            dots_groups_sent_total{role="actor",worker="1001",host="a\\nb"} 0.5
            # HELP dots_up line one\\nline two
            # TYPE dots_up gauge
            dots_up 1

            """)
    }

    @Test func parsesWhatItRenders() throws {
        let families = [MetricFamily("x_total", .counter, help: "h", samples: [
            .init([("a", "q\"uo\\te"), ("b", "new\nline")], 1e-7), .init([("a", "")], 123456789),
        ])]
        let samples = try PrometheusText.parse(PrometheusText.render(families) + "y{} NaN 1700000000\nz +Inf\n")
        #expect(samples.count == 4)
        #expect(samples[0] == PrometheusText.ParsedSample(name: "x_total", labels: ["a": "q\"uo\\te", "b": "new\nline"], value: 1e-7))
        #expect(samples[1] == PrometheusText.ParsedSample(name: "x_total", labels: ["a": ""], value: 123456789))
        #expect(samples[2].name == "y" && samples[2].value.isNaN)
        #expect(samples[3].value == .infinity)
        #expect(throws: PrometheusText.ParseError.self) { try PrometheusText.parse("ok 1\nnot a sample line\n") }
    }

    @Test func clusterStatsExportsCountersGaugesAndLag() throws {
        var cluster = ClusterStats()
        let t0 = Date(timeIntervalSince1970: 1_000_000)
        cluster.record(sender: 1000, WorkerStats(role: .actor, state: .working, pid: 11, weightsVersion: 4, sentAt: 5,
                                                 values: ["tokens_generated_total": 900, "phase_seconds_total.waiting": 1.5,
                                                          "messages_rejected_total.truncated": 2, "tokens_per_s": 300],
                                                 labels: ["host": "gpu1", "run_id": "r1"]), at: t0)
        cluster.record(sender: 2, WorkerStats(role: .learner, pid: 12, weightsVersion: 6, sentAt: 5,
                                              values: ["step": 6, "step_phase_seconds.update": 0.25], labels: ["host": "cpu"]),
                       at: t0.addingTimeInterval(-10))
        cluster.record(sender: 1001, WorkerStats(role: .actor, state: .starting, pid: 13, weightsVersion: WeightsRequest.none,
                                                 sentAt: 5, labels: ["host": "gpu1"]), at: t0)
        let text = cluster.exposition(now: t0.addingTimeInterval(1))
        let samples = try PrometheusText.parse(text)
        func value(_ name: String, _ worker: String, _ extra: [String: String] = [:]) -> Double? {
            samples.first { s in s.name == name && s.labels["worker"] == worker && extra.allSatisfy { s.labels[$0.key] == $0.value } }?.value
        }
        #expect(text.contains("# TYPE dots_tokens_generated_total counter"))
        #expect(text.contains("# TYPE dots_tokens_per_s gauge"))
        #expect(text.contains("# TYPE dots_step_phase_seconds gauge"))
        #expect(value("dots_tokens_generated_total", "1000", ["role": "actor", "host": "gpu1"]) == 900)
        #expect(value("dots_phase_seconds_total", "1000", ["phase": "waiting"]) == 1.5)
        #expect(value("dots_messages_rejected_total", "1000", ["reason": "truncated"]) == 2)
        #expect(value("dots_step_phase_seconds", "2", ["phase": "update"]) == 0.25)
        #expect(value("dots_weights_lag", "1000") == 2)  // the learner holds 6
        #expect(value("dots_weights_lag", "2") == 0)
        #expect(value("dots_weights_version", "1001") == nil)  // holds none yet
        #expect(value("dots_up", "1000") == 1)
        #expect(value("dots_up", "2") == 0)  // silent for 11 s
        #expect(value("dots_last_heartbeat_age_seconds", "2") == 11)
        #expect(value("dots_worker_info", "1000", ["state": "working", "pid": "11", "run_id": "r1"]) == 1)
        // Every family has its HELP and TYPE once.
        let types = text.split(separator: "\n").filter { $0.hasPrefix("# TYPE") }
        #expect(Set(types).count == types.count)
        cluster.prune(now: t0.addingTimeInterval(200))
        #expect(cluster.workers.isEmpty)
    }

    @Test func metricsURLs() {
        #expect(MetricsURL("127.0.0.1:5707") == MetricsURL(host: "127.0.0.1", port: 5707))
        #expect(MetricsURL("http://coord.example:80/x") == MetricsURL(host: "coord.example", port: 80, path: "/x"))
        #expect(MetricsURL("[::1]:5707") == MetricsURL(host: "::1", port: 5707))
        #expect(MetricsURL("[::1]:5707")?.description == "http://[::1]:5707/metrics")
        #expect(MetricsURL("coordinator") == nil)
        #expect(MetricsURL("https://x:1") == nil)
        #expect(MetricsURL("x:0") == nil)
    }
}

/// The /metrics responder and the client `dots top` uses, over real loopback TCP.
@Suite struct MetricsServerTests {
    @Test func servesMetricsOverHTTP() throws {
        let context = try ZMQContext()
        let server = try MetricsServer(context: context, endpoint: "tcp://127.0.0.1:*")
        let port = Int(server.endpoint.split(separator: ":").last!)!
        let body = "# HELP dots_up up\n# TYPE dots_up gauge\ndots_up{worker=\"1\"} 1\n"
        let done = Atomic(false)
        // Only this thread touches the server until `done`.
        nonisolated(unsafe) let unsafeServer = server
        let thread = Thread {
            while !done.load(ordering: .relaxed) {
                if (try? unsafeServer.socket.poll(.readable, timeout: .milliseconds(20))) == true { unsafeServer.serve { body } }
            }
        }
        thread.start()
        defer { done.store(true, ordering: .relaxed) }
        let url = MetricsURL(host: "127.0.0.1", port: port)
        // Several in a row: each is its own connection, closed after the answer.
        for _ in 0..<3 { #expect(try HTTPGet.fetch(url) == body) }
        #expect(throws: HTTPError.self) { try HTTPGet.fetch(MetricsURL(host: "127.0.0.1", port: port, path: "/nothing")) }
        do {
            _ = try HTTPGet.fetch(MetricsURL(host: "127.0.0.1", port: port, path: "/nothing"))
        } catch {
            #expect(error.description.contains("404"))
        }
    }

    @Test func answersBadRequests() {
        func status(_ head: String) -> String {
            let r = String(decoding: MetricsServer.answer(head, metrics: { "m\n" }), as: UTF8.self)
            return String(r.split(separator: "\r\n").first ?? "")
        }
        #expect(status("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n") == "HTTP/1.1 200 OK")
        #expect(status("GET /metrics?x=1 HTTP/1.0\r\n\r\n") == "HTTP/1.1 200 OK")
        #expect(status("POST /metrics HTTP/1.1\r\n\r\n") == "HTTP/1.1 405 Method Not Allowed")
        #expect(status("GET /x HTTP/1.1\r\n\r\n") == "HTTP/1.1 404 Not Found")
        #expect(status("hello\r\n\r\n") == "HTTP/1.1 400 Bad Request")
        let head = String(decoding: MetricsServer.answer("HEAD /metrics HTTP/1.1\r\n\r\n", metrics: { "m\n" }), as: UTF8.self)
        #expect(head.hasSuffix("\r\n\r\n") && head.contains("Content-Length: 2"))
        #expect(MetricsServer.headerEnd(Array("GET / HTTP/1.1\r\nA: b\r\n\r\nrest".utf8)) == 24)
        #expect(MetricsServer.headerEnd(Array("GET / HTTP/1.1\r\n".utf8)) == nil)
    }

    @Test func unreachableIsOneSentence() {
        // Port 1 on loopback: nothing listens there.
        do {
            _ = try HTTPGet.fetch(MetricsURL(host: "127.0.0.1", port: 1), timeout: 1)
            Issue.record("connected to port 1")
        } catch {
            #expect(error.description.hasPrefix("cannot connect to 127.0.0.1:1: "))
            #expect(!error.description.contains("\n"))
        }
    }
}
