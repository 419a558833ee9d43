// A mutex for short critical sections, shared between the reader thread and tasks.
//
// Example:
//   let lock = Lock()
//   let n = lock.withLock { counter += 1; return counter }
//
// Built on pthread_mutex through Sys (the Synchronization module needs macOS 15; the helper
// supports macOS 13).
public final class Lock: @unchecked Sendable {
    private let mutex = Sys.mutexCreate()

    public init() {}

    deinit { Sys.mutexDestroy(mutex) }

    @inline(__always)
    public func withLock<R>(_ body: () throws -> R) rethrows -> R {
        Sys.mutexLock(mutex)
        defer { Sys.mutexUnlock(mutex) }
        return try body()
    }
}

/// A value guarded by its own lock.
public final class Locked<Value>: @unchecked Sendable {
    private let lock = Lock()
    private var value: Value

    public init(_ value: Value) { self.value = value }

    public func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        try lock.withLock { try body(&value) }
    }

    public func get() -> Value { lock.withLock { value } }
}
