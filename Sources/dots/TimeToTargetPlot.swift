import Foundation
import Learner

/// The picture of `dots bench ttt`: smoothed held-out accuracy against training wall-clock, one curve per
/// method (the mean over seeds) with its seed band (min to max), and the target as a dashed line.
enum TimeToTargetPlot {
    static let colours = ["#444444", "#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#ff7f0e"]

    /// Linear interpolation of a curve at time `t` (nil outside it).
    static func value(_ curve: [TimeToTarget.Point], at t: Double) -> Double? {
        guard let first = curve.first, let last = curve.last, t >= first.seconds, t <= last.seconds else { return nil }
        guard let i = curve.firstIndex(where: { $0.seconds >= t }) else { return nil }
        if i == 0 || curve[i].seconds == t { return curve[i].accuracy }
        let a = curve[i - 1], b = curve[i]
        return a.accuracy + (b.accuracy - a.accuracy) * (t - a.seconds) / (b.seconds - a.seconds)
    }

    static func svg(curves: [String: [[TimeToTarget.Point]]], methods: [String], window: Int, target: Double?) -> String {
        let smoothed = curves.mapValues { $0.map { TimeToTarget.smooth($0, window: window) } }
        let all = smoothed.values.flatMap { $0.flatMap { $0 } }
        let maxT = max(1, all.map(\.seconds).max() ?? 1)
        var lo = min(all.map(\.accuracy).min() ?? 0, target ?? 1), hi = max(all.map(\.accuracy).max() ?? 1, target ?? 0)
        let pad = max(0.01, (hi - lo) * 0.08)
        lo = max(0, lo - pad); hi = min(1, hi + pad)
        let (w, h, left, right, top, bottom) = (760.0, 440.0, 70.0, 600.0, 48.0, 380.0)
        func px(_ t: Double) -> Double { left + t / maxT * (right - left) }
        func py(_ a: Double) -> Double { bottom - (a - lo) / max(1e-9, hi - lo) * (bottom - top) }
        func f(_ v: Double) -> String { String(format: "%.1f", v) }
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(h))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        s += "<text x=\"\(f(left))\" y=\"18\" font-size=\"14\">Held-out accuracy against training wall-clock</text>\n"
        s += "<text x=\"\(f(left))\" y=\"33\" font-size=\"11\" fill=\"#555\">thick: mean over seeds (to the shortest seed's end); thin: each seed; trailing mean over \(window) checkpoints</text>\n"
        // Axes and grid.
        for i in 0...5 {
            let a = lo + (hi - lo) * Double(i) / 5, y = py(a)
            s += "<line x1=\"\(f(left))\" y1=\"\(f(y))\" x2=\"\(f(right))\" y2=\"\(f(y))\" stroke=\"#e5e5e5\"/>\n"
            s += "<text x=\"\(f(left - 6))\" y=\"\(f(y + 4))\" text-anchor=\"end\">\(String(format: "%.1f%%", 100 * a))</text>\n"
        }
        for i in 0...6 {
            let t = maxT * Double(i) / 6, x = px(t)
            s += "<line x1=\"\(f(x))\" y1=\"\(f(bottom))\" x2=\"\(f(x))\" y2=\"\(f(bottom + 4))\" stroke=\"black\"/>\n"
            s += "<text x=\"\(f(x))\" y=\"\(f(bottom + 18))\" text-anchor=\"middle\">\(formatDuration(t))</text>\n"
        }
        s += "<line x1=\"\(f(left))\" y1=\"\(f(bottom))\" x2=\"\(f(right))\" y2=\"\(f(bottom))\" stroke=\"black\"/>\n"
        s += "<line x1=\"\(f(left))\" y1=\"\(f(top))\" x2=\"\(f(left))\" y2=\"\(f(bottom))\" stroke=\"black\"/>\n"
        s += "<text x=\"\(f((left + right) / 2))\" y=\"\(f(bottom + 36))\" text-anchor=\"middle\">training wall-clock (min:s)</text>\n"
        if let target {
            s += "<line x1=\"\(f(left))\" y1=\"\(f(py(target)))\" x2=\"\(f(right))\" y2=\"\(f(py(target)))\" stroke=\"black\" stroke-dasharray=\"6 4\"/>\n"
            s += "<text x=\"\(f(left + 6))\" y=\"\(f(py(target) - 5))\">target \(String(format: "%.1f%%", 100 * target))</text>\n"
        }
        for (k, m) in methods.enumerated() {
            guard let runs = smoothed[m], !runs.isEmpty else { continue }
            let colour = colours[k % colours.count]
            // A common time grid up to where every seed still has data.
            let end = runs.compactMap { $0.last?.seconds }.min() ?? 0
            let grid = (0...120).map { end * Double($0) / 120 }
            var mean: [(Double, Double)] = [], low: [(Double, Double)] = [], high: [(Double, Double)] = []
            for t in grid {
                let vs = runs.compactMap { value($0, at: t) }
                guard !vs.isEmpty else { continue }
                mean.append((t, vs.reduce(0, +) / Double(vs.count)))
                low.append((t, vs.min()!))
                high.append((t, vs.max()!))
            }
            guard !mean.isEmpty else { continue }
            // Each seed thin, to its own end (seeds' wall-clocks differ with the machine's load).
            for run in runs {
                let pts = run.map { "\(f(px($0.seconds))),\(f(py($0.accuracy)))" }.joined(separator: " ")
                s += "<polyline points=\"\(pts)\" fill=\"none\" stroke=\"\(colour)\" stroke-width=\"0.8\" stroke-opacity=\"0.6\"/>\n"
            }
            if runs.count > 1 {
                let band = (high + low.reversed()).map { "\(f(px($0.0))),\(f(py($0.1)))" }.joined(separator: " ")
                s += "<polygon points=\"\(band)\" fill=\"\(colour)\" fill-opacity=\"0.15\" stroke=\"none\"/>\n"
            }
            let line = mean.map { "\(f(px($0.0))),\(f(py($0.1)))" }.joined(separator: " ")
            s += "<polyline points=\"\(line)\" fill=\"none\" stroke=\"\(colour)\" stroke-width=\"2\"/>\n"
            let ly = top + 20 + Double(k) * 20
            s += "<line x1=\"\(f(right + 10))\" y1=\"\(f(ly))\" x2=\"\(f(right + 34))\" y2=\"\(f(ly))\" stroke=\"\(colour)\" stroke-width=\"2\"/>\n"
            s += "<text x=\"\(f(right + 40))\" y=\"\(f(ly + 4))\">\(m)</text>\n"
        }
        return s + "</svg>\n"
    }
}
