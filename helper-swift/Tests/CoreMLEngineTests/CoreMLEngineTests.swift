// The Core ML engine on Linux, against the type-check double with stand-in models: schema,
// marshalling without copies, output backings by identity, strided copies of padded outputs,
// float16 as raw bits, input-slot release, deadlines, compile staging, error codes.
#if os(Linux)
import CoreMLTypeCheckDouble
import Foundation
import XCTest
@testable import CoreMLEngine
@testable import HelperCore
import HelperTestSupport

final class CoreMLEngineTests: WatchdogTestCase {
    var region: TestRegion!

    override func setUpWithError() throws { region = try TestRegion(size: 1 << 20) }
    override func tearDown() {
        region = nil
        super.tearDown()
    }

    /// A peer in front of a Core ML engine whose loads return `model`; region 0 attached.
    private func start(_ model: MLModel, asyncPrediction: Bool = true) throws -> Peer {
        let peer = try Peer(engine: CoreMLEngine(hooks: hooks(model: model, asyncPrediction: asyncPrediction)))
        guard case .hello(let h) = try peer.receive().message else { throw Peer.Closed() }
        XCTAssertEqual(h.engine, "coreml")
        XCTAssertEqual(h.coremlVersion, "test")
        XCTAssertEqual(try peer.attach(0, region, size: UInt64(region.size)),
                       .regionAttached(RegionId(region: 0)))
        guard case .loaded = try peer.call(.load(Load(modelId: 1, bundlePath: "/models/m.mlmodelc", computeUnits: .cpuAndNeuralEngine))) else {
            throw Peer.Closed()
        }
        return peer
    }

    private func predict(_ inputs: [(String, TensorRef)], _ outputs: [(String, TensorRef)], deadlineUs: UInt64 = 10_000_000) -> Message {
        .predict(Predict(modelId: 1, inputs: inputs.map { NamedTensor(name: $0.0, tensor: $0.1) },
                         outputs: outputs.map { NamedTensor(name: $0.0, tensor: $0.1) }, deadlineUs: deadlineUs))
    }

    func testLoadReportsTheSchema() throws {
        let ranges = MLMultiArrayShapeConstraint(doubleType: .range, sizeRangeForDimension: [
            NSValue(range: NSRange(location: 1, length: 0)), NSValue(range: NSRange(location: 1, length: 511)),
        ])
        let enumerated = MLMultiArrayShapeConstraint(doubleType: .enumerated, enumeratedShapes: [[1, 3, 224, 224], [1, 3, 256, 256]])
        let model = StandInModel(inputs: [feature("tokens", .int32, [1, 128], constraint: ranges),
                                          feature("image", .float16, [1, 3, 224, 224], constraint: enumerated),
                                          feature("mask", .double, [4], optional: true)],
                                 outputs: [feature("logits", .float32, [1, 1000])]) { i, _ in i }
        let peer = try Peer(engine: CoreMLEngine(hooks: hooks(model: model)))
        _ = try peer.receive()
        guard case .loaded(let l) = try peer.call(.load(Load(modelId: 9, bundlePath: "/m.mlmodelc", computeUnits: .cpuAndGPU))) else {
            return XCTFail()
        }
        XCTAssertEqual(l.modelId, 9)
        XCTAssertEqual(l.computeUnits, .cpuAndGPU)
        XCTAssertEqual(l.inputs, [
            TensorSpec(name: "image", dtype: .f16, shape: [1, 3, 224, 224], enumeratedShapes: [[1, 3, 224, 224], [1, 3, 256, 256]]),
            TensorSpec(name: "mask", dtype: .f64, shape: [4], optional: true),
            TensorSpec(name: "tokens", dtype: .i32, shape: [1, 128], shapeRanges: [[1, 1], [1, 512]]),
        ])
        XCTAssertEqual(l.outputs, [TensorSpec(name: "logits", dtype: .f32, shape: [1, 1000])])
        XCTAssertEqual(CoreMLSchema.bounds(of: NSRange(location: 1, length: Int.max - 1)), [1, UInt64.max], "unbounded")

        let image = MLFeatureDescription(doubleName: "photo", type: .image)
        let imageModel = StandInModel(inputs: [image], outputs: []) { i, _ in i }
        let p2 = try Peer(engine: CoreMLEngine(hooks: hooks(model: imageModel)))
        _ = try p2.receive()
        XCTAssertEqual(try p2.call(.load(Load(modelId: 1, bundlePath: "/m", computeUnits: .all))).errorCode, .unsupported)
    }

    /// y = 2x written by "Core ML" into the backing it was offered, and returned as that object.
    func testInputsAreWrappedWithoutCopyAndBackingsAreUsedByIdentity() throws {
        let model = StandInModel(inputs: [feature("x", .float32, [4])], outputs: [feature("y", .float32, [4])]) { input, options in
            let x = input.featureValue(for: "x")!.multiArrayValue!
            let y = options.outputBackings["y"] as! MLMultiArray
            for i in 0..<4 { y.dataPointer.storeBytes(of: x.dataPointer.load(fromByteOffset: i * 4, as: Float.self) * 2, toByteOffset: i * 4, as: Float.self) }
            return try MLDictionaryFeatureProvider(dictionary: ["y": MLFeatureValue(multiArray: y)])
        }
        let peer = try start(model)
        region.write([Float(1), 2, 3, 4], at: 16384)
        let x = TensorRef.contiguous(.f32, shape: [4], region: 0, offset: 16384)
        let y = TensorRef.contiguous(.f32, shape: [4], region: 0, offset: 32768)
        guard case .predicted(let p) = try peer.call(predict([("x", x)], [("y", y)])) else { return XCTFail() }
        XCTAssertEqual(p.outputs, [NamedTensor(name: "y", tensor: y)], "written in place: the slot as given")
        XCTAssertEqual(p.outputsInPlace, 1)
        XCTAssertEqual(region.read(Float.self, count: 4, at: 32768), [2, 4, 6, 8])
        let helperMapping = try XCTUnwrap(peer.dispatcher.regions.region(0))
        XCTAssertEqual(model.seenInputs.get().first, helperMapping.base + 16384, "the input array is the slot itself: no copy")
        XCTAssertEqual(model.calls, ["async"])
        XCTAssertFalse(p.inputsRetained)
    }

    /// Core ML ignores the backing and returns fp16 rows padded to 1504 (Neural Engine): one
    /// strided copy into the dense slot, raw 16-bit words preserved, padding dropped.
    func testIgnoredBackingIsCopiedHonouringPaddedRowsAsRawFloat16() throws {
        let model = StandInModel(inputs: [feature("x", .float16, [2, 1500])], outputs: [feature("y", .float16, [2, 1500])]) { input, _ in
            let x = input.featureValue(for: "x")!.multiArrayValue!
            let padded = UnsafeMutableRawPointer.allocate(byteCount: (1504 + 1500) * 2, alignment: 64)
            padded.initializeMemory(as: UInt16.self, repeating: 0xdead, count: 1504 + 1500)
            for r in 0..<2 {
                for c in 0..<1500 {
                    let v = x.dataPointer.load(fromByteOffset: (r * 1500 + c) * 2, as: UInt16.self)
                    padded.storeBytes(of: v, toByteOffset: (r * 1504 + c) * 2, as: UInt16.self)
                }
            }
            let y = try MLMultiArray(dataPointer: padded, shape: [2, 1500], dataType: .float16, strides: [1504, 1],
                                     deallocator: { $0.deallocate() })
            return try MLDictionaryFeatureProvider(dictionary: ["y": MLFeatureValue(multiArray: y)])
        }
        let peer = try start(model)
        let words: [UInt16] = (0..<3000).map { UInt16(truncatingIfNeeded: $0 &* 2654435761 >> 7) | ($0 % 7 == 0 ? 0x7c01 : 0) }
        region.write(words, at: 0)
        let x = TensorRef.contiguous(.f16, shape: [2, 1500], region: 0, offset: 0)
        let y = TensorRef.contiguous(.f16, shape: [2, 1500], region: 0, offset: 16384)
        guard case .predicted(let p) = try peer.call(predict([("x", x)], [("y", y)])) else { return XCTFail() }
        XCTAssertEqual(p.outputs, [NamedTensor(name: "y", tensor: y)])
        XCTAssertEqual(region.read(UInt16.self, count: 3000, at: 16384), words, "NaN payloads and all bits kept, no padding")
        XCTAssertEqual(p.outputsInPlace, 0, "copied, not written in place")
    }

    func testFlexibleOutputIsWrittenDenselyWhenItFitsElseFails() throws {
        let shapeBox = Locked<[NSNumber]>([1, 3])
        let model = StandInModel(inputs: [feature("x", .int32, [1])], outputs: [feature("y", .int32, [1, 8])]) { _, _ in
            let y = try MLMultiArray(shape: shapeBox.get(), dataType: .int32)
            for i in 0..<y.count { y.dataPointer.storeBytes(of: Int32(i + 40), toByteOffset: i * 4, as: Int32.self) }
            return try MLDictionaryFeatureProvider(dictionary: ["y": y])
        }
        let peer = try start(model)
        let x = TensorRef.contiguous(.i32, shape: [1], region: 0, offset: 0)
        let y = TensorRef.contiguous(.i32, shape: [1, 8], region: 0, offset: 16384)
        guard case .predicted(let p) = try peer.call(predict([("x", x)], [("y", y)])) else { return XCTFail() }
        XCTAssertEqual(p.outputs[0].tensor, TensorRef.contiguous(.i32, shape: [1, 3], region: 0, offset: 16384))
        XCTAssertEqual(region.read(Int32.self, count: 3, at: 16384), [40, 41, 42])
        shapeBox.withLock { $0 = [3, 4] }
        XCTAssertEqual(try peer.call(predict([("x", x)], [("y", y)])).errorCode, .predictFailed, "12 values do not fit 8")
    }

    /// Core ML keeps the input arrays after returning: Predicted says so, and InputsReleased
    /// with the Predict's id follows when they are freed.
    func testInputsReleasedFollowsWhenCoreMLLetsGo() throws {
        let holder = Locked<StandInModel?>(nil)
        let model = StandInModel(inputs: [feature("x", .float32, [4])], outputs: [feature("y", .float32, [4])]) { input, options in
            holder.get()!.holdInputs(input)
            return try MLDictionaryFeatureProvider(dictionary: ["y": try coreMLOutput("y", options, shape: [4], .float32)])
        }
        holder.withLock { $0 = model }
        let peer = try start(model)
        let id = try peer.request(predict([("x", .contiguous(.f32, shape: [4], region: 0, offset: 0))],
                                          [("y", .contiguous(.f32, shape: [4], region: 0, offset: 16384))]))
        let reply = try peer.receive()
        XCTAssertEqual(reply.requestId, id)
        guard case .predicted(let p) = reply.message else { return XCTFail("\(reply)") }
        XCTAssertTrue(p.inputsRetained)
        XCTAssertTrue(try peer.silent(for: 0.2), "nothing while Core ML holds the input")
        model.dropHeldInputs()
        let released = try peer.receive()
        XCTAssertEqual(released.requestId, id)
        XCTAssertEqual(released.message, .inputsReleased(ModelId(modelId: 1)))
        XCTAssertEqual(try peer.call(.ping(Ping(nonce: 2))), .pong(Pong(nonce: 2)), "exactly one notification")
    }

    /// A failed prediction is answered only after its inputs are released, and without an
    /// InputsReleased (docs/protocol.md).
    func testErrorReplyWaitsUntilInputsAreReleased() throws {
        struct Boom: Error {}
        let holder = Locked<StandInModel?>(nil)
        let model = StandInModel(inputs: [feature("x", .float32, [4])], outputs: [feature("y", .float32, [4])]) { input, _ in
            holder.get()!.holdInputs(input)
            throw Boom()
        }
        holder.withLock { $0 = model }
        let peer = try start(model)
        _ = try peer.request(predict([("x", .contiguous(.f32, shape: [4], region: 0, offset: 0))],
                                     [("y", .contiguous(.f32, shape: [4], region: 0, offset: 16384))]))
        XCTAssertTrue(try peer.silent(for: 0.3), "no Error while Core ML holds the input")
        model.dropHeldInputs()
        XCTAssertEqual(try peer.receive().message.errorCode, .predictFailed)
        XCTAssertEqual(try peer.call(.ping(Ping(nonce: 1))), .pong(Pong(nonce: 1)))
    }

    func testSynchronousPathBeforeMacOS14() throws {
        let model = StandInModel(inputs: [feature("x", .float32, [4])], outputs: [feature("y", .float32, [4])]) { input, _ in
            try MLDictionaryFeatureProvider(dictionary: ["y": input.featureValue(for: "x")!])
        }
        let peer = try start(model, asyncPrediction: false)
        region.write([Float(9), 8, 7, 6], at: 0)
        guard case .predicted(let p) = try peer.call(predict([("x", .contiguous(.f32, shape: [4], region: 0, offset: 0))],
                                                              [("y", .contiguous(.f32, shape: [4], region: 0, offset: 16384))])) else {
            return XCTFail()
        }
        XCTAssertEqual(model.calls, ["sync"])
        XCTAssertEqual(region.read(Float.self, count: 4, at: 16384), [9, 8, 7, 6], "copied out of the returned input array")
        // The stand-in's synchronous entry point runs its behaviour in a task that may still
        // hold the input for a moment: then the release must follow as a notification.
        if p.inputsRetained {
            XCTAssertEqual(try peer.receive().message, .inputsReleased(ModelId(modelId: 1)))
        }
    }

    func testDeadlineCancelsTheAsyncPrediction() throws {
        let model = StandInModel(inputs: [feature("x", .float32, [4])], outputs: [feature("y", .float32, [4])]) { input, _ in
            try await Task.sleep(nanoseconds: 60_000_000_000)
            return input
        }
        let peer = try start(model)
        let start = Date()
        let reply = try peer.call(predict([("x", .contiguous(.f32, shape: [4], region: 0, offset: 0))],
                                          [("y", .contiguous(.f32, shape: [4], region: 0, offset: 16384))], deadlineUs: 150_000))
        XCTAssertEqual(reply.errorCode, .timeout)
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(start), 0.15)
    }

    func testSchemaChecks() throws {
        let ranged = MLMultiArrayShapeConstraint(doubleType: .range, sizeRangeForDimension: [
            NSValue(range: NSRange(location: 1, length: 1)), NSValue(range: NSRange(location: 2, length: 6)),
        ])
        let model = StandInModel(inputs: [feature("a", .float32, [1, 4], constraint: ranged), feature("b", .float16, [2], optional: true)],
                                 outputs: [feature("y", .float32, [1, 4])]) { _, o in
            try MLDictionaryFeatureProvider(dictionary: ["y": try coreMLOutput("y", o, shape: [1, 4], .float32)])
        }
        let peer = try start(model)
        let y = ("y", TensorRef.contiguous(.f32, shape: [1, 4], region: 0, offset: 16384))
        func a(_ shape: [UInt64], _ d: DType = .f32) -> (String, TensorRef) { ("a", .contiguous(d, shape: shape, region: 0, offset: 0)) }
        guard case .predicted = try peer.call(predict([a([2, 8])], [y])) else { return XCTFail("shape inside the ranges") }
        XCTAssertEqual(try peer.call(predict([a([1, 9])], [y])).errorCode, .schemaMismatch)
        XCTAssertEqual(try peer.call(predict([a([1, 4], .f16)], [y])).errorCode, .schemaMismatch)
        XCTAssertEqual(try peer.call(predict([], [y])).errorCode, .schemaMismatch, "required input missing")
        XCTAssertEqual(try peer.call(predict([a([1, 4]), ("c", .contiguous(.f32, shape: [1], region: 0, offset: 32768))], [y])).errorCode,
                       .schemaMismatch, "unknown input")
        XCTAssertEqual(try peer.call(predict([a([1, 4])], [("z", y.1)])).errorCode, .schemaMismatch, "unknown output")
        XCTAssertEqual(try peer.call(predict([a([1, 4])], [("y", .contiguous(.i32, shape: [1, 4], region: 0, offset: 16384))])).errorCode,
                       .schemaMismatch, "output dtype")
        XCTAssertEqual(try peer.call(predict([a([1, 4])], [("y", .contiguous(.f32, shape: [4], region: 0, offset: 16384))])).errorCode,
                       .schemaMismatch, "output slot of a shape the model does not allow")
        XCTAssertEqual(try peer.call(.predict(Predict(modelId: 5, inputs: [], outputs: [], deadlineUs: 0))).errorCode, .unknownModel)
    }

    func testCompileMovesTheBundleIntoStagingAndDetectsTheBackend() throws {
        let fm = FileManager.default
        let root = URL(fileURLWithPath: "/tmp/cmbt-compile-\(Sys.pid())-\(UInt32.random(in: 0...UInt32.max))")
        defer { try? fm.removeItem(at: root) }
        let made = Locked<[URL]>([])
        func engine(program: Bool, fail: Bool = false) -> CoreMLEngine {
            var h = hooks(model: MLModel())
            h.compile = { source in
                if fail { throw CoreMLTypeCheckDoubleError.notCoreML("compile \(source.lastPathComponent)") }
                let out = root.appendingPathComponent("tmp-\(UInt32.random(in: 0...UInt32.max)).mlmodelc")
                try fm.createDirectory(at: out, withIntermediateDirectories: true)
                try Data("x".utf8).write(to: out.appendingPathComponent(program ? "model.mil" : "model.espresso.net"))
                made.withLock { $0.append(out) }
                return out
            }
            return CoreMLEngine(hooks: h)
        }
        var peer = try Peer(engine: engine(program: true))
        _ = try peer.receive()
        let staging = root.appendingPathComponent("staging-1").path
        guard case .compiled(let c) = try peer.call(.compile(Compile(sourcePath: "/src/net.mlpackage", stagingDir: staging, computeUnits: .all))) else {
            return XCTFail()
        }
        XCTAssertEqual(c.bundlePath, staging + "/net.mlmodelc")
        XCTAssertEqual(c.backend, .mlProgram)
        XCTAssertTrue(fm.fileExists(atPath: c.bundlePath + "/model.mil"))
        XCTAssertFalse(fm.fileExists(atPath: made.get()[0].path), "moved, not copied")

        peer = try Peer(engine: engine(program: false))
        _ = try peer.receive()
        guard case .compiled(let nn) = try peer.call(.compile(Compile(sourcePath: "/src/old.mlmodel", stagingDir: staging, computeUnits: .all))) else {
            return XCTFail()
        }
        XCTAssertEqual(nn.backend, .neuralNetwork)

        peer = try Peer(engine: engine(program: true, fail: true))
        _ = try peer.receive()
        XCTAssertEqual(try peer.call(.compile(Compile(sourcePath: "/src/x.mlpackage", stagingDir: staging, computeUnits: .all))).errorCode,
                       .compileFailed)
    }

    /// Without Core ML, every call that needs it fails with a protocol error, never a crash.
    func testSystemHooksOnLinuxFailWithErrorCodes() throws {
        let peer = try Peer(engine: CoreMLEngine(hooks: .system))
        guard case .hello(let h) = try peer.receive().message else { return XCTFail() }
        XCTAssertNil(h.coremlVersion)
        XCTAssertEqual(try peer.call(.compile(Compile(sourcePath: "/a.mlpackage", stagingDir: "/tmp", computeUnits: .all))).errorCode, .compileFailed)
        XCTAssertEqual(try peer.call(.load(Load(modelId: 1, bundlePath: "/a.mlmodelc", computeUnits: .all))).errorCode, .loadFailed)
        XCTAssertEqual(try peer.call(.getComputePlan(ModelId(modelId: 1))).errorCode, .unknownModel)
    }
}
#endif
