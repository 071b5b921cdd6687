import ArgumentParser

/// `dots bench …`: benchmarks that print what they measured, as a table or JSON.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure: model, learner and wire speed, time to target (the headline), a soak under faults.",
        subcommands: [
            BenchModelCommand.self,
            BenchWireCommand.self,
            BenchLearnerCommand.self,
            BenchTTTCommand.self,
            BenchSoakCommand.self,
        ]
    )
}
