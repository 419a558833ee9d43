// Hosts two engines in one helper: `diag:` URIs go to the diagnostic engine, everything else
// to the primary (Core ML) engine; later requests follow the model id.
//
// Example:
//   let engine = RoutingEngine(primary: coreML, diagnostic: DiagnosticEngine())
//   // Load{bundle_path: "diag:echo"} -> diagnostic; Load{bundle_path: "/c/m.mlmodelc"} -> Core ML
public final class RoutingEngine: Engine, @unchecked Sendable {
    public let primary: Engine
    public let diagnostic: Engine
    private let owners = Locked<[UInt64: Bool]>([:])  // model id -> is diagnostic

    public init(primary: Engine, diagnostic: Engine) {
        self.primary = primary
        self.diagnostic = diagnostic
    }

    public static func isDiagnostic(_ path: String) -> Bool { path.hasPrefix("diag:") }

    public var descriptor: EngineDescriptor { primary.descriptor }

    public var modelsLoaded: Int { primary.modelsLoaded + diagnostic.modelsLoaded }

    public func hasModel(_ modelId: UInt64) -> Bool { primary.hasModel(modelId) || diagnostic.hasModel(modelId) }

    private func engine(for modelId: UInt64) -> Engine {
        owners.withLock { $0[modelId] } == true ? diagnostic : primary
    }

    public func compile(_ request: Compile, _ ctx: RequestContext) async throws -> Compiled {
        try await (Self.isDiagnostic(request.sourcePath) ? diagnostic : primary).compile(request, ctx)
    }

    public func load(_ request: Load, _ ctx: RequestContext) async throws -> Loaded {
        let diag = Self.isDiagnostic(request.bundlePath)
        // A model id names one model: loading it again replaces it, in whichever engine held it.
        if let previous = owners.withLock({ $0[request.modelId] }), previous != diag {
            try? await (previous ? diagnostic : primary).unload(modelId: request.modelId, ctx)
        }
        let loaded = try await (diag ? diagnostic : primary).load(request, ctx)
        owners.withLock { $0[request.modelId] = diag }
        return loaded
    }

    public func unload(modelId: UInt64, _ ctx: RequestContext) async throws {
        try await engine(for: modelId).unload(modelId: modelId, ctx)
        owners.withLock { $0[modelId] = nil }
    }

    public func computePlan(modelId: UInt64, _ ctx: RequestContext) async throws -> ComputePlan {
        try await engine(for: modelId).computePlan(modelId: modelId, ctx)
    }

    public func predict(_ call: PredictCall, _ ctx: RequestContext) async throws -> PredictResult {
        try await engine(for: call.modelId).predict(call, ctx)
    }

    public func predictInline(_ call: PredictCall, _ ctx: RequestContext) throws -> PredictResult? {
        try engine(for: call.modelId).predictInline(call, ctx)
    }
}
