import Foundation

/// The model's shape, with Hugging Face Llama's `config.json` key names so a checkpoint loads in
/// `transformers` as it is.
public struct ModelConfig: Codable, Equatable, Sendable {
    public var vocabSize: Int
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    public var numKeyValueHeads: Int
    public var rmsNormEps: Double
    public var ropeTheta: Double
    public var maxPositionEmbeddings: Int
    public var tieWordEmbeddings: Bool

    enum CodingKeys: String, CodingKey {
        case vocabSize = "vocab_size", hiddenSize = "hidden_size", intermediateSize = "intermediate_size"
        case numHiddenLayers = "num_hidden_layers", numAttentionHeads = "num_attention_heads"
        case numKeyValueHeads = "num_key_value_heads", rmsNormEps = "rms_norm_eps", ropeTheta = "rope_theta"
        case maxPositionEmbeddings = "max_position_embeddings", tieWordEmbeddings = "tie_word_embeddings"
    }

    public init(vocabSize: Int, hiddenSize: Int, intermediateSize: Int, numHiddenLayers: Int,
                numAttentionHeads: Int, numKeyValueHeads: Int, rmsNormEps: Double = 1e-5,
                ropeTheta: Double = 10_000, maxPositionEmbeddings: Int = 128, tieWordEmbeddings: Bool = true) {
        self.vocabSize = vocabSize
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.numHiddenLayers = numHiddenLayers
        self.numAttentionHeads = numAttentionHeads
        self.numKeyValueHeads = numKeyValueHeads
        self.rmsNormEps = rmsNormEps
        self.ropeTheta = ropeTheta
        self.maxPositionEmbeddings = maxPositionEmbeddings
        self.tieWordEmbeddings = tieWordEmbeddings
    }

    /// The benchmark size: hidden 256, 4 layers, 8 heads of 32, intermediate 704, tied; ≈ 3.2 M parameters.
    public static func small(vocabSize: Int = CharTokenizer.standard.vocabSize) -> ModelConfig {
        ModelConfig(vocabSize: vocabSize, hiddenSize: 256, intermediateSize: 704, numHiddenLayers: 4,
                    numAttentionHeads: 8, numKeyValueHeads: 8, maxPositionEmbeddings: 128)
    }

    /// A size for tests: fast even in debug builds, with grouped-query attention exercised.
    public static func tiny(vocabSize: Int = CharTokenizer.standard.vocabSize) -> ModelConfig {
        ModelConfig(vocabSize: vocabSize, hiddenSize: 32, intermediateSize: 64, numHiddenLayers: 2,
                    numAttentionHeads: 4, numKeyValueHeads: 2, maxPositionEmbeddings: 64)
    }

    public var headDim: Int { hiddenSize / numAttentionHeads }
    public var kvDim: Int { numKeyValueHeads * headDim }

    /// Checks the shape is one the kernels support; the message names the offending key.
    public func validate() throws {
        func fail(_ s: String) -> ModelError { .invalidConfig(s) }
        for (k, v) in [("vocab_size", vocabSize), ("hidden_size", hiddenSize), ("intermediate_size", intermediateSize),
                       ("num_hidden_layers", numHiddenLayers), ("num_attention_heads", numAttentionHeads),
                       ("num_key_value_heads", numKeyValueHeads), ("max_position_embeddings", maxPositionEmbeddings)]
        where v <= 0 { throw fail("\(k) must be positive, got \(v)") }
        if hiddenSize % numAttentionHeads != 0 {
            throw fail("hidden_size \(hiddenSize) is not a multiple of num_attention_heads \(numAttentionHeads)")
        }
        if numAttentionHeads % numKeyValueHeads != 0 {
            throw fail("num_attention_heads \(numAttentionHeads) is not a multiple of num_key_value_heads \(numKeyValueHeads)")
        }
        if headDim % 2 != 0 { throw fail("head dimension \(headDim) must be even for rotary embeddings") }
        if !(rmsNormEps > 0) { throw fail("rms_norm_eps must be positive") }
        if !(ropeTheta > 0) { throw fail("rope_theta must be positive") }
    }

    /// The `config.json` of a checkpoint: these keys plus Llama's constants.
    public func jsonObject() -> [String: Any] {
        [
            "model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_act": "silu",
            "torch_dtype": "float32", "vocab_size": vocabSize, "hidden_size": hiddenSize,
            "intermediate_size": intermediateSize, "num_hidden_layers": numHiddenLayers,
            "num_attention_heads": numAttentionHeads, "num_key_value_heads": numKeyValueHeads,
            "rms_norm_eps": rmsNormEps, "rope_theta": ropeTheta,
            "max_position_embeddings": maxPositionEmbeddings, "tie_word_embeddings": tieWordEmbeddings,
            "attention_bias": false, "mlp_bias": false,
        ]
    }
}

/// Errors a user can cause: each description is one sentence saying what and where.
public enum ModelError: Error, CustomStringConvertible, Equatable {
    case invalidConfig(String)
    case checkpoint(String)
    case tokenizer(String)
    case input(String)

    public var description: String {
        switch self {
        case .invalidConfig(let s): return "Invalid model config: \(s)."
        case .checkpoint(let s): return s
        case .tokenizer(let s): return s
        case .input(let s): return s
        }
    }
}
