import Coordinator
import Testing

@Test func synchronousSchedulingIssuesOneStepPerVersion() {
    var s = Scheduler(promptIDs: (0..<100).map(UInt64.init), batchSize: 4, maxLag: 0, seed: 1)
    s.advance(toVersion: 0)
    #expect(s.queue.count == 4 && s.queue.allSatisfy { $0.step == 0 })
    let a = s.grant(actor: 1000, capacity: 3), b = s.grant(actor: 1001, capacity: 3)
    #expect(a.count == 3 && b.count == 1)
    #expect(s.grant(actor: 1002, capacity: 3).isEmpty)  // nothing until the learner's next version
    s.advance(toVersion: 1)
    #expect(s.queue.count == 4 && s.queue.allSatisfy { $0.step == 1 })
    #expect(Set((a + b).map(\.promptID)).count == 4)
}

@Test func lagOneOverlapsTheNextStep() {
    var s = Scheduler(promptIDs: (0..<100).map(UInt64.init), batchSize: 2, maxLag: 1, seed: 1)
    s.advance(toVersion: 0)
    #expect(s.queue.map(\.step) == [0, 0, 1, 1])
    // A grant never mixes steps, so a group's weights version is one version.
    #expect(s.grant(actor: 1, capacity: 3).map(\.step) == [0, 0])
}

@Test func deadActorsWorkIsReissuedFirst() {
    var s = Scheduler(promptIDs: (0..<100).map(UInt64.init), batchSize: 4, maxLag: 0, seed: 2)
    s.advance(toVersion: 0)
    let held = s.grant(actor: 7, capacity: 2)
    s.actorDied(7, currentVersion: 0)
    #expect(s.reassigned == 2)
    #expect(Array(s.grant(actor: 8, capacity: 2)) == held)
    // A request means the previous grant is done: once the queue is drained and actor 8 asks again
    // (getting nothing), its death re-queues nothing.
    #expect(s.grant(actor: 8, capacity: 2).count == 2)
    #expect(s.grant(actor: 8, capacity: 2).isEmpty)
    s.actorDied(8, currentVersion: 0)
    #expect(s.queue.isEmpty)
}

@Test func rewindReissuesFromTheResumedStep() {
    var s = Scheduler(promptIDs: (0..<100).map(UInt64.init), batchSize: 2, maxLag: 0, seed: 3)
    s.advance(toVersion: 5)
    _ = s.grant(actor: 1, capacity: 1)
    s.rewind(toVersion: 4)
    #expect(s.outstanding.isEmpty && s.queue.isEmpty && s.nextStep == 4)
    s.advance(toVersion: 4)
    #expect(s.queue.map(\.step) == [4, 4])
    #expect(s.nextStep == 5)
}

/// After a rewind the coordinator re-plans the steps a saved selection round chose, then advances: the
/// first step issued gets its planned prompts, not a uniform draw (the bug: rewind queued it at once).
@Test func aRewoundStepGetsItsRePlannedPrompts() {
    var s = Scheduler(promptIDs: (0..<100).map(UInt64.init), batchSize: 2, maxLag: 0, seed: 3)
    s.plan(step: 5, prompts: [70, 71])
    s.advance(toVersion: 5)
    s.rewind(toVersion: 5)
    s.plan(step: 5, prompts: [70, 71])
    s.advance(toVersion: 5)
    #expect(s.queue.map(\.promptID) == [70, 71])
}

@Test func plannedPromptsReplaceTheUniformDraw() {
    var s = Scheduler(promptIDs: (0..<100).map(UInt64.init), batchSize: 3, maxLag: 0, seed: 1)
    s.plan(step: 0, prompts: [7, 8, 9])
    s.plan(step: 1, prompts: [5])  // fewer than B: the rest is drawn uniformly
    s.advance(toVersion: 0)
    #expect(s.queue.map(\.promptID) == [7, 8, 9])
    _ = s.grant(actor: 1, capacity: 3)
    s.advance(toVersion: 1)
    #expect(s.queue.count == 3 && s.queue[0].promptID == 5)
    #expect(s.planned.isEmpty)
}

@Test func exactPlansIssueOnlyThePlannedPrompts() {
    var s = Scheduler(promptIDs: (0..<100).map(UInt64.init), batchSize: 4, maxLag: 0, seed: 1)
    s.plan(step: 0, prompts: [7], exact: true)  // three of step 0's groups come from the coordinator
    s.advance(toVersion: 0)
    #expect(s.queue.map(\.promptID) == [7])
}
