// Structured logs. Libraries log through swift-log `Logger`s; the `dots` executable installs
// `LineLogHandler`, which writes one logfmt line an event, each naming the run, the role and the worker.

import Foundation
// Re-exported: roles log through `Logger`, which Wire's `roleLogger` hands them.
@_exported import Logging
import Synchronization

/// Who is logging, on every line this process writes: the run, the role and the worker (sender) id.
/// Process-wide, because a Dots process runs exactly one role.
public enum LogContext {
    public struct Fields: Sendable, Equatable {
        public var run = "-"
        public var role = "-"
        public var worker = "-"
    }

    private static let fields = Mutex(Fields())

    public static func set(run: String? = nil, role: String? = nil, worker: UInt64? = nil) {
        fields.withLock { f in
            if let run { f.run = run }
            if let role { f.role = role }
            if let worker { f.worker = String(worker) }
        }
    }

    public static var current: Fields { fields.withLock { $0 } }

    /// The run id a role process uses: the launcher's `DOTS_RUN_ID`, else the run folder's name.
    public static func runID(runDir: String?) -> String {
        if let id = ProcessInfo.processInfo.environment["DOTS_RUN_ID"], !id.isEmpty { return id }
        guard let runDir, !runDir.isEmpty else { return "-" }
        return URL(fileURLWithPath: runDir).standardizedFileURL.lastPathComponent
    }
}

/// A role's logger: the label names the role, and `LogContext` is set so every line (including those of
/// loggers made elsewhere in the process, such as the reject counter's) carries the role and worker id.
public func roleLogger(_ role: Role, worker: UInt64) -> Logger {
    LogContext.set(role: role.description, worker: worker)
    return Logger(label: "dots.\(role)")
}

/// One line an event on standard error, in logfmt:
///
///     time=2026-11-25T12:41:02.123Z level=info run=20261125-124100 role=actor worker=1000 msg="started" capacity=2
///
/// The event's metadata follows the message, sorted by key. Each line is one `write(2)`, so lines from
/// several threads never interleave.
public struct LineLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let write: @Sendable (String) -> Void

    public init(level: Logger.Level, write: (@Sendable (String) -> Void)? = nil) {
        logLevel = level
        self.write = write ?? { line in
            line.utf8CString.withUnsafeBufferPointer { p in _ = Foundation.write(STDERR_FILENO, p.baseAddress, p.count - 1) }
        }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        write(Self.format(event, context: LogContext.current,
                          metadata: metadata.merging(metadataProvider?.get() ?? [:]) { $1 }))
    }

    /// The line for one event (its trailing newline included).
    public static func format(_ event: LogEvent, context: LogContext.Fields, metadata base: Logger.Metadata = [:],
                              at date: Date = Date()) -> String {
        var line = "time=\(timestamp(date)) level=\(event.level) run=\(quoted(context.run)) role=\(quoted(context.role))"
            + " worker=\(quoted(context.worker)) msg=\(quoted(event.message.description))"
        let all = base.merging(event.metadata ?? [:]) { $1 }
        for (key, value) in all.sorted(by: { $0.key < $1.key }) { line += " \(key)=\(quoted("\(value)"))" }
        if let error = event.error { line += " error=\(quoted("\(error)"))" }
        return line + "\n"
    }

    /// A logfmt value: bare when it is one plain word, else double-quoted with `"`, `\` and newlines escaped.
    static func quoted(_ value: String) -> String {
        let plain = !value.isEmpty && value.unicodeScalars.allSatisfy { $0.value > 0x20 && $0 != "\"" && $0 != "=" && $0 != "\\" && $0.value != 0x7f }
        if plain { return value }
        var out = "\""
        for c in value.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default: out.unicodeScalars.append(c)
            }
        }
        return out + "\""
    }

    private static func timestamp(_ date: Date) -> String {
        let t = date.timeIntervalSince1970
        var seconds = time_t(t.rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        let ms = min(999, Int((t - t.rounded(.down)) * 1000))
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1,
                      Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec), ms)
    }

    /// Installs this handler for the whole process (once, from the executable): `info` and above by
    /// default, `debug` with `verbose` or `DOTS_LOG_LEVEL=debug`.
    public static func bootstrap(verbose: Bool) {
        let named = ProcessInfo.processInfo.environment["DOTS_LOG_LEVEL"].flatMap { Logger.Level(rawValue: $0) }
        let level = named ?? (verbose ? .debug : .info)
        LoggingSystem.bootstrap { _ in LineLogHandler(level: level) }
    }
}

/// The earlier one-line log call, kept so code written against it still builds: an info line through
/// the process's log format (run, role and worker come from `LogContext`). New code: `roleLogger` and
/// metadata.
public func roleLog(_ role: String, _ message: String) {
    Logger(label: "dots.\(role)").info("\(message)")
}
