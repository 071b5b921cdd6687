import ArgumentParser
import Foundation
import Tasks

/// `dots tasks`: the built-in generated task suite, as JSONL for other tools and as counts for reports.
struct TasksCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tasks",
        abstract: "The built-in task suite: export a split as JSONL, or count it by family and level.",
        discussion: "Families: add, sub, mul (prompts like `123+45=`, answer `168`) and sort (`sort:dbca=`, "
            + "answer `abcd`), each at graded levels. The suite is a pure function of its seed and sizes.",
        subcommands: [TasksExportCommand.self, TasksStatsCommand.self])
}

extension Split: ExpressibleByArgument {}

/// Which suite to generate; shared by the `tasks` subcommands.
struct SuiteOptions: ParsableArguments {
    @Option(help: "Seed of the generated suite (the same seed always gives the same problems).")
    var seed: UInt64 = 1
    @Option(help: "Number of distinct train prompts.")
    var trainSize: Int = TaskSuite.defaultTrainCount
    @Option(help: "Number of held-out test prompts (disjoint from train).")
    var testSize: Int = TaskSuite.defaultTestCount

    func validate() throws {
        guard trainSize >= 0, testSize >= 0, trainSize + testSize <= TaskSuite.maxProblems else {
            throw ValidationError("--train-size and --test-size must be ≥ 0 and add up to at most \(TaskSuite.maxProblems).")
        }
    }

    func suite() -> TaskSuite { .builtIn(seed: seed, trainCount: trainSize, testCount: testSize) }
}

struct TasksExportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write one split of the built-in suite as JSONL.",
        discussion: #"One object a line: {"id":…,"prompt":…,"answer":…,"meta":{"family":…,"level":…}}."#)

    @Option(help: "Split to write: train or test.") var split: Split
    @Option(help: "JSONL file to write (replaced if it exists).") var out: String
    @OptionGroup var suite: SuiteOptions

    func run() throws {
        let problems = suite.suite().problems(split)
        try writeJSONL(problems, path: out)
        print("Wrote \(problems.count) \(split.rawValue) problems (seed \(suite.seed)) to \(out)")
    }
}

struct TasksStatsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats", abstract: "Count the built-in suite's problems by family and level, with an example of each.")

    @OptionGroup var suite: SuiteOptions

    func run() throws {
        let s = suite.suite()
        let key = { (p: Problem) in "\(p.family)/\(p.level)" }
        func counts(_ split: Split) -> [String: Int] { s.problems(split).reduce(into: [:]) { $0[key($1), default: 0] += 1 } }
        let train = counts(.train), test = counts(.test)
        let examples = Dictionary(s.train.map { (key($0), $0) }, uniquingKeysWith: { first, _ in first })
        let pad = { (text: String, width: Int) in text.padding(toLength: width, withPad: " ", startingAt: 0) }
        print(pad("family", 7) + pad("level", 6) + pad("train", 7) + pad("test", 6) + pad("example", 22) + "what")
        for level in TaskSuite.levels {
            let cell = "\(level.family)/\(level.level)"
            let example = examples[cell].map { "\($0.prompt)\($0.answer)" } ?? "-"
            print(pad(level.family, 7) + pad(String(level.level), 6) + pad(String(train[cell] ?? 0), 7)
                  + pad(String(test[cell] ?? 0), 6) + pad(example, 22) + level.summary)
        }
        print(pad("total", 13) + pad(String(s.train.count), 7) + String(s.test.count))
    }
}
