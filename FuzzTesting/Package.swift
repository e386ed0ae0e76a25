// swift-tools-version:6.2
// libFuzzer targets for Halyard's NVMe/TCP decoders and target connection state machine, the
// storage pool's import (superblocks, journal, checkpoints), the embedded store's recovery and the
// nexus's dirty-segment log.
//
// This is its own package (like swift-protobuf's FuzzTesting/) so the fuzzers, which get their
// `main` from libFuzzer, never share a build with the `halyard` executable. Build it only through
// `run.sh` (or the command in README.md): every target is compiled with `-parse-as-library` and
// the fuzzer/address sanitizers, which a plain `swift build` does not add.
import PackageDescription

let fuzzer: [SwiftSetting] = [.unsafeFlags(["-parse-as-library"])]

let package = Package(
    name: "HalyardFuzzTesting",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "FuzzPDUDecoder", targets: ["FuzzPDUDecoder"]),
        .executable(name: "FuzzTargetConnection", targets: ["FuzzTargetConnection"]),
        .executable(name: "FuzzPoolImport", targets: ["FuzzPoolImport"]),
        .executable(name: "FuzzStoreWAL", targets: ["FuzzStoreWAL"]),
        .executable(name: "FuzzRebuildLog", targets: ["FuzzRebuildLog"]),
    ],
    dependencies: [
        .package(name: "Halyard", path: ".."),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    ],
    targets: [
        .target(
            name: "FuzzCommon",
            dependencies: [
                .product(name: "NVMe", package: "Halyard"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "FuzzPDUDecoder",
            dependencies: [
                "FuzzCommon",
                .product(name: "NVMe", package: "Halyard"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: fuzzer
        ),
        .executableTarget(
            name: "FuzzTargetConnection",
            dependencies: [
                "FuzzCommon",
                .product(name: "NVMe", package: "Halyard"),
                .product(name: "NVMeTarget", package: "Halyard"),
                .product(name: "Storage", package: "Halyard"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: fuzzer
        ),
        .executableTarget(
            name: "FuzzPoolImport",
            dependencies: [
                "FuzzCommon",
                .product(name: "NVMe", package: "Halyard"),  // CRC32C, to re-seal edited metadata
                .product(name: "StoragePool", package: "Halyard"),
                .product(name: "Storage", package: "Halyard"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: fuzzer
        ),
        .executableTarget(
            name: "FuzzStoreWAL",
            dependencies: [
                "FuzzCommon",
                .product(name: "NVMe", package: "Halyard"),  // CRC32C, to re-seal edited frames
                .product(name: "Store", package: "Halyard"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: fuzzer
        ),
        .executableTarget(
            name: "FuzzRebuildLog",
            dependencies: [
                "FuzzCommon",
                .product(name: "NVMe", package: "Halyard"),  // CRC32C, to build and re-seal headers and records
                .product(name: "Nexus", package: "Halyard"),
                .product(name: "NIOPosix", package: "swift-nio"),  // the log's I/O thread, one per input
            ],
            swiftSettings: fuzzer
        ),
    ]
)
