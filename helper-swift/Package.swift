// swift-tools-version:6.0
// The Core ML half of coreml-bridge: a helper process that speaks docs/protocol.md.
//
// Example (on Linux, inside the toolchain root made by scripts/swift-toolchain.sh):
//   swift build -c release --static-swift-stdlib --product coreml-helper
//   swift test -Xswiftc -DCOREML_DIAG_FAULTS
//
// Targets
// - HelperCore: libc wrappers (Sys.swift), MessagePack, framing, messages, shared memory,
//   the engine protocol and the request dispatcher. No Foundation.
// - DiagnosticEngine: the echo/add/sleep models of docs/diagnostics.md; fault switches only
//   when compiled with -D COREML_DIAG_FAULTS.
// - CoreMLEngine: the Core ML engine. On macOS it imports CoreML; on Linux it compiles against
//   CoreMLTypeCheckDouble so that it is type-checked and its marshalling is unit-tested.
// - CoreMLTypeCheckDouble: Linux only. Declares the Core ML signatures the engine uses, as the real
//   SDK declares them. Built with library evolution so its enums are non-frozen, like the SDK's.
//   Its sources are empty on every other OS and no macOS target depends on it.
//
// Swift 6 language mode (tools version 6.0) for every target: strict concurrency checking is
// complete. scripts/swift-toolchain.sh and the macOS CI add -warnings-as-errors.
// - HelperSandbox: the macOS Seatbelt profile (embedded file) and the sandbox_init call.
// - coreml-helper: the executable.
import PackageDescription

let package = Package(
    name: "coreml-helper",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "coreml-helper", targets: ["coreml-helper"]),
        .library(name: "HelperCore", targets: ["HelperCore"]),
    ],
    targets: [
        .target(name: "HelperCore"),
        .target(name: "DiagnosticEngine", dependencies: ["HelperCore"]),
        .target(
            name: "CoreMLTypeCheckDouble",
            // Foundation on Linux is not built with library evolution, which the compiler warns
            // about once per import; that warning says nothing about the double's declarations.
            swiftSettings: [.unsafeFlags(["-enable-library-evolution", "-Xfrontend", "-no-warnings-as-errors"])]
        ),
        .target(
            name: "CoreMLEngine",
            dependencies: [
                "HelperCore",
                .target(name: "CoreMLTypeCheckDouble", condition: .when(platforms: [.linux])),
            ]
        ),
        .target(
            name: "HelperSandbox",
            dependencies: ["HelperCore"],
            resources: [.embedInCode("coreml-helper.sb")]
        ),
        .executableTarget(
            name: "coreml-helper",
            dependencies: [
                "HelperCore",
                "DiagnosticEngine",
                "HelperSandbox",
                .target(name: "CoreMLEngine", condition: .when(platforms: [.macOS])),
            ]
        ),
        // Test-only support code (a socket peer, shared-memory regions); no product uses it.
        .target(name: "HelperTestSupport", dependencies: ["HelperCore"], path: "Tests/Support"),
        .testTarget(name: "HelperCoreTests", dependencies: ["HelperCore", "HelperTestSupport"]),
        .testTarget(name: "HelperSandboxTests", dependencies: ["HelperSandbox", "HelperCore", "HelperTestSupport"]),
        .testTarget(name: "DiagnosticEngineTests", dependencies: ["DiagnosticEngine", "HelperCore", "HelperTestSupport"]),
        // macOS only: Core ML for real on converted packages (docs/ci-macos.md); empty elsewhere.
        .testTarget(
            name: "CoreMLIntegrationTests",
            dependencies: [
                "HelperCore", "HelperTestSupport",
                .target(name: "CoreMLEngine", condition: .when(platforms: [.macOS])),
            ]
        ),
        .testTarget(
            name: "CoreMLEngineTests",
            dependencies: [
                "CoreMLEngine", "HelperCore", "HelperTestSupport",
                .target(name: "CoreMLTypeCheckDouble", condition: .when(platforms: [.linux])),
            ]
        ),
    ]
)
