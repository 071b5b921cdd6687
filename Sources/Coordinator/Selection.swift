import Foundation
import Model

/// DOTS's difficulty-targeted draw: prompts without replacement with P(q) ∝ exp(−|d̂_q − α| / τ).
///
/// Implemented with the Gumbel-top-k trick (keys log w_q + Gumbel noise, the m largest), which is exactly
/// sequential sampling without replacement and works in log space: with the paper's τ = 1e-3 the weights
/// themselves underflow (exp(−500)).
public enum Selection {
    /// log of the unnormalised selection weight: −|d̂ − α| / τ.
    public static func logWeight(difficulty: Float, alpha: Double, tau: Double) -> Double {
        -abs(Double(difficulty) - alpha) / tau
    }

    /// Indices into `difficulties` of `count` prompts drawn without replacement, in draw order.
    public static func draw(difficulties: [Float], count: Int, alpha: Double, tau: Double,
                            rng: inout SplitMix64) -> [Int] {
        let m = min(count, difficulties.count)
        guard m > 0 else { return [] }
        var keys = [(key: Double, index: Int)]()
        keys.reserveCapacity(difficulties.count)
        for (i, d) in difficulties.enumerated() {
            // u in (0, 1): Gumbel(0, 1) = −log(−log u).
            let u = (Double(rng.next() >> 11) + 0.5) * 0x1p-53
            keys.append((logWeight(difficulty: d, alpha: alpha, tau: tau) - log(-log(u)), i))
        }
        keys.sort { $0.key > $1.key }
        return keys.prefix(m).map(\.index)
    }
}
