/// One (family, level) cell of the built-in suite: how its problems are drawn and how much of the suite
/// it gets.
public struct TaskLevel: Sendable {
    public let family: String
    public let level: Int
    /// What its prompts look like, for reports.
    public let summary: String
    /// Relative share of the suite, before capping at `space`.
    let weight: Double
    /// Distinct prompts `draw` can produce (exact for small cells, a lower bound for large ones), so
    /// that drawing distinct prompts always terminates.
    let space: Int
    let draw: @Sendable (inout SplitMix64) -> (prompt: String, answer: String)
}

/// The built-in generated suite: additions, subtractions, multiplications and letter sorting at graded
/// levels, prompts like `123+45=` → `168` and `sort:dbca=` → `abcd`.
///
/// The mix is aimed at the "learnable middle" of FACTS.md's second probe (additions up to 4 digits,
/// subtractions and sorting of middling size, products mostly of a 2-digit and a 1-digit number): a
/// partly competent base model then has many prompts with pass rates strictly between 0 and 1, which is
/// where GRPO has a gradient and where DOTS selects. Prompts are printable ASCII of at most 13
/// characters, answers at most 7, so they fit the character tokenizer and short contexts.
public struct TaskSuite: Sendable {
    public let seed: UInt64
    /// Ids `0..<train.count`, shuffled across families and levels.
    public let train: [Problem]
    /// Disjoint from `train` (no prompt in both); ids continue after the train ids.
    public let test: [Problem]
    /// Family names in catalogue order: `add`, `sub`, `mul`, `sort`.
    public let families: [String]

    public static let defaultTrainCount = 20_000
    public static let defaultTestCount = 1_000
    /// Upper bound on train + test, far below what the cells hold, so generation stays fast.
    public static let maxProblems = 500_000

    /// Every answer of the suite is an exact string (sums, differences, products, sorted letters).
    public var verifier: VerifierSpec { .exact }

    public func problems(_ split: Split) -> [Problem] { split == .train ? train : test }

    /// Generates the suite; the same arguments always give the same problems, in the same order.
    ///
    /// Each cell gets a share of `trainCount + testCount` proportional to its weight, capped at the number
    /// of distinct prompts it has (the cap's excess goes to the other cells); all prompts are distinct;
    /// the pooled problems are shuffled and the first `testCount` form the test split.
    public static func builtIn(seed: UInt64 = 1, trainCount: Int = defaultTrainCount,
                               testCount: Int = defaultTestCount) -> TaskSuite {
        precondition(trainCount >= 0 && testCount >= 0 && trainCount + testCount <= maxProblems,
                     "suite size out of range")
        var rng = SplitMix64(seed: seed)
        let counts = apportion(trainCount + testCount, weights: levels.map(\.weight), caps: levels.map(\.space))
        var seen = Set<String>(minimumCapacity: trainCount + testCount)
        var pool: [Problem] = []
        pool.reserveCapacity(trainCount + testCount)
        for (cell, n) in zip(levels, counts) {
            var drawn = 0
            while drawn < n {
                let (prompt, answer) = cell.draw(&rng)
                guard seen.insert(prompt).inserted else { continue }
                pool.append(Problem(id: 0, prompt: prompt, answer: answer, family: cell.family, level: cell.level))
                drawn += 1
            }
        }
        rng.shuffle(&pool)
        for i in pool.indices { pool[i].id = i < testCount ? trainCount + i : i - testCount }
        return TaskSuite(seed: seed, train: Array(pool[testCount...]), test: Array(pool[..<testCount]),
                         families: families)
    }

    /// The catalogue of cells, in family then level order.
    public static let levels: [TaskLevel] = [
        binary("add", 1, "1-digit + 1-digit", weight: 2, space: 100, "+", 1, 1, +),
        binary("add", 2, "2-digit + 1-digit, either order", weight: 6, space: 1_800, "+", 2, 1, +),
        binary("add", 3, "2-digit + 2-digit", weight: 8, space: 8_100, "+", 2, 2, +),
        binary("add", 4, "3-digit + 1…3-digit, either order", weight: 8, space: 810_000, "+", 3, 0, +),
        TaskLevel(family: "add", level: 5, summary: "4-digit + 1…3-digit, or three 1…2-digit operands",
                  weight: 6, space: 1_000_000) { r in
            if r.below(3) == 0 {
                let x = [number(1 + r.below(2), &r), number(1 + r.below(2), &r), number(1 + r.below(2), &r)]
                return ("\(x[0])+\(x[1])+\(x[2])=", String(x[0] + x[1] + x[2]))
            }
            return operands(4, 0, &r, "+", +)
        },
        binary("sub", 1, "1-digit − 1-digit", weight: 2, space: 100, "-", 1, 1, -),
        binary("sub", 2, "2-digit − 1-digit, either order", weight: 6, space: 1_800, "-", 2, 1, -),
        binary("sub", 3, "2-digit − 2-digit", weight: 9, space: 8_100, "-", 2, 2, -),
        binary("sub", 4, "3-digit − 1…3-digit, either order", weight: 8, space: 810_000, "-", 3, 0, -),
        binary("mul", 1, "1-digit × 1-digit", weight: 2, space: 100, "*", 1, 1, *),
        binary("mul", 2, "2-digit × 1-digit, either order", weight: 9, space: 1_800, "*", 2, 1, *),
        binary("mul", 3, "2-digit × 2-digit", weight: 4, space: 8_100, "*", 2, 2, *),
        sorting(1, length: 3, weight: 4),
        sorting(2, length: 4, weight: 6),
        sorting(3, length: 5, weight: 8),
        sorting(4, length: 6, weight: 7),
        sorting(5, length: 7, weight: 5),
    ]

    static let families = ["add", "sub", "mul", "sort"]

    /// A uniform number with exactly `digits` digits (0…9 for one digit: no leading zeros).
    static func number(_ digits: Int, _ r: inout SplitMix64) -> Int {
        var low = 1
        for _ in 1..<digits { low *= 10 }
        return digits == 1 ? r.below(10) : low + r.below(9 * low)
    }

    /// `a op b =` with `a` of `digitsA` digits and `b` of `digitsB` digits (`0` = 1…`digitsA` digits
    /// at random); operands of different lengths appear in either order.
    static func operands(_ digitsA: Int, _ digitsB: Int, _ r: inout SplitMix64, _ symbol: String,
                         _ op: (Int, Int) -> Int) -> (String, String) {
        var a = number(digitsA, &r), b = number(digitsB == 0 ? 1 + r.below(digitsA) : digitsB, &r)
        if digitsA != digitsB, r.below(2) == 1 { swap(&a, &b) }
        return ("\(a)\(symbol)\(b)=", String(op(a, b)))
    }

    static func binary(_ family: String, _ level: Int, _ summary: String, weight: Double, space: Int,
                       _ symbol: String, _ digitsA: Int, _ digitsB: Int,
                       _ op: @escaping @Sendable (Int, Int) -> Int) -> TaskLevel {
        TaskLevel(family: family, level: level, summary: summary, weight: weight, space: space) { r in
            operands(digitsA, digitsB, &r, symbol, op)
        }
    }

    /// `sort:dbca=` → `abcd`: `length` random lowercase letters (repeats allowed).
    static func sorting(_ level: Int, length: Int, weight: Double) -> TaskLevel {
        var space = 1
        for _ in 0..<length { space *= 26 }
        return TaskLevel(family: "sort", level: level, summary: "sort \(length) letters", weight: weight,
                         space: space) { r in
            var letters: [UInt8] = []
            for _ in 0..<length { letters.append(UInt8(ascii: "a") + UInt8(r.below(26))) }
            return ("sort:\(String(decoding: letters, as: UTF8.self))=", String(decoding: letters.sorted(), as: UTF8.self))
        }
    }

    /// Splits `total` into integer counts proportional to `weights`, none above its cap, summing to
    /// `total` (water-filling, then largest remainders).
    static func apportion(_ total: Int, weights: [Double], caps: [Int]) -> [Int] {
        precondition(total <= caps.reduce(0, +))
        var counts = [Int?](repeating: nil, count: weights.count)
        while true {
            let remaining = total - counts.reduce(0) { $0 + ($1 ?? 0) }
            let open = counts.indices.filter { counts[$0] == nil }
            let w = open.reduce(0) { $0 + weights[$1] }
            let capped = open.filter { Double(remaining) * weights[$0] / w >= Double(caps[$0]) }
            if capped.isEmpty {
                let shares = open.map { Double(remaining) * weights[$0] / w }
                for (i, s) in zip(open, shares) { counts[i] = Int(s) }
                let short = remaining - open.reduce(0) { $0 + counts[$1]! }
                let fraction = { (s: Double) in s - s.rounded(.down) }
                let byRemainder = zip(open, shares).sorted { a, b in
                    fraction(a.1) != fraction(b.1) ? fraction(a.1) > fraction(b.1) : a.0 < b.0
                }
                for (i, _) in byRemainder.prefix(short) { counts[i]! += 1 }
                return counts.map { $0! }
            }
            for i in capped { counts[i] = caps[i] }
        }
    }
}
