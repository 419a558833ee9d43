// Tensors between shared-memory slots and MLMultiArray, without copies where Core ML allows.
//
// Example:
//   let x = try CoreMLMarshalling.wrapInput(boundX, lease: call.lease)   // no copy; the lease is
//                                                                        // dropped when Core ML frees x
//   let backing = try CoreMLMarshalling.backing(for: boundY, description: yDescription)  // nil: not offered
//   let placed = try CoreMLMarshalling.place(result, backing: backing, slot: boundY)
//   // placed.copied == false when Core ML wrote into the slot (checked by identity)
//
// Float16 travels as raw 16-bit words: nothing here converts element values (Float16 does not
// exist on macOS x86_64). Strides are in elements, as in MLMultiArray and the protocol.
#if canImport(CoreML)
@preconcurrency import CoreML
#else
import CoreMLTypeCheckDouble
#endif
import Foundation
import HelperCore

/// Drops one lease reference exactly once, whoever calls first (deallocator or error path).
final class LeaseToken: @unchecked Sendable {
    private let lease: InputLease
    private let done = Locked(false)

    init(_ lease: InputLease) {
        self.lease = lease
        lease.acquire()
    }

    func release() {
        let first = done.withLock { d -> Bool in
            defer { d = true }
            return !d
        }
        if first { lease.release() }
    }
}

public enum CoreMLMarshalling {
    static func numbers(_ v: [UInt64]) -> [NSNumber] { v.map { NSNumber(value: $0) } }

    static func dataType(_ t: BoundTensor) throws -> MLMultiArrayDataType {
        guard let d = CoreMLSchema.dataType(t.ref.dtype) else {
            throw EngineError(.unsupported, "Core ML has no multi-array type for \(t.ref.dtype.name) (\(t.name))")
        }
        return d
    }

    /// An MLMultiArray over an input slot. The lease holds one reference until Core ML frees the
    /// array; the closure also keeps the region mapped until then.
    public static func wrapInput(_ t: BoundTensor, lease: InputLease) throws -> MLMultiArray {
        let type = try dataType(t)
        let token = LeaseToken(lease)
        let region = t.region
        do {
            return try MLMultiArray(dataPointer: t.base, shape: numbers(t.ref.shape), dataType: type,
                                    strides: numbers(t.ref.strides), deallocator: { _ in
                                        withExtendedLifetime(region) {}
                                        token.release()
                                    })
        } catch {
            token.release()
            throw EngineError(.schemaMismatch, "input \(t.name.debugDescription) cannot be wrapped: \(error)")
        }
    }

    /// An MLMultiArray over an output slot.
    public static func wrapOutput(_ t: BoundTensor) throws -> MLMultiArray {
        let type = try dataType(t)
        let region = t.region
        return try MLMultiArray(dataPointer: t.base, shape: numbers(t.ref.shape), dataType: type,
                                strides: numbers(t.ref.strides), deallocator: { _ in withExtendedLifetime(region) {} })
    }

    /// The output backing to offer for a slot, or nil to let Core ML allocate (then `place`
    /// copies once). Core ML fails the whole prediction for a backing that fails the output
    /// description's `isAllowedValue` (MLPredictionOptions.h), so that test decides, on an array
    /// of the slot's shape and data type. A padded slot is never offered: the constraint says
    /// nothing about strides, and whether Core ML writes through a backing's strides is
    /// unverified.
    public static func backing(for slot: BoundTensor, description: MLFeatureDescription?) throws -> MLMultiArray? {
        guard let description, slot.ref.isContiguous, CoreMLSchema.dataType(slot.ref.dtype) != nil else { return nil }
        let array = try wrapOutput(slot)
        return description.isAllowedValue(MLFeatureValue(multiArray: array)) ? array : nil
    }

    /// Puts one output value into its slot. If Core ML used the backing (same object), the bytes
    /// are already there. Otherwise one strided copy: the value's own strides (Neural-Engine
    /// outputs can have padded rows) into the slot's strides; an output whose shape differs from
    /// the slot's (flexible shapes) is written densely if it fits.
    public static func place(_ value: MLMultiArray, backing: MLMultiArray?, slot: BoundTensor) throws -> (tensor: NamedTensor, copied: Bool) {
        if let backing, value === backing { return (slot.named, false) }
        guard CoreMLSchema.dtype(value.dataType) == slot.ref.dtype else {
            throw EngineError(.predictFailed, "output \(slot.name.debugDescription) came back with another data type than its slot (\(slot.ref.dtype.name))")
        }
        let shape = value.shape.map { UInt64(max(0, $0.intValue)) }
        guard value.strides.allSatisfy({ $0.intValue >= 0 }), value.strides.count == shape.count else {
            throw EngineError(.predictFailed, "output \(slot.name.debugDescription) has unusable strides")
        }
        let strides = value.strides.map { UInt64($0.intValue) }
        var dest = slot.ref
        if shape != slot.ref.shape {
            let count = shape.reduce(1, *)
            let bytes = count * slot.ref.dtype.size
            guard shape.count <= ProtocolVersion.maxRank, bytes <= slot.ref.len else {
                throw EngineError(.predictFailed, "output \(slot.name.debugDescription) of shape \(shape) does not fit its slot of \(slot.ref.len) bytes")
            }
            dest = TensorRef(dtype: slot.ref.dtype, shape: shape, strides: TensorRef.rowMajorStrides(shape),
                             region: slot.ref.region, offset: slot.ref.offset, len: bytes)
        }
        let elementSize = Int(slot.ref.dtype.size)
        let destStrides = dest.strides
        let span = try? TensorRef(dtype: slot.ref.dtype, shape: shape, strides: strides, region: 0, offset: 0, len: 0).spanBytes()
        try value.withUnsafeBytes { src in
            guard let span, UInt64(src.count) >= span else {
                throw EngineError(.predictFailed, "output \(slot.name.debugDescription): strides reach past its buffer")
            }
            guard let base = src.baseAddress, span > 0 else { return }
            StridedCopy.copy(shape: shape, elementSize: elementSize, from: base, strides: strides,
                             to: slot.base, strides: destStrides)
        }
        return (NamedTensor(name: slot.name, tensor: dest), true)
    }
}
