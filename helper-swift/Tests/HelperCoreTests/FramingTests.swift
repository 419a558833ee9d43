// Framing over a real socket pair, including short reads, EINTR and hostile prefixes.
import Foundation
import XCTest
import HelperTestSupport
@testable import HelperCore

final class FramingTests: WatchdogTestCase {
    private var fds: (Int32, Int32) = (-1, -1)

    override func setUpWithError() throws {
        fds = try Sys.socketPair()
    }

    override func tearDown() {
        SysFaults.clear()
        try? Sys.closeFD(fds.0)
        try? Sys.closeFD(fds.1)
        super.tearDown()
    }

    private func sendRaw(_ b: [UInt8]) throws { try FrameWriter(fd: fds.0).writeRaw(b) }

    func testRoundTripOfSeveralFramesInOneWrite() throws {
        let w = FrameWriter(fd: fds.0)
        try w.write([1, 2, 3])
        try w.write([0xc0])
        let r = FrameReader(fd: fds.1, maxFrameLength: 1 << 20)
        XCTAssertEqual(try r.next(), [1, 2, 3])
        XCTAssertEqual(try r.next(), [0xc0])
        Sys.shutdownSocket(fds.0)
        XCTAssertNil(try r.next(), "clean close between frames")
    }

    func testFrameLargerThanTheReadChunkAndByteByByteDelivery() throws {
        let body = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let r = FrameReader(fd: fds.1, maxFrameLength: 1 << 20, chunkSize: 4096)
        let writeFD = fds.0
        let writer = Thread {
            let w = FrameWriter(fd: writeFD)
            try? w.write(body)
            // Then a frame delivered one byte at a time.
            for b: UInt8 in [0, 0, 0, 2, 0xa1, 0x78] { try? w.writeRaw([b]); usleep(200) }
        }
        writer.start()
        XCTAssertEqual(try r.next(), body)
        XCTAssertEqual(try r.next(), [0xa1, 0x78])
    }

    func testOversizeIsRejectedFromThePrefixAlone() throws {
        try sendRaw([0xff, 0xff, 0xff, 0xf0])
        let r = FrameReader(fd: fds.1, maxFrameLength: 1 << 20)
        XCTAssertThrowsError(try r.next()) { e in
            XCTAssertEqual(e as? FrameError, .oversize(length: 0xffff_fff0, max: 1 << 20))
        }
    }

    func testEmptyAndTruncatedFrames() throws {
        try sendRaw([0, 0, 0, 0])
        let r = FrameReader(fd: fds.1, maxFrameLength: 1 << 20)
        XCTAssertThrowsError(try r.next()) { XCTAssertEqual($0 as? FrameError, .empty) }

        let (a, b) = try Sys.socketPair()
        defer { try? Sys.closeFD(b) }
        try FrameWriter(fd: a).writeRaw([0, 0, 0, 10, 1, 2, 3])
        try Sys.closeFD(a)
        XCTAssertThrowsError(try FrameReader(fd: b, maxFrameLength: 100).next()) { e in
            XCTAssertEqual(e as? FrameError, .truncated(got: 3, expected: 10))
        }
        let (c, d) = try Sys.socketPair()
        defer { try? Sys.closeFD(d) }
        try FrameWriter(fd: c).writeRaw([0, 0])
        try Sys.closeFD(c)
        XCTAssertThrowsError(try FrameReader(fd: d, maxFrameLength: 100).next()) { e in
            XCTAssertEqual(e as? FrameError, .truncated(got: 2, expected: 4))
        }
    }

    func testEINTRIsRetriedAndOtherErrnosSurface() throws {
        try FrameWriter(fd: fds.0).write([7])
        SysFaults.inject(.recv, .interrupted, times: 3)
        let r = FrameReader(fd: fds.1, maxFrameLength: 100)
        XCTAssertEqual(try r.next(), [7])
        XCTAssertEqual(SysFaults.pending(.recv), 0)

        SysFaults.inject(.send, .interrupted, times: 2)
        try FrameWriter(fd: fds.0).write([8])
        XCTAssertEqual(try r.next(), [8])

        SysFaults.inject(.recv, .connectionReset)
        XCTAssertThrowsError(try r.next()) { e in
            XCTAssertEqual(e as? FrameError, .io(SysError(.recv, .connectionReset)))
        }
        SysFaults.inject(.send, .brokenPipe)
        XCTAssertThrowsError(try FrameWriter(fd: fds.0).write([1])) { e in
            XCTAssertEqual(e as? FrameError, .io(SysError(.send, .brokenPipe)))
        }
    }

    func testWritingToAClosedPeerIsAnErrorNotASignal() throws {
        Sys.ignoreSIGPIPE()
        try Sys.closeFD(fds.1)
        fds.1 = -1
        XCTAssertThrowsError(try FrameWriter(fd: fds.0).write([UInt8](repeating: 1, count: 1 << 20)))
    }

    func testConcurrentWritersNeverInterleaveFrames() throws {
        let w = FrameWriter(fd: fds.0)
        let readFD = fds.1
        let threads = 4, perThread = 200
        let reader = Locked<[[UInt8]]>([])
        let done = expectation(description: "reader")
        Thread {
            // The reader keeps its buffer state: it lives on the thread that reads.
            let r = FrameReader(fd: readFD, maxFrameLength: 1 << 20)
            for _ in 0..<(threads * perThread) { if let f = try? r.next() { reader.withLock { $0.append(f) } } }
            done.fulfill()
        }.start()
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            for i in 0..<perThread {
                let body = [UInt8](repeating: UInt8(t), count: 1000 + i)
                try? w.write(body)
            }
        }
        wait(for: [done], timeout: 30)
        let frames = reader.get()
        XCTAssertEqual(frames.count, threads * perThread)
        for f in frames { XCTAssertTrue(f.allSatisfy { $0 == f[0] }, "frame mixes writers") }
    }
}
