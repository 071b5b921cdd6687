import ArgumentParser

/// `dots`: the one executable of Dots. Every role and tool is a subcommand.
@main
struct Dots: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dots",
        abstract: "Data-efficient GRPO fine-tuning of language models: DOTS selection and rollout replay, actor–learner over ZeroMQ.",
        discussion: """
        Train: `dots launch` starts the coordinator, the learner and the actors that cluster.conf places on
        this host, trains the committed base checkpoint with GRPO on the built-in tasks, and writes
        runs/<time>/metrics.jsonl (a line per step) and checkpoints. Look: `dots eval --checkpoint DIR`
        measures accuracy; `dots sample` shows what a checkpoint writes. Watch: `dots top` (live, per
        worker), `dots plot RUN_DIR --out run.svg`. Measure: `dots bench model` and
        `dots bench wire`. Every subcommand has its own --help.
        """,
        subcommands: [
            ModelCommand.self,
            ScoreCommand.self,
            SampleCommand.self,
            BenchCommand.self,
            TasksCommand.self,
            PretrainCommand.self,
            EvalCommand.self,
            PredictorCommand.self,
            LaunchCommand.self,
            CoordinatorCommand.self,
            LearnerCommand.self,
            ActorCommand.self,
            KeysCommand.self,
            TopCommand.self,
            PlotCommand.self,
        ]
    )
}
