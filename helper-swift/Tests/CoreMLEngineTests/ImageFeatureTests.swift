// Image features through the Core ML engine against the type-check double (protocol 2.1): the
// schema describes image features from their MLImageConstraint; an input slot whose rows are
// 64-byte multiples becomes a CVPixelBuffer over the slot itself (lease held until Core Video
// releases it), any other slot one copy; an image output slot is offered as a pixel-buffer
// backing when the description allows it and is written in place, else Core ML's own buffer is
// copied into the slot's rows. The double checks pixel-buffer backings as Core ML does.
#if os(Linux)
import CoreMLTypeCheckDouble
import Foundation
import XCTest
@testable import CoreMLEngine
@testable import HelperCore
import HelperTestSupport

func imageFeature(_ name: String, width: Int, height: Int, format: OSType) -> MLFeatureDescription {
    MLFeatureDescription(doubleName: name, type: .image,
                         imageConstraint: MLImageConstraint(doublePixelsWide: width, pixelsHigh: height, pixelFormatType: format))
}

/// What Core ML does for an image output: writes into the pixel-buffer backing it was offered,
/// else into a buffer it allocates.
func coreMLImage(_ name: String, _ options: MLPredictionOptions, width: Int, height: Int, format: OSType) -> CVPixelBuffer {
    if let b = options.outputBackings[name] as? CVPixelBuffer { return b }
    var out: CVPixelBuffer?
    _ = CVPixelBufferCreate(nil, width, height, format, nil, &out)
    return out!
}

/// Sums of each byte position of a BGRA image's pixels, read through the buffer's own rows.
private func channelSums(_ b: CVPixelBuffer) -> [Float] {
    _ = CVPixelBufferLockBaseAddress(b, .readOnly)
    defer { _ = CVPixelBufferUnlockBaseAddress(b, .readOnly) }
    let base = CVPixelBufferGetBaseAddress(b)!
    var sums: [Float] = [0, 0, 0, 0]
    for r in 0..<CVPixelBufferGetHeight(b) {
        for c in 0..<CVPixelBufferGetWidth(b) {
            for ch in 0..<4 { sums[ch] += Float(base.load(fromByteOffset: r * CVPixelBufferGetBytesPerRow(b) + c * 4 + ch, as: UInt8.self)) }
        }
    }
    return sums
}

final class ImageFeatureTests: WatchdogTestCase {
    var region: TestRegion!

    override func setUpWithError() throws { region = try TestRegion(size: 1 << 20) }
    override func tearDown() {
        region = nil
        super.tearDown()
    }

    private func start(_ model: MLModel) throws -> (Peer, Loaded) {
        let peer = try Peer(engine: CoreMLEngine(hooks: hooks(model: model)))
        _ = try peer.receive()
        XCTAssertEqual(try peer.attach(0, region), .regionAttached(RegionId(region: 0)))
        let reply = try peer.call(.load(Load(modelId: 1, bundlePath: "/m.mlmodelc", computeUnits: .all)))
        guard case .loaded(let l) = reply else { throw Peer.Closed() }
        return (peer, l)
    }

    private static let bgra = ImageSpec(width: 3, height: 2, pixelFormat: .bgra8)

    /// A 3x2 BGRA image at `offset` with rows `row` bytes apart: pixel (r, c) = [r, c, 10, 1].
    private func writeImage(at offset: Int, row: Int) {
        for r in 0..<2 { for c in 0..<3 { region.write([UInt8(r), UInt8(c), 10, 1], at: offset + r * row + c * 4) } }
    }

    private func imageRef(row: UInt64, offset: UInt64) -> TensorRef {
        TensorRef(dtype: .u8, shape: [2, 3, 4], strides: [row, 4, 1], region: 0, offset: offset, len: row + 12)
    }

    /// A model with a BGRA image input `x` whose output `y` holds its channel sums; the stand-in
    /// writes 99 into the first byte of the input pixel buffer, and records its bytesPerRow.
    private func summingModel(rows: Locked<[Int]>, keep: Locked<[CVPixelBuffer]>? = nil) -> StandInModel {
        StandInModel(inputs: [imageFeature("x", width: 3, height: 2, format: kCVPixelFormatType_32BGRA)],
                     outputs: [feature("y", .float32, [4])]) { input, o in
            let b = input.featureValue(for: "x")!.imageBufferValue!
            rows.withLock { $0.append(CVPixelBufferGetBytesPerRow(b)) }
            let sums = channelSums(b)
            _ = CVPixelBufferLockBaseAddress(b, [])
            CVPixelBufferGetBaseAddress(b)!.storeBytes(of: 99, as: UInt8.self)
            _ = CVPixelBufferUnlockBaseAddress(b, [])
            keep?.withLock { $0.append(b) }
            let y = try coreMLOutput("y", o, shape: [4], .float32)
            for (i, v) in sums.enumerated() { y.dataPointer.storeBytes(of: v, toByteOffset: i * 4, as: Float.self) }
            return try MLDictionaryFeatureProvider(dictionary: ["y": MLFeatureValue(multiArray: y)])
        }
    }

    private func predict(x: TensorRef, outputs: [(String, TensorRef)]) -> Message {
        .predict(Predict(modelId: 1, inputs: [NamedTensor(name: "x", tensor: x)],
                         outputs: outputs.map { NamedTensor(name: $0.0, tensor: $0.1) }, deadlineUs: 10_000_000))
    }

    func testImageFeaturesAreDescribedFromTheirConstraint() throws {
        let model = StandInModel(inputs: [imageFeature("x", width: 3, height: 2, format: kCVPixelFormatType_32BGRA)],
                                 outputs: [imageFeature("m", width: 5, height: 4, format: kCVPixelFormatType_OneComponent16Half),
                                           feature("y", .float32, [4])]) { _, _ in try MLDictionaryFeatureProvider(dictionary: [:]) }
        let (_, l) = try start(model)
        XCTAssertEqual(l.inputs, [TensorSpec.image("x", Self.bgra)])
        XCTAssertEqual(l.inputs[0].shape, [2, 3, 4])
        XCTAssertEqual(l.outputs, [TensorSpec.image("m", ImageSpec(width: 5, height: 4, pixelFormat: .grayF16)),
                                   TensorSpec(name: "y", dtype: .f32, shape: [4])])
        XCTAssertEqual(l.outputs[0].dtype, .f16)

        // A pixel format the protocol cannot carry is refused at load, with UNSUPPORTED.
        let odd = StandInModel(inputs: [imageFeature("x", width: 3, height: 2, format: 0x7979_7979)], outputs: []) { _, _ in
            try MLDictionaryFeatureProvider(dictionary: [:])
        }
        let peer = try Peer(engine: CoreMLEngine(hooks: hooks(model: odd)))
        _ = try peer.receive()
        XCTAssertEqual(try peer.call(.load(Load(modelId: 1, bundlePath: "/m.mlmodelc", computeUnits: .all))).errorCode, .unsupported)
    }

    /// Rows 128 bytes apart (a multiple of 64, unlike the 64 Core Video would allocate): the
    /// pixel buffer is the slot itself, so the model sees that stride and its write lands in
    /// shared memory; Core ML keeping the buffer keeps the inputs retained until it lets go.
    func testAlignedImageInputIsWrappedWithoutACopy() throws {
        let rows = Locked<[Int]>([]), keep = Locked<[CVPixelBuffer]>([])
        let (peer, _) = try start(summingModel(rows: rows, keep: keep))
        writeImage(at: 0, row: 128)
        let id = try peer.request(predict(x: imageRef(row: 128, offset: 0),
                                          outputs: [("y", .contiguous(.f32, shape: [4], region: 0, offset: 16384))]))
        let reply = try peer.receive()
        guard case .predicted(let p) = reply.message else { return XCTFail("\(reply)") }
        XCTAssertEqual(region.read(Float.self, count: 4, at: 16384), [3, 6, 60, 6]) // B = row, G = column, R, A summed
        XCTAssertEqual(rows.get(), [128])
        XCTAssertEqual(region.read(UInt8.self, count: 1, at: 0), [99], "the model wrote into the slot")
        XCTAssertTrue(p.inputsRetained)
        XCTAssertTrue(try peer.silent(for: 0.2))
        keep.withLock { $0.removeAll() }
        let released = try peer.receive()
        XCTAssertEqual(released.requestId, id)
        XCTAssertEqual(released.message, .inputsReleased(ModelId(modelId: 1)))
    }

    /// Dense 12-byte rows cannot back a pixel buffer as they are: one copy, same pixels, the
    /// slot untouched by the model, nothing retained.
    func testUnalignedImageInputIsCopiedOnce() throws {
        let rows = Locked<[Int]>([])
        let (peer, _) = try start(summingModel(rows: rows))
        writeImage(at: 0, row: 12)
        let reply = try peer.call(predict(x: .contiguous(.u8, shape: [2, 3, 4], region: 0, offset: 0),
                                          outputs: [("y", .contiguous(.f32, shape: [4], region: 0, offset: 16384))]))
        guard case .predicted(let p) = reply else { return XCTFail("\(reply)") }
        XCTAssertEqual(region.read(Float.self, count: 4, at: 16384), [3, 6, 60, 6])
        XCTAssertEqual(rows.get(), [64], "Core Video's own buffer")
        XCTAssertEqual(region.read(UInt8.self, count: 1, at: 0), [0])
        XCTAssertFalse(p.inputsRetained)
    }

    /// Planar or short rows are not an image of this format: SCHEMA_MISMATCH before Core ML.
    func testAnImageRefThatIsNotPackedPixelsIsASchemaMismatch() throws {
        let rows = Locked<[Int]>([])
        let (peer, _) = try start(summingModel(rows: rows))
        let planar = TensorRef(dtype: .u8, shape: [2, 3, 4], strides: [3, 1, 6], region: 0, offset: 0, len: 24)
        let reply = try peer.call(predict(x: planar, outputs: [("y", .contiguous(.f32, shape: [4], region: 0, offset: 16384))]))
        XCTAssertEqual(reply.errorCode, .schemaMismatch, "\(reply)")
        XCTAssertEqual(rows.get(), [], "never reached the model")
    }

    /// An image output: a 64-byte-row slot is offered as a pixel-buffer backing and written in
    /// place; a dense slot is not offered and Core ML's buffer is copied into the slot's rows.
    func testImageOutputsAreWrittenInPlaceOrCopiedIntoTheSlotRows() throws {
        let model = StandInModel(inputs: [feature("x", .float32, [1])],
                                 outputs: [imageFeature("m", width: 3, height: 2, format: kCVPixelFormatType_OneComponent8)]) { _, o in
            let b = coreMLImage("m", o, width: 3, height: 2, format: kCVPixelFormatType_OneComponent8)
            _ = CVPixelBufferLockBaseAddress(b, [])
            let base = CVPixelBufferGetBaseAddress(b)!
            for r in 0..<2 { for c in 0..<3 { base.storeBytes(of: UInt8(10 * r + c), toByteOffset: r * CVPixelBufferGetBytesPerRow(b) + c, as: UInt8.self) } }
            _ = CVPixelBufferUnlockBaseAddress(b, [])
            return try MLDictionaryFeatureProvider(dictionary: ["m": MLFeatureValue(pixelBuffer: b)])
        }
        let (peer, _) = try start(model)
        let x = TensorRef.contiguous(.f32, shape: [1], region: 0, offset: 0)
        let padded = TensorRef(dtype: .u8, shape: [2, 3, 1], strides: [64, 1, 1], region: 0, offset: 16384, len: 67)
        var reply = try peer.call(.predict(Predict(modelId: 1, inputs: [NamedTensor(name: "x", tensor: x)],
                                                   outputs: [NamedTensor(name: "m", tensor: padded)], deadlineUs: 0)))
        guard case .predicted(let inPlace) = reply else { return XCTFail("\(reply)") }
        XCTAssertEqual(inPlace.outputsInPlace, 1)
        XCTAssertEqual(inPlace.outputs, [NamedTensor(name: "m", tensor: padded)])
        XCTAssertEqual(region.read(UInt8.self, count: 3, at: 16384), [0, 1, 2])
        XCTAssertEqual(region.read(UInt8.self, count: 3, at: 16384 + 64), [10, 11, 12])

        let dense = TensorRef.contiguous(.u8, shape: [2, 3, 1], region: 0, offset: 32768)
        reply = try peer.call(.predict(Predict(modelId: 1, inputs: [NamedTensor(name: "x", tensor: x)],
                                               outputs: [NamedTensor(name: "m", tensor: dense)], deadlineUs: 0)))
        guard case .predicted(let copied) = reply else { return XCTFail("\(reply)") }
        XCTAssertEqual(copied.outputsInPlace, 0)
        XCTAssertEqual(region.read(UInt8.self, count: 6, at: 32768), [0, 1, 2, 10, 11, 12])
        XCTAssertEqual(model.offeredBackings.get(), [["m"], []])
    }

    /// A model with an image input `x` of flexible size whose output `y` is [width, height, 0, 0]
    /// of the pixel buffer it got; the sizes it saw are recorded.
    private func sizeModel(_ sizes: MLImageSizeConstraint, seen: Locked<[[Int]]>) -> StandInModel {
        let x = MLFeatureDescription(doubleName: "x", type: .image,
                                     imageConstraint: MLImageConstraint(doublePixelsWide: 3, pixelsHigh: 2, pixelFormatType: kCVPixelFormatType_32BGRA,
                                                                        sizeConstraint: sizes))
        return StandInModel(inputs: [x], outputs: [feature("y", .float32, [4])]) { input, o in
            let b = input.featureValue(for: "x")!.imageBufferValue!
            let size = [CVPixelBufferGetWidth(b), CVPixelBufferGetHeight(b)]
            seen.withLock { $0.append(size) }
            let y = try coreMLOutput("y", o, shape: [4], .float32)
            for (i, v) in size.enumerated() { y.dataPointer.storeBytes(of: Float(v), toByteOffset: i * 4, as: Float.self) }
            return try MLDictionaryFeatureProvider(dictionary: ["y": MLFeatureValue(multiArray: y)])
        }
    }

    private func predictSize(_ peer: Peer, width: UInt64, height: UInt64) throws -> Message {
        let x = TensorRef(dtype: .u8, shape: [height, width, 4], strides: [64, 4, 1], region: 0, offset: 0,
                          len: 64 * (height - 1) + 4 * width)
        return try peer.call(predict(x: x, outputs: [("y", .contiguous(.f32, shape: [4], region: 0, offset: 16384))]))
    }

    /// A flexible image feature is described with its sizes (ranges or enumerated shapes of its
    /// pixels); each image is wrapped at its own size; a size it does not take is a
    /// SCHEMA_MISMATCH before Core ML.
    func testFlexibleImageSizesAreDescribedAndEachImageIsWrappedAtItsSize() throws {
        let seen = Locked<[[Int]]>([])
        let range = MLImageSizeConstraint(doubleType: .range, pixelsWideRange: NSRange(location: 2, length: 6),
                                          pixelsHighRange: NSRange(location: 1, length: 3))
        var (peer, l) = try start(sizeModel(range, seen: seen))
        XCTAssertEqual(l.inputs, [TensorSpec.imageRange("x", Self.bgra, width: [2, 8], height: [1, 4])])
        XCTAssertEqual(l.inputs[0].shapeRanges, [[1, 4], [2, 8], [4, 4]])
        for (w, h) in [(3, 2), (5, 4), (8, 1)] as [(UInt64, UInt64)] {
            guard case .predicted = try predictSize(peer, width: w, height: h) else { return XCTFail("\(w)x\(h)") }
            XCTAssertEqual(region.read(Float.self, count: 2, at: 16384), [Float(w), Float(h)])
        }
        XCTAssertEqual(try predictSize(peer, width: 9, height: 2).errorCode, .schemaMismatch)
        XCTAssertEqual(try predictSize(peer, width: 3, height: 5).errorCode, .schemaMismatch)
        XCTAssertEqual(seen.get(), [[3, 2], [5, 4], [8, 1]], "refused sizes never reached the model")

        seen.withLock { $0.removeAll() }
        let listed = MLImageSizeConstraint(doubleType: .enumerated,
                                           enumeratedImageSizes: [MLImageSize(doublePixelsWide: 3, pixelsHigh: 2),
                                                                  MLImageSize(doublePixelsWide: 6, pixelsHigh: 1)])
        (peer, l) = try start(sizeModel(listed, seen: seen))
        XCTAssertEqual(l.inputs[0].enumeratedShapes, [[2, 3, 4], [1, 6, 4]])
        guard case .predicted = try predictSize(peer, width: 6, height: 1) else { return XCTFail("6x1") }
        XCTAssertEqual(try predictSize(peer, width: 4, height: 2).errorCode, .schemaMismatch)
        XCTAssertEqual(seen.get(), [[6, 1]])
    }

    /// Image features are 2.1: a supervisor that negotiated 2.0 (its Welcome) gets UNSUPPORTED
    /// for an image model, as from a 2.0 helper, never a Loaded with `image` fields; a 2.1
    /// supervisor gets the model.
    func testAnImageModelIsRefusedToASupervisorThatSpeaks20() throws {
        let rows = Locked<[Int]>([])
        for (minor, loads) in [(UInt16(0), false), (UInt16(1), true)] {
            let peer = try Peer(engine: CoreMLEngine(hooks: hooks(model: summingModel(rows: rows))))
            _ = try peer.receive()
            try peer.send(0, .welcome(Welcome(protocolMajor: 2, protocolMinor: minor, supervisorVersion: "test")))
            let reply = try peer.call(.load(Load(modelId: 1, bundlePath: "/m.mlmodelc", computeUnits: .all)))
            if loads {
                guard case .loaded(let l) = reply else { return XCTFail("2.\(minor): \(reply)") }
                XCTAssertEqual(l.inputs, [TensorSpec.image("x", Self.bgra)])
            } else {
                XCTAssertEqual(reply.errorCode, .unsupported, "2.\(minor): \(reply)")
                // Nothing stays loaded for it.
                XCTAssertEqual(try peer.call(.unload(ModelId(modelId: 1))).errorCode, .unknownModel)
            }
        }
    }

    /// The double applies Core ML's rule to pixel-buffer backings: one of another size fails
    /// the prediction; an array backing for an image output does too.
    func testTheDoubleFailsAPredictionWhosePixelBufferBackingFailsTheConstraint() async throws {
        let model = StandInModel(inputs: [], outputs: [imageFeature("m", width: 3, height: 2, format: kCVPixelFormatType_OneComponent8)]) { _, o in
            try MLDictionaryFeatureProvider(dictionary: ["m": MLFeatureValue(pixelBuffer: coreMLImage("m", o, width: 3, height: 2, format: kCVPixelFormatType_OneComponent8))])
        }
        let input = try MLDictionaryFeatureProvider(dictionary: [:])
        var wrong: CVPixelBuffer?
        _ = CVPixelBufferCreate(nil, 4, 2, kCVPixelFormatType_OneComponent8, nil, &wrong)
        var right: CVPixelBuffer?
        _ = CVPixelBufferCreate(nil, 3, 2, kCVPixelFormatType_OneComponent8, nil, &right)
        for bad in [wrong! as Any, try MLMultiArray(shape: [2, 3], dataType: .float32)] {
            let o = MLPredictionOptions()
            o.outputBackings = ["m": bad]
            do {
                _ = try await model.prediction(from: input, options: o)
                XCTFail("backing \(bad) must fail the prediction")
            } catch CoreMLTypeCheckDoubleError.outputBackingRejected {}
        }
        let o = MLPredictionOptions()
        o.outputBackings = ["m": right!]
        let r = try await model.prediction(from: input, options: o)
        XCTAssertTrue(r.featureValue(for: "m")?.imageBufferValue === right)
    }
}
#endif
