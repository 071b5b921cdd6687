import Foundation

/// The paper's headline measurement (DESIGN.md, "How the paper measures its headline"): how many steps
/// and how much training wall-clock each method needs to reach plain GRPO's final held-out accuracy.
public enum TimeToTarget {
    /// One evaluated checkpoint of a run: its step, the training clock at that step (seconds, with
    /// checkpoint writing and evaluation left out) and its held-out accuracy.
    public struct Point: Codable, Sendable, Equatable {
        public var step: Int
        public var seconds: Double
        public var accuracy: Double
        public init(step: Int, seconds: Double, accuracy: Double) {
            self.step = step
            self.seconds = seconds
            self.accuracy = accuracy
        }
    }

    /// Trailing moving average over `window` points (fewer at the start): causal, so the step at which a
    /// smoothed curve first reaches a level never depends on what came after it.
    public static func smooth(_ points: [Point], window: Int) -> [Point] {
        precondition(window >= 1)
        return points.indices.map { i in
            let lo = max(0, i - window + 1)
            let mean = points[lo...i].map(\.accuracy).reduce(0, +) / Double(i - lo + 1)
            return Point(step: points[i].step, seconds: points[i].seconds, accuracy: mean)
        }
    }

    /// The first point of a (smoothed) curve at or above `target`, nil if it never gets there.
    public static func reach(_ curve: [Point], target: Double) -> Point? {
        curve.first { $0.accuracy >= target - 1e-12 }
    }

    /// The target: the mean over seeds of the baseline's final smoothed accuracy.
    public static func target(baselineRuns: [[Point]], window: Int) -> Double? {
        let finals = baselineRuns.compactMap { smooth($0, window: window).last?.accuracy }
        return finals.isEmpty ? nil : finals.reduce(0, +) / Double(finals.count)
    }

    /// A method's reaches over its seeds, against the baseline's.
    public struct Row: Codable, Sendable {
        public var method: String
        /// Per seed: step and training seconds at which the smoothed curve first reached the target (nil: never).
        public var steps: [Int?]
        public var seconds: [Double?]
        /// Per seed: 1 − seconds / the baseline's seconds for the same seed (nil where either never reached it).
        public var timeSaved: [Double?]
        /// Means over the seeds that reached the target.
        public var meanSteps: Double?
        public var meanSeconds: Double?
        /// Seconds a step up to the reach, mean over seeds that reached it.
        public var secondsPerStep: Double?
        /// 1 − method / baseline, of steps, of time per step, and of total time (the headline); nil when
        /// either side never reached the target. Spreads are the standard deviations over paired seeds.
        public var stepsSaved: Double?
        public var perStepTimeSaved: Double?
        public var totalTimeSaved: Double?
        public var totalTimeSavedSpread: Double?
        public var finalAccuracy: Double?
    }

    /// The mean, nil for none.
    static func mean(_ xs: [Double]) -> Double? { xs.isEmpty ? nil : xs.reduce(0, +) / Double(xs.count) }

    /// 1 − x / base: the share of the baseline's steps or seconds saved; nil when either is missing or the
    /// baseline is not positive (a baseline at its target from the start has nothing to save against).
    static func saving(_ x: Double?, against base: Double?) -> Double? {
        guard let x, let base, base > 0 else { return nil }
        return 1 - x / base
    }

    /// Rows for every method; `runs[method]` holds its curves by seed (seed order the same for all).
    public static func table(runs: [String: [[Point]]], methods: [String], baseline: String, window: Int) -> (target: Double?, rows: [Row]) {
        let target = self.target(baselineRuns: runs[baseline] ?? [], window: window)
        func reaches(_ m: String) -> [Point?] {
            (runs[m] ?? []).map { curve in target.flatMap { reach(smooth(curve, window: window), target: $0) } }
        }
        func sd(_ xs: [Double]) -> Double? {
            guard xs.count > 1, let m = mean(xs) else { return nil }
            return (xs.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(xs.count - 1)).squareRoot()
        }
        let base = reaches(baseline)
        let baseReached = base.compactMap { $0 }
        let baseSteps = mean(baseReached.map { Double($0.step) }), baseSeconds = mean(baseReached.map(\.seconds))
        let basePerStep = mean(baseReached.map { $0.seconds / Double(max(1, $0.step)) })
        let rows = methods.map { m -> Row in
            let r = reaches(m)
            let reached = r.compactMap { $0 }
            let meanSteps = mean(reached.map { Double($0.step) }), meanSeconds = mean(reached.map(\.seconds))
            let perStep = mean(reached.map { $0.seconds / Double(max(1, $0.step)) })
            // Paired by seed: the saving of seed i against the baseline's seed i.
            let paired = zip(r, base).map { a, b in saving(a?.seconds, against: b?.seconds) }
            let finals = (runs[m] ?? []).compactMap { smooth($0, window: window).last?.accuracy }
            return Row(method: m, steps: r.map { $0?.step }, seconds: r.map { $0?.seconds }, timeSaved: paired,
                       meanSteps: meanSteps, meanSeconds: meanSeconds, secondsPerStep: perStep,
                       stepsSaved: saving(meanSteps, against: baseSteps),
                       perStepTimeSaved: saving(perStep, against: basePerStep),
                       totalTimeSaved: saving(meanSeconds, against: baseSeconds),
                       totalTimeSavedSpread: sd(paired.compactMap { $0 }), finalAccuracy: mean(finals))
        }
        return (target, rows)
    }

    /// The table in the form of the paper's Table 1, as Markdown.
    public static func markdown(target: Double?, rows: [Row], seeds: Int, baseline: String = "GRPO's") -> String {
        func pct(_ x: Double?) -> String { x.map { String(format: "%.1f%%", 100 * $0) } ?? "—" }
        func num(_ x: Double?, _ f: String) -> String { x.map { String(format: f, $0) } ?? "—" }
        var s = "Target: \(pct(target)) held-out accuracy (\(baseline) final, smoothed, mean of \(seeds) seed\(seeds == 1 ? "" : "s")).\n\n"
        s += "| method | reached (seeds) | steps to target | steps saved | s / step | time per step saved | time to target | total time saved (± sd) | final accuracy |\n"
        s += "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        for r in rows {
            let reached = r.steps.compactMap { $0 }.count
            let spread = r.totalTimeSavedSpread.map { String(format: " ± %.1f", 100 * $0) } ?? ""
            s += "| \(r.method) | \(reached)/\(r.steps.count) | \(num(r.meanSteps, "%.0f")) | \(pct(r.stepsSaved)) | "
            s += "\(num(r.secondsPerStep, "%.2f")) | \(pct(r.perStepTimeSaved)) | \(num(r.meanSeconds, "%.0f s")) | "
            s += "\(pct(r.totalTimeSaved))\(spread) | \(pct(r.finalAccuracy)) |\n"
        }
        return s + "\n" + perSeed(rows: rows)
    }

    /// Where each seed reached the target: step and training seconds, and the time saved against the
    /// baseline's run of the same seed (the first row), as a Markdown table — the pairs behind the ± spread.
    public static func perSeed(rows: [Row]) -> String {
        let seeds = rows.map(\.steps.count).max() ?? 0
        guard seeds > 0 else { return "" }
        var s = "| per seed: step / seconds to the target (time saved) |" + (1...seeds).map { " seed \($0) |" }.joined() + "\n"
        s += "|---|" + String(repeating: "---:|", count: seeds) + "\n"
        for (k, r) in rows.enumerated() {
            s += "| \(r.method) |"
            for i in 0..<seeds {
                guard i < r.steps.count, let step = r.steps[i], let secs = r.seconds[i] else { s += " — |"; continue }
                s += String(format: " %d / %.0f s", step, secs)
                if k > 0, i < r.timeSaved.count, let saved = r.timeSaved[i] { s += String(format: " (%.0f%%)", 100 * saved) }
                s += " |"
            }
            s += "\n"
        }
        return s
    }

    /// Each method's smoothed accuracy (mean over its seeds) at every `every`-th step that all its curves
    /// have, as a Markdown table: how the curves compare along the way, not only at the target.
    public static func milestones(curves: [String: [[Point]]], methods: [String], window: Int, every: Int) -> String {
        var s = "| method | smoothed accuracy at step … |\n|---|---|\n"
        for m in methods {
            let seeds = (curves[m] ?? []).map { smooth($0, window: window) }
            guard let first = seeds.first else { continue }
            let marks = first.map(\.step).filter { $0 > 0 && $0 % every == 0 }.compactMap { step -> String? in
                let values = seeds.compactMap { c in c.first { $0.step == step }?.accuracy }
                guard values.count == seeds.count else { return nil }
                return String(format: "%d: %.1f%%", step, 100 * values.reduce(0, +) / Double(values.count))
            }
            s += "| \(m) | \(marks.joined(separator: ", ")) |\n"
        }
        return s
    }

    /// A `dots bench ttt --compare` operand, RUN:METHOD: an output folder and one of its methods. The last
    /// colon splits them, so a folder name may hold colons; nil when there is none or either side is empty.
    public struct ComparedRun: Equatable, Sendable {
        public var folder: String
        public var method: String

        public init?(_ spec: String) {
            guard let colon = spec.lastIndex(of: ":"), colon != spec.startIndex, spec.index(after: colon) != spec.endIndex else {
                return nil
            }
            folder = String(spec[..<colon])
            method = String(spec[spec.index(after: colon)...])
        }

        public init(folder: String, method: String) {
            self.folder = folder
            self.method = method
        }
    }

    /// A step of a run's metrics.jsonl, the fields the learner budget reads.
    public struct StepRecord: Decodable, Sendable {
        public struct Seconds: Decodable, Sendable { public var update: Double; public var checkpoint: Double? }
        public struct Replay: Decodable, Sendable { public var replayed: Int }
        public var step: Int
        /// Seconds since the run started, checkpoint writing included.
        public var time: Double
        public var seconds: Seconds
        /// Of the step's fresh groups (the coordinator's DOTS reference groups included), the share whose
        /// rewards were all equal; the learner skips those.
        public var fracAllEqual: Double
        public var groupsByActor: [String: Int]
        /// Replayed groups, informative by construction (the buffer keeps no others).
        public var replay: Replay?

        enum CodingKeys: String, CodingKey {
            case step, time, seconds, replay
            case fracAllEqual = "frac_all_equal", groupsByActor = "groups_by_actor"
        }

        /// The records of a metrics.jsonl text; lines that are not step records are skipped.
        public static func parse(_ text: String) -> [StepRecord] {
            let decoder = JSONDecoder()
            return text.split(separator: "\n").compactMap { try? decoder.decode(StepRecord.self, from: Data($0.utf8)) }
        }

        /// A run's training clock: each step's `time` less all the checkpoint writing logged up to it (a
        /// restarted learner's repeated step counts its writing twice, as the wall-clock paid for it twice,
        /// and keeps its last time). Step 0, before any training, is 0.
        public static func trainingClock(_ records: [StepRecord]) -> [Int: Double] {
            var clock: [Int: Double] = [0: 0]
            var checkpointSeconds = 0.0
            for r in records {
                checkpointSeconds += r.seconds.checkpoint ?? 0
                clock[r.step] = r.time - checkpointSeconds
            }
            return clock
        }
    }

    /// What a run's learner spent: means a step of the update's seconds and of the informative groups
    /// (rewards not all equal) it trained, and their sums up to the step at which the run reached the target.
    public struct Budget: Codable, Sendable, Equatable {
        public var updateSeconds: Double
        public var informativeGroups: Double
        /// Sums over the steps up to the reach (nil if the run never reached the target).
        public var updateSecondsToTarget: Double?
        public var informativeGroupsToTarget: Double?

        /// From a run's records; `reach` is the step at which it reached the target. Nil without records.
        /// A step logged twice (a learner restarted by `dots launch` repeats its step) counts once, its
        /// last record, as the training clock of `bench ttt` takes it.
        public init?(_ records: [StepRecord], reach: Int?) {
            var byStep: [Int: StepRecord] = [:]
            for r in records { byStep[r.step] = r }
            let records = byStep.keys.sorted().map { byStep[$0]! }
            guard !records.isEmpty else { return nil }
            func informative(_ r: StepRecord) -> Double {
                Double(r.groupsByActor.values.reduce(0, +)) * (1 - r.fracAllEqual) + Double(r.replay?.replayed ?? 0)
            }
            let n = Double(records.count)
            updateSeconds = records.map(\.seconds.update).reduce(0, +) / n
            informativeGroups = records.map(informative).reduce(0, +) / n
            let upTo = reach.map { step in records.filter { $0.step <= step } }
            updateSecondsToTarget = upTo.map { $0.map(\.seconds.update).reduce(0, +) }
            informativeGroupsToTarget = upTo.map { $0.map(informative).reduce(0, +) }
        }

        public init(updateSeconds: Double, informativeGroups: Double, updateSecondsToTarget: Double?, informativeGroupsToTarget: Double?) {
            self.updateSeconds = updateSeconds
            self.informativeGroups = informativeGroups
            self.updateSecondsToTarget = updateSecondsToTarget
            self.informativeGroupsToTarget = informativeGroupsToTarget
        }

        /// The mean of several runs' budgets (a method's seeds); the sums to the target over the runs that reached it.
        public static func mean(_ budgets: [Budget]) -> Budget? {
            guard !budgets.isEmpty else { return nil }
            let mean = TimeToTarget.mean
            return Budget(updateSeconds: mean(budgets.map(\.updateSeconds))!,
                          informativeGroups: mean(budgets.map(\.informativeGroups))!,
                          updateSecondsToTarget: mean(budgets.compactMap(\.updateSecondsToTarget)),
                          informativeGroupsToTarget: mean(budgets.compactMap(\.informativeGroupsToTarget)))
        }
    }

    /// Each method's learner budget as Markdown, with the most time it could save against the baseline
    /// (`baselineSeconds`, the baseline's mean time to the target): 1 − (its update seconds up to the
    /// target) / baselineSeconds. That is the saving it would show if rollouts, selection, replay and
    /// everything but its learner's update took no time at all: a ceiling on what the method can save with
    /// this learner.
    public static func budgetMarkdown(_ budgets: [(method: String, budget: Budget)], baselineSeconds: Double?) -> String {
        guard !budgets.isEmpty else { return "" }
        func num(_ x: Double?, _ f: String) -> String { x.map { String(format: f, $0) } ?? "—" }
        var s = "| learner budget | update a step | informative groups a step | update per informative group | informative groups to the target | update seconds to the target | most time saved if all but the update were free |\n"
        s += "|---|---:|---:|---:|---:|---:|---:|\n"
        for (m, b) in budgets {
            let ceiling = saving(b.updateSecondsToTarget, against: baselineSeconds)
            s += "| \(m) | \(num(b.updateSeconds, "%.3f s")) | \(num(b.informativeGroups, "%.1f")) | "
            s += "\(num(b.informativeGroups > 0 ? 1000 * b.updateSeconds / b.informativeGroups : nil, "%.1f ms")) | "
            s += "\(num(b.informativeGroupsToTarget, "%.0f")) | \(num(b.updateSecondsToTarget, "%.0f s")) | \(num(ceiling.map { 100 * $0 }, "%.0f%%")) |\n"
        }
        return s
    }
}
