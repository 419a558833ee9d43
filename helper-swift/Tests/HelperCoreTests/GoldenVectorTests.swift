// Every golden vector of ipc-schema/golden through the Swift codec: decode, re-encode
// byte-for-byte, and compare with the readable JSON form.
import Foundation
import XCTest
import HelperTestSupport
@testable import HelperCore

final class GoldenVectorTests: WatchdogTestCase {
    /// COREML_GOLDEN_DIR (set by scripts/swift-toolchain.sh), else ../../../ipc-schema/golden.
    static func goldenDirectory() -> URL {
        if let env = ProcessInfo.processInfo.environment["COREML_GOLDEN_DIR"], !env.isEmpty {
            return URL(fileURLWithPath: env)
        }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("ipc-schema/golden")
    }

    static func loadCases() throws -> [(name: String, json: JSON)] {
        let dir = goldenDirectory()
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".json") }.sorted()
        return try files.map { f in
            let text = try String(contentsOf: dir.appendingPathComponent(f), encoding: .utf8)
            return (String(f.dropLast(5)), try JSON.parse(text))
        }
    }

    static func unhex(_ s: String) -> [UInt8] {
        let b = Array(s.utf8)
        return stride(from: 0, to: b.count - 1, by: 2).map { UInt8(String(decoding: b[$0...$0 + 1], as: UTF8.self), radix: 16)! }
    }

    /// MessagePack value vs the readable JSON (maps compared by key, as JSON objects are unordered).
    func matches(_ v: MsgPackValue, _ j: JSON, path: String) -> String? {
        switch (v, j) {
        case (.nil, .null): return nil
        case (.bool(let a), .bool(let b)): return a == b ? nil : "\(path): \(a) != \(b)"
        case (.uint(let a), .uint(let b)): return a == b ? nil : "\(path): \(a) != \(b)"
        case (.int(let a), .int(let b)): return a == b ? nil : "\(path): \(a) != \(b)"
        case (.float64(let a), .double(let b)): return a == b ? nil : "\(path): \(a) != \(b)"
        case (.float64(let a), .uint(let b)): return a == Double(b) ? nil : "\(path): \(a) != \(b)"
        case (.string(let a), .string(let b)): return a == b ? nil : "\(path): strings differ"
        case (.array(let a), .array(let b)):
            guard a.count == b.count else { return "\(path): \(a.count) elements vs \(b.count)" }
            for (i, (x, y)) in zip(a, b).enumerated() { if let m = matches(x, y, path: "\(path)[\(i)]") { return m } }
            return nil
        case (.map(let pairs), .object(let o)):
            guard pairs.count == o.count else { return "\(path): \(pairs.count) keys vs \(o.count)" }
            for p in pairs {
                guard case .string(let k) = p.key, let y = o[k] else { return "\(path): key \(p.key) not in JSON" }
                if let m = matches(p.value, y, path: "\(path).\(k)") { return m }
            }
            return nil
        default: return "\(path): \(v.kind) vs \(j)"
        }
    }

    func testEveryGoldenVectorRoundTripsByteForByte() throws {
        let cases = try Self.loadCases()
        XCTAssertGreaterThanOrEqual(cases.count, 40, "golden vectors found in \(Self.goldenDirectory().path)")
        var tags = Set<Tag>(), codes = Set<UInt32>()
        for (name, json) in cases {
            let frame = Self.unhex(try XCTUnwrap(json["hex"]?.string, name))
            XCTAssertGreaterThan(frame.count, 4, name)
            let length = frame.prefix(4).reduce(0) { ($0 << 8) | Int($1) }
            XCTAssertEqual(length, frame.count - 4, "\(name): length prefix")
            let body = Array(frame.dropFirst(4))

            // Typed decode, then re-encode: identical bytes.
            let env: Envelope
            do { env = try Envelope.decode(body) } catch { XCTFail("\(name): \(error)"); continue }
            XCTAssertEqual(env.requestId, json["request_id"]?.uint, name)
            XCTAssertEqual(env.message.tag.rawValue, json["tag"]?.uint, name)
            XCTAssertEqual(env.message.tag.name, json["message"]?.string, name)
            XCTAssertEqual(env.encode(), body, "\(name): typed re-encoding differs")
            tags.insert(env.message.tag)
            if case .error(let e) = env.message { codes.insert(e.code.rawValue) }

            // Generic decode: re-encodes identically and matches the readable form.
            let generic = try MsgPackReader.decode(body)
            XCTAssertEqual(MsgPackWriter.encode(generic), body, "\(name): generic re-encoding differs")
            if let mismatch = matches(try XCTUnwrap(generic.array?[2]), try XCTUnwrap(json["payload"]), path: name) {
                XCTFail("readable form: \(mismatch)")
            }

            // Framing: the reader splits the frame out of a byte stream.
            let (a, b) = try Sys.socketPair()
            defer { try? Sys.closeFD(a); try? Sys.closeFD(b) }
            try FrameWriter(fd: a).writeRaw(frame)
            XCTAssertEqual(try FrameReader(fd: b, maxFrameLength: ProtocolVersion.maxFrameLength).next(), body, name)
        }
        XCTAssertEqual(tags, Set(Tag.allCases), "every message has a golden vector")
        for (code, _) in ErrorCode.known { XCTAssertTrue(codes.contains(code.rawValue), "golden vector for \(code)") }
    }

    func testUnknownTagAndBadPayloadKeepTheRequestId() throws {
        // [99, 5, {}]
        XCTAssertThrowsError(try Envelope.decode([0x93, 0x63, 0x05, 0x80])) { e in
            XCTAssertEqual(e as? EnvelopeError, .unknownTag(tag: 99, requestId: 5))
        }
        // Ping without its nonce, and a Ping whose payload is not MessagePack.
        XCTAssertThrowsError(try Envelope.decode([0x93, 0x02, 0x06, 0x80])) { e in
            XCTAssertEqual((e as? EnvelopeError)?.requestId, 6)
        }
        XCTAssertThrowsError(try Envelope.decode([0x93, 0x02, 0x07, 0xc1])) { e in
            XCTAssertEqual((e as? EnvelopeError)?.requestId, 7)
        }
        XCTAssertThrowsError(try Envelope.decode([0x92, 0x02, 0x07])) { e in
            XCTAssertNil((e as? EnvelopeError)?.requestId)
        }
        // Unknown keys are ignored; a missing optional key reads as nil.
        let ping = MsgPackValue.array([.uint(2), .uint(1), .stringMap([("nonce", .uint(3)), ("future", .bool(true))])])
        XCTAssertEqual(try Envelope.decode(MsgPackWriter.encode(ping)).message, .ping(Ping(nonce: 3)))
    }
}
