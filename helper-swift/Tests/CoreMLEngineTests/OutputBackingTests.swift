// Output backings by Core ML's rule (MLPredictionOptions.h): a backing that fails the output
// description's `isAllowedValue` fails the whole prediction, so the engine offers a slot only
// when it passes, lets Core ML allocate otherwise, copies once, and counts in-place outputs.
// The double enforces the rule; these tests fail if the engine offers a slot it should not.
#if os(Linux)
import CoreMLTypeCheckDouble
import Foundation
import XCTest
@testable import CoreMLEngine
@testable import HelperCore
import HelperTestSupport

final class OutputBackingTests: WatchdogTestCase {
    var region: TestRegion!

    override func setUpWithError() throws { region = try TestRegion(size: 1 << 20) }
    override func tearDown() {
        region = nil
        super.tearDown()
    }

    private func start(_ model: MLModel) throws -> Peer {
        let peer = try Peer(engine: CoreMLEngine(hooks: hooks(model: model)))
        _ = try peer.receive()
        XCTAssertEqual(try peer.call(.attachRegion(AttachRegion(region: 0, name: region.name, size: UInt64(region.size)))),
                       .regionAttached(RegionId(region: 0)))
        guard case .loaded = try peer.call(.load(Load(modelId: 1, bundlePath: "/m.mlmodelc", computeUnits: .all))) else {
            throw Peer.Closed()
        }
        return peer
    }

    private func predict(_ outputs: [(String, TensorRef)]) -> Message {
        .predict(Predict(modelId: 1, inputs: [NamedTensor(name: "x", tensor: .contiguous(.f32, shape: [1], region: 0, offset: 0))],
                         outputs: outputs.map { NamedTensor(name: $0.0, tensor: $0.1) }, deadlineUs: 10_000_000))
    }

    /// Writes `values` into the output array Core ML would use for `name` and returns it.
    private static func fill(_ name: String, _ o: MLPredictionOptions, shape: [Int], _ values: [Float]) throws -> MLFeatureValue {
        let y = try coreMLOutput(name, o, shape: shape, .float32)
        let strides = y.strides.map(\.intValue)
        for (i, v) in values.enumerated() {
            var rest = i, offset = 0
            for d in stride(from: shape.count - 1, through: 0, by: -1) {
                offset += (rest % shape[d]) * strides[d]
                rest /= shape[d]
            }
            y.dataPointer.storeBytes(of: v, toByteOffset: offset * 4, as: Float.self)
        }
        return MLFeatureValue(multiArray: y)
    }

    /// The double itself: a backing outside the constraint fails the prediction (both entry
    /// points); an allowed one, or one for an unknown name, does not.
    func testTheDoubleFailsAPredictionWhoseBackingFailsTheConstraint() async throws {
        let model = StandInModel(inputs: [], outputs: [feature("y", .float32, [4])]) { _, o in
            try MLDictionaryFeatureProvider(dictionary: ["y": try Self.fill("y", o, shape: [4], [1, 2, 3, 4])])
        }
        let input = try MLDictionaryFeatureProvider(dictionary: [:])
        func options(_ backing: MLMultiArray, name: String = "y") -> MLPredictionOptions {
            let o = MLPredictionOptions()
            o.outputBackings = [name: backing]
            return o
        }
        func synchronously(_ o: MLPredictionOptions) throws -> MLFeatureProvider { try model.prediction(from: input, options: o) }
        let wrongShape = try MLMultiArray(shape: [5], dataType: .float32)
        let wrongType = try MLMultiArray(shape: [4], dataType: .float16)
        let allowed = try MLMultiArray(shape: [4], dataType: .float32)
        for bad in [wrongShape, wrongType] {
            do {
                _ = try await model.prediction(from: input, options: options(bad))
                XCTFail("a backing of shape \(bad.shape) \(bad.dataType) must fail the prediction")
            } catch CoreMLTypeCheckDoubleError.outputBackingRejected {}
            XCTAssertThrowsError(try synchronously(options(bad)))
        }
        let r = try await model.prediction(from: input, options: options(allowed))
        XCTAssertTrue(r.featureValue(for: "y")?.multiArrayValue === allowed)
        _ = try await model.prediction(from: input, options: options(wrongShape, name: "unknown"))
    }

    /// An output whose shape Core ML does not declare (empty default shape): any slot is taken,
    /// none passes the constraint, so none is offered and the result is copied in.
    func testOutputOfUndeclaredShapeIsNotOfferedAndIsCopied() throws {
        let model = StandInModel(inputs: [feature("x", .float32, [1])], outputs: [feature("y", .float32, [])]) { _, o in
            try MLDictionaryFeatureProvider(dictionary: ["y": try Self.fill("y", o, shape: [1, 3], [7, 8, 9])])
        }
        let peer = try start(model)
        let y = TensorRef.contiguous(.f32, shape: [1, 3], region: 0, offset: 16384)
        let reply = try peer.call(predict([("y", y)]))
        guard case .predicted(let p) = reply else { return XCTFail("\(reply)") }
        XCTAssertEqual(p.outputs, [NamedTensor(name: "y", tensor: y)])
        XCTAssertEqual(region.read(Float.self, count: 3, at: 16384), [7, 8, 9])
        XCTAssertEqual(p.outputsInPlace, 0)
        XCTAssertEqual(model.offeredBackings.get(), [[]])
    }

    /// A padded slot: the constraint says nothing about strides, so it is not offered; Core ML's
    /// own array is copied into it honouring the slot's strides.
    func testPaddedSlotIsNotOfferedAndIsCopiedHonouringItsStrides() throws {
        let model = StandInModel(inputs: [feature("x", .float32, [1])], outputs: [feature("y", .float32, [2, 3])]) { _, o in
            try MLDictionaryFeatureProvider(dictionary: ["y": try Self.fill("y", o, shape: [2, 3], [1, 2, 3, 4, 5, 6])])
        }
        let peer = try start(model)
        region.write([Float](repeating: -1, count: 8), at: 16384)
        let y = TensorRef(dtype: .f32, shape: [2, 3], strides: [4, 1], region: 0, offset: 16384, len: 28)
        let reply = try peer.call(predict([("y", y)]))
        guard case .predicted(let p) = reply else { return XCTFail("\(reply)") }
        XCTAssertEqual(p.outputs, [NamedTensor(name: "y", tensor: y)])
        XCTAssertEqual(region.read(Float.self, count: 7, at: 16384), [1, 2, 3, -1, 4, 5, 6], "padding untouched")
        XCTAssertEqual(p.outputsInPlace, 0)
        XCTAssertEqual(model.offeredBackings.get(), [[]])
    }

    /// Flexible outputs: a slot of an enumerated shape or inside the ranges passes the constraint
    /// and is offered; Core ML writes in place and both count.
    func testSlotsInsideEnumeratedShapesOrRangesAreOfferedAndWrittenInPlace() throws {
        let enumerated = MLMultiArrayShapeConstraint(doubleType: .enumerated, enumeratedShapes: [[1, 2], [1, 4]])
        let ranged = MLMultiArrayShapeConstraint(doubleType: .range, sizeRangeForDimension: [
            NSValue(range: NSRange(location: 1, length: 0)), NSValue(range: NSRange(location: 2, length: 6)),
        ])
        let model = StandInModel(inputs: [feature("x", .float32, [1])],
                                 outputs: [feature("e", .float32, [1, 2], constraint: enumerated),
                                           feature("r", .float32, [1, 2], constraint: ranged)]) { _, o in
            try MLDictionaryFeatureProvider(dictionary: [
                "e": try Self.fill("e", o, shape: [1, 4], [1, 2, 3, 4]),
                "r": try Self.fill("r", o, shape: [1, 8], [8, 7, 6, 5, 4, 3, 2, 1]),
            ])
        }
        let peer = try start(model)
        let e = TensorRef.contiguous(.f32, shape: [1, 4], region: 0, offset: 16384)
        let r = TensorRef.contiguous(.f32, shape: [1, 8], region: 0, offset: 32768)
        let reply = try peer.call(predict([("e", e), ("r", r)]))
        guard case .predicted(let p) = reply else { return XCTFail("\(reply)") }
        XCTAssertEqual(p.outputsInPlace, 2)
        XCTAssertEqual(model.offeredBackings.get(), [["e", "r"]])
        XCTAssertEqual(region.read(Float.self, count: 4, at: 16384), [1, 2, 3, 4])
        XCTAssertEqual(region.read(Float.self, count: 8, at: 32768), [8, 7, 6, 5, 4, 3, 2, 1])
    }

    /// `outputs_in_place` is a helper extension of `Predicted`: written only when known, so a
    /// reply without it encodes byte for byte as protocol 1.0 says.
    func testOutputsInPlaceIsWrittenOnlyWhenKnown() throws {
        let plain = Predicted(modelId: 1, outputs: [], inputsRetained: false, marshalInUs: 1, predictUs: 2, marshalOutUs: 3)
        guard case .map(let fields) = plain.wire else { return XCTFail() }
        XCTAssertEqual(fields.count, 6)
        var counted = plain
        counted.outputsInPlace = 2
        XCTAssertEqual(try Predicted(wire: counted.wire), counted)
        XCTAssertEqual(try Predicted(wire: plain.wire).outputsInPlace, nil)
    }
}
#endif
