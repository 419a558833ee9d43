// MLComputePlan reduction with a plan built from the type-check double (Linux only).
#if os(Linux)
import CoreMLTypeCheckDouble
import XCTest
import HelperTestSupport
@testable import CoreMLEngine
@testable import HelperCore

private struct FakePlan: ComputePlanSource {
    var modelStructure: MLModelStructure
    var usage: [String: MLComputePlan.DeviceUsage]
    var costs: [String: Double]

    func deviceUsage(for operation: MLModelStructure.Program.Operation) -> MLComputePlan.DeviceUsage? { usage[operation.operatorName] }
    func estimatedCost(of operation: MLModelStructure.Program.Operation) -> MLComputePlan.Cost? {
        costs[operation.operatorName].map { MLComputePlan.Cost(doubleWeight: $0) }
    }
}

final class ComputePlanTests: WatchdogTestCase {
    typealias Op = MLModelStructure.Program.Operation
    typealias Block = MLModelStructure.Program.Block

    let ne = MLComputeDevice.neuralEngine(MLNeuralEngineComputeDevice())
    let gpu = MLComputeDevice.gpu(MLGPUComputeDevice())
    let cpu = MLComputeDevice.cpu(MLCPUComputeDevice())

    private func program(_ functions: [String: [Op]]) -> MLModelStructure {
        .program(MLModelStructure.Program(doubleFunctions: functions.mapValues { .init(doubleBlock: Block(doubleOperations: $0)) }))
    }

    func testWeightedNeuralEngineCoverageWalksNestedBlocksAndSkipsUndeterminedOps() {
        let loopBody = Block(doubleOperations: [Op(doubleOperatorName: "softmax")])
        let structure = program([
            "main": [Op(doubleOperatorName: "const"), Op(doubleOperatorName: "conv"),
                     Op(doubleOperatorName: "while_loop", blocks: [loopBody]), Op(doubleOperatorName: "gather")],
            "aux": [Op(doubleOperatorName: "linear")],
        ])
        let plan = FakePlan(modelStructure: structure, usage: [
            "conv": .init(doublePreferred: ne, supported: [cpu, gpu, ne]),
            "while_loop": .init(doublePreferred: cpu, supported: [cpu]),
            "softmax": .init(doublePreferred: gpu, supported: [cpu, gpu]),
            "gather": .init(doublePreferred: cpu, supported: [cpu]),
            "linear": .init(doublePreferred: ne, supported: [ne]),
        ], costs: ["conv": 0.5, "while_loop": 0.05, "softmax": 0.15, "linear": 0.1])
        let r = ComputePlanReduction.reduce(plan, modelId: 3)
        XCTAssertEqual(r.modelId, 3)
        XCTAssertEqual(r.ops.map(\.op), ["conv", "while_loop", "softmax", "gather", "linear"], "main first, nested in order, const skipped")
        XCTAssertEqual(r.ops[0], OpPlan(op: "conv", preferred: .neuralEngine, supported: [.cpu, .gpu, .neuralEngine], cost: 0.5))
        XCTAssertNil(r.ops[3].cost)
        XCTAssertEqual(r.neCoverage!, 0.6 / 0.8, accuracy: 1e-12)
        XCTAssertNil(r.unavailableReason)
    }

    func testNoCostsOrOtherStructuresAreUnknownNeverGuessed() {
        let noCosts = FakePlan(modelStructure: program(["main": [Op(doubleOperatorName: "conv")]]),
                               usage: ["conv": .init(doublePreferred: ne, supported: [ne])], costs: [:])
        let a = ComputePlanReduction.reduce(noCosts, modelId: 1)
        XCTAssertEqual(a.ops.count, 1)
        XCTAssertNil(a.neCoverage)
        XCTAssertNotNil(a.unavailableReason)
        let structures: [MLModelStructure] = [.neuralNetwork(.init(doubleLayers: [])), .pipeline(.init(doubleSubModels: [:])), .unsupported]
        for s in structures {
            let r = ComputePlanReduction.reduce(FakePlan(modelStructure: s, usage: [:], costs: [:]), modelId: 1)
            XCTAssertNil(r.neCoverage)
            XCTAssertEqual(r.ops, [])
            XCTAssertNotNil(r.unavailableReason)
        }
    }

    func testEngineReportsPlanFailuresAsUnknown() throws {
        struct Stale: Error {}
        let model = StandInModel(inputs: [], outputs: []) { i, _ in i }
        let engine = CoreMLEngine(hooks: hooks(model: model, plan: { _, _, _ in throw Stale() }))
        let ctx = RequestContext(requestId: 1, connection: Connection(fd: -1))
        _ = try awaitResult { try await engine.load(Load(modelId: 4, bundlePath: "/m", computeUnits: .all), ctx) }
        let plan = try awaitResult { try await engine.computePlan(modelId: 4, ctx) }
        XCTAssertNil(plan.neCoverage)
        XCTAssertTrue(plan.unavailableReason?.contains("MLComputePlan failed") == true)
    }

    /// Runs an async throwing body to completion from a synchronous test (with a watchdog).
    private func awaitResult<T>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
        let box = Locked<Result<T, Error>?>(nil)
        let done = expectation(description: "async")
        Task {
            let r: Result<T, Error>
            do { r = .success(try await body()) } catch { r = .failure(error) }
            box.withLock { $0 = r }
            done.fulfill()
        }
        wait(for: [done], timeout: 10)
        return try XCTUnwrap(box.get()).get()
    }
}
#endif
