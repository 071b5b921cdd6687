import Foundation
import Model
@testable import Learner
import Testing

/// A learner checkpoint resumes exactly: weights, AdamW's moments and step count come back, so the next
/// update after a resume is bit-for-bit the update the uninterrupted learner makes.
@Test func learnerCheckpointResumesTheOptimizerExactly() throws {
    let model = try Transformer(config: .tiny())
    model.initialize(seed: 7)
    let prompt: [Int32] = [1, 20, 21]
    let a: [Int32] = [30, 31, 2], b: [Int32] = [40, 41, 2]
    let group = TrainingGroup(promptID: 1, promptTokens: prompt,
                              completions: [(a, [-1, -1, -1], 1), (b, [-1, -1, -1], 0)],
                              weightsVersion: 0, actorID: 1000, generationSeconds: 0)
    var settings = GRPOSettings()
    settings.learningRate = 1e-2
    let original = GRPOUpdater(model: model, settings: settings)
    for _ in 0..<3 { _ = try original.update([group]) }
    #expect(original.optimizer.step == 3)

    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("learner-resume-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: dir) }
    try Checkpoint.save(model, tokenizer: .standard, to: dir, metadata: ["step": "3"])
    try LearnerState(step: 3, version: 3, adamStep: original.optimizer.step).save(dir, optimizer: original.optimizer)

    let (loaded, _) = try Checkpoint.load(dir)
    let resumed = GRPOUpdater(model: loaded, settings: settings)
    let state = try LearnerState.load(dir)
    try state.restore(into: resumed.optimizer, from: dir)
    #expect(state.step == 3 && state.version == 3 && resumed.optimizer.step == 3)
    #expect(resumed.optimizer.m.array == original.optimizer.m.array && resumed.optimizer.v.array == original.optimizer.v.array)

    _ = try original.update([group])
    _ = try resumed.update([group])
    #expect(loaded.parameters.array == model.parameters.array, "the update after the resume differs from the uninterrupted one")
}

/// A checkpoint whose optimizer state belongs to another model is refused with a sentence naming the file.
@Test func mismatchedOptimizerStateIsOneSentence() throws {
    let small = try Transformer(config: .tiny())
    small.initialize(seed: 1)
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("learner-mismatch-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: dir) }
    let updater = GRPOUpdater(model: small, settings: GRPOSettings())
    try Checkpoint.save(small, tokenizer: .standard, to: dir, metadata: [:])
    try LearnerState(step: 1, version: 1, adamStep: 1).save(dir, optimizer: updater.optimizer)
    // Truncate the optimizer file: the resume must say which file, not crash.
    let file = dir.appendingPathComponent("optimizer.safetensors")
    let bytes = try Data(contentsOf: file)
    try bytes.prefix(bytes.count / 2).write(to: file)
    let other = GRPOUpdater(model: small, settings: GRPOSettings())
    #expect {
        try LearnerState.load(dir).restore(into: other.optimizer, from: dir)
    } throws: { error in
        "\(error)".contains("optimizer.safetensors") && !"\(error)".contains("\n")
    }
}

/// A damaged newest checkpoint is passed over (and kept) for the one before it; when every checkpoint is
/// damaged the resume fails with the sentence naming the file instead of starting over from the base.
@Test func resumeSkipsADamagedCheckpointAndKeepsIt() throws {
    let model = try Transformer(config: .tiny())
    model.initialize(seed: 3)
    let updater = GRPOUpdater(model: model, settings: GRPOSettings())
    let root = FileManager.default.temporaryDirectory.appendingPathComponent("learner-fallback-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: root) }
    let base = root.appendingPathComponent("base"), checkpoints = root.appendingPathComponent("checkpoints")
    try Checkpoint.save(model, tokenizer: .standard, to: base, metadata: [:])
    for step in [2, 4] {
        let dir = checkpoints.appendingPathComponent("step-\(step)")
        try Checkpoint.save(model, tokenizer: .standard, to: dir, metadata: [:])
        try LearnerState(step: step, version: UInt64(step), adamStep: step).save(dir, optimizer: updater.optimizer)
    }
    let damaged = checkpoints.appendingPathComponent("step-4/model.safetensors")
    let bytes = try Data(contentsOf: damaged)
    try bytes.prefix(100).write(to: damaged)
    let replay = ReplayBuffer(capacity: 4, seed: 1)

    let start = try LearnerStart.load(base: base, checkpoints: checkpoints, settings: GRPOSettings(), replay: replay)
    #expect(start.step == 2 && start.version == 2 && start.updater.optimizer.step == 2)
    #expect(FileManager.default.fileExists(atPath: damaged.path), "the damaged checkpoint was removed")

    try Data().write(to: checkpoints.appendingPathComponent("step-2/optimizer.safetensors"))
    #expect {
        try LearnerStart.load(base: base, checkpoints: checkpoints, settings: GRPOSettings(), replay: replay)
    } throws: { error in
        "\(error)".contains("step-4/model.safetensors") && !"\(error)".contains("\n")
    }
    // Not resuming: the base checkpoint, step 0.
    #expect(try LearnerStart.load(base: base, checkpoints: nil, settings: GRPOSettings(), replay: replay).step == 0)
}

/// `final` ranks by its step: a run stopped cleanly at step 4, resumed, and killed after step-6 continues
/// from step-6.
@Test func resumeTakesTheNewestStepNotFinal() throws {
    let model = try Transformer(config: .tiny())
    model.initialize(seed: 2)
    let updater = GRPOUpdater(model: model, settings: GRPOSettings())
    let checkpoints = FileManager.default.temporaryDirectory.appendingPathComponent("learner-order-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: checkpoints) }
    for (name, step) in [("step-2", 2), ("final", 4), ("step-4", 4), ("step-6", 6)] {
        let dir = checkpoints.appendingPathComponent(name)
        try Checkpoint.save(model, tokenizer: .standard, to: dir, metadata: [:])
        try LearnerState(step: step, version: UInt64(step), adamStep: step).save(dir, optimizer: updater.optimizer)
    }
    try FileManager.default.createDirectory(at: checkpoints.appendingPathComponent(".step-8.partial"), withIntermediateDirectories: true)
    #expect(LearnerState.candidates(in: checkpoints).map(\.lastPathComponent) == ["step-6", "final", "step-4", "step-2"])
}
