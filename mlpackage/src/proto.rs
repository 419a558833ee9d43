//! The subset of `CoreML.Specification` (Model.proto, FeatureTypes.proto) and
//! `CoreML.Specification.MILSpec` (MIL.proto) that an ML Program package uses,
//! written with `prost` derives from the field numbers of the format reference.
//! Enums are kept as raw `i32` so an unknown value reaches the reader's checks
//! (which name it) instead of being dropped by the decoder.
//!
//! ```
//! use prost::Message;
//! use coreml_mlpackage::proto::Model;
//! let bytes = Model { specification_version: 7, ..Default::default() }.encode_to_vec();
//! assert_eq!(Model::decode(bytes.as_slice()).unwrap().specification_version, 7);
//! ```

use std::collections::BTreeMap;

/// `CoreML.Specification.Model`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Model {
    #[prost(int32, tag = "1")]
    pub specification_version: i32,
    #[prost(message, optional, tag = "2")]
    pub description: Option<ModelDescription>,
    #[prost(bool, tag = "10")]
    pub is_updatable: bool,
    #[prost(
        oneof = "model::Type",
        tags = "200, 201, 202, 300, 301, 302, 303, 304, 400, 401, 402, 403, 404, 500, 501, 502, 555, 556"
    )]
    pub r#type: Option<model::Type>,
}

/// The `Model.Type` oneof.
pub mod model {
    /// Which kind of model; every arm but `MlProgram` is kept as raw bytes,
    /// only so the reader can name it when it rejects it.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Type {
        #[prost(message, tag = "502")]
        MlProgram(super::Program),
        #[prost(bytes, tag = "200")]
        PipelineClassifier(Vec<u8>),
        #[prost(bytes, tag = "201")]
        PipelineRegressor(Vec<u8>),
        #[prost(bytes, tag = "202")]
        Pipeline(Vec<u8>),
        #[prost(bytes, tag = "300")]
        GlmRegressor(Vec<u8>),
        #[prost(bytes, tag = "301")]
        SupportVectorRegressor(Vec<u8>),
        #[prost(bytes, tag = "302")]
        TreeEnsembleRegressor(Vec<u8>),
        #[prost(bytes, tag = "303")]
        NeuralNetworkRegressor(Vec<u8>),
        #[prost(bytes, tag = "304")]
        BayesianProbitRegressor(Vec<u8>),
        #[prost(bytes, tag = "400")]
        GlmClassifier(Vec<u8>),
        #[prost(bytes, tag = "401")]
        SupportVectorClassifier(Vec<u8>),
        #[prost(bytes, tag = "402")]
        TreeEnsembleClassifier(Vec<u8>),
        #[prost(bytes, tag = "403")]
        NeuralNetworkClassifier(Vec<u8>),
        #[prost(bytes, tag = "404")]
        KNearestNeighborsClassifier(Vec<u8>),
        #[prost(bytes, tag = "500")]
        NeuralNetwork(Vec<u8>),
        #[prost(bytes, tag = "501")]
        ItemSimilarityRecommender(Vec<u8>),
        #[prost(bytes, tag = "555")]
        CustomModel(Vec<u8>),
        #[prost(bytes, tag = "556")]
        LinkedModel(Vec<u8>),
    }

    impl Type {
        /// The proto field name and number of the arm.
        pub fn field(&self) -> (&'static str, u32) {
            match self {
                Type::MlProgram(_) => ("mlProgram", 502),
                Type::PipelineClassifier(_) => ("pipelineClassifier", 200),
                Type::PipelineRegressor(_) => ("pipelineRegressor", 201),
                Type::Pipeline(_) => ("pipeline", 202),
                Type::GlmRegressor(_) => ("glmRegressor", 300),
                Type::SupportVectorRegressor(_) => ("supportVectorRegressor", 301),
                Type::TreeEnsembleRegressor(_) => ("treeEnsembleRegressor", 302),
                Type::NeuralNetworkRegressor(_) => ("neuralNetworkRegressor", 303),
                Type::BayesianProbitRegressor(_) => ("bayesianProbitRegressor", 304),
                Type::GlmClassifier(_) => ("glmClassifier", 400),
                Type::SupportVectorClassifier(_) => ("supportVectorClassifier", 401),
                Type::TreeEnsembleClassifier(_) => ("treeEnsembleClassifier", 402),
                Type::NeuralNetworkClassifier(_) => ("neuralNetworkClassifier", 403),
                Type::KNearestNeighborsClassifier(_) => ("kNearestNeighborsClassifier", 404),
                Type::NeuralNetwork(_) => ("neuralNetwork", 500),
                Type::ItemSimilarityRecommender(_) => ("itemSimilarityRecommender", 501),
                Type::CustomModel(_) => ("customModel", 555),
                Type::LinkedModel(_) => ("linkedModel", 556),
            }
        }
    }
}

/// `ModelDescription`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelDescription {
    #[prost(message, repeated, tag = "1")]
    pub input: Vec<FeatureDescription>,
    #[prost(message, repeated, tag = "10")]
    pub output: Vec<FeatureDescription>,
    #[prost(string, tag = "11")]
    pub predicted_feature_name: String,
    #[prost(string, tag = "12")]
    pub predicted_probabilities_name: String,
    #[prost(message, repeated, tag = "13")]
    pub state: Vec<FeatureDescription>,
    #[prost(message, repeated, tag = "20")]
    pub functions: Vec<FunctionDescription>,
    #[prost(string, tag = "21")]
    pub default_function_name: String,
    #[prost(message, optional, tag = "100")]
    pub metadata: Option<Metadata>,
}

/// `FunctionDescription` (multi-function models).
#[derive(Clone, PartialEq, prost::Message)]
pub struct FunctionDescription {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, repeated, tag = "2")]
    pub input: Vec<FeatureDescription>,
    #[prost(message, repeated, tag = "3")]
    pub output: Vec<FeatureDescription>,
    #[prost(message, repeated, tag = "6")]
    pub state: Vec<FeatureDescription>,
    #[prost(string, tag = "4")]
    pub predicted_feature_name: String,
    #[prost(string, tag = "5")]
    pub predicted_probabilities_name: String,
}

/// `Metadata`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Metadata {
    #[prost(string, tag = "1")]
    pub short_description: String,
    #[prost(string, tag = "2")]
    pub version_string: String,
    #[prost(string, tag = "3")]
    pub author: String,
    #[prost(string, tag = "4")]
    pub license: String,
    #[prost(btree_map = "string, string", tag = "100")]
    pub user_defined: BTreeMap<String, String>,
}

/// `FeatureDescription`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FeatureDescription {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub short_description: String,
    #[prost(message, optional, tag = "3")]
    pub r#type: Option<FeatureType>,
}

/// `FeatureType`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FeatureType {
    #[prost(oneof = "feature_type::Type", tags = "1, 2, 3, 4, 5, 6, 7, 8")]
    pub r#type: Option<feature_type::Type>,
    #[prost(bool, tag = "1000")]
    pub is_optional: bool,
}

/// The `FeatureType.Type` oneof.
pub mod feature_type {
    /// Kind of feature. Dictionary and sequence features are kept as bytes.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Type {
        #[prost(message, tag = "1")]
        Int64Type(super::Empty),
        #[prost(message, tag = "2")]
        DoubleType(super::Empty),
        #[prost(message, tag = "3")]
        StringType(super::Empty),
        #[prost(message, tag = "4")]
        ImageType(super::ImageFeatureType),
        #[prost(message, tag = "5")]
        MultiArrayType(super::ArrayFeatureType),
        #[prost(bytes, tag = "6")]
        DictionaryType(Vec<u8>),
        #[prost(bytes, tag = "7")]
        SequenceType(Vec<u8>),
        #[prost(message, tag = "8")]
        StateType(super::StateFeatureType),
    }
}

/// A message without fields (`Int64FeatureType`, ...).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Empty {}

/// `StateFeatureType`: `oneof { ArrayFeatureType arrayType = 1 }`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StateFeatureType {
    #[prost(message, optional, tag = "1")]
    pub array_type: Option<ArrayFeatureType>,
}

/// `SizeRange` (`upperBound` −1 = unbounded).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SizeRange {
    #[prost(uint64, tag = "1")]
    pub lower_bound: u64,
    #[prost(int64, tag = "2")]
    pub upper_bound: i64,
}

/// `ImageFeatureType`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ImageFeatureType {
    #[prost(int64, tag = "1")]
    pub width: i64,
    #[prost(int64, tag = "2")]
    pub height: i64,
    #[prost(oneof = "image_feature_type::SizeFlexibility", tags = "21, 31")]
    pub size_flexibility: Option<image_feature_type::SizeFlexibility>,
    /// GRAYSCALE 10, RGB 20, BGR 30, GRAYSCALE_FLOAT16 40.
    #[prost(int32, tag = "3")]
    pub color_space: i32,
}

/// Nested messages of `ImageFeatureType`.
pub mod image_feature_type {
    /// `ImageSize`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ImageSize {
        #[prost(uint64, tag = "1")]
        pub width: u64,
        #[prost(uint64, tag = "2")]
        pub height: u64,
    }
    /// `EnumeratedImageSizes`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct EnumeratedImageSizes {
        #[prost(message, repeated, tag = "1")]
        pub sizes: Vec<ImageSize>,
    }
    /// `ImageSizeRange`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ImageSizeRange {
        #[prost(message, optional, tag = "1")]
        pub width_range: Option<super::SizeRange>,
        #[prost(message, optional, tag = "2")]
        pub height_range: Option<super::SizeRange>,
    }
    /// The `SizeFlexibility` oneof.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum SizeFlexibility {
        #[prost(message, tag = "21")]
        EnumeratedSizes(EnumeratedImageSizes),
        #[prost(message, tag = "31")]
        ImageSizeRange(ImageSizeRange),
    }
}

/// `ArrayFeatureType`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ArrayFeatureType {
    #[prost(int64, repeated, tag = "1")]
    pub shape: Vec<i64>,
    /// `ArrayDataType`: FLOAT32 65568, DOUBLE 65600, INT32 131104, FLOAT16 65552, INT8 131080.
    #[prost(int32, tag = "2")]
    pub data_type: i32,
    #[prost(oneof = "array_feature_type::ShapeFlexibility", tags = "21, 31")]
    pub shape_flexibility: Option<array_feature_type::ShapeFlexibility>,
    #[prost(
        oneof = "array_feature_type::DefaultOptionalValue",
        tags = "41, 51, 61"
    )]
    pub default_optional_value: Option<array_feature_type::DefaultOptionalValue>,
}

/// Nested messages of `ArrayFeatureType`.
pub mod array_feature_type {
    /// `Shape`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Shape {
        #[prost(int64, repeated, tag = "1")]
        pub shape: Vec<i64>,
    }
    /// `EnumeratedShapes`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct EnumeratedShapes {
        #[prost(message, repeated, tag = "1")]
        pub shapes: Vec<Shape>,
    }
    /// `ShapeRange`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ShapeRange {
        #[prost(message, repeated, tag = "1")]
        pub size_ranges: Vec<super::SizeRange>,
    }
    /// The `ShapeFlexibility` oneof.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum ShapeFlexibility {
        #[prost(message, tag = "21")]
        EnumeratedShapes(EnumeratedShapes),
        #[prost(message, tag = "31")]
        ShapeRange(ShapeRange),
    }
    /// The default-value oneof.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum DefaultOptionalValue {
        #[prost(int32, tag = "41")]
        Int(i32),
        #[prost(float, tag = "51")]
        Float(f32),
        #[prost(double, tag = "61")]
        Double(f64),
    }
}

// ------------------------------------------------------------------ MILSpec

/// `MILSpec.Program`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Program {
    #[prost(int64, tag = "1")]
    pub version: i64,
    #[prost(btree_map = "string, message", tag = "2")]
    pub functions: BTreeMap<String, Function>,
    #[prost(string, tag = "3")]
    pub doc_string: String,
    #[prost(btree_map = "string, message", tag = "4")]
    pub attributes: BTreeMap<String, Value>,
}

/// `MILSpec.Function`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Function {
    #[prost(message, repeated, tag = "1")]
    pub inputs: Vec<NamedValueType>,
    #[prost(string, tag = "2")]
    pub opset: String,
    #[prost(btree_map = "string, message", tag = "3")]
    pub block_specializations: BTreeMap<String, Block>,
    #[prost(btree_map = "string, message", tag = "4")]
    pub attributes: BTreeMap<String, Value>,
}

/// `MILSpec.Block`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Block {
    #[prost(message, repeated, tag = "1")]
    pub inputs: Vec<NamedValueType>,
    #[prost(string, repeated, tag = "2")]
    pub outputs: Vec<String>,
    #[prost(message, repeated, tag = "3")]
    pub operations: Vec<Operation>,
    #[prost(btree_map = "string, message", tag = "4")]
    pub attributes: BTreeMap<String, Value>,
}

/// `MILSpec.Operation`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Operation {
    #[prost(string, tag = "1")]
    pub r#type: String,
    #[prost(btree_map = "string, message", tag = "2")]
    pub inputs: BTreeMap<String, Argument>,
    #[prost(message, repeated, tag = "3")]
    pub outputs: Vec<NamedValueType>,
    #[prost(message, repeated, tag = "4")]
    pub blocks: Vec<Block>,
    #[prost(btree_map = "string, message", tag = "5")]
    pub attributes: BTreeMap<String, Value>,
}

/// `MILSpec.Argument`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Argument {
    #[prost(message, repeated, tag = "1")]
    pub arguments: Vec<Binding>,
}

/// `MILSpec.Argument.Binding`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Binding {
    #[prost(oneof = "binding::Binding", tags = "1, 2")]
    pub binding: Option<binding::Binding>,
}

/// The `Binding` oneof.
pub mod binding {
    /// A name of an earlier value, or a value.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Binding {
        #[prost(string, tag = "1")]
        Name(String),
        #[prost(message, tag = "2")]
        Value(super::Value),
    }
}

/// `MILSpec.NamedValueType`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NamedValueType {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub r#type: Option<ValueType>,
}

/// `MILSpec.ValueType`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ValueType {
    #[prost(oneof = "value_type::Type", tags = "1, 2, 3, 4, 5")]
    pub r#type: Option<value_type::Type>,
}

/// The `ValueType` oneof.
pub mod value_type {
    /// Tensor, list, tuple, dictionary or state.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Type {
        #[prost(message, tag = "1")]
        TensorType(super::TensorType),
        #[prost(message, tag = "2")]
        ListType(Box<super::ListType>),
        #[prost(message, tag = "3")]
        TupleType(super::TupleType),
        #[prost(message, tag = "4")]
        DictionaryType(Box<super::DictionaryType>),
        #[prost(message, tag = "5")]
        StateType(Box<super::StateType>),
    }
}

/// `MILSpec.TensorType`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorType {
    /// `MILSpec.DataType`.
    #[prost(int32, tag = "1")]
    pub data_type: i32,
    #[prost(int64, tag = "2")]
    pub rank: i64,
    #[prost(message, repeated, tag = "3")]
    pub dimensions: Vec<Dimension>,
    #[prost(btree_map = "string, message", tag = "4")]
    pub attributes: BTreeMap<String, Value>,
}

/// `MILSpec.ListType`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ListType {
    #[prost(message, optional, boxed, tag = "1")]
    pub r#type: Option<Box<ValueType>>,
    #[prost(message, optional, tag = "2")]
    pub length: Option<Dimension>,
}

/// `MILSpec.TupleType`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TupleType {
    #[prost(message, repeated, tag = "1")]
    pub types: Vec<ValueType>,
}

/// `MILSpec.DictionaryType`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DictionaryType {
    #[prost(message, optional, boxed, tag = "1")]
    pub key_type: Option<Box<ValueType>>,
    #[prost(message, optional, boxed, tag = "2")]
    pub value_type: Option<Box<ValueType>>,
}

/// `MILSpec.StateType`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StateType {
    #[prost(message, optional, boxed, tag = "1")]
    pub wrapped_type: Option<Box<ValueType>>,
}

/// `MILSpec.Dimension`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Dimension {
    #[prost(oneof = "dimension::Dimension", tags = "1, 2")]
    pub dimension: Option<dimension::Dimension>,
}

/// The `Dimension` oneof.
pub mod dimension {
    /// `ConstantDimension { uint64 size = 1 }`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ConstantDimension {
        #[prost(uint64, tag = "1")]
        pub size: u64,
    }
    /// `UnknownDimension { bool variadic = 1 }`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct UnknownDimension {
        #[prost(bool, tag = "1")]
        pub variadic: bool,
    }
    /// Constant or unknown.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Dimension {
        #[prost(message, tag = "1")]
        Constant(ConstantDimension),
        #[prost(message, tag = "2")]
        Unknown(UnknownDimension),
    }
}

/// `MILSpec.Value`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Value {
    #[prost(string, tag = "1")]
    pub doc_string: String,
    #[prost(message, optional, tag = "2")]
    pub r#type: Option<ValueType>,
    #[prost(oneof = "value::Value", tags = "3, 5")]
    pub value: Option<value::Value>,
}

/// The `Value` oneof and its messages.
pub mod value {
    /// `BlobFileValue`: `offset` is that of the blob's metadata record.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct BlobFileValue {
        #[prost(string, tag = "1")]
        pub file_name: String,
        #[prost(uint64, tag = "2")]
        pub offset: u64,
    }
    /// Immediate or in the weight file.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Value {
        #[prost(message, tag = "3")]
        ImmediateValue(super::ImmediateValue),
        #[prost(message, tag = "5")]
        BlobFileValue(BlobFileValue),
    }
}

/// `MILSpec.Value.ImmediateValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ImmediateValue {
    #[prost(oneof = "immediate_value::Value", tags = "1, 2, 3, 4")]
    pub value: Option<immediate_value::Value>,
}

/// The `ImmediateValue` oneof.
pub mod immediate_value {
    /// `TupleValue` / `ListValue { repeated Value values = 1 }`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Values {
        #[prost(message, repeated, tag = "1")]
        pub values: Vec<super::Value>,
    }
    /// `DictionaryValue.KeyValuePair`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct KeyValuePair {
        #[prost(message, optional, tag = "1")]
        pub key: Option<super::Value>,
        #[prost(message, optional, tag = "2")]
        pub value: Option<super::Value>,
    }
    /// `DictionaryValue`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct DictionaryValue {
        #[prost(message, repeated, tag = "1")]
        pub values: Vec<KeyValuePair>,
    }
    /// Tensor, tuple, list or dictionary.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Value {
        #[prost(message, tag = "1")]
        Tensor(super::TensorValue),
        #[prost(message, tag = "2")]
        Tuple(Values),
        #[prost(message, tag = "3")]
        List(Values),
        #[prost(message, tag = "4")]
        Dictionary(DictionaryValue),
    }
}

/// `MILSpec.TensorValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorValue {
    #[prost(oneof = "tensor_value::Value", tags = "1, 2, 3, 4, 5, 6, 7")]
    pub value: Option<tensor_value::Value>,
}

/// The `TensorValue` oneof: wrappers with field 1 `values`.
pub mod tensor_value {
    /// `RepeatedFloats`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Floats {
        #[prost(float, repeated, tag = "1")]
        pub values: Vec<f32>,
    }
    /// `RepeatedInts`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Ints {
        #[prost(int32, repeated, tag = "1")]
        pub values: Vec<i32>,
    }
    /// `RepeatedBools`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Bools {
        #[prost(bool, repeated, tag = "1")]
        pub values: Vec<bool>,
    }
    /// `RepeatedStrings`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Strings {
        #[prost(string, repeated, tag = "1")]
        pub values: Vec<String>,
    }
    /// `RepeatedLongInts`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LongInts {
        #[prost(int64, repeated, tag = "1")]
        pub values: Vec<i64>,
    }
    /// `RepeatedDoubles`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Doubles {
        #[prost(double, repeated, tag = "1")]
        pub values: Vec<f64>,
    }
    /// `RepeatedBytes` (a single `bytes`).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Bytes {
        #[prost(bytes = "vec", tag = "1")]
        pub values: Vec<u8>,
    }
    /// Which wrapper holds the elements.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Value {
        #[prost(message, tag = "1")]
        Floats(Floats),
        #[prost(message, tag = "2")]
        Ints(Ints),
        #[prost(message, tag = "3")]
        Bools(Bools),
        #[prost(message, tag = "4")]
        Strings(Strings),
        #[prost(message, tag = "5")]
        LongInts(LongInts),
        #[prost(message, tag = "6")]
        Doubles(Doubles),
        #[prost(message, tag = "7")]
        Bytes(Bytes),
    }
}
