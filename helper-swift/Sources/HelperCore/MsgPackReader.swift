// MessagePack decoding into `MsgPackValue`, defensive against hostile input.
//
// Example:
//   let v = try MsgPackReader.decode([0x92, 0x01, 0xa1, 0x78])   // .array([.uint(1), .string("x")])
//
// Never traps on any input: every length is checked against the bytes that remain before
// anything is allocated (a claimed 4-billion-element array in a 10-byte frame fails with
// `lengthExceedsInput`), nesting is bounded, strings must be UTF-8, and `decode` rejects
// trailing bytes.
public struct MsgPackReader {
    public static let defaultMaxDepth = 64

    private let bytes: [UInt8]
    public private(set) var offset: Int
    private let maxDepth: Int

    public init(_ bytes: [UInt8], maxDepth: Int = MsgPackReader.defaultMaxDepth) {
        self.bytes = bytes
        self.offset = 0
        self.maxDepth = maxDepth
    }

    /// Decodes exactly one value that spans all of `bytes`.
    public static func decode(_ bytes: [UInt8], maxDepth: Int = defaultMaxDepth) throws -> MsgPackValue {
        var r = MsgPackReader(bytes, maxDepth: maxDepth)
        let v = try r.readValue()
        if r.offset != bytes.count { throw MsgPackError.trailingBytes(count: bytes.count - r.offset) }
        return v
    }

    public var remaining: Int { bytes.count - offset }

    private mutating func byte() throws -> UInt8 {
        guard offset < bytes.count else { throw MsgPackError.truncated(offset: offset) }
        defer { offset += 1 }
        return bytes[offset]
    }

    private mutating func be(_ width: Int) throws -> UInt64 {
        guard remaining >= width else { throw MsgPackError.truncated(offset: offset) }
        var v: UInt64 = 0
        for i in 0..<width { v = (v << 8) | UInt64(bytes[offset + i]) }
        offset += width
        return v
    }

    private mutating func take(_ n: UInt64, at start: Int) throws -> ArraySlice<UInt8> {
        guard n <= UInt64(remaining) else {
            throw MsgPackError.lengthExceedsInput(claimed: n, remaining: remaining, offset: start)
        }
        let s = bytes[offset ..< offset + Int(n)]
        offset += Int(n)
        return s
    }

    /// Each element needs at least one byte, so a count above `remaining` is a lie.
    private func checkCount(_ n: UInt64, perElement: UInt64, at start: Int) throws -> Int {
        let (need, overflow) = n.multipliedReportingOverflow(by: perElement)
        guard !overflow, need <= UInt64(remaining) else {
            throw MsgPackError.lengthExceedsInput(claimed: n, remaining: remaining, offset: start)
        }
        return Int(n)
    }

    public mutating func readValue() throws -> MsgPackValue { try readValue(depth: 0) }

    /// Reads an array header only (the envelope reads its elements one by one).
    public mutating func readArrayHeader() throws -> Int {
        let start = offset
        let m = try byte()
        switch m {
        case 0x90...0x9f: return Int(m & 0x0f)
        case 0xdc: return try checkCount(try be(2), perElement: 1, at: start)
        case 0xdd: return try checkCount(try be(4), perElement: 1, at: start)
        default: throw MsgPackError.invalidMarker(m, offset: start)
        }
    }

    private mutating func readValue(depth: Int) throws -> MsgPackValue {
        guard depth <= maxDepth else { throw MsgPackError.tooDeep(limit: maxDepth) }
        let start = offset
        let m = try byte()
        switch m {
        case 0x00...0x7f: return .uint(UInt64(m))
        case 0xe0...0xff: return .int(Int64(Int8(bitPattern: m)))
        case 0x80...0x8f: return try readMap(count: UInt64(m & 0x0f), depth: depth, start: start)
        case 0x90...0x9f: return try readArray(count: UInt64(m & 0x0f), depth: depth, start: start)
        case 0xa0...0xbf: return try readString(length: UInt64(m & 0x1f), start: start)
        case 0xc0: return .nil
        case 0xc2: return .bool(false)
        case 0xc3: return .bool(true)
        case 0xc4: return .binary(Array(try take(try be(1), at: start)))
        case 0xc5: return .binary(Array(try take(try be(2), at: start)))
        case 0xc6: return .binary(Array(try take(try be(4), at: start)))
        case 0xc7, 0xc8, 0xc9:
            let n = try be(m == 0xc7 ? 1 : m == 0xc8 ? 2 : 4)
            let t = Int8(bitPattern: try byte())
            return .ext(type: t, data: Array(try take(n, at: start)))
        case 0xca: return .float32(Float(bitPattern: UInt32(try be(4))))
        case 0xcb: return .float64(Double(bitPattern: try be(8)))
        case 0xcc: return .uint(try be(1))
        case 0xcd: return .uint(try be(2))
        case 0xce: return .uint(try be(4))
        case 0xcf: return .uint(try be(8))
        case 0xd0: return .integer(Int64(Int8(truncatingIfNeeded: try be(1))))
        case 0xd1: return .integer(Int64(Int16(truncatingIfNeeded: try be(2))))
        case 0xd2: return .integer(Int64(Int32(truncatingIfNeeded: try be(4))))
        case 0xd3: return .integer(Int64(bitPattern: try be(8)))
        case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8:
            let n: UInt64 = [1, 2, 4, 8, 16][Int(m - 0xd4)]
            let t = Int8(bitPattern: try byte())
            return .ext(type: t, data: Array(try take(n, at: start)))
        case 0xd9: return try readString(length: try be(1), start: start)
        case 0xda: return try readString(length: try be(2), start: start)
        case 0xdb: return try readString(length: try be(4), start: start)
        case 0xdc: return try readArray(count: try be(2), depth: depth, start: start)
        case 0xdd: return try readArray(count: try be(4), depth: depth, start: start)
        case 0xde: return try readMap(count: try be(2), depth: depth, start: start)
        case 0xdf: return try readMap(count: try be(4), depth: depth, start: start)
        default: throw MsgPackError.invalidMarker(m, offset: start)
        }
    }

    private mutating func readString(length: UInt64, start: Int) throws -> MsgPackValue {
        let raw = try take(length, at: start)
        let s = String(decoding: raw, as: UTF8.self)
        // String(decoding:) repairs invalid sequences with U+FFFD; a repaired string differs.
        guard s.utf8.elementsEqual(raw) else { throw MsgPackError.invalidUTF8(offset: start) }
        return .string(s)
    }

    private mutating func readArray(count: UInt64, depth: Int, start: Int) throws -> MsgPackValue {
        let n = try checkCount(count, perElement: 1, at: start)
        var out: [MsgPackValue] = []
        out.reserveCapacity(n)
        for _ in 0..<n { out.append(try readValue(depth: depth + 1)) }
        return .array(out)
    }

    private mutating func readMap(count: UInt64, depth: Int, start: Int) throws -> MsgPackValue {
        let n = try checkCount(count, perElement: 2, at: start)
        var out: [MsgPackPair] = []
        out.reserveCapacity(n)
        for _ in 0..<n {
            let k = try readValue(depth: depth + 1)
            let v = try readValue(depth: depth + 1)
            out.append(MsgPackPair(k, v))
        }
        return .map(out)
    }
}
