// The coreml-helper executable as a process: arguments, handshake faults and the faults that
// end, stop or deafen the process (docs/diagnostics.md). Runs the binary `swift test` built
// (a -D COREML_DIAG_FAULTS build when run through scripts/swift-toolchain.sh test).
import Foundation
import XCTest
import DiagnosticEngine
@testable import HelperCore
import HelperTestSupport

final class ProcessTests: WatchdogTestCase {
    private func started(_ env: [String: String] = [:]) throws -> (HelperProcess, Hello) {
        let h = try HelperProcess(environment: env)
        try h.accept()
        let e = try h.receive()
        guard case .hello(let hello) = e.message, e.requestId == 0 else { throw Peer.Closed() }
        return (h, hello)
    }

    private func loadAndPredict(_ h: HelperProcess, _ uri: String, region: TestRegion, timeout: TimeInterval = 10) throws -> Envelope {
        try Peer.sendPassing(h.fd, 1, .attachRegion(AttachRegion(region: 0, size: UInt64(region.size))), descriptor: region.fd)
        XCTAssertEqual(try h.receive().message, .regionAttached(RegionId(region: 0)))
        try h.send(2, .load(Load(modelId: 1, bundlePath: uri, computeUnits: .cpuOnly)))
        guard case .loaded = try h.receive().message else { throw Peer.Closed() }
        try h.send(3, .predict(Predict(modelId: 1, inputs: [NamedTensor(name: "x", tensor: .contiguous(.f32, shape: [4], region: 0, offset: 0))],
                                       outputs: [NamedTensor(name: "y", tensor: .contiguous(.f32, shape: [4], region: 0, offset: 16384))],
                                       deadlineUs: 5_000_000)))
        return try h.receive(timeout: timeout)
    }

    func testServesOverSocketAndExitsZeroAfterShutdown() throws {
        let (h, hello) = try started()
        XCTAssertEqual(hello.engine, "diagnostic")
        XCTAssertEqual(hello.pid, UInt32(h.process.processIdentifier))
        XCTAssertFalse(hello.sandboxed)
        try h.send(1, .ping(Ping(nonce: 77)))
        XCTAssertEqual(try h.receive().message, .pong(Pong(nonce: 77)))
        try h.send(2, .shutdown)
        XCTAssertEqual(try h.receive().message, .shutdownAck)
        XCTAssertEqual(h.waitForExit()?.1, 0)
    }

    func testBadArgumentsExitTwo() throws {
        for args in [[], ["model.mlmodelc"], ["--ipc-fd"], ["--ipc-fd", "0"], ["--ipc-fd", "3", "--socket", "/x"]] {
            let h = try HelperProcess(arguments: args)
            let r = h.waitForExit()
            XCTAssertEqual(r?.0, .exit, "\(args)")
            XCTAssertEqual(r?.1, 2, "\(args)")
        }
    }

    func testHandshakeFaults() throws {
        let crash = try HelperProcess(environment: ["COREML_DIAG_FAULT": "crash-handshake"])
        XCTAssertEqual(crash.waitForExit()?.1, 5)

        let (_, wrong) = try started(["COREML_DIAG_FAULT": "wrong-version"])
        XCTAssertEqual(wrong.protocolMajor, 99)

        let hang = try HelperProcess(environment: ["COREML_DIAG_FAULT": "hang-handshake"])
        try hang.accept()
        XCTAssertThrowsError(try hang.receive(timeout: 0.5)) { XCTAssertTrue($0 is Peer.Timeout) }
        XCTAssertTrue(hang.process.isRunning)

        let garbage = try HelperProcess(environment: ["COREML_DIAG_FAULT": "garbage-handshake"])
        try garbage.accept()
        XCTAssertEqual(try garbage.readBytes(4), [0, 0, 0, 64])
        XCTAssertEqual(try garbage.readBytes(64).count, 64)
    }

    func testFaultsThatEndTheProcess() throws {
        let region = try TestRegion(size: 65536)
        let cases: [(String, Process.TerminationReason, Int32)] = [
            ("exit", .exit, 3), ("segv", .uncaughtSignal, SignalNumber.segv), ("abort", .uncaughtSignal, 6),
        ]
        for (fault, reason, status) in cases {
            let (h, _) = try started()
            XCTAssertThrowsError(try loadAndPredict(h, "diag:echo?fault=\(fault)", region: region), fault)
            let r = h.waitForExit()
            XCTAssertEqual(r?.0, reason, fault)
            XCTAssertEqual(r?.1, status, fault)
        }
    }

    func testFaultsThatKeepTheProcessAlive() throws {
        let region = try TestRegion(size: 65536)
        // close-socket: end of stream for us, the process stays.
        var (h, _) = try started()
        XCTAssertThrowsError(try loadAndPredict(h, "diag:echo?fault=close-socket", region: region)) { XCTAssertTrue($0 is Peer.Closed, "\($0)") }
        XCTAssertNil(h.waitForExit(timeout: 0.3), "close-socket keeps the process alive")

        // oversize: a bare length prefix of 0xFFFFFFF0.
        (h, _) = try started()
        try Peer.sendPassing(h.fd, 1, .attachRegion(AttachRegion(region: 0, size: UInt64(region.size))), descriptor: region.fd)
        _ = try h.receive()
        try h.send(2, .load(Load(modelId: 1, bundlePath: "diag:echo?fault=oversize&at=load", computeUnits: .all)))
        XCTAssertEqual(try h.readBytes(4), [0xff, 0xff, 0xff, 0xf0])

        // sigstop: the whole process stops.
        (h, _) = try started()
        XCTAssertThrowsError(try loadAndPredict(h, "diag:echo?fault=sigstop", region: region, timeout: 0.5))
        let deadline = Date().addingTimeInterval(5)
        while h.state != "T" && Date() < deadline { usleep(2000) }
        XCTAssertEqual(h.state, "T")

        // alloc: resident memory climbs until someone kills the helper.
        (h, _) = try started()
        XCTAssertThrowsError(try loadAndPredict(h, "diag:echo?fault=alloc", region: region, timeout: 0.5))
        // Poll (a loaded machine allocates slower) until 256 MiB are resident, within 20 s.
        let pid = h.process.processIdentifier
        var rss: UInt64 = 0
        let until = Date().addingTimeInterval(20)
        while rss <= 256 << 20 && Date() < until {
            usleep(20_000)
            guard let statm = try? Sys.readSmallFile("/proc/\(pid)/statm") else { break }
            rss = (UInt64(String(decoding: statm, as: UTF8.self).split(separator: " ")[1]) ?? 0) * UInt64(Sys.pageSize)
        }
        XCTAssertGreaterThan(rss, 256 << 20)
        XCTAssertTrue(h.process.isRunning, "alloc never stops by itself")
    }

    func testForkChildKeepsTheSocketOpenAfterTheParentExits() throws {
        let region = try TestRegion(size: 65536)
        let (h, _) = try started()
        XCTAssertThrowsError(try loadAndPredict(h, "diag:echo?fault=fork-child", region: region, timeout: 0.5)) {
            XCTAssertTrue($0 is Peer.Timeout, "the child still holds the socket: no end of stream (\($0))")
        }
        // The parent exits (a zombie until Foundation reaps it, which it does only once every
        // holder of its monitoring descriptor, the child included, is gone).
        let deadline = Date().addingTimeInterval(10)
        while let st = h.state, st != "Z", Date() < deadline { usleep(2000) }
        XCTAssertTrue(h.state == nil || h.state == "Z", "parent exited")
        // The child runs the same command line; find it by the unique socket path and kill it.
        let children = try FileManager.default.contentsOfDirectory(atPath: "/proc").compactMap(Int32.init).filter { pid in
            guard pid != h.process.processIdentifier, let cmd = try? Sys.readSmallFile("/proc/\(pid)/cmdline") else { return false }
            return String(decoding: cmd, as: UTF8.self).contains(h.socketPath)
        }
        XCTAssertEqual(children.count, 1)
        for pid in children { try? Sys.sendSignal(pid, SignalNumber.kill) }
        XCTAssertEqual(h.waitForExit()?.1, 4)
    }

    func testReplyShapingFaultsAndOnceMarker() throws {
        let region = try TestRegion(size: 65536)
        var (h, _) = try started()
        var e = try loadAndPredict(h, "diag:echo?fault=wrong-id", region: region)
        XCTAssertEqual(e.requestId, 3 + 1_000_000)
        (h, _) = try started()
        e = try loadAndPredict(h, "diag:echo?fault=bad-ref", region: region)
        guard case .predicted(let p) = e.message else { return XCTFail("\(e)") }
        XCTAssertEqual(p.outputs[0].tensor.offset, UInt64(region.size))
        XCTAssertThrowsError(try p.outputs[0].tensor.validate(regionSize: UInt64(region.size)))

        // release-unknown: a stray InputsReleased for an id never issued, then the real reply.
        (h, _) = try started()
        e = try loadAndPredict(h, "diag:echo?fault=release-unknown", region: region)
        XCTAssertEqual(e.requestId, UInt64.max - 1)
        XCTAssertEqual(e.message, .inputsReleased(ModelId(modelId: 0)))
        e = try h.receive()
        XCTAssertEqual(e.requestId, 3)
        guard case .predicted = e.message else { return XCTFail("\(e)") }

        // hang at load: that request never answers, others still do.
        (h, _) = try started()
        try h.send(1, .load(Load(modelId: 1, bundlePath: "diag:echo?fault=hang&at=load", computeUnits: .all)))
        try h.send(2, .ping(Ping(nonce: 5)))
        e = try h.receive()
        XCTAssertEqual(e.requestId, 2)
        XCTAssertThrowsError(try h.receive(timeout: 0.3)) { XCTAssertTrue($0 is Peer.Timeout) }

        // once: fires in the first process only; after=1 lets one prediction through.
        let marker = "/tmp/cmbt-once-\(Sys.pid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { unlink(marker) }
        (h, _) = try started()
        guard case .predicted = try loadAndPredict(h, "diag:echo?fault=exit&after=1&once=\(marker)", region: region).message else {
            return XCTFail("first prediction passes (after=1)")
        }
        try h.send(4, .predict(Predict(modelId: 1, inputs: [NamedTensor(name: "x", tensor: .contiguous(.f32, shape: [4], region: 0, offset: 0))],
                                       outputs: [NamedTensor(name: "y", tensor: .contiguous(.f32, shape: [4], region: 0, offset: 16384))],
                                       deadlineUs: 0)))
        XCTAssertEqual(h.waitForExit()?.1, 3)
        XCTAssertTrue(Sys.fileExists(marker))
        (h, _) = try started()
        guard case .predicted = try loadAndPredict(h, "diag:echo?fault=exit&once=\(marker)", region: region).message else {
            return XCTFail("the marker exists: no fault")
        }
    }

    func testRetainedInputOverwrittenBeforeReleaseExitsSeven() throws {
        let region = try TestRegion(size: 65536)
        let (h, _) = try started()
        guard case .predicted(let p) = try loadAndPredict(h, "diag:echo?retain=300", region: region).message else {
            return XCTFail("no Predicted")
        }
        XCTAssertTrue(p.inputsRetained)
        region.write([Float(-1)], at: 0)      // the supervisor bug the key exists to catch
        XCTAssertEqual(h.waitForExit()?.1, 7)
    }

    func testReleaseParsingRefusesFaults() {
        XCTAssertThrowsError(try DiagModel.parse("diag:echo?fault=segv", faultsEnabled: false)) {
            XCTAssertEqual(($0 as? EngineError)?.code, .unsupported)
        }
        XCTAssertNoThrow(try DiagModel.parse("diag:echo?fault=segv", faultsEnabled: true))
    }
}
