import Foundation
import Model

/// Rollout replay (the paper's RR): a FIFO buffer of capacity C holding only *informative* groups (mean
/// reward strictly between 0 and 1 — the others have zero advantage and no gradient), de-duplicated by
/// prompt (the latest group of a prompt replaces the older one). Each step after the first round trains on
/// δ·B fresh groups plus (1 − δ)·B groups drawn uniformly without replacement from here; the decoupled
/// PPO-clip loss corrects for their age with the behaviour log-probs stored in each group.
public struct ReplayBuffer: Sendable {
    /// C.
    public let capacity: Int
    public private(set) var groups: [TrainingGroup] = []
    var rng: SplitMix64

    public init(capacity: Int, seed: UInt64) {
        precondition(capacity > 0)
        self.capacity = capacity
        rng = SplitMix64(seed: seed)
    }

    public var count: Int { groups.count }

    /// Adds the step's fresh groups (after the step): informative ones only, newest last.
    public mutating func add(_ fresh: [TrainingGroup]) {
        for g in fresh where !g.isUninformative {
            groups.removeAll { $0.promptID == g.promptID }
            groups.append(g)
        }
        if groups.count > capacity { groups.removeFirst(groups.count - capacity) }
    }

    /// Up to `k` groups at random, without replacement (fewer when the buffer holds fewer).
    public mutating func sample(_ k: Int) -> [TrainingGroup] {
        var idx = Array(groups.indices)
        idx.shuffle(using: &rng)
        return idx.prefix(max(0, k)).sorted().map { groups[$0] }
    }
}


// MARK: persistence (part of the learner's checkpoint, so a resumed run replays what it would have)

struct StoredGroup: Codable {
    var promptID: UInt64, weightsVersion: UInt64, actorID: UInt64, generationSeconds: Double
    var promptTokens: [Int32]
    var tokens: [[Int32]], logProbs: [[Float]], rewards: [Float]
}

struct StoredReplay: Codable {
    var capacity: Int
    var rng: SplitMix64
    var groups: [StoredGroup]
}

extension ReplayBuffer {
    func save(to url: URL) throws {
        let stored = StoredReplay(capacity: capacity, rng: rng, groups: groups.map {
            StoredGroup(promptID: $0.promptID, weightsVersion: $0.weightsVersion, actorID: $0.actorID,
                        generationSeconds: $0.generationSeconds, promptTokens: $0.promptTokens,
                        tokens: $0.completions.map(\.tokens), logProbs: $0.completions.map(\.logProbs),
                        rewards: $0.completions.map(\.reward))
        })
        try JSONEncoder().encode(stored).write(to: url, options: .atomic)
    }

    static func load(from url: URL) throws -> ReplayBuffer {
        guard let data = try? Data(contentsOf: url), let s = try? JSONDecoder().decode(StoredReplay.self, from: data) else {
            throw ModelError.checkpoint("\(url.path) is missing or not a replay buffer; cannot resume.")
        }
        var b = ReplayBuffer(capacity: s.capacity, seed: 0)
        b.rng = s.rng
        b.groups = s.groups.map { g in
            TrainingGroup(promptID: g.promptID, promptTokens: g.promptTokens,
                          completions: (0..<g.rewards.count).map { (g.tokens[$0], g.logProbs[$0], g.rewards[$0]) },
                          weightsVersion: g.weightsVersion, actorID: g.actorID, generationSeconds: g.generationSeconds)
        }
        return b
    }
}
