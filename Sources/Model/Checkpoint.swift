import Foundation

/// A checkpoint folder: `model.safetensors` (Hugging Face Llama names, [out, in] layout, F32),
/// `config.json` (Llama keys) and `tokenizer.json`. Roles add their own files beside these.
public enum Checkpoint {
    public static let weightsFile = "model.safetensors", configFile = "config.json", tokenizerFile = "tokenizer.json"

    public static func save(_ model: Transformer, tokenizer: CharTokenizer, to dir: URL,
                            metadata: [String: String] = [:]) throws {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let p = model.parameters
        let tensors = model.layout.entries.map { e in
            (e.name, SafeTensors.float32(UnsafeBufferPointer(start: p.ptr + e.offset, count: e.count), shape: e.shape))
        }
        var meta = metadata
        meta["format"] = "pt"
        try SafeTensors.write(tensors, metadata: meta, to: dir.appendingPathComponent(weightsFile))
        let json = try JSONSerialization.data(withJSONObject: model.config.jsonObject(), options: [.prettyPrinted, .sortedKeys])
        try json.write(to: dir.appendingPathComponent(configFile), options: .atomic)
        try tokenizer.save(to: dir.appendingPathComponent(tokenizerFile))
    }

    /// Reads `config.json`, naming the missing or mistyped key.
    public static func loadConfig(_ dir: URL) throws -> ModelConfig {
        let url = dir.appendingPathComponent(configFile)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir.path, isDirectory: &isDir), isDir.boolValue else {
            throw ModelError.checkpoint("No checkpoint folder at \(dir.path).")
        }
        guard let data = try? Data(contentsOf: url) else {
            throw ModelError.checkpoint("The checkpoint \(dir.path) has no readable \(configFile).")
        }
        guard let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ModelError.checkpoint("\(url.path) is not a JSON object.")
        }
        func int(_ k: String) throws -> Int {
            guard let v = obj[k] else { throw ModelError.checkpoint("\(url.path) is missing the key \"\(k)\".") }
            guard type(of: v) != Bool.self, let n = v as? NSNumber, n.doubleValue == n.doubleValue.rounded() else {
                throw ModelError.checkpoint("\(url.path): \"\(k)\" must be an integer.")
            }
            return n.intValue
        }
        func double(_ k: String, _ def: Double) throws -> Double {
            guard let v = obj[k] else { return def }
            guard let n = v as? NSNumber else { throw ModelError.checkpoint("\(url.path): \"\(k)\" must be a number.") }
            return n.doubleValue
        }
        if let t = obj["model_type"] as? String, t != "llama" {
            throw ModelError.checkpoint("\(url.path): model_type is \"\(t)\", only \"llama\" is supported.")
        }
        let heads = try int("num_attention_heads")
        let cfg = ModelConfig(
            vocabSize: try int("vocab_size"), hiddenSize: try int("hidden_size"),
            intermediateSize: try int("intermediate_size"), numHiddenLayers: try int("num_hidden_layers"),
            numAttentionHeads: heads, numKeyValueHeads: obj["num_key_value_heads"] == nil ? heads : try int("num_key_value_heads"),
            rmsNormEps: try double("rms_norm_eps", 1e-6), ropeTheta: try double("rope_theta", 10_000),
            maxPositionEmbeddings: try int("max_position_embeddings"),
            tieWordEmbeddings: (obj["tie_word_embeddings"] as? Bool) ?? false)
        do { try cfg.validate() } catch let e as ModelError {
            throw ModelError.checkpoint("\(url.path): \(e.description)")
        }
        return cfg
    }

    /// Loads a checkpoint, validating every tensor's name, shape and dtype against `config.json`.
    public static func load(_ dir: URL) throws -> (model: Transformer, tokenizer: CharTokenizer) {
        let config = try loadConfig(dir)
        let model = try Transformer(config: config)
        let url = dir.appendingPathComponent(weightsFile)
        let (tensors, _) = try SafeTensors.read(url)
        for e in model.layout.entries {
            guard let t = tensors[e.name] else {
                throw ModelError.checkpoint("\(url.path) has no tensor \(e.name), which config.json requires.")
            }
            guard t.dtype == "F32" else {
                throw ModelError.checkpoint("\(url.path): tensor \(e.name) is \(t.dtype); Dots reads F32 only.")
            }
            guard t.shape == e.shape else {
                throw ModelError.checkpoint("\(url.path): tensor \(e.name) has shape \(t.shape) but config.json implies \(e.shape).")
            }
            t.data.withUnsafeBytes { raw in
                for i in 0..<e.count {
                    model.parameters.ptr[e.offset + i] = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)))
                }
            }
        }
        let known = Set(model.layout.entries.map(\.name))
        if let extra = tensors.keys.sorted().first(where: { !known.contains($0) }) {
            throw ModelError.checkpoint("\(url.path) has an unexpected tensor \(extra) for this config.json (tie_word_embeddings is \(config.tieWordEmbeddings)).")
        }
        let tokURL = dir.appendingPathComponent(tokenizerFile)
        let tokenizer = FileManager.default.fileExists(atPath: tokURL.path) ? try CharTokenizer.load(from: tokURL) : CharTokenizer.standard
        if tokenizer.vocabSize > config.vocabSize {
            throw ModelError.checkpoint("\(dir.path): the tokenizer has \(tokenizer.vocabSize) tokens but vocab_size is \(config.vocabSize).")
        }
        return (model, tokenizer)
    }
}
