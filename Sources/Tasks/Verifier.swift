/// Scores one completion against a reference answer: 1 for correct, 0 otherwise (including malformed).
public protocol Verifier: Sendable {
    func reward(completion: String, answer: String) -> Double
}

/// The answer a completion gives: the text before its first `"\n"` (all of it if there is none), with
/// leading and trailing spaces, tabs and carriage returns removed. Whatever follows the first newline
/// is ignored, so a model that keeps writing after its answer is still scored on the answer.
public func extractAnswer(from completion: String) -> String {
    trimmed(String(completion.unicodeScalars.prefix { $0 != "\n" }))
}

/// Exact match of the extracted answer with the reference answer (also trimmed).
///
/// If both are integers (`[+-]?[0-9]+`, any length) they are compared as numbers: a leading `+`,
/// leading zeros and the sign of zero do not matter (`+007` = `7`, `-0` = `0`). Anything else is
/// compared as a case-sensitive string. An empty extracted answer scores 0.
public struct ExactMatchVerifier: Verifier {
    public init() {}

    public func reward(completion: String, answer: String) -> Double {
        let given = extractAnswer(from: completion), expected = trimmed(answer)
        guard !given.isEmpty else { return 0 }
        if let g = Self.canonicalInteger(given), let e = Self.canonicalInteger(expected) { return g == e ? 1 : 0 }
        return given == expected ? 1 : 0
    }

    /// `"-0042"` → `"-42"`, `"+0"` → `"0"`; nil unless the text is an optional sign and ASCII digits.
    static func canonicalInteger(_ text: String) -> String? {
        var digits = Substring(text)
        var negative = false
        if let first = digits.first, first == "+" || first == "-" {
            negative = first == "-"
            digits = digits.dropFirst()
        }
        guard !digits.isEmpty, digits.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") })
        else { return nil }
        let magnitude = digits.drop { $0 == "0" }
        if magnitude.isEmpty { return "0" }
        return (negative ? "-" : "") + magnitude
    }
}

/// Numeric match: the extracted answer and the reference are both plain decimal numbers
/// (`[+-]?(digits[.digits]|.digits)([eE][+-]?digits)?`, no `inf`, `nan` or hex) and differ by at most
/// `tolerance` in absolute value. Text that is not such a number scores 0.
public struct NumericVerifier: Verifier {
    public let tolerance: Double

    public init(tolerance: Double = 1e-6) {
        precondition(tolerance >= 0 && tolerance.isFinite, "tolerance must be finite and ≥ 0")
        self.tolerance = tolerance
    }

    public func reward(completion: String, answer: String) -> Double {
        guard let g = Self.decimal(extractAnswer(from: completion)), let e = Self.decimal(trimmed(answer))
        else { return 0 }
        return abs(g - e) <= tolerance ? 1 : 0
    }

    /// Parses only the plain decimal grammar above: `Double(_:)` alone would also accept `nan`, `inf`
    /// and `0x1p3`.
    static func decimal(_ text: String) -> Double? {
        var s = Substring(text).utf8[...]
        func digits() -> Int {
            let n = s.prefix { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }.count
            s = s.dropFirst(n)
            return n
        }
        if s.first == UInt8(ascii: "+") || s.first == UInt8(ascii: "-") { s = s.dropFirst() }
        var mantissa = digits()
        if s.first == UInt8(ascii: ".") { s = s.dropFirst(); mantissa += digits() }
        guard mantissa > 0 else { return nil }
        if s.first == UInt8(ascii: "e") || s.first == UInt8(ascii: "E") {
            s = s.dropFirst()
            if s.first == UInt8(ascii: "+") || s.first == UInt8(ascii: "-") { s = s.dropFirst() }
            guard digits() > 0 else { return nil }
        }
        guard s.isEmpty, let value = Double(text), value.isFinite else { return nil }
        return value
    }
}

/// Which verifier a dataset uses, as written on the command line or in a config:
/// `exact`, `numeric` (tolerance 1e-6) or `numeric:TOLERANCE`.
public enum VerifierSpec: Sendable, Hashable, LosslessStringConvertible {
    case exact
    case numeric(tolerance: Double)

    public init?(_ description: String) {
        let parts = description.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        switch (parts.first, parts.count) {
        case ("exact", 1): self = .exact
        case ("numeric", 1): self = .numeric(tolerance: 1e-6)
        case ("numeric", 2):
            guard let t = Double(parts[1]), t.isFinite, t >= 0 else { return nil }
            self = .numeric(tolerance: t)
        default: return nil
        }
    }

    public var description: String {
        switch self {
        case .exact: "exact"
        case .numeric(let t): "numeric:\(t)"
        }
    }

    public func make() -> any Verifier {
        switch self {
        case .exact: ExactMatchVerifier()
        case .numeric(let t): NumericVerifier(tolerance: t)
        }
    }
}

/// Strips spaces, tabs, carriage returns and newlines at both ends (ASCII only, no Foundation needed).
func trimmed(_ text: String) -> String {
    let isSpace: (Unicode.Scalar) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\n" }
    let scalars = text.unicodeScalars
    guard let start = scalars.firstIndex(where: { !isSpace($0) }),
          let end = scalars.lastIndex(where: { !isSpace($0) }) else { return "" }
    return String(scalars[start...end])
}
