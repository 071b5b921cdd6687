import Testing
@testable import Tasks

@Suite struct TaskSuiteTests {
    static let suite = TaskSuite.builtIn()

    @Test func sameSeedSameSuiteOtherSeedOtherSuite() {
        let again = TaskSuite.builtIn(seed: 1)
        #expect(again.train == Self.suite.train)
        #expect(again.test == Self.suite.test)
        let other = TaskSuite.builtIn(seed: 2)
        #expect(other.train.map(\.prompt) != Self.suite.train.map(\.prompt))
        #expect(other.test.map(\.prompt) != Self.suite.test.map(\.prompt))
    }

    @Test func defaultSizesDistinctAndDisjoint() {
        let train = Self.suite.problems(.train), test = Self.suite.problems(.test)
        #expect(train.count == 20_000 && test.count == 1_000)
        let trainPrompts = Set(train.map(\.prompt)), testPrompts = Set(test.map(\.prompt))
        #expect(trainPrompts.count == train.count)
        #expect(testPrompts.count == test.count)
        #expect(trainPrompts.isDisjoint(with: testPrompts))
        #expect(train.map(\.id) == Array(0..<20_000))
        #expect(test.map(\.id) == Array(20_000..<21_000))
    }

    @Test func otherSizesAreExact() {
        let small = TaskSuite.builtIn(seed: 9, trainCount: 300, testCount: 17)
        #expect(small.train.count == 300 && small.test.count == 17)
        #expect(Set((small.train + small.test).map(\.prompt)).count == 317)
        let big = TaskSuite.builtIn(seed: 3, trainCount: 60_000, testCount: 2_000)
        #expect(Set((big.train + big.test).map(\.prompt)).count == 62_000)
    }

    @Test func everyAnswerIsCorrect() throws {
        for p in Self.suite.train + Self.suite.test {
            #expect(try Self.solve(p.prompt) == p.answer, "\(p.prompt) \(p.answer)")
            #expect(ExactMatchVerifier().reward(completion: p.answer + "\n", answer: p.answer) == 1)
        }
    }

    @Test func promptsAndAnswersFitTheTokenizer() {
        let printable = { (s: String) in s.unicodeScalars.allSatisfy { $0.value >= 32 && $0.value <= 126 } }
        for p in Self.suite.train + Self.suite.test {
            #expect(printable(p.prompt) && printable(p.answer))
            #expect(p.prompt.count <= 24 && p.answer.count <= 10 && !p.answer.isEmpty)
            #expect(p.prompt.hasSuffix("="))
        }
    }

    @Test func everyFamilyAndLevelIsInBothSplits() {
        let cells = Set(TaskSuite.levels.map { "\($0.family)/\($0.level)" })
        #expect(cells.count == TaskSuite.levels.count)
        #expect(Set(TaskSuite.levels.map(\.family)) == Set(Self.suite.families))
        #expect(Self.suite.families == ["add", "sub", "mul", "sort"])
        for split in Split.allCases {
            let seen = Set(Self.suite.problems(split).map { "\($0.family)/\($0.level)" })
            #expect(seen == cells, "\(split)")
        }
        // The hardest addition level includes three-operand sums; subtraction results go negative.
        #expect(Self.suite.train.contains { $0.family == "add" && $0.prompt.filter { $0 == "+" }.count == 2 })
        #expect(Self.suite.train.contains { $0.family == "sub" && $0.answer.hasPrefix("-") })
    }

    @Test func mixLeansToTheMiddle() {
        var byFamily: [String: Int] = [:]
        for p in Self.suite.train { byFamily[p.family, default: 0] += 1 }
        for f in Self.suite.families { #expect(byFamily[f, default: 0] >= 2_000, "\(f)") }
        let trivial = Self.suite.train.filter { $0.level == 1 && $0.family != "sort" }.count
        #expect(trivial < 500)
    }

    @Test func apportionHonoursCapsAndTotal() {
        #expect(TaskSuite.apportion(10, weights: [1, 1, 1], caps: [100, 100, 100]).reduce(0, +) == 10)
        #expect(TaskSuite.apportion(100, weights: [8, 1, 1], caps: [5, 1_000, 1_000]) == [5, 48, 47])
        #expect(TaskSuite.apportion(6, weights: [1, 1], caps: [3, 3]) == [3, 3])
        #expect(TaskSuite.apportion(0, weights: [1, 2], caps: [3, 3]) == [0, 0])
    }

    /// Recomputes an answer from the prompt alone, independently of the generator.
    static func solve(_ prompt: String) throws -> String {
        var body = prompt
        #expect(body.removeLast() == "=")
        if body.hasPrefix("sort:") { return String(body.dropFirst(5).sorted()) }
        for (symbol, op) in [("+", { (a: Int, b: Int) in a + b }), ("-", { $0 - $1 }), ("*", { $0 * $1 })]
        where body.contains(symbol) {
            let operands = try body.split(separator: Character(symbol)).map { try #require(Int($0)) }
            return String(operands.dropFirst().reduce(operands[0], op))
        }
        Issue.record("unknown prompt \(prompt)")
        return ""
    }
}
