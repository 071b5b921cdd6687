import Foundation
import Testing
@testable import Wire

@Suite struct SecurityTests {
    @Test func keysRoundTripThroughZ85AndFiles() throws {
        let pair = try CurveKeyPair.generate()
        #expect(pair.publicKey.count == 32 && pair.secretKey.count == 32)
        #expect(try Z85.decode(Z85.encode(pair.publicKey)) == pair.publicKey)
        #expect(try CurveKeyPair(secretKey: pair.secretKey) == pair)
        let dir = temporaryDirectory()
        let (pub, sec) = try KeyFiles.write(pair, to: dir, name: "w1")
        let mode = try FileManager.default.attributesOfItem(atPath: sec)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        #expect(try KeyFiles.readPublic(pub) == pair.publicKey)
        #expect(try KeyFiles.readSecret(sec) == pair)
        #expect(try KeyFiles.readAllowList(dir) == [pair.publicKey])
        #expect(throws: KeyError.self) { try KeyFiles.write(pair, to: dir, name: "w1") }
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: sec)
        #expect(throws: KeyError.self) { try KeyFiles.readSecret(sec) }
        #expect(throws: KeyError.self) { try Z85.decode("short") }
    }

    /// A PULL with CURVE and an allow-list: the allowed client's message arrives; a client with an unknown
    /// key, and one with no CURVE at all, push messages that never reach it.
    @Test func strangersGetNothingIn() throws {
        let server = try CurveKeyPair.generate(), friend = try CurveKeyPair.generate(), stranger = try CurveKeyPair.generate()
        let ctx = try ZMQContext()
        let zap = try ZAPHandler(context: ctx, allowed: [friend.publicKey], log: { _ in })
        defer { zap.stop() }
        let pull = try ZMQSocket(ctx, type: .pull, linger: 0)
        try pull.set([.zapDomain("dots"), .curveServer(secretKey: server.secretKey)])
        try pull.bind("tcp://127.0.0.1:*")

        // Clients in a context of their own, as in another process.
        let clients = try ZMQContext()
        let strangerPush = try ZMQSocket(clients, type: .push, linger: 0)
        try strangerPush.set(.curveClient(publicKey: stranger.publicKey, secretKey: stranger.secretKey, serverKey: server.publicKey))
        try strangerPush.connect(pull.lastEndpoint)
        let plainPush = try ZMQSocket(clients, type: .push, linger: 0)
        try plainPush.connect(pull.lastEndpoint)
        // Without `immediate` the messages queue on the half-open connections and wait there forever.
        try strangerPush.send(WireCodec.encode(Samples.envelopes[0]), dontWait: true)
        try plainPush.send([Array("hello".utf8)], dontWait: true)
        #expect(try pull.receive(timeout: .milliseconds(500)) == nil)

        let friendPush = try ZMQSocket(clients, type: .push, linger: 0)
        try friendPush.set(.curveClient(publicKey: friend.publicKey, secretKey: friend.secretKey, serverKey: server.publicKey))
        try friendPush.connect(pull.lastEndpoint)
        try friendPush.send([[42]])
        #expect(try pull.receive(timeout: .seconds(5)) == [[42]])
        #expect(try pull.receive(timeout: .milliseconds(200)) == nil)
        #expect(zap.denied >= 1 && zap.accepted == 1)
    }

    /// The other direction: a CURVE PUSH never hands a message to a stranger's PULL.
    @Test func strangersGetNothingOut() throws {
        let server = try CurveKeyPair.generate(), friend = try CurveKeyPair.generate(), stranger = try CurveKeyPair.generate()
        let ctx = try ZMQContext()
        let zap = try ZAPHandler(context: ctx, allowed: [friend.publicKey], log: { _ in })
        defer { zap.stop() }
        let push = try ZMQSocket(ctx, type: .push, linger: 0)
        // A PUSH with no peer blocks; bound the wait so a failed handshake fails the test, not hangs it.
        try push.set([.zapDomain("dots"), .curveServer(secretKey: server.secretKey), .sendTimeout(10_000)])
        try push.bind("tcp://127.0.0.1:*")

        let clients = try ZMQContext()
        let strangerPull = try ZMQSocket(clients, type: .pull, linger: 0)
        try strangerPull.set(.curveClient(publicKey: stranger.publicKey, secretKey: stranger.secretKey, serverKey: server.publicKey))
        try strangerPull.connect(push.lastEndpoint)
        let plainPull = try ZMQSocket(clients, type: .pull, linger: 0)
        try plainPull.connect(push.lastEndpoint)
        // Let both handshakes fail before the friend arrives.
        Thread.sleep(forTimeInterval: 0.3)
        let friendPull = try ZMQSocket(clients, type: .pull, linger: 0)
        try friendPull.set(.curveClient(publicKey: friend.publicKey, secretKey: friend.secretKey, serverKey: server.publicKey))
        try friendPull.connect(push.lastEndpoint)
        Thread.sleep(forTimeInterval: 0.3)
        for i in 0..<6 { try push.send([[UInt8(i)]]) }
        var got: [[[UInt8]]] = []
        while let m = try friendPull.receive(timeout: .seconds(2)) {
            got.append(m)
            if got.count == 6 { break }
        }
        #expect(got.count == 6)
        #expect(try strangerPull.receive(timeout: .milliseconds(300)) == nil)
        #expect(try plainPull.receive(timeout: .milliseconds(100)) == nil)
    }

    /// The whole path through cluster.conf: key files named in the config, a learner binding `rollouts`,
    /// an actor with the host key pushing a group that arrives and decodes; a stranger's never does.
    @Test func clusterConfigWithKeysEndToEnd() throws {
        let dir = temporaryDirectory()
        try KeyFiles.write(try CurveKeyPair.generate(), to: dir, name: "server")
        try KeyFiles.write(try CurveKeyPair.generate(), to: dir, name: "a")
        try KeyFiles.write(try CurveKeyPair.generate(), to: dir, name: "stranger")
        let text = """
            [hosts.a]
            address = "127.0.0.1"
            actors = 1
            public_key = "a.public"
            secret_key = "a.secret"
            [roles]
            coordinator = "a"
            learner = "a"
            [security]
            curve = true
            server_public_key = "server.public"
            server_secret_key = "server.secret"
            """
        let config = try ClusterConfig(toml: text)
        let learnerSide = try #require(try WireSecurity.load(config, host: "a", baseDirectory: dir, server: true))
        let actorSide = try #require(try WireSecurity.load(config, host: "a", baseDirectory: dir, server: false))
        #expect(actorSide.serverKeys == nil && learnerSide.allowed.count == 1)

        let learner = try WireNode(config: config, security: learnerSide)
        defer { learner.close() }
        let pull = try learner.bind(.rollouts, endpoint: "tcp://127.0.0.1:*")
        let actor = try WireNode(config: config, security: actorSide)
        var strangerKeys = actorSide
        strangerKeys.clientKeys = try KeyFiles.readSecret((dir as NSString).appendingPathComponent("stranger.secret"))
        let stranger = try WireNode(config: config, security: strangerKeys)

        let bad = try stranger.connect(.rollouts, endpoint: pull.lastEndpoint)
        try bad.set(.immediate(false))
        try bad.send(WireCodec.encode(Samples.envelopes[0]), dontWait: true)
        let push = try actor.connect(.rollouts, endpoint: pull.lastEndpoint)
        try push.set(.sendTimeout(10_000))
        let sent = Envelope(sender: config.actors[0].id, message: Samples.envelopes[0].message)
        try push.send(WireCodec.encode(sent))
        let frames = try #require(try pull.receive(timeout: .seconds(5)))
        #expect(try WireCodec().decode(frames) == sent)
        #expect(try pull.receive(timeout: .milliseconds(300)) == nil)
    }
}

/// A fresh folder under the system temporary directory.
func temporaryDirectory() -> String {
    let path = (NSTemporaryDirectory() as NSString).appendingPathComponent("dots-wire-\(UUID().uuidString)")
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}
