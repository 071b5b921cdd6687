import ArgumentParser
import CZMQ
import Foundation
import Wire

/// `dots bench wire`: codec throughput, weights broadcast against raw libzmq, and PULL ingest rate.
struct BenchWireCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wire",
        abstract: "Speed of the wire: codec GB/s, weights broadcast vs raw libzmq, rollout groups/s into one PULL.",
        discussion: """
        codec: encode + decode of one rollout group (G = 8, 64 prompt tokens, 256 tokens per completion), as \
        message bytes per second through both. broadcast: one PUB sends a whole weights version (4 MiB chunks) \
        to 8 SUBs over tcp loopback, each SUB decoding, validating and assembling it; the ratio divides its \
        time by raw libzmq sending the same bytes in the same chunk sizes to 8 SUBs that only receive them \
        (best of --repeats, interleaved). ingest: 4 PUSH threads send pre-encoded groups to one PULL that \
        receives and decodes them (the learner's side of the pipeline), for short (16-token) and long \
        (256-token) completions. Every socket has its own context, as separate processes would.
        """)

    @Flag(help: "Print one JSON object.") var json = false
    @Option(help: "Seconds for each codec and ingest measurement.") var seconds: Double = 2
    @Option(help: "Broadcasts per model size and method; the best is kept.") var repeats = 5

    func run() throws {
        var results: [(String, Any)] = []
        let codec = try Self.codecThroughput(seconds: seconds)
        results += [("codec_gb_per_s", codec.gbps), ("codec_group_bytes", codec.bytes), ("codec_groups_per_s", codec.groupsPerSecond)]
        for (name, parameters) in [("small", 3_200_000), ("100mb", 25_000_000)] {
            let b = try Self.broadcast(parameters: parameters, subscribers: 8, repeats: repeats)
            results += [("broadcast_\(name)_bytes", parameters * 4), ("broadcast_\(name)_dots_s", b.dots),
                        ("broadcast_\(name)_raw_s", b.raw), ("broadcast_\(name)_ratio", b.dots / b.raw)]
        }
        for (name, tokens) in [("short", 16), ("long", 256)] {
            let i = try Self.ingest(pushers: 4, completionTokens: tokens, seconds: seconds)
            results += [("ingest_\(name)_groups_per_s", i.groupsPerSecond), ("ingest_\(name)_group_bytes", i.bytes),
                        ("ingest_\(name)_mb_per_s", i.groupsPerSecond * Double(i.bytes) / 1e6)]
        }
        if json {
            let object = Dictionary(uniqueKeysWithValues: results)
            print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
        } else {
            for (key, value) in results {
                let text = (value as? Double).map { String(format: "%.4g", $0) } ?? "\(value)"
                print(key.padding(toLength: 30, withPad: " ", startingAt: 0) + text)
            }
        }
    }

    static func group(promptTokens: Int, completionTokens: Int, g: Int = 8) -> RolloutGroup {
        var rng = SystemRandomNumberGenerator()
        return RolloutGroup(
            promptID: 42, weightsVersion: 3, actorID: 1000,
            promptTokens: (0..<promptTokens).map { _ in UInt32.random(in: 0..<256, using: &rng) },
            completions: (0..<g).map { i in
                Completion(tokens: (0..<completionTokens).map { _ in UInt32.random(in: 0..<256, using: &rng) },
                           logProbs: (0..<completionTokens).map { _ in -Float.random(in: 0..<8, using: &rng) },
                           reward: Float(i % 2))
            },
            generationSeconds: 1.5)
    }

    // MARK: codec

    static func codecThroughput(seconds: Double) throws -> (gbps: Double, bytes: Int, groupsPerSecond: Double) {
        let envelope = Envelope(sender: 1000, message: .rolloutGroup(group(promptTokens: 64, completionTokens: 256)))
        let codec = WireCodec()
        let bytes = WireCodec.encode(envelope).reduce(0) { $0 + $1.count }
        for _ in 0..<100 { _ = try codec.decode(WireCodec.encode(envelope)) }
        let clock = ContinuousClock()
        let start = clock.now
        var n = 0
        while clock.now - start < .seconds(seconds) {
            for _ in 0..<100 {
                guard case .rolloutGroup = try codec.decode(WireCodec.encode(envelope)).message else { fatalError() }
            }
            n += 100
        }
        let elapsed = (clock.now - start).seconds
        return (Double(n * bytes) / elapsed / 1e9, bytes, Double(n) / elapsed)
    }

    // MARK: broadcast

    /// Seconds for a whole weights version to reach 8 subscribers, Dots and raw libzmq, best of `repeats`.
    static func broadcast(parameters: Int, subscribers: Int, repeats: Int) throws -> (dots: Double, raw: Double) {
        let weights = (0..<parameters).map { Float($0 % 1000) * 1e-3 }
        let chunks = WeightsChunk.split(weights, version: 1)
        var dots = Double.infinity, raw = Double.infinity
        for rep in 0..<repeats {
            let payloads = chunks.map { $0.payload.withUnsafeBytes { [UInt8]($0) } }
            raw = min(raw, try broadcastRaw(payloads, subscribers: subscribers))
            // Dots encodes inside the timed region: sending a new version includes encoding it.
            dots = min(dots, try broadcastDots(chunks, subscribers: subscribers, version: UInt64(rep + 1)))
        }
        return (dots, raw)
    }

    private static func broadcastDots(_ chunks: [WeightsChunk], subscribers: Int, version: UInt64) throws -> Double {
        let pubContext = try ZMQContext()
        let pub = try ZMQSocket(pubContext, type: .pub, linger: 0)
        try pub.set(Channel.announce.options(binding: true))
        try pub.bind("tcp://127.0.0.1:*")
        let endpoint = pub.lastEndpoint
        let done = DispatchSemaphore(value: 0), ready = DispatchSemaphore(value: 0)
        let total = chunks[0].totalBytes
        for _ in 0..<subscribers {
            let context = try ZMQContext()
            let sub = try ZMQSocket(context, type: .sub, linger: 0)
            try sub.set(Channel.announce.options(binding: false))
            try sub.connect(endpoint)
            Thread.detachNewThread {
                let codec = WireCodec()
                // An actor holds the buffer of an older version and recycles it (made here, before the
                // clock starts, and referenced only by the assembler, so writing it never copies).
                var assembler = WeightsAssembler(recycling: [Float](repeating: 0, count: Int(total / 4)))
                var readied = false
                while let frames = try? sub.receiveFrames(timeout: .seconds(30)) {
                    guard let header = try? codec.decodeHeader(frames[0]) else { continue }
                    if header.kind == .weights {
                        if case .complete(_, let p)? = try? assembler.add(weightsFrames: frames, codec: codec),
                           UInt64(p.count * 4) == total {
                            done.signal()
                            return
                        }
                    } else if case .heartbeat? = try? codec.decode(frames).message, !readied {
                        readied = true
                        ready.signal()
                    }
                }
            }
        }
        try waitForSubscribers(pub, ready: ready, count: subscribers) {
            WireCodec.encode(Envelope(sender: 1, message: .heartbeat(WorkerStats(role: .coordinator, pid: 0, weightsVersion: 0, sentAt: 0))))
        }
        let clock = ContinuousClock()
        let start = clock.now
        for chunk in chunks {
            var c = chunk
            c.weightsVersion = version
            try pub.send(WireCodec.encodeFrames(Envelope(sender: 1, message: .weights(c))))
        }
        for _ in 0..<subscribers { done.wait() }
        return (clock.now - start).seconds
    }

    /// The baseline, in the C API alone: zmq_send of each chunk's bytes as one frame; subscribers
    /// zmq_msg_recv and count bytes, touching nothing.
    private static func broadcastRaw(_ payloads: [[UInt8]], subscribers: Int) throws -> Double {
        let total = payloads.reduce(0) { $0 + $1.count }
        let pubContext = zmq_ctx_new()
        let pub = zmq_socket(pubContext, ZMQ_PUB)
        var zero: Int32 = 0
        zmq_setsockopt(pub, ZMQ_LINGER, &zero, 4)
        guard zmq_bind(pub, "tcp://127.0.0.1:*") == 0 else { throw ValidationError("raw bind failed") }
        var name = [CChar](repeating: 0, count: 256)
        var size = name.count
        zmq_getsockopt(pub, ZMQ_LAST_ENDPOINT, &name, &size)
        let endpoint = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let done = DispatchSemaphore(value: 0), ready = DispatchSemaphore(value: 0)
        let finished = DispatchSemaphore(value: 0)
        for _ in 0..<subscribers {
            Thread.detachNewThread {
                let context = zmq_ctx_new()
                let sub = zmq_socket(context, ZMQ_SUB)
                var zero: Int32 = 0
                zmq_setsockopt(sub, ZMQ_LINGER, &zero, 4)
                zmq_setsockopt(sub, ZMQ_SUBSCRIBE, nil, 0)
                zmq_connect(sub, endpoint)
                var msg = zmq_msg_t()
                zmq_msg_init(&msg)
                var received = 0
                var readied = false
                while zmq_msg_recv(&msg, sub, 0) >= 0 {
                    let size = zmq_msg_size(&msg)
                    if size == 1 {
                        if !readied { readied = true; ready.signal() }
                        continue
                    }
                    received += size
                    if received >= total { break }
                }
                done.signal()
                zmq_msg_close(&msg)
                zmq_close(sub)
                zmq_ctx_term(context)
                finished.signal()
            }
        }
        var seen = 0
        var hello: UInt8 = 0
        while seen < subscribers {
            zmq_send(pub, &hello, 1, 0)
            while ready.wait(timeout: .now() + .milliseconds(5)) == .success { seen += 1 }
        }
        Thread.sleep(forTimeInterval: 0.05)
        let clock = ContinuousClock()
        let start = clock.now
        for payload in payloads {
            _ = payload.withUnsafeBytes { zmq_send(pub, $0.baseAddress, $0.count, 0) }
        }
        for _ in 0..<subscribers { done.wait() }
        let elapsed = (clock.now - start).seconds
        for _ in 0..<subscribers { finished.wait() }
        zmq_close(pub)
        zmq_ctx_term(pubContext)
        return elapsed
    }

    /// Slow joiners: publish a small message until every subscriber has seen one, so timing starts with
    /// all of them connected.
    private static func waitForSubscribers(_ pub: ZMQSocket, ready: DispatchSemaphore, count: Int,
                                           hello: () -> [[UInt8]]) throws {
        var seen = 0
        while seen < count {
            try pub.send(hello())
            while ready.wait(timeout: .now() + .milliseconds(5)) == .success { seen += 1 }
        }
        Thread.sleep(forTimeInterval: 0.05)
    }

    // MARK: ingest

    static func ingest(pushers: Int, completionTokens: Int, seconds: Double) throws -> (groupsPerSecond: Double, bytes: Int) {
        let frames = WireCodec.encode(Envelope(sender: 1000, message: .rolloutGroup(group(promptTokens: 32, completionTokens: completionTokens))))
        let context = try ZMQContext()
        let pull = try ZMQSocket(context, type: .pull, linger: 0)
        try pull.set(Channel.rollouts.options(binding: true))
        try pull.bind("tcp://127.0.0.1:*")
        let stop = StopFlag()
        for _ in 0..<pushers {
            let pushContext = try ZMQContext()
            let push = try ZMQSocket(pushContext, type: .push, linger: 0)
            try push.set(Channel.rollouts.options(binding: false))
            try push.connect(pull.lastEndpoint)
            Thread.detachNewThread {
                _ = pushContext
                while !stop.isSet {
                    for _ in 0..<64 { _ = try? push.send(frames, dontWait: false) }
                }
                push.close()
            }
        }
        let codec = WireCodec()
        // Warm-up, then count what arrives and decodes in `seconds`.
        for _ in 0..<1000 { _ = try pull.receive(timeout: .seconds(10)) }
        let clock = ContinuousClock()
        let start = clock.now
        var n = 0
        while clock.now - start < .seconds(seconds) {
            for _ in 0..<64 {
                guard let f = try pull.receiveFrames(timeout: .seconds(10)), case .rolloutGroup = try codec.decode(f).message else {
                    throw ValidationError("ingest: a group failed to arrive or decode")
                }
            }
            n += 64
        }
        let elapsed = (clock.now - start).seconds
        stop.set()
        // Unblock pushers stuck at the high-water mark.
        while (try? pull.receive(timeout: .milliseconds(100))) != nil {}
        return (Double(n) / elapsed, frames.reduce(0) { $0 + $1.count })
    }
}

private final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var flag = false
    var isSet: Bool { lock.withLock { flag } }
    func set() { lock.withLock { flag = true } }
}

extension Duration {
    fileprivate var seconds: Double {
        let (s, a) = components
        return Double(s) + Double(a) / 1e18
    }
}
