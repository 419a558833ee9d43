// macOS only: the Core ML engine against real Core ML, on packages that the CI converts with
// coremltools (scripts/ci/coreml_fixtures.py) and golden outputs stored in the repository
// (scripts/ci/coreml_fixtures.json). On Linux this file compiles to nothing.
//
// Example (what .github/workflows/macos.yml runs):
//   python scripts/ci/coreml_fixtures.py "$RUNNER_TEMP/fixtures"
//   COREML_CI_FIXTURES="$RUNNER_TEMP/fixtures" swift test --filter CoreMLIntegrationTests
//
// Covered: compile, load with every compute unit the machine offers, schema, prediction within
// the stored tolerance of the golden output, output backings written in place (CPU), the
// compute plan, the Seatbelt sandbox applied in the real executable with a model running
// inside it, and a SIGKILLed app taking its helper with it.
#if canImport(CoreML)
import CoreML
import CoreMLEngine
import Foundation
import HelperCore
import HelperTestSupport
import XCTest

/// One model of scripts/ci/coreml_fixtures.json.
struct Fixture: Decodable {
    let name: String
    let tolerance: Double
    let inputName: String
    let outputName: String
    let inputShape: [UInt64]
    let outputShape: [UInt64]
    let input: [[Float]]
    let golden: [[Float]]
}

struct MissingFixtures: Error, CustomStringConvertible {
    var description: String { "COREML_CI_FIXTURES is not set: run scripts/ci/coreml_fixtures.py DIR first (docs/ci-macos.md)" }
}

final class CoreMLIntegrationTests: WatchdogTestCase {
    var dir: URL!
    var fixtures: [Fixture] = []
    var region: TestRegion!
    var staging: URL!

    override func setUpWithError() throws {
        guard let d = ProcessInfo.processInfo.environment["COREML_CI_FIXTURES"], !d.isEmpty else { throw MissingFixtures() }
        dir = URL(fileURLWithPath: d)
        struct File: Decodable { let models: [Fixture] }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        fixtures = try decoder.decode(File.self, from: Data(contentsOf: dir.appendingPathComponent("fixtures.json"))).models
        XCTAssertFalse(fixtures.isEmpty)
        region = try TestRegion(size: 1 << 20)
        staging = FileManager.default.temporaryDirectory.appendingPathComponent("cmbt-staging-\(Sys.pid())-\(UInt32.random(in: 0...UInt32.max))")
    }

    override func tearDown() {
        if let staging { try? FileManager.default.removeItem(at: staging) }
        region = nil
        super.tearDown()
    }

    private func predict(_ f: Fixture, modelId: UInt64) -> Message {
        let x = TensorRef.contiguous(.f32, shape: f.inputShape, region: 0, offset: 0)
        let y = TensorRef.contiguous(.f32, shape: f.outputShape, region: 0, offset: 16384)
        return .predict(Predict(modelId: modelId, inputs: [NamedTensor(name: f.inputName, tensor: x)],
                                outputs: [NamedTensor(name: f.outputName, tensor: y)], deadlineUs: 60_000_000))
    }

    private func assertGolden(_ f: Fixture, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        let got = region.read(Float.self, count: f.golden.flatMap { $0 }.count, at: 16384)
        for (g, want) in zip(got, f.golden.flatMap { $0 }) {
            XCTAssertEqual(Double(g), Double(want), accuracy: f.tolerance, "\(f.name) \(what): \(got)", file: file, line: line)
        }
    }

    /// Compile, then load, check the schema and predict with every compute unit Hello offers.
    func testCompileLoadAndPredictWithEveryComputeUnit() throws {
        let peer = try Peer(engine: CoreMLEngine(hooks: .system))
        guard case .hello(let hello) = try peer.receive().message else { return XCTFail("no Hello") }
        XCTAssertNotNil(hello.coremlVersion)
        XCTAssertTrue(hello.computeUnits.contains(.cpuOnly))
        // GitHub's macOS VMs have no Neural Engine; a self-hosted Apple Silicon Mac has one.
        switch ProcessInfo.processInfo.environment["COREML_CI_EXPECT_NEURAL_ENGINE"] {
        case "1": XCTAssertTrue(hello.computeUnits.contains(.cpuAndNeuralEngine), "\(hello.computeUnits)")
        case "0": XCTAssertFalse(hello.computeUnits.contains(.cpuAndNeuralEngine), "\(hello.computeUnits)")
        default: break
        }
        XCTAssertEqual(try peer.call(.attachRegion(AttachRegion(region: 0, name: region.name, size: UInt64(region.size)))),
                       .regionAttached(RegionId(region: 0)))
        var modelId: UInt64 = 0
        for f in fixtures {
            let source = dir.appendingPathComponent("\(f.name).mlpackage").path
            guard case .compiled(let c) = try peer.call(.compile(Compile(sourcePath: source, stagingDir: staging.path, computeUnits: .all)),
                                                        timeout: 300) else { return XCTFail("compile \(f.name)") }
            XCTAssertEqual(c.backend, .mlProgram)
            region.write(f.input.flatMap { $0 }, at: 0)
            for units in hello.computeUnits {
                modelId += 1
                guard case .loaded(let l) = try peer.call(.load(Load(modelId: modelId, bundlePath: c.bundlePath, computeUnits: units)),
                                                          timeout: 300) else { return XCTFail("load \(f.name) \(units)") }
                XCTAssertEqual(l.inputs, [TensorSpec(name: f.inputName, dtype: .f32, shape: f.inputShape)])
                XCTAssertEqual(l.outputs, [TensorSpec(name: f.outputName, dtype: .f32, shape: f.outputShape)])
                region.write([Float](repeating: .nan, count: 64), at: 16384)
                guard case .predicted(let p) = try peer.call(predict(f, modelId: modelId), timeout: 120) else {
                    return XCTFail("predict \(f.name) \(units)")
                }
                assertGolden(f, "\(units)")
                print("coreml-ci: \(f.name) \(units): outputs_in_place=\(p.outputsInPlace.map(String.init) ?? "nil") "
                      + "marshal_out_us=\(p.marshalOutUs) predict_us=\(p.predictUs)")
                if units == .cpuOnly {
                    XCTAssertEqual(p.outputsInPlace, 1, "\(f.name): a contiguous slot of the output's shape is used as the backing")
                }
                XCTAssertEqual(try peer.call(.unload(ModelId(modelId: modelId))), .unloaded(ModelId(modelId: modelId)))
            }
        }
    }

    /// MLComputePlan (macOS 14.4): every operation planned; CPU-only means no Neural Engine.
    func testComputePlanCoverage() throws {
        let peer = try Peer(engine: CoreMLEngine(hooks: .system))
        _ = try peer.receive()
        let f = fixtures[0]
        let source = dir.appendingPathComponent("\(f.name).mlpackage").path
        guard case .compiled(let c) = try peer.call(.compile(Compile(sourcePath: source, stagingDir: staging.path, computeUnits: .all)),
                                                    timeout: 300) else { return XCTFail("compile") }
        for (id, units) in [(UInt64(1), ComputeUnits.cpuOnly), (2, .all)] {
            guard case .loaded = try peer.call(.load(Load(modelId: id, bundlePath: c.bundlePath, computeUnits: units)), timeout: 300) else {
                return XCTFail("load \(units)")
            }
            guard case .computePlan(let plan) = try peer.call(.getComputePlan(ModelId(modelId: id)), timeout: 120) else {
                return XCTFail("plan \(units)")
            }
            print("coreml-ci: compute plan \(units): coverage=\(plan.neCoverage.map { "\($0)" } ?? "nil") ops=\(plan.ops.map(\.op))")
            guard #available(macOS 14.4, *) else {
                XCTAssertEqual(plan.unavailableReason, ComputePlanReduction.needsNewerOS)
                continue
            }
            XCTAssertTrue(plan.ops.contains { $0.op == "linear" }, "\(plan.ops)")
            XCTAssertTrue(plan.ops.contains { $0.op == "relu" }, "\(plan.ops)")
            let coverage = try XCTUnwrap(plan.neCoverage, plan.unavailableReason ?? "")
            XCTAssertTrue((0.0...1.0).contains(coverage))
            if units == .cpuOnly { XCTAssertEqual(coverage, 0) }
        }
    }

    /// The real executable sandboxes itself before Hello, and a model still compiles, loads and
    /// predicts inside the sandbox.
    func testSandboxIsAppliedAndAModelRunsInsideIt() throws {
        try FileManager.default.createDirectory(at: staging, withIntermediateDirectories: true)
        let h = try HelperProcess(arguments: ["--sandbox-read", dir.path, "--sandbox-write", staging.path])
        try h.accept()
        guard case .hello(let hello) = try h.receive().message else { return XCTFail("no Hello") }
        XCTAssertTrue(hello.sandboxed, hello.sandboxDetail ?? "")
        XCTAssertEqual(hello.engine, "coreml")
        let f = fixtures[0]
        func call(_ id: UInt64, _ m: Message, timeout: TimeInterval = 300) throws -> Message {
            try h.send(id, m)
            let e = try h.receive(timeout: timeout)
            XCTAssertEqual(e.requestId, id)
            return e.message
        }
        XCTAssertEqual(try call(1, .attachRegion(AttachRegion(region: 0, name: region.name, size: UInt64(region.size)))),
                       .regionAttached(RegionId(region: 0)))
        let source = dir.appendingPathComponent("\(f.name).mlpackage").path
        guard case .compiled(let c) = try call(2, .compile(Compile(sourcePath: source, stagingDir: staging.path, computeUnits: .all))) else {
            return XCTFail("compile inside the sandbox")
        }
        guard case .loaded = try call(3, .load(Load(modelId: 1, bundlePath: c.bundlePath, computeUnits: .cpuOnly))) else {
            return XCTFail("load inside the sandbox")
        }
        region.write(f.input.flatMap { $0 }, at: 0)
        guard case .predicted = try call(4, predict(f, modelId: 1), timeout: 120) else { return XCTFail("predict inside the sandbox") }
        assertGolden(f, "sandboxed")
    }

    /// ParentWatch: an app killed with SIGKILL takes its helper with it.
    func testKillingTheAppTakesTheHelperWithIt() throws {
        let socket = "/tmp/cmbt-\(Sys.pid())-\(UInt32.random(in: 0...UInt32.max)).sock"
        let listen = try Sys.listenUnix(path: socket)
        defer { try? Sys.closeFD(listen); unlink(socket) }
        // The "app": a shell that starts the helper, prints its pid and waits.
        let app = Process()
        app.executableURL = URL(fileURLWithPath: "/bin/sh")
        app.arguments = ["-c", "\"$0\" --socket \"$1\" --no-sandbox & echo $!; wait", HelperProcess.binary.path, socket]
        let out = Pipe()
        app.standardOutput = out
        try app.run()
        let line = String(decoding: out.fileHandleForReading.availableData, as: UTF8.self)
        let helper = try XCTUnwrap(Int32(line.trimmingCharacters(in: .whitespacesAndNewlines)), "helper pid from \(line)")
        guard try Sys.waitReadable(listen, timeoutMs: 30_000) else { return XCTFail("the helper never connected") }
        let fd = try Sys.acceptConnection(listen)
        defer { try? Sys.closeFD(fd) }
        XCTAssertTrue(try Sys.waitReadable(fd, timeoutMs: 30_000), "Hello (sent after ParentWatch is armed)")
        XCTAssertEqual(kill(helper, 0), 0, "helper alive while the app lives")
        try Sys.sendSignal(app.processIdentifier, SignalNumber.kill)
        app.waitUntilExit()
        let deadline = Date().addingTimeInterval(10)
        while kill(helper, 0) == 0 && Date() < deadline { usleep(10_000) }
        XCTAssertNotEqual(kill(helper, 0), 0, "the helper outlived its app")
        if kill(helper, 0) == 0 { kill(helper, SIGKILL) }
    }
}
#endif
