//! The model description: inputs, outputs and states with their multi-array or
//! image types, flexible shapes, and metadata.
//!
//! ```
//! use coreml_mlpackage::description::FeatureKind;
//! let pkg = coreml_mlpackage::Package::open(concat!(env!("CARGO_MANIFEST_DIR"),
//!     "/../tests/fixtures/mlpackage/small_cnn_fp32.mlpackage")).unwrap();
//! let input = &pkg.description.inputs[0];
//! assert_eq!(input.name, "image");
//! let FeatureKind::MultiArray(a) = &input.kind else { panic!() };
//! assert_eq!(a.shape, vec![1, 3, 8, 8]);
//! ```

use std::collections::BTreeMap;

use crate::dtype::ArrayDataType;
use crate::error::PackageError;
use crate::proto;

/// Inputs, outputs, states and metadata of a model.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ModelDescription {
    pub inputs: Vec<Feature>,
    pub outputs: Vec<Feature>,
    pub states: Vec<Feature>,
    pub metadata: Metadata,
}

/// `Metadata`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Metadata {
    pub short_description: String,
    pub version: String,
    pub author: String,
    pub license: String,
    pub user_defined: BTreeMap<String, String>,
}

/// One input, output or state.
#[derive(Debug, Clone, PartialEq)]
pub struct Feature {
    pub name: String,
    pub description: String,
    pub optional: bool,
    pub kind: FeatureKind,
}

/// A feature's type.
#[derive(Debug, Clone, PartialEq)]
pub enum FeatureKind {
    MultiArray(ArrayFeature),
    Image(ImageFeature),
    State(ArrayFeature),
    Int64,
    Double,
    String,
    Dictionary,
    Sequence,
}

/// A multi-array feature.
#[derive(Debug, Clone, PartialEq)]
pub struct ArrayFeature {
    /// The default (or only) shape.
    pub shape: Vec<u64>,
    pub dtype: ArrayDataType,
    pub flexibility: Option<ShapeFlexibility>,
}

/// How an input's shape may vary.
#[derive(Debug, Clone, PartialEq)]
pub enum ShapeFlexibility {
    /// One of these shapes.
    Enumerated(Vec<Vec<u64>>),
    /// Per dimension, `lower..=upper` (`None`: unbounded).
    Range(Vec<(u64, Option<u64>)>),
}

/// An image feature.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageFeature {
    pub width: u64,
    pub height: u64,
    pub color_space: ColorSpace,
    pub flexibility: Option<ImageFlexibility>,
}

/// Pixel format of an image feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorSpace {
    Grayscale,
    Rgb,
    Bgr,
    GrayscaleFloat16,
}

/// How an image's size may vary.
#[derive(Debug, Clone, PartialEq)]
pub enum ImageFlexibility {
    /// One of these (width, height).
    Enumerated(Vec<(u64, u64)>),
    /// Width and height ranges (`None`: unbounded).
    Range {
        width: (u64, Option<u64>),
        height: (u64, Option<u64>),
    },
}

type R<T> = Result<T, PackageError>;

fn range(r: &proto::SizeRange) -> (u64, Option<u64>) {
    (r.lower_bound, u64::try_from(r.upper_bound).ok())
}

fn dims(v: &[i64], file: &str, at: &str) -> R<Vec<u64>> {
    v.iter()
        .map(|&d| {
            u64::try_from(d)
                .map_err(|_| PackageError::invalid(file, at, format!("negative dimension {d}")))
        })
        .collect()
}

pub(crate) fn decode(d: &proto::ModelDescription, file: &str) -> R<ModelDescription> {
    let list = |v: &[proto::FeatureDescription], at: &str| -> R<Vec<Feature>> {
        v.iter()
            .enumerate()
            .map(|(i, f)| feature(f, file, &format!("description.{at}[{i}]")))
            .collect()
    };
    let m = d.metadata.clone().unwrap_or_default();
    Ok(ModelDescription {
        inputs: list(&d.input, "input")?,
        outputs: list(&d.output, "output")?,
        states: list(&d.state, "state")?,
        metadata: Metadata {
            short_description: m.short_description,
            version: m.version_string,
            author: m.author,
            license: m.license,
            user_defined: m.user_defined,
        },
    })
}

fn feature(f: &proto::FeatureDescription, file: &str, at: &str) -> R<Feature> {
    use proto::feature_type::Type;
    if f.name.is_empty() {
        return Err(PackageError::invalid(file, format!("{at}.name"), "empty"));
    }
    let at = format!("{at}({}).type", f.name);
    let ty = f
        .r#type
        .as_ref()
        .ok_or_else(|| PackageError::invalid(file, &at, "missing"))?;
    let kind = match &ty.r#type {
        None => {
            return Err(PackageError::invalid(
                file,
                &at,
                "feature type without a kind",
            ))
        }
        Some(Type::Int64Type(_)) => FeatureKind::Int64,
        Some(Type::DoubleType(_)) => FeatureKind::Double,
        Some(Type::StringType(_)) => FeatureKind::String,
        Some(Type::DictionaryType(_)) => FeatureKind::Dictionary,
        Some(Type::SequenceType(_)) => FeatureKind::Sequence,
        Some(Type::MultiArrayType(a)) => {
            FeatureKind::MultiArray(array(a, file, &format!("{at}.multiArrayType"))?)
        }
        Some(Type::StateType(s)) => {
            let a = s.array_type.as_ref().ok_or_else(|| {
                PackageError::invalid(file, format!("{at}.stateType.arrayType"), "missing")
            })?;
            FeatureKind::State(array(a, file, &format!("{at}.stateType.arrayType"))?)
        }
        Some(Type::ImageType(i)) => FeatureKind::Image(image(i, file, &format!("{at}.imageType"))?),
    };
    Ok(Feature {
        name: f.name.clone(),
        description: f.short_description.clone(),
        optional: ty.is_optional,
        kind,
    })
}

fn array(a: &proto::ArrayFeatureType, file: &str, at: &str) -> R<ArrayFeature> {
    use proto::array_feature_type::ShapeFlexibility as F;
    let dtype = ArrayDataType::from_proto(a.data_type).ok_or_else(|| {
        PackageError::invalid(
            file,
            format!("{at}.dataType"),
            format!("unknown ArrayDataType {}", a.data_type),
        )
    })?;
    let flexibility = match &a.shape_flexibility {
        None => None,
        Some(F::EnumeratedShapes(e)) => Some(ShapeFlexibility::Enumerated(
            e.shapes
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    dims(
                        &s.shape,
                        file,
                        &format!("{at}.enumeratedShapes.shapes[{i}]"),
                    )
                })
                .collect::<R<_>>()?,
        )),
        Some(F::ShapeRange(r)) => Some(ShapeFlexibility::Range(
            r.size_ranges.iter().map(range).collect(),
        )),
    };
    Ok(ArrayFeature {
        shape: dims(&a.shape, file, &format!("{at}.shape"))?,
        dtype,
        flexibility,
    })
}

fn image(i: &proto::ImageFeatureType, file: &str, at: &str) -> R<ImageFeature> {
    use proto::image_feature_type::SizeFlexibility as F;
    let color_space = match i.color_space {
        10 => ColorSpace::Grayscale,
        20 => ColorSpace::Rgb,
        30 => ColorSpace::Bgr,
        40 => ColorSpace::GrayscaleFloat16,
        c => {
            return Err(PackageError::invalid(
                file,
                format!("{at}.colorSpace"),
                format!("unknown color space {c}"),
            ))
        }
    };
    let size = |v: i64, f: &str| {
        u64::try_from(v).map_err(|_| {
            PackageError::invalid(file, format!("{at}.{f}"), format!("negative size {v}"))
        })
    };
    let flexibility = match &i.size_flexibility {
        None => None,
        Some(F::EnumeratedSizes(e)) => Some(ImageFlexibility::Enumerated(
            e.sizes.iter().map(|s| (s.width, s.height)).collect(),
        )),
        Some(F::ImageSizeRange(r)) => Some(ImageFlexibility::Range {
            width: r.width_range.as_ref().map(range).unwrap_or((0, None)),
            height: r.height_range.as_ref().map(range).unwrap_or((0, None)),
        }),
    };
    Ok(ImageFeature {
        width: size(i.width, "width")?,
        height: size(i.height, "height")?,
        color_space,
        flexibility,
    })
}
