import Foundation

/// Sequences packed back to back (no padding): row i of every activation is token i of the batch.
/// Positions restart at 0 for each sequence; attention never crosses a sequence boundary, except into
/// a sequence's parent: a sequence may continue another one (a prompt shared by a group's completions,
/// computed once), its positions then start after the parent's rows and its attention sees every parent
/// row before its own. Targets stay within a sequence, except a sequence's last row, whose target may be
/// given (`lastTargets`): a sequence whose final token is only ever a target then needs no row for it.
public struct TokenBatch: Sendable {
    public let tokens: [Int32]
    /// Sequence s occupies rows seqStarts[s] ..< seqStarts[s+1].
    public let seqStarts: [Int]
    /// The sequence each one continues (an earlier one without a parent of its own), or −1.
    public let parents: [Int]
    /// The target of each sequence's last row, −1 for none.
    public let lastTargets: [Int32]

    public init(sequences: [[Int32]]) {
        self.init(sequences: sequences, parents: [Int](repeating: -1, count: sequences.count))
    }

    /// - Parameter parents: per sequence, the index of an earlier sequence with no parent whose rows it
    ///   continues, or −1.
    /// - Parameter lastTargets: per sequence, the token its last row predicts, or −1 (the default: none).
    public init(sequences: [[Int32]], parents: [Int], lastTargets: [Int32]? = nil) {
        precondition(parents.count == sequences.count, "one parent entry per sequence")
        for (s, p) in parents.enumerated() where p >= 0 {
            precondition(p < s && parents[p] < 0, "sequence \(s)'s parent \(p) must come earlier and have no parent")
        }
        let last = lastTargets ?? [Int32](repeating: -1, count: sequences.count)
        precondition(last.count == sequences.count, "one last target per sequence")
        var starts = [0], tokens: [Int32] = []
        for s in sequences { tokens += s; starts.append(tokens.count) }
        self.tokens = tokens
        seqStarts = starts
        self.parents = parents
        self.lastTargets = last
    }

    /// Rows of sequence s's parent (0 without one): the position of its first row.
    public func prefixLength(_ s: Int) -> Int {
        let p = parents[s]
        return p < 0 ? 0 : seqStarts[p + 1] - seqStarts[p]
    }

    public var rowCount: Int { tokens.count }
    public var sequenceCount: Int { seqStarts.count - 1 }

    /// The next-token target of each row; a sequence's last row has its `lastTargets` entry.
    public var targets: [Int32] {
        var t = [Int32](repeating: -1, count: tokens.count)
        for s in 0..<sequenceCount where seqStarts[s + 1] > seqStarts[s] {
            for i in seqStarts[s]..<(seqStarts[s + 1] - 1) { t[i] = tokens[i + 1] }
            t[seqStarts[s + 1] - 1] = lastTargets[s]
        }
        return t
    }
}

/// A decoder-only Llama: embedding → N × (RMSNorm → attention → residual → RMSNorm → SwiGLU → residual)
/// → RMSNorm → LM head. Parameters and gradients are flat buffers laid out by `ParameterLayout`.
/// Not thread-safe: one process, one owner.
public final class Transformer: @unchecked Sendable {
    public let config: ModelConfig
    public let layout: ParameterLayout
    public let parameters: FloatBuffer
    public let gradients: FloatBuffer
    let rope: RopeTables

    // Activations of the last forward, kept for the backward.
    private let acts = Scratch(), grads = Scratch()
    /// Generation's per-step buffers (`incremental`), kept so a decode step allocates nothing large.
    let decodeScratch = Scratch()
    /// The loss's dLoss/dlogits, kept between steps.
    let lossScratch = Scratch()
    private var lastBatch: TokenBatch?
    private var positions: [Int32] = []
    private var actOffsets = ActivationOffsets()
    /// The generation cache, kept between calls so its memory is allocated once.
    lazy var kvCache = KVCache(layers: config.numHiddenLayers, kvHeads: config.numKeyValueHeads, headDim: config.headDim)

    public init(config: ModelConfig) throws {
        try config.validate()
        self.config = config
        layout = ParameterLayout(config)
        parameters = FloatBuffer(count: layout.totalCount)
        gradients = FloatBuffer(count: layout.totalCount)
        rope = RopeTables(headDim: config.headDim, theta: config.ropeTheta, maxPositions: config.maxPositionEmbeddings)
    }

    /// A replica of `other` for data parallelism: the same parameters (one buffer, read by both), its own
    /// gradients, activations and caches. Its forward and backward may run on another thread at the same
    /// time as `other`'s, as long as nothing writes the parameters meanwhile.
    public init(sharingParametersOf other: Transformer) {
        config = other.config
        layout = other.layout
        parameters = other.parameters
        gradients = FloatBuffer(count: layout.totalCount)
        rope = other.rope
    }

    /// Random initialisation: N(0, 0.02) for matrices, residual outputs scaled by 1/√(2L) (GPT-2's
    /// rule, so depth doesn't blow up the residual stream), norm gains 1.
    public func initialize(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        let residualScale = 1 / Float(2 * config.numHiddenLayers).squareRoot()
        for e in layout.entries {
            if e.shape.count == 1 {
                for i in 0..<e.count { parameters.ptr[e.offset + i] = 1 }
                continue
            }
            let isResidualOut = e.name.hasSuffix("o_proj.weight") || e.name.hasSuffix("down_proj.weight")
            let std: Float = 0.02 * (isResidualOut ? residualScale : 1)
            for i in 0..<e.count { parameters.ptr[e.offset + i] = std * rng.nextGaussian() }
        }
    }

    public var parameterCount: Int { layout.totalCount }

    func checkTokens(_ tokens: [Int32]) throws {
        if let bad = tokens.first(where: { $0 < 0 || Int($0) >= config.vocabSize }) {
            throw ModelError.input("Token id \(bad) is outside the vocabulary of \(config.vocabSize).")
        }
    }

    struct ActivationOffsets {
        var perLayer = 0, xIn = 0, ln1 = 0, rstd1 = 0, qkv = 0, probs = 0, att = 0, xMid = 0
        var ln2 = 0, rstd2 = 0, gu = 0, h = 0
        var xOut = 0, lnf = 0, rstdf = 0, logits = 0, attScratch = 0, total = 0
        var probOffsets: [Int] = []  // per sequence, within a layer's probs block
    }

    private func planActivations(_ batch: TokenBatch) -> ActivationOffsets {
        let n = batch.rowCount, c = config.hiddenSize, hd = config.numAttentionHeads * config.headDim
        let kvd = config.kvDim, inter = config.intermediateSize, heads = config.numAttentionHeads
        var o = ActivationOffsets()
        var probTotal = 0
        var scratch = 0
        for s in 0..<batch.sequenceCount {
            o.probOffsets.append(probTotal)
            let t = batch.seqStarts[s + 1] - batch.seqStarts[s], pre = batch.prefixLength(s)
            probTotal += heads * t * (pre + t)
            scratch = max(scratch, attentionForwardScratch(t: t, prefix: pre, headDim: config.headDim))
        }
        var off = 0
        func take(_ k: Int) -> Int { defer { off += k }; return off }
        o.xIn = take(n * c); o.ln1 = take(n * c); o.rstd1 = take(n); o.qkv = take(n * (hd + 2 * kvd))
        o.probs = take(probTotal); o.att = take(n * hd); o.xMid = take(n * c)
        o.ln2 = take(n * c); o.rstd2 = take(n); o.gu = take(n * 2 * inter); o.h = take(n * inter)
        o.perLayer = off
        off = o.perLayer * config.numHiddenLayers
        o.xOut = take(n * c); o.lnf = take(n * c); o.rstdf = take(n); o.logits = take(n * config.vocabSize)
        o.attScratch = take(scratch)
        o.total = off
        return o
    }

    /// Runs the model over a packed batch and keeps the activations for `backward`.
    /// Returns the logits, (rows, vocab), valid until the next forward.
    @discardableResult
    public func forward(_ batch: TokenBatch) throws -> UnsafeBufferPointer<Float> {
        try checkTokens(batch.tokens)
        try checkTokens(batch.lastTargets.filter { $0 >= 0 })
        for s in 0..<batch.sequenceCount where batch.prefixLength(s) + batch.seqStarts[s + 1] - batch.seqStarts[s] > config.maxPositionEmbeddings {
            throw ModelError.input("A sequence of \(batch.prefixLength(s) + batch.seqStarts[s + 1] - batch.seqStarts[s]) tokens exceeds max_position_embeddings \(config.maxPositionEmbeddings).")
        }
        let n = batch.rowCount, c = config.hiddenSize, heads = config.numAttentionHeads
        let kvHeads = config.numKeyValueHeads, d = config.headDim, hd = heads * d, kvd = config.kvDim
        let inter = config.intermediateSize, vocab = config.vocabSize, eps = Float(config.rmsNormEps)
        let qkvDim = hd + 2 * kvd
        let o = planActivations(batch)
        actOffsets = o
        lastBatch = batch
        positions = [Int32](repeating: 0, count: n)
        for s in 0..<batch.sequenceCount {
            let first = batch.prefixLength(s)
            for i in batch.seqStarts[s]..<batch.seqStarts[s + 1] { positions[i] = Int32(first + i - batch.seqStarts[s]) }
        }
        let a = acts.reserve(o.total), p = parameters.ptr, L = layout

        // Embedding lookup into the first layer's residual input.
        for i in 0..<n {
            (a + o.xIn + i * c).update(from: p + L.embed + Int(batch.tokens[i]) * c, count: c)
        }
        positions.withUnsafeBufferPointer { pos in
            for l in 0..<config.numHiddenLayers {
                let base = a + l * o.perLayer, W = L.layers[l]
                let x = base + o.xIn
                rmsnormForward(base + o.ln1, base + o.rstd1, x, p + W.inputNorm, n: n, c: c, eps: eps)
                // q, k and v are adjacent in the parameter buffer: one product gives rows [q | k | v].
                let qkv = base + o.qkv
                linearForward(qkv, base + o.ln1, p + W.q, n: n, inDim: c, outDim: qkvDim)
                ropeApply(qkv, positions: pos.baseAddress!, n: n, heads: heads, headDim: d, rowStride: qkvDim, tables: rope, inverse: false)
                ropeApply(qkv + hd, positions: pos.baseAddress!, n: n, heads: kvHeads, headDim: d, rowStride: qkvDim, tables: rope, inverse: false)
                for s in 0..<batch.sequenceCount {
                    let r0 = batch.seqStarts[s], t = batch.seqStarts[s + 1] - r0
                    if t == 0 { continue }
                    let rows = qkv + r0 * qkvDim
                    let parent = batch.parents[s], parentRows = qkv + (parent < 0 ? 0 : batch.seqStarts[parent]) * qkvDim
                    attentionForward(out: base + o.att + r0 * hd, probs: base + o.probs + o.probOffsets[s],
                                     q: rows, k: rows + hd, v: rows + hd + kvd,
                                     t: t, heads: heads, kvHeads: kvHeads, headDim: d, qkvStride: qkvDim,
                                     scratch: a + o.attScratch,
                                     prefix: parent < 0 ? nil : AttentionPrefix(k: parentRows + hd, v: parentRows + hd + kvd,
                                                                                count: batch.prefixLength(s)))
                }
                // x_mid = x + O·att, the residual added by the product (β = 1)
                let xMid = base + o.xMid
                xMid.update(from: x, count: n * c)
                linearForward(xMid, base + o.att, p + W.o, n: n, inDim: hd, outDim: c, accumulate: true)
                rmsnormForward(base + o.ln2, base + o.rstd2, xMid, p + W.postNorm, n: n, c: c, eps: eps)
                // gate and up are adjacent too: rows [gate | up].
                linearForward(base + o.gu, base + o.ln2, p + W.gate, n: n, inDim: c, outDim: 2 * inter)
                swigluForward(base + o.h, base + o.gu, n: n, inter: inter)
                // next residual input = x_mid + Down·h
                let next = l + 1 < config.numHiddenLayers ? a + (l + 1) * o.perLayer + o.xIn : a + o.xOut
                next.update(from: xMid, count: n * c)
                linearForward(next, base + o.h, p + W.down, n: n, inDim: inter, outDim: c, accumulate: true)
            }
        }
        rmsnormForward(a + o.lnf, a + o.rstdf, a + o.xOut, p + L.finalNorm, n: n, c: c, eps: eps)
        linearForward(a + o.logits, a + o.lnf, p + L.lmHead, n: n, inDim: c, outDim: vocab)
        return UnsafeBufferPointer(start: a + o.logits, count: n * vocab)
    }

    /// Back-propagates dLoss/dlogits (rows, vocab) through the last forward, adding into `gradients`, or
    /// with `.replace` writing this batch's gradient over whatever they held: each weight matrix's
    /// product then writes its gradient (β = 0) instead of adding to a buffer zeroed in a pass of its own.
    public func backward(dLogits: UnsafePointer<Float>, gradients mode: GradientMode = .accumulate) {
        guard let batch = lastBatch else { preconditionFailure("backward without a forward") }
        let o = actOffsets
        let n = batch.rowCount, c = config.hiddenSize, heads = config.numAttentionHeads
        let kvHeads = config.numKeyValueHeads, d = config.headDim, hd = heads * d, kvd = config.kvDim
        let inter = config.intermediateSize, vocab = config.vocabSize
        let a = acts.buffer.ptr, p = parameters.ptr, g = gradients.ptr, L = layout
        var attScratch = 0
        for s in 0..<batch.sequenceCount {
            attScratch = max(attScratch, attentionBackwardScratch(t: batch.seqStarts[s + 1] - batch.seqStarts[s],
                                                                  prefix: batch.prefixLength(s), headDim: d))
        }

        var off = 0
        func take(_ k: Int) -> Int { defer { off += k }; return off }
        let qkvDim = hd + 2 * kvd
        let oDx = take(n * c), oDln = take(n * c), oDatt = take(n * hd), oDqkv = take(n * qkvDim)
        let oDgu = take(n * 2 * inter), oDh = take(n * inter), oScr = take(attScratch)
        let sb = grads.reserve(off)
        let dx = sb + oDx, dln = sb + oDln, datt = sb + oDatt, dqkv = sb + oDqkv
        let dgu = sb + oDgu, dh = sb + oDh, scr = sb + oScr
        let replace = mode == .replace
        if replace {
            // What no product writes: the norm gains (added row by row), and an untied embedding (scattered
            // into); a tied one is the LM head, written first.
            for l in L.layers { (g + l.inputNorm).update(repeating: 0, count: c); (g + l.postNorm).update(repeating: 0, count: c) }
            (g + L.finalNorm).update(repeating: 0, count: c)
            if L.lmHead != L.embed { (g + L.embed).update(repeating: 0, count: vocab * c) }
            if n == 0 { gradients.zero(); return }
        }

        // LM head and final norm.
        linearBackward(dx: dln, accumulate: false, dw: g + L.lmHead, replaceDW: replace, dy: dLogits, x: a + o.lnf, w: p + L.lmHead,
                       n: n, inDim: c, outDim: vocab)
        dx.update(repeating: 0, count: n * c)
        rmsnormBackward(dx: dx, dw: g + L.finalNorm, dout: dln, x: a + o.xOut, w: p + L.finalNorm,
                        rstd: a + o.rstdf, n: n, c: c)

        positions.withUnsafeBufferPointer { pos in
            for l in stride(from: config.numHiddenLayers - 1, through: 0, by: -1) {
                let base = a + l * o.perLayer, W = L.layers[l]
                // MLP: dx is dLoss/d(next residual) = dLoss/dx_mid through the skip, plus the MLP branch.
                linearBackward(dx: dh, accumulate: false, dw: g + W.down, replaceDW: replace, dy: dx, x: base + o.h, w: p + W.down,
                               n: n, inDim: inter, outDim: c)
                swigluBackward(dgu: dgu, dh: dh, gu: base + o.gu, n: n, inter: inter)
                linearBackward(dx: dln, accumulate: false, dw: g + W.gate, replaceDW: replace, dy: dgu, x: base + o.ln2, w: p + W.gate,
                               n: n, inDim: c, outDim: 2 * inter)
                rmsnormBackward(dx: dx, dw: g + W.postNorm, dout: dln, x: base + o.xMid, w: p + W.postNorm,
                                rstd: base + o.rstd2, n: n, c: c)
                // Attention: dx is now dLoss/dx_mid.
                linearBackward(dx: datt, accumulate: false, dw: g + W.o, replaceDW: replace, dy: dx, x: base + o.att, w: p + W.o,
                               n: n, inDim: hd, outDim: c)
                // attentionBackward writes every row of dqkv: sequences in order, a prompt before those continuing it.
                for s in 0..<batch.sequenceCount {
                    let r0 = batch.seqStarts[s], t = batch.seqStarts[s + 1] - r0
                    if t == 0 { continue }
                    let rows = base + o.qkv + r0 * qkvDim, drows = dqkv + r0 * qkvDim
                    // A parent's key and value rows also collect the gradient of every sequence continuing it.
                    let parent = batch.parents[s], pr0 = parent < 0 ? 0 : batch.seqStarts[parent]
                    let pRows = base + o.qkv + pr0 * qkvDim, pdRows = dqkv + pr0 * qkvDim
                    attentionBackward(dq: drows, dk: drows + hd, dv: drows + hd + kvd, dout: datt + r0 * hd,
                                      probs: base + o.probs + o.probOffsets[s], q: rows, k: rows + hd,
                                      v: rows + hd + kvd, t: t, heads: heads, kvHeads: kvHeads, headDim: d,
                                      qkvStride: qkvDim, scratch: scr,
                                      prefix: parent < 0 ? nil : AttentionPrefix(k: pRows + hd, v: pRows + hd + kvd, count: batch.prefixLength(s),
                                                                                 dk: pdRows + hd, dv: pdRows + hd + kvd))
                }
                ropeApply(dqkv, positions: pos.baseAddress!, n: n, heads: heads, headDim: d, rowStride: qkvDim, tables: rope, inverse: true)
                ropeApply(dqkv + hd, positions: pos.baseAddress!, n: n, heads: kvHeads, headDim: d, rowStride: qkvDim, tables: rope, inverse: true)
                linearBackward(dx: dln, accumulate: false, dw: g + W.q, replaceDW: replace, dy: dqkv, x: base + o.ln1, w: p + W.q,
                               n: n, inDim: c, outDim: qkvDim)
                rmsnormBackward(dx: dx, dw: g + W.inputNorm, dout: dln, x: base + o.xIn, w: p + W.inputNorm,
                                rstd: base + o.rstd1, n: n, c: c)
            }
        }
        // Embedding: scatter-add the residual gradient into the rows of the tokens used.
        for i in 0..<n {
            axpy(g + L.embed + Int(batch.tokens[i]) * c, 1, dx + i * c, c)
        }
    }

    public func zeroGradients() { gradients.zero() }

    /// What a backward pass does with `gradients`.
    public enum GradientMode: Sendable { case accumulate, replace }

    /// The mean over each sequence's tokens of the final hidden state (after the final RMSNorm): a frozen
    /// sentence embedding, DOTS's z_q. Returns (sequences, hidden) row-major. Runs `forward`, so it
    /// replaces the activations a `backward` would need.
    public func meanPooledHiddenStates(_ sequences: [[Int32]]) throws -> [Float] {
        let batch = TokenBatch(sequences: sequences)
        try forward(batch)
        let c = config.hiddenSize, lnf = acts.buffer.ptr + actOffsets.lnf
        var out = [Float](repeating: 0, count: batch.sequenceCount * c)
        for s in 0..<batch.sequenceCount {
            let r0 = batch.seqStarts[s], r1 = batch.seqStarts[s + 1]
            guard r1 > r0 else { continue }
            let inv = 1 / Float(r1 - r0)
            for r in r0..<r1 { for j in 0..<c { out[s * c + j] += lnf[r * c + j] } }
            for j in 0..<c { out[s * c + j] *= inv }
        }
        return out
    }
}
