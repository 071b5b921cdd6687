import Foundation

/// AdamW with decoupled weight decay (applied to matrices only, not norm gains) and clipping of the
/// global gradient norm. Moments mirror the flat parameter buffer, so a step is one loop.
public final class AdamW: @unchecked Sendable {
    public var learningRate: Float
    public var beta1: Float, beta2: Float, epsilon: Float, weightDecay: Float
    /// Gradients are rescaled so their global L2 norm is at most this (nil = no clipping).
    public var maxGradNorm: Float?
    public let m: FloatBuffer, v: FloatBuffer
    public private(set) var step = 0
    /// Threads an update is split over (each takes its share of every tensor). The update reads and
    /// writes four buffers the size of the model, and each step has a square root and a division: on a
    /// learner that owns two cores while the actors wait, two threads halve it.
    public var threads = 1
    private let layout: ParameterLayout

    public init(model: Transformer, learningRate: Float, beta1: Float = 0.9, beta2: Float = 0.95,
                epsilon: Float = 1e-8, weightDecay: Float = 0.0, maxGradNorm: Float? = 1.0) {
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
        self.maxGradNorm = maxGradNorm
        layout = model.layout
        m = FloatBuffer(count: model.parameterCount)
        v = FloatBuffer(count: model.parameterCount)
    }

    /// Restores the step count (with `m` and `v` loaded by the caller) when resuming.
    public func restore(step: Int) { self.step = step }

    /// Raw buffers shared by the threads of one update; each thread writes only its own runs.
    private struct Buffers: @unchecked Sendable {
        let g: UnsafeMutablePointer<Float>, g2: UnsafeMutablePointer<Float>?, p: UnsafeMutablePointer<Float>
        let m: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>
        let sums: UnsafeMutableBufferPointer<Double>
    }

    /// Run `j` of `parts` of a tensor: contiguous, a multiple of eight long except the last.
    private static func run(_ e: ParameterLayout.Entry, _ j: Int, of parts: Int) -> Range<Int> {
        let chunk = (e.count / parts + 7) / 8 * 8
        let lo = min(e.count, j * chunk), hi = j == parts - 1 ? e.count : min(e.count, (j + 1) * chunk)
        return (e.offset + lo)..<(e.offset + hi)
    }

    private static func inParallel(_ parts: Int, _ body: @Sendable (Int) -> Void) {
        if parts == 1 { body(0) } else { DispatchQueue.concurrentPerform(iterations: parts, execute: body) }
    }

    /// Σ (a[i] + b[i])² over n floats, in eight lanes.
    private static func squaredNormOfSum(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc0 = F8(), acc1 = F8(), i = 0
        while i + 16 <= n {
            let x0 = load8(a, i) + load8(b, i), x1 = load8(a, i + 8) + load8(b, i + 8)
            acc0.addProduct(x0, x0)
            acc1.addProduct(x1, x1)
            i += 16
        }
        var total = (acc0 + acc1).sum()
        while i < n { let x = a[i] + b[i]; total += x * x; i += 1 }
        return total
    }

    /// One update from `model.gradients`, plus the buffers in `adding` when given (the other shares of a
    /// data-parallel learner: read here, in the update's own passes, instead of summed in a pass of their
    /// own; none of them is changed, except that with more than one the others are first added into the
    /// last). Returns the gradient norm before clipping.
    @discardableResult
    public func update(_ model: Transformer, adding extra: [FloatBuffer] = []) -> Float {
        let parts = max(1, min(threads, 8)), entries = layout.entries
        if extra.count > 1 {
            let target = extra[extra.count - 1]
            Self.inParallel(parts) { j in
                for e in entries { for other in extra.dropLast() { target.add(other, range: Self.run(e, j, of: parts)) } }
            }
        }
        let b = Buffers(g: model.gradients.ptr, g2: extra.last?.ptr, p: model.parameters.ptr, m: m.ptr, v: v.ptr,
                        sums: .allocate(capacity: parts * entries.count))
        defer { b.sums.deallocate() }
        // Σ g² per run in Float SIMD lanes (short sums), added in a fixed order in Double.
        Self.inParallel(parts) { j in
            for (k, e) in entries.enumerated() {
                let r = Self.run(e, j, of: parts), g = b.g + r.lowerBound
                b.sums[k * parts + j] = Double(b.g2.map { Self.squaredNormOfSum(g, $0 + r.lowerBound, r.count) }
                                               ?? dotProduct(g, g, r.count))
            }
        }
        let norm = Float(b.sums.reduce(0, +).squareRoot())
        let scale: Float = if let maxNorm = maxGradNorm, norm > maxNorm, norm.isFinite { maxNorm / norm } else { 1 }
        step += 1
        let bc1 = 1 - powf(beta1, Float(step)), bc2 = 1 - powf(beta2, Float(step))
        let lr = learningRate, b1 = beta1, b2 = beta2, eps = epsilon, wd = weightDecay
        Self.inParallel(parts) { j in
            let g = b.g, p = b.p, mp = b.m, vp = b.v
            let vb1 = F8(repeating: b1), vb1c = F8(repeating: 1 - b1), vb2 = F8(repeating: b2), vb2c = F8(repeating: 1 - b2)
            let vscale = F8(repeating: scale), vbc1 = F8(repeating: 1 / bc1), vbc2 = F8(repeating: 1 / bc2)
            let vlr = F8(repeating: lr), veps = F8(repeating: eps)
            for e in entries {
                let decay = e.decays ? 1 - lr * wd : 1
                let vdecay = F8(repeating: decay)
                let r = Self.run(e, j, of: parts)
                var i = r.lowerBound
                let end = r.upperBound
                @inline(__always) func step8(_ gi: F8) {
                    let mi = vb1 * load8(mp, i) + vb1c * gi
                    let vi = vb2 * load8(vp, i) + vb2c * gi * gi
                    store8(mi, mp, i)
                    store8(vi, vp, i)
                    let upd = vlr * (mi * vbc1) / ((vi * vbc2).squareRoot() + veps)
                    store8(load8(p, i) * vdecay - upd, p, i)
                }
                if let g2 = b.g2 {
                    while i + 8 <= end { step8((load8(g, i) + load8(g2, i)) * vscale); i += 8 }
                } else {
                    while i + 8 <= end { step8(load8(g, i) * vscale); i += 8 }
                }
                while i < end {
                    let gi = (g[i] + (b.g2?[i] ?? 0)) * scale
                    mp[i] = b1 * mp[i] + (1 - b1) * gi
                    vp[i] = b2 * vp[i] + (1 - b2) * gi * gi
                    let mh = mp[i] / bc1, vh = vp[i] / bc2
                    p[i] = p[i] * decay - lr * mh / (vh.squareRoot() + eps)
                    i += 1
                }
            }
        }
        return norm
    }
}
