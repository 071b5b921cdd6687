import Foundation
import Wire

/// One DOTS selection round's K reference prompts farmed out to the actors
/// (`training.reference_rollouts = "actors"`), without sockets so it is testable alone.
///
/// Actors take reference prompts through the normal assignment path (grants with `work = .reference`,
/// before any training work) and send each group back on their `assignment` DEALER. A DEALER delivers in
/// order, so when an actor asks for work again, any reference prompt it held and did not return is lost
/// (a reconnect dropped it): it goes back to the front of the queue, as does the work of a dead actor.
public struct ReferenceWork: Sendable {
    /// The selection round and the first step it selects for.
    public let round: Int
    public let firstStep: Int
    /// The weights version the round labels difficulty with; older groups are refused.
    public let weightsVersion: UInt64
    /// The K reference prompts, in the round's draw order.
    public let promptIDs: [UInt64]
    /// G.
    public let groupSize: Int
    public private(set) var queue: [UInt64]
    public private(set) var outstanding: [UInt64: [UInt64]] = [:]
    public private(set) var results: [UInt64: RolloutGroup] = [:]
    /// When the round's reference prompts were first offered.
    public let started: Date

    public init(round: Int, firstStep: Int, weightsVersion: UInt64, promptIDs: [UInt64], groupSize: Int, started: Date = Date()) {
        self.round = round
        self.firstStep = firstStep
        self.weightsVersion = weightsVersion
        self.promptIDs = promptIDs
        self.groupSize = groupSize
        self.started = started
        queue = promptIDs
    }

    public var isComplete: Bool { results.count == Set(promptIDs).count }

    /// The groups in the order of `promptIDs` (complete rounds only).
    public var groups: [RolloutGroup] { promptIDs.compactMap { results[$0] } }

    /// An actor's request: what it held and did not return goes back to the queue; it gets up to
    /// `capacity` reference prompts.
    public mutating func grant(actor: UInt64, capacity: Int) -> [UInt64] {
        release(actor)
        let items = Array(queue.prefix(max(0, capacity)))
        queue.removeFirst(items.count)
        if !items.isEmpty { outstanding[actor] = items }
        return items
    }

    /// Puts the reference prompts `actor` holds and has not returned back at the front of the queue;
    /// returns how many (the requeue path of a dead, restarted or reconnected actor).
    @discardableResult
    public mutating func release(_ actor: UInt64) -> Int {
        guard let held = outstanding.removeValue(forKey: actor) else { return 0 }
        let lost = held.filter { results[$0] == nil && !queue.contains($0) }
        queue.insert(contentsOf: lost, at: 0)
        return lost.count
    }

    /// Prompts `actor` holds that have no result yet.
    public func held(by actor: UInt64) -> [UInt64] { (outstanding[actor] ?? []).filter { results[$0] == nil } }

    /// A group an actor sent back. Returns false for a second group of a prompt already labelled (a
    /// re-queued prompt done twice: harmless); throws for a group that is not this round's.
    public mutating func accept(_ group: RolloutGroup) throws(Rejection) -> Bool {
        guard promptIDs.contains(group.promptID) else {
            throw Rejection(.unknownPromptID, "reference group for prompt \(group.promptID), not a reference prompt of round \(round)")
        }
        guard group.weightsVersion >= weightsVersion else {
            throw Rejection(.staleVersion, "reference group of version \(group.weightsVersion) for round \(round), which needs \(weightsVersion) or newer")
        }
        guard group.completions.count == groupSize else {
            throw Rejection(.invalidField, "reference group of prompt \(group.promptID) has \(group.completions.count) completions, G = \(groupSize)")
        }
        guard results[group.promptID] == nil else { return false }
        results[group.promptID] = group
        queue.removeAll { $0 == group.promptID }
        return true
    }
}

/// d = 1 − mean reward of a group: the label of a reference prompt.
extension RolloutGroup {
    var difficulty: Float {
        completions.isEmpty ? 1 : 1 - completions.map(\.reward).reduce(0, +) / Float(completions.count)
    }
    var isInformative: Bool { let d = difficulty; return d > 0 && d < 1 }
}
