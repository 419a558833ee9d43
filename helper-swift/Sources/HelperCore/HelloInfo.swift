// The helper's `Hello`: protocol version, helper version, OS, chip, engine and sandbox.
//
// Example:
//   let hello = HelloInfo.make(engine: engine.descriptor, sandbox: SandboxStatus(applied: false, detail: "none on Linux"))
//   // hello.os == "Linux", hello.chip == "x86_64", hello.protocolMajor == 2

/// Whether the helper sandboxed itself before serving, and what the sandbox covers.
public struct SandboxStatus: Sendable, Hashable {
    public var applied: Bool
    public var detail: String

    public init(applied: Bool, detail: String) {
        self.applied = applied
        self.detail = detail
    }
}

public enum HelloInfo {
    /// The helper program version (kept in step with the workspace version).
    public static let helperVersion = "0.1.0"

    public static func make(engine: EngineDescriptor, sandbox: SandboxStatus) -> Hello {
        let u = Sys.systemInfo()
        #if os(macOS)
        let os = "macOS"
        let product = Sys.sysctlString("kern.osproductversion") ?? u.release
        let build = Sys.sysctlString("kern.osversion") ?? u.version
        let osBuild = "\(product) (\(build))"
        let chip = Sys.sysctlString("machdep.cpu.brand_string") ?? u.machine
        #else
        let os = u.sysname
        let osBuild = u.release
        let chip = u.machine
        #endif
        return Hello(protocolMajor: ProtocolVersion.major, protocolMinor: ProtocolVersion.minor,
                     helperVersion: helperVersion, os: os, osBuild: osBuild, chip: chip,
                     coremlVersion: engine.coremlVersion, computeUnits: engine.computeUnits,
                     sandboxed: sandbox.applied, sandboxDetail: sandbox.detail, engine: engine.name,
                     pid: UInt32(bitPattern: Sys.pid()))
    }
}
