import Foundation
import Wire

/// DOTS selection state on disk (RUN_DIR/selection-state.json), so a restarted coordinator, or a run
/// resumed with `dots launch --resume`, issues the prompts the interrupted rounds selected instead of
/// selecting them afresh with other weights. Written after every round, atomically (temp file + rename).
public struct SelectionState: Codable, Sendable, Equatable {
    /// One round's plan.
    public struct Round: Codable, Sendable, Equatable {
        public var round: Int
        /// The steps it selected for, in order.
        public var steps: [Int]
        /// The weights version its reference rollouts ran with.
        public var weightsVersion: UInt64
        /// The prompts the actors get, per step (parallel to `steps`).
        public var prompts: [[UInt64]]
        /// Reference groups fed to the learner as part of the first step (`training.reference_feed`).
        public var fed: [RolloutGroup]

        public init(round: Int, steps: [Int], weightsVersion: UInt64, prompts: [[UInt64]], fed: [RolloutGroup] = []) {
            self.round = round
            self.steps = steps
            self.weightsVersion = weightsVersion
            self.prompts = prompts
            self.fed = fed
        }
    }

    public static let fileName = "selection-state.json"

    /// Rounds in step order.
    public var rounds: [Round] = []

    public init(rounds: [Round] = []) { self.rounds = rounds }

    /// Adds a round, replacing any earlier round over the same steps, and forgets rounds that ended
    /// before `keepFrom` (steps no checkpoint the learner could resume from still needs).
    public mutating func record(_ round: Round, keepFrom: Int) {
        let steps = Set(round.steps)
        rounds.removeAll { !steps.isDisjoint(with: $0.steps) || ($0.steps.last ?? -1) < keepFrom }
        rounds.append(round)
        rounds.sort { ($0.steps.first ?? 0) < ($1.steps.first ?? 0) }
    }

    /// The rounds with a step the learner has not finished (the learner at weights version `version`
    /// has finished steps 0..<version).
    public func unfinished(learnerAt version: Int) -> [Round] {
        rounds.filter { ($0.steps.last ?? -1) >= version }
    }

    /// Reads RUN_DIR's state; nil when there is none.
    public static func load(runDir: URL) throws -> SelectionState? {
        let url = runDir.appendingPathComponent(fileName)
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        do {
            let state = try JSONDecoder().decode(SelectionState.self, from: Data(contentsOf: url))
            for r in state.rounds where r.prompts.count != r.steps.count {
                throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "round \(r.round) has \(r.steps.count) steps and \(r.prompts.count) prompt lists"))
            }
            return state
        } catch {
            throw SelectionStateError("\(url.path) is not a selection state this coordinator can read (\(error)); move it aside to select afresh.")
        }
    }

    /// Writes to a temporary file beside the state, then renames it over: a crash leaves the old state
    /// or the new one, never half of one.
    public func save(runDir: URL) throws {
        let url = runDir.appendingPathComponent(Self.fileName)
        let tmp = runDir.appendingPathComponent(".\(Self.fileName).tmp")
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        try enc.encode(self).write(to: tmp)
        guard rename(tmp.path, url.path) == 0 else {
            throw SelectionStateError("could not rename \(tmp.path) to \(url.path): \(String(cString: strerror(errno)))")
        }
    }
}

public struct SelectionStateError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
