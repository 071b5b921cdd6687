import Learner
import Testing

private func curve(_ accs: [Double], secondsPerStep: Double) -> [TimeToTarget.Point] {
    accs.enumerated().map { .init(step: 2 * $0.offset, seconds: Double(2 * $0.offset) * secondsPerStep, accuracy: $0.element) }
}

@Test func smoothingIsATrailingMean() {
    let s = TimeToTarget.smooth(curve([0, 0.3, 0.6, 0.3], secondsPerStep: 1), window: 2)
    #expect(zip(s.map(\.accuracy), [0, 0.15, 0.45, 0.45]).allSatisfy { abs($0 - $1) < 1e-12 })
    #expect(s.map(\.step) == [0, 2, 4, 6])
}

@Test func reachIsTheFirstSmoothedPointAtTheTarget() {
    let c = curve([0.2, 0.3, 0.4, 0.5, 0.4], secondsPerStep: 1)
    #expect(TimeToTarget.reach(c, target: 0.4)?.step == 4)
    #expect(TimeToTarget.reach(c, target: 0.6) == nil)
}

@Test func tableComparesStepsAndTimeAgainstTheBaseline() {
    // The baseline reaches its final 0.5 at step 8 (8 s); the other at step 4 but twice as fast a step (2 s).
    let runs = ["grpo": [curve([0.2, 0.3, 0.4, 0.45, 0.5], secondsPerStep: 1)],
                "fast": [curve([0.2, 0.4, 0.5, 0.5, 0.5], secondsPerStep: 0.5)],
                "never": [curve([0.2, 0.2, 0.2, 0.2, 0.2], secondsPerStep: 1)]]
    let (target, rows) = TimeToTarget.table(runs: runs, methods: ["grpo", "fast", "never"], baseline: "grpo", window: 1)
    #expect(target == 0.5)
    #expect(rows[0].meanSteps == 8 && rows[0].totalTimeSaved == 0)
    #expect(rows[1].meanSteps == 4 && rows[1].meanSeconds == 2)
    #expect(abs((rows[1].stepsSaved ?? 0) - 0.5) < 1e-12)
    #expect(abs((rows[1].perStepTimeSaved ?? 0) - 0.5) < 1e-12)
    #expect(abs((rows[1].totalTimeSaved ?? 0) - 0.75) < 1e-12)
    #expect(rows[2].meanSteps == nil && rows[2].totalTimeSaved == nil)
    let md = TimeToTarget.markdown(target: target, rows: rows, seeds: 1)
    #expect(md.contains("| fast | 1/1 | 4 | 50.0% |"))
    #expect(md.contains("| never | 0/1 | — |"))
    // The per-seed pairs: the baseline's own reach, the others' with the saving against the same seed.
    #expect(md.contains("| grpo | 8 / 8 s |"))
    #expect(md.contains("| fast | 4 / 2 s (75%) |"))
    #expect(md.contains("| never | — |"))
}

@Test func milestonesAverageSmoothedAccuracyOverSeeds() {
    // Two seeds, checkpoints every 2 steps up to 8; window 1, so the marks are the raw means.
    let runs = ["a": [curve([0.1, 0.2, 0.3, 0.4, 0.5], secondsPerStep: 1), curve([0.1, 0.4, 0.5, 0.6, 0.7], secondsPerStep: 1)],
                "short": [curve([0.1, 0.2], secondsPerStep: 1)]]
    let md = TimeToTarget.milestones(curves: runs, methods: ["a", "short"], window: 1, every: 4)
    #expect(md.contains("| a | 4: 40.0%, 8: 60.0% |"))
    #expect(md.contains("| short |  |"))
    // A step that only some seeds have is left out rather than averaged over fewer seeds.
    let ragged = ["r": [curve([0.1, 0.2, 0.3, 0.4, 0.5], secondsPerStep: 1), curve([0.1, 0.2, 0.3], secondsPerStep: 1)]]
    #expect(TimeToTarget.milestones(curves: ragged, methods: ["r"], window: 1, every: 4).contains("| r | 4: 30.0% |"))
}

/// Metrics lines as the learner writes them (extra fields included), and one line that is not a step.
private func metricsLine(step: Int, update: Double, groups: [String: Int], allEqual: Double, replayed: Int? = nil) -> String {
    let replay = replayed.map { #","replay":{"replayed":\#($0),"buffer_size":256}"# } ?? ""
    let byActor = groups.map { #""\#($0.key)":\#($0.value)"# }.joined(separator: ",")
    return #"{"step":\#(step),"time":\#(Double(step) * 0.5),"loss":0.1,"seconds":{"update":\#(update),"collect":0.1,"checkpoint":0.01},"#
        + #""frac_all_equal":\#(allEqual),"groups_by_actor":{\#(byActor)}\#(replay)}"#
}

@Test func learnerBudgetCountsInformativeGroupsAndUpdateTimeToTheReach() throws {
    let text = [
        #"{"event":"started"}"#,
        metricsLine(step: 1, update: 0.2, groups: ["1000": 32, "1001": 32], allEqual: 0.5),
        metricsLine(step: 2, update: 0.3, groups: ["1000": 16, "1001": 16], allEqual: 0.25, replayed: 32),
        metricsLine(step: 3, update: 0.4, groups: ["1000": 64], allEqual: 0),
    ].joined(separator: "\n")
    let records = TimeToTarget.StepRecord.parse(text)
    #expect(records.map(\.step) == [1, 2, 3])
    // Informative groups: 64 · 0.5 = 32; 32 · 0.75 + 32 replayed = 56; 64.
    let b = try #require(TimeToTarget.Budget(records, reach: 2))
    #expect(abs(b.updateSeconds - 0.3) < 1e-12 && abs(b.informativeGroups - 152.0 / 3) < 1e-9)
    #expect(b.informativeGroupsToTarget == 88 && abs((b.updateSecondsToTarget ?? 0) - 0.5) < 1e-12)
    let never = try #require(TimeToTarget.Budget(records, reach: nil))
    #expect(never.updateSecondsToTarget == nil && never.informativeGroupsToTarget == nil)
    #expect(TimeToTarget.Budget([], reach: 1) == nil)
    // A method's seeds: the sums to the target are averaged over the seeds that reached it.
    let m = try #require(TimeToTarget.Budget.mean([b, never]))
    #expect(m.updateSecondsToTarget == b.updateSecondsToTarget && m.updateSeconds == b.updateSeconds)
    // Against a baseline that took 2 s to the target, 0.5 s of update leaves at most 75% to save.
    let md = TimeToTarget.budgetMarkdown([("grpo", b), ("slow", never)], baselineSeconds: 2)
    #expect(md.contains("| grpo | 0.300 s | 50.7 | 5.9 ms | 88 | 0 s | 75% |"))
    #expect(md.contains("| slow | 0.300 s | 50.7 | 5.9 ms | — | — | — |"))
    // A baseline that was at the target from the start (0 s) gives no ceiling rather than −∞.
    #expect(TimeToTarget.budgetMarkdown([("grpo", b)], baselineSeconds: 0).contains("| 88 | 0 s | — |"))
    // A step logged twice (a restarted learner) counts once, by its last record.
    let again = TimeToTarget.StepRecord.parse(text + "\n" + metricsLine(step: 2, update: 0.1, groups: ["1000": 64], allEqual: 0.5))
    let deduped = try #require(TimeToTarget.Budget(again, reach: 2))
    #expect(deduped.informativeGroupsToTarget == 64 && abs((deduped.updateSecondsToTarget ?? 0) - 0.3) < 1e-12)
}

@Test func trainingClockSubtractsEveryCheckpointWrittenSoFar() {
    // Times 0.5, 1.0, 1.5 s; each line logs 0.01 s of checkpoint writing. A restarted learner logs step 2
    // again at 1.25 s: the clock keeps that time and still subtracts the first attempt's writing.
    let text = [1, 2, 3].map { metricsLine(step: $0, update: 0.1, groups: ["1000": 8], allEqual: 0) }
        .joined(separator: "\n") + "\nnot json\n" + metricsLine(step: 2, update: 0.1, groups: ["1000": 8], allEqual: 0)
            .replacingOccurrences(of: #""time":1.0"#, with: #""time":1.25"#)
    let clock = TimeToTarget.StepRecord.trainingClock(TimeToTarget.StepRecord.parse(text))
    #expect(clock.keys.sorted() == [0, 1, 2, 3] && clock[0] == 0)
    #expect(abs(clock[1]! - 0.49) < 1e-12 && abs(clock[3]! - 1.47) < 1e-12 && abs(clock[2]! - 1.21) < 1e-12)
}

@Test func aCompareOperandSplitsAtItsLastColon() {
    #expect(TimeToTarget.ComparedRun("runs/ttt9-b64:grpo") == TimeToTarget.ComparedRun(folder: "runs/ttt9-b64", method: "grpo"))
    #expect(TimeToTarget.ComparedRun("a:b:dots+rr")?.folder == "a:b")
    for bad in ["runs/ttt9-b64", ":grpo", "runs/a:", ""] { #expect(TimeToTarget.ComparedRun(bad) == nil, "\(bad)") }
}
