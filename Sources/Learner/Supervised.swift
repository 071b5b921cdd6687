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
        var seqs: [[Int32]] = [], starts: [Int] = []
        for _ in 0..<settings.batchSize {
            let e = examples[Int(rng.next() % UInt64(examples.count))]
            seqs.append(e.tokens)
            starts.append(e.answerStart)
        }
        let batch = TokenBatch(sequences: seqs)
        var w = [Float](repeating: 0, count: batch.rowCount)
        for (s, a) in starts.enumerated() {
            // Row i predicts token i+1: rows answerStart−1 … end−2 predict the answer and EOS.
            for i in (batch.seqStarts[s] + a - 1)..<(batch.seqStarts[s + 1] - 1) { w[i] = 1 }
        }
        optimizer.learningRate = learningRate(progress: progress)
        model.zeroGradients()
        let r = try model.loss(batch, .crossEntropy(weights: w))
        optimizer.update(model)
        step += 1
        return (r.loss, batch.rowCount)
    }

    public func learningRate(progress: Double) -> Float {
        let warm = min(1, Float(step + 1) / Float(max(1, settings.warmupSteps)))
        let decayStart = 1 - settings.decayFraction
        guard progress > decayStart, settings.decayFraction > 0 else { return settings.learningRate * warm }
        let t = Float(min(1, (progress - decayStart) / settings.decayFraction))
        return settings.learningRate * warm * (1 - t * (1 - settings.finalLRFraction))
    }
}
