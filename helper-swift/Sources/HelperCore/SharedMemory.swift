// A mapped shared-memory region that owns its mapping.
//
// Example:
//   let fd = reader.takeDescriptor()!                                  // came with AttachRegion
//   let region = try SharedMemoryRegion(descriptor: fd, size: 1 << 20) // takes and closes fd
//   let p = try region.pointer(offset: 16384, length: 4096)            // bounds-checked
//   // the mapping is unmapped when the last reference goes away (deinit)
//
// The helper never creates, names, sizes, resizes or unlinks regions: the supervisor creates
// them anonymous and passes each as a descriptor (docs/protocol.md, section 6). The helper
// checks with fstat that the region is at least as large as announced, maps it, and closes
// the descriptor. Tensor views keep the region alive, so a Detach while a prediction still
// reads a slot cannot unmap memory under it.

/// Why a region could not be attached or a range of it used.
public enum SharedMemoryError: Error, Hashable, Sendable, CustomStringConvertible {
    case missingDescriptor
    case sizeMismatch(announced: Int, actual: Int)
    case outOfBounds(offset: UInt64, length: UInt64, size: Int)
    case sys(SysError)

    public var description: String {
        switch self {
        case .missingDescriptor: return "AttachRegion came without a descriptor"
        case .sizeMismatch(let a, let r): return "region announced \(a) bytes but is \(r)"
        case .outOfBounds(let o, let l, let s): return "range \(o)+\(l) outside a region of \(s) bytes"
        case .sys(let e): return "\(e)"
        }
    }
}

public final class SharedMemoryRegion: @unchecked Sendable {
    public let size: Int
    public let base: UnsafeMutableRawPointer

    /// Maps the region behind `descriptor` (which this takes over and closes) after checking
    /// that it holds at least `size` bytes.
    public init(descriptor fd: Int32, size: Int, writable: Bool = true) throws {
        defer { try? Sys.closeFD(fd) }
        guard size > 0 else { throw SharedMemoryError.sizeMismatch(announced: size, actual: 0) }
        let actual: Int
        do { actual = try Sys.fileSize(fd) } catch let e as SysError { throw SharedMemoryError.sys(e) }
        guard actual >= size else { throw SharedMemoryError.sizeMismatch(announced: size, actual: actual) }
        do { base = try Sys.mmapShared(fd, length: size, writable: writable) } catch let e as SysError {
            throw SharedMemoryError.sys(e)
        }
        self.size = size
    }

    deinit { try? Sys.unmap(base, size) }

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
