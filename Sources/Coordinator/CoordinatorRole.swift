/// The coordinator (DESIGN.md, "Processes"): the control plane — step clock, reference rollouts,
/// difficulty prediction, selection, membership and statistics.
///
/// Placeholder: the coordinator process lands with the training issue (#5). Nothing here runs yet.
public enum CoordinatorRole {
    /// Whether the coordinator role is implemented in this build.
    public static let isImplemented = false
}
