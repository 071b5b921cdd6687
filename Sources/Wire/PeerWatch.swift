import CZMQ
import Foundation

/// Tells a connecting socket's owner when its peer came back after the connection was lost — e.g. a
/// coordinator that was killed and restarted by its launcher — so it can repeat what the new peer must
/// know. Built on libzmq's socket monitor: DISCONNECTED marks the peer lost, and the next completed ZMTP
/// handshake (CURVE included) is the reconnection. The first connection is not a reconnection.
///
/// Use from the thread that owns the socket; close before the socket.
public final class PeerWatch: @unchecked Sendable {
    private var pair: UnsafeMutableRawPointer?
    private weak var socket: ZMQSocket?
    private var lost = false

    public init(_ socket: ZMQSocket) throws(ZMQError) {
        guard let raw = socket.rawHandle else { throw ZMQError("monitor a closed socket", code: ENOTSOCK) }
        let address = "inproc://dots-peer-watch-\(UUID().uuidString)"
        let events = ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED
        if zmq_socket_monitor(raw, address, events) != 0 { throw ZMQError("monitor a \(socket.type) socket") }
        guard let pair = zmq_socket(socket.context.handle, ZMQ_PAIR) else { throw ZMQError("open a monitor socket") }
        var linger: Int32 = 0
        zmq_setsockopt(pair, ZMQ_LINGER, &linger, MemoryLayout<Int32>.size)
        if zmq_connect(pair, address) != 0 {
            let error = ZMQError("connect the monitor socket")
            zmq_close(pair)
            throw error
        }
        self.pair = pair
        self.socket = socket
    }

    deinit { close() }

    /// Whether the peer has come back since the last call, after having been lost. Never blocks.
    public func reconnected() -> Bool {
        guard let pair else { return false }
        var back = false
        var msg = zmq_msg_t()
        zmq_msg_init(&msg)
        defer { zmq_msg_close(&msg) }
        while zmq_msg_recv(&msg, pair, ZMQ_DONTWAIT) >= 0 {
            // Frame 1: event u16 and value u32 (native byte order); frame 2: the endpoint.
            var event: UInt16 = 0
            if zmq_msg_size(&msg) >= 2 { memcpy(&event, zmq_msg_data(&msg), 2) }
            while zmq_msg_more(&msg) != 0 && zmq_msg_recv(&msg, pair, ZMQ_DONTWAIT) >= 0 {}
            switch Int32(event) {
            case ZMQ_EVENT_DISCONNECTED: lost = true
            case ZMQ_EVENT_HANDSHAKE_SUCCEEDED where lost:
                lost = false
                back = true
            default: break
            }
        }
        return back
    }

    /// Stops monitoring. Safe to call twice.
    public func close() {
        if let raw = socket?.rawHandle { zmq_socket_monitor(raw, nil, 0) }
        if let pair { zmq_close(pair) }
        pair = nil
    }
}
