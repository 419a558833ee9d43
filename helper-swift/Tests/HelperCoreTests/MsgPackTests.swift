// MessagePack codec: canonical bytes (as rmp writes them) and hostile input.
import Foundation
import XCTest
import HelperTestSupport
@testable import HelperCore

final class MsgPackTests: WatchdogTestCase {
    private func hex(_ b: [UInt8]) -> String { b.map { String(format: "%02x", $0) }.joined() }

    private func assertEncodes(_ v: MsgPackValue, _ expected: String, file: StaticString = #filePath, line: UInt = #line) {
        let bytes = MsgPackWriter.encode(v)
        XCTAssertEqual(hex(bytes), expected, "encoding \(v)", file: file, line: line)
        XCTAssertEqual(try MsgPackReader.decode(bytes), v, "decoding \(expected)", file: file, line: line)
    }

    func testUnsignedIntegersUseTheShortestForm() {
        assertEncodes(.uint(0), "00")
        assertEncodes(.uint(127), "7f")
        assertEncodes(.uint(128), "cc80")
        assertEncodes(.uint(255), "ccff")
        assertEncodes(.uint(256), "cd0100")
        assertEncodes(.uint(65535), "cdffff")
        assertEncodes(.uint(65536), "ce00010000")
        assertEncodes(.uint(4_294_967_295), "ceffffffff")
        assertEncodes(.uint(4_294_967_296), "cf0000000100000000")
        assertEncodes(.uint(UInt64.max), "cfffffffffffffffff")
    }

    func testSignedIntegersAsRmpWriteThem() {
        // Non-negative signed values take the unsigned markers (rmp write_sint).
        XCTAssertEqual(hex(MsgPackWriter.encode(.int(5))), "05")
        XCTAssertEqual(hex(MsgPackWriter.encode(.int(200))), "ccc8")
        assertEncodes(.int(-1), "ff")
        assertEncodes(.int(-32), "e0")
        assertEncodes(.int(-33), "d0df")
        assertEncodes(.int(-128), "d080")
        assertEncodes(.int(-129), "d1ff7f")
        assertEncodes(.int(-32768), "d18000")
        assertEncodes(.int(-32769), "d2ffff7fff")
        assertEncodes(.int(Int64(Int32.min)), "d280000000")
        assertEncodes(.int(Int64(Int32.min) - 1), "d3ffffffff7fffffff")
        assertEncodes(.int(Int64.min), "d38000000000000000")
    }

    func testNonCanonicalIntegerMarkersDecodeToTheCanonicalCase() throws {
        XCTAssertEqual(try MsgPackReader.decode([0xd0, 0x05]), .uint(5))
        XCTAssertEqual(try MsgPackReader.decode([0xcd, 0x00, 0x01]), .uint(1))
        XCTAssertEqual(try MsgPackReader.decode([0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]), .int(-2))
    }

    func testFloatsKeepTheirWidth() {
        assertEncodes(.float64(1.5), "cb3ff8000000000000")
        assertEncodes(.float64(0), "cb0000000000000000")
        assertEncodes(.float32(1.5), "ca3fc00000")
        let nan = MsgPackWriter.encode(.float64(.nan))
        XCTAssertEqual(nan.first, 0xcb)
        XCTAssertTrue((try MsgPackReader.decode(nan)).bitwiseEqual(.float64(.nan)))
    }

    func testStringLengthForms() {
        assertEncodes(.string(""), "a0")
        assertEncodes(.string("é"), "a2c3a9")
        for (n, prefix) in [(31, "bf"), (32, "d920"), (255, "d9ff"), (256, "da0100"), (65535, "daffff"), (65536, "db00010000")] {
            let s = String(repeating: "a", count: n)
            let b = MsgPackWriter.encode(.string(s))
            XCTAssertTrue(hex(b).hasPrefix(prefix), "length \(n): \(hex(Array(b.prefix(5))))")
            XCTAssertEqual(b.count, n + prefix.count / 2)
            XCTAssertEqual(try MsgPackReader.decode(b), .string(s))
        }
    }

    func testContainersNilBoolBinaryExt() {
        assertEncodes(.nil, "c0")
        assertEncodes(.bool(true), "c3")
        assertEncodes(.bool(false), "c2")
        assertEncodes(.array([]), "90")
        assertEncodes(.array(Array(repeating: .uint(1), count: 15)), "9f" + String(repeating: "01", count: 15))
        assertEncodes(.array(Array(repeating: .uint(1), count: 16)), "dc0010" + String(repeating: "01", count: 16))
        assertEncodes(.map([]), "80")
        assertEncodes(.stringMap([("a", .uint(1)), ("b", .nil)]), "82a16101a162c0")
        let big = MsgPackValue.map((0..<16).map { MsgPackPair(.uint(UInt64($0)), .nil) })
        XCTAssertTrue(hex(MsgPackWriter.encode(big)).hasPrefix("de0010"))
        assertEncodes(.binary([1, 2, 3]), "c403010203")
        assertEncodes(.binary([]), "c400")
        assertEncodes(.ext(type: 5, data: [1, 2, 3, 4]), "d60501020304")
        assertEncodes(.ext(type: -1, data: [9, 9, 9]), "c703ff090909")
    }

    func testMapKeepsWireOrderAndLookup() throws {
        let v = try MsgPackReader.decode([0x82, 0xa1, 0x7a, 0x01, 0xa1, 0x61, 0x02])
        XCTAssertEqual(v.mapPairs?.map { $0.key.string }, ["z", "a"])
        XCTAssertEqual(v["a"], .uint(2))
        XCTAssertNil(v["q"])
    }

    func testHostileLengthsFailWithoutAllocating() {
        // array32 claiming 4 billion elements in a 5-byte input.
        XCTAssertThrowsError(try MsgPackReader.decode([0xdd, 0xff, 0xff, 0xff, 0xff])) { e in
            guard case MsgPackError.lengthExceedsInput = e else { return XCTFail("\(e)") }
        }
        XCTAssertThrowsError(try MsgPackReader.decode([0xdf, 0xff, 0xff, 0xff, 0xff, 0x00]))
        XCTAssertThrowsError(try MsgPackReader.decode([0xdb, 0xff, 0xff, 0xff, 0xff, 0x61]))
        XCTAssertThrowsError(try MsgPackReader.decode([0xc6, 0x7f, 0xff, 0xff, 0xff]))
        XCTAssertThrowsError(try MsgPackReader.decode([0xcf, 0x00])) { e in
            XCTAssertEqual(e as? MsgPackError, .truncated(offset: 1))
        }
    }

    func testRejectsInvalidMarkerUTF8TrailingAndDepth() {
        XCTAssertEqual(try? MsgPackReader.decode([0xc1]), nil)
        XCTAssertThrowsError(try MsgPackReader.decode([0xa2, 0xc3, 0x28])) { e in
            XCTAssertEqual(e as? MsgPackError, .invalidUTF8(offset: 0))
        }
        XCTAssertThrowsError(try MsgPackReader.decode([0x01, 0x02])) { e in
            XCTAssertEqual(e as? MsgPackError, .trailingBytes(count: 1))
        }
        let deep = [UInt8](repeating: 0x91, count: 100) + [0x00]
        XCTAssertThrowsError(try MsgPackReader.decode(deep)) { e in
            XCTAssertEqual(e as? MsgPackError, .tooDeep(limit: MsgPackReader.defaultMaxDepth))
        }
    }

    /// 50,000 random and mutated inputs: the decoder returns or throws, never traps, and
    /// whatever it accepts re-encodes to a value that decodes to itself.
    func testRandomAndMutatedInputsNeverTrap() throws {
        var rng = SplitMix64(seed: 0x5eed)
        let seedValue = MsgPackValue.array([
            .uint(30), .uint(UInt64.max),
            .stringMap([("model_id", .uint(7)), ("inputs", .array([.stringMap([("name", .string("x"))])])),
                        ("cost", .float64(0.25)), ("n", .int(-5)), ("b", .binary([1, 2]))]),
        ])
        let seed = MsgPackWriter.encode(seedValue)
        let deadline = Date().addingTimeInterval(60)
        var accepted = 0
        for i in 0..<50_000 {
            XCTAssertLessThan(Date(), deadline, "fuzz loop watchdog")
            var b: [UInt8]
            if i % 2 == 0 {
                b = seed
                for _ in 0..<(1 + Int(rng.next() % 4)) {
                    let pos = Int(rng.next() % UInt64(b.count))
                    switch rng.next() % 3 {
                    case 0: b[pos] = UInt8(truncatingIfNeeded: rng.next())
                    case 1: b.remove(at: pos)
                    default: b.insert(UInt8(truncatingIfNeeded: rng.next()), at: pos)
                    }
                    if b.isEmpty { b = [0xc0] }
                }
            } else {
                b = (0..<Int(rng.next() % 40)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            }
            if let v = try? MsgPackReader.decode(b) {
                accepted += 1
                XCTAssertTrue(try MsgPackReader.decode(MsgPackWriter.encode(v)).bitwiseEqual(v))
            }
        }
        XCTAssertGreaterThan(accepted, 0)
    }
}

/// A small deterministic generator for the fuzz loops.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}
