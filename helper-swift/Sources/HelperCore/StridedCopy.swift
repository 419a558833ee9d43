// Element copies between two strided layouts of the same shape (strides in elements).
//
// Example:
//   // 2 rows of 1500 fp16 values, padded to 1504 per row (Neural-Engine output) -> dense slot
//   StridedCopy.copy(shape: [2, 1500], elementSize: 2, from: ane, strides: [1504, 1], to: slot, strides: [1500, 1])
//
// Runs are as long as both layouts allow: one memcpy when both are row-major, one per row when
// only the innermost dimension is dense, one per element otherwise. Float16 is handled as raw
// 16-bit words (Float16 is unavailable on macOS x86_64), so copies never convert.
public enum StridedCopy {
    /// Calls `body(srcElementOffset, dstElementOffset, runLength)` for every run of elements that
    /// is contiguous in both layouts, in row-major order of the shape.
    public static func forEachRun(shape: [UInt64], src: [UInt64], dst: [UInt64],
                                  _ body: (_ src: Int, _ dst: Int, _ count: Int) -> Void) {
        precondition(shape.count == src.count && shape.count == dst.count, "rank mismatch")
        if shape.contains(0) { return }
        if shape.isEmpty { return body(0, 0, 1) }
        let total = shape.reduce(1, *)
        let dense = TensorRef.rowMajorStrides(shape)
        if src == dense && dst == dense { return body(0, 0, Int(total)) }
        // Drop size-1 dimensions: their stride never matters.
        let dims = (0..<shape.count).filter { shape[$0] > 1 }
        if dims.isEmpty { return body(0, 0, 1) }
        let last = dims[dims.count - 1]
        let innerDense = src[last] == 1 && dst[last] == 1
        let run = innerDense ? Int(shape[last]) : 1
        let outer = innerDense ? Array(dims.dropLast()) : dims
        var index = [UInt64](repeating: 0, count: outer.count)
        while true {
            var s = 0, d = 0
            for (k, dim) in outer.enumerated() {
                s += Int(index[k] * src[dim])
                d += Int(index[k] * dst[dim])
            }
            body(s, d, run)
            // Odometer increment over the outer dimensions, last fastest.
            var k = outer.count - 1
            while k >= 0 {
                index[k] += 1
                if index[k] < shape[outer[k]] { break }
                index[k] = 0
                k -= 1
            }
            if k < 0 { return }
        }
    }

    /// Copies every element of `shape` from one layout to the other.
    public static func copy(shape: [UInt64], elementSize: Int,
                            from src: UnsafeRawPointer, strides srcStrides: [UInt64],
                            to dst: UnsafeMutableRawPointer, strides dstStrides: [UInt64]) {
        forEachRun(shape: shape, src: srcStrides, dst: dstStrides) { s, d, n in
            (dst + d * elementSize).copyMemory(from: src + s * elementSize, byteCount: n * elementSize)
        }
    }

    /// `dst = src + c` for float32 elements, little-endian as the platform stores them.
    public static func addFloat32(shape: [UInt64], constant c: Float,
                                  from src: UnsafeRawPointer, strides srcStrides: [UInt64],
                                  to dst: UnsafeMutableRawPointer, strides dstStrides: [UInt64]) {
        forEachRun(shape: shape, src: srcStrides, dst: dstStrides) { s, d, n in
            for i in 0..<n {
                let v = (src + (s + i) * 4).loadUnaligned(as: Float.self)
                (dst + (d + i) * 4).storeBytes(of: v + c, as: Float.self)
            }
        }
    }
}
