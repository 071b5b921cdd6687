import ArgumentParser
import Foundation
import Model

/// Options every model-running command shares.
struct ComputeOptions: ParsableArguments {
    @Option(help: "OpenBLAS threads for this process (several Dots processes usually share a host).")
    var threads: Int = 1

    func apply() { setComputeThreads(threads) }
}

enum ModelSize: String, ExpressibleByArgument, CaseIterable {
    case small, tiny
    var config: ModelConfig { self == .small ? .small() : .tiny() }
}

struct ModelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model", abstract: "Create model checkpoints.", subcommands: [ModelInitCommand.self])
}

struct ModelInitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Write a randomly initialised checkpoint (Hugging Face Llama layout).",
        discussion: "small: hidden 256, 4 layers, 8 heads, intermediate 704, tied (≈3.2 M parameters). tiny: for tests.")

    @Option(help: "Model size: \(ModelSize.allCases.map(\.rawValue).joined(separator: " or ")).")
    var size: ModelSize = .small
    @Option(help: "Seed of the random initialisation.")
    var seed: UInt64 = 0
    @Option(help: "Checkpoint folder to write (created if missing).")
    var out: String

    func run() throws {
        let model = try Transformer(config: size.config)
        model.initialize(seed: seed)
        try Checkpoint.save(model, tokenizer: .standard, to: URL(fileURLWithPath: out))
        print("Wrote a \(size.rawValue) model (\(model.parameterCount) parameters) to \(out)")
    }
}

struct ScoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "score",
        abstract: "Print the log-probability the model gives each next token of a text.",
        discussion: "logprobs[i] = log p(tokens[i+1] | tokens[0…i]) at temperature 1; tokens start with BOS. Use it to check the model against another implementation.")

    @Option(help: "Checkpoint folder.") var checkpoint: String
    @Option(help: "Text to score.") var text: String
    @Flag(help: "Print {\"tokens\": […], \"logprobs\": […]} as JSON.") var json = false
    @OptionGroup var compute: ComputeOptions

    func run() throws {
        compute.apply()
        let (model, tok) = try Checkpoint.load(URL(fileURLWithPath: checkpoint))
        let tokens = try tok.encode(text)
        let lps = try model.targetLogProbs(TokenBatch(sequences: [tokens]))
        let logprobs = Array(lps.dropLast())
        if json {
            let obj: [String: Any] = ["tokens": tokens.map(Int.init), "logprobs": logprobs.map(Double.init)]
            print(String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), as: UTF8.self))
        } else {
            for (i, lp) in logprobs.enumerated() {
                print(String(format: "%4d %@ %9.4f", i + 1, String(reflecting: tok.decode([tokens[i + 1]])), lp))
            }
            print(String(format: "total log-prob %.4f over %d tokens", logprobs.reduce(0, +), logprobs.count))
        }
    }
}

struct SampleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sample", abstract: "Sample completions of a prompt with the KV cache.")

    @Option(help: "Checkpoint folder.") var checkpoint: String
    @Option(help: "Prompt text.") var prompt: String
    @Option(help: "Number of completions.") var n: Int = 4
    @Option(help: "Sampling temperature (0 = greedy).") var temperature: Float = 1
    @Option(name: .customLong("top-p"), help: "Nucleus sampling mass, in (0, 1].") var topP: Float = 1
    @Option(help: "Maximum new tokens per completion.") var maxTokens: Int = 32
    @Option(help: "Random seed.") var seed: UInt64 = 0
    @Flag(help: "Print JSON lines with tokens and behaviour log-probs.") var json = false
    @OptionGroup var compute: ComputeOptions

    func validate() throws {
        if n < 1 { throw ValidationError("--n must be at least 1.") }
    }

    func run() throws {
        compute.apply()
        let (model, tok) = try Checkpoint.load(URL(fileURLWithPath: checkpoint))
        let ids = try tok.encode(prompt)
        let opts = SamplingOptions(temperature: temperature, topP: topP, maxNewTokens: maxTokens, seed: seed)
        let outs = try model.generate(prompts: Array(repeating: ids, count: n), options: opts)
        for c in outs {
            if json {
                let obj: [String: Any] = ["text": tok.decode(c.tokens), "tokens": c.tokens.map(Int.init),
                                          "logprobs": c.logProbs.map(Double.init), "stopped": c.stopped]
                print(String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), as: UTF8.self))
            } else {
                print("\(prompt)\(tok.decode(c.tokens))\(c.stopped ? "" : "…")")
            }
        }
    }
}
