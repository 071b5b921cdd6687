import ArgumentParser

/// `dots`: the one executable of Dots. Every role and tool is a subcommand.
@main
struct Dots: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dots",
        abstract: "Data-efficient GRPO fine-tuning of language models: DOTS selection and rollout replay, actor–learner over ZeroMQ.",
        discussion: """
        Start with `dots model init` to make a checkpoint, `dots sample` to see what it writes, and
        `dots bench model` to see how fast this machine runs it. Every subcommand has its own --help.
        """,
        subcommands: [
            ModelCommand.self,
            ScoreCommand.self,
            SampleCommand.self,
            BenchCommand.self,
            TasksCommand.self,
            PretrainCommand.self,
            EvalCommand.self,
            LaunchCommand.self,
            CoordinatorCommand.self,
            LearnerCommand.self,
            ActorCommand.self,
            KeysCommand.self,
        ]
    )
}
