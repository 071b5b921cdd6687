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
    /// The checkpoints a resume may continue from, newest step first: `final` and every `step-N` that is
    /// complete (a learner killed mid-write leaves only a hidden `.NAME.partial`). `final` ranks by its
    /// step like the others, so a run resumed after a Ctrl-C and killed later continues from its newest
    /// `step-N`, not from the older `final`.
    static func candidates(in dir: URL) -> [URL] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        let found = names.filter { $0 == "final" || ($0.hasPrefix("step-") && Int($0.dropFirst(5)) != nil) }
            .compactMap { name -> (step: Int, final: Bool, url: URL)? in
                let url = dir.appendingPathComponent(name)
                guard FileManager.default.fileExists(atPath: url.appendingPathComponent("learner_state.json").path) else { return nil }
                // An unreadable state file still ranks (by its name), so the resume names it in the log.
                let step = (try? LearnerState.load(url))?.step ?? Int(name.dropFirst(5)) ?? -1
                return (step, name == "final", url)
            }
        return found.sorted { ($0.step, $0.final ? 1 : 0) > ($1.step, $1.final ? 1 : 0) }.map(\.url)
    }
}
