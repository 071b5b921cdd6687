import Foundation
import Model
import Wire

/// What a learner starts from: the base checkpoint, or — resuming — the newest run checkpoint that loads
/// whole (weights, optimizer state, replay buffer). A damaged checkpoint is named in the log and passed
/// over for the one before it; it is never deleted, so nothing stored is lost.
struct LearnerStart {
    var updater: GRPOUpdater
    var tokenizer: CharTokenizer
    var replay: ReplayBuffer
    var step = 0
    var version: UInt64 = 0

    /// - Parameter checkpoints: the run's checkpoint folder when resuming, else nil.
    static func load(base: URL, checkpoints: URL?, settings: GRPOSettings, replay: ReplayBuffer) throws -> LearnerStart {
        let candidates = checkpoints.map(LearnerState.candidates) ?? []
        var firstError: Error?
        for dir in candidates {
            do {
                let state = try LearnerState.load(dir)
                let (model, tok) = try Checkpoint.load(dir)
                var start = LearnerStart(updater: GRPOUpdater(model: model, settings: settings), tokenizer: tok, replay: replay)
                try state.restore(into: start.updater.optimizer, from: dir)
                let replayFile = dir.appendingPathComponent("replay.json")
                if FileManager.default.fileExists(atPath: replayFile.path) { start.replay = try ReplayBuffer.load(from: replayFile) }
                start.step = state.step
                start.version = state.version
                if firstError != nil { roleLog("learner", "resuming from the older \(dir.path) instead") }
                roleLog("learner", "resumed from \(dir.path) at step \(state.step), version \(state.version)")
                return start
            } catch {
                roleLog("learner", "cannot resume from \(dir.path): \(error) (left as it is)")
                firstError = firstError ?? error
            }
        }
        // Every checkpoint there is damaged: starting over from the base would silently rewind the run.
        if let firstError { throw firstError }
        let (model, tok) = try Checkpoint.load(base)
        return LearnerStart(updater: GRPOUpdater(model: model, settings: settings), tokenizer: tok, replay: replay)
    }
}

extension LearnerState {
    /// The checkpoints a resume may continue from, best first: `final` (the last run ended cleanly), then
    /// `step-N` from the newest. Only complete ones (a learner killed mid-write leaves a hidden `.NAME.partial`).
    static func candidates(in dir: URL) -> [URL] {
        let fm = FileManager.default
        let names = (try? fm.contentsOfDirectory(atPath: dir.path)) ?? []
        let steps = names.compactMap { name -> (Int, URL)? in
            guard name.hasPrefix("step-"), let n = Int(name.dropFirst(5)) else { return nil }
            return (n, dir.appendingPathComponent(name))
        }.sorted { $0.0 > $1.0 }.map(\.1)
        return ([dir.appendingPathComponent("final")] + steps).filter {
            fm.fileExists(atPath: $0.appendingPathComponent("learner_state.json").path)
        }
    }
}
