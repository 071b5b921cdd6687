/// Where each named tensor lives in the one flat parameter buffer. Gradients and AdamW moments use
/// the same offsets, so the optimizer is a single loop (llm.c's layout).
public struct ParameterLayout: Sendable {
    public struct Entry: Sendable, Equatable {
        /// Hugging Face Llama name, e.g. `model.layers.0.self_attn.q_proj.weight`.
        public let name: String
        /// Row-major shape, `[out, in]` for projections as in PyTorch.
        public let shape: [Int]
        public let offset: Int
        public var count: Int { shape.reduce(1, *) }
        /// Whether AdamW's weight decay applies (matrices yes, norm gains no).
        public var decays: Bool { shape.count == 2 }
    }

    /// Offsets of one block's tensors.
    struct Layer {
        var inputNorm = 0, q = 0, k = 0, v = 0, o = 0, postNorm = 0, gate = 0, up = 0, down = 0
    }

    public let entries: [Entry]
    public let totalCount: Int
    let embed: Int
    let layers: [Layer]
    let finalNorm: Int
    /// The LM head: the embedding itself when tied.
    let lmHead: Int

    public init(_ c: ModelConfig) {
        var entries: [Entry] = []
        var offset = 0
        func add(_ name: String, _ shape: [Int]) -> Int {
            entries.append(Entry(name: name, shape: shape, offset: offset))
            defer { offset += shape.reduce(1, *) }
            return offset
        }
        let C = c.hiddenSize, I = c.intermediateSize, HD = c.numAttentionHeads * c.headDim, KVD = c.kvDim
        embed = add("model.embed_tokens.weight", [c.vocabSize, C])
        var layers: [Layer] = []
        for l in 0..<c.numHiddenLayers {
            let p = "model.layers.\(l)."
            var L = Layer()
            L.inputNorm = add(p + "input_layernorm.weight", [C])
            L.q = add(p + "self_attn.q_proj.weight", [HD, C])
            L.k = add(p + "self_attn.k_proj.weight", [KVD, C])
            L.v = add(p + "self_attn.v_proj.weight", [KVD, C])
            L.o = add(p + "self_attn.o_proj.weight", [C, HD])
            L.postNorm = add(p + "post_attention_layernorm.weight", [C])
            L.gate = add(p + "mlp.gate_proj.weight", [I, C])
            L.up = add(p + "mlp.up_proj.weight", [I, C])
            L.down = add(p + "mlp.down_proj.weight", [C, I])
            layers.append(L)
        }
        self.layers = layers
        finalNorm = add("model.norm.weight", [C])
        lmHead = c.tieWordEmbeddings ? embed : add("lm_head.weight", [c.vocabSize, C])
        self.entries = entries
        totalCount = offset
    }

    public func entry(named name: String) -> Entry? { entries.first { $0.name == name } }

    /// Parameters that take part in matrix products (everything but norm gains); with a tied head the
    /// embedding counts once, as the LM head. Used for FLOP counts.
    public var matmulParameterCount: Int {
        entries.filter { $0.shape.count == 2 && $0.name != "model.embed_tokens.weight" }.map(\.count).reduce(0, +)
            + (entries.contains { $0.name == "lm_head.weight" } ? 0 : entries[0].count)
    }
}
