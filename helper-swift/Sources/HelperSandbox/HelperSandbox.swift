// The helper's own sandbox: on macOS a deny-by-default Seatbelt profile (coreml-helper.sb,
// embedded in the binary) applied with sandbox_init before any model is loaded; on Linux
// nothing (the supervisor sandboxes the helper before exec).
//
// Example:
//   let status = HelperSandbox.apply(paths: SandboxPaths(read: ["/models"], write: ["/cache"]))
//   // macOS: status.applied == true unless sandbox_init failed; Linux: applied == false
import HelperCore

/// Paths the supervisor wants reachable inside the sandbox.
public struct SandboxPaths: Sendable, Hashable {
    public var read: [String] = []
    public var write: [String] = []

    public init(read: [String] = [], write: [String] = []) {
        self.read = read
        self.write = write
    }
}

public enum SandboxProfileError: Error, Hashable, CustomStringConvertible {
    case unusablePath(String)
    case missingPlaceholder

    public var description: String {
        switch self {
        case .unusablePath(let p): return "path \(p.debugDescription) cannot go into a sandbox profile"
        case .missingPlaceholder: return "the profile has no ';; @PARAMETERS@' line"
        }
    }
}

public enum HelperSandbox {
    static let placeholder = ";; @PARAMETERS@"

    /// The profile file as shipped in the package.
    public static var profileTemplate: String { String(decoding: PackageResources.coreml_helper_sb, as: UTF8.self) }

    /// An SBPL string literal. Paths with control characters are refused rather than escaped.
    public static func quote(_ path: String) throws -> String {
        guard !path.isEmpty, path.hasPrefix("/"), !path.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f })
        else { throw SandboxProfileError.unusablePath(path) }
        var out = "\""
        for c in path {
            if c == "\\" || c == "\"" { out.append("\\") }
            out.append(c)
        }
        return out + "\""
    }

    /// Resolves symlinks (`/var` is `/private/var` on macOS: SBPL matches resolved paths).
    /// A path that does not exist yet is kept as given.
    static func resolve(_ path: String) -> String { Sys.realPath(path) ?? path }

    /// The proper ancestors of an absolute path, outermost first ("/a/b/c" -> "/a", "/a/b").
    static func ancestors(_ path: String) -> [String] {
        let parts = path.split(separator: "/").map(String.init)
        guard parts.count > 1 else { return [] }
        return (1..<parts.count).map { "/" + parts[0..<$0].joined(separator: "/") }
    }

    /// The profile with the per-run rules in place of the placeholder line.
    public static func render(template: String = profileTemplate, paths: SandboxPaths,
                              tempDirs: [String], cacheDir: String?) throws -> String {
        var rules: [String] = []
        var walked = Set<String>()
        for p in paths.read + paths.write + tempDirs + (cacheDir.map { [$0] } ?? []) {
            for a in ancestors(resolve(p)) where walked.insert(a).inserted {
                rules.append("(allow file-read-metadata (literal \(try quote(a))))")
            }
        }
        for p in paths.read { rules.append("(allow file-read* (subpath \(try quote(resolve(p)))))") }
        for p in paths.write + tempDirs {
            rules.append("(allow file-read* file-write* (subpath \(try quote(resolve(p)))))")
        }
        if let cacheDir {
            rules.append("(allow file-read* file-write* file-issue-extension (subpath \(try quote(resolve(cacheDir)))))")
        }
        let lines = template.split(separator: "\n", omittingEmptySubsequences: false)
        guard let i = lines.firstIndex(where: { $0 == placeholder }) else { throw SandboxProfileError.missingPlaceholder }
        var out = lines.map(String.init)
        out.replaceSubrange(i...i, with: rules)
        return out.joined(separator: "\n")
    }

    /// Whether this OS expects the helper to sandbox itself (macOS: the supervisor
    /// cannot sandbox a process it spawns there; Linux: it does, before exec).
    public static var selfSandboxRequired: Bool {
        #if os(macOS)
        return true
        #else
        return false
        #endif
    }

    /// Whether the helper may serve with this sandbox status: not when a self-sandbox
    /// was required (and not switched off with --no-sandbox) but did not go on. The
    /// helper then exits before Hello instead of serving unsandboxed (fail closed).
    public static func mayServe(_ status: SandboxStatus, required: Bool) -> Bool {
        status.applied || !required
    }

    /// Applies the sandbox for this process (macOS) or reports that there is none (elsewhere).
    public static func apply(paths: SandboxPaths) -> SandboxStatus {
        #if os(macOS)
        var temp: [String] = []
        if let t = Sys.darwinUserTempDir() { temp.append(t) }
        if let t = Sys.env("TMPDIR"), !t.isEmpty { temp.append(t) }
        let cache = Sys.env("HOME").map { $0 + "/Library/Caches/coreml-helper" }
        let profile: String
        do {
            profile = try render(paths: paths, tempDirs: temp, cacheDir: cache)
        } catch {
            return SandboxStatus(applied: false, detail: "sandbox not applied: \(error)")
        }
        if let err = Sys.sandboxInit(profile: profile) {
            return SandboxStatus(applied: false, detail: "sandbox_init failed: \(err)")
        }
        return SandboxStatus(applied: true, detail: "Seatbelt deny-default profile coreml-helper.sb; read: \(paths.read), "
            + "read-write: \(paths.write + temp), cache: \(cache ?? "none")")
        #else
        return SandboxStatus(applied: false,
                             detail: "no self-sandbox on this OS; the supervisor sandboxes the helper before exec")
        #endif
    }
}
