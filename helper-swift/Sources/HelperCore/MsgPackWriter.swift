// Canonical MessagePack encoding, byte-identical to what Rust's rmp / rmp-serde write.
//
// Example:
//   var w = MsgPackWriter()
//   w.writeArrayHeader(2); w.writeUInt(300); w.writeString("x")
//   // w.bytes == [0x92, 0xcd, 0x01, 0x2c, 0xa1, 0x78]
//
// Rules (the ones rmp applies): integers in the shortest form, non-negative values always with
// the unsigned markers (positive fixint, 0xcc..0xcf) even when they come from a signed type,
// negative values with negative fixint or 0xd0..0xd3; `.float64` is always 0xcb and `.float32`
// always 0xca; strings fixstr/str8/str16/str32; binary bin8/bin16/bin32; arrays and maps in
// their fix/16/32 forms.
public struct MsgPackWriter {
    public private(set) var bytes: [UInt8]

    public init(capacity: Int = 64) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    public static func encode(_ value: MsgPackValue) -> [UInt8] {
        var w = MsgPackWriter()
        w.write(value)
        return w.bytes
    }

    @inline(__always) private mutating func be16(_ v: UInt16) {
        bytes.append(UInt8(v >> 8)); bytes.append(UInt8(truncatingIfNeeded: v))
    }

    @inline(__always) private mutating func be32(_ v: UInt32) {
        for s in stride(from: 24, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: v >> UInt32(s))) }
    }

    @inline(__always) private mutating func be64(_ v: UInt64) {
        for s in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: v >> UInt64(s))) }
    }

    public mutating func writeNil() { bytes.append(0xc0) }

    public mutating func writeBool(_ v: Bool) { bytes.append(v ? 0xc3 : 0xc2) }

    public mutating func writeUInt(_ v: UInt64) {
        switch v {
        case 0..<128: bytes.append(UInt8(v))
        case 128..<256: bytes.append(0xcc); bytes.append(UInt8(v))
        case 256..<65536: bytes.append(0xcd); be16(UInt16(v))
        case 65536..<4_294_967_296: bytes.append(0xce); be32(UInt32(v))
        default: bytes.append(0xcf); be64(v)
        }
    }

    public mutating func writeInt(_ v: Int64) {
        if v >= 0 { writeUInt(UInt64(v)); return }
        switch v {
        case -32 ..< 0: bytes.append(UInt8(bitPattern: Int8(v)))
        case -128 ..< -32: bytes.append(0xd0); bytes.append(UInt8(bitPattern: Int8(v)))
        case -32768 ..< -128: bytes.append(0xd1); be16(UInt16(bitPattern: Int16(v)))
        case -2_147_483_648 ..< -32768: bytes.append(0xd2); be32(UInt32(bitPattern: Int32(v)))
        default: bytes.append(0xd3); be64(UInt64(bitPattern: v))
        }
    }

    public mutating func writeFloat64(_ v: Double) { bytes.append(0xcb); be64(v.bitPattern) }

    public mutating func writeFloat32(_ v: Float) { bytes.append(0xca); be32(v.bitPattern) }

    public mutating func writeString(_ s: String) {
        var s = s
        s.withUTF8 { utf8 in
            let n = utf8.count
            switch n {
            case 0..<32: bytes.append(0xa0 | UInt8(n))
            case 32..<256: bytes.append(0xd9); bytes.append(UInt8(n))
            case 256..<65536: bytes.append(0xda); be16(UInt16(n))
            default: bytes.append(0xdb); be32(UInt32(n))
            }
            bytes.append(contentsOf: utf8)
        }
    }

    public mutating func writeBinary(_ b: [UInt8]) {
        let n = b.count
        switch n {
        case 0..<256: bytes.append(0xc4); bytes.append(UInt8(n))
        case 256..<65536: bytes.append(0xc5); be16(UInt16(n))
        default: bytes.append(0xc6); be32(UInt32(n))
        }
        bytes.append(contentsOf: b)
    }

    public mutating func writeArrayHeader(_ n: Int) {
        switch n {
        case 0..<16: bytes.append(0x90 | UInt8(n))
        case 16..<65536: bytes.append(0xdc); be16(UInt16(n))
        default: bytes.append(0xdd); be32(UInt32(n))
        }
    }

    public mutating func writeMapHeader(_ n: Int) {
        switch n {
        case 0..<16: bytes.append(0x80 | UInt8(n))
        case 16..<65536: bytes.append(0xde); be16(UInt16(n))
        default: bytes.append(0xdf); be32(UInt32(n))
        }
    }

    public mutating func writeExt(type: Int8, data: [UInt8]) {
        let t = UInt8(bitPattern: type)
        switch data.count {
        case 1: bytes.append(0xd4)
        case 2: bytes.append(0xd5)
        case 4: bytes.append(0xd6)
        case 8: bytes.append(0xd7)
        case 16: bytes.append(0xd8)
        case 0..<256: bytes.append(0xc7); bytes.append(UInt8(data.count))
        case 256..<65536: bytes.append(0xc8); be16(UInt16(data.count))
        default: bytes.append(0xc9); be32(UInt32(data.count))
        }
        bytes.append(t)
        bytes.append(contentsOf: data)
    }

    public mutating func write(_ v: MsgPackValue) {
        switch v {
        case .nil: writeNil()
        case .bool(let b): writeBool(b)
        case .int(let i): writeInt(i)
        case .uint(let u): writeUInt(u)
        case .float32(let f): writeFloat32(f)
        case .float64(let d): writeFloat64(d)
        case .string(let s): writeString(s)
        case .binary(let b): writeBinary(b)
        case .array(let a):
            writeArrayHeader(a.count)
            for e in a { write(e) }
        case .map(let pairs):
            writeMapHeader(pairs.count)
            for p in pairs { write(p.key); write(p.value) }
        case .ext(let t, let d): writeExt(type: t, data: d)
        }
    }
}
