import Foundation
@testable import Learner
import Wire
import Testing

func group(_ id: UInt64, rewards: [Float], version: UInt64 = 0) -> TrainingGroup {
    TrainingGroup(promptID: id, promptTokens: [1, 5], completions: rewards.map { ([6, 2], [-0.5, -0.1], $0) },
                  weightsVersion: version, actorID: 1000, generationSeconds: 0.1)
}

@Test func keepsOnlyInformativeGroups() {
    var b = ReplayBuffer(capacity: 10, seed: 1)
    b.add([group(1, rewards: [1, 1]), group(2, rewards: [0, 0]), group(3, rewards: [1, 0])])
    #expect(b.groups.map(\.promptID) == [3])
}

@Test func isFIFOWithCapacity() {
    var b = ReplayBuffer(capacity: 3, seed: 1)
    for id in 1...5 { b.add([group(UInt64(id), rewards: [0, 1])]) }
    #expect(b.groups.map(\.promptID) == [3, 4, 5])
}

@Test func deduplicatesByPromptKeepingTheLatest() {
    var b = ReplayBuffer(capacity: 3, seed: 1)
    b.add([group(1, rewards: [0, 1], version: 0), group(2, rewards: [0, 1], version: 0)])
    b.add([group(1, rewards: [1, 0], version: 4)])
    #expect(b.groups.map(\.promptID) == [2, 1])
    #expect(b.groups.last?.weightsVersion == 4)
}

@Test func samplesWithoutReplacementAndSaysWhenShort() {
    var b = ReplayBuffer(capacity: 10, seed: 1)
    b.add((1...6).map { group(UInt64($0), rewards: [0, 1]) })
    let s = b.sample(4)
    #expect(s.count == 4 && Set(s.map(\.promptID)).count == 4)
    #expect(b.sample(20).count == 6)
}

@Test func survivesACheckpointExactly() throws {
    var b = ReplayBuffer(capacity: 4, seed: 9)
    b.add((1...4).map { group(UInt64($0), rewards: [0, 1], version: UInt64($0)) })
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("replay-\(UUID().uuidString).json")
    try b.save(to: url)
    var restored = try ReplayBuffer.load(from: url)
    #expect(restored.groups.map(\.promptID) == b.groups.map(\.promptID))
    // The same draws after the resume as without it.
    #expect(restored.sample(2).map(\.promptID) == b.sample(2).map(\.promptID))
}

@Test func freshCountFollowsDelta() {
    #expect(freshGroupsPerStep(step: 0, batchSize: 32, replay: true, delta: 0.5, roundLength: 2) == 32)
    #expect(freshGroupsPerStep(step: 2, batchSize: 32, replay: true, delta: 0.5, roundLength: 2) == 16)
    #expect(freshGroupsPerStep(step: 5, batchSize: 32, replay: false, delta: 0.5, roundLength: 2) == 32)
}
