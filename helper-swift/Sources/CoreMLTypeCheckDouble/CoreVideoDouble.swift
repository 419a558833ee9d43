// CoreMLTypeCheckDouble (Linux only): the Core Video pixel-buffer API the engine uses for image
// features, as Apple's SDK imports it into Swift (CVPixelBuffer.h, CVBuffer.h, CVReturn.h,
// CVPixelBuffer pixel format constants). Signatures follow Apple's documentation pages:
//   func CVPixelBufferCreateWithBytes(_ allocator: CFAllocator?, _ width: Int, _ height: Int,
//        _ pixelFormatType: OSType, _ baseAddress: UnsafeMutableRawPointer, _ bytesPerRow: Int,
//        _ releaseCallback: CVPixelBufferReleaseBytesCallback?, _ releaseRefCon: UnsafeMutableRawPointer?,
//        _ pixelBufferAttributes: CFDictionary?, _ pixelBufferOut: UnsafeMutablePointer<CVPixelBuffer?>) -> CVReturn
//   func CVPixelBufferCreate(_ allocator: CFAllocator?, _ width: Int, _ height: Int, _ pixelFormatType: OSType,
//        _ pixelBufferAttributes: CFDictionary?, _ pixelBufferOut: UnsafeMutablePointer<CVPixelBuffer?>) -> CVReturn
//   func CVPixelBufferLockBaseAddress(_ pixelBuffer: CVPixelBuffer, _ lockFlags: CVPixelBufferLockFlags) -> CVReturn
//   typealias CVPixelBufferReleaseBytesCallback = (UnsafeMutableRawPointer?, UnsafeRawPointer?) -> Void  (a C function pointer)
//   struct CVPixelBufferLockFlags: OptionSet, Sendable { static var readOnly }  (rawValue CVOptionFlags = UInt64)
// CVPixelBuffer is `typealias CVPixelBuffer = CVImageBuffer = CVBuffer`, a Core Foundation class
// with no Sendable conformance. CFAllocator and CFDictionary stand for the Core Foundation
// classes (Foundation on Linux does not export them); the engine passes nil for both.
//
// Behaviour the double keeps: a buffer made over caller memory uses that memory and the given
// bytesPerRow, and calls the release callback when the buffer is freed; CVPixelBufferCreate
// allocates rows padded to 64 bytes (what Core Video does on Apple Silicon, so the copy path
// meets a padded stride); base address access needs the lock, as Core Video requires.
#if os(Linux)
import Foundation

public typealias OSType = UInt32
public typealias CVReturn = Int32
public typealias CVOptionFlags = UInt64

public let kCVReturnSuccess: CVReturn = 0
public let kCVReturnInvalidArgument: CVReturn = -6661
public let kCVReturnInvalidPixelFormat: CVReturn = -6680

public let kCVPixelFormatType_32ARGB: OSType = 0x0000_0020
public let kCVPixelFormatType_32BGRA: OSType = 0x4247_5241
public let kCVPixelFormatType_OneComponent8: OSType = 0x4C30_3038
public let kCVPixelFormatType_OneComponent16Half: OSType = 0x4C30_3068

/// Core Foundation allocator (the engine passes nil: the default allocator).
public final class CFAllocator {}
/// Core Foundation dictionary (the engine passes nil: no attributes).
public final class CFDictionary {}

public struct CVPixelBufferLockFlags: OptionSet, Sendable {
    public let rawValue: CVOptionFlags
    public init(rawValue: CVOptionFlags) { self.rawValue = rawValue }
    public static var readOnly: CVPixelBufferLockFlags { CVPixelBufferLockFlags(rawValue: 1) }
}

public typealias CVPixelBufferReleaseBytesCallback = @convention(c) (UnsafeMutableRawPointer?, UnsafeRawPointer?) -> Void

/// A Core Video buffer. Not Sendable, as in the SDK.
public class CVBuffer {
    let width: Int
    let height: Int
    let format: OSType
    let base: UnsafeMutableRawPointer
    let bytesPerRow: Int
    let release: (() -> Void)?
    var locks = 0

    init(width: Int, height: Int, format: OSType, base: UnsafeMutableRawPointer, bytesPerRow: Int, release: (() -> Void)?) {
        self.width = width
        self.height = height
        self.format = format
        self.base = base
        self.bytesPerRow = bytesPerRow
        self.release = release
    }

    deinit { release?() }

    static func bytesPerPixel(_ f: OSType) -> Int? {
        switch f {
        case kCVPixelFormatType_32ARGB, kCVPixelFormatType_32BGRA: return 4
        case kCVPixelFormatType_OneComponent8: return 1
        case kCVPixelFormatType_OneComponent16Half: return 2
        default: return nil
        }
    }
}

public typealias CVImageBuffer = CVBuffer
public typealias CVPixelBuffer = CVImageBuffer

public func CVPixelBufferCreateWithBytes(_ allocator: CFAllocator?, _ width: Int, _ height: Int, _ pixelFormatType: OSType,
                                         _ baseAddress: UnsafeMutableRawPointer, _ bytesPerRow: Int,
                                         _ releaseCallback: CVPixelBufferReleaseBytesCallback?,
                                         _ releaseRefCon: UnsafeMutableRawPointer?, _ pixelBufferAttributes: CFDictionary?,
                                         _ pixelBufferOut: UnsafeMutablePointer<CVPixelBuffer?>) -> CVReturn {
    guard let bpp = CVBuffer.bytesPerPixel(pixelFormatType) else { return kCVReturnInvalidPixelFormat }
    guard width > 0, height > 0, bytesPerRow >= width * bpp else { return kCVReturnInvalidArgument }
    pixelBufferOut.pointee = CVBuffer(width: width, height: height, format: pixelFormatType, base: baseAddress,
                                      bytesPerRow: bytesPerRow, release: releaseCallback.map { cb in { cb(releaseRefCon, baseAddress) } })
    return kCVReturnSuccess
}

public func CVPixelBufferCreate(_ allocator: CFAllocator?, _ width: Int, _ height: Int, _ pixelFormatType: OSType,
                                _ pixelBufferAttributes: CFDictionary?, _ pixelBufferOut: UnsafeMutablePointer<CVPixelBuffer?>) -> CVReturn {
    guard let bpp = CVBuffer.bytesPerPixel(pixelFormatType) else { return kCVReturnInvalidPixelFormat }
    guard width > 0, height > 0 else { return kCVReturnInvalidArgument }
    let row = (width * bpp + 63) / 64 * 64
    let p = UnsafeMutableRawPointer.allocate(byteCount: row * height, alignment: 64)
    p.initializeMemory(as: UInt8.self, repeating: 0, count: row * height)
    pixelBufferOut.pointee = CVBuffer(width: width, height: height, format: pixelFormatType, base: p, bytesPerRow: row,
                                      release: { p.deallocate() })
    return kCVReturnSuccess
}

public func CVPixelBufferGetWidth(_ pixelBuffer: CVPixelBuffer) -> Int { pixelBuffer.width }
public func CVPixelBufferGetHeight(_ pixelBuffer: CVPixelBuffer) -> Int { pixelBuffer.height }
public func CVPixelBufferGetBytesPerRow(_ pixelBuffer: CVPixelBuffer) -> Int { pixelBuffer.bytesPerRow }
public func CVPixelBufferGetPixelFormatType(_ pixelBuffer: CVPixelBuffer) -> OSType { pixelBuffer.format }

/// NULL unless the base address is locked (Core Video's rule for CPU access).
public func CVPixelBufferGetBaseAddress(_ pixelBuffer: CVPixelBuffer) -> UnsafeMutableRawPointer? {
    pixelBuffer.locks > 0 ? pixelBuffer.base : nil
}

public func CVPixelBufferLockBaseAddress(_ pixelBuffer: CVPixelBuffer, _ lockFlags: CVPixelBufferLockFlags) -> CVReturn {
    pixelBuffer.locks += 1
    return kCVReturnSuccess
}

public func CVPixelBufferUnlockBaseAddress(_ pixelBuffer: CVPixelBuffer, _ unlockFlags: CVPixelBufferLockFlags) -> CVReturn {
    guard pixelBuffer.locks > 0 else { return kCVReturnInvalidArgument }
    pixelBuffer.locks -= 1
    return kCVReturnSuccess
}
#endif
