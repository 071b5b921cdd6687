// What every role process needs besides sockets: a stop flag for signals, the metrics writer, patient
// sends, and the one rule for how many fresh groups a step takes. (Log lines: Logging.swift; reports to
// the coordinator: StatsReporter.swift.)

import Foundation
import Synchronization

/// SIGINT/SIGTERM as a flag the role loops poll: they finish what they are doing (a step, a send),
/// write what must be written, and exit 0.
public enum StopSignal {
    private static let flag = Atomic<Bool>(false)

    /// Replaces the default handlers of SIGINT and SIGTERM with setting the flag.
    public static func install() {
        for sig in [SIGINT, SIGTERM] {
            signal(sig) { _ in StopSignal.flag.store(true, ordering: .relaxed) }
        }
    }

    public static var requested: Bool { flag.load(ordering: .relaxed) }

    /// Asks the loops to stop (e.g. on a shutdown control message).
    public static func request() { flag.store(true, ordering: .relaxed) }
}

/// One JSON object per line, appended and flushed: the format of metrics.jsonl.
public final class JSONLinesWriter: @unchecked Sendable {
    private let handle: FileHandle
    private let lock = NSLock()

    public init(path: String) throws {
        if !FileManager.default.fileExists(atPath: path) {
            guard FileManager.default.createFile(atPath: path, contents: nil) else {
                throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path])
            }
        }
        handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        handle.seekToEndOfFile()
    }

    public func write(_ object: [String: Any]) {
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else { return }
        lock.lock()
        defer { lock.unlock() }
        handle.write(data + Data("\n".utf8))
    }
}

/// Fresh rollout groups a step trains on: B in the first round of μ steps and whenever replay is off,
/// round(δ·B) after that (replay fills the rest). The coordinator issues this many prompts per step and
/// the learner waits for this many, so both read it from here.
public func freshGroupsPerStep(step: Int, batchSize: Int, replay: Bool, delta: Double, roundLength: Int) -> Int {
    guard replay, step >= max(1, roundLength) else { return batchSize }
    return max(1, Int((delta * Double(batchSize)).rounded()))
}

extension ClusterConfig.TrainingConfig {
    public func freshGroups(step: Int) -> Int {
        freshGroupsPerStep(step: step, batchSize: batchSize, replay: replay, delta: replayFractionDelta, roundLength: selectionEvery)
    }
}

/// Sends without ever blocking past a stop request: retries a full (or not yet connected) PUSH every
/// 5 ms until the message goes or `StopSignal` is raised.
public func sendPatiently(_ socket: ZMQSocket, _ frames: [[UInt8]]) throws {
    while !StopSignal.requested {
        if try socket.send(frames, dontWait: true) { return }
        Thread.sleep(forTimeInterval: 0.005)
    }
}
