// Image features between shared-memory slots and CVPixelBuffer (protocol 2.1).
//
// Example:
//   let spec = try CoreMLImages.spec(description)                 // TensorSpec.image(...) of the constraint
//   let (x, copied) = try CoreMLImages.wrapInput(boundX, image: spec.image!, lease: call.lease)
//   // copied == false: a pixel buffer over the slot itself; the lease is held until Core ML frees it
//   let backing = try CoreMLImages.backing(for: boundY, image: yImage, description: yDescription)
//   let placed = try CoreMLImages.place(value, backing: backing, slot: boundY, image: yImage)
//
// A slot is wrapped without a copy (CVPixelBufferCreateWithBytes over the slot) when its pixels
// are packed and its rows are a multiple of 64 bytes apart from a 64-byte aligned base: the
// layout the supervisor gives every image slot, and the one CVPixelBufferCreate itself produces.
// Otherwise one copy into a pixel buffer that Core Video allocates. Image outputs follow the
// output-backing rule of multi-arrays: a pixel buffer over the slot is offered only if the
// output description's `isAllowedValue` accepts it; whether Core ML wrote into it is decided by
// identity, else the returned buffer's rows are copied into the slot once.
#if canImport(CoreML)
@preconcurrency import CoreML
#else
import CoreMLTypeCheckDouble
#endif
import Foundation
import HelperCore

/// What a no-copy input pixel buffer keeps alive until Core Video calls its release callback.
final class PixelBufferHold {
    let token: LeaseToken?
    let region: SharedMemoryRegion

    init(token: LeaseToken?, region: SharedMemoryRegion) {
        self.token = token
        self.region = region
    }
}

/// Core Video's release callback of a no-copy buffer: drops the hold (and its lease reference).
private let releaseHold: CVPixelBufferReleaseBytesCallback = { refCon, _ in
    guard let refCon else { return }
    let hold = Unmanaged<PixelBufferHold>.fromOpaque(refCon).takeRetainedValue()
    hold.token?.release()
}

public enum CoreMLImages {
    static let rowAlign = Int(imageRowAlign)

    /// The spec of an image feature from its constraint: the default size, and a flexible
    /// feature's sizes as ranges or enumerated shapes of its pixels (protocol section 4).
    public static func spec(_ f: MLFeatureDescription) throws -> TensorSpec {
        guard let c = f.imageConstraint else {
            throw EngineError(.unsupported, "image feature \(f.name.debugDescription) has no image constraint")
        }
        guard let format = PixelFormat(osType: c.pixelFormatType) else {
            throw EngineError(.unsupported, "image feature \(f.name.debugDescription) has pixel format \(c.pixelFormatType), which the protocol cannot carry")
        }
        guard c.pixelsWide > 0, c.pixelsHigh > 0 else {
            throw EngineError(.unsupported, "image feature \(f.name.debugDescription) has no fixed size (\(c.pixelsWide)x\(c.pixelsHigh))")
        }
        let image = ImageSpec(width: UInt64(c.pixelsWide), height: UInt64(c.pixelsHigh), pixelFormat: format)
        let sizes = c.sizeConstraint
        switch sizes.type {
        case .range:
            return TensorSpec.imageRange(f.name, image, width: CoreMLSchema.bounds(of: sizes.pixelsWideRange),
                                         height: CoreMLSchema.bounds(of: sizes.pixelsHighRange), optional: f.isOptional)
        case .enumerated:
            let list = sizes.enumeratedImageSizes.map { (UInt64(max(0, $0.pixelsWide)), UInt64(max(0, $0.pixelsHigh))) }
            return TensorSpec.imageSizes(f.name, image, sizes: list, optional: f.isOptional)
        case .unspecified:
            // The default size only.
            return TensorSpec.image(f.name, image, optional: f.isOptional)
        @unknown default:
            // A constraint type newer than this helper: the default size only.
            return TensorSpec.image(f.name, image, optional: f.isOptional)
        }
    }

    /// The row stride in bytes if the slot can back a pixel buffer as it is, else nil.
    static func wrappableRow(_ t: BoundTensor, image: ImageSpec) -> Int? {
        guard let row = try? image.checkRef(t.ref), row % imageRowAlign == 0,
              Int(bitPattern: t.base) % rowAlign == 0 else { return nil }
        return Int(row)
    }

    static func create(over t: BoundTensor, image: ImageSpec, row: Int, hold: PixelBufferHold?) throws -> CVPixelBuffer {
        var out: CVPixelBuffer?
        let refCon = hold.map { Unmanaged.passRetained($0).toOpaque() }
        let status = CVPixelBufferCreateWithBytes(nil, Int(image.width), Int(image.height), image.pixelFormat.osType, t.base, row,
                                                  hold == nil ? nil : releaseHold, refCon, nil, &out)
        guard status == kCVReturnSuccess, let out else {
            // Whether Core Video calls the release callback of a buffer it failed to create is not
            // documented: the lease reference is dropped here (once, LeaseToken), the hold's own
            // retain is left alone so a late callback cannot over-release it.
            hold?.token?.release()
            throw EngineError(.schemaMismatch, "\(t.name.debugDescription): no pixel buffer over the slot (CVReturn \(status))")
        }
        return out
    }

    /// A pixel buffer with the image of an input slot: over the slot itself (the lease holds one
    /// reference until Core Video releases the buffer) or, for an unaligned slot, a copy.
    public static func wrapInput(_ t: BoundTensor, image: ImageSpec, lease: InputLease) throws -> (buffer: CVPixelBuffer, copied: Bool) {
        if let row = wrappableRow(t, image: image) {
            let hold = PixelBufferHold(token: LeaseToken(lease), region: t.region)
            return (try create(over: t, image: image, row: row, hold: hold), false)
        }
        let srcRow: UInt64
        do { srcRow = try image.checkRef(t.ref) } catch {
            throw EngineError(.schemaMismatch, "input \(t.name.debugDescription): \(error)")
        }
        var out: CVPixelBuffer?
        let status = CVPixelBufferCreate(nil, Int(image.width), Int(image.height), image.pixelFormat.osType, nil, &out)
        guard status == kCVReturnSuccess, let out else {
            throw EngineError(.internal, "input \(t.name.debugDescription): CVPixelBufferCreate failed (CVReturn \(status))")
        }
        try copyRows(image, from: UnsafeRawPointer(t.base), srcRow: Int(srcRow), to: out)
        return (out, true)
    }

    /// Copies the image's rows from `src` into a locked `dst`.
    static func copyRows(_ image: ImageSpec, from src: UnsafeRawPointer, srcRow: Int, to dst: CVPixelBuffer) throws {
        guard CVPixelBufferLockBaseAddress(dst, []) == kCVReturnSuccess else {
            throw EngineError(.internal, "cannot lock a pixel buffer")
        }
        defer { _ = CVPixelBufferUnlockBaseAddress(dst, []) }
        guard let base = CVPixelBufferGetBaseAddress(dst) else { throw EngineError(.internal, "pixel buffer without memory") }
        let dstRow = CVPixelBufferGetBytesPerRow(dst)
        let rowBytes = Int(image.width * image.pixelFormat.bytesPerPixel)
        for r in 0..<Int(image.height) {
            (base + r * dstRow).copyMemory(from: src + r * srcRow, byteCount: rowBytes)
        }
    }

    /// The pixel buffer to offer as the backing of an image output slot, or nil to let Core ML
    /// allocate: only a slot that can be wrapped as it is, and only if the description's
    /// `isAllowedValue` accepts the buffer (Core ML fails the prediction otherwise).
    public static func backing(for slot: BoundTensor, image: ImageSpec, description: MLFeatureDescription?) throws -> CVPixelBuffer? {
        guard let description, let row = wrappableRow(slot, image: image) else { return nil }
        let buffer = try create(over: slot, image: image, row: row, hold: PixelBufferHold(token: nil, region: slot.region))
        return description.isAllowedValue(MLFeatureValue(pixelBuffer: buffer)) ? buffer : nil
    }

    /// Puts an image output into its slot: nothing to do if Core ML used the backing (identity),
    /// else the returned buffer's rows are copied into the slot's rows.
    public static func place(_ value: CVPixelBuffer, backing: CVPixelBuffer?, slot: BoundTensor, image: ImageSpec) throws -> (tensor: NamedTensor, copied: Bool) {
        if let backing, value === backing { return (slot.named, false) }
        guard CVPixelBufferGetWidth(value) == Int(image.width), CVPixelBufferGetHeight(value) == Int(image.height),
              CVPixelBufferGetPixelFormatType(value) == image.pixelFormat.osType else {
            throw EngineError(.predictFailed, "image output \(slot.name.debugDescription) came back as a \(CVPixelBufferGetWidth(value))x\(CVPixelBufferGetHeight(value)) buffer of format \(CVPixelBufferGetPixelFormatType(value)), not \(image.width)x\(image.height) \(image.pixelFormat.name)")
        }
        let slotRow: UInt64
        do { slotRow = try image.checkRef(slot.ref) } catch {
            throw EngineError(.schemaMismatch, "output slot \(slot.name.debugDescription): \(error)")
        }
        guard CVPixelBufferLockBaseAddress(value, .readOnly) == kCVReturnSuccess else {
            throw EngineError(.predictFailed, "cannot lock image output \(slot.name.debugDescription)")
        }
        defer { _ = CVPixelBufferUnlockBaseAddress(value, .readOnly) }
        guard let base = CVPixelBufferGetBaseAddress(value) else {
            throw EngineError(.predictFailed, "image output \(slot.name.debugDescription) has no memory")
        }
        let srcRow = CVPixelBufferGetBytesPerRow(value)
        let rowBytes = Int(image.width * image.pixelFormat.bytesPerPixel)
        guard srcRow >= rowBytes else { throw EngineError(.predictFailed, "image output \(slot.name.debugDescription): rows shorter than the image") }
        for r in 0..<Int(image.height) {
            (slot.base + r * Int(slotRow)).copyMemory(from: UnsafeRawPointer(base + r * srcRow), byteCount: rowBytes)
        }
        return (slot.named, true)
    }
}
