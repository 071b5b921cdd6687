/// Vectorised exp and sigmoid for the elementwise kernels. `expf` per element costs ~5 ns and the MLP
/// alone needs millions per step; eight lanes at a time with a Cephes-style polynomial cost far less,
/// with relative error ≈ 2e-7 (checked against `Foundation.exp` in ModelTests).

typealias F8 = SIMD8<Float>

/// e^x lane-wise: x = n·ln2 + r with |r| ≤ ln2/2, e^r by a degree-6 polynomial, 2^n added straight into
/// the exponent bits. n is rounded with the 1.5·2²³ trick, so no float→int conversion is needed.
@inline(__always)
func exp8(_ x: F8) -> F8 {
    let lo = F8(repeating: -87), hi = F8(repeating: 88)
    var clamped = x
    clamped.replace(with: lo, where: x .< lo)
    clamped.replace(with: hi, where: x .> hi)
    let magic = F8(repeating: 12_582_912)  // 1.5 · 2²³
    let t = clamped * F8(repeating: 1.442_695_04) + magic
    let n = t - magic
    var r = clamped - n * F8(repeating: 0.693_359_375)
    r = r - n * F8(repeating: -2.121_944_4e-4)
    // Horner steps as fused multiply-adds (Swift does not contract `p * r + c` on its own).
    var p = F8(repeating: 1.987_569_15e-4)
    p = F8(repeating: 1.398_199_95e-3).addingProduct(p, r)
    p = F8(repeating: 8.333_451_9e-3).addingProduct(p, r)
    p = F8(repeating: 4.166_579_6e-2).addingProduct(p, r)
    p = F8(repeating: 1.666_666_55e-1).addingProduct(p, r)
    p = F8(repeating: 5.000_000_1e-1).addingProduct(p, r)
    p = (r + F8(repeating: 1)).addingProduct(p * r, r)
    let ni = unsafeBitCast(t, to: SIMD8<Int32>.self) &- unsafeBitCast(magic, to: SIMD8<Int32>.self)
    return unsafeBitCast(unsafeBitCast(p, to: SIMD8<Int32>.self) &+ (ni &<< 23), to: F8.self)
}

@inline(__always) func load8(_ p: UnsafePointer<Float>, _ i: Int) -> F8 {
    UnsafeRawPointer(p + i).loadUnaligned(as: F8.self)
}
@inline(__always) func store8(_ v: F8, _ p: UnsafeMutablePointer<Float>, _ i: Int) {
    UnsafeMutableRawPointer(p + i).storeBytes(of: v, as: F8.self)
}

/// out[i] = exp(x[i] − shift), returning Σ out[i]: the inner loop of every softmax.
@inline(__always)
func expShiftSum(_ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, shift: Float, scale: Float = 1, _ n: Int) -> Float {
    var i = 0
    var acc = F8()
    let s = F8(repeating: shift), k = F8(repeating: scale)
    while i + 8 <= n {
        let e = exp8(load8(x, i) * k - s)
        store8(e, out, i)
        acc += e
        i += 8
    }
    var sum = acc.sum()
    while i < n {
        let e = exp8(F8(repeating: x[i] * scale - shift))[0]
        out[i] = e
        sum += e
        i += 1
    }
    return sum
}
