import Foundation

/// A dataset file that cannot be used, described in one sentence naming the file and, for a bad line,
/// its 1-based line number, e.g. `data.jsonl line 3: "answer" is not a string.`
public struct DatasetError: Error, Equatable, CustomStringConvertible, LocalizedError {
    public let file: String
    /// 1-based; nil for errors about the whole file.
    public let line: Int?
    public let reason: String

    public init(file: String, line: Int? = nil, reason: String) {
        self.file = file
        self.line = line
        self.reason = reason
    }

    public var description: String {
        line.map { "\(file) line \($0): \(reason)." } ?? "\(file): \(reason)."
    }

    public var errorDescription: String? { description }
}

/// Reads a JSONL dataset: one `{"prompt": "…", "answer": "…"}` object a line, with optional `"id"`
/// (an integer) and `"meta"` (an object; its `"family"` string and `"level"` integer are kept for
/// reports, other keys and other top-level keys are ignored).
///
/// Blank lines are skipped. A line without `"id"` gets its record's 0-based position among the
/// non-blank lines. Prompt and answer must be non-empty strings; ids must be unique; the file must hold
/// at least one problem. The first bad line throws a `DatasetError`.
public func loadJSONL(path: String) throws -> [Problem] {
    let data: Data
    do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
        throw DatasetError(file: path, reason: "cannot be read (\(clause(error)))")
    }
    guard let text = String(data: data, encoding: .utf8) else {
        throw DatasetError(file: path, reason: "is not UTF-8 text")
    }
    return try parseJSONL(text, file: path)
}

/// Parses JSONL text as `loadJSONL` does; `file` names the source in errors.
public func parseJSONL(_ text: String, file: String) throws -> [Problem] {
    var problems: [Problem] = []
    var lineOfId: [Int: Int] = [:]
    let decoder = JSONDecoder()
    // Split on the byte, not the Character: in Swift "\r\n" is one Character that is not "\n".
    let lines = text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
    for (index, rawLine) in lines.enumerated() {
        let line = trimmed(String(decoding: rawLine, as: UTF8.self))
        guard !line.isEmpty else { continue }
        func fail(_ reason: String) -> DatasetError { DatasetError(file: file, line: index + 1, reason: reason) }
        let record: Record
        do { record = try decoder.decode(Record.self, from: Data(line.utf8)) }
        catch let error as Record.Invalid { throw fail(error.reason) }
        catch { throw fail("invalid JSON") }

        let id = record.id ?? problems.count
        if let first = lineOfId[id] { throw fail("duplicate id \(id) (first used on line \(first))") }
        lineOfId[id] = index + 1
        problems.append(Problem(id: id, prompt: record.prompt, answer: record.answer,
                                family: record.family ?? Problem.defaultFamily, level: record.level ?? 0))
    }
    guard !problems.isEmpty else { throw DatasetError(file: file, reason: "contains no problems") }
    return problems
}

/// One JSONL line. Decoding checks each field's presence and type itself, so that a bad line is
/// reported by what is wrong with it rather than by a `DecodingError` dump; syntax errors surface as
/// `DecodingError` before this runs.
private struct Record: Decodable {
    struct Invalid: Error { let reason: String }
    enum Key: String, CodingKey { case id, prompt, answer, meta }
    enum MetaKey: String, CodingKey { case family, level }

    let id: Int?, prompt: String, answer: String, family: String?, level: Int?

    init(from decoder: any Decoder) throws {
        guard let c = try? decoder.container(keyedBy: Key.self) else { throw Invalid(reason: "expected a JSON object") }
        func text(_ key: Key) throws -> String {
            guard c.contains(key) else { throw Invalid(reason: "missing \"\(key.rawValue)\"") }
            guard let s = try? c.decode(String.self, forKey: key) else { throw Invalid(reason: "\"\(key.rawValue)\" is not a string") }
            guard !s.isEmpty else { throw Invalid(reason: "\"\(key.rawValue)\" is empty") }
            return s
        }
        prompt = try text(.prompt)
        answer = try text(.answer)
        id = try Self.optional(Int.self, .id, in: c, "\"id\" is not an integer")
        guard c.contains(.meta) else { (family, level) = (nil, nil); return }
        guard let meta = try? c.nestedContainer(keyedBy: MetaKey.self, forKey: .meta) else {
            throw Invalid(reason: "\"meta\" is not an object")
        }
        family = try Self.optional(String.self, .family, in: meta, "\"meta.family\" is not a string")
        level = try Self.optional(Int.self, .level, in: meta, "\"meta.level\" is not an integer")
    }

    /// The value at `key` if present; `reason` if present but not a `T`.
    static func optional<T: Decodable, K: CodingKey>(_: T.Type, _ key: K, in c: KeyedDecodingContainer<K>,
                                                     _ reason: String) throws -> T? {
        guard c.contains(key) else { return nil }
        guard let value = try? c.decode(T.self, forKey: key) else { throw Invalid(reason: reason) }
        return value
    }
}

/// Writes problems as JSONL, one `{"id":…,"prompt":…,"answer":…,"meta":{"family":…,"level":…}}` a
/// line in this key order, so that `loadJSONL` reads back the same problems. Replaces the file
/// atomically.
public func writeJSONL(_ problems: [Problem], path: String) throws {
    do { try Data(encodeJSONL(problems).utf8).write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
        throw DatasetError(file: path, reason: "cannot be written (\(clause(error)))")
    }
}

/// The JSONL text `writeJSONL` writes.
public func encodeJSONL(_ problems: [Problem]) -> String {
    var out = ""
    for p in problems {
        out += "{\"id\":\(p.id),\"prompt\":\(jsonString(p.prompt)),\"answer\":\(jsonString(p.answer)),"
        out += "\"meta\":{\"family\":\(jsonString(p.family)),\"level\":\(p.level)}}\n"
    }
    return out
}

/// An underlying error's message without its final period, to sit inside our one sentence.
func clause(_ error: any Error) -> String {
    let text = error.localizedDescription
    return text.hasSuffix(".") ? String(text.dropLast()) : text
}

/// A JSON string literal: quotes, backslashes and control characters escaped, the rest as is.
func jsonString(_ s: String) -> String {
    var out = "\""
    for scalar in s.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case _ where scalar.value < 0x20:
            let hex = String(scalar.value, radix: 16)
            out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}
