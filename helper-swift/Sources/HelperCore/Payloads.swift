// Payload maps of every v1 message (mirrors ipc-schema/src/payload.rs; key order is wire order).
//
// Example:
//   let p = Predict(wire: value)                 // throws WireError on a schema mismatch
//   let reply = Pong(nonce: ping.nonce).wire     // .map([("nonce", .uint(..))])

public struct Hello: WirePayload, Hashable {
    public var protocolMajor: UInt16
    public var protocolMinor: UInt16
    public var helperVersion: String
    public var os: String
    public var osBuild: String
    public var chip: String
    public var coremlVersion: String?
    public var computeUnits: [ComputeUnits]
    public var sandboxed: Bool
    public var sandboxDetail: String?
    public var engine: String
    public var pid: UInt32

    public init(protocolMajor: UInt16, protocolMinor: UInt16, helperVersion: String, os: String, osBuild: String,
                chip: String, coremlVersion: String?, computeUnits: [ComputeUnits], sandboxed: Bool,
                sandboxDetail: String?, engine: String, pid: UInt32) {
        self.protocolMajor = protocolMajor
        self.protocolMinor = protocolMinor
        self.helperVersion = helperVersion
        self.os = os
        self.osBuild = osBuild
        self.chip = chip
        self.coremlVersion = coremlVersion
        self.computeUnits = computeUnits
        self.sandboxed = sandboxed
        self.sandboxDetail = sandboxDetail
        self.engine = engine
        self.pid = pid
    }

    public init(wire v: MsgPackValue) throws {
        let f = try WireFields(v)
        protocolMajor = try f.u16("protocol_major")
        protocolMinor = try f.u16("protocol_minor")
        helperVersion = try f.string("helper_version")
        os = try f.string("os")
        osBuild = try f.string("os_build")
        chip = try f.string("chip")
        coremlVersion = try f.optionalString("coreml_version")
        computeUnits = try f.array("compute_units") { try WireFields.enumValue($0, "compute_units") }
        sandboxed = try f.bool("sandboxed")
        sandboxDetail = try f.optionalString("sandbox_detail")
        engine = try f.string("engine")
        pid = try f.u32("pid")
    }

    public var wire: MsgPackValue {
        .stringMap([
            ("protocol_major", .uint(UInt64(protocolMajor))), ("protocol_minor", .uint(UInt64(protocolMinor))),
            ("helper_version", .string(helperVersion)), ("os", .string(os)), ("os_build", .string(osBuild)),
            ("chip", .string(chip)), ("coreml_version", coremlVersion.wire),
            ("compute_units", .array(computeUnits.map { $0.wire })), ("sandboxed", .bool(sandboxed)),
            ("sandbox_detail", sandboxDetail.wire), ("engine", .string(engine)), ("pid", .uint(UInt64(pid))),
        ])
    }
}

/// Ping and Pong carry the same single field.
public struct Ping: WirePayload, Hashable {
    public var nonce: UInt64
    public init(nonce: UInt64) { self.nonce = nonce }
    public init(wire v: MsgPackValue) throws { nonce = try WireFields(v).u64("nonce") }
    public var wire: MsgPackValue { .stringMap([("nonce", .uint(nonce))]) }
}

public typealias Pong = Ping

/// Shutdown, ShutdownAck and GetStats carry nothing (an empty map).
public struct Empty: WirePayload, Hashable {
    public init() {}
    public init(wire v: MsgPackValue) throws { _ = try WireFields(v) }
    public var wire: MsgPackValue { .map([]) }
}

public struct ErrorReply: WirePayload, Hashable {
    public var code: ErrorCode
    public var message: String
    public init(code: ErrorCode, message: String) {
        self.code = code
        self.message = message
    }

    public init(wire v: MsgPackValue) throws {
        let f = try WireFields(v)
        code = ErrorCode(rawValue: try f.u32("code"))
        message = try f.string("message")
    }

    public var wire: MsgPackValue { .stringMap([("code", .uint(UInt64(code.rawValue))), ("message", .string(message))]) }
}

/// Sent by the supervisor right after a compatible Hello (request id 0, not answered).
public struct Welcome: WirePayload, Hashable {
    public var protocolMajor: UInt16
    public var protocolMinor: UInt16
    public var supervisorVersion: String
    public init(protocolMajor: UInt16, protocolMinor: UInt16, supervisorVersion: String) {
        self.protocolMajor = protocolMajor
        self.protocolMinor = protocolMinor
        self.supervisorVersion = supervisorVersion
    }

    public init(wire v: MsgPackValue) throws {
        let f = try WireFields(v)
        protocolMajor = try f.u16("protocol_major")
        protocolMinor = try f.u16("protocol_minor")
        supervisorVersion = try f.string("supervisor_version")
    }

    public var wire: MsgPackValue {
        .stringMap([("protocol_major", .uint(UInt64(protocolMajor))), ("protocol_minor", .uint(UInt64(protocolMinor))),
                    ("supervisor_version", .string(supervisorVersion))])
    }
}

/// The region itself is not in the payload: its descriptor comes with the frame's first byte.
public struct AttachRegion: WirePayload, Hashable {
    public var region: UInt32
    public var size: UInt64
    public init(region: UInt32, size: UInt64) {
        self.region = region
        self.size = size
    }

    public init(wire v: MsgPackValue) throws {
        let f = try WireFields(v)
        region = try f.u32("region")
        size = try f.u64("size")
    }

    public var wire: MsgPackValue {
        .stringMap([("region", .uint(UInt64(region))), ("size", .uint(size))])
    }
}

extension WireFields {
    /// An optional u64 (`nil` when absent or `nil`).
    func optionalU64(_ k: String) throws -> UInt64? {
        guard let v = optional(k) else { return nil }
        return try Self.u64(v, k)
    }
}

private func optionalU64Wire(_ v: UInt64?) -> MsgPackValue { v.map { .uint($0) } ?? .nil }

/// RegionAttached, DetachRegion and RegionDetached carry a region id.
public struct RegionId: WirePayload, Hashable {
    public var region: UInt32
    public init(region: UInt32) { self.region = region }
    public init(wire v: MsgPackValue) throws { region = try WireFields(v).u32("region") }
    public var wire: MsgPackValue { .stringMap([("region", .uint(UInt64(region)))]) }
}

/// Unload, Unloaded, GetComputePlan and InputsReleased carry a model id.
public struct ModelId: WirePayload, Hashable {
    public var modelId: UInt64
    public init(modelId: UInt64) { self.modelId = modelId }
    public init(wire v: MsgPackValue) throws { modelId = try WireFields(v).u64("model_id") }
    public var wire: MsgPackValue { .stringMap([("model_id", .uint(modelId))]) }
}

public struct Compile: WirePayload, Hashable {
    public var sourcePath: String
    public var stagingDir: String
    public var computeUnits: ComputeUnits
    /// Time budget in µs from receipt; nil: no deadline of the helper's own.
    public var deadlineUs: UInt64?
    public init(sourcePath: String, stagingDir: String, computeUnits: ComputeUnits, deadlineUs: UInt64? = nil) {
        self.sourcePath = sourcePath
        self.stagingDir = stagingDir
        self.computeUnits = computeUnits
        self.deadlineUs = deadlineUs
    }

    public init(wire v: MsgPackValue) throws {
        let f = try WireFields(v)
        sourcePath = try f.string("source_path")
        stagingDir = try f.string("staging_dir")
        computeUnits = try f.enumValue("compute_units")
        deadlineUs = try f.optionalU64("deadline_us")
    }

    public var wire: MsgPackValue {
        .stringMap([("source_path", .string(sourcePath)), ("staging_dir", .string(stagingDir)),
                    ("compute_units", computeUnits.wire), ("deadline_us", optionalU64Wire(deadlineUs))])
    }
}

public struct Compiled: WirePayload, Hashable {
    public var bundlePath: String
    public var backend: Backend
    public var compileUs: UInt64
    public init(bundlePath: String, backend: Backend, compileUs: UInt64) {
        self.bundlePath = bundlePath
        self.backend = backend
        self.compileUs = compileUs
    }

    public init(wire v: MsgPackValue) throws {
        let f = try WireFields(v)
        bundlePath = try f.string("bundle_path")
        backend = try f.enumValue("backend")
        compileUs = try f.u64("compile_us")
    }

    public var wire: MsgPackValue {
        .stringMap([("bundle_path", .string(bundlePath)), ("backend", backend.wire), ("compile_us", .uint(compileUs))])
    }
}

public struct Load: WirePayload, Hashable {
    public var modelId: UInt64
    public var bundlePath: String
    public var computeUnits: ComputeUnits
    /// Time budget in µs from receipt; nil: no deadline of the helper's own.
    public var deadlineUs: UInt64?
    public init(modelId: UInt64, bundlePath: String, computeUnits: ComputeUnits, deadlineUs: UInt64? = nil) {
        self.modelId = modelId
        self.bundlePath = bundlePath
        self.computeUnits = computeUnits
        self.deadlineUs = deadlineUs
    }

    public init(wire v: MsgPackValue) throws {
        let f = try WireFields(v)
        modelId = try f.u64("model_id")
        bundlePath = try f.string("bundle_path")
        computeUnits = try f.enumValue("compute_units")
        deadlineUs = try f.optionalU64("deadline_us")
    }

    public var wire: MsgPackValue {
        .stringMap([("model_id", .uint(modelId)), ("bundle_path", .string(bundlePath)),
                    ("compute_units", computeUnits.wire), ("deadline_us", optionalU64Wire(deadlineUs))])
    }
}
