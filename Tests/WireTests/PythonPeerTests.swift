import Foundation
import Testing
@testable import Wire

/// scripts/pypeer.py was written from docs/protocol.md alone; these tests hold it against the Swift
/// codec both ways, through files and through real sockets.
@Suite(.enabled(if: PythonPeer.available, "python3 with pyzmq is not importable (pip install pyzmq); Python peer tests skipped"))
struct PythonPeerTests {
    @Test func swiftEncodesPythonReencodesSwiftDecodes() throws {
        let dir = temporaryDirectory()
        let input = dir + "/swift", output = dir + "/python"
        try FileManager.default.createDirectory(atPath: input, withIntermediateDirectories: true)
        for (i, e) in Samples.envelopes.enumerated() {
            try Data(WireCodec.encodeBlob(e)).write(to: URL(fileURLWithPath: "\(input)/\(i).bin"))
        }
        let result = try PythonPeer.run(["roundtrip", input, output])
        #expect(result.status == 0, "\(result.output)")
        for (i, e) in Samples.envelopes.enumerated() {
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: "\(output)/\(i).bin")))
            #expect(try WireCodec().decodeBlob(bytes) == e)
            #expect(bytes == WireCodec.encodeBlob(e), "Python re-encoded \(e.message.kind) to different bytes")
        }
    }

    @Test func pythonEncodesSwiftDecodes() throws {
        let dir = temporaryDirectory()
        let result = try PythonPeer.run(["samples", dir])
        #expect(result.status == 0, "\(result.output)")
        for (i, e) in Samples.envelopes.enumerated() {
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: "\(dir)/\(i).bin")))
            #expect(try WireCodec().decodeBlob(bytes) == e, "\(e.message.kind)")
        }
    }

    /// Both decoders refuse the same bad messages for the same reasons.
    @Test func rejectReasonsAgree() throws {
        let dir = temporaryDirectory()
        let good = WireCodec.encode(Samples.envelopes[0])
        func put(_ le: some FixedWidthInteger) -> [UInt8] { withUnsafeBytes(of: le.littleEndian, Array.init) }
        var cases: [(String, [[UInt8]])] = []
        var f = good; f[0][1] = 0; cases.append(("magic", f))
        f = good; f[0].replaceSubrange(4..<6, with: put(WireCodec.protocolVersion + 1)); cases.append(("version", f))
        f = good; f[0].replaceSubrange(6..<8, with: put(UInt16(77))); cases.append(("kind", f))
        f = good; f[4].replaceSubrange(4..<8, with: put(Float.infinity.bitPattern)); cases.append(("inf", f))
        f = good; f[1].replaceSubrange(32..<36, with: put(UInt32(5000))); cases.append(("bigG", f))
        f = good; f[1][24] &+= 1; cases.append(("generated", f))
        f = good; f[0][28] = 1; cases.append(("flags", f))
        let stats = WireCodec.encode(Samples.envelopes[6])
        f = stats; f[1][0] = 9; cases.append(("role", f))
        f = stats; f[1][2] = 9; cases.append(("state", f))
        // The labels frame: a count larger than the limit, a key of 0 bytes, a value over 1024 bytes.
        let labelCount = stats[3].count
        f = stats; f[3].replaceSubrange(0..<4, with: put(UInt32(65))); cases.append(("labelcount", f))
        f = stats; f[3].replaceSubrange(4..<6, with: put(UInt16(0))); cases.append(("labelkey", f))
        f = stats; f[3].append(0); f[0].replaceSubrange(32 + 16..<32 + 24, with: put(UInt64(labelCount + 1))); cases.append(("labeltail", f))
        var blobs = cases.map { ($0.0, $0.1.flatMap { $0 }) }
        blobs.append(("cut", Array(WireCodec.encodeBlob(Samples.envelopes[2]).dropLast(3))))
        blobs.append(("tail", WireCodec.encodeBlob(Samples.envelopes[2]) + [0]))
        for (name, blob) in blobs { try Data(blob).write(to: URL(fileURLWithPath: "\(dir)/\(name).bin")) }

        let result = try PythonPeer.run(["check", dir])
        #expect(result.status == 0, "\(result.output)")
        var python: [String: String] = [:]
        for line in result.output.split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2 { python[String(parts[0])] = String(parts[1]) }
        }
        for (name, blob) in blobs {
            var swift = "ok"
            do { _ = try WireCodec().decodeBlob(blob) } catch { swift = error.reason.rawValue }
            #expect(swift != "ok", "\(name) should be rejected")
            #expect(python["\(name).bin"] == swift, "\(name): Python says \(python["\(name).bin"] ?? "nothing")")
        }
    }

    /// Swift PUSHes every kind to the Python peer, which decodes, re-encodes and PUSHes it back.
    @Test func echoOverSockets() throws {
        let ctx = try ZMQContext()
        let out = try ZMQSocket(ctx, type: .push, linger: 0)
        try out.set(.sendTimeout(20_000))
        try out.bind("tcp://127.0.0.1:*")
        let back = try ZMQSocket(ctx, type: .pull, linger: 0)
        try back.bind("tcp://127.0.0.1:*")
        let arguments = ["echo", out.lastEndpoint, back.lastEndpoint, "\(Samples.envelopes.count)"]
        let result = LockedLines()
        let done = DispatchSemaphore(value: 0)
        // Its own thread, so the peer starts even when every cooperative thread is busy with other tests.
        Thread.detachNewThread {
            let r = try? PythonPeer.run(arguments)
            result.append("\(r?.status ?? -1) \(r?.output ?? "")")
            done.signal()
        }
        for e in Samples.envelopes { try out.send(WireCodec.encode(e)) }
        for e in Samples.envelopes {
            let frames = try #require(try back.receive(timeout: .seconds(20)))
            #expect(frames == WireCodec.encode(e))
            #expect(try WireCodec().decode(frames) == e)
        }
        #expect(done.wait(timeout: .now() + 20) == .success)
        #expect(result.all.first?.hasPrefix("0 ") == true, "\(result.all)")
    }
}

enum PythonPeer {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("scripts/pypeer.py").path

    static let available: Bool = (try? run(["-c", "import zmq, struct"], script: false).status) == 0

    static func run(_ arguments: [String], script useScript: Bool = true) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3"] + (useScript ? [script] : []) + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
