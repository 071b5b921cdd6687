import Foundation
import Model

/// The coordinator's step clock and work queue, without sockets (so it is testable alone).
///
/// Step s's B prompts may be handed out once the learner's weights version v satisfies s ≤ v + max_lag
/// (0 = synchronous GRPO). Actors ask with a capacity and get at most that many prompts (credit-based
/// flow); what an actor holds is outstanding until its next request, and goes back to the front of the
/// queue if the actor dies.
public struct Scheduler: Sendable {
    public struct Item: Sendable, Equatable {
        public var promptID: UInt64
        public var step: Int
    }

    /// Prompts issued for step s (B, or δ·B once replay fills the rest).
    public let promptsForStep: @Sendable (Int) -> Int
    public let maxLag: Int
    private var order: [UInt64]
    private var cursor = 0
    private var rng: SplitMix64
    public private(set) var queue: [Item] = []
    public private(set) var outstanding: [UInt64: [Item]] = [:]
    /// The next step whose prompts have not been queued yet.
    public private(set) var nextStep = 0
    public private(set) var reassigned = 0
    /// Prompts chosen for a step by a selection round (DOTS); steps without a plan draw uniformly.
    public private(set) var planned: [Int: [UInt64]] = [:]
    /// Planned steps that get exactly their planned prompts (fewer than `promptsForStep`: the rest of the
    /// step's groups come from elsewhere, the coordinator's reference rollouts).
    private var exact: Set<Int> = []

    /// - Parameter promptIDs: the training prompts; uniform selection draws B a step from a shuffled
    ///   pass over them, reshuffled each epoch.
    public init(promptIDs: [UInt64], batchSize: Int, maxLag: Int, seed: UInt64,
                promptsForStep: (@Sendable (Int) -> Int)? = nil) {
        precondition(!promptIDs.isEmpty && batchSize > 0 && maxLag >= 0)
        self.promptsForStep = promptsForStep ?? { _ in batchSize }
        self.maxLag = maxLag
        order = promptIDs
        rng = SplitMix64(seed: seed)
        order.shuffle(using: &rng)
    }

    /// Training prompts are queued and not yet granted.
    public var hasQueuedWork: Bool { !queue.isEmpty }

    /// Queues every step the weights version now allows. `version` = number of updates done.
    public mutating func advance(toVersion version: Int) {
        // Steps already trained (e.g. after a learner resume) are never issued.
        nextStep = max(nextStep, version)
        while nextStep <= version + maxLag {
            let chosen = planned.removeValue(forKey: nextStep) ?? []
            let count = exact.remove(nextStep) != nil ? chosen.count : promptsForStep(nextStep)
            for i in 0..<count {
                queue.append(Item(promptID: i < chosen.count ? chosen[i] : draw(), step: nextStep))
            }
            nextStep += 1
        }
        planned = planned.filter { $0.key >= nextStep }
        exact = exact.filter { $0 >= nextStep }
        // Work for steps the learner has finished is obsolete.
        queue.removeAll { $0.step < version }
    }

    /// The next prompt of the uniform draw: a shuffled pass over all prompts, reshuffled each epoch.
    private mutating func draw() -> UInt64 {
        if cursor == order.count { cursor = 0; order.shuffle(using: &rng) }
        defer { cursor += 1 }
        return order[cursor]
    }

    /// A coordinator starting beside a learner already at `step` (the coordinator was restarted, or the
    /// whole run resumed): skips the prompts steps 0..<step drew, so from here on it issues exactly what
    /// an uninterrupted coordinator would have. The draw is a function of the seed and the step, so the
    /// coordinator needs no state of its own on disk. Only before anything was queued.
    public mutating func fastForward(toStep step: Int) {
        guard nextStep == 0, queue.isEmpty, step > 0 else { return }
        for s in 0..<step { for _ in 0..<promptsForStep(s) { _ = draw() } }
        nextStep = step
    }

    /// The learner resumed from an older checkpoint (or re-sent its weights): forget queued and outstanding
    /// work and plans; the next `advance` issues again from its step (with new prompts: the draw continues,
    /// it does not repeat). Nothing is queued here, so a caller can plan the steps first — a selection
    /// round's saved prompts — and they are issued as planned.
    public mutating func rewind(toVersion version: Int) {
        queue.removeAll()
        outstanding.removeAll()
        planned.removeAll()
        exact.removeAll()
        nextStep = version
    }

    /// Hands step `step` these prompts instead of uniform ones (a selection round's share of that step);
    /// when `exact`, only these, even if fewer than the step's count.
    public mutating func plan(step: Int, prompts: [UInt64], exact isExact: Bool = false) {
        planned[step] = prompts
        if isExact { exact.insert(step) } else { exact.remove(step) }
    }

    /// An actor's request: its previous grant is done; it gets up to `capacity` prompts of the oldest step.
    public mutating func grant(actor: UInt64, capacity: Int) -> [Item] {
        outstanding[actor] = nil
        guard let step = queue.first?.step else { return [] }
        var items: [Item] = []
        while items.count < capacity, let first = queue.first, first.step == step {
            items.append(queue.removeFirst())
        }
        outstanding[actor] = items
        return items
    }

    /// A dead actor's outstanding prompts go back to the front of the queue.
    public mutating func actorDied(_ actor: UInt64, currentVersion: Int) {
        guard let items = outstanding.removeValue(forKey: actor) else { return }
        let live = items.filter { $0.step >= currentVersion }
        reassigned += live.count
        queue.insert(contentsOf: live, at: 0)
    }
}
