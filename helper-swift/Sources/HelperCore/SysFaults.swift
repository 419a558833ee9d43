// Errno injection for the libc wrappers in Sys.swift (debug and test-flag builds only).
//
// Example (in a test):
//   SysFaults.inject(.recv, .interrupted, times: 2)   // the next two Sys.receive calls fail with EINTR
//   defer { SysFaults.clear() }
//
// Release builds without COREML_DIAG_FAULTS compile none of this; Sys.swift then never checks.
#if DEBUG || COREML_DIAG_FAULTS
public enum SysFaults {
    private struct Pending {
        var errno: Errno
        var remaining: Int
    }

    private static let table = Locked<[SysCall: Pending]>([:])
    private static let armed = Locked<Bool>(false)

    /// Makes the next `times` calls of `call` fail with `errno`.
    public static func inject(_ call: SysCall, _ errno: Errno, times: Int = 1) {
        table.withLock { $0[call] = Pending(errno: errno, remaining: times) }
        armed.withLock { $0 = true }
    }

    /// Removes every pending injection.
    public static func clear() {
        table.withLock { $0.removeAll() }
        armed.withLock { $0 = false }
    }

    /// How many injected failures of `call` are still pending.
    public static func pending(_ call: SysCall) -> Int {
        table.withLock { $0[call]?.remaining ?? 0 }
    }

    /// Called by Sys before each wrapped call: the errno to fail with, if one is pending.
    static func take(_ call: SysCall) -> Errno? {
        // The mutex calls are not injectable (Lock itself uses them).
        if call == .mutex || !armed.get() { return nil }
        return table.withLock { t in
            guard var p = t[call], p.remaining > 0 else { return nil }
            p.remaining -= 1
            t[call] = p.remaining > 0 ? p : nil
            return p.errno
        }
    }
}
#endif
