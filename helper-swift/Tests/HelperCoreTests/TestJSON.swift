// A minimal JSON reader for the golden-vector files (keeps integers exact up to u64::MAX,
// which Foundation's JSONSerialization does not promise).
import Foundation

indirect enum JSON: Equatable {
    case null
    case bool(Bool)
    case uint(UInt64)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSON])
    case object([String: JSON])

    subscript(key: String) -> JSON? { if case .object(let o) = self { return o[key] } else { return nil } }
    var string: String? { if case .string(let s) = self { return s } else { return nil } }
    var uint: UInt64? { if case .uint(let u) = self { return u } else { return nil } }

    struct ParseError: Error { var offset: Int; var reason: String }

    static func parse(_ text: String) throws -> JSON {
        var p = Parser(bytes: Array(text.utf8))
        let v = try p.value()
        p.skipSpace()
        guard p.i == p.bytes.count else { throw ParseError(offset: p.i, reason: "trailing text") }
        return v
    }

    private struct Parser {
        let bytes: [UInt8]
        var i = 0

        mutating func skipSpace() { while i < bytes.count, [0x20, 0x0a, 0x0d, 0x09].contains(bytes[i]) { i += 1 } }

        mutating func expect(_ s: String) throws {
            for b in s.utf8 {
                guard i < bytes.count, bytes[i] == b else { throw ParseError(offset: i, reason: "expected \(s)") }
                i += 1
            }
        }

        mutating func value() throws -> JSON {
            skipSpace()
            guard i < bytes.count else { throw ParseError(offset: i, reason: "end of input") }
            switch bytes[i] {
            case UInt8(ascii: "n"): try expect("null"); return .null
            case UInt8(ascii: "t"): try expect("true"); return .bool(true)
            case UInt8(ascii: "f"): try expect("false"); return .bool(false)
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "["):
                i += 1
                var out: [JSON] = []
                skipSpace()
                if i < bytes.count, bytes[i] == UInt8(ascii: "]") { i += 1; return .array(out) }
                while true {
                    out.append(try value())
                    skipSpace()
                    guard i < bytes.count else { throw ParseError(offset: i, reason: "unterminated array") }
                    i += 1
                    if bytes[i - 1] == UInt8(ascii: "]") { return .array(out) }
                    guard bytes[i - 1] == UInt8(ascii: ",") else { throw ParseError(offset: i, reason: "expected ,") }
                }
            case UInt8(ascii: "{"):
                i += 1
                var out: [String: JSON] = [:]
                skipSpace()
                if i < bytes.count, bytes[i] == UInt8(ascii: "}") { i += 1; return .object(out) }
                while true {
                    skipSpace()
                    let k = try string()
                    skipSpace()
                    try expect(":")
                    out[k] = try value()
                    skipSpace()
                    guard i < bytes.count else { throw ParseError(offset: i, reason: "unterminated object") }
                    i += 1
                    if bytes[i - 1] == UInt8(ascii: "}") { return .object(out) }
                    guard bytes[i - 1] == UInt8(ascii: ",") else { throw ParseError(offset: i, reason: "expected ,") }
                }
            default: return try number()
            }
        }

        mutating func string() throws -> String {
            try expect("\"")
            var out = [UInt8]()
            while i < bytes.count {
                let b = bytes[i]
                i += 1
                if b == UInt8(ascii: "\"") { return String(decoding: out, as: UTF8.self) }
                if b != UInt8(ascii: "\\") { out.append(b); continue }
                guard i < bytes.count else { break }
                let e = bytes[i]
                i += 1
                switch e {
                case UInt8(ascii: "n"): out.append(0x0a)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "r"): out.append(0x0d)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0c)
                case UInt8(ascii: "u"):
                    var code = try hex4()
                    if (0xd800..<0xdc00).contains(code) {
                        try expect("\\u")
                        code = 0x10000 + ((code - 0xd800) << 10) + (try hex4() - 0xdc00)
                    }
                    out.append(contentsOf: Array(String(Character(Unicode.Scalar(code)!)).utf8))
                default: out.append(e)
                }
            }
            throw ParseError(offset: i, reason: "unterminated string")
        }

        mutating func hex4() throws -> UInt32 {
            guard i + 4 <= bytes.count, let v = UInt32(String(decoding: bytes[i..<i + 4], as: UTF8.self), radix: 16)
            else { throw ParseError(offset: i, reason: "bad \\u escape") }
            i += 4
            return v
        }

        mutating func number() throws -> JSON {
            let start = i
            while i < bytes.count, "+-0123456789.eE".utf8.contains(bytes[i]) { i += 1 }
            let text = String(decoding: bytes[start..<i], as: UTF8.self)
            if let u = UInt64(text) { return .uint(u) }
            if let n = Int64(text) { return .int(n) }
            if let d = Double(text) { return .double(d) }
            throw ParseError(offset: start, reason: "bad number \(text)")
        }
    }
}
