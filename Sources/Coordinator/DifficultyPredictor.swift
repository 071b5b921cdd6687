import CBLAS
import Foundation
import Model

/// The shape of DOTS's difficulty predictor (the adapter on top of frozen prompt embeddings).
public struct PredictorConfig: Codable, Sendable, Equatable {
    /// Width of the frozen embeddings z (the embedder's hidden size).
    public var embeddingDim: Int
    /// Hidden width of each tower's two inner layers.
    public var hiddenDim: Int
    /// h: width of the tower outputs, the attention's query/key width.
    public var outputDim: Int
    /// Hidden width of the calibration head's MLP (2 → 10 → 2 in the paper).
    public var calibrationHidden: Int
    /// Dropout after each GELU of the towers while training.
    public var dropout: Float

    public init(embeddingDim: Int, hiddenDim: Int = 256, outputDim: Int = 128, calibrationHidden: Int = 10, dropout: Float = 0.1) {
        self.embeddingDim = embeddingDim
        self.hiddenDim = hiddenDim
        self.outputDim = outputDim
        self.calibrationHidden = calibrationHidden
        self.dropout = dropout
    }

    enum CodingKeys: String, CodingKey {
        case embeddingDim = "embedding_dim", hiddenDim = "hidden_dim", outputDim = "output_dim"
        case calibrationHidden = "calibration_hidden", dropout
    }
}

/// DOTS's attention-based adaptive-difficulty predictor (Sun et al. 2025, §3.1).
///
/// Two towers, `query` and `ref`, each LayerNorm → Linear → GELU → Linear → GELU → Linear → LayerNorm, map
/// frozen prompt embeddings z to h-dimensional vectors. A prompt's raw difficulty is the attention-weighted
/// mean of the K reference prompts' measured difficulties d_i: a_i = softmax_i(⟨ref(z_i), query(z_q)⟩/√h),
/// d̂ = Σ a_i d_i. A calibration head reads [mean, std] of the d_i, MLP(2 → 10 → 2), giving
/// temp = clamp(softplus(o₀), 0.01, 10) and bias = tanh(o₁); the output is σ(logit(d̂)/temp + bias).
///
/// Parameters and their gradients are flat arrays laid out by `entries` (llm.c's layout), so Adam is one
/// loop and safetensors names come for free. The backward is written by hand and mirrors the forward.
public final class DifficultyPredictor: @unchecked Sendable {
    public let config: PredictorConfig
    public struct Entry: Sendable { public let name: String; public let shape: [Int]; public let offset: Int
        public var count: Int { shape.reduce(1, *) } }
    public let entries: [Entry]
    public var parameters: [Float]
    public var gradients: [Float]
    private let offsets: [String: Int]

    static let lnEps: Float = 1e-5
    /// logit(d̂) is taken of d̂ clamped to [ε, 1 − ε].
    static let clampEps: Float = 1e-4

    public init(config: PredictorConfig) {
        self.config = config
        let d = config.embeddingDim, h1 = config.hiddenDim, h = config.outputDim, c = config.calibrationHidden
        var list: [Entry] = [], off = 0
        func add(_ name: String, _ shape: [Int]) {
            list.append(Entry(name: name, shape: shape, offset: off))
            off += shape.reduce(1, *)
        }
        for t in ["query", "ref"] {
            add("\(t).ln_in.weight", [d]); add("\(t).ln_in.bias", [d])
            add("\(t).fc1.weight", [h1, d]); add("\(t).fc1.bias", [h1])
            add("\(t).fc2.weight", [h1, h1]); add("\(t).fc2.bias", [h1])
            add("\(t).fc3.weight", [h, h1]); add("\(t).fc3.bias", [h])
            add("\(t).ln_out.weight", [h]); add("\(t).ln_out.bias", [h])
        }
        add("calibration.fc1.weight", [c, 2]); add("calibration.fc1.bias", [c])
        add("calibration.fc2.weight", [2, c]); add("calibration.fc2.bias", [2])
        entries = list
        offsets = Dictionary(uniqueKeysWithValues: list.map { ($0.name, $0.offset) })
        parameters = [Float](repeating: 0, count: off)
        gradients = [Float](repeating: 0, count: off)
    }

    public var parameterCount: Int { parameters.count }
    func offset(_ name: String) -> Int { offsets[name]! }

    /// PyTorch-like initialisation (weights N(0, 1/fan_in), biases 0, norm gains 1); the calibration
    /// head starts near the identity (temp ≈ 1, bias ≈ 0).
    public func initialize(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        for e in entries {
            let isNormGain = e.name.hasSuffix("ln_in.weight") || e.name.hasSuffix("ln_out.weight")
            for i in 0..<e.count {
                if isNormGain { parameters[e.offset + i] = 1 }
                else if e.shape.count == 2 {
                    let scale: Float = e.name == "calibration.fc2.weight" ? 0.01 : 1 / Float(e.shape[1]).squareRoot()
                    parameters[e.offset + i] = scale * rng.nextGaussian()
                } else { parameters[e.offset + i] = 0 }
            }
        }
        // softplus(log(e − 1)) = 1.
        parameters[offset("calibration.fc2.bias")] = Float(log(M_E - 1))
    }

    // MARK: forward

    /// Activations of one tower, kept for its backward. Rows are prompts.
    struct TowerPass {
        var n = 0
        var xhat0: [Float] = [], rstd0: [Float] = []
        var a1: [Float] = [], g1: [Float] = [], mask1: [Float] = []
        var a2: [Float] = [], g2: [Float] = [], mask2: [Float] = []
        var xhat3: [Float] = [], rstd3: [Float] = []
        var u0: [Float] = []
        var out: [Float] = []
    }

    /// Everything the backward needs from one forward.
    public struct Pass {
        var query = TowerPass(), ref = TowerPass()
        var probs: [Float] = []       // (n, K)
        var labels: [Float] = []      // d_i (K)
        public internal(set) var raw: [Float] = []     // d̂ before calibration (n)
        var calIn: [Float] = [], calPre: [Float] = [], calHid: [Float] = []
        var o: [Float] = [0, 0]
        public internal(set) var temp: Float = 1, bias: Float = 0
        var logits: [Float] = []      // logit(clamp(d̂))
        var clamped: [Bool] = []
        /// The calibrated prediction σ(logit(d̂)/temp + bias) (n).
        public internal(set) var output: [Float] = []
    }

    /// Predicts the difficulty of n query prompts from K reference prompts with measured difficulty.
    /// - Parameters:
    ///   - queries: (n, embeddingDim) embeddings; references: (K, embeddingDim); labels: K difficulties.
    ///   - excludeSelf: query i never attends to reference i (leave-one-out, when queries are the references).
    ///   - dropoutSeed: dropout on (training) when given; the masks are drawn from this seed.
    public func forward(queries: [Float], references: [Float], labels: [Float], excludeSelf: Bool = false,
                        dropoutSeed: UInt64? = nil) -> Pass {
        let d = config.embeddingDim
        let n = queries.count / d, k = labels.count
        precondition(queries.count == n * d && references.count == k * d && k > 0, "predictor input shapes")
        var pass = Pass()
        pass.labels = labels
        var rngQ = dropoutSeed.map { SplitMix64.stream(seed: $0, index: 0) }
        var rngR = dropoutSeed.map { SplitMix64.stream(seed: $0, index: 1) }
        pass.query = tower("query", queries, n: n, rng: &rngQ)
        pass.ref = tower("ref", references, n: k, rng: &rngR)
        attend(&pass, queryOut: pass.query.out, n: n, excludeSelf: excludeSelf)
        return pass
    }

    /// The query tower's outputs for (n, d) embeddings, without dropout. A candidate pool's encodings
    /// don't change between selection rounds (frozen embeddings, fixed predictor): compute them once.
    public func encodeQueries(_ queries: [Float]) -> [Float] {
        var none: SplitMix64? = nil
        return tower("query", queries, n: queries.count / config.embeddingDim, rng: &none).out
    }

    /// `forward` for queries already encoded with `encodeQueries` (inference only: no backward).
    public func forward(encodedQueries: [Float], references: [Float], labels: [Float]) -> Pass {
        var pass = Pass()
        pass.labels = labels
        var none: SplitMix64? = nil
        pass.ref = tower("ref", references, n: labels.count, rng: &none)
        attend(&pass, queryOut: encodedQueries, n: encodedQueries.count / config.outputDim, excludeSelf: false)
        return pass
    }

    /// Attention of the encoded queries over the encoded references, then the calibration head.
    private func attend(_ pass: inout Pass, queryOut: [Float], n: Int, excludeSelf: Bool) {
        let h = config.outputDim, k = pass.labels.count, labels = pass.labels
        // S = Q Rᵀ/√h (n, K), row softmax, d̂ = A·d.
        var s = [Float](repeating: 0, count: n * k)
        queryOut.withUnsafeBufferPointer { q in pass.ref.out.withUnsafeBufferPointer { r in s.withUnsafeMutableBufferPointer { sp in
            sgemm(false, true, n, k, h, 1 / Float(h).squareRoot(), q.baseAddress!, h, r.baseAddress!, h, 0, sp.baseAddress!, k)
        } } }
        pass.raw = [Float](repeating: 0, count: n)
        for i in 0..<n {
            var mx = -Float.infinity
            for j in 0..<k where !(excludeSelf && i == j) { mx = max(mx, s[i * k + j]) }
            var sum: Float = 0
            for j in 0..<k {
                let e: Float = (excludeSelf && i == j) || mx == -.infinity ? 0 : expf(s[i * k + j] - mx)
                s[i * k + j] = e
                sum += e
            }
            var acc: Float = 0
            for j in 0..<k {
                s[i * k + j] /= max(sum, .leastNormalMagnitude)
                acc += s[i * k + j] * labels[j]
            }
            pass.raw[i] = acc
        }
        pass.probs = s
        calibrate(&pass)
    }

    /// The calibration head over [mean, std] of the reference labels, applied to every raw d̂.
    private func calibrate(_ pass: inout Pass) {
        let c = config.calibrationHidden, labels = pass.labels
        let mean = labels.reduce(0, +) / Float(labels.count)
        let variance = labels.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Float(labels.count)
        pass.calIn = [mean, variance.squareRoot()]
        let w1 = offset("calibration.fc1.weight"), b1 = offset("calibration.fc1.bias")
        let w2 = offset("calibration.fc2.weight"), b2 = offset("calibration.fc2.bias")
        let p = parameters
        pass.calPre = (0..<c).map { j in p[w1 + 2 * j] * pass.calIn[0] + p[w1 + 2 * j + 1] * pass.calIn[1] + p[b1 + j] }
        pass.calHid = pass.calPre.map(gelu)
        pass.o = (0..<2).map { r in (0..<c).reduce(p[b2 + r]) { $0 + p[w2 + r * c + $1] * pass.calHid[$1] } }
        pass.temp = min(max(softplus(pass.o[0]), 0.01), 10)
        pass.bias = tanhf(pass.o[1])
        let eps = Self.clampEps
        pass.clamped = pass.raw.map { $0 < eps || $0 > 1 - eps }
        pass.logits = pass.raw.map { let q = min(max($0, eps), 1 - eps); return logf(q / (1 - q)) }
        pass.output = pass.logits.map { sigmoid($0 / pass.temp + pass.bias) }
    }

    /// LayerNorm → Linear → GELU → Linear → GELU → Linear → LayerNorm over x (n, d).
    private func tower(_ name: String, _ x: [Float], n: Int, rng: inout SplitMix64?) -> TowerPass {
        let d = config.embeddingDim, h1 = config.hiddenDim, h = config.outputDim
        var t = TowerPass()
        t.n = n
        parameters.withUnsafeBufferPointer { pb in
            let p = pb.baseAddress!
            func at(_ s: String) -> UnsafePointer<Float> { p + offset("\(name).\(s)") }
            (t.u0, t.xhat0, t.rstd0) = layerNormForward(x, n: n, c: d, gain: at("ln_in.weight"), bias: at("ln_in.bias"))
            t.a1 = linearForward(t.u0, n: n, inDim: d, outDim: h1, w: at("fc1.weight"), b: at("fc1.bias"))
            (t.g1, t.mask1) = geluDropout(t.a1, rate: config.dropout, rng: &rng)
            t.a2 = linearForward(t.g1, n: n, inDim: h1, outDim: h1, w: at("fc2.weight"), b: at("fc2.bias"))
            (t.g2, t.mask2) = geluDropout(t.a2, rate: config.dropout, rng: &rng)
            let a3 = linearForward(t.g2, n: n, inDim: h1, outDim: h, w: at("fc3.weight"), b: at("fc3.bias"))
            (t.out, t.xhat3, t.rstd3) = layerNormForward(a3, n: n, c: h, gain: at("ln_out.weight"), bias: at("ln_out.bias"))
        }
        return t
    }

    // MARK: backward

    /// Mean binary cross-entropy of the calibrated prediction against soft targets (difficulties in [0, 1]).
    public static func bce(_ pass: Pass, targets: [Float]) -> Double {
        var total = 0.0
        for (i, t) in targets.enumerated() {
            // log σ(z) and log(1 − σ(z)) from z, stable for large |z|.
            let z = Double(pass.logits[i] / pass.temp + pass.bias)
            let logP = -softplusD(-z), logQ = -softplusD(z)
            total -= Double(t) * logP + Double(1 - t) * logQ
        }
        return total / Double(max(1, targets.count))
    }

    /// Adds d(mean BCE)/dθ of the last forward into `gradients`; returns the loss.
    @discardableResult
    public func backward(_ pass: Pass, targets: [Float]) -> Double {
        let n = pass.raw.count, k = pass.labels.count, h = config.outputDim, c = config.calibrationHidden
        precondition(targets.count == n)
        // dL/dz_i = (σ(z_i) − t_i)/n.
        let dz = (0..<n).map { (pass.output[$0] - targets[$0]) / Float(n) }
        // z = logit/temp + bias.
        var dTemp: Float = 0, dBias: Float = 0
        var dRaw = [Float](repeating: 0, count: n)
        for i in 0..<n {
            dTemp -= dz[i] * pass.logits[i] / (pass.temp * pass.temp)
            dBias += dz[i]
            if !pass.clamped[i] {
                let q = pass.raw[i]
                dRaw[i] = dz[i] / pass.temp / (q * (1 - q))
            }
        }
        // Calibration head.
        let sp = softplus(pass.o[0])
        let dO0: Float = sp > 0.01 && sp < 10 ? dTemp * sigmoid(pass.o[0]) : 0
        let dO1 = dBias * (1 - pass.bias * pass.bias)
        let dO = [dO0, dO1]
        let w2 = offset("calibration.fc2.weight"), b2 = offset("calibration.fc2.bias")
        let w1 = offset("calibration.fc1.weight"), b1 = offset("calibration.fc1.bias")
        var dHid = [Float](repeating: 0, count: c)
        for r in 0..<2 {
            gradients[b2 + r] += dO[r]
            for j in 0..<c {
                gradients[w2 + r * c + j] += dO[r] * pass.calHid[j]
                dHid[j] += dO[r] * parameters[w2 + r * c + j]
            }
        }
        for j in 0..<c {
            let dPre = dHid[j] * geluDerivative(pass.calPre[j])
            gradients[b1 + j] += dPre
            gradients[w1 + 2 * j] += dPre * pass.calIn[0]
            gradients[w1 + 2 * j + 1] += dPre * pass.calIn[1]
        }
        // d̂_i = Σ_j A_ij d_j  ⇒  dS_ij = A_ij · dd̂_i · (d_j − d̂_i); S = Q Rᵀ/√h.
        var dS = [Float](repeating: 0, count: n * k)
        for i in 0..<n where dRaw[i] != 0 {
            for j in 0..<k { dS[i * k + j] = pass.probs[i * k + j] * dRaw[i] * (pass.labels[j] - pass.raw[i]) }
        }
        var dQ = [Float](repeating: 0, count: n * h), dR = [Float](repeating: 0, count: k * h)
        let scale = 1 / Float(h).squareRoot()
        dS.withUnsafeBufferPointer { ds in
            pass.ref.out.withUnsafeBufferPointer { r in dQ.withUnsafeMutableBufferPointer { dq in
                sgemm(false, false, n, h, k, scale, ds.baseAddress!, k, r.baseAddress!, h, 0, dq.baseAddress!, h)
            } }
            pass.query.out.withUnsafeBufferPointer { q in dR.withUnsafeMutableBufferPointer { dr in
                sgemm(true, false, k, h, n, scale, ds.baseAddress!, k, q.baseAddress!, h, 0, dr.baseAddress!, h)
            } }
        }
        towerBackward("query", pass.query, dOut: dQ)
        towerBackward("ref", pass.ref, dOut: dR)
        return Self.bce(pass, targets: targets)
    }

    private func towerBackward(_ name: String, _ t: TowerPass, dOut: [Float]) {
        let d = config.embeddingDim, h1 = config.hiddenDim, h = config.outputDim, n = t.n
        let o = { (s: String) in self.offset("\(name).\(s)") }
        let (wIn, bIn, w1, b1, w2, b2, w3, b3, wOut, bOut) = (o("ln_in.weight"), o("ln_in.bias"), o("fc1.weight"), o("fc1.bias"),
            o("fc2.weight"), o("fc2.bias"), o("fc3.weight"), o("fc3.bias"), o("ln_out.weight"), o("ln_out.bias"))
        parameters.withUnsafeBufferPointer { pb in gradients.withUnsafeMutableBufferPointer { gb in
            let p = pb.baseAddress!, g = gb.baseAddress!
            let da3 = layerNormBackward(dOut, xhat: t.xhat3, rstd: t.rstd3, n: n, c: h, gain: p + wOut, dGain: g + wOut, dBias: g + bOut)
            var dg2 = linearBackward(da3, x: t.g2, n: n, inDim: h1, outDim: h, w: p + w3, dw: g + w3, db: g + b3)
            geluDropoutBackward(&dg2, a: t.a2, mask: t.mask2)
            var dg1 = linearBackward(dg2, x: t.g1, n: n, inDim: h1, outDim: h1, w: p + w2, dw: g + w2, db: g + b2)
            geluDropoutBackward(&dg1, a: t.a1, mask: t.mask1)
            let du0 = linearBackward(dg1, x: t.u0, n: n, inDim: d, outDim: h1, w: p + w1, dw: g + w1, db: g + b1)
            _ = layerNormBackward(du0, xhat: t.xhat0, rstd: t.rstd0, n: n, c: d, gain: p + wIn, dGain: g + wIn, dBias: g + bIn)
        } }
    }

    public func zeroGradients() {
        for i in gradients.indices { gradients[i] = 0 }
    }

    // MARK: the optional linear re-fit

    /// The authors' linear re-fit: regress the reference set's measured difficulty on its own
    /// (leave-one-out) predictions, d ≈ a·d̂ + b, and apply that line to every prediction. Returns nil when
    /// the predictions on the references are (nearly) constant, where a line is meaningless.
    public static func linearFit(predicted: [Float], measured: [Float]) -> (slope: Double, intercept: Double)? {
        let n = Double(predicted.count)
        guard predicted.count >= 3 else { return nil }
        let mx = predicted.reduce(0.0) { $0 + Double($1) } / n, my = measured.reduce(0.0) { $0 + Double($1) } / n
        var sxx = 0.0, sxy = 0.0
        for (x, y) in zip(predicted, measured) {
            sxx += (Double(x) - mx) * (Double(x) - mx)
            sxy += (Double(x) - mx) * (Double(y) - my)
        }
        guard sxx / n > 1e-8 else { return nil }
        let a = sxy / sxx
        return (a, my - a * mx)
    }

    /// The linear re-fit map d ↦ clamp(a·d + b, 0, 1), or nil — predictions used as they are — when the line
    /// is degenerate or falls (a ≤ 0). A falling line says the reference set's predictions ranked its prompts
    /// backwards; with a few references that happens by chance (K = 16: one draw in three with the committed
    /// predictor, `dots predictor eval`), and applying it would turn the selection upside down, drawing
    /// the prompts furthest from the target difficulty.
    public static func linearCalibration(predicted: [Float], measured: [Float]) -> ((Float) -> Float)? {
        guard let (a, b) = linearFit(predicted: predicted, measured: measured), a > 0 else { return nil }
        return { Float(min(1, max(0, a * Double($0) + b))) }
    }

    /// How predictions are re-fitted on each reference set (`training.predictor_refit`).
    public enum Refit: String, Sendable, CaseIterable {
        /// No re-fit: the calibration head's output as it is.
        case none
        /// The authors' least-squares line d ≈ a·d̂ + b.
        case linear
        /// A monotone (isotonic, pool-adjacent-violators) map d̂ → E[d | d̂]: follows a curved relation,
        /// where a line fitted to a bimodal difficulty distribution is right at the ends and wrong in the middle.
        case isotonic
    }

    /// Predictions for `queries` (n, d) given the labelled references; with `refit`, the linear re-fit on
    /// the references' leave-one-out predictions is applied and the result clamped to [0, 1].
    public func predict(queries: [Float], references: [Float], labels: [Float], refit: Bool) -> [Float] {
        predict(queries: queries, references: references, labels: labels, mode: refit ? .linear : .none)
    }

    public func predict(queries: [Float], references: [Float], labels: [Float], mode: Refit) -> [Float] {
        let out = forward(queries: queries, references: references, labels: labels).output
        guard let f = referenceCalibration(references: references, labels: labels, mode: mode) else { return out }
        return out.map(f)
    }

    /// `predict` for queries encoded with `encodeQueries`.
    public func predict(encodedQueries: [Float], references: [Float], labels: [Float], mode: Refit) -> [Float] {
        let out = forward(encodedQueries: encodedQueries, references: references, labels: labels).output
        guard let f = referenceCalibration(references: references, labels: labels, mode: mode) else { return out }
        return out.map(f)
    }

    /// The re-fit map of a reference set, from its leave-one-out predictions (nil: none, or degenerate).
    public func referenceCalibration(references: [Float], labels: [Float], mode: Refit) -> ((Float) -> Float)? {
        guard mode != .none, labels.count >= 3 else { return nil }
        let loo = forward(queries: references, references: references, labels: labels, excludeSelf: true).output
        switch mode {
        case .none: return nil
        case .linear:
            return Self.linearCalibration(predicted: loo, measured: labels)
        case .isotonic:
            let (xs, ys) = Self.isotonicFit(predicted: loo, measured: labels)
            return { Self.interpolate($0, xs, ys) }
        }
    }

    /// Pool-adjacent-violators: the non-decreasing step function of x closest to y in squared error, as
    /// knots (mean x of each block, block mean of y).
    public static func isotonicFit(predicted: [Float], measured: [Float]) -> (xs: [Float], ys: [Float]) {
        let order = predicted.indices.sorted { predicted[$0] < predicted[$1] }
        var blocks: [(sx: Double, sy: Double, n: Double)] = []
        for i in order {
            blocks.append((Double(predicted[i]), Double(measured[i]), 1))
            while blocks.count >= 2, blocks[blocks.count - 2].sy / blocks[blocks.count - 2].n > blocks[blocks.count - 1].sy / blocks[blocks.count - 1].n {
                let last = blocks.removeLast()
                blocks[blocks.count - 1].sx += last.sx
                blocks[blocks.count - 1].sy += last.sy
                blocks[blocks.count - 1].n += last.n
            }
        }
        return (blocks.map { Float($0.sx / $0.n) }, blocks.map { Float($0.sy / $0.n) })
    }

    /// Piecewise-linear through the knots, constant beyond them.
    static func interpolate(_ x: Float, _ xs: [Float], _ ys: [Float]) -> Float {
        guard let first = xs.first, let last = xs.last else { return x }
        if x <= first { return ys[0] }
        if x >= last { return ys[ys.count - 1] }
        var lo = 0, hi = xs.count - 1
        while hi - lo > 1 { let mid = (lo + hi) / 2; if xs[mid] <= x { lo = mid } else { hi = mid } }
        let span = xs[hi] - xs[lo]
        return span > 0 ? ys[lo] + (ys[hi] - ys[lo]) * (x - xs[lo]) / span : ys[lo]
    }

    /// The linear re-fit line of the reference set (nil when degenerate).
    public func referenceFit(references: [Float], labels: [Float]) -> (slope: Double, intercept: Double)? {
        guard labels.count >= 3 else { return nil }
        let loo = forward(queries: references, references: references, labels: labels, excludeSelf: true).output
        return Self.linearFit(predicted: loo, measured: labels)
    }

    // MARK: saving

    public static let weightsFile = "predictor.safetensors", configFile = "predictor.json"

    /// Writes the adapter weights (safetensors) and `predictor.json` (its config plus `info`).
    public func save(to dir: URL, info: [String: Any]) throws {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let tensors = parameters.withUnsafeBufferPointer { p in
            entries.map { e in (e.name, SafeTensors.float32(UnsafeBufferPointer(rebasing: p[e.offset..<(e.offset + e.count)]), shape: e.shape)) }
        }
        try SafeTensors.write(tensors, metadata: ["format": "dots-predictor"], to: dir.appendingPathComponent(Self.weightsFile))
        var obj = info
        let cfg = try JSONSerialization.jsonObject(with: JSONEncoder().encode(config))
        obj["config"] = cfg
        try JSONSerialization.data(withJSONObject: obj, options: [.prettyPrinted, .sortedKeys])
            .write(to: dir.appendingPathComponent(Self.configFile), options: .atomic)
    }

    /// Loads a predictor folder; every failure is one sentence naming the file.
    public static func load(from dir: URL) throws -> (predictor: DifficultyPredictor, info: [String: Any]) {
        let cfgURL = dir.appendingPathComponent(configFile)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir.path, isDirectory: &isDir), isDir.boolValue else {
            throw ModelError.checkpoint("No predictor folder at \(dir.path) (make one with `dots predictor train`).")
        }
        guard let data = try? Data(contentsOf: cfgURL), let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let cfgObj = obj["config"], let cfgData = try? JSONSerialization.data(withJSONObject: cfgObj),
              let config = try? JSONDecoder().decode(PredictorConfig.self, from: cfgData) else {
            throw ModelError.checkpoint("\(cfgURL.path) is missing or is not a predictor config; is \(dir.path) a folder written by `dots predictor train`?")
        }
        guard config.embeddingDim > 0, config.hiddenDim > 0, config.outputDim > 0, config.calibrationHidden > 0 else {
            throw ModelError.checkpoint("\(cfgURL.path) has a non-positive dimension.")
        }
        let predictor = DifficultyPredictor(config: config)
        let (tensors, _) = try SafeTensors.read(dir.appendingPathComponent(weightsFile))
        for e in predictor.entries {
            guard let t = tensors[e.name], t.dtype == "F32", t.shape == e.shape else {
                throw ModelError.checkpoint("\(dir.appendingPathComponent(weightsFile).path) lacks tensor \(e.name) of shape \(e.shape) that \(configFile) implies.")
            }
            let values = SafeTensors.floats(t)
            for i in 0..<e.count { predictor.parameters[e.offset + i] = values[i] }
        }
        return (predictor, obj)
    }
}

// MARK: - kernels (row-major, rows are prompts)

/// C[m,n] = alpha · op(A) · op(B) + beta · C.
@inline(__always)
func sgemm(_ ta: Bool, _ tb: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float, _ a: UnsafePointer<Float>, _ lda: Int,
           _ b: UnsafePointer<Float>, _ ldb: Int, _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int) {
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, Int32(m), Int32(n), Int32(k),
                alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

/// y (n,out) = x (n,in) · Wᵀ + b, W (out,in).
func linearForward(_ x: [Float], n: Int, inDim: Int, outDim: Int, w: UnsafePointer<Float>, b: UnsafePointer<Float>) -> [Float] {
    var y = [Float](repeating: 0, count: n * outDim)
    y.withUnsafeMutableBufferPointer { yp in x.withUnsafeBufferPointer { xp in
        for i in 0..<n { for j in 0..<outDim { yp[i * outDim + j] = b[j] } }
        sgemm(false, true, n, outDim, inDim, 1, xp.baseAddress!, inDim, w, inDim, 1, yp.baseAddress!, outDim)
    } }
    return y
}

/// Returns dx (n,in) = dy · W; adds dW += dyᵀ · x and db += Σ_rows dy.
func linearBackward(_ dy: [Float], x: [Float], n: Int, inDim: Int, outDim: Int, w: UnsafePointer<Float>,
                    dw: UnsafeMutablePointer<Float>, db: UnsafeMutablePointer<Float>) -> [Float] {
    var dx = [Float](repeating: 0, count: n * inDim)
    dy.withUnsafeBufferPointer { d in x.withUnsafeBufferPointer { xp in dx.withUnsafeMutableBufferPointer { dxp in
        sgemm(false, false, n, inDim, outDim, 1, d.baseAddress!, outDim, w, inDim, 0, dxp.baseAddress!, inDim)
        sgemm(true, false, outDim, inDim, n, 1, d.baseAddress!, outDim, xp.baseAddress!, inDim, 1, dw, inDim)
        for i in 0..<n { for j in 0..<outDim { db[j] += d[i * outDim + j] } }
    } } }
    return dx
}

/// LayerNorm: y = x̂ ⊙ g + b with x̂ = (x − mean)·rstd, rstd = 1/√(var + ε). Returns (y, x̂, rstd).
func layerNormForward(_ x: [Float], n: Int, c: Int, gain: UnsafePointer<Float>, bias: UnsafePointer<Float>) -> ([Float], [Float], [Float]) {
    var y = [Float](repeating: 0, count: n * c), xhat = y, rstd = [Float](repeating: 0, count: n)
    for i in 0..<n {
        var mean: Float = 0
        for j in 0..<c { mean += x[i * c + j] }
        mean /= Float(c)
        var v: Float = 0
        for j in 0..<c { let t = x[i * c + j] - mean; v += t * t }
        let r = 1 / (v / Float(c) + DifficultyPredictor.lnEps).squareRoot()
        rstd[i] = r
        for j in 0..<c {
            let xh = (x[i * c + j] - mean) * r
            xhat[i * c + j] = xh
            y[i * c + j] = xh * gain[j] + bias[j]
        }
    }
    return (y, xhat, rstd)
}

/// dx = rstd · (ĝ − mean(ĝ) − x̂ · mean(ĝ ⊙ x̂)) with ĝ = dy ⊙ g; adds dg += Σ dy ⊙ x̂, db += Σ dy.
func layerNormBackward(_ dy: [Float], xhat: [Float], rstd: [Float], n: Int, c: Int, gain: UnsafePointer<Float>,
                       dGain: UnsafeMutablePointer<Float>, dBias: UnsafeMutablePointer<Float>) -> [Float] {
    var dx = [Float](repeating: 0, count: n * c)
    for i in 0..<n {
        var m1: Float = 0, m2: Float = 0
        for j in 0..<c {
            let dyv = dy[i * c + j], xh = xhat[i * c + j], gh = dyv * gain[j]
            dGain[j] += dyv * xh
            dBias[j] += dyv
            m1 += gh
            m2 += gh * xh
        }
        m1 /= Float(c); m2 /= Float(c)
        for j in 0..<c {
            let gh = dy[i * c + j] * gain[j]
            dx[i * c + j] = rstd[i] * (gh - m1 - xhat[i * c + j] * m2)
        }
    }
    return dx
}

/// GELU (exact, erf form) then inverted dropout; the mask (0 or 1/(1 − rate)) is empty when off.
func geluDropout(_ a: [Float], rate: Float, rng: inout SplitMix64?) -> ([Float], [Float]) {
    var g = a.map(gelu)
    guard rng != nil, rate > 0 else { return (g, []) }
    let keep = 1 / (1 - rate)
    var mask = [Float](repeating: 0, count: a.count)
    for i in 0..<a.count {
        mask[i] = rng!.nextFloat() < rate ? 0 : keep
        g[i] *= mask[i]
    }
    return (g, mask)
}

func geluDropoutBackward(_ dg: inout [Float], a: [Float], mask: [Float]) {
    for i in 0..<dg.count {
        dg[i] *= geluDerivative(a[i]) * (mask.isEmpty ? 1 : mask[i])
    }
}

@inline(__always) func gelu(_ x: Float) -> Float { 0.5 * x * (1 + erff(x * 0.707_106_781)) }
@inline(__always) func geluDerivative(_ x: Float) -> Float {
    0.5 * (1 + erff(x * 0.707_106_781)) + x * expf(-0.5 * x * x) * 0.398_942_28
}
@inline(__always) func sigmoid(_ x: Float) -> Float { 1 / (1 + expf(-x)) }
@inline(__always) func softplus(_ x: Float) -> Float { x > 20 ? x : log1pf(expf(x)) }
@inline(__always) func softplusD(_ x: Double) -> Double { x > 30 ? x : log1p(exp(x)) }

/// Pearson's correlation of two equally long series (0 when either is constant).
public func pearson(_ a: [Double], _ b: [Double]) -> Double {
    precondition(a.count == b.count)
    let n = Double(a.count)
    guard a.count > 1 else { return 0 }
    let ma = a.reduce(0, +) / n, mb = b.reduce(0, +) / n
    var sab = 0.0, saa = 0.0, sbb = 0.0
    for (x, y) in zip(a, b) { sab += (x - ma) * (y - mb); saa += (x - ma) * (x - ma); sbb += (y - mb) * (y - mb) }
    guard saa > 0, sbb > 0 else { return 0 }
    return sab / (saa * sbb).squareRoot()
}
