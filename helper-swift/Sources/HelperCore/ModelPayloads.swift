// Payloads about loaded models: schema, compute plan, prediction, statistics.
//
// Example:
//   let spec = TensorSpec(name: "x", dtype: .f32, shape: [1, 4])
//   let loaded = Loaded(modelId: 1, inputs: [spec], outputs: [spec], computeUnits: .all, loadUs: 10)

/// One input or output of a model.
public struct TensorSpec: WirePayload, Hashable {
    public var name: String
    public var dtype: DType
    public var shape: [UInt64]
    public var enumeratedShapes: [[UInt64]]
    /// Per-dimension [min, max]; max = UInt64.max when unbounded.
    public var shapeRanges: [[UInt64]]
    public var optional: Bool
    /// Since 2.1: the feature is an image (dtype and shape are then its pixels'). Written only
    /// when present, so a multi-array spec has the same bytes in 2.0 and 2.1.
    public var image: ImageSpec?

    public init(name: String, dtype: DType, shape: [UInt64], enumeratedShapes: [[UInt64]] = [],
                shapeRanges: [[UInt64]] = [], optional: Bool = false) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.enumeratedShapes = enumeratedShapes
        self.shapeRanges = shapeRanges
        self.optional = optional
    }

    public init(wire v: MsgPackValue) throws {
        let f = try WireFields(v)
        name = try f.string("name")
        dtype = try f.enumValue("dtype")
        shape = try f.u64Array("shape")
        enumeratedShapes = try f.array("enumerated_shapes") { e in
            guard case .array(let a) = e else { throw WireError("enumerated_shapes", "expected an array") }
            return try a.map { try WireFields.u64($0, "enumerated_shapes") }
        }
        shapeRanges = try f.array("shape_ranges") { e in
            guard case .array(let a) = e, a.count == 2 else { throw WireError("shape_ranges", "expected [min, max]") }
            return try a.map { try WireFields.u64($0, "shape_ranges") }
        }
        optional = try f.bool("optional")
        image = try f.optional("image").map { v in
            do { return try ImageSpec(wire: v) } catch let e as WireError { throw WireError("image.\(e.field)", e.reason) }
        }
    }

    public var wire: MsgPackValue {
        var fields: [(String, MsgPackValue)] = [
            ("name", .string(name)), ("dtype", dtype.wire), ("shape", shape.wire),
            ("enumerated_shapes", .array(enumeratedShapes.map { $0.wire })),
            ("shape_ranges", .array(shapeRanges.map { $0.wire })), ("optional", .bool(optional)),
        ]
        if let image { fields.append(("image", image.wire)) }
        return .stringMap(fields)
    }
}

public struct Loaded: WirePayload, Hashable {
    public var modelId: UInt64
    public var inputs: [TensorSpec]
    public var outputs: [TensorSpec]
    public var computeUnits: ComputeUnits
    public var loadUs: UInt64

    public init(modelId: UInt64, inputs: [TensorSpec], outputs: [TensorSpec], computeUnits: ComputeUnits, loadUs: UInt64) {
        self.modelId = modelId
        self.inputs = inputs
        self.outputs = outputs
        self.computeUnits = computeUnits
        self.loadUs = loadUs
    }

    public init(wire v: MsgPackValue) throws {
        let f = try WireFields(v)
        modelId = try f.u64("model_id")
        inputs = try f.array("inputs") { try TensorSpec(wire: $0) }
        outputs = try f.array("outputs") { try TensorSpec(wire: $0) }
        computeUnits = try f.enumValue("compute_units")
        loadUs = try f.u64("load_us")
    }

    public var wire: MsgPackValue {
        .stringMap([("model_id", .uint(modelId)), ("inputs", inputs.wire), ("outputs", outputs.wire),
                    ("compute_units", computeUnits.wire), ("load_us", .uint(loadUs))])
    }
}

/// Device plan of one operation.
public struct OpPlan: WirePayload, Hashable {
    public var op: String
    public var preferred: Device?
    public var supported: [Device]
    public var cost: Double?

    public init(op: String, preferred: Device?, supported: [Device], cost: Double?) {
        self.op = op
        self.preferred = preferred
        self.supported = supported
        self.cost = cost
    }

    public init(wire v: MsgPackValue) throws {
        let f = try WireFields(v)
        op = try f.string("operator")
        preferred = try f.optionalEnum("preferred")
        supported = try f.array("supported") { try WireFields.enumValue($0, "supported") }
        cost = try f.optionalF64("cost")
    }

    public var wire: MsgPackValue {
        .stringMap([("operator", .string(op)), ("preferred", preferred?.wire ?? .nil),
                    ("supported", .array(supported.map { $0.wire })), ("cost", cost.wire)])
    }
}

public struct ComputePlan: WirePayload, Hashable {
    public var modelId: UInt64
    public var ops: [OpPlan]
    public var neCoverage: Double?
    public var unavailableReason: String?

    public init(modelId: UInt64, ops: [OpPlan], neCoverage: Double?, unavailableReason: String?) {
        self.modelId = modelId
        self.ops = ops
        self.neCoverage = neCoverage
        self.unavailableReason = unavailableReason
    }

    public init(wire v: MsgPackValue) throws {
        let f = try WireFields(v)
        modelId = try f.u64("model_id")
        ops = try f.array("ops") { try OpPlan(wire: $0) }
        neCoverage = try f.optionalF64("ne_coverage")
        unavailableReason = try f.optionalString("unavailable_reason")
    }

    public var wire: MsgPackValue {
        .stringMap([("model_id", .uint(modelId)), ("ops", ops.wire), ("ne_coverage", neCoverage.wire),
                    ("unavailable_reason", unavailableReason.wire)])
    }
}

/// A tensor ref with its feature name.
public struct NamedTensor: WirePayload, Hashable {
    public var name: String
    public var tensor: TensorRef
    public init(name: String, tensor: TensorRef) {
        self.name = name
        self.tensor = tensor
    }

    public init(wire v: MsgPackValue) throws {
        let f = try WireFields(v)
        name = try f.string("name")
        tensor = try f.payload("tensor")
    }

    public var wire: MsgPackValue { .stringMap([("name", .string(name)), ("tensor", tensor.wire)]) }
}

public struct Predict: WirePayload, Hashable {
    public var modelId: UInt64
    public var inputs: [NamedTensor]
    public var outputs: [NamedTensor]
    /// Budget in microseconds from receipt.
    public var deadlineUs: UInt64

    public init(modelId: UInt64, inputs: [NamedTensor], outputs: [NamedTensor], deadlineUs: UInt64) {
        self.modelId = modelId
        self.inputs = inputs
        self.outputs = outputs
        self.deadlineUs = deadlineUs
    }

    public init(wire v: MsgPackValue) throws {
        let f = try WireFields(v)
        modelId = try f.u64("model_id")
        inputs = try f.array("inputs") { try NamedTensor(wire: $0) }
        outputs = try f.array("outputs") { try NamedTensor(wire: $0) }
        deadlineUs = try f.u64("deadline_us")
    }

    public var wire: MsgPackValue {
        .stringMap([("model_id", .uint(modelId)), ("inputs", inputs.wire), ("outputs", outputs.wire),
                    ("deadline_us", .uint(deadlineUs))])
    }
}

public struct Predicted: WirePayload, Hashable {
    public var modelId: UInt64
    public var outputs: [NamedTensor]
    public var inputsRetained: Bool
    public var marshalInUs: UInt64
    public var predictUs: UInt64
    public var marshalOutUs: UInt64
    /// Helper extension, not yet in protocol.md's table: outputs Core ML wrote straight into their
    /// slots. Written only when known (decoders ignore unknown keys), so a `Predicted` without it
    /// encodes exactly as protocol 1.0 says.
    public var outputsInPlace: UInt64?

    public init(modelId: UInt64, outputs: [NamedTensor], inputsRetained: Bool, marshalInUs: UInt64,
                predictUs: UInt64, marshalOutUs: UInt64, outputsInPlace: UInt64? = nil) {
        self.outputsInPlace = outputsInPlace
        self.modelId = modelId
        self.outputs = outputs
        self.inputsRetained = inputsRetained
        self.marshalInUs = marshalInUs
        self.predictUs = predictUs
        self.marshalOutUs = marshalOutUs
    }

    public init(wire v: MsgPackValue) throws {
        let f = try WireFields(v)
        modelId = try f.u64("model_id")
        outputs = try f.array("outputs") { try NamedTensor(wire: $0) }
        inputsRetained = try f.bool("inputs_retained")
        marshalInUs = try f.u64("marshal_in_us")
        predictUs = try f.u64("predict_us")
        marshalOutUs = try f.u64("marshal_out_us")
        outputsInPlace = try f.optional("outputs_in_place").map { try WireFields.u64($0, "outputs_in_place") }
    }

    public var wire: MsgPackValue {
        var fields: [(String, MsgPackValue)] = [
            ("model_id", .uint(modelId)), ("outputs", outputs.wire), ("inputs_retained", .bool(inputsRetained)),
            ("marshal_in_us", .uint(marshalInUs)), ("predict_us", .uint(predictUs)), ("marshal_out_us", .uint(marshalOutUs)),
        ]
        if let outputsInPlace { fields.append(("outputs_in_place", .uint(outputsInPlace))) }
        return .stringMap(fields)
    }
}

public struct Stats: WirePayload, Hashable {
    public var rssBytes: UInt64 = 0
    public var peakRssBytes: UInt64 = 0
    public var requests: UInt64 = 0
    public var errors: UInt64 = 0
    public var predictions: UInt64 = 0
    public var modelsLoaded: UInt64 = 0
    public var regionsAttached: UInt64 = 0

    public init() {}

    public init(wire v: MsgPackValue) throws {
        let f = try WireFields(v)
        rssBytes = try f.u64("rss_bytes")
        peakRssBytes = try f.u64("peak_rss_bytes")
        requests = try f.u64("requests")
        errors = try f.u64("errors")
        predictions = try f.u64("predictions")
        modelsLoaded = try f.u64("models_loaded")
        regionsAttached = try f.u64("regions_attached")
    }

    public var wire: MsgPackValue {
        .stringMap([("rss_bytes", .uint(rssBytes)), ("peak_rss_bytes", .uint(peakRssBytes)),
                    ("requests", .uint(requests)), ("errors", .uint(errors)), ("predictions", .uint(predictions)),
                    ("models_loaded", .uint(modelsLoaded)), ("regions_attached", .uint(regionsAttached))])
    }
}
