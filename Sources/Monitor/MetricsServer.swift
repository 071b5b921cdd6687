import Foundation
import Wire

/// A minimal HTTP/1.1 responder for `GET /metrics`, on a ZeroMQ STREAM socket (raw TCP: each message is
/// [connection id, bytes]). It needs no thread and no extra dependency: the socket joins the owner's poll
/// loop, and the coordinator answers a scrape between two of its own messages, from its own state, with
/// no lock. One response per connection (`Connection: close`).
public final class MetricsServer {
    public let socket: ZMQSocket
    /// Where it listens, e.g. "tcp://127.0.0.1:5707".
    public let endpoint: String
    /// Request bytes received so far, by connection id, until the header's blank line.
    private var pending: [[UInt8]: [UInt8]] = [:]
    /// Requests larger than this are refused (431) without reading further.
    static let maxRequestBytes = 8192

    public init(context: ZMQContext, endpoint: String) throws(ZMQError) {
        socket = try ZMQSocket(context, type: .stream, linger: 0)
        try socket.bind(endpoint)
        self.endpoint = socket.lastEndpoint
    }

    /// Handles every message waiting on the socket; `metrics` is called once per GET /metrics.
    public func serve(_ metrics: () -> String) {
        while let frames = try? socket.receive(timeout: .zero) { handle(frames, metrics: metrics) }
    }

    /// Handles one message of the socket (for an owner that receives in its own poll loop).
    public func handle(_ frames: [[UInt8]], metrics: () -> String) {
        guard frames.count == 2 else { return }
        let id = frames[0], data = frames[1]
        // An empty frame announces a connection or its end.
        guard !data.isEmpty else { pending[id] = nil; return }
        let buffer = pending[id, default: []] + data
        guard let end = Self.headerEnd(buffer) else {
            if buffer.count > Self.maxRequestBytes {
                pending[id] = nil
                respond(id, Self.response(status: "431 Request Header Fields Too Large", body: "request too large\n"))
            } else {
                pending[id] = buffer
            }
            return
        }
        pending[id] = nil
        respond(id, Self.answer(String(decoding: buffer[..<end], as: UTF8.self), metrics: metrics))
    }

    /// The response to one request head.
    static func answer(_ head: String, metrics: () -> String) -> [UInt8] {
        let requestLine = head.split(separator: "\r\n", maxSplits: 1).first.map(String.init) ?? ""
        let parts = requestLine.split(separator: " ")
        guard parts.count == 3, parts[2].hasPrefix("HTTP/1.") else {
            return response(status: "400 Bad Request", body: "not an HTTP/1.x request\n")
        }
        let method = parts[0], path = parts[1].split(separator: "?", maxSplits: 1).first.map(String.init) ?? ""
        guard method == "GET" || method == "HEAD" else {
            return response(status: "405 Method Not Allowed", body: "only GET\n", extra: ["Allow: GET, HEAD"])
        }
        let body: String, type: String
        switch path {
        case "/metrics":
            body = metrics()
            type = PrometheusText.contentType
        case "/":
            body = "Dots coordinator. Metrics (Prometheus text format): /metrics\n"
            type = "text/plain; charset=utf-8"
        default:
            return response(status: "404 Not Found", body: "no \(path) here; try /metrics\n")
        }
        return response(status: "200 OK", body: body, contentType: type, headOnly: method == "HEAD")
    }

    static func response(status: String, body: String, contentType: String = "text/plain; charset=utf-8",
                         extra: [String] = [], headOnly: Bool = false) -> [UInt8] {
        let bytes = Array(body.utf8)
        let head = (["HTTP/1.1 \(status)", "Content-Type: \(contentType)", "Content-Length: \(bytes.count)",
                     "Connection: close"] + extra).joined(separator: "\r\n") + "\r\n\r\n"
        return Array(head.utf8) + (headOnly ? [] : bytes)
    }

    /// The index just past the "\r\n\r\n" that ends a request head, if it has arrived.
    static func headerEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for i in 0...(bytes.count - 4) where bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10 {
            return i + 4
        }
        return nil
    }

    /// Sends the response, then closes the connection (a zero-length frame to its id).
    private func respond(_ id: [UInt8], _ bytes: [UInt8]) {
        _ = try? socket.send([id, bytes], dontWait: true)
        _ = try? socket.send([id, []], dontWait: true)
    }

    public func close() { socket.close() }
}
