import Foundation
import Logging
import Synchronization

/// Why an incoming message was refused. The decoder reports the first five; later stages (the learner,
/// the coordinator) count their own refusals through the same `RejectCounter`.
public enum RejectReason: String, Sendable, CaseIterable, CustomStringConvertible {
    /// The header does not start with "DOTS": not our protocol at all.
    case badMagic = "bad_magic"
    /// A protocol version this build does not speak.
    case unsupportedVersion = "unsupported_version"
    case unknownKind = "unknown_kind"
    /// A frame, or the frame list, is shorter than the layout needs.
    case truncated
    /// A length in the header or body disagrees with the bytes actually there.
    case lengthMismatch = "length_mismatch"
    /// The message, or a declared count, is larger than `DecodeLimits` allows.
    case oversized
    /// NaN or ±Inf where a finite number is required.
    case nonFinite = "non_finite"
    /// A field outside its domain: a reserved field not zero, an unknown enum value, bad UTF-8, …
    case invalidField = "invalid_field"
    /// A prompt id the dataset does not have (checked by the learner/coordinator, not the decoder).
    case unknownPromptID = "unknown_prompt_id"
    /// Rollouts older than `max_lag` versions (counted by the learner).
    case staleVersion = "stale_version"

    public var description: String { rawValue }
}

/// A refused message: the reason, for counting, and one line of detail, for the log.
public struct Rejection: Error, Sendable, Equatable, CustomStringConvertible {
    public let reason: RejectReason
    public let detail: String

    public init(_ reason: RejectReason, _ detail: String) {
        self.reason = reason
        self.detail = detail
    }

    public var description: String { "rejected (\(reason)): \(detail)" }
}

/// Caps on what the decoder accepts, checked before anything is allocated, so a hostile or corrupt
/// length field can never make a process allocate gigabytes.
public struct DecodeLimits: Sendable, Equatable {
    /// All frames of one message together. Also set as the sockets' ZMQ_MAXMSGSIZE (per frame).
    public var maxMessageBytes: Int = 256 << 20
    /// G.
    public var maxGroupSize: Int = 1024
    /// Tokens in one prompt or one completion.
    public var maxSequenceTokens: Int = 1 << 20
    /// Prompt ids in one assignment.
    public var maxPromptsPerGrant: Int = 1 << 16
    /// Entries in one stats message.
    public var maxStatsEntries: Int = 4096
    /// Labels in one stats message.
    public var maxLabels: Int = 64
    /// A whole model's parameter bytes (the sum over chunks).
    public var maxWeightsBytes: UInt64 = 64 << 30

    public init() {}

    public static let standard = DecodeLimits()
}

/// Counts rejects by reason and logs one line per reason, at most once per `logInterval`, with the
/// number suppressed since, so a flood of garbage neither fills the disk nor hides in silence.
/// Thread-safe: every receiving thread of a process can share one.
public final class RejectCounter: Sendable {
    private struct State {
        var counts: [RejectReason: Int] = [:]
        var lastLogged: [RejectReason: ContinuousClock.Instant] = [:]
        var suppressed: [RejectReason: Int] = [:]
    }

    private let state = Mutex(State())
    private let logInterval: Duration
    private let log: @Sendable (String) -> Void

    /// - Parameters:
    ///   - name: who is counting ("learner rollouts"), at the start of every log line.
    ///   - log: where lines go; by default a warning through the process's logger.
    public init(name: String, logInterval: Duration = .seconds(10),
                log: (@Sendable (String) -> Void)? = nil) {
        self.logInterval = logInterval
        let logger = Logger(label: "dots.rejects")
        self.log = log ?? { line in logger.warning("\(line)", metadata: ["counter": "\(name)"]) }
    }

    /// Counts one reject and maybe logs it.
    public func record(_ rejection: Rejection) {
        let now = ContinuousClock.now
        let line: String? = state.withLock { s in
            s.counts[rejection.reason, default: 0] += 1
            if let last = s.lastLogged[rejection.reason], now - last < logInterval {
                s.suppressed[rejection.reason, default: 0] += 1
                return nil
            }
            s.lastLogged[rejection.reason] = now
            let hidden = s.suppressed.removeValue(forKey: rejection.reason) ?? 0
            let total = s.counts[rejection.reason, default: 0]
            return "\(rejection) (total \(total)\(hidden > 0 ? ", \(hidden) not logged" : ""))"
        }
        if let line { log(line) }
    }

    public func count(_ reason: RejectReason) -> Int { state.withLock { $0.counts[reason, default: 0] } }
    public var counts: [RejectReason: Int] { state.withLock { $0.counts } }
    public var total: Int { state.withLock { $0.counts.values.reduce(0, +) } }
}
