import CBLAS
import Foundation

/// How completions are sampled. The behaviour log-prob of each token is log softmax(logits / T) at the
/// sampled token — the distribution before top-p truncation, as verl records it — or, for greedy
/// decoding (T = 0), log softmax(logits).
public struct SamplingOptions: Sendable {
    public var temperature: Float
    public var topP: Float
    public var maxNewTokens: Int
    /// Generation of a sequence ends after this token (which is kept in the completion).
    public var stopToken: Int32?
    public var seed: UInt64

    public init(temperature: Float = 1, topP: Float = 1, maxNewTokens: Int = 16,
                stopToken: Int32? = CharTokenizer.eos, seed: UInt64 = 0) {
        self.temperature = temperature
        self.topP = topP
        self.maxNewTokens = maxNewTokens
        self.stopToken = stopToken
        self.seed = seed
    }
}

public struct Completion: Sendable, Equatable {
    public var tokens: [Int32]
    /// Behaviour log-prob of each token in `tokens`.
    public var logProbs: [Float]
    /// Whether generation ended on the stop token (rather than the length limit).
    public var stopped: Bool
}

/// The KV cache, one block per (layer, sequence, kv head), written in place. Keys are stored in tiles
/// of eight positions, each tile transposed (head_dim × 8), so decode attention scores eight positions
/// with one vector multiply-add per component and reads the keys front to back; values are rows
/// (position, head_dim). `stride` is the longest sequence rounded up to 8, so the last tile is whole.
final class KVCache {
    let layers: Int, kvHeads: Int, headDim: Int
    var kvDim: Int { kvHeads * headDim }
    private(set) var sequences = 0, stride = 0
    private(set) var k = FloatBuffer(count: 0), v = FloatBuffer(count: 0)
    var lengths: [Int] = []
    init(layers: Int, kvHeads: Int, headDim: Int) {
        self.layers = layers
        self.kvHeads = kvHeads
        self.headDim = headDim
    }
    /// Empties the cache for a new batch, re-using its memory when it is large enough.
    func reset(sequences: Int, maxLen: Int) {
        self.sequences = sequences
        stride = (maxLen + 7) / 8 * 8
        let need = layers * sequences * stride * kvDim
        if k.count < need {
            k = FloatBuffer(count: need)
            v = FloatBuffer(count: need)
        }
        lengths = [Int](repeating: 0, count: sequences)
    }
    /// Gives sequence `to` a copy of sequence `from`'s first `count` positions, in every layer and kv
    /// head (whole key tiles: positions past `count` in the last one are overwritten before they are read).
    func copyPositions(from: Int, to: Int, count: Int) {
        let keyFloats = (count + 7) / 8 * 8 * headDim, valueFloats = count * headDim
        for l in 0..<layers {
            for h in 0..<kvHeads {
                let src = block(l, from, h), dst = block(l, to, h)
                (k.ptr + dst).update(from: k.ptr + src, count: keyFloats)
                (v.ptr + dst).update(from: v.ptr + src, count: valueFloats)
            }
        }
        lengths[to] = count
    }
    /// Where the block of (layer, sequence, kv head) starts, in `k` and in `v`.
    @inline(__always) func block(_ l: Int, _ s: Int, _ head: Int) -> Int {
        ((l * sequences + s) * kvHeads + head) * stride * headDim
    }
}

extension Transformer {
    /// Samples a completion for every prompt, batching all live sequences through each matrix product.
    /// Sequence i draws from its own random stream (seed, i), so results don't depend on batch size.
    /// Identical prompts (a rollout group's G samples of one prompt) are run through the model once: the
    /// first sequence with that prompt prefills it, the others copy its cache and draw their first token
    /// from its logits. `sharePrompts: false` prefills every sequence on its own (for tests).
    public func generate(prompts: [[Int32]], options: SamplingOptions) throws -> [Completion] {
        try generate(prompts: prompts, options: options, sharePrompts: true)
    }

    func generate(prompts: [[Int32]], options: SamplingOptions, sharePrompts: Bool) throws -> [Completion] {
        guard !prompts.isEmpty else { return [] }
        for p in prompts { try checkTokens(p) }
        if let empty = prompts.firstIndex(where: { $0.isEmpty }) {
            throw ModelError.input("Prompt \(empty) is empty; a prompt needs at least one token (e.g. BOS).")
        }
        guard options.temperature >= 0, options.topP > 0, options.topP <= 1, options.maxNewTokens >= 0 else {
            throw ModelError.input("Sampling needs temperature ≥ 0, 0 < top-p ≤ 1 and max new tokens ≥ 0.")
        }
        let maxLen = prompts.map(\.count).max()! + options.maxNewTokens
        guard maxLen <= config.maxPositionEmbeddings else {
            throw ModelError.input("Prompt plus \(options.maxNewTokens) new tokens is \(maxLen) positions, more than max_position_embeddings \(config.maxPositionEmbeddings).")
        }
        let cache = kvCache
        cache.reset(sequences: prompts.count, maxLen: maxLen)
        var rngs = (0..<prompts.count).map { SplitMix64.stream(seed: options.seed, index: UInt64($0)) }
        var out = prompts.map { _ in Completion(tokens: [], logProbs: [], stopped: false) }
        var live = Array(0..<prompts.count)
        var step = 0
        // Which sequence prefills each one's prompt (itself, or the first with the same tokens), and that
        // prefill's row among the logits the prefill returns.
        var source = Array(0..<prompts.count), prefillRow = [Int](repeating: 0, count: prompts.count)
        var firstWith: [[Int32]: Int] = [:], prefilled = 0
        for (s, p) in prompts.enumerated() {
            if sharePrompts, let f = firstWith[p] {
                source[s] = f
                prefillRow[s] = prefillRow[f]
            } else {
                firstWith[p] = s
                prefillRow[s] = prefilled
                prefilled += 1
            }
        }
        // Prefill with every distinct prompt's tokens, then one token per live sequence per step.
        var rows: [(seq: Int, token: Int32)] = prompts.enumerated().flatMap { s, p in source[s] == s ? p.map { (s, $0) } : [] }
        let vocab = config.vocabSize
        while !live.isEmpty && step < options.maxNewTokens {
            let logits = incremental(rows: rows, cache: cache)
            if step == 0 {
                for s in live where source[s] != s { cache.copyPositions(from: source[s], to: s, count: prompts[s].count) }
            }
            var next: [(seq: Int, token: Int32)] = []
            for (k, s) in live.enumerated() {
                let row = step == 0 ? prefillRow[s] : k
                let (tok, lp) = sample(logits: logits, row: row, vocab: vocab, options: options, rng: &rngs[s])
                out[s].tokens.append(tok)
                out[s].logProbs.append(lp)
                if tok == options.stopToken { out[s].stopped = true } else { next.append((s, tok)) }
            }
            live = next.map(\.seq)
            rows = next
            step += 1
        }
        return out
    }

    /// Runs `rows` (new tokens, grouped by sequence in order) through the model with the cache and
    /// returns the logits of the last new token of each sequence present, in order of appearance.
    /// The residual stream stays in one buffer: each block's output is added into it by the matrix
    /// product itself (β = 1), so no separate add pass and no zeroing pass. In a prefill (several rows
    /// of one sequence), the last layer's keys and values are cached for every row, but its attention,
    /// output projection and MLP run only for each sequence's last row: nothing reads the others'.
    func incremental(rows: [(seq: Int, token: Int32)], cache: KVCache) -> [Float] {
        let n = rows.count, c = config.hiddenSize, heads = config.numAttentionHeads
        let kvHeads = config.numKeyValueHeads, d = config.headDim, hd = heads * d, kvd = config.kvDim
        let inter = config.intermediateSize, vocab = config.vocabSize, eps = Float(config.rmsNormEps)
        let group = heads / kvHeads, scale = 1 / Float(d).squareRoot()
        let p = parameters.ptr, L = layout, stride = cache.stride
        let qkvDim = hd + 2 * kvd

        var positions = [Int32](repeating: 0, count: n)
        var lastRows: [Int] = []
        for (i, r) in rows.enumerated() {
            positions[i] = Int32(cache.lengths[r.seq])
            cache.lengths[r.seq] += 1
            if i + 1 == n || rows[i + 1].seq != r.seq { lastRows.append(i) }
        }
        let m = lastRows.count
        // Scratch, re-used across calls: x | ln | qkv | att | gu | h | scores | normed | logits.
        var off = 0
        func take(_ k: Int) -> Int { defer { off += k }; return off }
        let oX = take(n * c), oLn = take(n * c), oQkv = take(n * qkvDim), oAtt = take(n * hd)
        let oGu = take(n * 2 * inter), oH = take(n * inter), oScores = take(stride)
        let oNormed = take(m * c), oLogits = take(m * vocab)
        let sb = decodeScratch.reserve(off)
        let x = sb + oX, ln = sb + oLn, qkv = sb + oQkv, att = sb + oAtt, gu = sb + oGu, hbuf = sb + oH
        let scores = sb + oScores
        for (i, r) in rows.enumerated() {
            (x + i * c).update(from: p + L.embed + Int(r.token) * c, count: c)
        }
        let allRows = Array(0..<n), lastLayer = config.numHiddenLayers - 1
        positions.withUnsafeBufferPointer { posBuffer in
            let pos = posBuffer.baseAddress!
            for l in 0..<config.numHiddenLayers {
                let W = L.layers[l]
                // The rows that go on past the cache writes: all, or in the last layer each sequence's last.
                let attend = l == lastLayer ? lastRows : allRows, na = attend.count
                rmsnormForward(ln, nil, x, p + W.inputNorm, n: n, c: c, eps: eps)
                linearForward(qkv, ln, p + W.q, n: n, inDim: c, outDim: qkvDim)
                ropeApply(qkv, positions: pos, n: n, heads: heads, headDim: d, rowStride: qkvDim, tables: rope, inverse: false)
                ropeApply(qkv + hd, positions: pos, n: n, heads: kvHeads, headDim: d, rowStride: qkvDim, tables: rope, inverse: false)
                for (i, r) in rows.enumerated() {
                    let t = Int(pos[i])
                    for h in 0..<kvHeads {
                        let b = cache.block(l, r.seq, h)
                        storeKey(cache.k.ptr + b, position: t, qkv + i * qkvDim + hd + h * d, d: d)
                        (cache.v.ptr + b + t * d).update(from: qkv + i * qkvDim + hd + kvd + h * d, count: d)
                    }
                }
                for (k, i) in attend.enumerated() {
                    let len = Int(pos[i]) + 1, seq = rows[i].seq
                    for h in 0..<heads {
                        let b = cache.block(l, seq, h / group)
                        // Hint the next head's (or next row's first head's) keys and values into cache while
                        // this one computes: each block is a short run the hardware prefetcher starts late on.
                        let (nk, nh) = h + 1 < heads ? (k, h + 1) : (k + 1, 0)
                        if nk < na, nh % group == 0 {
                            let ni = attend[nk]
                            let nb = cache.block(l, rows[ni].seq, nh / group), bytes = (Int(pos[ni]) + 1) * d * 4
                            let kp = UnsafeRawPointer(cache.k.ptr + nb), vp = UnsafeRawPointer(cache.v.ptr + nb)
                            var o = 0
                            while o < bytes { dots_prefetch(kp + o); dots_prefetch(vp + o); o += 64 }
                        }
                        attendTiled(q: qkv + i * qkvDim + h * d, kT: cache.k.ptr + b, v: cache.v.ptr + b,
                                    vStride: d, len: len, d: d, scale: scale, scores: scores, out: att + k * hd + h * d)
                    }
                }
                // Those rows' residuals move up to the front (attend[k] ≥ k: a row is read before it is overwritten).
                if na < n { for (k, i) in attend.enumerated() where i != k { (x + k * c).update(from: x + i * c, count: c) } }
                linearForward(x, att, p + W.o, n: na, inDim: hd, outDim: c, accumulate: true)
                rmsnormForward(ln, nil, x, p + W.postNorm, n: na, c: c, eps: eps)
                linearForward(gu, ln, p + W.gate, n: na, inDim: c, outDim: 2 * inter)
                swigluForward(hbuf, gu, n: na, inter: inter)
                linearForward(x, hbuf, p + W.down, n: na, inDim: inter, outDim: c, accumulate: true)
            }
        }
        // Final norm and LM head: x's first m rows are now each sequence's last row.
        let normed = sb + oNormed, logits = sb + oLogits
        rmsnormForward(normed, nil, x, p + L.finalNorm, n: m, c: c, eps: eps)
        linearForward(logits, normed, p + L.lmHead, n: m, inDim: c, outDim: vocab)
        return Array(UnsafeBufferPointer(start: logits, count: m * vocab))
    }

    /// Draws one token from row `row` of `logits`; returns it with its behaviour log-prob.
    func sample(logits: [Float], row: Int, vocab: Int, options: SamplingOptions,
                rng: inout SplitMix64) -> (Int32, Float) {
        let z = Array(logits[(row * vocab)..<((row + 1) * vocab)])
        let t = options.temperature > 0 ? options.temperature : 1
        let mx = z.max()!
        var probs = z.map { expf(($0 - mx) / t) }
        let sum = probs.reduce(0, +)
        for j in 0..<vocab { probs[j] /= sum }
        let logSum = logf(sum)
        func logProb(_ j: Int) -> Float { (z[j] - mx) / t - logSum }
        if options.temperature == 0 {
            let j = z.indices.max { z[$0] < z[$1] }!
            return (Int32(j), logProb(j))
        }
        var candidates = Array(0..<vocab)
        var mass: Float = 1
        if options.topP < 1 {
            candidates.sort { probs[$0] > probs[$1] }
            var cum: Float = 0, keep = 0
            while keep < vocab { cum += probs[candidates[keep]]; keep += 1; if cum >= options.topP { break } }
            candidates = Array(candidates[0..<keep])
            mass = cum
        }
        let u = rng.nextFloat() * mass
        var acc: Float = 0
        for j in candidates {
            acc += probs[j]
            if u < acc { return (Int32(j), logProb(j)) }
        }
        let j = candidates.last!
        return (Int32(j), logProb(j))
    }
}
