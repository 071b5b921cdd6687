/// The sockets of a Dots cluster, each named after its job and the zguide pattern it uses. The binding
/// side is the stable one (coordinator or learner); workers connect, so they can come and go.
public enum Channel: String, Sendable, CaseIterable {
    /// Pipeline (PUSH→PULL): actors push rollout groups straight to the learner (the data plane). PUSH
    /// blocks at its high-water mark instead of dropping, so a slow learner slows actors down; the single
    /// PULL fair-queues among all actors.
    case rollouts
    /// ROUTER/DEALER, credit-based: an actor asks for work with its capacity and gets at most that much,
    /// so fast actors ask more often and slow ones are never flooded (PUSH round-robin would give each
    /// the same share regardless of speed).
    case assignment
    /// ROUTER/DEALER snapshot (the Clone pattern's first half): a joining or lagging worker fetches the
    /// current weights here, because PUB/SUB loses whatever was sent before a subscriber joined.
    case weights
    /// PUB/SUB, announcements only: new weights versions (chunked) and control commands. Anything missed
    /// here is recovered through `weights` (a gap in the chunks) or a later announcement.
    case announce
    /// Pipeline: the learner pushes each new weights version to the coordinator.
    case updates
    /// Pipeline: every process pushes heartbeats and stats to the coordinator; senders never block on it.
    case stats

    /// The role that binds this channel.
    public var binder: Role { self == .rollouts ? .learner : .coordinator }

    public var bindType: SocketType {
        switch self {
        case .rollouts, .updates, .stats: .pull
        case .assignment, .weights: .router
        case .announce: .pub
        }
    }

    public var connectType: SocketType {
        switch self {
        case .rollouts, .updates, .stats: .push
        case .assignment, .weights: .dealer
        case .announce: .sub
        }
    }

    /// The zguide's name for the pattern.
    public var pattern: String {
        switch self {
        case .rollouts, .updates, .stats: "pipeline (PUSH→PULL)"
        case .assignment: "credit-based ROUTER/DEALER"
        case .weights: "Clone snapshot (ROUTER/DEALER)"
        case .announce: "publish-subscribe (PUB→SUB)"
        }
    }

    /// The options each side gets, chosen for the pitfalls the zguide lists (see docs/protocol.md).
    public func options(binding: Bool, limits: DecodeLimits = .standard) -> [SocketOption] {
        // Dead peers (a killed actor, a pulled cable) are noticed within ~6 s.
        var options: [SocketOption] = [.heartbeat(interval: 2000, timeout: 6000, ttl: 6000)]
        let receives = binding ? bindType != .pub : connectType != .push
        if receives { options.append(.maxMessageSize(Int64(limits.maxMessageBytes))) }
        switch (self, binding) {
        case (.rollouts, true): options.append(.receiveHighWaterMark(1000))
        // Never queue on a connection that is not up: a message would wait there for a learner that may
        // never come back, instead of blocking the actor.
        case (.rollouts, false), (.updates, false): options += [.sendHighWaterMark(100), .immediate(true)]
        case (.assignment, true), (.weights, true): options.append(.routerMandatory(true))
        case (.announce, false): options.append(.subscribe(WireCodec.topicPrefix))
        case (.stats, false): options += [.sendHighWaterMark(10), .immediate(true)]
        default: break
        }
        return options
    }
}

extension WireCodec {
    /// "DOTS" and this protocol version: a SUB subscribed to it hears every kind this build can decode.
    public static var topicPrefix: [UInt8] { Array(topic(.rolloutGroup).prefix(6)) }
}
