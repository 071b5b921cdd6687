import ArgumentParser
import Model

/// The entry point: first makes sure OpenBLAS runs kernels that fit this CPU (it may start the process
/// again with OPENBLAS_CORETYPE set; see BLASCore), then parses the command line.
@main
enum Entry {
    static func main() async {
        BLASCore.adoptBetterCore()
        await Dots.main()
    }
}

/// `dots`: the one executable of Dots. Every role and tool is a subcommand.
struct Dots: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dots",
        abstract: "Data-efficient GRPO fine-tuning of language models: DOTS selection and rollout replay, actor–learner over ZeroMQ.",
        discussion: """
        Start here: `dots launch` starts the coordinator, the learner and the actors that cluster.conf \
        places on this host, trains the committed base checkpoint with GRPO and DOTS selection on the \
        built-in tasks, and \
        writes runs/<time>/metrics.jsonl (a line per step), logs and checkpoints. Ctrl-C stops it cleanly; \
        `dots launch --resume RUN_DIR` continues.

        Watch: `dots top` (live, per worker), `dots plot RUN_DIR --out run.svg` (accuracy and tokens/s \
        over time). Look: `dots eval --checkpoint DIR` (accuracy), `dots sample` (what a checkpoint \
        writes). Measure: `dots bench model|learner|wire|ttt|soak`. Plain GRPO, the baseline: `dots launch --set \
        training.selection=uniform`; DOTS uses the predictor in checkpoints/predictor (`dots predictor \
        train` makes another). Every subcommand has its own --help.
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
