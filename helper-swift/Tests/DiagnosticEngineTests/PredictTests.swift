// Diagnostic models through the dispatcher: contents, strides, concurrency, deadlines, errors.
import Foundation
import XCTest
import DiagnosticEngine
@testable import HelperCore
import HelperTestSupport

final class PredictTests: WatchdogTestCase {
    var peer: Peer!
    var region: TestRegion!

    override func setUpWithError() throws {
        peer = try Peer(engine: DiagnosticEngine())
        _ = try peer.receive()
        region = try TestRegion(size: 1 << 20)
        XCTAssertEqual(try peer.attach(7, region, size: 1 << 20),
                       .regionAttached(RegionId(region: 7)))
    }

    override func tearDown() {
        peer = nil
        region = nil
        super.tearDown()
    }

    private struct LoadFailed: Error {}

    private func load(_ id: UInt64, _ uri: String) throws -> Loaded {
        let reply = try peer.call(.load(Load(modelId: id, bundlePath: uri, computeUnits: .cpuOnly)))
        guard case .loaded(let l) = reply else {
            // A failed load is a test failure, never a skip.
            XCTFail("load of \(uri) failed: \(reply)")
            throw LoadFailed()
        }
        return l
    }

    private func predict(_ id: UInt64, x: TensorRef, y: TensorRef, deadlineUs: UInt64 = 5_000_000) -> Message {
        .predict(Predict(modelId: id, inputs: [NamedTensor(name: "x", tensor: x)],
                         outputs: [NamedTensor(name: "y", tensor: y)], deadlineUs: deadlineUs))
    }

    func testEchoIntoRowPaddedOutputHonoursStrides() throws {
        let l = try load(1, "diag:echo?shape=2x3&dtype=f16")
        XCTAssertEqual(l.inputs, [TensorSpec(name: "x", dtype: .f16, shape: [2, 3])])
        XCTAssertEqual(l.outputs.map(\.name), ["y"])
        let bits: [UInt16] = [0x3c00, 0x4000, 0x4200, 0xfc00, 0x7e01, 0x0001]   // 1, 2, 3, -inf, a NaN, subnormal
        region.write(bits, at: 0)
        let x = TensorRef.contiguous(.f16, shape: [2, 3], region: 7, offset: 0)
        // Rows padded to 8 elements, as Neural-Engine outputs are.
        let y = TensorRef(dtype: .f16, shape: [2, 3], strides: [8, 1], region: 7, offset: 16384, len: (8 + 3) * 2)
        region.write([UInt16](repeating: 0xaaaa, count: 16), at: 16384)
        guard case .predicted(let p) = try peer.call(predict(1, x: x, y: y)) else { return XCTFail() }
        XCTAssertEqual(p.outputs, [NamedTensor(name: "y", tensor: y)])
        XCTAssertFalse(p.inputsRetained)
        let out = region.read(UInt16.self, count: 16, at: 16384)
        XCTAssertEqual(Array(out[0..<3]), Array(bits[0..<3]))
        XCTAssertEqual(Array(out[3..<8]), [UInt16](repeating: 0xaaaa, count: 5), "padding untouched")
        XCTAssertEqual(Array(out[8..<11]), Array(bits[3..<6]), "raw fp16 bits, NaN payload kept")
    }

    func testAddComputesAndScalarShapes() throws {
        _ = try load(2, "diag:add?c=0.5&shape=4")
        region.write([Float(1), 2, -3, 1e30], at: 0)
        let x = TensorRef.contiguous(.f32, shape: [4], region: 7, offset: 0)
        let y = TensorRef.contiguous(.f32, shape: [4], region: 7, offset: 16384)
        guard case .predicted = try peer.call(predict(2, x: x, y: y)) else { return XCTFail() }
        XCTAssertEqual(region.read(Float.self, count: 4, at: 16384), [1.5, 2.5, -2.5, 1e30])

        _ = try load(3, "diag:echo?shape=&dtype=i64")
        region.write([Int64.min], at: 32768)
        guard case .predicted = try peer.call(predict(3, x: .contiguous(.i64, shape: [], region: 7, offset: 32768),
                                                      y: .contiguous(.i64, shape: [], region: 7, offset: 49152))) else { return XCTFail() }
        XCTAssertEqual(region.read(Int64.self, count: 1, at: 49152), [Int64.min])
    }

    func testPipelinedPredictionsAreAnsweredOutOfOrder() throws {
        _ = try load(1, "diag:sleep?ms=800")
        _ = try load(2, "diag:echo")
        let slow = try peer.request(predict(1, x: .contiguous(.f32, shape: [4], region: 7, offset: 0),
                                            y: .contiguous(.f32, shape: [4], region: 7, offset: 16384)))
        let fast = try peer.request(predict(2, x: .contiguous(.f32, shape: [4], region: 7, offset: 32768),
                                            y: .contiguous(.f32, shape: [4], region: 7, offset: 49152)))
        let first = try peer.receive(), second = try peer.receive()
        XCTAssertEqual(first.requestId, fast, "the echo overtakes the sleeping prediction")
        XCTAssertEqual(second.requestId, slow)
        guard case .predicted = second.message else { return XCTFail("\(second.message)") }
    }

    func testRetainKeepsInputsUntilInputsReleased() throws {
        _ = try load(1, "diag:echo?retain=300")
        region.write([Float(1), 2, 3, 4], at: 0)
        let start = Date()
        let id = try peer.request(predict(1, x: .contiguous(.f32, shape: [4], region: 7, offset: 0),
                                          y: .contiguous(.f32, shape: [4], region: 7, offset: 16384)))
        let reply = try peer.receive()
        guard case .predicted(let p) = reply.message else { return XCTFail("\(reply)") }
        XCTAssertEqual(reply.requestId, id)
        XCTAssertTrue(p.inputsRetained)
        let released = try peer.receive()
        XCTAssertEqual(released.requestId, id)
        XCTAssertEqual(released.message, .inputsReleased(ModelId(modelId: 1)))
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(start), 0.3)
    }

    func testDeadlineCancelsTheSleepWithTimeout() throws {
        _ = try load(1, "diag:sleep?ms=60000")
        let start = Date()
        let reply = try peer.call(predict(1, x: .contiguous(.f32, shape: [4], region: 7, offset: 0),
                                          y: .contiguous(.f32, shape: [4], region: 7, offset: 16384), deadlineUs: 200_000),
                                  timeout: 20)
        XCTAssertEqual(reply.errorCode, .timeout)
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(start), 0.2)
        XCTAssertEqual(try peer.call(.ping(Ping(nonce: 1))), .pong(Pong(nonce: 1)))
    }

    func testPredictErrors() throws {
        _ = try load(1, "diag:echo?shape=4")
        let x = TensorRef.contiguous(.f32, shape: [4], region: 7, offset: 0)
        let y = TensorRef.contiguous(.f32, shape: [4], region: 7, offset: 16384)
        XCTAssertEqual(try peer.call(predict(99, x: x, y: y)).errorCode, .unknownModel)
        XCTAssertEqual(try peer.call(predict(1, x: .contiguous(.f32, shape: [5], region: 7, offset: 0), y: y)).errorCode, .schemaMismatch)
        XCTAssertEqual(try peer.call(predict(1, x: .contiguous(.i32, shape: [4], region: 7, offset: 0), y: y)).errorCode, .schemaMismatch)
        XCTAssertEqual(try peer.call(predict(1, x: .contiguous(.f32, shape: [4], region: 8, offset: 0), y: y)).errorCode, .shmFailed)
        var outside = y
        outside.offset = UInt64(1 << 20) - 8
        XCTAssertEqual(try peer.call(predict(1, x: x, y: outside)).errorCode, .schemaMismatch)
        var lying = y
        lying.len = 4
        XCTAssertEqual(try peer.call(predict(1, x: x, y: lying)).errorCode, .schemaMismatch)
        let renamed = Message.predict(Predict(modelId: 1, inputs: [NamedTensor(name: "q", tensor: x)],
                                              outputs: [NamedTensor(name: "y", tensor: y)], deadlineUs: 1_000_000))
        XCTAssertEqual(try peer.call(renamed).errorCode, .schemaMismatch)
        XCTAssertEqual(try peer.call(.load(Load(modelId: 2, bundlePath: "diag:nope", computeUnits: .all))).errorCode, .badRequest)
        XCTAssertEqual(try peer.call(.load(Load(modelId: 2, bundlePath: "diag:echo?color=red", computeUnits: .all))).errorCode, .badRequest)
        XCTAssertEqual(try peer.call(.load(Load(modelId: 2, bundlePath: "diag:add?dtype=f16", computeUnits: .all))).errorCode, .badRequest)
        XCTAssertEqual(try peer.call(.unload(ModelId(modelId: 42))).errorCode, .unknownModel)
        XCTAssertEqual(try peer.call(.unload(ModelId(modelId: 1))), .unloaded(ModelId(modelId: 1)))
        XCTAssertEqual(try peer.call(predict(1, x: x, y: y)).errorCode, .unknownModel)
    }

    func testCompileAndComputePlanOfDiagnosticModels() throws {
        XCTAssertEqual(try peer.call(.compile(Compile(sourcePath: "diag:echo?shape=1x3", stagingDir: "/nonexistent", computeUnits: .all))),
                       .compiled(Compiled(bundlePath: "diag:echo?shape=1x3", backend: .mlProgram, compileUs: 0)))
        _ = try load(5, "diag:echo")
        guard case .computePlan(let plan) = try peer.call(.getComputePlan(ModelId(modelId: 5))) else { return XCTFail() }
        XCTAssertEqual(plan.ops, [])
        XCTAssertNil(plan.neCoverage, "never guessed")
        XCTAssertNotNil(plan.unavailableReason)
        XCTAssertEqual(try peer.call(.getComputePlan(ModelId(modelId: 6))).errorCode, .unknownModel)
    }
}
