// The request loop end to end over a socket pair, with the diagnostic engine behind it.
import Foundation
import XCTest
import DiagnosticEngine
@testable import HelperCore
import HelperTestSupport

final class DispatcherTests: WatchdogTestCase {
    func testHelloComesFirstThenPingStatsAndShutdown() throws {
        let peer = try Peer(engine: DiagnosticEngine())
        let hello = try peer.receive()
        XCTAssertEqual(hello.requestId, 0)
        guard case .hello(let h) = hello.message else { return XCTFail("first message is \(hello.message.tag)") }
        XCTAssertEqual(h.protocolMajor, 2)
        XCTAssertEqual(h.engine, "diagnostic")
        XCTAssertEqual(h.os, "Linux")
        XCTAssertNil(h.coremlVersion)
        XCTAssertEqual(h.pid, UInt32(Sys.pid()))
        // The supervisor's Welcome is not answered: the next frame is the Pong.
        try peer.send(0, .welcome(Welcome(protocolMajor: 2, protocolMinor: 0, supervisorVersion: "test")))

        XCTAssertEqual(try peer.call(.ping(Ping(nonce: UInt64.max))), .pong(Pong(nonce: UInt64.max)))
        guard case .stats(let s) = try peer.call(.getStats) else { return XCTFail("no stats") }
        XCTAssertEqual(s.requests, 3, "frames received: Welcome, Ping, GetStats")
        XCTAssertGreaterThan(s.rssBytes, 0)
        XCTAssertGreaterThanOrEqual(s.peakRssBytes, s.rssBytes)

        XCTAssertEqual(try peer.call(.shutdown), .shutdownAck)
        let deadline = Date().addingTimeInterval(10)
        while peer.finished.get() == nil && Date() < deadline { usleep(1000) }
        XCTAssertEqual(peer.finished.get(), 0)
    }

    func testEndOfStreamEndsTheLoopWithStatusZero() throws {
        let peer = try Peer(engine: DiagnosticEngine())
        _ = try peer.receive()
        Sys.shutdownSocket(peer.fd)
        let deadline = Date().addingTimeInterval(10)
        while peer.finished.get() == nil && Date() < deadline { usleep(1000) }
        XCTAssertEqual(peer.finished.get(), 0)
    }

    func testUndecodableFramesAreAnsweredAndTheLoopGoesOn() throws {
        let peer = try Peer(engine: DiagnosticEngine())
        _ = try peer.receive()
        let w = FrameWriter(fd: peer.fd)
        try w.write([0x93, 0x63, 0x05, 0x80])            // unknown tag 99, request 5
        var e = try peer.receive()
        XCTAssertEqual(e.requestId, 5)
        XCTAssertEqual(e.message.errorCode, .unknownMessage)
        try w.write([0x93, 0x02, 0x06, 0x81, 0xa1, 0x78, 0x01])  // Ping without nonce
        e = try peer.receive()
        XCTAssertEqual(e.requestId, 6)
        XCTAssertEqual(e.message.errorCode, .badRequest)
        try w.write([0xc1])                               // not MessagePack: unattributable
        e = try peer.receive()
        XCTAssertEqual(e.requestId, 0)
        XCTAssertEqual(e.message.errorCode, .badRequest)
        try peer.send(9, .pong(Pong(nonce: 1)))          // a reply is not a request
        e = try peer.receive()
        XCTAssertEqual(e.requestId, 9)
        XCTAssertEqual(e.message.errorCode, .badRequest)
        XCTAssertEqual(try peer.call(.ping(Ping(nonce: 3))), .pong(Pong(nonce: 3)))
    }

    func testOversizeFrameIsFatal() throws {
        let peer = try Peer(engine: DiagnosticEngine())
        _ = try peer.receive()
        try FrameWriter(fd: peer.fd).writeRaw([0x00, 0x10, 0x00, 0x01])   // 1 MiB + 1
        XCTAssertThrowsError(try peer.receive()) { XCTAssertTrue($0 is Peer.Closed, "\($0)") }
        XCTAssertEqual(peer.finished.get(), 2)
    }

    func testRegionsAttachDetachAndTheirErrors() throws {
        let peer = try Peer(engine: DiagnosticEngine())
        _ = try peer.receive()
        let r = try TestRegion(size: 65536)
        XCTAssertEqual(try peer.attach(1, r, size: 65536),
                       .regionAttached(RegionId(region: 1)))
        XCTAssertEqual(try peer.attach(1, r, size: 65536).errorCode, .badRequest)
        XCTAssertEqual(try peer.attach(2, r, size: 1 << 20).errorCode, .shmFailed)
        // Without a descriptor: nothing to map, whatever the payload says.
        XCTAssertEqual(try peer.call(.attachRegion(AttachRegion(region: 3, size: 4096))).errorCode, .shmFailed)
        XCTAssertEqual(try peer.attach(4, r, size: 0).errorCode, .badRequest)
        guard case .stats(let s) = try peer.call(.getStats) else { return XCTFail() }
        XCTAssertEqual(s.regionsAttached, 1)
        XCTAssertEqual(s.errors, 4)
        XCTAssertEqual(try peer.call(.detachRegion(RegionId(region: 1))), .regionDetached(RegionId(region: 1)))
        XCTAssertEqual(try peer.call(.detachRegion(RegionId(region: 1))).errorCode, .badRequest)
    }
}
