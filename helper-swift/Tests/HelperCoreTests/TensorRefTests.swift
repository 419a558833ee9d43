// Tensor-ref validation (docs/protocol.md section 5) and strided copies.
import XCTest
import HelperTestSupport
@testable import HelperCore

final class TensorRefTests: WatchdogTestCase {
    private func r(_ shape: [UInt64], _ strides: [UInt64], offset: UInt64 = 0, len: UInt64, _ d: DType = .f32) -> TensorRef {
        TensorRef(dtype: d, shape: shape, strides: strides, region: 0, offset: offset, len: len)
    }

    func testContiguousAndPaddedSpans() throws {
        let t = TensorRef.contiguous(.f16, shape: [2, 3, 4], region: 1, offset: 16384)
        XCTAssertEqual(t.strides, [12, 4, 1])
        XCTAssertEqual(t.len, 48)
        XCTAssertNoThrow(try t.validate(regionSize: 16384 + 48))
        XCTAssertThrowsError(try t.validate(regionSize: 16384 + 47)) {
            XCTAssertEqual($0 as? TensorRefError, .outOfRegion(offset: 16384, end: 16432, regionSize: 16431))
        }
        // Two rows of 1500 padded to 1504: the span ends after the last real element.
        XCTAssertNoThrow(try r([2, 1500], [1504, 1], len: (1504 + 1500) * 4).validate(regionSize: 1 << 20))
        XCTAssertThrowsError(try r([2, 1500], [1504, 1], len: 2 * 1504 * 4).validate(regionSize: 1 << 20))
        XCTAssertEqual(try r([2, 3], [8, 1], len: 22, .f16).spanBytes(), 22)
    }

    func testRejectsBadRefs() {
        XCTAssertThrowsError(try r([2, 2], [1], len: 16).validate(regionSize: 64)) {
            XCTAssertEqual($0 as? TensorRefError, .rankMismatch(shape: 2, strides: 1))
        }
        XCTAssertThrowsError(try r([2, 2], [1, 1], len: 12).validate(regionSize: 64)) {
            XCTAssertEqual($0 as? TensorRefError, .overlapping)
        }
        XCTAssertThrowsError(try r([4], [1], offset: 2, len: 16).validate(regionSize: 64)) {
            XCTAssertEqual($0 as? TensorRefError, .misaligned(offset: 2, align: 4))
        }
        XCTAssertThrowsError(try r([UInt64.max, 2], [2, 1], len: 0).validate(regionSize: 64)) {
            XCTAssertEqual($0 as? TensorRefError, .overflow)
        }
        XCTAssertThrowsError(try r([4], [1], offset: UInt64.max - 7, len: 16).validate(regionSize: UInt64.max)) {
            XCTAssertEqual($0 as? TensorRefError, .overflow)
        }
        XCTAssertThrowsError(try TensorRef.contiguous(.u8, shape: [UInt64](repeating: 1, count: 9), region: 0, offset: 0)
            .validate(regionSize: 64)) { XCTAssertEqual($0 as? TensorRefError, .rankTooLarge(9)) }
    }

    func testEmptyAndScalar() {
        XCTAssertNoThrow(try r([0, 5], [5, 1], len: 0).validate(regionSize: 0))
        XCTAssertNoThrow(try r([], [], len: 4).validate(regionSize: 4))
        XCTAssertNoThrow(try r([1, 3], [0, 1], len: 12).validate(regionSize: 12), "size-1 dims never overlap")
    }

    func testStridedRunsAndCopies() {
        var runs: [[Int]] = []
        StridedCopy.forEachRun(shape: [2, 3], src: [3, 1], dst: [3, 1]) { runs.append([$0, $1, $2]) }
        XCTAssertEqual(runs, [[0, 0, 6]], "both dense: one run")
        runs = []
        StridedCopy.forEachRun(shape: [2, 3], src: [8, 1], dst: [3, 1]) { runs.append([$0, $1, $2]) }
        XCTAssertEqual(runs, [[0, 0, 3], [8, 3, 3]], "padded rows: one run per row")
        runs = []
        StridedCopy.forEachRun(shape: [2, 2], src: [1, 2], dst: [2, 1]) { runs.append([$0, $1, $2]) }
        XCTAssertEqual(runs, [[0, 0, 1], [2, 1, 1], [1, 2, 1], [3, 3, 1]], "transposed: element by element")
        runs = []
        StridedCopy.forEachRun(shape: [0, 3], src: [3, 1], dst: [3, 1]) { runs.append([$0, $1, $2]) }
        XCTAssertEqual(runs, [])
        StridedCopy.forEachRun(shape: [], src: [], dst: []) { runs.append([$0, $1, $2]) }
        XCTAssertEqual(runs, [[0, 0, 1]])

        // A 3-D copy out of a padded layout into a dense one, checked element by element.
        let shape: [UInt64] = [2, 3, 5], src: [UInt64] = [48, 16, 1]
        var source = [UInt16](repeating: 0xffff, count: 96)
        for i in 0..<2 {
            for j in 0..<3 {
                for k in 0..<5 {
                    let at: Int = i * 48 + j * 16 + k
                    source[at] = UInt16(i * 100 + j * 10 + k)
                }
            }
        }
        var dense = [UInt16](repeating: 0, count: 30)
        source.withUnsafeBytes { s in
            dense.withUnsafeMutableBytes { d in
                StridedCopy.copy(shape: shape, elementSize: 2, from: s.baseAddress!, strides: src,
                                 to: d.baseAddress!, strides: TensorRef.rowMajorStrides(shape))
            }
        }
        var expected: [UInt16] = []
        for n in 0..<30 {
            let i: Int = n / 15, j: Int = (n / 5) % 3, k: Int = n % 5
            expected.append(UInt16(i * 100 + j * 10 + k))
        }
        XCTAssertEqual(dense, expected)
    }
}
