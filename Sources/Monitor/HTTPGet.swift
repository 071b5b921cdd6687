import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where a coordinator serves its metrics, from "HOST:PORT", "http://HOST:PORT" or "http://HOST:PORT/path".
public struct MetricsURL: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var path: String

    public init(host: String, port: Int, path: String = "/metrics") {
        self.host = host
        self.port = port
        self.path = path
    }

    /// Nil when `text` is not of one of those forms.
    public init?(_ text: String) {
        var rest = Substring(text.trimmingCharacters(in: .whitespaces))
        if rest.hasPrefix("http://") { rest = rest.dropFirst(7) } else if rest.contains("://") { return nil }
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = rest[..<slash]
        path = slash < rest.endIndex ? String(rest[slash...]) : "/metrics"
        // [v6]:port or host:port
        if authority.hasPrefix("["), let close = authority.firstIndex(of: "]") {
            host = String(authority[authority.index(after: authority.startIndex)..<close])
            let after = authority[authority.index(after: close)...]
            guard after.hasPrefix(":"), let p = Int(after.dropFirst()) else { return nil }
            port = p
        } else {
            guard let colon = authority.lastIndex(of: ":"), let p = Int(authority[authority.index(after: colon)...]) else { return nil }
            host = String(authority[..<colon])
            port = p
        }
        guard !host.isEmpty, (1...65535).contains(port) else { return nil }
    }

    public var description: String { "http://\(host.contains(":") ? "[\(host)]" : host):\(port)\(path)" }
}

/// Why a GET failed, in one sentence.
public struct HTTPError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// A blocking HTTP/1.0 GET over a plain TCP socket: enough for a Prometheus endpoint, and every failure
/// is one sentence ("connection refused") rather than a library's error dump.
public enum HTTPGet {
    /// The body of a 200 answer.
    public static func fetch(_ url: MetricsURL, timeout: Double = 3) throws(HTTPError) -> String {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        #if canImport(Glibc)
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        #else
        hints.ai_socktype = SOCK_STREAM
        #endif
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(url.host, String(url.port), &hints, &list)
        guard rc == 0, let first = list else {
            throw HTTPError("cannot resolve \(url.host): \(String(cString: gai_strerror(rc)))")
        }
        defer { freeaddrinfo(list) }
        var lastError = "no address"
        var candidate: UnsafeMutablePointer<addrinfo>? = first
        while let ai = candidate {
            candidate = ai.pointee.ai_next
            let fd = socket(ai.pointee.ai_family, ai.pointee.ai_socktype, ai.pointee.ai_protocol)
            guard fd >= 0 else { lastError = String(cString: strerror(errno)); continue }
            defer { close(fd) }
            var tv = timeval(tv_sec: .init(timeout), tv_usec: .init((timeout - timeout.rounded(.down)) * 1e6))
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            guard connect(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen) == 0 else {
                lastError = errno == EINPROGRESS || errno == EAGAIN ? "no answer within \(Int(timeout)) s" : String(cString: strerror(errno))
                continue
            }
            let request = "GET \(url.path) HTTP/1.0\r\nHost: \(url.host):\(url.port)\r\nAccept: text/plain\r\nConnection: close\r\n\r\n"
            let sent = Array(request.utf8).withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
            guard sent == request.utf8.count else { throw HTTPError("cannot send the request to \(url): \(String(cString: strerror(errno)))") }
            var response: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if n == 0 { break }
                if n < 0 {
                    if errno == EINTR { continue }
                    throw HTTPError(errno == EAGAIN || errno == EWOULDBLOCK ? "\(url) sent no complete answer within \(Int(timeout)) s"
                                    : "reading from \(url) failed: \(String(cString: strerror(errno)))")
                }
                response += chunk[0..<n]
                guard response.count <= 64 << 20 else { throw HTTPError("\(url) answered more than 64 MiB") }
            }
            return try body(of: response, url: url)
        }
        throw HTTPError("cannot connect to \(url.host):\(url.port): \(lastError)")
    }

    static func body(of response: [UInt8], url: MetricsURL) throws(HTTPError) -> String {
        let text = String(decoding: response, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n") else { throw HTTPError("\(url) did not answer with HTTP") }
        let statusLine = text[..<split.lowerBound].split(separator: "\r\n").first ?? ""
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/") else { throw HTTPError("\(url) did not answer with HTTP") }
        guard parts[1] == "200" else { throw HTTPError("\(url) answered \(parts.dropFirst().joined(separator: " "))") }
        return String(text[split.upperBound...])
    }
}
