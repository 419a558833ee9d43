// The helper must not outlive the app that started it, even while a Core ML call
// blocks every request thread (a first Neural-Engine compile can take minutes).
//
// Linux: nothing to do here. The supervisor sets PR_SET_PDEATHSIG(SIGKILL) between fork
// and exec (supervisor/src/sys.rs), tested by supervisor/tests/helper_dies_with_app.rs.
// macOS has no parent-death signal: a Dispatch process source (kqueue EVFILT_PROC,
// NOTE_EXIT) on the parent's pid exits the helper when the parent exits.
// NEVER COMPILED OR RUN ON macOS (see docs/macos.md): the Darwin branch below is written
// against the documented Dispatch API only.
//
// Example (main.swift):
//   let parentWatch = ParentWatch.start()   // keep the returned token alive

#if canImport(Darwin)
import Darwin
import Dispatch

public enum ParentWatch {
    /// Starts watching the parent; returns the source, which must stay referenced.
    public static func start() -> AnyObject? {
        let parent = Sys.parentPID()
        // Already orphaned (reparented to launchd): the app is gone.
        if parent <= 1 { Sys.exitImmediately(0) }
        let source = DispatchSource.makeProcessSource(identifier: parent, eventMask: .exit, queue: .global())
        source.setEventHandler {
            Sys.log("coreml-helper: parent \(parent) exited; exiting")
            Sys.exitImmediately(0)
        }
        source.resume()
        // The parent may have exited before the source was armed.
        if Sys.parentPID() != parent { Sys.exitImmediately(0) }
        return source as AnyObject
    }
}
#else
public enum ParentWatch {
    /// Linux: the supervisor's parent-death signal covers this; nothing to start.
    public static func start() -> AnyObject? { nil }
}
#endif
