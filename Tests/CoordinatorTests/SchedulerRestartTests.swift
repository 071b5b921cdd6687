import Coordinator
import Testing

/// A restarted coordinator rebuilds its step clock from the learner's weights version and, with the same
/// seed, draws exactly the prompts an uninterrupted one would have (replay's smaller fresh share included).
@Test(arguments: [0, 1])
func fastForwardDrawsWhatAnUninterruptedCoordinatorWould(maxLag: Int) {
    let ids = (0..<37).map(UInt64.init)
    let fresh: @Sendable (Int) -> Int = { $0 < 2 ? 8 : 4 }
    var uninterrupted = Scheduler(promptIDs: ids, batchSize: 8, maxLag: maxLag, seed: 9, promptsForStep: fresh)
    var issued: [Int: [UInt64]] = [:]
    for v in 0...20 {
        uninterrupted.advance(toVersion: v)
        while case let items = uninterrupted.grant(actor: 1, capacity: 3), !items.isEmpty {
            for item in items { issued[item.step, default: []].append(item.promptID) }
        }
    }
    var restarted = Scheduler(promptIDs: ids, batchSize: 8, maxLag: maxLag, seed: 9, promptsForStep: fresh)
    restarted.fastForward(toStep: 13)
    restarted.advance(toVersion: 13)
    #expect(restarted.queue.first?.step == 13)
    var again: [Int: [UInt64]] = [:]
    for v in 13...20 {
        restarted.advance(toVersion: v)
        while case let items = restarted.grant(actor: 1, capacity: 3), !items.isEmpty {
            for item in items { again[item.step, default: []].append(item.promptID) }
        }
    }
    for step in 13...20 { #expect(again[step] == issued[step], "step \(step)") }
}

@Test func fastForwardOnlyBeforeAnythingWasQueued() {
    var s = Scheduler(promptIDs: (0..<10).map(UInt64.init), batchSize: 2, maxLag: 0, seed: 1)
    s.advance(toVersion: 0)
    s.fastForward(toStep: 5)
    #expect(s.nextStep == 1 && s.queue.map(\.step) == [0, 0])
}
