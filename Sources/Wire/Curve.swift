import CZMQ
import Foundation
import Synchronization

/// A key-file or key-format problem, in one sentence.
public struct KeyError: Error, CustomStringConvertible, Sendable, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A CURVE25519 key pair (32-byte keys). Z85 text (40 characters) is how keys are written down.
public struct CurveKeyPair: Sendable, Equatable {
    public let publicKey: [UInt8]
    public let secretKey: [UInt8]

    /// A fresh random pair from libzmq (libsodium underneath).
    public static func generate() throws(KeyError) -> CurveKeyPair {
        var pub = [CChar](repeating: 0, count: 41)
        var sec = [CChar](repeating: 0, count: 41)
        guard zmq_curve_keypair(&pub, &sec) == 0 else {
            throw KeyError("cannot generate a CURVE key pair: \(String(cString: zmq_strerror(zmq_errno())))")
        }
        let p = String(decoding: pub.prefix(40).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let s = String(decoding: sec.prefix(40).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return CurveKeyPair(publicKey: try Z85.decode(p), secretKey: try Z85.decode(s))
    }

    /// The pair belonging to a secret key (the public key is derived, so a secret file alone suffices).
    public init(secretKey: [UInt8]) throws(KeyError) {
        guard secretKey.count == 32 else { throw KeyError("a CURVE secret key has 32 bytes, not \(secretKey.count)") }
        let secretText = Z85.encode(secretKey)
        var pub = [CChar](repeating: 0, count: 41)
        guard zmq_curve_public(&pub, secretText) == 0 else {
            throw KeyError("cannot derive a CURVE public key: \(String(cString: zmq_strerror(zmq_errno())))")
        }
        self.publicKey = try Z85.decode(String(decoding: pub.prefix(40).map { UInt8(bitPattern: $0) }, as: UTF8.self))
        self.secretKey = secretKey
    }

    private init(publicKey: [UInt8], secretKey: [UInt8]) {
        self.publicKey = publicKey
        self.secretKey = secretKey
    }
}

/// ZeroMQ's Z85 text encoding of 32-byte keys.
public enum Z85 {
    public static func encode(_ key: [UInt8]) -> String {
        precondition(key.count % 4 == 0, "Z85 encodes whole 4-byte groups")
        var out = [CChar](repeating: 0, count: key.count * 5 / 4 + 1)
        _ = key.withUnsafeBufferPointer { zmq_z85_encode(&out, $0.baseAddress, $0.count) }
        return String(decoding: out.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Decodes a 40-character key.
    public static func decode(_ text: String) throws(KeyError) -> [UInt8] {
        let alphabet = Set("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#")
        guard text.count == 40, text.allSatisfy(alphabet.contains) else {
            throw KeyError("a CURVE key in Z85 is 40 characters of the Z85 alphabet, not \"\(text.prefix(50))\"")
        }
        var out = [UInt8](repeating: 0, count: 32)
        guard zmq_z85_decode(&out, text) != nil else { throw KeyError("\"\(text)\" is not valid Z85") }
        return out
    }
}

/// Key files: one Z85 key a file, after optional "# " comment lines. `NAME.public` may be shared freely;
/// `NAME.secret` is written with mode 0600 and refused when others can read it (as ssh does).
public enum KeyFiles {
    /// Writes `DIR/NAME.public` and `DIR/NAME.secret`; returns their paths.
    @discardableResult
    public static func write(_ pair: CurveKeyPair, to directory: String, name: String) throws(KeyError) -> (public: String, secret: String) {
        let fm = FileManager.default
        do { try fm.createDirectory(atPath: directory, withIntermediateDirectories: true) } catch {
            throw KeyError("cannot create \(directory): \(error.localizedDescription)")
        }
        let pub = (directory as NSString).appendingPathComponent("\(name).public")
        let sec = (directory as NSString).appendingPathComponent("\(name).secret")
        guard !fm.fileExists(atPath: sec) else {
            throw KeyError("\(sec) exists already; remove it first (it may be in use)")
        }
        let header = "# Dots CURVE %@ key (Z85), from `dots keys generate`.\n"
        // The secret file is created 0600 before a byte is written, so it is never briefly readable.
        guard fm.createFile(atPath: sec, contents: nil, attributes: [.posixPermissions: 0o600]),
              let handle = FileHandle(forWritingAtPath: sec) else {
            throw KeyError("cannot create \(sec)")
        }
        do {
            try handle.write(contentsOf: Data((String(format: header, "secret") + Z85.encode(pair.secretKey) + "\n").utf8))
            try handle.close()
            try (String(format: header, "public") + Z85.encode(pair.publicKey) + "\n")
                .write(toFile: pub, atomically: true, encoding: .utf8)
        } catch {
            throw KeyError("cannot write the key files in \(directory): \(error.localizedDescription)")
        }
        return (pub, sec)
    }

    /// Reads a public key file.
    public static func readPublic(_ path: String) throws(KeyError) -> [UInt8] {
        try Z85.decode(try keyLine(path))
    }

    /// Reads a secret key file (refused if group or others may read it) and derives its pair.
    public static func readSecret(_ path: String) throws(KeyError) -> CurveKeyPair {
        if let mode = (try? FileManager.default.attributesOfItem(atPath: path))?[.posixPermissions] as? Int,
           mode & 0o077 != 0 {
            throw KeyError("secret key file \(path) is readable by others (mode \(String(mode, radix: 8))); run chmod 600 \(path)")
        }
        return try CurveKeyPair(secretKey: try Z85.decode(try keyLine(path)))
    }

    /// The allow-list: every `*.public` file in a folder, or every key line of one file.
    public static func readAllowList(_ path: String) throws(KeyError) -> Set<[UInt8]> {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw KeyError("allow-list \(path) does not exist")
        }
        if isDirectory.boolValue {
            let names = ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).filter { $0.hasSuffix(".public") }
            var keys: Set<[UInt8]> = []
            for name in names.sorted() { keys.insert(try readPublic((path as NSString).appendingPathComponent(name))) }
            return keys
        }
        var keys: Set<[UInt8]> = []
        for line in try lines(path) { keys.insert(try Z85.decode(line)) }
        return keys
    }

    private static func lines(_ path: String) throws(KeyError) -> [String] {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw KeyError("cannot read key file \(path): \(error.localizedDescription)")
        }
        return text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
            // "#" is a Z85 digit, so a comment is "#" followed by a space (no key holds a space).
            .filter { !$0.isEmpty && $0 != "#" && !$0.hasPrefix("# ") }
    }

    private static func keyLine(_ path: String) throws(KeyError) -> String {
        let keys = try lines(path)
        guard keys.count == 1 else { throw KeyError("key file \(path) should hold one key, holds \(keys.count)") }
        return keys[0]
    }
}

/// The ZAP authenticator: a REP socket at inproc://zeromq.zap.01 on its own thread that libzmq asks about
/// every CURVE handshake on the context's server sockets. Only client public keys on the allow-list get
/// in; anything else is refused before a single message passes either way. (A peer without CURVE never
/// gets this far: its handshake fails on the mechanism mismatch.)
public final class ZAPHandler: Sendable {
    /// The endpoint libzmq's ZAP protocol (RFC 27) fixes.
    public static let endpoint = "inproc://zeromq.zap.01"

    private let allowed: Mutex<Set<[UInt8]>>
    private let counts = Mutex((accepted: 0, denied: 0))
    private let stopping = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)
    private let log: @Sendable (String) -> Void

    /// Binds the handler in `context` and starts its thread.
    public init(context: ZMQContext, allowed: Set<[UInt8]>,
                log: @escaping @Sendable (String) -> Void = { FileHandle.standardError.write(Data("[zap] \($0)\n".utf8)) }) throws(ZMQError) {
        self.allowed = Mutex(allowed)
        self.log = log
        let socket = try ZMQSocket(context, type: .rep, linger: 0)
        try socket.bind(Self.endpoint)
        let thread = Thread { [self] in
            serve(socket)
            socket.close()
            finished.signal()
        }
        thread.name = "dots-zap"
        thread.start()
    }

    /// Replaces the allow-list (a worker added or revoked); applies to handshakes from now on.
    public func setAllowed(_ keys: Set<[UInt8]>) { allowed.withLock { $0 = keys } }

    public var accepted: Int { counts.withLock { $0.accepted } }
    public var denied: Int { counts.withLock { $0.denied } }

    /// Stops the thread and waits for it (at most ~100 ms).
    public func stop() {
        guard !stopping.exchange(true, ordering: .acquiringAndReleasing) else { return }
        finished.wait()
    }

    deinit { stop() }

    private func serve(_ socket: ZMQSocket) {
        var lastLog = ContinuousClock.now - .seconds(60)
        while !stopping.load(ordering: .acquiring) {
            let request: [[UInt8]]
            do {
                guard let r = try socket.receive(timeout: .milliseconds(100)) else { continue }
                request = r
            } catch {
                return  // context terminated
            }
            // version, request id, domain, address, identity, mechanism, credentials…
            guard request.count >= 6 else { continue }
            let requestID = request[1]
            let mechanism = String(decoding: request[5], as: UTF8.self)
            let key = request.count > 6 ? request[6] : []
            let ok = mechanism == "CURVE" && key.count == 32 && allowed.withLock { $0.contains(key) }
            counts.withLock { ok ? ($0.accepted += 1) : ($0.denied += 1) }
            if !ok, ContinuousClock.now - lastLog > .seconds(10) {
                lastLog = .now
                let who = key.count == 32 ? Z85.encode(key) : "no key"
                log("refused a \(mechanism) connection from \(String(decoding: request[3], as: UTF8.self)) (\(who)); \(denied) refused so far")
            }
            let reply: [[UInt8]] = [Array("1.0".utf8), requestID, Array((ok ? "200" : "400").utf8),
                                    Array((ok ? "OK" : "key not on the allow-list").utf8),
                                    ok ? Array(Z85.encode(key).utf8) : [], []]
            _ = try? socket.send(reply)
        }
    }
}
