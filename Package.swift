// swift-tools-version:6.1
import PackageDescription

/// Settings every Swift target of the package shares: Swift 6 mode comes from `swiftLanguageModes`; `any` is spelled
/// out on every existential so their cost is visible; and a file uses only members of modules it imports itself
/// (MemberImportVisibility), so each target's dependencies below are exactly what its files import.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "swift-rabbitmq",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "RabbitMQ", targets: ["RabbitMQ"]),
        .library(name: "PaymentService", targets: ["PaymentService"]),
        .executable(name: "consumer", targets: ["PaymentConsumer"]),
        .executable(name: "producer", targets: ["PaymentProducer"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-distributed-tracing", from: "1.2.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.1.0"),
        // OTLP/HTTP only: the default traits would add the gRPC exporter, and with it grpc-swift, to every build.
        .package(url: "https://github.com/swift-otel/swift-otel", from: "1.0.0", traits: ["OTLPHTTP"]),
    ],
    targets: [
        // rabbitmq-c, found through pkg-config; shim.h picks the header layout and wraps variadic calls.
        .systemLibrary(
            name: "CRabbitMQ",
            pkgConfig: "librabbitmq",
            providers: [.apt(["librabbitmq-dev"]), .brew(["rabbitmq-c"])]
        ),
        // The client library. Only the files in RabbitMQ/RabbitMQC import the C module.
        .target(
            name: "RabbitMQ",
            dependencies: [
                "CRabbitMQ",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: swiftSettings
        ),
        // The payment service: events, client registry, retry policy, handlers and topology.
        .target(
            name: "PaymentService",
            dependencies: [
                "RabbitMQ",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: swiftSettings
        ),
        // What both command-line tools share: connection, logging and tracing options. Only the executables
        // bootstrap a tracer (swift-otel's OTLP exporter, here); the library and the service never do.
        .target(
            name: "PaymentCommandLine",
            dependencies: [
                "PaymentService", "RabbitMQ",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "OTel", package: "swift-otel"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // `consumer`, with its optional HTTP endpoints (/metrics, /health/*) on SwiftNIO's HTTP/1 server.
        .executableTarget(
            name: "PaymentConsumer",
            dependencies: [
                "PaymentCommandLine", "PaymentService", "RabbitMQ",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "PaymentProducer",
            dependencies: [
                "PaymentCommandLine", "PaymentService",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RabbitMQTests",
            dependencies: ["RabbitMQ", "RabbitMQTestSupport"],
            swiftSettings: swiftSettings
        ),
        // What the test targets use: a loopback TCP proxy for network faults, and time limits.
        .target(
            name: "RabbitMQTestSupport",
            dependencies: [
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            path: "Tests/RabbitMQTestSupport",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RabbitMQIntegrationTests",
            dependencies: [
                "RabbitMQ", "RabbitMQTestSupport",
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PaymentServiceTests",
            dependencies: [
                "PaymentCommandLine", "PaymentService", "RabbitMQ", "RabbitMQTestSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // Runs the built consumer and producer as processes against the local broker.
        .testTarget(
            name: "PaymentServiceIntegrationTests",
            dependencies: [
                "PaymentService", "PaymentConsumer", "PaymentProducer", "RabbitMQ", "RabbitMQTestSupport",
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: swiftSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)
