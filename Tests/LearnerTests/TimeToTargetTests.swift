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
