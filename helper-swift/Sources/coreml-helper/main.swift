// coreml-helper: the Core ML helper process of coreml-bridge (docs/swift-helper.md).
//
//   coreml-helper --ipc-fd 3                  serve docs/protocol.md on inherited socket fd 3
//   coreml-helper --socket /path/to/sock      connect to a listening Unix socket, then serve
//
// macOS only (ignored elsewhere): --sandbox-read PATH, --sandbox-write PATH (repeatable) add
// paths to the Seatbelt profile applied before any model is loaded; --no-sandbox skips it
// (Hello then says sandboxed = false).
import DiagnosticEngine
import HelperCore
import HelperSandbox
#if canImport(CoreML)
import CoreMLEngine
#endif

func usage(_ message: String) -> Never {
    Sys.log("coreml-helper: \(message)")
    Sys.log("usage: coreml-helper (--ipc-fd N | --socket PATH) [--sandbox-read PATH]... [--sandbox-write PATH]... [--no-sandbox]")
    Sys.exitImmediately(2)
}

var fd: Int32?
var socketPath: String?
var sandboxPaths = SandboxPaths()
var wantSandbox = true
var args = CommandLine.arguments.dropFirst()
while let a = args.popFirst() {
    switch a {
    case "--ipc-fd":
        guard let v = args.popFirst(), let n = Int32(v), n >= 0 else { usage("--ipc-fd needs a descriptor number") }
        fd = n
    case "--socket":
        guard let v = args.popFirst(), !v.isEmpty else { usage("--socket needs a path") }
        socketPath = v
    case "--sandbox-read":
        guard let v = args.popFirst() else { usage("--sandbox-read needs a path") }
        sandboxPaths.read.append(v)
    case "--sandbox-write":
        guard let v = args.popFirst() else { usage("--sandbox-write needs a path") }
        sandboxPaths.write.append(v)
    case "--no-sandbox":
        wantSandbox = false
    case "-h", "--help":
        usage("help")
    default:
        usage("unexpected argument \(a.debugDescription)")
    }
}

Sys.ignoreSIGPIPE()
let connection: Connection
switch (fd, socketPath) {
case (let n?, nil):
    guard Sys.isSocket(n) else { usage("descriptor \(n) is not an open socket") }
    connection = Connection(fd: n)
case (nil, let path?):
    do { connection = try Connection.connect(path: path) } catch { usage("cannot connect to \(path): \(error)") }
default:
    usage("give exactly one of --ipc-fd and --socket")
}

#if canImport(CoreML)
let engine: Engine = RoutingEngine(primary: CoreMLEngine(), diagnostic: DiagnosticEngine())
#else
let engine: Engine = DiagnosticEngine()
#endif

// Exit with the app even while a Core ML call blocks (macOS; Linux has the supervisor's
// parent-death signal).
let parentWatch = ParentWatch.start()

// The sandbox goes on before the first message, so before any model can be loaded.
let sandbox = wantSandbox ? HelperSandbox.apply(paths: sandboxPaths)
    : SandboxStatus(applied: false, detail: "sandbox disabled by --no-sandbox")
// Fail closed: a helper that had to sandbox itself and could not never serves (exit 78,
// EX_CONFIG, before Hello). Hello.sandboxed still tells the supervisor the truth, which
// refuses unsandboxed helpers on macOS unless the app opted out.
if !HelperSandbox.mayServe(sandbox, required: wantSandbox && HelperSandbox.selfSandboxRequired) {
    Sys.log("coreml-helper: \(sandbox.detail); refusing to serve without a sandbox")
    Sys.exitImmediately(78)
}
let hello = HandshakeFault.apply(to: HelloInfo.make(engine: engine.descriptor, sandbox: sandbox), connection: connection)
let status = Dispatcher(engine: engine, connection: connection).run(hello: hello)
withExtendedLifetime(parentWatch) {}
Sys.exitImmediately(status)
