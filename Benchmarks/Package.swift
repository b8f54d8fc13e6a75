// swift-tools-version:6.0
import PackageDescription

/// The benchmarks, a package of their own so that users of the library don't resolve them: `amqp-bench` (this
/// library against plain rabbitmq-c) and `payment-bench` (the payment service). Run from the repository root:
///
///     swift run -c release --package-path Benchmarks amqp-bench
///     swift run -c release --package-path Benchmarks payment-bench

/// The same settings as the root package's Swift targets.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "swift-rabbitmq-benchmarks",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "amqp-bench", targets: ["AMQPBenchmark"]),
        .executable(name: "payment-bench", targets: ["PaymentBenchmark"]),
    ],
    dependencies: [
        // The library and the payment service, from the repository around this folder.
        .package(name: "swift-rabbitmq", path: ".."),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-distributed-tracing", from: "1.2.0"),
    ],
    targets: [
        // rabbitmq-c for CBenchmark, found through pkg-config: the root package's CRabbitMQ is not a product.
        .systemLibrary(
            name: "CRabbitMQBench",
            pkgConfig: "librabbitmq",
            providers: [.apt(["librabbitmq-dev"]), .brew(["rabbitmq-c"])]
        ),
        // The raw rabbitmq-c programs the benchmark measures the Swift library against.
        .target(
            name: "CBenchmark",
            dependencies: ["CRabbitMQBench"],
            linkerSettings: [.linkedLibrary("rabbitmq")]
        ),
        .executableTarget(
            name: "AMQPBenchmark",
            dependencies: [
                "CBenchmark",
                .product(name: "RabbitMQ", package: "swift-rabbitmq"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "PaymentBenchmark",
            dependencies: [
                .product(name: "PaymentService", package: "swift-rabbitmq"),
                .product(name: "RabbitMQ", package: "swift-rabbitmq"),
                // The start-up measure spawns the consumer executable built next to payment-bench.
                .product(name: "consumer", package: "swift-rabbitmq"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)
