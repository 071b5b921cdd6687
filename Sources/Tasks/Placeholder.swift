/// Placeholder until the task suite lands.
public enum TasksPlaceholder {}
