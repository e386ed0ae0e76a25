// swift-tools-version:6.2
import PackageDescription

// Data-plane modules (NVMe, Storage, NVMeTarget, StoragePool, Store) depend only on SwiftNIO and
// swift-log so they build fast; gRPC/TLS (BoringSSL, ≈9 min cold) stay in StoreEtcd, IOEngineAPI,
// IOEngine and the halyard executable.
//
// Developer aid: `HALYARD_DATA_PLANE_ONLY=1 swift test --scratch-path .build-dp` leaves every
// gRPC-dependent module (and the executable) out of the package, so the data-plane tests build
// and run without compiling gRPC. CI never sets it.
let strict: [SwiftSetting] = [.enableUpcomingFeature("ExistentialAny")]
let dataPlaneOnly = Context.environment["HALYARD_DATA_PLANE_ONLY"] != nil

/// The packages only the executable and the gRPC modules use.
let controlDependencies: [Package.Dependency] = [
    .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
    .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
    .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
    .package(url: "https://github.com/grpc/grpc-swift-2.git", from: "2.4.3"),
    .package(url: "https://github.com/grpc/grpc-swift-nio-transport.git", from: "2.9.2"),
    .package(url: "https://github.com/grpc/grpc-swift-protobuf.git", from: "2.4.1"),
    .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
    .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
    .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
]

let package = Package(
    name: "Halyard",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "halyard", targets: ["Halyard"]),
        .library(name: "NVMe", targets: ["NVMe"]),
        .library(name: "NVMeTarget", targets: ["NVMeTarget"]),
        .library(name: "Storage", targets: ["Storage"]),
        .library(name: "NVMeHost", targets: ["NVMeHost"]),
        .library(name: "StoragePool", targets: ["StoragePool"]),
        .library(name: "Store", targets: ["Store"]),
        .library(name: "Nexus", targets: ["Nexus"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    ] + (dataPlaneOnly ? [] : controlDependencies),
    targets: [
        .target(name: "CCRC32C"),
        .target(
            name: "NVMe",
            dependencies: [
                "CCRC32C",
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "Storage",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "NVMeTarget",
            dependencies: [
                "NVMe", "Storage",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "NVMeHost",
            dependencies: [
                "NVMe",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // The cluster store: the Store protocol, its types and the embedded (single-process) backend.
        .target(
            name: "Store",
            dependencies: [
                "CCRC32C",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // Pools on a file or block device: superblock, metadata journal, extent allocator, thin replicas.
        .target(
            name: "StoragePool",
            dependencies: [
                "CCRC32C", "Storage",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // The nexus: a volume's target that mirrors writes to its children (replicas), fences itself
        // with reservations, rebuilds children, and keeps its health record in the store.
        .target(
            name: "Nexus",
            dependencies: [
                "NVMe", "NVMeHost", "NVMeTarget", "Storage", "Store",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // A seeded pool workload that prints "ACK …" after every acknowledged change: the child
        // process the kill -9 crash tests (StoragePoolTests) kill at random points.
        .executableTarget(
            name: "PoolCrashWorker",
            dependencies: ["StoragePool", "Storage", .product(name: "NIOPosix", package: "swift-nio"),
                           .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "Halyard",
            dependencies: [
                "NVMe", "NVMeTarget", "Storage", "NVMeHost",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),  // the nvmf-target control interface
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "NVMeTests",
            dependencies: [
                "NVMe",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOTestUtils", package: "swift-nio"),
            ],
            resources: [.copy("Vectors")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "StorageTests",
            dependencies: [
                "Storage",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "NVMeHostTests",
            dependencies: [
                "NVMe", "NVMeHost", "NVMeTarget", "Storage",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "StoragePoolTests",
            dependencies: [
                "StoragePool", "Storage",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "NVMeTargetTests",
            dependencies: [
                "NVMe", "NVMeTarget", "Storage",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "NexusTests",
            dependencies: [
                "Nexus", "NVMe", "NVMeHost", "NVMeTarget", "Storage", "Store",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        // Runs the built `halyard` executable (`halyard nvme …`) against an in-process target.
        .testTarget(
            name: "HalyardCLITests",
            dependencies: [
                "NVMe", "NVMeHost", "NVMeTarget", "Storage",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
    ]
)

// The store's conformance suite runs against the embedded backend always and against etcd when
// StoreEtcd is in the package.
package.targets.append(
    .testTarget(
        name: "StoreTests",
        dependencies: ["Store", .product(name: "NIOCore", package: "swift-nio")]
            + (dataPlaneOnly ? [] : ["StoreEtcd"]),
        swiftSettings: strict
    )
)

if dataPlaneOnly {
    let grpcDependent: Set<String> = ["Halyard", "HalyardCLITests"]
    package.targets.removeAll { grpcDependent.contains($0.name) }
    package.products.removeAll { $0.name == "halyard" }
} else {
    package.targets += [
        // The etcd v3 backend of Store: a gRPC client generated from etcd's protos (Protos/etcd,
        // regenerated by scripts/gen-protos.sh; the generated code is committed).
        .target(
            name: "StoreEtcd",
            dependencies: [
                "Store",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),  // the JSON gateway client (measured against gRPC)
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // The io-engine's gRPC API (Protos/halyard/ioengine/v1; generated code committed,
        // regenerated by scripts/gen-protos.sh): messages, client and server stubs.
        .target(
            name: "IOEngineAPI",
            dependencies: [
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: strict
        ),
        // The io-engine: pools, replicas shared over NVMe/TCP, the gRPC services, metrics.
        .target(
            name: "IOEngine",
            dependencies: [
                "NVMe", "NVMeTarget", "NVMeHost", "Storage", "StoragePool", "Store", "StoreEtcd", "IOEngineAPI", "Nexus",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "IOEngineTests",
            dependencies: [
                "IOEngine", "IOEngineAPI", "StoragePool", "Store", "NVMe", "NVMeHost", "NVMeTarget", "Storage",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCInProcessTransport", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
    ]
    if let halyard = package.targets.first(where: { $0.name == "Halyard" }) {
        halyard.dependencies += [
            "Store", "StoreEtcd", "StoragePool", "IOEngine", "IOEngineAPI",
            .product(name: "GRPCCore", package: "grpc-swift-2"),
            .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
        ]
    }
}
