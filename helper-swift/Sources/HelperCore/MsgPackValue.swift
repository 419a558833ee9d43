// A MessagePack value tree, the common currency between bytes and typed messages.
//
// Example:
//   let v: MsgPackValue = .array([.uint(7), .string("echo"), .map([MsgPackPair(.string("k"), .nil)])])
//   let bytes = MsgPackWriter.encode(v)          // canonical bytes, as rmp / rmp-serde write them
//   let back = try MsgPackReader.decode(bytes)   // == v
//
// Integers are canonical: a decoded non-negative integer is always `.uint`, a negative one is
// always `.int`, whatever marker carried it. `MsgPackValue.integer(_:)` builds the canonical
// case from a signed value.
public struct MsgPackPair: Hashable, Sendable {
    public var key: MsgPackValue
    public var value: MsgPackValue

    public init(_ key: MsgPackValue, _ value: MsgPackValue) {
        self.key = key
        self.value = value
    }
}

public indirect enum MsgPackValue: Hashable, Sendable {
    case `nil`
    case bool(Bool)
    /// A negative integer (non-negative values decode as `.uint`).
    case int(Int64)
    case uint(UInt64)
    case float32(Float)
    case float64(Double)
    case string(String)
    case binary([UInt8])
    case array([MsgPackValue])
    /// Pairs in wire order (MessagePack maps are ordered on the wire; order is kept).
    case map([MsgPackPair])
    case ext(type: Int8, data: [UInt8])

    /// The canonical case for a signed integer.
    public static func integer(_ v: Int64) -> MsgPackValue { v < 0 ? .int(v) : .uint(UInt64(v)) }

    /// The canonical case for an unsigned integer.
    public static func integer(_ v: UInt64) -> MsgPackValue { .uint(v) }

    /// A map with string keys, in the given order.
    public static func stringMap(_ pairs: [(String, MsgPackValue)]) -> MsgPackValue {
        .map(pairs.map { MsgPackPair(.string($0.0), $0.1) })
    }

    public var isNil: Bool { if case .nil = self { return true } else { return false } }

    /// A short name of the case, for error messages.
    public var kind: String {
        switch self {
        case .nil: return "nil"
        case .bool: return "bool"
        case .int, .uint: return "integer"
        case .float32: return "float32"
        case .float64: return "float64"
        case .string: return "string"
        case .binary: return "binary"
        case .array: return "array"
        case .map: return "map"
        case .ext: return "ext"
        }
    }

    public var uint64: UInt64? { if case .uint(let v) = self { return v } else { return nil } }

    public var int64: Int64? {
        switch self {
        case .int(let v): return v
        case .uint(let v): return v <= UInt64(Int64.max) ? Int64(v) : nil
        default: return nil
        }
    }

    public var double: Double? {
        switch self {
        case .float64(let v): return v
        case .float32(let v): return Double(v)
        default: return nil
        }
    }

    public var string: String? { if case .string(let v) = self { return v } else { return nil } }
    public var bool: Bool? { if case .bool(let v) = self { return v } else { return nil } }
    public var array: [MsgPackValue]? { if case .array(let v) = self { return v } else { return nil } }
    public var binary: [UInt8]? { if case .binary(let v) = self { return v } else { return nil } }
    public var mapPairs: [MsgPackPair]? { if case .map(let v) = self { return v } else { return nil } }

    /// Looks a string key up in a map (first match).
    public subscript(key: String) -> MsgPackValue? {
        guard case .map(let pairs) = self else { return nil }
        return pairs.first { $0.key == .string(key) }?.value
    }

    /// Total equality that treats two NaNs with the same bits as equal (for golden tests).
    public func bitwiseEqual(_ other: MsgPackValue) -> Bool {
        switch (self, other) {
        case (.float32(let a), .float32(let b)): return a.bitPattern == b.bitPattern
        case (.float64(let a), .float64(let b)): return a.bitPattern == b.bitPattern
        case (.array(let a), .array(let b)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.bitwiseEqual($1) }
        case (.map(let a), .map(let b)):
            return a.count == b.count
                && zip(a, b).allSatisfy { $0.key.bitwiseEqual($1.key) && $0.value.bitwiseEqual($1.value) }
        default: return self == other
        }
    }
}

/// Why bytes are not a (acceptable) MessagePack value.
public enum MsgPackError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The input ended inside a value.
    case truncated(offset: Int)
    /// 0xc1 (never used) or a marker this decoder does not accept.
    case invalidMarker(UInt8, offset: Int)
    /// A string that is not valid UTF-8.
    case invalidUTF8(offset: Int)
    /// Nesting deeper than the decoder's limit.
    case tooDeep(limit: Int)
    /// A length prefix larger than the bytes that remain.
    case lengthExceedsInput(claimed: UInt64, remaining: Int, offset: Int)
    /// Bytes left after one complete value.
    case trailingBytes(count: Int)

    public var description: String {
        switch self {
        case .truncated(let o): return "truncated MessagePack at byte \(o)"
        case .invalidMarker(let m, let o): return "invalid MessagePack marker 0x\(String(m, radix: 16)) at byte \(o)"
        case .invalidUTF8(let o): return "string at byte \(o) is not UTF-8"
        case .tooDeep(let l): return "MessagePack nesting deeper than \(l)"
        case .lengthExceedsInput(let c, let r, let o):
            return "length \(c) at byte \(o) exceeds the \(r) bytes left"
        case .trailingBytes(let n): return "\(n) bytes after the MessagePack value"
        }
    }
}
