// The Core ML engine (macOS 13+; newer APIs behind availability checks). On Linux it compiles
// against CoreMLTypeCheckDouble and is exercised only by unit tests with stand-in models.
//
// Example:
//   let engine = RoutingEngine(primary: CoreMLEngine(), diagnostic: DiagnosticEngine())
//   // Compile{source_path: "/m/net.mlpackage", staging_dir: "/cache/staging-1"} -> "/cache/staging-1/net.mlmodelc"
//   // Load{model_id: 1, bundle_path: "/cache/models/<hash>.mlmodelc", compute_units: .cpuAndNeuralEngine}
//
// Predict: inputs are MLMultiArrays over the shared-memory slots (no copy); each array's
// deallocator drops a lease reference, so `InputsReleased` goes out when Core ML lets go.
// An output slot is offered as an `outputBacking` only if Core ML would accept it: the slot is
// contiguous and the output description's own `isAllowedValue` accepts an array of the slot's
// shape and data type (Core ML fails the whole prediction for a backing that fails that test,
// MLPredictionOptions.h). If Core ML returns the backing itself (checked by identity) nothing is
// copied, else Core ML allocates and one strided copy goes into the slot; `Predicted` counts the
// outputs written in place (`outputs_in_place`). macOS 14+: the async
// prediction, which the dispatcher cancels at the deadline; before 14: the synchronous call in
// an autoreleasepool on the model's own queue (not cancellable; the supervisor's watchdog
// covers it). Core ML errors become protocol error codes.
#if canImport(CoreML)
@preconcurrency import CoreML
#else
import CoreMLTypeCheckDouble
#endif
import Dispatch
import Foundation
import HelperCore

public final class CoreMLEngine: Engine, @unchecked Sendable {
    final class LoadedModel: @unchecked Sendable {
        let model: MLModel
        let url: URL
        let configuration: MLModelConfiguration
        let inputs: [TensorSpec]
        let outputs: [TensorSpec]
        /// Core ML's descriptions of the outputs, whose `isAllowedValue` decides which slots are
        /// offered as backings.
        let outputDescriptions: [String: MLFeatureDescription]
        let syncQueue: DispatchQueue

        init(model: MLModel, url: URL, configuration: MLModelConfiguration, inputs: [TensorSpec], outputs: [TensorSpec],
             outputDescriptions: [String: MLFeatureDescription], id: UInt64) {
            self.model = model
            self.url = url
            self.configuration = configuration
            self.inputs = inputs
            self.outputs = outputs
            self.outputDescriptions = outputDescriptions
            self.syncQueue = DispatchQueue(label: "coreml-helper.model.\(id)")
        }
    }

    public let hooks: CoreMLHooks
    private let models = Locked<[UInt64: LoadedModel]>([:])

    public init(hooks: CoreMLHooks = .system) { self.hooks = hooks }

    public var descriptor: EngineDescriptor {
        EngineDescriptor(name: "coreml", coremlVersion: hooks.coremlVersion, computeUnits: hooks.computeUnits)
    }

    public var modelsLoaded: Int { models.withLock { $0.count } }

    public func hasModel(_ modelId: UInt64) -> Bool { models.withLock { $0[modelId] != nil } }

    private func model(_ id: UInt64) throws -> LoadedModel {
        guard let m = models.withLock({ $0[id] }) else { throw EngineError(.unknownModel, "no model is loaded under id \(id)") }
        return m
    }

    public func compile(_ request: Compile, _ ctx: RequestContext) async throws -> Compiled {
        let start = Sys.monotonicNanos()
        let source = URL(fileURLWithPath: request.sourcePath)
        let staging = URL(fileURLWithPath: request.stagingDir, isDirectory: true)
        let compiled: URL
        do { compiled = try await hooks.compile(source) } catch {
            throw EngineError(.compileFailed, "compiling \(request.sourcePath): \(error)")
        }
        // compileModel writes to a temporary location; the supervisor installs the bundle from
        // the staging directory and never renames it after its first load.
        let dest = staging.appendingPathComponent(source.deletingPathExtension().lastPathComponent + ".mlmodelc")
        let fm = FileManager.default
        do {
            try fm.createDirectory(at: staging, withIntermediateDirectories: true)
            if fm.fileExists(atPath: dest.path) { try fm.removeItem(at: dest) }
            try fm.moveItem(at: compiled, to: dest)
        } catch {
            throw EngineError(.compileFailed, "moving the compiled model into \(request.stagingDir): \(error)")
        }
        let backend: Backend = fm.fileExists(atPath: dest.appendingPathComponent("model.mil").path) ? .mlProgram : .neuralNetwork
        return Compiled(bundlePath: dest.path, backend: backend, compileUs: micros(from: start))
    }

    public func load(_ request: Load, _ ctx: RequestContext) async throws -> Loaded {
        let start = Sys.monotonicNanos()
        let config = MLModelConfiguration()
        config.computeUnits = request.computeUnits.ml
        let url = URL(fileURLWithPath: request.bundlePath)
        let model: MLModel
        do { model = try await hooks.load(url, config) } catch {
            throw EngineError(.loadFailed, "loading \(request.bundlePath): \(error)")
        }
        let (inputs, outputs, outputDescriptions) = try autoreleasepool(invoking: {
            let d = model.modelDescription
            return (try CoreMLSchema.specs(d.inputDescriptionsByName), try CoreMLSchema.specs(d.outputDescriptionsByName),
                    d.outputDescriptionsByName)
        })
        let loaded = LoadedModel(model: model, url: url, configuration: config, inputs: inputs, outputs: outputs,
                                 outputDescriptions: outputDescriptions, id: request.modelId)
        models.withLock { $0[request.modelId] = loaded }
        return Loaded(modelId: request.modelId, inputs: inputs, outputs: outputs, computeUnits: request.computeUnits,
                      loadUs: micros(from: start))
    }

    public func unload(modelId: UInt64, _ ctx: RequestContext) async throws {
        // Predictions in flight keep their own reference to the model.
        guard models.withLock({ $0.removeValue(forKey: modelId) }) != nil else {
            throw EngineError(.unknownModel, "no model is loaded under id \(modelId)")
        }
    }

    public func computePlan(modelId: UInt64, _ ctx: RequestContext) async throws -> ComputePlan {
        let m = try model(modelId)
        do {
            return try await hooks.computePlan(m.url, m.configuration, modelId)
        } catch {
            // Never guessed: a plan that cannot be read is reported as unknown, with the reason.
            return ComputePlan(modelId: modelId, ops: [], neCoverage: nil, unavailableReason: "MLComputePlan failed: \(error)")
        }
    }

    public func predict(_ call: PredictCall, _ ctx: RequestContext) async throws -> PredictResult {
        let m = try model(call.modelId)
        try CoreMLSchema.checkInputs(call.inputs, against: m.inputs)
        try CoreMLSchema.checkOutputs(call.outputs, against: m.outputs)

        let t0 = Sys.monotonicNanos()
        let prepared = try autoreleasepool(invoking: { try Prepared(call, model: m) })
        let t1 = Sys.monotonicNanos()
        let result: MLFeatureProvider
        do {
            result = try await run(m, prepared)
        } catch let e as CancellationError {
            throw e
        } catch let e as EngineError {
            throw e
        } catch {
            throw EngineError(.predictFailed, "\(error)")
        }
        let t2 = Sys.monotonicNanos()
        let placed = try autoreleasepool(invoking: { try prepared.place(result, slots: call.outputs) })
        let t3 = Sys.monotonicNanos()
        return PredictResult(outputs: placed.map(\.tensor), marshalInUs: micros(from: t0, to: t1), predictUs: micros(from: t1, to: t2),
                             marshalOutUs: micros(from: t2, to: t3),
                             outputsInPlace: UInt64(placed.filter { !$0.copied }.count))
    }

    private func run(_ m: LoadedModel, _ p: Prepared) async throws -> MLFeatureProvider {
        if hooks.asyncPrediction, #available(macOS 14.0, *) {
            try Task.checkCancellation()
            return try await m.model.prediction(from: p.provider, options: p.options)
        }
        return try await withCheckedThrowingContinuation { (c: CheckedContinuation<MLFeatureProvider, Error>) in
            m.syncQueue.async {
                c.resume(with: Result { try autoreleasepool(invoking: { try m.model.prediction(from: p.provider, options: p.options) }) })
            }
        }
    }

    /// The inputs wrapped and the output backings offered for one prediction. Image features
    /// (the spec has an `image`) travel as CVPixelBuffers, the others as MLMultiArrays.
    final class Prepared: @unchecked Sendable {
        let provider: MLDictionaryFeatureProvider
        let options: MLPredictionOptions
        let backings: [String: MLMultiArray]
        let imageBackings: [String: CVPixelBuffer]
        let images: [String: ImageSpec]
        /// Image inputs copied into a pixel buffer of Core Video's (the slot could not be wrapped).
        let imageInputsCopied: Int

        init(_ call: PredictCall, model m: LoadedModel) throws {
            let inputImages = Dictionary(m.inputs.compactMap { s in s.image.map { (s.name, ($0, s)) } }, uniquingKeysWith: { a, _ in a })
            images = Dictionary(m.outputs.compactMap { s in s.image.map { (s.name, $0) } }, uniquingKeysWith: { a, _ in a })
            var features: [String: Any] = [:]
            var copied = 0
            for t in call.inputs {
                if let entry = inputImages[t.name] {
                    let (declared, spec) = entry
                    // A flexible feature's image has the size of its ref (checked against the spec).
                    let image: ImageSpec
                    do { image = try declared.sized(for: spec, ref: t.ref) } catch {
                        throw EngineError(.schemaMismatch, "input \(t.name.debugDescription): \(error)")
                    }
                    let wrapped = try CoreMLImages.wrapInput(t, image: image, lease: call.lease)
                    if wrapped.copied { copied += 1 }
                    features[t.name] = MLFeatureValue(pixelBuffer: wrapped.buffer)
                } else {
                    features[t.name] = MLFeatureValue(multiArray: try CoreMLMarshalling.wrapInput(t, lease: call.lease))
                }
            }
            imageInputsCopied = copied
            var backings: [String: MLMultiArray] = [:]
            var imageBackings: [String: CVPixelBuffer] = [:]
            for t in call.outputs {
                let description = m.outputDescriptions[t.name]
                if let image = images[t.name] {
                    if let backing = try CoreMLImages.backing(for: t, image: image, description: description) {
                        imageBackings[t.name] = backing
                    }
                } else if let backing = try CoreMLMarshalling.backing(for: t, description: description) {
                    backings[t.name] = backing
                }
            }
            do { provider = try MLDictionaryFeatureProvider(dictionary: features) } catch {
                throw EngineError(.schemaMismatch, "inputs rejected: \(error)")
            }
            options = MLPredictionOptions()
            var all: [String: Any] = backings
            for (k, v) in imageBackings { all[k] = v }
            options.outputBackings = all
            self.backings = backings
            self.imageBackings = imageBackings
        }

        func place(_ result: MLFeatureProvider, slots: [BoundTensor]) throws -> [(tensor: NamedTensor, copied: Bool)] {
            try slots.map { slot in
                if let image = images[slot.name] {
                    guard let value = result.featureValue(for: slot.name)?.imageBufferValue else {
                        throw EngineError(.predictFailed, "Core ML returned no image for output \(slot.name.debugDescription)")
                    }
                    return try CoreMLImages.place(value, backing: imageBackings[slot.name], slot: slot, image: image)
                }
                guard let value = result.featureValue(for: slot.name)?.multiArrayValue else {
                    throw EngineError(.predictFailed, "Core ML returned no multi-array for output \(slot.name.debugDescription)")
                }
                return try CoreMLMarshalling.place(value, backing: backings[slot.name], slot: slot)
            }
        }
    }
}
