import CZMQ

/// Waits on several sockets at once, so one thread can serve, say, a ROUTER and a PULL without
/// busy-polling either. Same threading rule as `ZMQSocket`: one thread at a time.
public final class ZMQPoller: @unchecked Sendable {
    private var sockets: [ZMQSocket] = []
    private var items: [zmq_pollitem_t] = []

    public init() {}

    /// Adds a socket; returns its index in `poll`'s answer.
    @discardableResult
    public func add(_ socket: ZMQSocket, events: ZMQSocket.Events = .readable) -> Int {
        sockets.append(socket)
        items.append(zmq_pollitem_t(socket: socket.rawHandle, fd: 0, events: events.rawValue, revents: 0))
        return sockets.count - 1
    }

    /// Waits up to `timeout` (nil = forever) and returns the indices of the sockets that are ready.
    /// An empty answer means the timeout passed (or a signal interrupted the wait).
    public func poll(timeout: Duration?) throws(ZMQError) -> [Int] {
        guard !items.isEmpty else { return [] }
        let ms = timeout.map { $0.milliseconds } ?? -1
        let rc = items.withUnsafeMutableBufferPointer { zmq_poll($0.baseAddress, Int32($0.count), ms) }
        if rc < 0 {
            let error = ZMQError("poll \(items.count) sockets")
            if error.code == EINTR { return [] }
            throw error
        }
        return items.indices.filter { items[$0].revents != 0 }
    }

    /// The socket at `index`, as returned by `add`.
    public subscript(index: Int) -> ZMQSocket { sockets[index] }
}
