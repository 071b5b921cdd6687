import Foundation

extension LaunchCommand {
    /// `--resume RUN_DIR` names a run folder with at least one complete learner checkpoint.
    static func checkResumable(_ resume: String, runDir: String?) throws {
        if let runDir, URL(fileURLWithPath: runDir).standardizedFileURL != URL(fileURLWithPath: resume).standardizedFileURL {
            throw LaunchError("--resume \(resume) and --run-dir \(runDir) name different folders; give only --resume.")
        }
        let checkpoints = URL(fileURLWithPath: resume).appendingPathComponent("checkpoints")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: checkpoints.path)) ?? []
        let complete = names.filter {
            !$0.hasPrefix(".") && FileManager.default.fileExists(atPath: checkpoints.appendingPathComponent($0).appendingPathComponent("learner_state.json").path)
        }
        guard !complete.isEmpty else {
            throw LaunchError("--resume \(resume): \(checkpoints.path) holds no complete checkpoint to continue from.")
        }
    }
}
