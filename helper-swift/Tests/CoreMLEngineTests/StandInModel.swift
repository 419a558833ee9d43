// Linux only: a stand-in for a loaded Core ML model, built on the type-check double, so the
// Core ML engine's real code paths (marshalling, backings, release, deadlines) run in tests.
#if os(Linux)
import CoreMLTypeCheckDouble
import CoreMLEngine
import Foundation
import HelperCore

/// Feature descriptions for tests.
func feature(_ name: String, _ type: MLMultiArrayDataType, _ shape: [Int], optional: Bool = false,
             constraint: MLMultiArrayShapeConstraint = MLMultiArrayShapeConstraint(doubleType: .unspecified)) -> MLFeatureDescription {
    MLFeatureDescription(doubleName: name, type: .multiArray, isOptional: optional,
                         multiArrayConstraint: MLMultiArrayConstraint(doubleShape: shape.map { NSNumber(value: $0) },
                                                                      dataType: type, shapeConstraint: constraint))
}

/// A model whose prediction is a closure; it records which entry point Core ML's caller used
/// and can keep inputs alive after returning, as Core ML may.
final class StandInModel: MLModel, @unchecked Sendable {
    typealias Behaviour = @Sendable (MLFeatureProvider, MLPredictionOptions) async throws -> MLFeatureProvider
    let description_: MLModelDescription
    let behaviour: Behaviour
    let calls = Locked<[String]>([])
    let stash = Locked<[MLMultiArray]>([])
    /// Addresses of the input arrays' data (not the arrays: holding them would retain the slots).
    let seenInputs = Locked<[UnsafeMutableRawPointer]>([])

    init(inputs: [MLFeatureDescription], outputs: [MLFeatureDescription], behaviour: @escaping Behaviour) {
        description_ = MLModelDescription(doubleInputs: inputs, outputs: outputs)
        self.behaviour = behaviour
        super.init()
    }

    override var modelDescription: MLModelDescription { description_ }

    override func prediction(from input: MLFeatureProvider, options: MLPredictionOptions) throws -> MLFeatureProvider {
        calls.withLock { $0.append("sync") }
        record(input)
        // The synchronous entry point runs the behaviour to completion on this thread.
        let box = Locked<Result<MLFeatureProvider, Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        let b = behaviour
        let i = input, o = options
        Task {
            let r: Result<MLFeatureProvider, Error>
            do { r = .success(try await b(i, o)) } catch { r = .failure(error) }
            box.withLock { $0 = r }
            done.signal()
        }
        done.wait()
        return try box.get()!.get()
    }

    override func prediction(from input: MLFeatureProvider, options: MLPredictionOptions) async throws -> MLFeatureProvider {
        calls.withLock { $0.append("async") }
        record(input)
        return try await behaviour(input, options)
    }

    private func record(_ input: MLFeatureProvider) {
        for n in input.featureNames.sorted() {
            if let a = input.featureValue(for: n)?.multiArrayValue { seenInputs.withLock { $0.append(a.dataPointer) } }
        }
    }

    /// Keeps the inputs referenced after the prediction returns (Core ML can, for about a second).
    func holdInputs(_ input: MLFeatureProvider) {
        for n in input.featureNames {
            if let a = input.featureValue(for: n)?.multiArrayValue { stash.withLock { $0.append(a) } }
        }
    }

    func dropHeldInputs() { stash.withLock { $0.removeAll() } }
}

/// Test hooks: a given model for every load, a compile that fakes an .mlmodelc.
func hooks(model: MLModel, asyncPrediction: Bool = true,
           plan: @escaping (URL, MLModelConfiguration, UInt64) async throws -> ComputePlan = { _, _, id in
               ComputePlan(modelId: id, ops: [], neCoverage: nil, unavailableReason: "test") }) -> CoreMLHooks {
    let m = model
    return CoreMLHooks(compile: { _ in throw CoreMLTypeCheckDoubleError.notCoreML("compile") },
                       load: { _, _ in m }, computePlan: plan, asyncPrediction: asyncPrediction,
                       coremlVersion: "test", computeUnits: [.cpuOnly])
}
#endif
