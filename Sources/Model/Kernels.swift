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

/// dx (N,in) (+)= dy (N,out) · W;  dW (out,in) += dyᵀ · x.
@inline(__always)
func linearBackward(dx: FPtr?, accumulate: Bool, dw: FPtr, dy: CFPtr, x: CFPtr, w: CFPtr,
                    n: Int, inDim: Int, outDim: Int) {
    if let dx {
        gemm(false, false, m: n, n: inDim, k: outDim, dy, lda: outDim, w, ldb: inDim,
             beta: accumulate ? 1 : 0, dx, ldc: inDim)
    }
    gemm(true, false, m: outDim, n: inDim, k: n, dy, lda: outDim, x, ldb: inDim, beta: 1, dw, ldc: inDim)
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
        let r = rstd[i]
        var dot: Float = 0
        for j in 0..<c {
            let xh = xi[j] * r
            dot += di[j] * w[j] * xh
            dw[j] += di[j] * xh
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

/// Causal self-attention of one sequence of length T, all heads.
/// q (T, H·D), k/v (T, KV·D), rows `qkvStride` apart when they are slices of one fused q|k|v product;
/// probs (H, T, T) saved for the backward (zero above the diagonal); out (T, H·D). Query head h reads
/// key/value head h / (H/KV) (grouped-query attention). Each key/value head's keys are first copied into
/// eight-position tiles (`attendTiled`'s layout), so row i scores only its i + 1 visible positions, eight
/// at a time. `scratch` holds ⌈T/8⌉·8·(D + 1) floats.
func attentionForward(out: FPtr, probs: FPtr, q: CFPtr, k: CFPtr, v: CFPtr, t: Int,
                      heads: Int, kvHeads: Int, headDim: Int, qkvStride: Int? = nil, scratch: FPtr) {
    let os = heads * headDim, qs = qkvStride ?? os, ks = qkvStride ?? kvHeads * headDim, group = heads / kvHeads
    let scale = 1 / Float(headDim).squareRoot(), padded = (t + 7) / 8 * 8
    let tiles = scratch, scores = scratch + padded * headDim
    for kh in 0..<kvHeads {
        tileKeys(tiles, k + kh * headDim, rowStride: ks, t: t, d: headDim)
        for h in (kh * group)..<((kh + 1) * group) {
            let p = probs + h * t * t
            for i in 0..<t {
                attendTiled(q: q + i * qs + h * headDim, kT: tiles, v: v + kh * headDim, vStride: ks, len: i + 1,
                            d: headDim, scale: scale, scores: scores, out: out + i * os + h * headDim,
                            probs: p + i * t)
                (p + i * t + i + 1).update(repeating: 0, count: t - i - 1)
            }
        }
    }
}

/// Copies T key rows of `d` floats (rows `rowStride` apart) into eight-position transposed tiles
/// (`storeKey`'s layout); the last tile's unused lanes are zeroed.
func tileKeys(_ tiles: FPtr, _ k: CFPtr, rowStride: Int, t: Int, d: Int) {
    for p in 0..<t { storeKey(tiles, position: p, k + p * rowStride, d: d) }
    for p in t..<((t + 7) / 8 * 8) {
        let dst = tiles + (p / 8) * 8 * d + p % 8
        for j in 0..<d { dst[8 * j] = 0 }
    }
}

/// Writes the key of position `p` (`d` floats) into eight-position transposed tiles:
/// tiles[(p/8)·8d + 8j + p%8] = key[j]. The training forward and the KV cache share this layout.
@inline(__always)
func storeKey(_ tiles: FPtr, position p: Int, _ key: CFPtr, d: Int) {
    let dst = tiles + (p / 8) * 8 * d + p % 8
    for j in 0..<d { dst[8 * j] = key[j] }
}

/// Backward of `attentionForward`: dq is overwritten, dk and dv accumulate (heads of one group share
/// them). `scratch` holds T·T floats.
func attentionBackward(dq: FPtr, dk: FPtr, dv: FPtr, dout: CFPtr, probs: CFPtr, q: CFPtr, k: CFPtr,
                       v: CFPtr, t: Int, heads: Int, kvHeads: Int, headDim: Int, qkvStride: Int? = nil,
                       scratch: FPtr) {
    let os = heads * headDim, qs = qkvStride ?? os, ks = qkvStride ?? kvHeads * headDim, group = heads / kvHeads
    let scale = 1 / Float(headDim).squareRoot()
    for h in 0..<heads {
        let kh = h / group
        let p = probs + h * t * t
        let dp = scratch
        // dP = dO_h V_hᵀ (T,T);  dV_h += Pᵀ dO_h
        gemm(false, true, m: t, n: t, k: headDim, dout + h * headDim, lda: os, v + kh * headDim, ldb: ks,
             beta: 0, dp, ldc: t)
        gemm(true, false, m: t, n: headDim, k: t, p, lda: t, dout + h * headDim, ldb: os,
             beta: 1, dv + kh * headDim, ldc: ks)
        // dS = P ⊙ (dP − rowsum(dP ⊙ P))
        for i in 0..<t {
            let pr = p + i * t, dr = dp + i * t
            let dot = dotProduct(pr, dr, i + 1)
            for j in 0...i { dr[j] = pr[j] * (dr[j] - dot) }
            (dr + i + 1).update(repeating: 0, count: t - i - 1)
        }
        // dQ_h = scale · dS K_h;  dK_h += scale · dSᵀ Q_h
        gemm(false, false, m: t, n: headDim, k: t, alpha: scale, dp, lda: t, k + kh * headDim, ldb: ks,
             beta: 0, dq + h * headDim, ldc: qs)
        gemm(true, false, m: t, n: headDim, k: t, alpha: scale, dp, lda: t, q + h * headDim, ldb: qs,
             beta: 1, dk + kh * headDim, ldc: ks)
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
        store8(((a0 + a1) + (a2 + a3)) * F8(repeating: scale), scores, p)
        p += 8
    }
    var mx = -Float.infinity
    for j in 0..<len { mx = max(mx, scores[j]) }
    let inv = 1 / expShiftSum(scores, scores, shift: mx, len)
    if let probs { for j in 0..<len { probs[j] = scores[j] * inv } }
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
