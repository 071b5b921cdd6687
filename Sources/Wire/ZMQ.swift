import CZMQ
import Foundation
import Synchronization

/// Bytes this process has sent and received over all its ZeroMQ sockets (frame payloads, not TCP
/// overhead): each role is one process, so these are its per-worker traffic counters.
public enum WireTraffic {
    public static let sent = Atomic<UInt64>(0)
    public static let received = Atomic<UInt64>(0)
}

/// A libzmq failure, described in one sentence: "cannot bind tcp://127.0.0.1:5555: Address already in use".
public struct ZMQError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What was attempted, as a verb phrase ("bind tcp://127.0.0.1:5555").
    public let operation: String
    /// The `errno` libzmq reported.
    public let code: Int32

    public init(_ operation: String, code: Int32 = zmq_errno()) {
        self.operation = operation
        self.code = code
    }

    public var description: String { "cannot \(operation): \(String(cString: zmq_strerror(code)))" }
    /// A non-blocking call found nothing to do (EAGAIN).
    public var wouldBlock: Bool { code == EAGAIN }
    /// The context is shutting down; every blocking call returns this so threads can exit.
    public var terminated: Bool { code == ETERM }
    /// A ROUTER with `routerMandatory` was asked to send to a peer it does not know (or no longer knows).
    public var hostUnreachable: Bool { code == EHOSTUNREACH }
}

/// A libzmq context: owns the I/O threads. Thread-safe, as libzmq's contexts are.
///
/// One per process: the CURVE authenticator (`ZAPHandler`) is per context, so every socket that must be
/// checked has to come from the context the handler runs in.
public final class ZMQContext: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer

    /// - Parameter ioThreads: libzmq's I/O threads; one moves about 1 GB/s, so more only help many peers.
    public init(ioThreads: Int32 = 1) throws(ZMQError) {
        guard let handle = zmq_ctx_new() else { throw ZMQError("create a ZeroMQ context") }
        self.handle = handle
        if zmq_ctx_set(handle, ZMQ_IO_THREADS, ioThreads) != 0 {
            let error = ZMQError("set \(ioThreads) I/O threads")
            zmq_ctx_term(handle)
            throw error
        }
    }

    /// Makes every blocking call on this context's sockets fail with ETERM, so their threads can exit.
    public func shutdown() { zmq_ctx_shutdown(handle) }

    deinit {
        // Sockets hold a strong reference to their context, so all are closed by now and this returns
        // without waiting on anything but their linger periods.
        while zmq_ctx_term(handle) != 0 && zmq_errno() == EINTR {}
    }

    /// Whether this libzmq was built with a security mechanism ("curve", "ipc", …).
    public static func has(_ capability: String) -> Bool { zmq_has(capability) != 0 }

    /// libzmq's version as (major, minor, patch).
    public static var version: (Int32, Int32, Int32) {
        var major: Int32 = 0, minor: Int32 = 0, patch: Int32 = 0
        zmq_version(&major, &minor, &patch)
        return (major, minor, patch)
    }
}

/// The socket types Dots uses, each named for the zguide pattern it serves.
public enum SocketType: Sendable, CaseIterable, CustomStringConvertible {
    /// Pipeline sender (rollout groups, stats): blocks at the high-water mark instead of dropping.
    case push
    /// Pipeline receiver: fair-queues among all pushers.
    case pull
    /// Broker side of request/reply with addressing: assignment and weight fetches.
    case router
    /// Worker side of ROUTER/DEALER: asynchronous requests, no lock-step.
    case dealer
    /// Announcements: drops for slow subscribers at the high-water mark, so nothing vital travels only here.
    case pub
    /// Announcement receiver: must `subscribe` to a prefix or it receives nothing.
    case sub
    /// Strict request/reply; only the ZAP authenticator uses it.
    case rep
    /// Raw TCP, each message [peer id, bytes]: the coordinator's HTTP /metrics responder.
    case stream

    var raw: Int32 {
        switch self {
        case .push: ZMQ_PUSH
        case .pull: ZMQ_PULL
        case .router: ZMQ_ROUTER
        case .dealer: ZMQ_DEALER
        case .pub: ZMQ_PUB
        case .sub: ZMQ_SUB
        case .rep: ZMQ_REP
        case .stream: ZMQ_STREAM
        }
    }

    public var description: String {
        switch self {
        case .push: "PUSH"
        case .pull: "PULL"
        case .router: "ROUTER"
        case .dealer: "DEALER"
        case .pub: "PUB"
        case .sub: "SUB"
        case .rep: "REP"
        case .stream: "STREAM"
        }
    }
}

/// The socket options Dots sets. Durations are milliseconds, as libzmq takes them.
public enum SocketOption: Sendable {
    /// Messages queued per peer before PUSH/DEALER block and PUB/ROUTER drop.
    case sendHighWaterMark(Int32)
    case receiveHighWaterMark(Int32)
    /// Queue only to completed connections, so a dead or still-connecting peer never swallows messages.
    case immediate(Bool)
    /// Larger inbound messages drop the connection before a byte reaches the decoder; -1 means no limit.
    case maxMessageSize(Int64)
    /// A ROUTER send to an unknown peer fails with EHOSTUNREACH instead of vanishing silently.
    case routerMandatory(Bool)
    /// How long `close` keeps unsent messages; -1 waits forever (and so can hang shutdown).
    case linger(Int32)
    /// ZMTP heartbeats: ping every `interval`, drop the peer after `timeout` of silence, and ask the peer to
    /// drop us after `ttl` (all in milliseconds). Detects dead TCP peers that never sent a FIN.
    case heartbeat(interval: Int32, timeout: Int32, ttl: Int32)
    /// A ROUTER addresses this DEALER by this id (1–255 bytes) instead of a random one.
    case routingID([UInt8])
    /// SUB only: receive messages whose first frame starts with this prefix (empty = everything).
    case subscribe([UInt8])
    case unsubscribe([UInt8])
    /// A blocking receive gives up after this long with EAGAIN; -1 waits forever.
    case receiveTimeout(Int32)
    case sendTimeout(Int32)
    /// CURVE server: holds the server's secret key; clients must know its public key.
    case curveServer(secretKey: [UInt8])
    /// CURVE client: its own key pair and the server's public key (each 32 bytes).
    case curveClient(publicKey: [UInt8], secretKey: [UInt8], serverKey: [UInt8])
    /// The ZAP domain reported to the authenticator.
    case zapDomain(String)
}

/// One ZeroMQ socket.
///
/// Threading rule: a socket is used by one thread at a time (libzmq sockets are not thread-safe). It may
/// be handed to another thread or task, since the hand-off is a full memory barrier; it is
/// `@unchecked Sendable` so that hand-off compiles. To talk across threads, give each its own socket
/// (inproc:// is cheap), never share one.
public final class ZMQSocket: @unchecked Sendable {
    /// Nil once closed.
    private var handle: UnsafeMutableRawPointer?
    public let type: SocketType
    /// Keeps the context alive until every socket is closed (zmq_ctx_term waits for them).
    public let context: ZMQContext

    /// Opens a socket with `linger` set to 1 s, so a process exits even if a peer is gone.
    public init(_ context: ZMQContext, type: SocketType, linger: Int32 = 1000) throws(ZMQError) {
        guard let handle = zmq_socket(context.handle, type.raw) else {
            throw ZMQError("open a \(type) socket")
        }
        self.handle = handle
        self.type = type
        self.context = context
        try set(.linger(linger))
    }

    deinit { close() }

    /// Closes the socket; unsent messages are kept for the linger period. Safe to call twice.
    public func close() {
        if let handle { zmq_close(handle) }
        handle = nil
    }

    private func live(_ operation: @autoclosure () -> String) throws(ZMQError) -> UnsafeMutableRawPointer {
        guard let handle else { throw ZMQError(operation(), code: ENOTSOCK) }
        return handle
    }

    // MARK: endpoints

    public func bind(_ endpoint: String) throws(ZMQError) {
        let socket = try live("bind \(endpoint)")
        if zmq_bind(socket, endpoint) != 0 { throw ZMQError("bind \(endpoint)") }
    }

    public func connect(_ endpoint: String) throws(ZMQError) {
        let socket = try live("connect to \(endpoint)")
        if zmq_connect(socket, endpoint) != 0 { throw ZMQError("connect to \(endpoint)") }
    }

    public func unbind(_ endpoint: String) throws(ZMQError) {
        let socket = try live("unbind \(endpoint)")
        if zmq_unbind(socket, endpoint) != 0 { throw ZMQError("unbind \(endpoint)") }
    }

    public func disconnect(_ endpoint: String) throws(ZMQError) {
        let socket = try live("disconnect from \(endpoint)")
        if zmq_disconnect(socket, endpoint) != 0 { throw ZMQError("disconnect from \(endpoint)") }
    }

    /// The endpoint last bound, with the port libzmq picked for "tcp://127.0.0.1:*".
    public var lastEndpoint: String {
        guard let handle else { return "" }
        var buffer = [CChar](repeating: 0, count: 512)
        var size = buffer.count
        guard zmq_getsockopt(handle, ZMQ_LAST_ENDPOINT, &buffer, &size) == 0 else { return "" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    // MARK: options

    public func set(_ option: SocketOption) throws(ZMQError) {
        let socket = try live("set an option on a \(type) socket")
        func int(_ name: Int32, _ value: Int32, _ label: String) throws(ZMQError) {
            var value = value
            if zmq_setsockopt(socket, name, &value, MemoryLayout<Int32>.size) != 0 {
                throw ZMQError("set \(label) = \(value) on a \(type) socket")
            }
        }
        func bytes(_ name: Int32, _ value: [UInt8], _ label: String) throws(ZMQError) {
            let rc = value.withUnsafeBytes { zmq_setsockopt(socket, name, $0.baseAddress, $0.count) }
            if rc != 0 { throw ZMQError("set \(label) on a \(type) socket") }
        }
        switch option {
        case .sendHighWaterMark(let n): try int(ZMQ_SNDHWM, n, "SNDHWM")
        case .receiveHighWaterMark(let n): try int(ZMQ_RCVHWM, n, "RCVHWM")
        case .immediate(let on): try int(ZMQ_IMMEDIATE, on ? 1 : 0, "IMMEDIATE")
        case .maxMessageSize(let n):
            var value = n
            if zmq_setsockopt(socket, ZMQ_MAXMSGSIZE, &value, MemoryLayout<Int64>.size) != 0 {
                throw ZMQError("set MAXMSGSIZE = \(n) on a \(type) socket")
            }
        case .routerMandatory(let on): try int(ZMQ_ROUTER_MANDATORY, on ? 1 : 0, "ROUTER_MANDATORY")
        case .linger(let ms): try int(ZMQ_LINGER, ms, "LINGER")
        case .heartbeat(let interval, let timeout, let ttl):
            try int(ZMQ_HEARTBEAT_IVL, interval, "HEARTBEAT_IVL")
            try int(ZMQ_HEARTBEAT_TIMEOUT, timeout, "HEARTBEAT_TIMEOUT")
            try int(ZMQ_HEARTBEAT_TTL, ttl, "HEARTBEAT_TTL")
        case .routingID(let id): try bytes(ZMQ_ROUTING_ID, id, "ROUTING_ID")
        case .subscribe(let prefix): try bytes(ZMQ_SUBSCRIBE, prefix, "SUBSCRIBE")
        case .unsubscribe(let prefix): try bytes(ZMQ_UNSUBSCRIBE, prefix, "UNSUBSCRIBE")
        case .receiveTimeout(let ms): try int(ZMQ_RCVTIMEO, ms, "RCVTIMEO")
        case .sendTimeout(let ms): try int(ZMQ_SNDTIMEO, ms, "SNDTIMEO")
        case .curveServer(let secret):
            try int(ZMQ_CURVE_SERVER, 1, "CURVE_SERVER")
            try bytes(ZMQ_CURVE_SECRETKEY, secret, "CURVE_SECRETKEY")
        case .curveClient(let publicKey, let secretKey, let serverKey):
            try bytes(ZMQ_CURVE_SERVERKEY, serverKey, "CURVE_SERVERKEY")
            try bytes(ZMQ_CURVE_PUBLICKEY, publicKey, "CURVE_PUBLICKEY")
            try bytes(ZMQ_CURVE_SECRETKEY, secretKey, "CURVE_SECRETKEY")
        case .zapDomain(let domain): try bytes(ZMQ_ZAP_DOMAIN, Array(domain.utf8), "ZAP_DOMAIN")
        }
    }

    public func set(_ options: [SocketOption]) throws(ZMQError) {
        for option in options { try set(option) }
    }

    // MARK: send

    /// Sends one multipart message atomically (all frames or none).
    ///
    /// - Parameter dontWait: return false instead of blocking when the socket would block (HWM reached, or
    ///   no peer with `immediate`).
    /// - Returns: true when queued; false only with `dontWait` when the socket would block.
    @discardableResult
    public func send(_ frames: [[UInt8]], dontWait: Bool = false) throws(ZMQError) -> Bool {
        try sendFrames(frames, dontWait: dontWait)
    }

    /// Sends frames from `WireCodec.encodeFrames`, whose large arrays are handed to libzmq without an
    /// intermediate copy.
    @discardableResult
    public func send(_ frames: [OutgoingFrame], dontWait: Bool = false) throws(ZMQError) -> Bool {
        try sendFrames(frames, dontWait: dontWait)
    }

    private func sendFrames<F: WireFrame>(_ frames: [F], dontWait: Bool) throws(ZMQError) -> Bool {
        let socket = try live("send on a \(type) socket")
        precondition(!frames.isEmpty, "a ZeroMQ message has at least one frame")
        for (i, frame) in frames.enumerated() {
            var flags: Int32 = dontWait ? ZMQ_DONTWAIT : 0
            if i < frames.count - 1 { flags |= ZMQ_SNDMORE }
            // Only the first frame can would-block: libzmq accepts the rest once the first is queued.
            while frame.withUnsafeBytes({ zmq_send(socket, $0.baseAddress, $0.count, flags) }) < 0 {
                let error = ZMQError("send on a \(type) socket")
                if error.code == EINTR { continue }
                if error.wouldBlock && dontWait && i == 0 { return false }
                throw error
            }
        }
        var bytes = 0
        for frame in frames { bytes += frame.count }
        WireTraffic.sent.add(UInt64(bytes), ordering: .relaxed)
        return true
    }

    @discardableResult
    public func send(_ frames: [Data], dontWait: Bool = false) throws(ZMQError) -> Bool {
        try send(frames.map { [UInt8]($0) }, dontWait: dontWait)
    }

    // MARK: receive

    /// Receives one whole multipart message.
    ///
    /// - Parameter timeout: nil blocks; `.zero` polls once; otherwise waits at most this long.
    /// - Returns: the frames, or nil if nothing arrived in time.
    public func receive(timeout: Duration? = nil) throws(ZMQError) -> [[UInt8]]? {
        let socket = try live("receive on a \(type) socket")
        if let timeout, timeout > .zero {
            guard try poll(.readable, timeout: timeout) else { return nil }
        }
        let firstFlags: Int32 = timeout == nil ? 0 : ZMQ_DONTWAIT
        var frames: [[UInt8]] = []
        var msg = zmq_msg_t()
        zmq_msg_init(&msg)
        defer { zmq_msg_close(&msg) }
        while true {
            // The rest of a multipart message is already here once its first frame is.
            let flags = frames.isEmpty ? firstFlags : 0
            if zmq_msg_recv(&msg, socket, flags) < 0 {
                let error = ZMQError("receive on a \(type) socket")
                if error.code == EINTR { continue }
                if error.wouldBlock && frames.isEmpty { return nil }
                throw error
            }
            let size = zmq_msg_size(&msg)
            let data = zmq_msg_data(&msg)
            frames.append(size == 0 ? [] : [UInt8](UnsafeRawBufferPointer(start: data, count: size)))
            WireTraffic.received.add(UInt64(size), ordering: .relaxed)
            if zmq_msg_more(&msg) == 0 { return frames }
        }
    }

    /// Receives one whole multipart message without copying it out of libzmq: each frame keeps libzmq's
    /// buffer until released. The decoder reads these directly, which saves a copy per large message.
    public func receiveFrames(timeout: Duration? = nil) throws(ZMQError) -> [ZMQFrame]? {
        let socket = try live("receive on a \(type) socket")
        if let timeout, timeout > .zero {
            guard try poll(.readable, timeout: timeout) else { return nil }
        }
        let firstFlags: Int32 = timeout == nil ? 0 : ZMQ_DONTWAIT
        var frames: [ZMQFrame] = []
        while true {
            let frame = ZMQFrame()
            if zmq_msg_recv(frame.message, socket, frames.isEmpty ? firstFlags : 0) < 0 {
                let error = ZMQError("receive on a \(type) socket")
                if error.code == EINTR { continue }
                if error.wouldBlock && frames.isEmpty { return nil }
                throw error
            }
            frames.append(frame)
            WireTraffic.received.add(UInt64(frame.count), ordering: .relaxed)
            if zmq_msg_more(frame.message) == 0 { return frames }
        }
    }

    /// Receives into `Data` frames (the same as `receive`, for callers that hold `Data`).
    public func receiveData(timeout: Duration? = nil) throws(ZMQError) -> [Data]? {
        try receive(timeout: timeout).map { $0.map { Data($0) } }
    }

    // MARK: readiness

    public struct Events: OptionSet, Sendable {
        public let rawValue: Int16
        public init(rawValue: Int16) { self.rawValue = rawValue }
        public static let readable = Events(rawValue: Int16(ZMQ_POLLIN))
        public static let writable = Events(rawValue: Int16(ZMQ_POLLOUT))
    }

    /// Waits until the socket is ready for `events`; false on timeout.
    public func poll(_ events: Events, timeout: Duration) throws(ZMQError) -> Bool {
        let socket = try live("poll a \(type) socket")
        var item = zmq_pollitem_t(socket: socket, fd: 0, events: events.rawValue, revents: 0)
        let rc = zmq_poll(&item, 1, timeout.milliseconds)
        if rc < 0 {
            let error = ZMQError("poll a \(type) socket")
            if error.code == EINTR { return false }
            throw error
        }
        return rc > 0
    }

    var rawHandle: UnsafeMutableRawPointer? { handle }
}

extension Duration {
    /// Whole milliseconds, rounded up so a tiny positive timeout still waits, clamped to Int.
    var milliseconds: Int {
        let (seconds, attos) = components
        let ms = Double(seconds) * 1000 + (Double(attos) / 1e15).rounded(.up)
        return ms >= Double(Int.max) ? Int.max : max(0, Int(ms))
    }
}

/// Bytes a decoder can read: `[UInt8]`, or a `ZMQFrame` still in libzmq's buffer.
public protocol WireFrame {
    var count: Int { get }
    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R
}

extension Array: WireFrame where Element == UInt8 {}

/// One received frame, in the buffer libzmq received it into (freed when this is released). Immutable,
/// so it may be read from any thread.
public final class ZMQFrame: WireFrame, @unchecked Sendable {
    let message: UnsafeMutablePointer<zmq_msg_t>

    init() {
        message = .allocate(capacity: 1)
        zmq_msg_init(message)
    }

    deinit {
        zmq_msg_close(message)
        message.deallocate()
    }

    public var count: Int { zmq_msg_size(message) }

    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: zmq_msg_data(message), count: zmq_msg_size(message)))
    }

    /// A copy of the bytes.
    public var bytes: [UInt8] { withUnsafeBytes { [UInt8]($0) } }
}

/// A frame to send: bytes, or an f32 array sent as its raw little-endian bytes without being copied into
/// a byte array first (a weights payload is most of a message's bytes).
public enum OutgoingFrame: WireFrame, Sendable {
    case bytes([UInt8])
    /// Only made on little-endian hosts, where the in-memory layout is the wire layout.
    case floats([Float])

    public var count: Int {
        switch self {
        case .bytes(let b): b.count
        case .floats(let f): f.count * 4
        }
    }

    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        switch self {
        case .bytes(let b): try b.withUnsafeBytes(body)
        case .floats(let f): try f.withUnsafeBytes(body)
        }
    }
}
