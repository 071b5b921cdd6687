import Foundation
import Testing
import Wire
@testable import Coordinator

private func group(_ prompt: UInt64, version: UInt64 = 5, g: Int = 4, passes: Int = 2, actor: UInt64 = 1000) -> RolloutGroup {
    RolloutGroup(promptID: prompt, weightsVersion: version, actorID: actor, promptTokens: [1, 2],
                 completions: (0..<g).map { Completion(tokens: [3], logProbs: [-0.5], reward: $0 < passes ? 1 : 0) },
                 generationSeconds: 0.1)
}

@Suite struct ReferenceWorkTests {
    func work() -> ReferenceWork {
        ReferenceWork(round: 3, firstStep: 6, weightsVersion: 5, promptIDs: [10, 11, 12, 13, 14], groupSize: 4)
    }

    @Test func grantsInDrawOrderAndCompletesWhenEveryGroupIsIn() throws {
        var w = work()
        #expect(w.grant(actor: 1000, capacity: 2) == [10, 11])
        #expect(w.grant(actor: 1001, capacity: 8) == [12, 13, 14])
        for p: UInt64 in [12, 13, 14] { #expect(try w.accept(group(p, actor: 1001))) }
        #expect(try w.accept(group(10)))
        #expect(try w.accept(group(11, version: 6)))  // newer weights label difficulty as well
        #expect(w.isComplete)
        #expect(w.groups.map(\.promptID) == [10, 11, 12, 13, 14])
        #expect(w.groups.map(\.difficulty) == [0.5, 0.5, 0.5, 0.5, 0.5])
    }

    @Test func aDeadActorsPromptsGoBackToTheFrontAndADuplicateIsHarmless() throws {
        var w = work()
        _ = w.grant(actor: 1000, capacity: 2)
        #expect(try w.accept(group(10)))
        #expect(w.held(by: 1000) == [11])
        #expect(w.release(1000) == 1)
        #expect(w.queue == [11, 12, 13, 14])
        // The next request of a live actor gives back what it did not return (a reconnect lost it).
        #expect(w.grant(actor: 1001, capacity: 1) == [11])
        #expect(w.grant(actor: 1001, capacity: 1) == [11])
        #expect(try !w.accept(group(10)))
    }

    @Test func refusesGroupsThatAreNotTheRounds() {
        var w = work()
        _ = w.grant(actor: 1000, capacity: 5)
        #expect(throws: Rejection(.unknownPromptID, "reference group for prompt 99, not a reference prompt of round 3")) { try w.accept(group(99)) }
        do { _ = try w.accept(group(10, version: 4)); Issue.record("accepted a stale group") } catch { #expect(error.reason == .staleVersion) }
        do { _ = try w.accept(group(10, g: 3)); Issue.record("accepted a group of the wrong size") } catch { #expect(error.reason == .invalidField) }
        #expect(w.results.isEmpty)
    }
}

@Suite struct SelectionStateTests {
    func round(_ n: Int, steps: [Int], fed: [RolloutGroup] = []) -> SelectionState.Round {
        SelectionState.Round(round: n, steps: steps, weightsVersion: UInt64(steps[0]),
                             prompts: steps.map { s in [UInt64(100 * s), UInt64(100 * s + 1)] }, fed: fed)
    }

    @Test func savesAtomicallyAndRestoresExactly() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("selection-state-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(try SelectionState.load(runDir: dir) == nil)
        var state = SelectionState()
        state.record(round(0, steps: [0, 1], fed: [group(7, version: 0)]), keepFrom: 0)
        state.record(round(1, steps: [2, 3]), keepFrom: 0)
        try state.save(runDir: dir)
        let back = try #require(try SelectionState.load(runDir: dir))
        #expect(back == state)
        #expect(back.rounds[0].fed[0].completions.map(\.reward) == [1, 1, 0, 0])
        // No temporary file is left beside it.
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == [SelectionState.fileName])
        // A learner at version 1 has finished step 0 only: both rounds have steps to do; at 2, round 1 only.
        #expect(back.unfinished(learnerAt: 1).map(\.round) == [0, 1])
        #expect(back.unfinished(learnerAt: 2).map(\.round) == [1])
        #expect(back.unfinished(learnerAt: 4).isEmpty)
    }

    @Test func aRoundReplacesOneOverTheSameStepsAndOldRoundsAreForgotten() {
        var state = SelectionState()
        state.record(round(0, steps: [0, 1]), keepFrom: 0)
        state.record(round(1, steps: [2, 3]), keepFrom: 0)
        var again = round(1, steps: [2, 3])
        again.prompts = [[5], [6]]
        state.record(again, keepFrom: 0)
        #expect(state.rounds.map(\.round) == [0, 1] && state.rounds[1].prompts == [[5], [6]])
        state.record(round(2, steps: [4, 5]), keepFrom: 2)
        #expect(state.rounds.map(\.round) == [1, 2])
    }

    @Test func anUnreadableStateIsOneClearError() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("selection-state-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try Data("{\"rounds\": [{\"round\": 0}]}".utf8).write(to: dir.appendingPathComponent(SelectionState.fileName))
        do { _ = try SelectionState.load(runDir: dir); Issue.record("loaded a broken state") } catch {
            #expect("\(error)".contains("move it aside to select afresh"))
        }
    }
}
