import Foundation
import Testing

/// Bad input through the real command line: each mistake is one sentence that names the file (and the
/// line or key), the process exits non-zero without a crash or stack trace, and nothing on disk is touched.
@Suite("bad input, command line")
struct BadInputTests {
    static let configs: [(name: String, text: String, mentions: [String])] = [
        ("unclosed table", "[hosts.local\naddress = \"127.0.0.1\"\n", ["bad.conf:1:"]),
        ("unknown key", "[hosts.local]\naddress = \"127.0.0.1\"\nactors = 1\n[roles]\ncoordinator = \"local\"\nlearner = \"local\"\n[training]\nbatch_sise = 4\n", ["bad.conf:8:", "batch_sise"]),
        ("wrong type", "[hosts.local]\naddress = \"127.0.0.1\"\nactors = \"two\"\n[roles]\ncoordinator = \"local\"\nlearner = \"local\"\n", ["bad.conf:3:", "hosts.local.actors"]),
        ("role on no host", "[hosts.local]\naddress = \"127.0.0.1\"\nactors = 1\n[roles]\ncoordinator = \"elsewhere\"\nlearner = \"local\"\n", ["bad.conf:5:", "elsewhere"]),
        ("not text", "\u{0}\u{1}\u{2}garbage\u{FFFD}", ["bad.conf"]),
    ]

    @Test("A malformed cluster.conf: one sentence naming the file and where, exit non-zero, no run folder", arguments: configs.indices)
    func malformedConfig(_ i: Int) throws {
        let (name, text, mentions) = Self.configs[i]
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let conf = dir.appendingPathComponent("bad.conf")
        try text.write(to: conf, atomically: true, encoding: .utf8)
        let (status, output) = try runTool(try dotsPath(), ["launch", "--config", conf.path, "--run-dir", dir.appendingPathComponent("run").path])
        #expect(status != 0, "\(name): exit status 0")
        // The loader reports every problem it finds, one sentence a line, each naming file, line and key.
        expectSentences(output, mentions: mentions, name, eachLineNames: "bad.conf")
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("run").path), "\(name): a run folder was made")
    }

    @Test("Bad dataset lines, truncated and mismatched checkpoints, a resume with nothing to resume: one sentence each")
    func badFiles() throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let dots = try dotsPath()
        let ckpt = dir.appendingPathComponent("ckpt")
        #expect(try runTool(dots, ["model", "init", "--size", "tiny", "--seed", "1", "--out", ckpt.path]).status == 0)

        let data = dir.appendingPathComponent("bad.jsonl")
        try "{\"prompt\": \"1+1=\", \"answer\": \"2\"}\n{\"prompt\": 7}\n".write(to: data, atomically: true, encoding: .utf8)
        var (status, output) = try runTool(dots, ["eval", "--checkpoint", ckpt.path, "--dataset", data.path])
        #expect(status != 0)
        expectOneSentence(output, mentions: ["bad.jsonl", "line 2"], "dataset")

        // Truncated weights.
        let truncated = dir.appendingPathComponent("truncated")
        try FileManager.default.copyItem(at: ckpt, to: truncated)
        let weights = truncated.appendingPathComponent("model.safetensors")
        let bytes = try Data(contentsOf: weights)
        try bytes.prefix(bytes.count / 3).write(to: weights)
        (status, output) = try runTool(dots, ["eval", "--checkpoint", truncated.path])
        #expect(status != 0)
        expectOneSentence(output, mentions: ["model.safetensors"], "truncated checkpoint")

        // Weights of one shape, a config.json of another.
        let mismatched = dir.appendingPathComponent("mismatched")
        try FileManager.default.copyItem(at: ckpt, to: mismatched)
        let configURL = mismatched.appendingPathComponent("config.json")
        var json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as? [String: Any])
        json["hidden_size"] = ((json["hidden_size"] as? Int) ?? 64) * 2
        try JSONSerialization.data(withJSONObject: json).write(to: configURL)
        (status, output) = try runTool(dots, ["eval", "--checkpoint", mismatched.path])
        #expect(status != 0)
        expectOneSentence(output, mentions: ["mismatched"], "mismatched checkpoint")
        #expect(try Data(contentsOf: mismatched.appendingPathComponent("model.safetensors")) == Data(contentsOf: ckpt.appendingPathComponent("model.safetensors")),
                "the checkpoint's weights were modified")

        (status, output) = try runTool(dots, ["launch", "--resume", dir.appendingPathComponent("no-such-run").path])
        #expect(status != 0)
        expectOneSentence(output, mentions: ["--resume", "no complete checkpoint"], "resume")

        // DOTS without a predictor, or with a folder that is not one: said before any process starts.
        let conf = dir.appendingPathComponent("dots.conf"), runDir = dir.appendingPathComponent("dotsrun")
        try "[hosts.local]\naddress = \"127.0.0.1\"\nactors = 1\n[roles]\ncoordinator = \"local\"\nlearner = \"local\"\n[training]\nselection = \"dots\"\n"
            .write(to: conf, atomically: true, encoding: .utf8)
        (status, output) = try runTool(dots, ["launch", "--config", conf.path, "--run-dir", runDir.path])
        #expect(status != 0)
        expectOneSentence(output, mentions: ["training.predictor", "dots predictor train"], "dots without a predictor")
        (status, output) = try runTool(dots, ["launch", "--config", conf.path, "--run-dir", runDir.path, "--set", "training.predictor=\(ckpt.path)"])
        #expect(status != 0)
        expectOneSentence(output, mentions: ["not a predictor folder", ckpt.path], "dots with a checkpoint for a predictor")
        #expect(!FileManager.default.fileExists(atPath: runDir.path), "a run folder was made")
    }
}

/// The output is one line starting "Error:" (or, with `eachLineNames`, lines that each name that file),
/// naming each of `mentions`, with no crash report.
private func expectSentences(_ output: String, mentions: [String], _ what: String, eachLineNames file: String? = nil,
                             sourceLocation: SourceLocation = #_sourceLocation) {
    let lines = output.split(separator: "\n").filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
    #expect(lines.first?.hasPrefix("Error: ") == true, "\(what): expected \"Error: …\", got:\n\(output)", sourceLocation: sourceLocation)
    if let file {
        #expect(!lines.isEmpty && lines.allSatisfy { $0.contains(file) }, "\(what): a line does not name \(file):\n\(output)", sourceLocation: sourceLocation)
    } else {
        #expect(lines.count == 1, "\(what): expected one line, got:\n\(output)", sourceLocation: sourceLocation)
    }
    for m in mentions { #expect(output.contains(m), "\(what): the message does not name \(m): \(output)", sourceLocation: sourceLocation) }
    for crash in ["Fatal error", "Stack dump", "Current stack trace", "Illegal instruction", "Segmentation"] {
        #expect(!output.contains(crash), "\(what): \(crash) in:\n\(output)", sourceLocation: sourceLocation)
    }
}

private func expectOneSentence(_ output: String, mentions: [String], _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
    expectSentences(output, mentions: mentions, what, sourceLocation: sourceLocation)
}

private func scratch() throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dots-badinput-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir
}

private func dotsPath() throws -> String { try dotsBinary().path }
