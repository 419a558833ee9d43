// Reading and writing payload maps (docs/protocol.md: every payload is a map with string keys
// in a canonical order; every field is always written, `nil` for an absent optional).
//
// Example:
//   struct Ping: WirePayload {
//       var nonce: UInt64
//       init(wire v: MsgPackValue) throws { let f = try WireFields(v); nonce = try f.u64("nonce") }
//       var wire: MsgPackValue { .stringMap([("nonce", .uint(nonce))]) }
//   }
//
// Decoding ignores unknown keys and reads a missing optional key as nil (a newer minor version
// may append optional fields); a missing required key or a value of the wrong type is a
// `WireError`.

/// Why a payload does not match its schema.
public struct WireError: Error, Hashable, Sendable, CustomStringConvertible {
    public var field: String
    public var reason: String

    public init(_ field: String, _ reason: String) {
        self.field = field
        self.reason = reason
    }

    public var description: String { "\(field): \(reason)" }
}

/// A payload that has a wire form.
public protocol WirePayload: Sendable {
    init(wire: MsgPackValue) throws
    var wire: MsgPackValue { get }
}

/// A closed enum with explicit u8 wire values.
public protocol WireEnum: RawRepresentable, CaseIterable, Hashable, Sendable where RawValue == UInt8 {}

public struct WireFields {
    private var fields: [String: MsgPackValue] = [:]

    public init(_ v: MsgPackValue) throws {
        guard case .map(let pairs) = v else { throw WireError("payload", "expected a map, got \(v.kind)") }
        for p in pairs {
            guard case .string(let k) = p.key else { throw WireError("payload", "non-string key \(p.key.kind)") }
            // First occurrence wins, as serde does not accept duplicates silently either.
            guard fields[k] == nil else { throw WireError(k, "duplicate key") }
            fields[k] = p.value
        }
    }

    public func required(_ k: String) throws -> MsgPackValue {
        guard let v = fields[k] else { throw WireError(k, "missing") }
        return v
    }

    /// nil when absent or `nil`.
    public func optional(_ k: String) -> MsgPackValue? {
        guard let v = fields[k], !v.isNil else { return nil }
        return v
    }

    public func u64(_ k: String) throws -> UInt64 { try Self.u64(try required(k), k) }

    public func u32(_ k: String) throws -> UInt32 {
        let v = try u64(k)
        guard let r = UInt32(exactly: v) else { throw WireError(k, "\(v) exceeds u32") }
        return r
    }

    public func u16(_ k: String) throws -> UInt16 {
        let v = try u64(k)
        guard let r = UInt16(exactly: v) else { throw WireError(k, "\(v) exceeds u16") }
        return r
    }

    public func bool(_ k: String) throws -> Bool {
        guard case .bool(let b) = try required(k) else { throw WireError(k, "expected bool") }
        return b
    }

    public func string(_ k: String) throws -> String { try Self.string(try required(k), k) }

    public func optionalString(_ k: String) throws -> String? {
        guard let v = optional(k) else { return nil }
        return try Self.string(v, k)
    }

    public func optionalF64(_ k: String) throws -> Double? {
        guard let v = optional(k) else { return nil }
        return try Self.f64(v, k)
    }

    public func array<T>(_ k: String, _ element: (MsgPackValue) throws -> T) throws -> [T] {
        guard case .array(let a) = try required(k) else { throw WireError(k, "expected an array") }
        return try a.enumerated().map { i, e in
            do { return try element(e) } catch let e as WireError { throw WireError("\(k)[\(i)].\(e.field)", e.reason) }
        }
    }

    public func u64Array(_ k: String) throws -> [UInt64] { try array(k) { try Self.u64($0, k) } }

    public func enumValue<E: WireEnum>(_ k: String, _: E.Type = E.self) throws -> E { try Self.enumValue(try required(k), k) }

    public func optionalEnum<E: WireEnum>(_ k: String, _: E.Type = E.self) throws -> E? {
        guard let v = optional(k) else { return nil }
        return try Self.enumValue(v, k)
    }

    public func payload<P: WirePayload>(_ k: String, _: P.Type = P.self) throws -> P {
        do { return try P(wire: try required(k)) } catch let e as WireError { throw WireError("\(k).\(e.field)", e.reason) }
    }

    // Element decoders, usable inside `array`.

    public static func u64(_ v: MsgPackValue, _ k: String) throws -> UInt64 {
        guard case .uint(let u) = v else { throw WireError(k, "expected an unsigned integer, got \(v.kind)") }
        return u
    }

    public static func string(_ v: MsgPackValue, _ k: String) throws -> String {
        guard case .string(let s) = v else { throw WireError(k, "expected a string, got \(v.kind)") }
        return s
    }

    public static func f64(_ v: MsgPackValue, _ k: String) throws -> Double {
        switch v {
        case .float64(let d): return d
        case .float32(let f): return Double(f)
        case .uint(let u): return Double(u)
        case .int(let i): return Double(i)
        default: throw WireError(k, "expected a float, got \(v.kind)")
        }
    }

    public static func enumValue<E: WireEnum>(_ v: MsgPackValue, _ k: String) throws -> E {
        let raw = try u64(v, k)
        guard let small = UInt8(exactly: raw), let e = E(rawValue: small) else {
            throw WireError(k, "unknown \(E.self) value \(raw)")
        }
        return e
    }
}

extension WireEnum {
    public var wire: MsgPackValue { .uint(UInt64(rawValue)) }
}

extension Optional where Wrapped == String {
    var wire: MsgPackValue { map { .string($0) } ?? .nil }
}

extension Optional where Wrapped == Double {
    var wire: MsgPackValue { map { .float64($0) } ?? .nil }
}

extension Array where Element == UInt64 {
    var wire: MsgPackValue { .array(map { .uint($0) }) }
}

extension Array where Element: WirePayload {
    var wire: MsgPackValue { .array(map { $0.wire }) }
}
