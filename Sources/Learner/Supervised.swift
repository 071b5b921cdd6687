import Foundation
import Model
import RolloutActor
import Tasks

/// Supervised pre-training on prompt → answer pairs: the loss is on the answer's tokens and EOS only.
/// It makes the base checkpoint RL starts from, and the source checkpoints of different strength that
/// the difficulty predictor learns from.
public final class SupervisedTrainer {
    public struct Settings: Sendable {
        public var batchSize = 64
        public var learningRate: Float = 1e-3
        public var warmupSteps = 100
        /// The learning rate decays linearly to `finalLRFraction` over the last `decayFraction` of training.
        public var decayFraction = 0.3
        public var finalLRFraction: Float = 0.1
        public var weightDecay: Float = 0.01
        public var seed: UInt64 = 1
        /// Probability that a drawn example's answer carries one slip: one digit or letter replaced by
        /// another of its kind, drawn afresh each time the example is used (a corpus with careless errors,
        /// as web text has; a verifier-rewarded fine-tune can then remove them). 0 = clean answers.
        public var slipRate = 0.0
        public init() {}
    }

    public let model: Transformer
    public let tokenizer: CharTokenizer
    public let settings: Settings
    public let optimizer: AdamW
    private let examples: [(tokens: [Int32], answerStart: Int)]
    private var rng: SplitMix64
    public private(set) var step = 0

    public init(model: Transformer, tokenizer: CharTokenizer, problems: [Problem], settings: Settings) throws {
        precondition(!problems.isEmpty, "no training problems")
        self.model = model
        self.tokenizer = tokenizer
        self.settings = settings
        optimizer = AdamW(model: model, learningRate: settings.learningRate, weightDecay: settings.weightDecay)
        examples = try problems.map { p in
            let prompt = try PromptFormat.promptTokens(p, tokenizer)
            return (prompt + (try PromptFormat.answerTokens(p, tokenizer)), prompt.count)
        }
        rng = SplitMix64(seed: settings.seed)
    }

    /// One step at training progress `progress` ∈ [0, 1] (for the schedule); returns the mean loss per
    /// answer token and the number of tokens processed.
    public func step(progress: Double) throws -> (loss: Double, tokens: Int) {
        let drawn = drawBatch()
        let seqs = drawn.map(\.tokens), starts = drawn.map(\.answerStart)
        let batch = TokenBatch(sequences: seqs)
        var w = [Float](repeating: 0, count: batch.rowCount)
        for (s, a) in starts.enumerated() {
            // Row i predicts token i+1: rows answerStart−1 … end−2 predict the answer and EOS.
            for i in (batch.seqStarts[s] + a - 1)..<(batch.seqStarts[s + 1] - 1) { w[i] = 1 }
        }
        optimizer.learningRate = learningRate(progress: progress)
        let r = try model.loss(batch, .crossEntropy(weights: w), gradients: .replace)
        optimizer.update(model)
        step += 1
        return (r.loss, batch.rowCount)
    }

    /// The next batch's examples, with slips applied at `slipRate`.
    func drawBatch() -> [(tokens: [Int32], answerStart: Int)] {
        (0..<settings.batchSize).map { _ in
            let e = examples[Int(rng.next() % UInt64(examples.count))]
            var tokens = e.tokens
            if settings.slipRate > 0, Double(rng.next() >> 11) * 0x1p-53 < settings.slipRate {
                Self.slip(&tokens, answerStart: e.answerStart, tokenizer: tokenizer, rng: &rng)
            }
            return (tokens, e.answerStart)
        }
    }

    /// Replaces one digit or lowercase letter of the answer (tokens from `answerStart`) by a different one
    /// of the same kind; leaves answers with neither unchanged.
    static func slip(_ tokens: inout [Int32], answerStart: Int, tokenizer: CharTokenizer, rng: inout SplitMix64) {
        let digits = Array("0123456789"), letters = Array("abcdefghijklmnopqrstuvwxyz")
        func kind(_ t: Int32) -> [Character]? {
            let k = Int(t) - 4
            guard k >= 0, k < tokenizer.characters.count else { return nil }
            let ch = tokenizer.characters[k]
            return ch.isASCII && ch.isNumber ? digits : (ch.isASCII && ch.isLowercase ? letters : nil)
        }
        let positions = (answerStart..<tokens.count).filter { kind(tokens[$0]) != nil }
        guard !positions.isEmpty else { return }
        let at = positions[Int(rng.next() % UInt64(positions.count))]
        let alphabet = kind(tokens[at])!
        let current = tokenizer.characters[Int(tokens[at]) - 4]
        let others = alphabet.filter { $0 != current }
        let replacement = others[Int(rng.next() % UInt64(others.count))]
        tokens[at] = (try? tokenizer.encode(String(replacement), addBOS: false).first) ?? tokens[at]
    }

    public func learningRate(progress: Double) -> Float {
        let warm = min(1, Float(step + 1) / Float(max(1, settings.warmupSteps)))
        let decayStart = 1 - settings.decayFraction
        guard progress > decayStart, settings.decayFraction > 0 else { return settings.learningRate * warm }
        let t = Float(min(1, (progress - decayStart) / settings.decayFraction))
        return settings.learningRate * warm * (1 - t * (1 - settings.finalLRFraction))
    }
}
