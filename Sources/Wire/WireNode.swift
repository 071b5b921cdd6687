import Foundation

/// The CURVE keys one process uses.
public struct WireSecurity: Sendable {
    /// The binding side's pair; only where the coordinator or learner runs.
    public var serverKeys: CurveKeyPair?
    /// This host's pair, used for every socket it connects.
    public var clientKeys: CurveKeyPair
    /// What connecting sockets expect the binding side to prove it holds.
    public var serverPublicKey: [UInt8]
    /// Client public keys the ZAP handler lets in.
    public var allowed: Set<[UInt8]>

    public init(serverKeys: CurveKeyPair?, clientKeys: CurveKeyPair, serverPublicKey: [UInt8], allowed: Set<[UInt8]>) {
        self.serverKeys = serverKeys
        self.clientKeys = clientKeys
        self.serverPublicKey = serverPublicKey
        self.allowed = allowed
    }

    /// Keys for a process on `host`, from the files cluster.conf names (relative paths are relative to
    /// `baseDirectory`, normally the folder of cluster.conf). Nil when `security.curve` is off.
    ///
    /// - Parameter server: whether this process binds (coordinator, learner): only then is the server
    ///   secret key read, so worker hosts never need it.
    public static func load(_ config: ClusterConfig, host: String, baseDirectory: String, server: Bool) throws(KeyError) -> WireSecurity? {
        guard config.security.curve else { return nil }
        func path(_ p: String) -> String { p.hasPrefix("/") ? p : (baseDirectory as NSString).appendingPathComponent(p) }
        guard let me = config.host(named: host) else { throw KeyError("cluster.conf has no host named \(host)") }
        guard let secret = me.secretKey, let serverPublic = config.security.serverPublicKey else {
            throw KeyError("cluster.conf names no key files for host \(host)")
        }
        let clientKeys = try KeyFiles.readSecret(path(secret))
        var serverKeys: CurveKeyPair?
        if server {
            guard let s = config.security.serverSecretKey else { throw KeyError("cluster.conf names no server secret key") }
            serverKeys = try KeyFiles.readSecret(path(s))
        }
        var allowed: Set<[UInt8]> = []
        if let list = config.security.allowedKeys {
            allowed = try KeyFiles.readAllowList(path(list))
        } else {
            for h in config.hosts { if let p = h.publicKey { allowed.insert(try KeyFiles.readPublic(path(p))) } }
        }
        return WireSecurity(serverKeys: serverKeys, clientKeys: clientKeys,
                            serverPublicKey: try KeyFiles.readPublic(path(serverPublic)), allowed: allowed)
    }

    /// Throwaway keys for a single-host run (`dots launch` may make them per run): one server pair and
    /// one client pair shared by every process, the client's key the whole allow-list.
    public static func ephemeral() throws(KeyError) -> WireSecurity {
        let server = try CurveKeyPair.generate()
        let client = try CurveKeyPair.generate()
        return WireSecurity(serverKeys: server, clientKeys: client, serverPublicKey: server.publicKey,
                            allowed: [client.publicKey])
    }
}

/// One process's view of the cluster's sockets: a context, the keys, the ZAP handler, and sockets made
/// for each `Channel` with its pattern's socket types and options. Roles ask it for sockets instead of
/// assembling endpoints and options themselves.
public final class WireNode: Sendable {
    public let context: ZMQContext
    public let config: ClusterConfig
    public let security: WireSecurity?
    public let limits: DecodeLimits
    /// Running when this process binds with CURVE.
    public let zap: ZAPHandler?

    public init(config: ClusterConfig, security: WireSecurity?, limits: DecodeLimits = .standard) throws(ZMQError) {
        self.context = try ZMQContext()
        self.config = config
        self.security = security
        self.limits = limits
        // The handler must be bound before any server socket: without one libzmq lets every key in.
        if let security, security.serverKeys != nil {
            zap = try ZAPHandler(context: context, allowed: security.allowed)
        } else {
            zap = nil
        }
    }

    private var curve: Bool { security != nil && config.string("endpoints.transport") == "tcp" }

    /// The binding side of a channel (coordinator or learner), bound to its endpoint.
    public func bind(_ channel: Channel, endpoint: String? = nil) throws(ZMQError) -> ZMQSocket {
        let socket = try ZMQSocket(context, type: channel.bindType)
        try socket.set(channel.options(binding: true, limits: limits))
        if curve, let security {
            guard let keys = security.serverKeys else {
                throw ZMQError("bind \(channel.rawValue) with CURVE: this process has no server key", code: EINVAL)
            }
            try socket.set([.zapDomain("dots"), .curveServer(secretKey: keys.secretKey)])
        }
        if config.string("endpoints.transport") == "ipc" {
            try? FileManager.default.createDirectory(atPath: config.string("endpoints.ipc_dir") ?? "/tmp/dots",
                                                     withIntermediateDirectories: true)
        }
        try socket.bind(endpoint ?? config.bindEndpoint(channel))
        return socket
    }

    /// The connecting side of a channel (workers, and the learner towards the coordinator).
    ///
    /// - Parameter identity: the routing id a ROUTER sees (DEALER channels); by convention the sender id.
    public func connect(_ channel: Channel, identity: UInt64? = nil, endpoint: String? = nil) throws(ZMQError) -> ZMQSocket {
        let socket = try ZMQSocket(context, type: channel.connectType)
        try socket.set(channel.options(binding: false, limits: limits))
        if let identity { try socket.set(.routingID(withUnsafeBytes(of: identity.littleEndian, Array.init))) }
        if curve, let security {
            try socket.set(.curveClient(publicKey: security.clientKeys.publicKey, secretKey: security.clientKeys.secretKey,
                                        serverKey: security.serverPublicKey))
        }
        try socket.connect(endpoint ?? config.connectEndpoint(channel))
        return socket
    }

    /// Stops the ZAP thread; sockets close as they are released.
    public func close() { zap?.stop() }
}
