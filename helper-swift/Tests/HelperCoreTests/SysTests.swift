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

    /// Creates a region the way the supervisor does (tests only: the helper never creates).
    private func makeRegion(_ name: String, size: Int) throws {
        let fd = try Sys.shmOpen(name, readWrite: true, create: true)
        defer { try? Sys.closeFD(fd) }
        try Sys.setSize(fd, size)
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
        try makeRegion(name, size: 1 << 16)
        defer { try? Sys.shmUnlink(name) }
        var region: SharedMemoryRegion? = try SharedMemoryRegion(name: name, size: 1 << 16)
        XCTAssertEqual(try mappingCount(name), 1)
        let p = try region!.pointer(offset: 16384, length: 4)
        p.storeBytes(of: 0xdead_beef as UInt32, as: UInt32.self)
        // A second, independent mapping sees the write: it is shared memory.
        let other = try SharedMemoryRegion(name: name, size: 1 << 16)
        XCTAssertEqual(try other.pointer(offset: 16384, length: 4).load(as: UInt32.self), 0xdead_beef)
        XCTAssertThrowsError(try region!.pointer(offset: 65533, length: 4))
        XCTAssertThrowsError(try region!.pointer(offset: UInt64.max, length: 2))
        region = nil
        XCTAssertEqual(try mappingCount(name), 1, "only `other` is still mapped")
        _ = other
    }

    func testRegionErrors() throws {
        let name = uniqueName()
        try makeRegion(name, size: 4096)
        defer { try? Sys.shmUnlink(name) }
        XCTAssertThrowsError(try SharedMemoryRegion(name: name, size: 8192)) { e in
            XCTAssertEqual(e as? SharedMemoryError, .sizeMismatch(name: name, announced: 8192, actual: 4096))
        }
        for bad in ["noslash", "/", "/a/b", "/" + String(repeating: "x", count: 31)] {
            XCTAssertThrowsError(try SharedMemoryRegion(name: bad, size: 4096), bad)
        }
        XCTAssertNoThrow(try SharedMemoryRegion.validate(name: "/" + String(repeating: "x", count: 30)))
        SysFaults.inject(.mmap, .noMemory)
        XCTAssertThrowsError(try SharedMemoryRegion(name: name, size: 4096)) { e in
            XCTAssertEqual(e as? SharedMemoryError, .sys(SysError(.mmap, .noMemory)))
        }
        XCTAssertEqual(try mappingCount(name), 0, "a failed attach leaves no mapping")
    }

    func testRegionTableKeepsMappingAliveForHolders() throws {
        let name = uniqueName()
        try makeRegion(name, size: 4096)
        defer { try? Sys.shmUnlink(name) }
        let table = RegionTable()
        table.attach(id: 3, region: try SharedMemoryRegion(name: name, size: 4096))
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
