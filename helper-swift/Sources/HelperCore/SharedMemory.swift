// A mapped POSIX shared-memory region that owns its mapping.
//
// Example:
//   let region = try SharedMemoryRegion(name: "/cmb-1a2b-0", size: 1 << 20)
//   let p = try region.pointer(offset: 16384, length: 4096)   // bounds-checked
//   // the mapping is unmapped when the last reference goes away (deinit)
//
// The helper never creates, sizes or unlinks regions: the supervisor does (docs/protocol.md).
// The helper opens the existing object read-write, checks with fstat that it is at least as
// large as announced (macOS allows ftruncate only once, so the size is never changed here),
// maps it, and closes the descriptor. Tensor views keep the region alive, so a Detach while
// a prediction still reads a slot cannot unmap memory under it.

/// Why a region could not be attached or a range of it used.
public enum SharedMemoryError: Error, Hashable, Sendable, CustomStringConvertible {
    case invalidName(String)
    case sizeMismatch(name: String, announced: Int, actual: Int)
    case outOfBounds(offset: UInt64, length: UInt64, size: Int)
    case sys(SysError)

    public var description: String {
        switch self {
        case .invalidName(let n): return "invalid shared-memory name \(n.debugDescription)"
        case .sizeMismatch(let n, let a, let r): return "region \(n) announced \(a) bytes but is \(r)"
        case .outOfBounds(let o, let l, let s): return "range \(o)+\(l) outside a region of \(s) bytes"
        case .sys(let e): return "\(e)"
        }
    }
}

public final class SharedMemoryRegion: @unchecked Sendable {
    /// macOS PSHMNAMLEN: 31 bytes including the leading slash; the protocol uses it everywhere.
    public static let maxNameBytes = 31

    public let name: String
    public let size: Int
    public let base: UnsafeMutableRawPointer

    /// Opens and maps an existing region of (at least) `size` bytes.
    public init(name: String, size: Int, writable: Bool = true) throws {
        try Self.validate(name: name)
        guard size > 0 else { throw SharedMemoryError.sizeMismatch(name: name, announced: size, actual: 0) }
        let fd: Int32
        do { fd = try Sys.shmOpen(name, readWrite: writable) } catch let e as SysError { throw SharedMemoryError.sys(e) }
        defer { try? Sys.closeFD(fd) }
        let actual: Int
        do { actual = try Sys.fileSize(fd) } catch let e as SysError { throw SharedMemoryError.sys(e) }
        guard actual >= size else { throw SharedMemoryError.sizeMismatch(name: name, announced: size, actual: actual) }
        do { base = try Sys.mmapShared(fd, length: size, writable: writable) } catch let e as SysError {
            throw SharedMemoryError.sys(e)
        }
        self.name = name
        self.size = size
    }

    deinit { try? Sys.unmap(base, size) }

    /// A name is "/" followed by 1...30 bytes without another slash or a NUL.
    public static func validate(name: String) throws {
        let b = Array(name.utf8)
        guard b.count >= 2, b.count <= maxNameBytes, b[0] == UInt8(ascii: "/"),
              !b.dropFirst().contains(UInt8(ascii: "/")), !b.contains(0)
        else { throw SharedMemoryError.invalidName(name) }
    }

    /// The address of `[offset, offset+length)`, checked against the mapping.
    public func pointer(offset: UInt64, length: UInt64) throws -> UnsafeMutableRawPointer {
        let (end, overflow) = offset.addingReportingOverflow(length)
        guard !overflow, end <= UInt64(size) else {
            throw SharedMemoryError.outOfBounds(offset: offset, length: length, size: size)
        }
        return base + Int(offset)
    }
}

/// The regions the supervisor attached, by region id.
public final class RegionTable: @unchecked Sendable {
    private let regions = Locked<[UInt64: SharedMemoryRegion]>([:])

    public init() {}

    public func attach(id: UInt64, region: SharedMemoryRegion) {
        regions.withLock { $0[id] = region }
    }

    /// Forgets the region; the mapping goes away when the last tensor view lets go of it.
    @discardableResult
    public func detach(id: UInt64) -> Bool {
        regions.withLock { $0.removeValue(forKey: id) != nil }
    }

    public func region(_ id: UInt64) -> SharedMemoryRegion? { regions.withLock { $0[id] } }

    public var count: Int { regions.withLock { $0.count } }

    public var mappedBytes: Int { regions.withLock { $0.values.reduce(0) { $0 + $1.size } } }
}
