// MLComputePlan reduced to the protocol's ComputePlan: per-operation preferred and supported
// devices with cost weights, and the cost-weighted Neural-Engine coverage (macOS 14.4+).
//
// Example:
//   if #available(macOS 14.4, *) {
//       let plan = try await MLComputePlan.load(contentsOf: bundleURL, configuration: config)
//       let reply = ComputePlanReduction.reduce(plan, modelId: 7)   // reply.neCoverage: 0.0...1.0 or nil
//   }
//
// Coverage = Σ cost of ops whose preferred device is the Neural Engine ÷ Σ cost of ops with a
// cost (docs/protocol.md). Ops for which Core ML determines no device (const ops, weight
// decompression) are skipped; nested blocks (loops, conditionals) are walked in program order.
// Nothing is guessed: no costs means no coverage. MLModelStructure and MLComputeDevice are not
// frozen: every known case is handled (Swift 6 makes a missing one an error), `@unknown default`
// covers cases a newer SDK adds.
#if canImport(CoreML)
@preconcurrency import CoreML
#else
import CoreMLTypeCheckDouble
#endif
import HelperCore

/// What the reduction needs from a compute plan (MLComputePlan, or a test's plan).
@available(macOS 14.4, *)
public protocol ComputePlanSource {
    var modelStructure: MLModelStructure { get }
    func deviceUsage(for operation: MLModelStructure.Program.Operation) -> MLComputePlan.DeviceUsage?
    func estimatedCost(of operation: MLModelStructure.Program.Operation) -> MLComputePlan.Cost?
}

@available(macOS 14.4, *)
extension MLComputePlan: ComputePlanSource {}

public enum ComputePlanReduction {
    public static let needsNewerOS = "MLComputePlan needs macOS 14.4"

    @available(macOS 14.4, *)
    static func device(_ d: MLComputeDevice) -> Device? {
        switch d {
        case .cpu: return .cpu
        case .gpu: return .gpu
        case .neuralEngine: return .neuralEngine
        @unknown default: return nil
        }
    }

    @available(macOS 14.4, *)
    public static func reduce(_ plan: some ComputePlanSource, modelId: UInt64) -> ComputePlan {
        switch plan.modelStructure {
        case .program(let program):
            var ops: [OpPlan] = []
            var total = 0.0, onNE = 0.0, costed = 0
            func walk(_ block: MLModelStructure.Program.Block) {
                for op in block.operations {
                    if let usage = plan.deviceUsage(for: op) {
                        let preferred = device(usage.preferred)
                        let cost = plan.estimatedCost(of: op)?.weight
                        ops.append(OpPlan(op: op.operatorName, preferred: preferred,
                                          supported: usage.supported.compactMap(device), cost: cost))
                        if let cost, cost.isFinite, cost >= 0 {
                            costed += 1
                            total += cost
                            if preferred == .neuralEngine { onNE += cost }
                        }
                    }
                    for nested in op.blocks { walk(nested) }
                }
            }
            // "main" first, then the other functions by name, for a stable order.
            let names = program.functions.keys.sorted { a, b in a == "main" ? b != "main" : (b == "main" ? false : a < b) }
            for name in names { walk(program.functions[name]!.block) }
            if costed > 0 && total > 0 {
                return ComputePlan(modelId: modelId, ops: ops, neCoverage: min(1, onNE / total), unavailableReason: nil)
            }
            return ComputePlan(modelId: modelId, ops: ops, neCoverage: nil,
                               unavailableReason: "Core ML gave no cost weights for this model's operations")
        case .neuralNetwork:
            return ComputePlan(modelId: modelId, ops: [], neCoverage: nil,
                               unavailableReason: "neural-network models: Core ML gives cost weights only for ML Program operations")
        case .pipeline:
            return ComputePlan(modelId: modelId, ops: [], neCoverage: nil, unavailableReason: "pipeline models are not reported")
        case .unsupported:
            return ComputePlan(modelId: modelId, ops: [], neCoverage: nil,
                               unavailableReason: "Core ML reports this model's structure as unsupported")
        @unknown default:
            return ComputePlan(modelId: modelId, ops: [], neCoverage: nil, unavailableReason: "unknown model structure")
        }
    }
}
