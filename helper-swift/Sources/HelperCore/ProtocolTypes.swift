// Protocol v2 value types shared by several messages (mirrors ipc-schema/src/{enums,tensor,error_code}.rs).
//
// Example:
//   let t = TensorRef.contiguous(.f16, shape: [2, 3], region: 1, offset: 16384)
//   try t.validate(regionSize: 65536)       // strides [3, 1], len 12
//   let code = ErrorCode.timeout             // ErrorCode(rawValue: 6)

public enum ProtocolVersion {
    public static let major: UInt16 = 2
    public static let minor: UInt16 = 1
    /// Request id of messages that answer no request (`Hello`, errors about undecodable frames).
    public static let unsolicited: UInt64 = 0
    /// Largest frame body either side sends or accepts.
    public static let maxFrameLength: UInt32 = 1 << 20
    /// Tensor slot offsets are multiples of this (Apple Silicon page size).
    public static let slotAlign: UInt64 = 16 * 1024
    public static let maxRank = 8
    /// Deepest nesting below the payload value (ipc-schema MAX_DEPTH).
    public static let maxPayloadDepth = 16
}

/// An open error code: unknown values from a newer peer round-trip unchanged.
public struct ErrorCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let badRequest = ErrorCode(rawValue: 1)
    public static let unknownModel = ErrorCode(rawValue: 2)
    public static let compileFailed = ErrorCode(rawValue: 3)
    public static let loadFailed = ErrorCode(rawValue: 4)
    public static let schemaMismatch = ErrorCode(rawValue: 5)
    public static let timeout = ErrorCode(rawValue: 6)
    public static let memoryPressure = ErrorCode(rawValue: 7)
    public static let cancelled = ErrorCode(rawValue: 8)
    public static let unsupported = ErrorCode(rawValue: 9)
    public static let `internal` = ErrorCode(rawValue: 10)
    public static let shmFailed = ErrorCode(rawValue: 11)
    public static let busy = ErrorCode(rawValue: 12)
    public static let unknownMessage = ErrorCode(rawValue: 13)
    public static let predictFailed = ErrorCode(rawValue: 14)
    public static let incompatibleVersion = ErrorCode(rawValue: 15)

    public static let known: [(ErrorCode, String)] = [
        (.badRequest, "bad_request"), (.unknownModel, "unknown_model"), (.compileFailed, "compile_failed"),
        (.loadFailed, "load_failed"), (.schemaMismatch, "schema_mismatch"), (.timeout, "timeout"),
        (.memoryPressure, "memory_pressure"), (.cancelled, "cancelled"), (.unsupported, "unsupported"),
        (.internal, "internal"), (.shmFailed, "shm_failed"), (.busy, "busy"),
        (.unknownMessage, "unknown_message"), (.predictFailed, "predict_failed"),
        (.incompatibleVersion, "incompatible_version"),
    ]

    public var name: String? { Self.known.first { $0.0 == self }?.1 }
    public var description: String { "\(name ?? "unknown")(\(rawValue))" }
}

/// Which processors Core ML may use; wire values equal `MLComputeUnits` raw values.
public enum ComputeUnits: UInt8, WireEnum {
    case cpuOnly = 0, cpuAndGPU = 1, all = 2, cpuAndNeuralEngine = 3
}

/// Kind of compiled Core ML model.
public enum Backend: UInt8, WireEnum {
    case mlProgram = 1, neuralNetwork = 2
}

/// A compute device in a compute plan.
public enum Device: UInt8, WireEnum {
    case cpu = 1, gpu = 2, neuralEngine = 3
}

/// Element type of a tensor.
public enum DType: UInt8, WireEnum {
    case f32 = 1, f16 = 2, bf16 = 3, f64 = 4, i8 = 5, i16 = 6, i32 = 7, i64 = 8, u8 = 9

    public var size: UInt64 {
        switch self {
        case .i8, .u8: return 1
        case .f16, .bf16, .i16: return 2
        case .f32, .i32: return 4
        case .f64, .i64: return 8
        }
    }

    public var name: String {
        switch self {
        case .f32: return "f32"
        case .f16: return "f16"
        case .bf16: return "bf16"
        case .f64: return "f64"
        case .i8: return "i8"
        case .i16: return "i16"
        case .i32: return "i32"
        case .i64: return "i64"
        case .u8: return "u8"
        }
    }

    public init?(name: String) {
        guard let d = DType.allCases.first(where: { $0.name == name }) else { return nil }
        self = d
    }
}

/// Why a tensor ref is invalid (same rules as ipc-schema's `TensorRef::validate`).
public enum TensorRefError: Error, Hashable, Sendable {
    case rankMismatch(shape: Int, strides: Int)
    case rankTooLarge(Int)
    case overflow
    case lengthMismatch(expected: UInt64, actual: UInt64)
    case overlapping
    case misaligned(offset: UInt64, align: UInt64)
    case outOfRegion(offset: UInt64, end: UInt64, regionSize: UInt64)
}

/// A tensor inside a shared-memory region. Strides count elements: element (i0, i1, ...)
/// lives at byte `offset + (i0*strides[0] + i1*strides[1] + ...) * dtype.size`.
public struct TensorRef: Hashable, Sendable, WirePayload {
    public var dtype: DType
    public var shape: [UInt64]
    public var strides: [UInt64]
    public var region: UInt32
    public var offset: UInt64
    public var len: UInt64

    public init(dtype: DType, shape: [UInt64], strides: [UInt64], region: UInt32, offset: UInt64, len: UInt64) {
        self.dtype = dtype
        self.shape = shape
        self.strides = strides
        self.region = region
        self.offset = offset
        self.len = len
    }

    public static func contiguous(_ dtype: DType, shape: [UInt64], region: UInt32, offset: UInt64) -> TensorRef {
        let count = shape.reduce(1, *)
        return TensorRef(dtype: dtype, shape: shape, strides: rowMajorStrides(shape), region: region,
                         offset: offset, len: count * dtype.size)
    }

    public static func rowMajorStrides(_ shape: [UInt64]) -> [UInt64] {
        var s = [UInt64](repeating: 1, count: shape.count)
        var i = shape.count - 2
        while i >= 0 {
            s[i] = s[i + 1].multipliedReportingOverflow(by: max(shape[i + 1], 1)).overflow
                ? UInt64.max : s[i + 1] * max(shape[i + 1], 1)
            i -= 1
        }
        return s
    }

    public var elementCount: UInt64? {
        var n: UInt64 = 1
        for d in shape {
            let (r, o) = n.multipliedReportingOverflow(by: d)
            if o { return nil }
            n = r
        }
        return n
    }

    public var isContiguous: Bool { strides == Self.rowMajorStrides(shape) }

    /// Bytes from element zero to one past the last element.
    public func spanBytes() throws -> UInt64 {
        guard shape.count == strides.count else { throw TensorRefError.rankMismatch(shape: shape.count, strides: strides.count) }
        guard shape.count <= ProtocolVersion.maxRank else { throw TensorRefError.rankTooLarge(shape.count) }
        if shape.contains(0) { return 0 }
        let dims = zip(shape, strides).filter { $0.0 > 1 }.sorted { $0.1 < $1.1 }
        var extent: UInt64 = 1
        for (n, s) in dims {
            guard s >= extent else { throw TensorRefError.overlapping }
            let (m, o1) = s.multipliedReportingOverflow(by: n - 1)
            let (e, o2) = m.addingReportingOverflow(extent)
            guard !o1, !o2 else { throw TensorRefError.overflow }
            extent = e
        }
        let (bytes, o) = extent.multipliedReportingOverflow(by: dtype.size)
        guard !o else { throw TensorRefError.overflow }
        return bytes
    }

    /// Checks rank, `len` against the span, element alignment and the region bounds.
    public func validate(regionSize: UInt64) throws {
        let expected = try spanBytes()
        guard expected == len else { throw TensorRefError.lengthMismatch(expected: expected, actual: len) }
        guard offset % dtype.size == 0 else { throw TensorRefError.misaligned(offset: offset, align: dtype.size) }
        let (end, o) = offset.addingReportingOverflow(len)
        guard !o else { throw TensorRefError.overflow }
        guard end <= regionSize else { throw TensorRefError.outOfRegion(offset: offset, end: end, regionSize: regionSize) }
    }

    public init(wire v: MsgPackValue) throws {
        let f = try WireFields(v)
        dtype = try f.enumValue("dtype")
        shape = try f.u64Array("shape")
        strides = try f.u64Array("strides")
        region = try f.u32("region")
        offset = try f.u64("offset")
        len = try f.u64("len")
    }

    public var wire: MsgPackValue {
        .stringMap([("dtype", dtype.wire), ("shape", shape.wire), ("strides", strides.wire),
                    ("region", .uint(UInt64(region))), ("offset", .uint(offset)), ("len", .uint(len))])
    }
}
