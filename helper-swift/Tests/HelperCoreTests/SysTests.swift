// The libc wrappers: errno injection, Errno, shared-memory mapping ownership.
import Foundation
import XCTest
import HelperTestSupport
@testable import HelperCore

final class SysTests: WatchdogTestCase {
    override func tearDown() {
        SysFaults.clear()
        super.tearDown()
    }

    private func uniqueName() -> String { "/cmbt-\(Sys.pid())-\(UInt32.random(in: 0...UInt32.max))" }

    /// Creates a region (tests only: the helper never creates one) and returns its descriptor;
    /// the name stays until the test unlinks it, so /proc/self/maps can show its mappings.
    private func makeRegion(_ name: String, size: Int) throws -> Int32 {
        let fd = try Sys.shmOpen(name, readWrite: true, create: true)
        try Sys.setSize(fd, size)
        return fd
    }

    private func mappingCount(_ name: String) throws -> Int {
        let maps = String(decoding: try Sys.readSmallFile("/proc/self/maps", limit: 1 << 22), as: UTF8.self)
        return maps.split(separator: "\n").filter { $0.hasSuffix("/dev/shm" + name) }.count
    }

    func testErrnoIsOpenAndDescribed() {
        let unknown = Errno(rawValue: 4242)
        XCTAssertEqual(unknown.rawValue, 4242)
        XCTAssertNotEqual(unknown, .interrupted)
        XCTAssertTrue(Errno.interrupted.isTransient)
        XCTAssertFalse(Errno.noEntry.isTransient)
        XCTAssertTrue(Errno.noEntry.description.contains("errno \(Errno.noEntry.rawValue)"))
    }

    func testInjectionFiresTheRequestedNumberOfTimes() throws {
        SysFaults.inject(.shmOpen, .accessDenied, times: 2)
        for _ in 0..<2 {
            XCTAssertThrowsError(try Sys.shmOpen("/x", readWrite: true)) { e in
                XCTAssertEqual(e as? SysError, SysError(.shmOpen, .accessDenied))
            }
        }
        // The third call reaches libc: ENOENT for a name nobody created.
        XCTAssertThrowsError(try Sys.shmOpen(uniqueName(), readWrite: true)) { e in
            XCTAssertEqual((e as? SysError)?.errno, .noEntry)
        }
    }

    func testRegionMapsChecksSizeAndUnmapsInDeinit() throws {
        let name = uniqueName()
        let fd = try makeRegion(name, size: 1 << 16)
        defer { try? Sys.shmUnlink(name); try? Sys.closeFD(fd) }
        var region: SharedMemoryRegion? = try SharedMemoryRegion(descriptor: try Sys.duplicate(fd), size: 1 << 16)
        XCTAssertEqual(try mappingCount(name), 1)
        let p = try region!.pointer(offset: 16384, length: 4)
        p.storeBytes(of: 0xdead_beef as UInt32, as: UInt32.self)
        // A second, independent mapping sees the write: it is shared memory.
        let other = try SharedMemoryRegion(descriptor: try Sys.duplicate(fd), size: 1 << 16)
        XCTAssertEqual(try other.pointer(offset: 16384, length: 4).load(as: UInt32.self), 0xdead_beef)
        XCTAssertThrowsError(try region!.pointer(offset: 65533, length: 4))
        XCTAssertThrowsError(try region!.pointer(offset: UInt64.max, length: 2))
        region = nil
        XCTAssertEqual(try mappingCount(name), 1, "only `other` is still mapped")
        _ = other
    }

    func testRegionErrors() throws {
        let name = uniqueName()
        let fd = try makeRegion(name, size: 4096)
        defer { try? Sys.shmUnlink(name); try? Sys.closeFD(fd) }
        XCTAssertThrowsError(try SharedMemoryRegion(descriptor: try Sys.duplicate(fd), size: 8192)) { e in
            XCTAssertEqual(e as? SharedMemoryError, .sizeMismatch(announced: 8192, actual: 4096))
        }
        SysFaults.inject(.mmap, .noMemory)
        XCTAssertThrowsError(try SharedMemoryRegion(descriptor: try Sys.duplicate(fd), size: 4096)) { e in
            XCTAssertEqual(e as? SharedMemoryError, .sys(SysError(.mmap, .noMemory)))
        }
        XCTAssertEqual(try mappingCount(name), 0, "a failed attach leaves no mapping")
    }

    /// docs/protocol.md section 6: a descriptor rides on the first byte of its frame; the reader
    /// queues it and hands it out in arrival order, whatever the read boundaries.
    func testDescriptorsTravelWithTheirFrames() throws {
        let name = uniqueName()
        let fd = try makeRegion(name, size: 4096)
        defer { try? Sys.shmUnlink(name); try? Sys.closeFD(fd) }
        let (a, b) = try Sys.socketPair()
        defer { try? Sys.closeFD(a); try? Sys.closeFD(b) }
        try FrameWriter(fd: a).write(Envelope(requestId: 1, message: .ping(Ping(nonce: 1))).encode())
        try Peer.sendPassing(a, 2, .attachRegion(AttachRegion(region: 0, size: 4096)), descriptor: fd)
        try Peer.sendPassing(a, 3, .attachRegion(AttachRegion(region: 1, size: 4096)), descriptor: fd)
        let r = FrameReader(fd: b, maxFrameLength: 1 << 20, chunkSize: 8)
        XCTAssertEqual(try Envelope.decode(try r.next()!).requestId, 1)
        XCTAssertEqual(try Envelope.decode(try r.next()!).requestId, 2)
        let first = try XCTUnwrap(r.takeDescriptor(), "the first AttachRegion's descriptor")
        XCTAssertEqual(try Envelope.decode(try r.next()!).requestId, 3)
        let second = try XCTUnwrap(r.takeDescriptor(), "the second AttachRegion's descriptor")
        XCTAssertNil(r.takeDescriptor())
        XCTAssertNotEqual(first, second)
        let mapped = try SharedMemoryRegion(descriptor: first, size: 4096)
        XCTAssertEqual(try mappingCount(name), 1, "the passed descriptor maps the same object")
        _ = mapped
        try Sys.closeFD(second)
    }

    func testRegionTableKeepsMappingAliveForHolders() throws {
        let name = uniqueName()
        let fd = try makeRegion(name, size: 4096)
        defer { try? Sys.shmUnlink(name); try? Sys.closeFD(fd) }
        let table = RegionTable()
        table.attach(id: 3, region: try SharedMemoryRegion(descriptor: try Sys.duplicate(fd), size: 4096))
        var held: SharedMemoryRegion? = table.region(3)
        XCTAssertTrue(table.detach(id: 3))
        XCTAssertFalse(table.detach(id: 3))
        XCTAssertEqual(try mappingCount(name), 1, "a holder keeps the mapping after detach")
        held = nil
        XCTAssertNil(held)
        XCTAssertEqual(try mappingCount(name), 0)
    }

    func testProcessInfoWrappers() throws {
        XCTAssertGreaterThan(try Sys.currentRSSBytes(), 1 << 20)
        XCTAssertGreaterThanOrEqual(try Sys.peakRSSBytes(), try Sys.currentRSSBytes() / 2)
        let t0 = Sys.monotonicNanos()
        Sys.sleepNanos(2_000_000)
        XCTAssertGreaterThanOrEqual(Sys.monotonicNanos() - t0, 2_000_000)
        XCTAssertEqual(Sys.systemInfo().sysname, "Linux")
        XCTAssertNoThrow(try Sys.sendSignal(Sys.pid(), 0))
    }
}
