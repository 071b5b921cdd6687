/// The rollout actor (DESIGN.md, "Processes"): holds a copy of the policy, generates G completions per
/// assigned prompt, scores them and streams rollout groups to the learner.
///
/// Placeholder: the actor process lands with the training issue (#5). Nothing here runs yet.
public enum RolloutWorker {
    /// Whether the actor role is implemented in this build.
    public static let isImplemented = false
}
