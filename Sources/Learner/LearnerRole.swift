/// The learner (DESIGN.md, "Processes"): owns the trainable parameters, the optimizer state and the
/// replay buffer, and runs the GRPO updates.
///
/// Placeholder: the learner process lands with the training issue (#5). Nothing here runs yet.
public enum LearnerRole {
    /// Whether the learner role is implemented in this build.
    public static let isImplemented = false
}
