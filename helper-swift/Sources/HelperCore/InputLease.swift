// Who still references a prediction's input slots, and when to say `InputsReleased`.
//
// Example:
//   let lease = InputLease { connection.send(.inputsReleased(...), id) }  // called at most once
//   lease.acquire()                       // engine: wraps an input (e.g. an MLMultiArray)
//   ... deallocator: lease.release()      // engine: Core ML let go of that input
//   let retained = lease.replied { sendPredicted(inputsRetained: $0) }
//
// The dispatcher itself holds one reference from the start until the engine returns, so the
// count cannot reach zero while inputs are still being wrapped. Protocol rules
// (docs/protocol.md section 8): `InputsReleased` is sent only after a `Predicted` that said
// `inputs_retained = true`, exactly once; before an `Error` reply every input is released.
public final class InputLease: @unchecked Sendable {
    private enum State {
        /// The dispatcher has not replied yet.
        case open
        /// `Predicted` said inputs_retained = true; notify on the final release.
        case repliedRetained
        /// Nothing more to send.
        case closed
    }

    private let lock = Lock()
    private var holders = 1
    private var state = State.open
    private var waiters: [CheckedContinuation<Void, Never>] = []
    private let onReleasedAfterReply: @Sendable () -> Void

    /// `onReleasedAfterReply` sends `InputsReleased`; it runs on whichever thread drops the
    /// last reference.
    public init(onReleasedAfterReply: @escaping @Sendable () -> Void) {
        self.onReleasedAfterReply = onReleasedAfterReply
    }

    /// The engine takes a reference (one per wrapped input buffer).
    public func acquire() {
        lock.withLock { holders += 1 }
    }

    /// The engine drops a reference. Extra releases are ignored.
    public func release() {
        var notify = false
        var resume: [CheckedContinuation<Void, Never>] = []
        lock.withLock {
            guard holders > 0 else { return }
            holders -= 1
            guard holders == 0 else { return }
            resume = waiters
            waiters = []
            if state == .repliedRetained {
                state = .closed
                notify = true
            }
        }
        for w in resume { w.resume() }
        if notify { onReleasedAfterReply() }
    }

    public var isReleased: Bool { lock.withLock { holders == 0 } }

    /// Called once by the dispatcher after it dropped its own reference: runs `send` with
    /// `inputsRetained` under the lease's lock, so a release racing with the reply is sent
    /// strictly after it.
    public func replied(_ send: (_ inputsRetained: Bool) -> Void) {
        lock.withLock {
            let retained = holders > 0
            send(retained)
            state = retained ? .repliedRetained : .closed
        }
    }

    /// Waits until every reference is gone (before an `Error` reply).
    public func waitUntilReleased() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let done: Bool = lock.withLock {
                if holders == 0 { state = .closed; return true }
                waiters.append(c)
                state = .closed
                return false
            }
            if done { c.resume() }
        }
    }
}
