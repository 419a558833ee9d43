// Image features (protocol 2.1): the image part of a TensorSpec, and the checks on image refs
// (mirrors ipc-schema/src/image.rs).
//
// Example:
//   let image = ImageSpec(width: 3, height: 2, pixelFormat: .bgra8)
//   let spec = TensorSpec.image("image", image)      // u8 [2, 3, 4]
//   try image.checkRef(ref)                           // strides [row, 4, 1], row >= 12 bytes

/// Pixel format of an image feature; each value names one Core Video pixel format type.
public enum PixelFormat: UInt8, WireEnum {
    /// kCVPixelFormatType_32BGRA, kCVPixelFormatType_32ARGB, kCVPixelFormatType_OneComponent8,
    /// kCVPixelFormatType_OneComponent16Half.
    case bgra8 = 1, argb8 = 2, gray8 = 3, grayF16 = 4

    public var dtype: DType { self == .grayF16 ? .f16 : .u8 }

    public var channels: UInt64 {
        switch self {
        case .bgra8, .argb8: return 4
        case .gray8, .grayF16: return 1
        }
    }

    public var bytesPerPixel: UInt64 { channels * dtype.size }

    /// Core Video's four-character code (OSType) of the format.
    public var osType: UInt32 {
        switch self {
        case .bgra8: return 0x4247_5241   // 'BGRA'
        case .argb8: return 0x0000_0020
        case .gray8: return 0x4C30_3038   // 'L008'
        case .grayF16: return 0x4C30_3068 // 'L00h'
        }
    }

    public init?(osType: UInt32) {
        guard let f = Self.allCases.first(where: { $0.osType == osType }) else { return nil }
        self = f
    }

    public var name: String {
        switch self {
        case .bgra8: return "bgra8"
        case .argb8: return "argb8"
        case .gray8: return "gray8"
        case .grayF16: return "gray_f16"
        }
    }
}

/// Row alignment of the image slots the supervisor gives (ipc-schema IMAGE_ROW_ALIGN).
public let imageRowAlign: UInt64 = 64

public struct ImageSpec: WirePayload, Hashable {
    public var width: UInt64
    public var height: UInt64
    public var pixelFormat: PixelFormat

    public init(width: UInt64, height: UInt64, pixelFormat: PixelFormat) {
        self.width = width
        self.height = height
        self.pixelFormat = pixelFormat
    }

    public init(wire v: MsgPackValue) throws {
        let f = try WireFields(v)
        width = try f.u64("width")
        height = try f.u64("height")
        pixelFormat = try f.enumValue("pixel_format")
    }

    public var wire: MsgPackValue {
        .stringMap([("width", .uint(width)), ("height", .uint(height)), ("pixel_format", pixelFormat.wire)])
    }

    /// [height, width, channels].
    public var shape: [UInt64] { [height, width, pixelFormat.channels] }

    /// The same feature at another size (a flexible feature's request).
    public func withSize(width: UInt64, height: UInt64) -> ImageSpec {
        ImageSpec(width: width, height: height, pixelFormat: pixelFormat)
    }

    /// The image spec of a ref's size, if `spec` (whose `image` this is) takes that size: its
    /// own, one of its enumerated sizes, or any within its ranges (section 4 of the protocol).
    public func sized(for spec: TensorSpec, ref t: TensorRef) throws(ImageRefError) -> ImageSpec {
        guard t.shape.count == 3 else { throw ImageRefError("an image is [height, width, channels], not \(t.shape)") }
        let (h, w) = (t.shape[0], t.shape[1])
        let fits: Bool
        if !spec.enumeratedShapes.isEmpty {
            fits = spec.enumeratedShapes.contains([h, w, pixelFormat.channels])
        } else if spec.shapeRanges.count == 3 {
            let (hr, wr) = (spec.shapeRanges[0], spec.shapeRanges[1])
            fits = h >= hr[0] && h <= hr[1] && w >= wr[0] && w <= wr[1]
        } else {
            fits = (w, h) == (width, height)
        }
        guard fits, w > 0, h > 0 else { throw ImageRefError("an image of \(w)x\(h) is not one the model takes") }
        return withSize(width: w, height: h)
    }

    /// Bytes of one unpadded row (nil on overflow).
    public var rowBytes: UInt64? {
        let (r, o) = width.multipliedReportingOverflow(by: pixelFormat.bytesPerPixel)
        return o ? nil : r
    }

    /// Checks a ref to this image's pixels: dtype and shape of the format, packed pixels
    /// (strides [row, channels, 1]) and rows at least one row of pixels apart. Returns the row
    /// stride in bytes.
    @discardableResult
    public func checkRef(_ t: TensorRef) throws(ImageRefError) -> UInt64 {
        guard t.dtype == pixelFormat.dtype, t.shape == shape else {
            throw ImageRefError("image is \(width)x\(height) \(pixelFormat.name), the tensor is \(t.dtype.name)\(t.shape)")
        }
        guard t.strides.count == 3, t.strides[1] == pixelFormat.channels, t.strides[2] == 1 else {
            throw ImageRefError("image strides \(t.strides): pixels must be packed ([row, \(pixelFormat.channels), 1])")
        }
        let (row, o) = t.strides[0].multipliedReportingOverflow(by: t.dtype.size)
        guard !o, let need = rowBytes, row >= need || height <= 1 else {
            throw ImageRefError("image rows \(t.strides[0]) elements apart are shorter than \(width) pixels")
        }
        return row
    }
}

public struct ImageRefError: Error, Equatable, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

extension TensorSpec {
    /// The spec of an image feature: the pixels' dtype and [height, width, channels].
    public static func image(_ name: String, _ image: ImageSpec, optional: Bool = false) -> TensorSpec {
        var s = TensorSpec(name: name, dtype: image.pixelFormat.dtype, shape: image.shape, optional: optional)
        s.image = image
        return s
    }

    /// An image feature of flexible size: any width and height within the ranges ([min, max]);
    /// `image` holds the default size.
    public static func imageRange(_ name: String, _ image: ImageSpec, width: [UInt64], height: [UInt64],
                                  optional: Bool = false) -> TensorSpec {
        var s = TensorSpec.image(name, image, optional: optional)
        s.shapeRanges = [height, width, [image.pixelFormat.channels, image.pixelFormat.channels]]
        return s
    }

    /// An image feature that takes one of `sizes` (width, height); `image` holds the default size.
    public static func imageSizes(_ name: String, _ image: ImageSpec, sizes: [(UInt64, UInt64)],
                                  optional: Bool = false) -> TensorSpec {
        var s = TensorSpec.image(name, image, optional: optional)
        s.enumeratedShapes = sizes.map { [$0.1, $0.0, image.pixelFormat.channels] }
        return s
    }
}
