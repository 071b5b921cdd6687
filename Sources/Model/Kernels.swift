import CBLAS
import Foundation

// Numeric kernels over raw buffers. Shapes are in the comments; rows are tokens. Every forward has its
// backward beside it, mirroring it line by line. Matrix products go to OpenBLAS; the rest is plain loops.

typealias FPtr = UnsafeMutablePointer<Float>
typealias CFPtr = UnsafePointer<Float>

/// Sets OpenBLAS's thread count for this process (several Dots processes share a host; default 1).
public func setComputeThreads(_ n: Int) { openblas_set_num_threads(Int32(max(1, n))) }

/// C[m,n] = alpha · op(A)[m,k] · op(B)[k,n] + beta · C, row-major.
@inline(__always)
func gemm(_ transA: Bool, _ transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
          _ a: CFPtr, lda: Int, _ b: CFPtr, ldb: Int, beta: Float, _ c: FPtr, ldc: Int) {
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

/// y (N,out) = x (N,in) · Wᵀ, W is (out,in) as in PyTorch; with `accumulate`, y += x · Wᵀ (a residual
/// connection in the product itself: β = 1 also spares OpenBLAS its pass zeroing y).
@inline(__always)
func linearForward(_ y: FPtr, _ x: CFPtr, _ w: CFPtr, n: Int, inDim: Int, outDim: Int, accumulate: Bool = false) {
    gemm(false, true, m: n, n: outDim, k: inDim, x, lda: inDim, w, ldb: inDim, beta: accumulate ? 1 : 0, y, ldc: outDim)
}

/// dx (N,in) (+)= dy (N,out) · W;  dW (out,in) += dyᵀ · x, or dW = dyᵀ · x with `replaceDW`.
@inline(__always)
func linearBackward(dx: FPtr?, accumulate: Bool, dw: FPtr, replaceDW: Bool = false, dy: CFPtr, x: CFPtr, w: CFPtr,
                    n: Int, inDim: Int, outDim: Int) {
    if let dx {
        gemm(false, false, m: n, n: inDim, k: outDim, dy, lda: outDim, w, ldb: inDim,
             beta: accumulate ? 1 : 0, dx, ldc: inDim)
    }
    gemm(true, false, m: outDim, n: inDim, k: n, dy, lda: outDim, x, ldb: inDim, beta: replaceDW ? 0 : 1, dw, ldc: inDim)
}

/// RMSNorm (Hugging Face Llama): out = w ⊙ x / √(mean(x²) + ε). x, out (N,C); rstd (N).
func rmsnormForward(_ out: FPtr, _ rstd: FPtr?, _ x: CFPtr, _ w: CFPtr, n: Int, c: Int, eps: Float) {
    for i in 0..<n {
        let xi = x + i * c, oi = out + i * c
        let ss = dotProduct(xi, xi, c)
        let r = 1 / (ss / Float(c) + eps).squareRoot()
        rstd?[i] = r
        for j in 0..<c { oi[j] = xi[j] * r * w[j] }
    }
}

/// dx += rstd · (ĝ − x̂ · mean(ĝ ⊙ x̂)) with ĝ = dout ⊙ w, x̂ = x · rstd;  dw += Σ_rows dout ⊙ x̂.
func rmsnormBackward(dx: FPtr, dw: FPtr, dout: CFPtr, x: CFPtr, w: CFPtr, rstd: CFPtr, n: Int, c: Int) {
    for i in 0..<n {
        let xi = x + i * c, di = dout + i * c, dxi = dx + i * c
        let r = rstd[i], rv = F8(repeating: r)
        // Eight lanes for the row's dot product (a scalar sum is one long chain of dependent adds).
        var acc = F8(), j = 0
        while j + 8 <= c {
            let xh = load8(xi, j) * rv, dv = load8(di, j)
            acc = acc.addingProduct(dv * load8(w, j), xh)
            store8(load8(dw, j).addingProduct(dv, xh), dw, j)
            j += 8
        }
        var dot = horizontalSum(acc)
        while j < c {
            let xh = xi[j] * r
            dot += di[j] * w[j] * xh
            dw[j] += di[j] * xh
            j += 1
        }
        let m = dot / Float(c)
        for j in 0..<c { dxi[j] += r * (di[j] * w[j] - xi[j] * r * m) }
    }
}

/// Rotary tables (positions × D/2), as Hugging Face Llama builds them: inv_freq[i] = θ^(−2i/D).
struct RopeTables {
    let cos: [Float], sin: [Float], half: Int, maxPositions: Int
    init(headDim: Int, theta: Double, maxPositions: Int) {
        half = headDim / 2
        self.maxPositions = maxPositions
        var c = [Float](repeating: 0, count: maxPositions * half), s = c
        for p in 0..<maxPositions {
            for i in 0..<half {
                let invFreq = Float(1.0 / pow(theta, Double(2 * i) / Double(headDim)))
                let angle = Float(p) * invFreq
                c[p * half + i] = Foundation.cos(angle)
                s[p * half + i] = Foundation.sin(angle)
            }
        }
        cos = c
        sin = s
    }
}

/// Rotate-half RoPE in place on x (N, heads·D, rows `rowStride` apart): (a, b) → (a·cos − b·sin, b·cos + a·sin) for the two
/// halves of each head. `inverse` applies the transpose rotation, which is the backward pass.
func ropeApply(_ x: FPtr, positions: UnsafePointer<Int32>, n: Int, heads: Int, headDim: Int,
               rowStride: Int? = nil, tables: RopeTables, inverse: Bool) {
    let stride = rowStride ?? heads * headDim
    let half = headDim / 2
    let sign: Float = inverse ? -1 : 1
    tables.cos.withUnsafeBufferPointer { cosT in
        tables.sin.withUnsafeBufferPointer { sinT in
            for i in 0..<n {
                let p = Int(positions[i])
                let cp = cosT.baseAddress! + p * half, sp = sinT.baseAddress! + p * half
                for h in 0..<heads {
                    let v = x + i * stride + h * headDim
                    var j = 0
                    let vsign = F8(repeating: sign)
                    while j + 8 <= half {
                        let a = load8(v, j), b = load8(v, j + half), c = load8(cp, j), s = vsign * load8(sp, j)
                        store8(a * c - b * s, v, j)
                        store8(b * c + a * s, v, j + half)
                        j += 8
                    }
                    while j < half {
                        let a = v[j], b = v[j + half], c = cp[j], s = sign * sp[j]
                        v[j] = a * c - b * s
                        v[j + half] = b * c + a * s
                        j += 1
                    }
                }
            }
        }
    }
}

/// SwiGLU over the fused gate|up product: gu is (N, 2I), each row [gate | up]; h (N, I) = silu(gate) ⊙ up.
func swigluForward(_ h: FPtr, _ gu: CFPtr, n: Int, inter: Int) {
    let one = F8(repeating: 1)
    for r in 0..<n {
        let g = gu + r * 2 * inter, u = g + inter, hr = h + r * inter
        var i = 0
        while i + 8 <= inter {
            let gi = load8(g, i)
            store8(gi / (one + exp8(-gi)) * load8(u, i), hr, i)
            i += 8
        }
        while i < inter { hr[i] = g[i] / (1 + expf(-g[i])) * u[i]; i += 1 }
    }
}

/// dgate = dh ⊙ up ⊙ σ(g)(1 + g(1 − σ(g))), dup = dh ⊙ silu(g), written into dgu (N, 2I) as [dgate | dup].
func swigluBackward(dgu: FPtr, dh: CFPtr, gu: CFPtr, n: Int, inter: Int) {
    let one = F8(repeating: 1)
    for r in 0..<n {
        let g = gu + r * 2 * inter, u = g + inter, d = dh + r * inter
        let dg = dgu + r * 2 * inter, du = dg + inter
        var i = 0
        while i + 8 <= inter {
            let gi = load8(g, i), di = load8(d, i)
            let s = one / (one + exp8(-gi))
            store8(di * gi * s, du, i)
            store8(di * load8(u, i) * s * (one + gi * (one - s)), dg, i)
            i += 8
        }
        while i < inter {
            let gi = g[i]
            let s = 1 / (1 + expf(-gi))
            du[i] = d[i] * gi * s
            dg[i] = d[i] * u[i] * s * (1 + gi * (1 - s))
            i += 1
        }
    }
}

/// Keys and values a sequence sees before its own rows: those of the prompt it continues (a `TokenBatch`
/// parent), `count` rows `qkvStride` apart like the sequence's own. For the backward, `dk` and `dv` are
/// where the prompt rows' key and value gradients accumulate.
struct AttentionPrefix {
    var k: CFPtr, v: CFPtr, count: Int
    var dk: FPtr? = nil, dv: FPtr? = nil
}

/// Floats of scratch `attentionForward` needs for T query rows after P prefix rows.
func attentionForwardScratch(t: Int, prefix: Int, headDim: Int) -> Int {
    let len = prefix + t
    return (len + 7) / 8 * 8 * (headDim + 1) + (prefix > 0 ? len * headDim : 0)
}

/// Floats of scratch `attentionBackward` needs for T query rows after P prefix rows.
func attentionBackwardScratch(t: Int, prefix: Int, headDim: Int) -> Int {
    t * (prefix + t) + (prefix > 0 ? 4 * (prefix + t) * headDim : 0)
}

/// Causal self-attention of one sequence of length T, all heads, optionally after P prefix rows (a
/// shared prompt: the sequence's row i sees the P prefix positions and its own rows 0…i).
/// q (T, H·D), k/v (T, KV·D), rows `qkvStride` apart when they are slices of one fused q|k|v product;
/// probs (H, T, P + T) saved for the backward (zero past each row's last visible position); out (T, H·D).
/// Query head h reads key/value head h / (H/KV) (grouped-query attention). Each key/value head's keys
/// are first copied into eight-position tiles (`attendTiled`'s layout), so row i scores only its
/// P + i + 1 visible positions, eight at a time; with a prefix the values are gathered into one run too.
/// `scratch` holds `attentionForwardScratch` floats.
func attentionForward(out: FPtr, probs: FPtr, q: CFPtr, k: CFPtr, v: CFPtr, t: Int,
                      heads: Int, kvHeads: Int, headDim: Int, qkvStride: Int? = nil, scratch: FPtr,
                      prefix: AttentionPrefix? = nil, productMinRows: Int = attentionProductMinRows) {
    let os = heads * headDim, qs = qkvStride ?? os, ks = qkvStride ?? kvHeads * headDim, group = heads / kvHeads
    let pre = prefix?.count ?? 0, len = pre + t
    let scale = 1 / Float(headDim).squareRoot(), padded = (len + 7) / 8 * 8
    let tiles = scratch, scores = scratch + padded * headDim, gathered = scores + padded
    if t >= productMinRows {
        // Long sequences: per head, S = scale · Q Kᵀ and O = P V are two products (OpenBLAS's small-matrix
        // kernels), the softmax runs over each row's visible positions in place in `probs`. The masked
        // upper triangle is computed and then zeroed: cheaper than T calls of `attendTiled`.
        for kh in 0..<kvHeads {
            var keys = k + kh * headDim, values = v + kh * headDim, stride = ks
            if let prefix, pre > 0 {
                gatherRows(tiles, prefix.k + kh * headDim, k + kh * headDim, stride: ks, prefix: pre, t: t, d: headDim)
                gatherRows(gathered, prefix.v + kh * headDim, v + kh * headDim, stride: ks, prefix: pre, t: t, d: headDim)
                keys = CFPtr(tiles); values = CFPtr(gathered); stride = headDim
            }
            for h in (kh * group)..<((kh + 1) * group) {
                let p = probs + h * t * len
                gemm(false, true, m: t, n: len, k: headDim, alpha: scale, q + h * headDim, lda: qs, keys, ldb: stride,
                     beta: 0, p, ldc: len)
                for i in 0..<t { softmaxInPlace(p + i * len, visible: pre + i + 1, count: len) }
                gemm(false, false, m: t, n: headDim, k: len, p, lda: len, values, ldb: stride, beta: 0,
                     out + h * headDim, ldc: os)
            }
        }
        return
    }
    for kh in 0..<kvHeads {
        var values = v + kh * headDim, vStride = ks
        if let prefix, pre > 0 {
            for p in 0..<pre { storeKey(tiles, position: p, prefix.k + p * ks + kh * headDim, d: headDim) }
            tileKeys(tiles, k + kh * headDim, rowStride: ks, t: t, d: headDim, from: pre)
            gatherRows(gathered, prefix.v + kh * headDim, v + kh * headDim, stride: ks, prefix: pre, t: t, d: headDim)
            values = CFPtr(gathered)
            vStride = headDim
        } else {
            tileKeys(tiles, k + kh * headDim, rowStride: ks, t: t, d: headDim)
        }
        for h in (kh * group)..<((kh + 1) * group) {
            let p = probs + h * t * len
            for i in 0..<t {
                attendTiled(q: q + i * qs + h * headDim, kT: tiles, v: values, vStride: vStride, len: pre + i + 1,
                            d: headDim, scale: scale, scores: scores, out: out + i * os + h * headDim,
                            probs: p + i * len)
                (p + i * len + pre + i + 1).update(repeating: 0, count: t - i - 1)
            }
        }
    }
}

/// From this many rows of a sequence on, `attentionForward` uses two matrix products per head instead of
/// one `attendTiled` call per row (measured: at 64 rows the products are ≈ 3× faster; at a handful of rows,
/// a group's completions after a shared prompt, the calls' fixed cost loses).
let attentionProductMinRows = 16

/// row[0 ..< visible] = softmax(row[0 ..< visible]); row[visible ..< count] = 0.
@inline(__always)
func softmaxInPlace(_ row: FPtr, visible: Int, count: Int) {
    let mx = rowMax(row, visible)
    scaleRow(row, row, by: 1 / expShiftSum(row, row, shift: mx, visible), visible)
    (row + visible).update(repeating: 0, count: count - visible)
}

/// dst[0 ..< n] = src[0 ..< n] · factor, eight lanes at a time (dst may be src).
@inline(__always)
func scaleRow(_ dst: FPtr, _ src: CFPtr, by factor: Float, _ n: Int) {
    let f = F8(repeating: factor)
    var j = 0
    while j + 8 <= n { store8(load8(src, j) * f, dst, j); j += 8 }
    while j < n { dst[j] = src[j] * factor; j += 1 }
}

/// The largest of x[0 ..< n], eight lanes at a time.
@inline(__always)
func rowMax(_ x: CFPtr, _ n: Int) -> Float {
    var m8 = F8(repeating: -.infinity), i = 0
    while i + 8 <= n {
        let v = load8(x, i)
        m8.replace(with: v, where: v .> m8)  // the generic pointwiseMax is not specialised here
        i += 8
    }
    let h = pointwiseMaxHalf(m8.lowHalf, m8.highHalf)
    var m = max(max(h[0], h[1]), max(h[2], h[3]))
    while i < n { m = max(m, x[i]); i += 1 }
    return m
}

@inline(__always)
func pointwiseMaxHalf(_ a: SIMD4<Float>, _ b: SIMD4<Float>) -> SIMD4<Float> {
    var r = a
    r.replace(with: b, where: b .> a)
    return r
}

/// Copies T key rows of `d` floats (rows `rowStride` apart) into eight-position transposed tiles
/// (`storeKey`'s layout) at positions `from` ..< `from` + T; the last tile's unused lanes are zeroed.
func tileKeys(_ tiles: FPtr, _ k: CFPtr, rowStride: Int, t: Int, d: Int, from: Int = 0) {
    for p in 0..<t { storeKey(tiles, position: from + p, k + p * rowStride, d: d) }
    for p in (from + t)..<((from + t + 7) / 8 * 8) {
        let dst = tiles + (p / 8) * 8 * d + p % 8
        for j in 0..<d { dst[8 * j] = 0 }
    }
}

/// dst (P + T, D) = the P rows of `prefix` then the T rows of `own`, each `d` floats, rows `stride` apart.
@inline(__always)
func gatherRows(_ dst: FPtr, _ prefix: CFPtr, _ own: CFPtr, stride: Int, prefix count: Int, t: Int, d: Int) {
    for r in 0..<count { (dst + r * d).update(from: prefix + r * stride, count: d) }
    for r in 0..<t { (dst + (count + r) * d).update(from: own + r * stride, count: d) }
}

/// The inverse of `gatherRows`: the first P rows of `src` are added into `prefix` (when given), the rest
/// copied to `own`.
@inline(__always)
func scatterRows(_ src: CFPtr, _ prefix: FPtr?, _ own: FPtr, stride: Int, prefix count: Int, t: Int, d: Int) {
    if let prefix { for r in 0..<count { axpy(prefix + r * stride, 1, src + r * d, d) } }
    for r in 0..<t { (own + r * stride).update(from: src + (count + r) * d, count: d) }
}

/// Writes the key of position `p` (`d` floats) into eight-position transposed tiles:
/// tiles[(p/8)·8d + 8j + p%8] = key[j]. The training forward and the KV cache share this layout.
@inline(__always)
func storeKey(_ tiles: FPtr, position p: Int, _ key: CFPtr, d: Int) {
    let dst = tiles + (p / 8) * 8 * d + p % 8
    for j in 0..<d { dst[8 * j] = key[j] }
}

/// Backward of `attentionForward`: dq, dk and dv (the sequence's own rows) are overwritten, so they need
/// no zeroing; the prefix's `dk` and `dv` accumulate (every sequence continuing a prompt adds into its
/// rows, after the prompt's own backward wrote them). `scratch` holds `attentionBackwardScratch` floats.
func attentionBackward(dq: FPtr, dk: FPtr, dv: FPtr, dout: CFPtr, probs: CFPtr, q: CFPtr, k: CFPtr,
                       v: CFPtr, t: Int, heads: Int, kvHeads: Int, headDim: Int, qkvStride: Int? = nil,
                       scratch: FPtr, prefix: AttentionPrefix? = nil) {
    let os = heads * headDim, qs = qkvStride ?? os, ks = qkvStride ?? kvHeads * headDim, group = heads / kvHeads
    let scale = 1 / Float(headDim).squareRoot()
    let pre = prefix?.count ?? 0, len = pre + t, d = headDim
    let dp = scratch
    // Without a prefix K, V, dK and dV are read and written in place; with one, each key/value head's
    // P + T rows are gathered into one run first and the gradients scattered back after its heads.
    let kBuf = scratch + t * len, vBuf = kBuf + len * d, dkBuf = vBuf + len * d, dvBuf = dkBuf + len * d
    for kh in 0..<kvHeads {
        var kh0 = k + kh * d, vh0 = v + kh * d, dk0 = dk + kh * d, dv0 = dv + kh * d, stride = ks
        if let prefix, pre > 0 {
            gatherRows(kBuf, prefix.k + kh * d, k + kh * d, stride: ks, prefix: pre, t: t, d: d)
            gatherRows(vBuf, prefix.v + kh * d, v + kh * d, stride: ks, prefix: pre, t: t, d: d)
            dkBuf.update(repeating: 0, count: 2 * len * d)
            kh0 = CFPtr(kBuf); vh0 = CFPtr(vBuf); dk0 = dkBuf; dv0 = dvBuf; stride = d
        }
        for h in (kh * group)..<((kh + 1) * group) {
            let p = probs + h * t * len
            // dP = dO_h V_hᵀ (T, P+T);  dV_h += Pᵀ dO_h
            gemm(false, true, m: t, n: len, k: d, dout + h * d, lda: os, vh0, ldb: stride, beta: 0, dp, ldc: len)
            // The group's first head writes dK and dV (or the zeroed gather buffers take it), the rest add.
            let first: Float = h == kh * group && pre == 0 ? 0 : 1
            gemm(true, false, m: len, n: d, k: t, p, lda: len, dout + h * d, ldb: os, beta: first, dv0, ldc: stride)
            // dS = P ⊙ (dP − rowsum(dP ⊙ P))
            for i in 0..<t {
                let pr = p + i * len, dr = dp + i * len, seen = pre + i + 1
                let dot = dotProduct(pr, dr, seen)
                for j in 0..<seen { dr[j] = pr[j] * (dr[j] - dot) }
                (dr + seen).update(repeating: 0, count: len - seen)
            }
            // dQ_h = scale · dS K_h;  dK_h += scale · dSᵀ Q_h
            gemm(false, false, m: t, n: d, k: len, alpha: scale, dp, lda: len, kh0, ldb: stride, beta: 0, dq + h * d, ldc: qs)
            gemm(true, false, m: len, n: d, k: t, alpha: scale, dp, lda: len, q + h * d, ldb: qs, beta: first, dk0, ldc: stride)
        }
        if let prefix, pre > 0 {
            scatterRows(dkBuf, prefix.dk.map { $0 + kh * d }, dk + kh * d, stride: ks, prefix: pre, t: t, d: d)
            scatterRows(dvBuf, prefix.dv.map { $0 + kh * d }, dv + kh * d, stride: ks, prefix: pre, t: t, d: d)
        }
    }
}

/// C = A·B for square n×n matrices: the reference product `dots bench model` measures the peak with.
public func sgemmForBenchmark(n: Int, _ a: [Float], _ b: [Float], _ c: inout [Float]) {
    precondition(a.count == n * n && b.count == n * n && c.count == n * n)
    a.withUnsafeBufferPointer { a in
        b.withUnsafeBufferPointer { b in
            c.withUnsafeMutableBufferPointer { c in
                gemm(false, false, m: n, n: n, k: n, a.baseAddress!, lda: n, b.baseAddress!, ldb: n,
                     beta: 0, c.baseAddress!, ldc: n)
            }
        }
    }
}

/// Σ a[i]·b[i] with eight independent SIMD lanes: a scalar loop is one long dependency chain, since
/// the compiler may not reorder float additions.
@inline(__always)
func dotProduct(_ a: CFPtr, _ b: CFPtr, _ n: Int) -> Float {
    var acc0 = SIMD8<Float>(), acc1 = SIMD8<Float>()
    var i = 0
    let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
    while i + 16 <= n {
        acc0 += ra.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self) * rb.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
        acc1 += ra.loadUnaligned(fromByteOffset: i * 4 + 32, as: SIMD8<Float>.self) * rb.loadUnaligned(fromByteOffset: i * 4 + 32, as: SIMD8<Float>.self)
        i += 16
    }
    while i + 8 <= n {
        acc0 += ra.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self) * rb.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
        i += 8
    }
    var s = horizontalSum(acc0 + acc1)
    while i < n { s += a[i] * b[i]; i += 1 }
    return s
}

/// The sum of the eight lanes by halving (SIMD's generic `sum()` goes through memory).
@inline(__always)
func horizontalSum(_ v: F8) -> Float {
    let h = v.lowHalf + v.highHalf
    let q = h.lowHalf + h.highHalf
    return q[0] + q[1]
}

/// y[i] += alpha · x[i], vectorised.
@inline(__always)
func axpy(_ y: FPtr, _ alpha: Float, _ x: CFPtr, _ n: Int) {
    var i = 0
    let ry = UnsafeMutableRawPointer(y), rx = UnsafeRawPointer(x)
    let av = SIMD8<Float>(repeating: alpha)
    while i + 8 <= n {
        let v = ry.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self) + av * rx.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
        ry.storeBytes(of: v, toByteOffset: i * 4, as: SIMD8<Float>.self)
        i += 8
    }
    while i < n { y[i] += alpha * x[i]; i += 1 }
}

/// One query head attending over `len` positions: out = softmax(scale · q·Kᵀ) · V. Keys are in tiles of
/// eight positions, each tile transposed (kT[(p/8)·8d + 8j + p%8] is component j of position p's key),
/// values rows of `d` floats `vStride` apart: scores come eight positions at a time with no horizontal
/// sums, and keys are read front to back. `scores` holds ⌈len/8⌉·8 floats; `probs`, when given,
/// receives the `len` attention weights. Head dim 32 (the `small` model) keeps the output in registers.
/// Decode runs it over the KV cache; the training forward over tiles of one sequence's keys.
@inline(__always)
func attendTiled(q: CFPtr, kT: CFPtr, v: CFPtr, vStride: Int, len: Int, d: Int, scale: Float, scores: FPtr,
                 out: FPtr, probs: FPtr? = nil) {
    var p = 0
    let sv = F8(repeating: scale)
    // Four tiles (32 positions) at a time: each broadcast of a query component feeds four multiply-adds.
    while p + 32 <= len {
        var a0 = F8(), a1 = F8(), a2 = F8(), a3 = F8()
        let t0 = kT + p * d, t1 = t0 + 8 * d, t2 = t1 + 8 * d, t3 = t2 + 8 * d
        for j in 0..<d {
            let qj = F8(repeating: q[j])
            a0 = a0.addingProduct(qj, load8(t0, 8 * j)); a1 = a1.addingProduct(qj, load8(t1, 8 * j))
            a2 = a2.addingProduct(qj, load8(t2, 8 * j)); a3 = a3.addingProduct(qj, load8(t3, 8 * j))
        }
        store8(a0 * sv, scores, p); store8(a1 * sv, scores, p + 8)
        store8(a2 * sv, scores, p + 16); store8(a3 * sv, scores, p + 24)
        p += 32
    }
    while p < len {
        var a0 = F8(), a1 = F8(), a2 = F8(), a3 = F8()
        let tile = kT + p * d
        var j = 0
        while j + 4 <= d {
            a0 = a0.addingProduct(F8(repeating: q[j]), load8(tile, 8 * j))
            a1 = a1.addingProduct(F8(repeating: q[j + 1]), load8(tile, 8 * j + 8))
            a2 = a2.addingProduct(F8(repeating: q[j + 2]), load8(tile, 8 * j + 16))
            a3 = a3.addingProduct(F8(repeating: q[j + 3]), load8(tile, 8 * j + 24))
            j += 4
        }
        while j < d { a0 = a0.addingProduct(F8(repeating: q[j]), load8(tile, 8 * j)); j += 1 }
        store8(((a0 + a1) + (a2 + a3)) * sv, scores, p)
        p += 8
    }
    let inv = 1 / expShiftSum(scores, scores, shift: rowMax(scores, len), len)
    if let probs { scaleRow(probs, scores, by: inv, len) }
    if d == 32 {
        // Two positions per iteration into two sets of accumulators: twice the independent FMA chains.
        var a0 = F8(), a1 = F8(), a2 = F8(), a3 = F8(), b0 = F8(), b1 = F8(), b2 = F8(), b3 = F8()
        var j = 0
        while j + 2 <= len {
            let wa = F8(repeating: scores[j]), va = v + j * vStride
            let wb = F8(repeating: scores[j + 1]), vb = va + vStride
            a0 = a0.addingProduct(wa, load8(va, 0)); a1 = a1.addingProduct(wa, load8(va, 8))
            a2 = a2.addingProduct(wa, load8(va, 16)); a3 = a3.addingProduct(wa, load8(va, 24))
            b0 = b0.addingProduct(wb, load8(vb, 0)); b1 = b1.addingProduct(wb, load8(vb, 8))
            b2 = b2.addingProduct(wb, load8(vb, 16)); b3 = b3.addingProduct(wb, load8(vb, 24))
            j += 2
        }
        if j < len {
            let wa = F8(repeating: scores[j]), va = v + j * vStride
            a0 = a0.addingProduct(wa, load8(va, 0)); a1 = a1.addingProduct(wa, load8(va, 8))
            a2 = a2.addingProduct(wa, load8(va, 16)); a3 = a3.addingProduct(wa, load8(va, 24))
        }
        let iv = F8(repeating: inv)
        store8((a0 + b0) * iv, out, 0); store8((a1 + b1) * iv, out, 8)
        store8((a2 + b2) * iv, out, 16); store8((a3 + b3) * iv, out, 24)
        return
    }
    out.update(repeating: 0, count: d)
    for j in 0..<len { axpy(out, scores[j] * inv, v + j * vStride, d) }
}
