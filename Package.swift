// swift-tools-version: 6.0
import PackageDescription

/// Numeric targets are optimised even in debug builds: an unoptimised transformer is 10–100× slower,
/// which would make `swift test` (the README's test command) far too slow. On x86-64 they also use
/// AVX2/FMA, so the SIMD8 kernels are one instruction a lane-group instead of two SSE halves.
#if arch(x86_64)
let vectorFlags = ["-Xcc", "-mavx2", "-Xcc", "-mfma"]
#else
let vectorFlags: [String] = []
#endif
let numeric: [SwiftSetting] = [
    .unsafeFlags(["-O"], .when(configuration: .debug)),
    .unsafeFlags(vectorFlags),
]

let package = Package(
    name: "Dots",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "dots", targets: ["dots"]),
    ],
    dependencies: [
        // The CLI: subcommands, typed options and `--help` text.
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // cluster.conf is TOML; TOMLKit wraps the maintained toml++ parser.
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        // Structured logs: libraries log through `Logger`, only the executable picks the output format.
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        // C shim: OpenBLAS's CBLAS interface (Debian `libopenblas-dev`).
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        // C shim: libzmq (Debian `libzmq3-dev`). The public Swift ZeroMQ bindings are unmaintained or
        // Apple-only, so Wire keeps a small Swift layer of its own over the C API. No pkgConfig: zmq.h is
        // on the default include path, and libzmq.pc's -isystem flags are refused by SwiftPM.
        .systemLibrary(name: "CZMQ", path: "Sources/CZMQ",
                       providers: [.apt(["libzmq3-dev"])]),

        .target(name: "Model", dependencies: ["CBLAS"], path: "Sources/Model", swiftSettings: numeric),
        .target(name: "Tasks", path: "Sources/Tasks"),
        .target(name: "Wire", dependencies: ["CZMQ", "TOMLKit", .product(name: "Logging", package: "swift-log")],
                path: "Sources/Wire"),
        // What the cluster is doing: per-worker stats aggregated by the coordinator, /metrics (Prometheus
        // text), the `dots top` table and the `dots plot` charts.
        .target(name: "Monitor", dependencies: ["Wire"], path: "Sources/Monitor"),
        // `Actor` would clash with Swift's `Actor` protocol, hence the target name.
        .target(name: "RolloutActor", dependencies: ["Model", "Wire", "Tasks"], path: "Sources/Actor",
                swiftSettings: numeric),
        .target(name: "Learner", dependencies: ["Model", "Wire", "Tasks", "RolloutActor"], path: "Sources/Learner",
                swiftSettings: numeric),
        .target(name: "Coordinator", dependencies: ["CBLAS", "Model", "Wire", "Tasks", "RolloutActor", "Monitor"], path: "Sources/Coordinator",
                swiftSettings: numeric),
        .executableTarget(
            name: "dots",
            dependencies: [
                "Model", "Tasks", "Wire", "RolloutActor", "Learner", "Coordinator", "Monitor",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/dots", swiftSettings: numeric),

        .testTarget(name: "ModelTests", dependencies: ["Model"], path: "Tests/ModelTests",
                    resources: [.copy("Fixtures")], swiftSettings: numeric),
        .testTarget(name: "TasksTests", dependencies: ["Tasks"], path: "Tests/TasksTests"),
        .testTarget(name: "WireTests", dependencies: ["Wire"], path: "Tests/WireTests"),
        .testTarget(name: "ActorTests", dependencies: ["RolloutActor"], path: "Tests/ActorTests", swiftSettings: numeric),
        .testTarget(name: "LearnerTests", dependencies: ["Learner"], path: "Tests/LearnerTests", swiftSettings: numeric),
        .testTarget(name: "MonitorTests", dependencies: ["Monitor"], path: "Tests/MonitorTests"),
        .testTarget(name: "CoordinatorTests", dependencies: ["Coordinator"], path: "Tests/CoordinatorTests", swiftSettings: numeric),
        // Starts the real `dots` binary as separate processes on loopback.
        .testTarget(name: "MultiProcessTests", dependencies: ["dots", "Wire"], path: "Tests/MultiProcessTests"),
    ],
    swiftLanguageModes: [.v6]
)
