/// One prompt with its verifiable answer.
///
/// `family` and `level` are metadata for reports (accuracy by family and level); the difficulty
/// predictor must not read them, since DOTS predicts difficulty from the prompt alone.
public struct Problem: Sendable, Codable, Hashable {
    /// Unique within a dataset; the wire refers to prompts by this id.
    public var id: Int
    public var prompt: String
    public var answer: String
    public var family: String
    public var level: Int

    public init(id: Int, prompt: String, answer: String, family: String = Problem.defaultFamily, level: Int = 0) {
        self.id = id
        self.prompt = prompt
        self.answer = answer
        self.family = family
        self.level = level
    }

    /// Family of a JSONL problem whose `meta` names none.
    public static let defaultFamily = "other"
}

/// The two splits of a dataset: train prompts are selected and trained on, test prompts only evaluated.
public enum Split: String, Sendable, Codable, CaseIterable {
    case train, test
}
