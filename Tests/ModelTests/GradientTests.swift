import Foundation
import Testing
@testable import Model

/// Finite differences in Float32: central differences with a step large enough to beat rounding, and a
/// tolerance relative to the gradient's scale.
func checkClose(_ analytic: Float, _ numeric: Float, scale: Float, _ what: String) {
    let tol = 3e-2 * max(abs(analytic), scale) + 1e-4
    #expect(abs(analytic - numeric) <= tol, "\(what): analytic \(analytic) vs finite difference \(numeric)")
}

func randomArray(_ n: Int, _ rng: inout SplitMix64, scale: Float = 1) -> [Float] {
    (0..<n).map { _ in scale * rng.nextGaussian() }
}

/// Checks d(Σ r ⊙ f(x))/dx from a backward against central differences of a Double-accumulated sum.
func fdCheck(_ x: inout [Float], analytic: [Float], indices: [Int], h: Float = 1e-2, _ what: String,
             _ f: ([Float]) -> Double) {
    let scale = analytic.map(abs).max() ?? 1
    for i in indices {
        let keep = x[i]
        x[i] = keep + h; let up = f(x)
        x[i] = keep - h; let down = f(x)
        x[i] = keep
        checkClose(analytic[i], Float((up - down) / Double(2 * h)), scale: 0.05 * scale, "\(what)[\(i)]")
    }
}

func dot(_ a: [Float], _ b: [Float]) -> Double { zip(a, b).reduce(0.0) { $0 + Double($1.0) * Double($1.1) } }

@Test func rmsnormGradient() {
    var rng = SplitMix64(seed: 1)
    let n = 3, c = 8
    var x = randomArray(n * c, &rng), w = randomArray(c, &rng)
    let r = randomArray(n * c, &rng)
    func f(_ x: [Float], _ w: [Float]) -> [Float] {
        var out = [Float](repeating: 0, count: n * c)
        rmsnormForward(&out, nil, x, w, n: n, c: c, eps: 1e-5)
        return out
    }
    var rstd = [Float](repeating: 0, count: n), tmp = [Float](repeating: 0, count: n * c)
    rmsnormForward(&tmp, &rstd, x, w, n: n, c: c, eps: 1e-5)
    var dx = [Float](repeating: 0, count: n * c), dw = [Float](repeating: 0, count: c)
    rmsnormBackward(dx: &dx, dw: &dw, dout: r, x: x, w: w, rstd: rstd, n: n, c: c)
    let wc = w, xc = x
    fdCheck(&x, analytic: dx, indices: Array(0..<(n * c)), "rmsnorm dx") { dot(f($0, wc), r) }
    fdCheck(&w, analytic: dw, indices: Array(0..<c), "rmsnorm dw") { dot(f(xc, $0), r) }
}

@Test func swigluGradient() {
    var rng = SplitMix64(seed: 2)
    // Two rows of a fused [gate | up] product, 11 wide: exercises the SIMD body and the scalar tail.
    let n = 2, inter = 11
    var gu = randomArray(n * 2 * inter, &rng, scale: 2)
    let r = randomArray(n * inter, &rng)
    func f(_ gu: [Float]) -> [Float] {
        var h = [Float](repeating: 0, count: n * inter); swigluForward(&h, gu, n: n, inter: inter); return h
    }
    var dgu = [Float](repeating: 0, count: n * 2 * inter)
    swigluBackward(dgu: &dgu, dh: r, gu: gu, n: n, inter: inter)
    fdCheck(&gu, analytic: dgu, indices: Array(0..<(n * 2 * inter)), h: 1e-3, "swiglu dgu") { dot(f($0), r) }
}

@Test func vectorisedExpMatchesFoundation() {
    // 1003 points over [−86, 86]: the SIMD body and the scalar tail, away from the clamp at ±87.
    var x = [Float](repeating: 0, count: 1003)
    for i in 0..<x.count { x[i] = -86 + Float(i) * 0.1716 }
    var out = x
    let sum = expShiftSum(&out, x, shift: 0, x.count)
    var ref = 0.0
    for i in 0..<x.count {
        let e = Foundation.exp(Double(x[i]))
        ref += e
        #expect(abs(Double(out[i]) - e) <= 1e-6 * e, "exp at \(x[i])")
    }
    #expect(abs(Double(sum) - ref) <= 1e-5 * ref)
    // Very negative inputs clamp to ≈ 0 rather than wrapping around.
    var tiny: [Float] = [0, 0]
    _ = expShiftSum(&tiny, [-1000, -200], shift: 0, 2)
    #expect(tiny.allSatisfy { $0 >= 0 && $0 < 1e-37 })
}

@Test func ropeBackwardIsTheTransposeRotation() {
    var rng = SplitMix64(seed: 3)
    let n = 5, heads = 2, d = 8
    let tables = RopeTables(headDim: d, theta: 10_000, maxPositions: 16)
    let pos: [Int32] = [0, 3, 7, 1, 15]
    let x = randomArray(n * heads * d, &rng), r = randomArray(n * heads * d, &rng)
    var fx = x
    ropeApply(&fx, positions: pos, n: n, heads: heads, headDim: d, tables: tables, inverse: false)
    var gr = r
    ropeApply(&gr, positions: pos, n: n, heads: heads, headDim: d, tables: tables, inverse: true)
    // ⟨r, R x⟩ = ⟨Rᵀ r, x⟩ for every x makes the backward exact; the forward preserves norms.
    #expect(abs(dot(r, fx) - dot(gr, x)) < 1e-4)
    #expect(abs(dot(fx, fx) - dot(x, x)) < 1e-3)
    var back = fx
    ropeApply(&back, positions: pos, n: n, heads: heads, headDim: d, tables: tables, inverse: true)
    for i in 0..<x.count { #expect(abs(back[i] - x[i]) < 1e-5) }
}

/// Five rows take the per-row forward kernel, seventeen the per-head products. dq, dk and dv start as NaN:
/// the backward must write every entry, not add into what was there.
@Test(arguments: [5, 17])
func attentionGradient(t: Int) {
    var rng = SplitMix64(seed: 4)
    let heads = 4, kvHeads = 2, d = 4, hd = heads * d, kvd = kvHeads * d
    var q = randomArray(t * hd, &rng), k = randomArray(t * kvd, &rng), v = randomArray(t * kvd, &rng)
    let r = randomArray(t * hd, &rng)
    func f(_ q: [Float], _ k: [Float], _ v: [Float]) -> [Float] {
        var out = [Float](repeating: 0, count: t * hd), probs = [Float](repeating: 0, count: heads * t * t)
        var tiles = [Float](repeating: 0, count: attentionForwardScratch(t: t, prefix: 0, headDim: d))
        attentionForward(out: &out, probs: &probs, q: q, k: k, v: v, t: t, heads: heads, kvHeads: kvHeads, headDim: d, scratch: &tiles)
        return out
    }
    var out = [Float](repeating: 0, count: t * hd), probs = [Float](repeating: 0, count: heads * t * t)
    var tiles = [Float](repeating: 0, count: attentionForwardScratch(t: t, prefix: 0, headDim: d))
    attentionForward(out: &out, probs: &probs, q: q, k: k, v: v, t: t, heads: heads, kvHeads: kvHeads, headDim: d, scratch: &tiles)
    var dq = [Float](repeating: .nan, count: t * hd), dk = [Float](repeating: .nan, count: t * kvd), dv = dk
    var scratch = [Float](repeating: 0, count: t * t)
    attentionBackward(dq: &dq, dk: &dk, dv: &dv, dout: r, probs: probs, q: q, k: k, v: v, t: t, heads: heads,
                      kvHeads: kvHeads, headDim: d, scratch: &scratch)
    let qc = q, kc = k, vc = v
    fdCheck(&q, analytic: dq, indices: Array(0..<(t * hd)), h: 1e-3, "attention dq") { dot(f($0, kc, vc), r) }
    fdCheck(&k, analytic: dk, indices: Array(0..<(t * kvd)), h: 1e-3, "attention dk") { dot(f(qc, $0, vc), r) }
    fdCheck(&v, analytic: dv, indices: Array(0..<(t * kvd)), h: 1e-3, "attention dv") { dot(f(qc, kc, $0), r) }
    // Causality: the first row attends only to itself.
    for h in 0..<heads { #expect(abs(probs[h * t * t] - 1) < 1e-6) }
}

/// The training forward's two attention paths — per-row `attendTiled` calls and per-head matrix products
/// (sequences of 16 rows or more) — give the same output and the same saved probabilities, with and
/// without a shared-prompt prefix, under grouped-query attention. With the prefix a row sees up to 37
/// positions, so the tiled side runs its four-tile loop and its tail.
@Test(arguments: [0, 7])
func attentionProductPathEqualsTiledPath(prefixRows: Int) {
    var rng = SplitMix64(seed: 9)
    let t = 30, heads = 4, kvHeads = 2, d = 8, hd = heads * d, kvd = kvHeads * d, stride = hd + 2 * kvd
    let len = prefixRows + t
    // Fused q|k|v rows, as the model lays them out; the prefix's rows likewise.
    let rows = randomArray(t * stride, &rng), prefixRowsData = randomArray(max(1, prefixRows) * stride, &rng)
    func run(_ minRows: Int) -> ([Float], [Float]) {
        var out = [Float](repeating: .nan, count: t * hd), probs = [Float](repeating: .nan, count: heads * t * len)
        var scratch = [Float](repeating: 0, count: attentionForwardScratch(t: t, prefix: prefixRows, headDim: d))
        rows.withUnsafeBufferPointer { r in
            prefixRowsData.withUnsafeBufferPointer { pr in
                let q = r.baseAddress!, p = pr.baseAddress!
                attentionForward(out: &out, probs: &probs, q: q, k: q + hd, v: q + hd + kvd, t: t, heads: heads,
                                 kvHeads: kvHeads, headDim: d, qkvStride: stride, scratch: &scratch,
                                 prefix: prefixRows == 0 ? nil : AttentionPrefix(k: p + hd, v: p + hd + kvd, count: prefixRows),
                                 productMinRows: minRows)
            }
        }
        return (out, probs)
    }
    let (tiledOut, tiledProbs) = run(Int.max), (productOut, productProbs) = run(1)
    let outGap = zip(tiledOut, productOut).map { abs($0 - $1) }.max()!
    let probGap = zip(tiledProbs, productProbs).map { abs($0 - $1) }.max()!
    #expect(outGap < 1e-5, "outputs differ by \(outGap)")
    #expect(probGap < 1e-6, "probabilities differ by \(probGap)")
    // Row i sees the prefix and its own rows 0…i: probabilities past that are exactly zero.
    #expect(productProbs[(t - 2) * len + len - 1] == 0)
    #expect(abs(productProbs[0..<(prefixRows + 1)].reduce(0, +) - 1) < 1e-5)
}

@Test func linearGradient() {
    var rng = SplitMix64(seed: 5)
    let n = 3, i = 4, o = 5
    var x = randomArray(n * i, &rng), w = randomArray(o * i, &rng)
    let r = randomArray(n * o, &rng)
    func f(_ x: [Float], _ w: [Float]) -> [Float] {
        var y = [Float](repeating: 0, count: n * o); linearForward(&y, x, w, n: n, inDim: i, outDim: o); return y
    }
    var dx = [Float](repeating: 0, count: n * i), dw = [Float](repeating: 0, count: o * i)
    linearBackward(dx: &dx, accumulate: false, dw: &dw, dy: r, x: x, w: w, n: n, inDim: i, outDim: o)
    let xc = x, wc = w
    fdCheck(&x, analytic: dx, indices: Array(0..<(n * i)), h: 1e-2, "linear dx") { dot(f($0, wc), r) }
    fdCheck(&w, analytic: dw, indices: Array(0..<(o * i)), h: 1e-2, "linear dw") { dot(f(xc, $0), r) }
}

/// A tiny model with weights large enough that every path carries gradient.
func tinyModel(seed: UInt64, tied: Bool = false) throws -> Transformer {
    var cfg = ModelConfig.tiny()
    cfg.tieWordEmbeddings = tied
    let m = try Transformer(config: cfg)
    m.initialize(seed: seed)
    var rng = SplitMix64(seed: seed + 100)
    for e in m.layout.entries {
        for i in 0..<e.count {
            m.parameters[e.offset + i] = e.shape.count == 1 ? 1 + 0.1 * rng.nextGaussian() : 0.3 * rng.nextGaussian()
        }
    }
    return m
}

func wholeModelCheck(_ model: Transformer, _ batch: TokenBatch, _ objective: Objective) throws {
    model.zeroGradients()
    _ = try model.loss(batch, objective)
    let grad = model.gradients.array
    var rng = SplitMix64(seed: 9)
    for e in model.layout.entries {
        // The largest-gradient entries of each tensor plus a few random ones.
        let idx = (0..<e.count).sorted { abs(grad[e.offset + $0]) > abs(grad[e.offset + $1]) }
        let picks = Array(idx.prefix(3)) + (0..<2).map { _ in Int(rng.next() % UInt64(e.count)) }
        let scale = idx.first.map { abs(grad[e.offset + $0]) } ?? 0
        for j in picks {
            let i = e.offset + j, keep = model.parameters[i], h: Float = 2e-3
            model.parameters[i] = keep + h
            let up = try model.loss(batch, objective, backward: false).loss
            model.parameters[i] = keep - h
            let down = try model.loss(batch, objective, backward: false).loss
            model.parameters[i] = keep
            checkClose(grad[i], Float((up - down) / Double(2 * h)), scale: 0.05 * scale, "\(e.name)[\(j)]")
        }
    }
}

@Test(arguments: [false, true])
func wholeModelCrossEntropyGradient(tied: Bool) throws {
    let model = try tinyModel(seed: 11, tied: tied)
    var rng = SplitMix64(seed: 12)
    let seqs: [[Int32]] = [6, 4, 7].map { n in (0..<n).map { _ in Int32(rng.next() % 100) } }
    let batch = TokenBatch(sequences: seqs)
    let w = (0..<batch.rowCount).map { _ in Float(rng.next() % 3) }
    try wholeModelCheck(model, batch, .crossEntropy(weights: w))
}

@Test func wholeModelPPOGradient() throws {
    let model = try tinyModel(seed: 21)
    var rng = SplitMix64(seed: 22)
    let seqs: [[Int32]] = [5, 6].map { n in (0..<n).map { _ in Int32(rng.next() % 100) } }
    let batch = TokenBatch(sequences: seqs)
    let n = batch.rowCount
    let current = try model.targetLogProbs(batch, temperature: 0.7)
    // Behaviour log-probs near the current ones keep every token inside the clip range (smooth loss).
    let inputs = PPOInputs(advantages: randomArray(n, &rng), behaviourLogProbs: current.map { $0 + 0.01 },
                           mask: (0..<n).map { $0 % 4 == 0 ? 0 : 1 }, temperature: 0.7)
    try wholeModelCheck(model, batch, .ppoClip(inputs))
}

/// π_old taken from the loss's own forward (`OldPolicy.current`, a step's first mini-batch) is the loss and
/// gradient of recomputing π_old in a separate pass at the same weights: bit for bit. Behaviour log-probs
/// far from the current ones, so r lies outside [1 − ε, 1 + ε] and only r_old keeps the clip away.
@Test func piOldFromTheSameForwardEqualsTheSeparatePass() throws {
    let model = try tinyModel(seed: 51)
    var rng = SplitMix64(seed: 52)
    let batch = TokenBatch(sequences: [7, 5].map { n in (0..<n).map { _ in Int32(rng.next() % 100) } })
    let n = batch.rowCount
    let adv = randomArray(n, &rng), mask: [Float] = (0..<n).map { $0 % 3 == 0 ? 0 : 1 }
    let beh = try model.targetLogProbs(batch, temperature: 0.9).enumerated().map { $0.1 + ($0.0 % 2 == 0 ? 0.4 : -0.4) }
    func run(_ inputs: PPOInputs) throws -> (LossResult, [Float]) {
        model.zeroGradients()
        let r = try model.loss(batch, .ppoClip(inputs))
        return (r, model.gradients.array)
    }
    let pass = try model.targetLogProbs(batch, temperature: 0.9)
    let (a, ga) = try run(PPOInputs(advantages: adv, behaviourLogProbs: beh, old: .logProbs(pass), mask: mask, temperature: 0.9))
    let (b, gb) = try run(PPOInputs(advantages: adv, behaviourLogProbs: beh, old: .current, mask: mask, temperature: 0.9))
    let (c, _) = try run(PPOInputs(advantages: adv, behaviourLogProbs: beh, mask: mask, temperature: 0.9))
    #expect(a.loss == b.loss && a.clipFraction == 0 && b.clipFraction == 0)
    #expect(ga == gb)
    #expect(c.clipFraction > 0, "without r_old the same rows are clipped")
}

/// A batch where two sequences continue a shared prompt (a parent) and one stands alone: the whole
/// model's gradient, parent rows included, against finite differences.
@Test func wholeModelGradientWithASharedPrompt() throws {
    let model = try tinyModel(seed: 41)
    var rng = SplitMix64(seed: 42)
    let seqs: [[Int32]] = [5, 3, 4, 6].map { n in (0..<n).map { _ in Int32(rng.next() % 100) } }
    let batch = TokenBatch(sequences: seqs, parents: [-1, 0, 0, -1])
    let w = (0..<batch.rowCount).map { _ in Float(rng.next() % 3) }
    try wholeModelCheck(model, batch, .crossEntropy(weights: w))
}

/// A group's prompt computed once (a parent sequence the completions continue) gives each completion
/// the log-probs, loss and gradients of the prompt repeated in front of it. Short completions take the
/// per-row attention forward; completions of 17 and 20 rows the per-head products, after the prompt's
/// rows in the shared batch and from position 0 in the repeated one.
@Test(arguments: [[3, 5, 1, 4], [20, 3, 17]])
func sharedPromptEqualsRepeatedPrompt(lengths: [Int]) throws {
    let model = try tinyModel(seed: 31)
    var rng = SplitMix64(seed: 32)
    let prompt: [Int32] = (0..<6).map { _ in Int32(rng.next() % 100) }
    let completions: [[Int32]] = lengths.map { n in (0..<n).map { _ in Int32(rng.next() % 100) } }
    let full = TokenBatch(sequences: completions.map { prompt + $0 })
    let shared = TokenBatch(sequences: [Array(prompt.dropLast())] + completions.map { [prompt.last!] + $0 },
                            parents: [-1] + completions.map { _ in 0 })
    #expect(shared.rowCount < full.rowCount)
    let lpFull = try model.targetLogProbs(full, temperature: 0.8), lpShared = try model.targetLogProbs(shared, temperature: 0.8)
    var wFull = [Float](repeating: 0, count: full.rowCount), wShared = [Float](repeating: 0, count: shared.rowCount)
    for (j, c) in completions.enumerated() {
        for k in 0..<c.count {
            // Completion j's token k: row P − 1 + k of its full sequence, row k of its shared one.
            let rf = full.seqStarts[j] + prompt.count - 1 + k, rs = shared.seqStarts[j + 1] + k
            #expect(abs(lpFull[rf] - lpShared[rs]) < 1e-5, "completion \(j) token \(k): \(lpFull[rf]) vs \(lpShared[rs])")
            wFull[rf] = Float(j + 1) / 2
            wShared[rs] = Float(j + 1) / 2
        }
    }
    try expectSameLossAndGradient(model, full, wFull, shared, wShared, relativeTolerance: 1e-4)
}

/// `gradients: .replace` writes a batch's gradient over whatever the buffer held (here NaN everywhere):
/// bit for bit what zeroing it and adding gives, with the embedding tied and untied, a shared prompt, and
/// sequences on both attention paths. An element that no part of the backward wrote would stay NaN.
@Test(arguments: [false, true])
func replacingGradientsEqualsZeroingThenAdding(tied: Bool) throws {
    let model = try tinyModel(seed: 43, tied: tied)
    var rng = SplitMix64(seed: 44)
    let seqs: [[Int32]] = [5, 3, 4, 20, 6].map { n in (0..<n).map { _ in Int32(rng.next() % 100) } }
    let batch = TokenBatch(sequences: seqs, parents: [-1, 0, 0, 0, -1])
    let w = (0..<batch.rowCount).map { _ in Float(rng.next() % 3) }
    model.zeroGradients()
    let added = try model.loss(batch, .crossEntropy(weights: w))
    let expected = model.gradients.array
    model.gradients.write([Float](repeating: .nan, count: model.parameterCount), at: 0)
    let replaced = try model.loss(batch, .crossEntropy(weights: w), gradients: .replace)
    let differing: Int = zip(model.gradients.array, expected).filter { $0 != $1 }.count
    #expect(added.loss == replaced.loss)
    #expect(differing == 0, "\(differing) of \(expected.count) gradient elements differ")
}

/// Weighted cross-entropy over two batches that should be the same computation laid out differently:
/// the same loss, and gradients within `relativeTolerance` of the largest component.
func expectSameLossAndGradient(_ model: Transformer, _ a: TokenBatch, _ wa: [Float], _ b: TokenBatch, _ wb: [Float],
                               relativeTolerance: Float) throws {
    model.zeroGradients()
    let lossA = try model.loss(a, .crossEntropy(weights: wa)).loss
    let gA = model.gradients.array
    model.zeroGradients()
    let lossB = try model.loss(b, .crossEntropy(weights: wb)).loss
    let gB = model.gradients.array
    #expect(abs(lossA - lossB) < 1e-5)
    let scale = gA.map(abs).max()!, worst = zip(gA, gB).map { abs($0 - $1) }.max()!
    #expect(scale > 0 && worst < relativeTolerance * scale, "gradients differ by \(worst) (largest \(scale))")
}

/// A completion's final token given as its sequence's last target, instead of as a row of its own, gives
/// the same log-probs, loss and gradient: nothing attends to that row and its own target is past the end.
@Test(arguments: [false, true])
func finalTokenAsLastTargetEqualsItsRow(sharePrompt: Bool) throws {
    let model = try tinyModel(seed: 33)
    var rng = SplitMix64(seed: 34)
    let prompt: [Int32] = (0..<5).map { _ in Int32(4 + rng.next() % 96) }
    let completions: [[Int32]] = [1, 3, 6].map { n in (0..<n).map { _ in Int32(4 + rng.next() % 96) } }
    let head = sharePrompt ? [prompt.last!] : prompt
    let lead: [[Int32]] = sharePrompt ? [Array(prompt.dropLast())] : []
    let parents = sharePrompt ? [-1] + completions.map { _ in 0 } : completions.map { _ in -1 }
    let full = TokenBatch(sequences: lead + completions.map { head + $0 }, parents: parents)
    let trimmed = TokenBatch(sequences: lead + completions.map { head + $0.dropLast() }, parents: parents,
                             lastTargets: lead.map { _ in -1 } + completions.map { $0.last! })
    #expect(full.rowCount - trimmed.rowCount == completions.count)
    let lpFull = try model.targetLogProbs(full, temperature: 0.8), lpTrim = try model.targetLogProbs(trimmed, temperature: 0.8)
    var wFull = [Float](repeating: 0, count: full.rowCount), wTrim = [Float](repeating: 0, count: trimmed.rowCount)
    let s0 = lead.count
    for (j, c) in completions.enumerated() {
        for k in 0..<c.count {
            // Token k of completion j is predicted by row head.count − 1 + k of its sequence, in both batches.
            let rf = full.seqStarts[s0 + j] + head.count - 1 + k, rt = trimmed.seqStarts[s0 + j] + head.count - 1 + k
            #expect(full.targets[rf] == c[k] && trimmed.targets[rt] == c[k])
            #expect(abs(lpFull[rf] - lpTrim[rt]) < 1e-5, "completion \(j) token \(k): \(lpFull[rf]) vs \(lpTrim[rt])")
            wFull[rf] = Float(j + 1)
            wTrim[rt] = Float(j + 1)
        }
    }
    try expectSameLossAndGradient(model, full, wFull, trimmed, wTrim, relativeTolerance: 1e-5)
}

@Test func aLastTargetOutsideTheVocabularyIsAnError() throws {
    let model = try tinyModel(seed: 35)
    let batch = TokenBatch(sequences: [[1, 5, 6]], parents: [-1], lastTargets: [Int32(model.config.vocabSize)])
    #expect(throws: ModelError.self) { try model.targetLogProbs(batch) }
}
