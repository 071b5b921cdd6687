import Foundation
import Testing
@testable import Wire

/// Sockets bind "tcp://127.0.0.1:*" and connect to `lastEndpoint`, so tests never share a port.
@Suite struct TransportTests {
    @Test func pushPullMultipart() throws {
        let ctx = try ZMQContext()
        let pull = try ZMQSocket(ctx, type: .pull, linger: 0)
        try pull.bind("tcp://127.0.0.1:*")
        let push = try ZMQSocket(ctx, type: .push, linger: 0)
        try push.connect(pull.lastEndpoint)
        let frames: [[UInt8]] = [[1, 2, 3], [], Array(repeating: 7, count: 100_000)]
        try push.send(frames)
        #expect(try pull.receive(timeout: .seconds(5)) == frames)
        // Zero-copy receive and send of outgoing frames decode to the same message.
        let weights = Samples.envelopes[4]
        try push.send(WireCodec.encodeFrames(weights))
        let received = try #require(try pull.receiveFrames(timeout: .seconds(5)))
        #expect(received.map(\.bytes) == WireCodec.encode(weights))
        #expect(try WireCodec().decode(received) == weights)
        try push.send([Data([9, 9])])
        #expect(try pull.receiveData(timeout: .seconds(5)) == [Data([9, 9])])
        #expect(try pull.receive(timeout: .zero) == nil)
        #expect(try pull.receive(timeout: .milliseconds(20)) == nil)
    }

    @Test func bindErrorIsOneSentence() throws {
        let ctx = try ZMQContext()
        let a = try ZMQSocket(ctx, type: .pull, linger: 0)
        try a.bind("tcp://127.0.0.1:*")
        let b = try ZMQSocket(ctx, type: .pull, linger: 0)
        let endpoint = a.lastEndpoint
        #expect(throws: ZMQError.self) { try b.bind(endpoint) }
        do { try b.bind(endpoint) } catch {
            #expect(error.description == "cannot bind \(endpoint): Address already in use")
        }
        do { try b.connect("nonsense") } catch {
            #expect(error.description.hasPrefix("cannot connect to nonsense: "))
        }
    }

    @Test func routerDealerWithMandatoryRouting() throws {
        let ctx = try ZMQContext()
        let router = try ZMQSocket(ctx, type: .router, linger: 0)
        try router.set(.routerMandatory(true))
        try router.bind("tcp://127.0.0.1:*")
        let dealer = try ZMQSocket(ctx, type: .dealer, linger: 0)
        try dealer.set(.routingID(Array("actor-1".utf8)))
        try dealer.connect(router.lastEndpoint)
        try dealer.send([[42]])
        let request = try #require(try router.receive(timeout: .seconds(5)))
        #expect(request == [Array("actor-1".utf8), [42]])
        try router.send([request[0], [43]])
        #expect(try dealer.receive(timeout: .seconds(5)) == [[43]])
        // An unknown peer is an error, not a silent drop.
        do {
            try router.send([Array("ghost".utf8), [1]])
            Issue.record("sending to an unknown peer should fail")
        } catch {
            #expect(error.hostUnreachable)
        }
    }

    @Test func pubSubFiltersByPrefix() throws {
        let ctx = try ZMQContext()
        let pub = try ZMQSocket(ctx, type: .pub, linger: 0)
        try pub.bind("tcp://127.0.0.1:*")
        let sub = try ZMQSocket(ctx, type: .sub, linger: 0)
        try sub.set(.subscribe([1]))
        try sub.connect(pub.lastEndpoint)
        // Slow joiner: the subscription takes a moment to reach the publisher, so publish until seen.
        var got: [[UInt8]]?
        for _ in 0..<200 where got == nil {
            try pub.send([[2, 0]])
            try pub.send([[1, 0]])
            got = try sub.receive(timeout: .milliseconds(10))
        }
        #expect(got == [[1, 0]])
    }

    @Test func pollerReportsReadySockets() throws {
        let ctx = try ZMQContext()
        let a = try ZMQSocket(ctx, type: .pull, linger: 0)
        try a.bind("inproc://poller-a")
        let b = try ZMQSocket(ctx, type: .pull, linger: 0)
        try b.bind("inproc://poller-b")
        let push = try ZMQSocket(ctx, type: .push, linger: 0)
        try push.connect("inproc://poller-b")
        let poller = ZMQPoller()
        poller.add(a)
        let ib = poller.add(b)
        #expect(try poller.poll(timeout: .milliseconds(10)) == [])
        try push.send([[5]])
        #expect(try poller.poll(timeout: .seconds(5)) == [ib])
        #expect(try poller[ib].receive(timeout: .zero) == [[5]])
    }

    @Test func optionsApplyAndNonBlockingSendReportsFull() throws {
        let ctx = try ZMQContext()
        let push = try ZMQSocket(ctx, type: .push, linger: 0)
        try push.set([.sendHighWaterMark(1), .immediate(true), .heartbeat(interval: 1000, timeout: 3000, ttl: 3000),
                      .maxMessageSize(1 << 20), .sendTimeout(10), .receiveHighWaterMark(4)])
        // With `immediate` and no connected peer there is nowhere to queue: a non-blocking send says so.
        try push.connect("tcp://127.0.0.1:1")
        #expect(try push.send([[1]], dontWait: true) == false)
        #expect(ZMQContext.has("curve"))
    }

    /// A thread blocked in receive gets ETERM when the context shuts down, so role threads can exit.
    @Test func closedContextUnblocksReceivers() throws {
        let ctx = try ZMQContext()
        let pull = try ZMQSocket(ctx, type: .pull, linger: 0)
        try pull.bind("inproc://unblock")
        let done = DispatchSemaphore(value: 0)
        let result = LockedLines()
        // A thread of its own: blocking the test's cooperative thread could starve the others.
        Thread.detachNewThread {
            do { _ = try pull.receive(); result.append("received") } catch {
                result.append((error as? ZMQError)?.terminated == true ? "terminated" : "\(error)")
            }
            done.signal()
        }
        Thread.sleep(forTimeInterval: 0.05)
        ctx.shutdown()
        #expect(done.wait(timeout: .now() + 5) == .success)
        #expect(result.all == ["terminated"])
    }
}
