// swift-tools-version:5.9
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
// - CoreMLTypeCheckDouble: Linux only. Declares the Core ML signatures the engine uses. Its
//   sources are empty on every other OS and no macOS target depends on it.
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
        .target(name: "CoreMLTypeCheckDouble"),
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
        .testTarget(
            name: "CoreMLEngineTests",
            dependencies: [
                "CoreMLEngine", "HelperCore", "HelperTestSupport",
                .target(name: "CoreMLTypeCheckDouble", condition: .when(platforms: [.linux])),
            ]
        ),
    ]
)
