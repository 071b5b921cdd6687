import Foundation

/// A one-line progress display on stderr: redrawn in place on a terminal, a line every 10% otherwise
/// (so logs stay readable).
final class ProgressLine {
    private let isTTY = isatty(STDERR_FILENO) != 0
    private var lastDecile = -1
    private var lastDraw = Date.distantPast

    func update(fraction: Double, _ text: @autoclosure () -> String) {
        let f = max(0, min(1, fraction))
        if isTTY {
            guard Date().timeIntervalSince(lastDraw) > 0.2 || f >= 1 else { return }
            lastDraw = Date()
            let width = 24, filled = Int(f * Double(width))
            let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
            FileHandle.standardError.write(Data("\r\u{1B}[2K[\(bar)] \(String(format: "%3.0f%%", 100 * f)) \(text())".utf8))
        } else {
            let decile = Int(f * 10)
            guard decile > lastDecile else { return }
            lastDecile = decile
            FileHandle.standardError.write(Data("\(String(format: "%3.0f%%", 100 * f)) \(text())\n".utf8))
        }
    }

    func finish() { if isTTY { FileHandle.standardError.write(Data("\n".utf8)) } }
}

func formatDuration(_ s: Double) -> String {
    guard s.isFinite, s >= 0 else { return "--:--" }
    let t = Int(s.rounded())
    return t >= 3600 ? String(format: "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60) : String(format: "%d:%02d", t / 60, t % 60)
}
