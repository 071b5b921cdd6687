import Foundation

/// The series `dots plot` draws from one run folder's metrics.jsonl.
public struct RunMetrics: Sendable {
    public var name: String
    /// (seconds since the learner started, held-out accuracy): each evaluation at the time its weights
    /// were made (the end of the step it evaluated; step 0, the starting weights, at 0).
    public var accuracy: [(Double, Double)] = []
    /// Per actor id: (seconds, tokens/s over that step's generation).
    public var tokensPerSecond: [String: [(Double, Double)]] = [:]
    public var steps = 0

    public init(name: String) { self.name = name }

    /// Reads RUN_DIR/metrics.jsonl. Lines that are not JSON objects (a line being written) are skipped.
    public static func load(runDir: String) throws(PlotError) -> RunMetrics {
        let path = (runDir as NSString).appendingPathComponent("metrics.jsonl")
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: runDir, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw PlotError("\(runDir) is not a folder; give run folders written by `dots launch` (runs/<time>).")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw PlotError("\(runDir) has no metrics.jsonl; is it a run folder written by `dots launch`?")
        }
        var run = RunMetrics(name: URL(fileURLWithPath: runDir).standardizedFileURL.lastPathComponent)
        var stepTimes: [Int: Double] = [0: 0]
        for line in data.split(separator: UInt8(ascii: "\n")) {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any],
                  let time = (object["time"] as? NSNumber)?.doubleValue else { continue }
            run.steps += 1
            if let step = (object["step"] as? NSNumber)?.intValue { stepTimes[step] = time }
            if let a = (object["test_accuracy"] as? NSNumber)?.doubleValue {
                // An evaluation runs beside training and lands in a later line; place it at its step's time.
                let evaluated = (object["test_step"] as? NSNumber)?.intValue
                run.accuracy.append((evaluated.flatMap { stepTimes[$0] } ?? time, a))
            }
            for (actor, value) in (object["tokens_per_s"] as? [String: Any]) ?? [:] {
                if let v = (value as? NSNumber)?.doubleValue, v.isFinite { run.tokensPerSecond[actor, default: []].append((time, v)) }
            }
        }
        guard run.steps > 0 else { throw PlotError("\(path) has no training steps yet.") }
        return run
    }
}

public struct PlotError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Charts as hand-written SVG: held-out accuracy against wall-clock time for one or more runs, and
/// tokens/s per actor over time.
public enum Plot {
    struct Series {
        var label: String
        var points: [(Double, Double)]
        var color: String
        /// SVG stroke-dasharray; empty for a solid line.
        var dash = ""
    }

    /// Line styles that tell a run's actors apart when the colour says which run.
    static let dashes = ["", "7 4", "2 3", "10 3 2 3", "4 4"]

    /// Tableau 10: distinguishable, and readable on white.
    static let palette = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"]

    public static func svg(_ runs: [RunMetrics]) -> String {
        let width = 900.0, chartHeight = 340.0
        let multi = runs.count > 1
        let accuracy = runs.enumerated().map { i, r in
            Series(label: r.name, points: r.accuracy.map { ($0.0, 100 * $0.1) }, color: palette[i % palette.count])
        }
        // One run: a colour per actor. Several: each run keeps its colour from the accuracy chart, and its
        // actors differ by line style.
        var tokens: [Series] = []
        for (i, r) in runs.enumerated() {
            for (j, actor) in r.tokensPerSecond.keys.sorted(by: { (Int($0) ?? 0) < (Int($1) ?? 0) }).enumerated() {
                tokens.append(Series(label: multi ? "\(r.name) · actor \(actor)" : "actor \(actor)",
                                     points: r.tokensPerSecond[actor]!,
                                     color: palette[(multi ? i : j) % palette.count], dash: multi ? dashes[j % dashes.count] : ""))
            }
        }
        let maxTime = (accuracy + tokens).flatMap { $0.points.map(\.0) }.max() ?? 1
        let unit: (divisor: Double, name: String) = maxTime > 7200 ? (3600, "hours") : maxTime > 120 ? (60, "minutes") : (1, "seconds")
        var out = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(2 * chartHeight + 20))" \
            viewBox="0 0 \(Int(width)) \(Int(2 * chartHeight + 20))" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">
            <rect width="100%" height="100%" fill="white"/>

            """
        let xTicks = ticks(0, max(maxTime / unit.divisor, 1e-9))
        out += chart(title: "Held-out accuracy (greedy) against wall-clock time", yLabel: "accuracy (%)",
                     xLabel: "wall-clock time since the learner started (\(unit.name))", series: accuracy, unit: unit.divisor, xTicks: xTicks,
                     origin: (0, 0), size: (width, chartHeight), yFromZero: false,
                     empty: "no held-out accuracy in these runs (training.eval_every = 0?)", markers: true)
        out += chart(title: "Generation speed per actor (tokens/s over each step's generation)", yLabel: "tokens/s",
                     xLabel: "wall-clock time since the learner started (\(unit.name))", series: tokens, unit: unit.divisor, xTicks: xTicks,
                     origin: (0, chartHeight + 20), size: (width, chartHeight), yFromZero: true,
                     empty: "no tokens_per_s in these runs", markers: false)
        return out + "</svg>\n"
    }

    private static func chart(title: String, yLabel: String, xLabel: String, series: [Series], unit: Double, xTicks: [Double],
                              origin: (Double, Double), size: (Double, Double), yFromZero: Bool, empty: String,
                              markers: Bool) -> String {
        let left = origin.0 + 70, right = origin.0 + size.0 - 190, top = origin.1 + 40, bottom = origin.1 + size.1 - 50
        var s = "<g>\n"
        s += text(origin.0 + 70, origin.1 + 22, title, size: 15, weight: "bold")
        let points = series.flatMap(\.points)
        guard !points.isEmpty else {
            s += "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(right - left))\" height=\"\(f(bottom - top))\" fill=\"none\" stroke=\"#999\"/>\n"
            s += text((left + right) / 2, (top + bottom) / 2, empty, anchor: "middle", color: "#666")
            return s + "</g>\n"
        }
        let ys = points.map(\.1)
        var yMin = yFromZero ? 0 : ys.min()!, yMax = ys.max()!
        if yMax - yMin < 1e-9 { yMin -= 1; yMax += 1 }
        let yTicks = ticks(yMin, yMax)
        let x0 = xTicks.first!, x1 = xTicks.last!, y0 = yTicks.first!, y1 = yTicks.last!
        func px(_ x: Double) -> Double { left + (x - x0) / (x1 - x0) * (right - left) }
        func py(_ y: Double) -> Double { bottom - (y - y0) / (y1 - y0) * (bottom - top) }
        for t in yTicks {
            s += "<line x1=\"\(f(left))\" y1=\"\(f(py(t)))\" x2=\"\(f(right))\" y2=\"\(f(py(t)))\" stroke=\"#e5e5e5\"/>\n"
            s += text(left - 8, py(t) + 4, label(t), anchor: "end")
        }
        for t in xTicks {
            s += "<line x1=\"\(f(px(t)))\" y1=\"\(f(bottom))\" x2=\"\(f(px(t)))\" y2=\"\(f(bottom + 5))\" stroke=\"#333\"/>\n"
            s += text(px(t), bottom + 19, label(t), anchor: "middle")
        }
        s += "<polyline points=\"\(f(left)),\(f(top)) \(f(left)),\(f(bottom)) \(f(right)),\(f(bottom))\" fill=\"none\" stroke=\"#333\"/>\n"
        s += text((left + right) / 2, bottom + 40, xLabel, anchor: "middle")
        s += "<text x=\"\(f(origin.0 + 18))\" y=\"\(f((top + bottom) / 2))\" text-anchor=\"middle\" transform=\"rotate(-90 \(f(origin.0 + 18)) \(f((top + bottom) / 2)))\">\(escape(yLabel))</text>\n"
        for (i, series) in series.enumerated() where !series.points.isEmpty {
            let pts = series.points.map { "\(f(px($0.0 / unit))),\(f(py($0.1)))" }.joined(separator: " ")
            let dash = series.dash.isEmpty ? "" : " stroke-dasharray=\"\(series.dash)\""
            s += "<polyline points=\"\(pts)\" fill=\"none\" stroke=\"\(series.color)\" stroke-width=\"\(markers ? 2 : 1.5)\"\(dash) stroke-linejoin=\"round\"/>\n"
            if markers {
                for p in series.points { s += "<circle cx=\"\(f(px(p.0 / unit)))\" cy=\"\(f(py(p.1)))\" r=\"3\" fill=\"\(series.color)\"/>\n" }
            }
            let ly = top + 8 + Double(i) * 18
            s += "<line x1=\"\(f(right + 12))\" y1=\"\(f(ly))\" x2=\"\(f(right + 36))\" y2=\"\(f(ly))\" stroke=\"\(series.color)\" stroke-width=\"2.5\"\(dash)/>\n"
            s += text(right + 42, ly + 4, String(series.label.prefix(24)))
        }
        return s + "</g>\n"
    }

    /// About five round tick values covering [lo, hi].
    static func ticks(_ lo: Double, _ hi: Double) -> [Double] {
        let span = max(hi - lo, 1e-9)
        let raw = span / 5, magnitude = pow(10, (log10(raw)).rounded(.down))
        let step = [1.0, 2, 2.5, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? 10 * magnitude
        let start = (lo / step).rounded(.down) * step
        var out: [Double] = []
        var t = start
        while t < hi + step * 0.999 && out.count < 20 {
            out.append(t)
            if t >= hi { break }
            t += step
        }
        if out.count < 2 { out.append(start + step) }
        return out
    }

    static func label(_ v: Double) -> String {
        if abs(v) >= 1000 { return String(format: "%.0f", v) }
        return v == v.rounded() ? String(Int(v)) : String(format: "%g", (v * 1000).rounded() / 1000)
    }

    private static func f(_ v: Double) -> String { String(format: "%.1f", v) }

    private static func text(_ x: Double, _ y: Double, _ content: String, anchor: String = "start", size: Int = 12,
                             weight: String = "normal", color: String = "#222") -> String {
        "<text x=\"\(f(x))\" y=\"\(f(y))\" text-anchor=\"\(anchor)\" font-size=\"\(size)\" font-weight=\"\(weight)\" fill=\"\(color)\">\(escape(content))</text>\n"
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
