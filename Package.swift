// swift-tools-version:6.1
import PackageDescription

// Module graph (arrows point down only):
//   gatewayd -> GatewayAPI -> GatewayStore / GatewayCore / GatewayCrypto / GatewayHTTP
// C libraries live in the system-library targets (C*) and each is imported by exactly
// one Swift module: CLibEvent by GatewayHTTP, COpenSSL by GatewayCrypto, CSQLite by GatewayStore.

let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "gatewayd",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "gatewayd", targets: ["gatewayd"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
    ],
    targets: [
        .systemLibrary(name: "CLibEvent", pkgConfig: "libevent_pthreads"),
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl"),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3"),
        .target(name: "GatewayCore", swiftSettings: strict),
        .target(name: "GatewayProviders", dependencies: ["GatewayCore", "GatewayHTTP"], swiftSettings: strict),
        .target(name: "GatewayCrypto", dependencies: ["COpenSSL", "GatewayCore"], swiftSettings: strict),
        .target(
            name: "GatewayHTTP",
            dependencies: ["CLibEvent", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        .target(
            name: "GatewayStore",
            dependencies: ["CSQLite", "GatewayCore", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        .target(
            name: "GatewayConfig",
            dependencies: ["GatewayCore", .product(name: "TOMLKit", package: "TOMLKit")],
            swiftSettings: strict),
        .target(
            name: "GatewayPush",
            dependencies: [
                "GatewayCore", "GatewayStore", "GatewayProviders", "GatewayCrypto", "GatewayHTTP",
                .product(name: "Logging", package: "swift-log"), .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: strict),
        .target(
            name: "GatewaySandbox",
            dependencies: [
                "GatewayCore", "GatewayHTTP", "GatewayCrypto", .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        .target(
            name: "GatewayAPI",
            dependencies: [
                "GatewayCore", "GatewayCrypto", "GatewayHTTP", "GatewayStore", "GatewayConfig", "GatewayProviders",
                "GatewayPush",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strict),
        .executableTarget(
            name: "ExporterBench", dependencies: ["GatewayCore", "GatewayProviders"], swiftSettings: strict),
        .executableTarget(
            name: "LadderBench",
            dependencies: [
                "GatewayCore", "GatewayCrypto", "GatewayHTTP", "GatewayStore",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        .executableTarget(
            name: "gatewayd",
            dependencies: [
                "GatewayAPI", "GatewayConfig", "GatewayStore", "GatewayHTTP", "GatewaySandbox",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        // Fuzz targets (docs/TESTING.md): `swift build` links a main that replays files;
        // scripts/fuzz builds them with libFuzzer + ASan (`-sanitize=fuzzer,address -D FUZZING`).
        .systemLibrary(name: "CLibFuzzer"),
        .target(name: "FuzzSupport", dependencies: ["CLibFuzzer"], swiftSettings: strict),
        .executableTarget(
            name: "FuzzWebhook", dependencies: ["FuzzSupport", "GatewayCore", "GatewayCrypto"], swiftSettings: strict),
        .executableTarget(
            name: "FuzzWorkout", dependencies: ["FuzzSupport", "GatewayCore", "GatewayProviders"],
            swiftSettings: strict),
        .testTarget(name: "GatewayCoreTests", dependencies: ["GatewayCore"], swiftSettings: strict),
        .testTarget(
            name: "GatewayProvidersTests", dependencies: ["GatewayProviders", "GatewayCore"],
            resources: [.copy("Fixtures")], swiftSettings: strict),
        .testTarget(name: "GatewayCryptoTests", dependencies: ["GatewayCrypto", "GatewayCore"], swiftSettings: strict),
        .testTarget(name: "GatewayStoreTests", dependencies: ["GatewayStore"], swiftSettings: strict),
        .testTarget(
            name: "GatewayHTTPTests", dependencies: ["GatewayHTTP", "GatewayCore"], swiftSettings: strict),
        .testTarget(
            name: "GatewayPushTests",
            dependencies: [
                "GatewayPush", "GatewaySandbox", "GatewayHTTP", "GatewayStore", "GatewayProviders", "GatewayCrypto",
                "GatewayCore", .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        .testTarget(name: "GatewayConfigTests", dependencies: ["GatewayConfig"], swiftSettings: strict),
    ]
)
