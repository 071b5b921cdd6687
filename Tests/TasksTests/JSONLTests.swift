import Foundation
import Testing
@testable import Tasks

@Suite final class JSONLTests {
    /// One folder per test, removed when the test ends.
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("TasksTests-\(UUID().uuidString)")

    init() { try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) }
    deinit { try? FileManager.default.removeItem(at: dir) }

    func temporaryPath(_ name: String = "data.jsonl") -> String {
        dir.appendingPathComponent("\(UUID().uuidString)-\(name)").path
    }

    @Test func builtInSuiteRoundTrips() throws {
        let suite = TaskSuite.builtIn(seed: 4, trainCount: 2_000, testCount: 200)
        for split in Split.allCases {
            let path = temporaryPath()
            try writeJSONL(suite.problems(split), path: path)
            #expect(try loadJSONL(path: path) == suite.problems(split))
        }
    }

    @Test func awkwardStringsRoundTrip() throws {
        let problems = [
            Problem(id: 5, prompt: "say \"hi\"\\\n\t\u{1}=", answer: "é ✓", family: "x\"y", level: -2),
            Problem(id: -1, prompt: "p", answer: "a"),
        ]
        #expect(try parseJSONL(encodeJSONL(problems), file: "mem") == problems)
    }

    @Test func defaultsBlankLinesAndExtraKeys() throws {
        let text = """

        {"prompt": "1+1=", "answer": "2"}
          \t
        {"answer": "3", "prompt": "1+2=", "meta": {"family": "add", "level": 1, "source": "hand"}, "note": 1}\r
        {"prompt": "x", "answer": "y", "id": 7, "meta": {}}
        """
        let problems = try parseJSONL(text, file: "mem")
        #expect(problems == [
            Problem(id: 0, prompt: "1+1=", answer: "2", family: "other", level: 0),
            Problem(id: 1, prompt: "1+2=", answer: "3", family: "add", level: 1),
            Problem(id: 7, prompt: "x", answer: "y", family: "other", level: 0),
        ])
    }

    @Test(arguments: [
        ("{\"prompt\": \"a\", \"answer\": \"b\"", "invalid JSON"),
        ("not json", "invalid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ("\"prompt\"", "expected a JSON object"),
        ("{\"answer\": \"b\"}", "missing \"prompt\""),
        ("{\"prompt\": \"a\"}", "missing \"answer\""),
        ("{\"prompt\": \"a\", \"answer\": 168}", "\"answer\" is not a string"),
        ("{\"prompt\": null, \"answer\": \"b\"}", "\"prompt\" is not a string"),
        ("{\"prompt\": \"\", \"answer\": \"b\"}", "\"prompt\" is empty"),
        ("{\"prompt\": \"a\", \"answer\": \"\"}", "\"answer\" is empty"),
        ("{\"prompt\": \"a\", \"answer\": \"b\", \"id\": \"3\"}", "\"id\" is not an integer"),
        ("{\"prompt\": \"a\", \"answer\": \"b\", \"id\": 2.5}", "\"id\" is not an integer"),
        ("{\"prompt\": \"a\", \"answer\": \"b\", \"id\": 0}", "duplicate id 0 (first used on line 1)"),
        ("{\"prompt\": \"a\", \"answer\": \"b\", \"meta\": [1]}", "\"meta\" is not an object"),
        ("{\"prompt\": \"a\", \"answer\": \"b\", \"meta\": {\"family\": 1}}", "\"meta.family\" is not a string"),
        ("{\"prompt\": \"a\", \"answer\": \"b\", \"meta\": {\"level\": \"2\"}}", "\"meta.level\" is not an integer"),
    ])
    func badLineNamesFileAndLine(line: String, reason: String) throws {
        let path = temporaryPath("bad.jsonl")
        try Data("{\"prompt\": \"1+1=\", \"answer\": \"2\"}\n\n\(line)\n{\"prompt\": \"z\", \"answer\": \"z\"}\n".utf8)
            .write(to: URL(fileURLWithPath: path))
        let error = #expect(throws: DatasetError.self) { try loadJSONL(path: path) }
        #expect(error == DatasetError(file: path, line: 3, reason: reason))
        #expect(error?.description == "\(path) line 3: \(reason).")
        #expect(error?.localizedDescription == error?.description)
    }

    @Test func implicitIdsCollideWithExplicitOnes() {
        let text = "{\"prompt\": \"a\", \"answer\": \"b\", \"id\": 1}\n{\"prompt\": \"c\", \"answer\": \"d\"}\n"
        #expect(throws: DatasetError(file: "f", line: 2, reason: "duplicate id 1 (first used on line 1)")) {
            try parseJSONL(text, file: "f")
        }
    }

    @Test func wholeFileErrors() throws {
        #expect(throws: DatasetError(file: "f", reason: "contains no problems")) { try parseJSONL("\n \n", file: "f") }
        let missing = temporaryPath("missing.jsonl")
        let error = #expect(throws: DatasetError.self) { try loadJSONL(path: missing) }
        #expect(error?.line == nil)
        #expect(error?.description.hasPrefix("\(missing): cannot be read") == true)
        let binary = temporaryPath("binary.jsonl")
        try Data([0xFF, 0xFE, 0x00]).write(to: URL(fileURLWithPath: binary))
        #expect(throws: DatasetError(file: binary, reason: "is not UTF-8 text")) { try loadJSONL(path: binary) }
        #expect(throws: DatasetError.self) { try writeJSONL([], path: "/nonexistent-dir/x.jsonl") }
    }
}
