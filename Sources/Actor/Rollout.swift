import Foundation
import Model
import Tasks

/// One sampled completion of a prompt, scored by the task's verifier.
public struct ScoredCompletion: Sendable {
    public var tokens: [Int32]
    /// Behaviour log-prob of each token under the sampling distribution.
    public var logProbs: [Float]
    public var text: String
    public var reward: Double
}

/// The G completions of one prompt: a rollout group before it goes on the wire.
public struct ProblemRollout: Sendable {
    public var problem: Problem
    public var promptTokens: [Int32]
    public var completions: [ScoredCompletion]
    /// Mean reward over the group: the paper's adaptive difficulty is 1 minus this.
    public var passRate: Double { completions.isEmpty ? 0 : completions.map(\.reward).reduce(0, +) / Double(completions.count) }
}

/// Prompt text → tokens as the policy sees them: BOS, then the prompt's characters. Completions are the
/// answer's characters then EOS, so supervised targets and sampled completions have the same shape.
public enum PromptFormat {
    public static func promptTokens(_ p: Problem, _ tok: CharTokenizer) throws -> [Int32] {
        do { return try tok.encode(p.prompt) } catch {
            throw ModelError.input("Problem \(p.id) (\(String(reflecting: p.prompt))): \(error)")
        }
    }

    public static func answerTokens(_ p: Problem, _ tok: CharTokenizer) throws -> [Int32] {
        do { return try tok.encode(p.answer, addBOS: false) + [CharTokenizer.eos] } catch {
            throw ModelError.input("Problem \(p.id) answer \(String(reflecting: p.answer)): \(error)")
        }
    }
}

/// Samples G completions per problem with the KV cache and scores them: the actor's work, and the
/// evaluator's and the coordinator's reference rollouts too.
public final class RolloutEngine: @unchecked Sendable {
    public let model: Transformer
    public let tokenizer: CharTokenizer
    public let verifier: any Verifier
    /// Sequences per batched `generate` call (memory for the KV cache grows with it).
    public var maxBatch = 256

    public init(model: Transformer, tokenizer: CharTokenizer, verifier: any Verifier = ExactMatchVerifier()) {
        self.model = model
        self.tokenizer = tokenizer
        self.verifier = verifier
    }

    /// `samples` completions of every problem. Chunk k of the work samples with seed (options.seed, k),
    /// so the result depends on the seed and the problem order only.
    public func rollout(_ problems: [Problem], samples: Int, options: SamplingOptions,
                        progress: ((Int, Int) -> Void)? = nil) throws -> [ProblemRollout] {
        precondition(samples >= 1)
        var out = try problems.map { ProblemRollout(problem: $0, promptTokens: try PromptFormat.promptTokens($0, tokenizer), completions: []) }
        let jobs = out.indices.flatMap { i in Array(repeating: i, count: samples) }
        var start = 0, chunk: UInt64 = 0
        while start < jobs.count {
            let slice = jobs[start..<min(start + maxBatch, jobs.count)]
            var opts = options
            opts.seed = SplitMix64.stream(seed: options.seed, index: chunk).state
            let completions = try model.generate(prompts: slice.map { out[$0].promptTokens }, options: opts)
            for (i, c) in zip(slice, completions) {
                let text = tokenizer.decode(c.tokens)
                let reward = c.stopped ? verifier.reward(completion: text, answer: out[i].problem.answer) : 0
                out[i].completions.append(ScoredCompletion(tokens: c.tokens, logProbs: c.logProbs, text: text, reward: reward))
            }
            start += slice.count
            chunk += 1
            progress?(start, jobs.count)
        }
        return out
    }
}

/// Accuracy over rollouts, overall and per (family, level).
public struct EvaluationReport: Sendable, Codable {
    public struct Cell: Sendable, Codable {
        public var family: String
        public var level: Int
        public var problems: Int
        public var accuracy: Double
    }
    public var accuracy: Double
    public var problems: Int
    public var samples: Int
    public var temperature: Double
    public var cells: [Cell]

    public init(_ rollouts: [ProblemRollout], samples: Int, temperature: Double) {
        var sums: [String: (family: String, level: Int, n: Int, acc: Double)] = [:]
        for r in rollouts {
            let key = "\(r.problem.family)#\(r.problem.level)"
            var cell = sums[key] ?? (r.problem.family, r.problem.level, 0, 0)
            cell.n += 1
            cell.acc += r.passRate
            sums[key] = cell
        }
        cells = sums.values.map { Cell(family: $0.family, level: $0.level, problems: $0.n, accuracy: $0.acc / Double($0.n)) }
            .sorted { ($0.family, $0.level) < ($1.family, $1.level) }
        problems = rollouts.count
        accuracy = rollouts.isEmpty ? 0 : rollouts.map(\.passRate).reduce(0, +) / Double(rollouts.count)
        self.samples = samples
        self.temperature = temperature
    }

    public var table: String {
        var lines = ["family  level  problems  accuracy"]
        for c in cells {
            let family = c.family.padding(toLength: max(7, c.family.count), withPad: " ", startingAt: 0)
            lines.append(family + String(format: " %5d  %8d  %7.1f%%", c.level, c.problems, 100 * c.accuracy))
        }
        lines.append(String(format: "all            %8d  %7.1f%%   (%d sample(s) each, temperature %.2g)",
                            problems, 100 * accuracy, samples, temperature))
        return lines.joined(separator: "\n")
    }
}
