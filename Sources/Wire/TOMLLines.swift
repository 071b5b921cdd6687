import Foundation

/// Where each key of a TOML text is written, by line number.
///
/// TOMLKit reports line numbers only for syntax errors, not for values, so validation finds a key's line
/// by scanning the text: table headers (`[a.b]`, `[[a]]`) set the current table, and `key = …` lines
/// (dotted keys and one level of inline table included) add "table.key". The text has already parsed as
/// TOML, so the scan only has to be right for valid files; multi-line strings and arrays are skipped.
struct TOMLLines {
    private(set) var lines: [String: Int] = [:]

    init(_ text: String) {
        var table: [String] = []
        var skipUntil: String?
        for (i, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let number = i + 1
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if let end = skipUntil {
                if line.contains(end) { skipUntil = nil }
                continue
            }
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line.hasPrefix("[") {
                let inner = line.drop { $0 == "[" }.prefix { $0 != "]" }
                table = Self.keyPath(String(inner))
                record(table, number)
                continue
            }
            guard let eq = Self.assignment(in: line) else { continue }
            let key = table + Self.keyPath(String(line[..<eq]))
            record(key, number)
            let value = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
            if value.hasPrefix("{") {
                // One level of inline table: `actors = { a = 1, b = 2 }`.
                for part in value.dropFirst().split(separator: ",") {
                    if let e = part.firstIndex(of: "=") {
                        record(key + Self.keyPath(String(part[..<e])), number)
                    }
                }
            } else if value.hasPrefix("\"\"\"") && !value.dropFirst(3).contains("\"\"\"") {
                skipUntil = "\"\"\""
            } else if value.hasPrefix("'''") && !value.dropFirst(3).contains("'''") {
                skipUntil = "'''"
            } else if value.hasPrefix("[") && !value.contains("]") {
                skipUntil = "]"
            }
        }
    }

    private mutating func record(_ path: [String], _ line: Int) {
        let key = path.joined(separator: ".")
        if lines[key] == nil { lines[key] = line }
    }

    /// The line of `key`, or of the nearest enclosing table that is written down.
    func line(of key: String) -> Int? {
        var parts = key.split(separator: ".").map(String.init)
        while !parts.isEmpty {
            if let line = lines[parts.joined(separator: ".")] { return line }
            parts.removeLast()
        }
        return nil
    }

    /// The `=` of a `key = value` line, outside quotes.
    private static func assignment(in line: String) -> String.Index? {
        var quote: Character?
        for i in line.indices {
            let c = line[i]
            if let q = quote {
                if c == q { quote = nil }
            } else if c == "\"" || c == "'" {
                quote = c
            } else if c == "=" {
                return i
            } else if c == "#" {
                return nil
            }
        }
        return nil
    }

    /// Splits a (possibly quoted, possibly dotted) key into its parts.
    static func keyPath(_ text: String) -> [String] {
        var parts: [String] = []
        var current = ""
        var quote: Character?
        for c in text {
            if let q = quote {
                if c == q { quote = nil } else { current.append(c) }
            } else if c == "\"" || c == "'" {
                quote = c
            } else if c == "." {
                parts.append(current)
                current = ""
            } else if !c.isWhitespace {
                current.append(c)
            }
        }
        parts.append(current)
        return parts.filter { !$0.isEmpty }
    }
}
