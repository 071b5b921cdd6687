import ArgumentParser

/// `dots bench …`: benchmarks that print what they measured, as a table or JSON.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure the speed of the model and the wire on this machine.",
        subcommands: [
            BenchModelCommand.self,
            BenchWireCommand.self,
            BenchTTTCommand.self,
            BenchSoakCommand.self,
        ]
    )
}
