//! The MIL program, checked and decoded from its protobuf: functions, the block
//! of each function's opset, operations with their arguments, output types, and
//! values (immediate values decoded; blob values checked against the weight
//! file and decoded on demand by [`Package::tensor`](crate::Package::tensor)).
//!
//! ```
//! let pkg = coreml_mlpackage::Package::open(concat!(env!("CARGO_MANIFEST_DIR"),
//!     "/../tests/fixtures/mlpackage/linear_matmul.mlpackage")).unwrap();
//! let main = pkg.main();
//! assert_eq!(main.opset, "CoreML6");
//! assert!(main.block.operations.iter().any(|op| op.op_type == "linear"));
//! ```

use std::collections::BTreeMap;

use crate::dtype::DataType;
use crate::elements::Elements;
use crate::error::PackageError;
use crate::proto;
use crate::weights::WeightFile;

/// A MIL program.
#[derive(Debug, Clone, PartialEq)]
pub struct Program {
    pub version: i64,
    pub functions: BTreeMap<String, Function>,
    pub attributes: BTreeMap<String, Value>,
}

/// A function: its inputs, its opset and the block specialised for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Function {
    pub inputs: Vec<NamedType>,
    pub opset: String,
    pub block: Block,
}

/// A block: topologically sorted operations and the names it returns.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    pub inputs: Vec<NamedType>,
    pub outputs: Vec<String>,
    pub operations: Vec<Operation>,
}

/// One operation.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub op_type: String,
    /// `attributes["name"]`, or `""`.
    pub name: String,
    /// Parameters bound through `inputs` (variadic ones have several).
    pub inputs: BTreeMap<String, Vec<Arg>>,
    pub outputs: Vec<NamedType>,
    pub blocks: Vec<Block>,
    /// `attributes` without `name` (const's `val`, iOS16 constexpr parameters).
    pub attributes: BTreeMap<String, Value>,
}

impl Operation {
    /// A parameter from `inputs`, or else from `attributes` (iOS16 constexpr
    /// style): the single binding.
    pub fn param(&self, name: &str) -> Option<ArgRef<'_>> {
        match self.inputs.get(name).map(Vec::as_slice) {
            Some([a]) => Some(match a {
                Arg::Name(n) => ArgRef::Name(n),
                Arg::Value(v) => ArgRef::Value(v),
            }),
            Some(_) => None,
            None => self.attributes.get(name).map(ArgRef::Value),
        }
    }
}

/// A binding of a parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// A function input or an earlier operation's output.
    Name(String),
    /// A value in place.
    Value(Value),
}

/// A borrowed [`Arg`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ArgRef<'a> {
    Name(&'a str),
    Value(&'a Value),
}

/// A name and its type.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedType {
    pub name: String,
    pub ty: ValueType,
}

/// A value's type.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueType {
    Tensor(TensorType),
    List {
        elem: Box<ValueType>,
        length: Option<Dim>,
    },
    Tuple(Vec<ValueType>),
    Dict {
        key: Box<ValueType>,
        value: Box<ValueType>,
    },
    State(Box<ValueType>),
}

impl ValueType {
    /// The tensor type, if it is one.
    pub fn tensor(&self) -> Option<&TensorType> {
        match self {
            Self::Tensor(t) => Some(t),
            _ => None,
        }
    }
}

/// A tensor type: element type and dimensions (`None`: unknown rank).
#[derive(Debug, Clone, PartialEq)]
pub struct TensorType {
    pub dtype: DataType,
    pub dims: Option<Vec<Dim>>,
}

impl TensorType {
    /// The shape if every dimension is known.
    pub fn static_shape(&self) -> Option<Vec<usize>> {
        self.dims.as_ref()?.iter().map(|d| d.known()).collect()
    }
}

/// A dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dim {
    Known(usize),
    Unknown { variadic: bool },
}

impl Dim {
    /// The size, if known.
    pub fn known(self) -> Option<usize> {
        match self {
            Self::Known(n) => Some(n),
            Self::Unknown { .. } => None,
        }
    }
}

/// A value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Tensor(TensorValue),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
}

impl Value {
    /// The tensor, if it is one.
    pub fn tensor(&self) -> Option<&TensorValue> {
        match self {
            Self::Tensor(t) => Some(t),
            _ => None,
        }
    }
}

/// A tensor value with a static shape.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorValue {
    pub dtype: DataType,
    pub shape: Vec<usize>,
    pub data: TensorData,
}

impl TensorValue {
    /// Number of elements.
    pub fn count(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Where a tensor's elements are.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    /// In the program, decoded.
    Immediate(Elements),
    /// In `weight.bin`, metadata record at `offset` (already checked against
    /// the type); decode with [`Package::tensor`](crate::Package::tensor).
    Blob { offset: u64 },
}

/// Converts protobuf messages, naming `file` and the field path in errors.
pub(crate) struct Decoder<'a> {
    pub file: &'a str,
    pub weights: Option<&'a WeightFile>,
}

type R<T> = Result<T, PackageError>;

impl Decoder<'_> {
    fn err(&self, field: &str, detail: impl Into<String>) -> PackageError {
        PackageError::invalid(self.file, field, detail)
    }

    pub fn program(&self, p: &proto::Program, at: &str) -> R<Program> {
        if p.version != 1 {
            return Err(self.err(
                &format!("{at}.version"),
                format!("{}, expected 1", p.version),
            ));
        }
        let mut functions = BTreeMap::new();
        for (name, f) in &p.functions {
            functions.insert(
                name.clone(),
                self.function(f, &format!("{at}.functions[{name}]"))?,
            );
        }
        Ok(Program {
            version: p.version,
            functions,
            attributes: self.values(&p.attributes, &format!("{at}.attributes"))?,
        })
    }

    fn function(&self, f: &proto::Function, at: &str) -> R<Function> {
        let block = f.block_specializations.get(&f.opset).ok_or_else(|| {
            self.err(
                &format!("{at}.block_specializations"),
                format!(
                    "no block for the function's opset {:?} (has {:?})",
                    f.opset,
                    f.block_specializations.keys().collect::<Vec<_>>()
                ),
            )
        })?;
        Ok(Function {
            inputs: self.named_types(&f.inputs, &format!("{at}.inputs"))?,
            opset: f.opset.clone(),
            block: self.block(block, &format!("{at}.block_specializations[{}]", f.opset))?,
        })
    }

    fn block(&self, b: &proto::Block, at: &str) -> R<Block> {
        let operations = b
            .operations
            .iter()
            .enumerate()
            .map(|(i, op)| self.operation(op, &format!("{at}.operations[{i}]")))
            .collect::<R<Vec<_>>>()?;
        Ok(Block {
            inputs: self.named_types(&b.inputs, &format!("{at}.inputs"))?,
            outputs: b.outputs.clone(),
            operations,
        })
    }

    fn operation(&self, op: &proto::Operation, at: &str) -> R<Operation> {
        if op.r#type.is_empty() {
            return Err(self.err(&format!("{at}.type"), "empty operation type"));
        }
        let at = format!("{at}({})", op.r#type);
        let mut inputs = BTreeMap::new();
        for (k, arg) in &op.inputs {
            let mut v = Vec::with_capacity(arg.arguments.len());
            for (i, b) in arg.arguments.iter().enumerate() {
                let f = format!("{at}.inputs[{k}][{i}]");
                v.push(match &b.binding {
                    Some(proto::binding::Binding::Name(n)) => Arg::Name(n.clone()),
                    Some(proto::binding::Binding::Value(val)) => Arg::Value(self.value(val, &f)?),
                    None => return Err(self.err(&f, "binding has neither a name nor a value")),
                });
            }
            if v.is_empty() {
                return Err(self.err(&format!("{at}.inputs[{k}]"), "argument without bindings"));
            }
            inputs.insert(k.clone(), v);
        }
        let mut attributes = self.values(&op.attributes, &format!("{at}.attributes"))?;
        let name = match attributes.remove("name") {
            Some(Value::Tensor(TensorValue {
                data: TensorData::Immediate(Elements::Str(s)),
                ..
            })) if s.len() == 1 => s[0].clone(),
            _ => String::new(),
        };
        let outputs = self.named_types(&op.outputs, &format!("{at}.outputs"))?;
        let blocks = op
            .blocks
            .iter()
            .enumerate()
            .map(|(i, b)| self.block(b, &format!("{at}.blocks[{i}]")))
            .collect::<R<Vec<_>>>()?;
        Ok(Operation {
            op_type: op.r#type.clone(),
            name,
            inputs,
            outputs,
            blocks,
            attributes,
        })
    }

    fn named_types(&self, v: &[proto::NamedValueType], at: &str) -> R<Vec<NamedType>> {
        v.iter()
            .enumerate()
            .map(|(i, nt)| {
                let f = format!("{at}[{i}]");
                if nt.name.is_empty() {
                    return Err(self.err(&format!("{f}.name"), "empty name"));
                }
                let ty = nt
                    .r#type
                    .as_ref()
                    .ok_or_else(|| self.err(&format!("{f}.type"), "missing"))?;
                Ok(NamedType {
                    name: nt.name.clone(),
                    ty: self.value_type(ty, &format!("{f}({}).type", nt.name))?,
                })
            })
            .collect()
    }

    fn value_type(&self, t: &proto::ValueType, at: &str) -> R<ValueType> {
        use proto::value_type::Type;
        let sub = |x: &Option<Box<proto::ValueType>>, f: &str| -> R<Box<ValueType>> {
            let x = x
                .as_deref()
                .ok_or_else(|| self.err(&format!("{at}.{f}"), "missing"))?;
            Ok(Box::new(self.value_type(x, &format!("{at}.{f}"))?))
        };
        Ok(match &t.r#type {
            None => return Err(self.err(at, "value type without a kind")),
            Some(Type::TensorType(tt)) => ValueType::Tensor(self.tensor_type(tt, at)?),
            Some(Type::ListType(l)) => ValueType::List {
                elem: sub(&l.r#type, "listType.type")?,
                length: l
                    .length
                    .as_ref()
                    .map(|d| self.dim(d, &format!("{at}.listType.length")))
                    .transpose()?,
            },
            Some(Type::TupleType(tt)) => ValueType::Tuple(
                tt.types
                    .iter()
                    .enumerate()
                    .map(|(i, x)| self.value_type(x, &format!("{at}.tupleType.types[{i}]")))
                    .collect::<R<_>>()?,
            ),
            Some(Type::DictionaryType(d)) => ValueType::Dict {
                key: sub(&d.key_type, "dictionaryType.keyType")?,
                value: sub(&d.value_type, "dictionaryType.valueType")?,
            },
            Some(Type::StateType(s)) => ValueType::State(sub(&s.wrapped_type, "stateType")?),
        })
    }

    fn tensor_type(&self, t: &proto::TensorType, at: &str) -> R<TensorType> {
        let dtype = DataType::from_proto(t.data_type).ok_or_else(|| {
            self.err(
                &format!("{at}.tensorType.dataType"),
                format!("unknown MIL data type {}", t.data_type),
            )
        })?;
        let dims = if t.rank < 0 {
            None
        } else {
            if t.rank as u64 != t.dimensions.len() as u64 {
                return Err(self.err(
                    &format!("{at}.tensorType.rank"),
                    format!("{} but {} dimensions", t.rank, t.dimensions.len()),
                ));
            }
            Some(
                t.dimensions
                    .iter()
                    .enumerate()
                    .map(|(i, d)| self.dim(d, &format!("{at}.tensorType.dimensions[{i}]")))
                    .collect::<R<Vec<_>>>()?,
            )
        };
        Ok(TensorType { dtype, dims })
    }

    fn dim(&self, d: &proto::Dimension, at: &str) -> R<Dim> {
        use proto::dimension::Dimension as D;
        match &d.dimension {
            Some(D::Constant(c)) => usize::try_from(c.size)
                .ok()
                .filter(|&n| n <= u32::MAX as usize)
                .map(Dim::Known)
                .ok_or_else(|| self.err(at, format!("dimension {} is too large", c.size))),
            Some(D::Unknown(u)) => Ok(Dim::Unknown {
                variadic: u.variadic,
            }),
            None => Err(self.err(at, "dimension is neither constant nor unknown")),
        }
    }

    fn values(&self, m: &BTreeMap<String, proto::Value>, at: &str) -> R<BTreeMap<String, Value>> {
        m.iter()
            .map(|(k, v)| Ok((k.clone(), self.value(v, &format!("{at}[{k}]"))?)))
            .collect()
    }

    pub fn value(&self, v: &proto::Value, at: &str) -> R<Value> {
        use proto::immediate_value::Value as I;
        use proto::value::Value as V;
        let ty = v
            .r#type
            .as_ref()
            .ok_or_else(|| self.err(&format!("{at}.type"), "missing"))?;
        let ty = self.value_type(ty, &format!("{at}.type"))?;
        match &v.value {
            None => Err(self.err(at, "value is neither immediate nor in a blob")),
            Some(V::BlobFileValue(b)) => {
                let t = self.static_tensor(&ty, at)?;
                self.blob(b, t, at)
            }
            Some(V::ImmediateValue(iv)) => match &iv.value {
                None => Err(self.err(&format!("{at}.immediateValue"), "empty")),
                Some(I::Tensor(tv)) => {
                    let (dtype, shape) = self.static_tensor(&ty, at)?;
                    let data =
                        self.immediate(tv, dtype, &shape, &format!("{at}.immediateValue"))?;
                    Ok(Value::Tensor(TensorValue {
                        dtype,
                        shape,
                        data: TensorData::Immediate(data),
                    }))
                }
                Some(I::Tuple(t)) => Ok(Value::Tuple(self.value_list(&t.values, at, "tuple")?)),
                Some(I::List(l)) => Ok(Value::List(self.value_list(&l.values, at, "list")?)),
                Some(I::Dictionary(d)) => {
                    let mut out = Vec::new();
                    for (i, kv) in d.values.iter().enumerate() {
                        let f = format!("{at}.immediateValue.dictionary[{i}]");
                        let k = kv
                            .key
                            .as_ref()
                            .ok_or_else(|| self.err(&format!("{f}.key"), "missing"))?;
                        let val = kv
                            .value
                            .as_ref()
                            .ok_or_else(|| self.err(&format!("{f}.value"), "missing"))?;
                        out.push((
                            self.value(k, &format!("{f}.key"))?,
                            self.value(val, &format!("{f}.value"))?,
                        ));
                    }
                    Ok(Value::Dict(out))
                }
            },
        }
    }

    fn value_list(&self, v: &[proto::Value], at: &str, kind: &str) -> R<Vec<Value>> {
        v.iter()
            .enumerate()
            .map(|(i, x)| self.value(x, &format!("{at}.immediateValue.{kind}[{i}]")))
            .collect()
    }

    fn static_tensor(&self, ty: &ValueType, at: &str) -> R<(DataType, Vec<usize>)> {
        let t = ty
            .tensor()
            .ok_or_else(|| self.err(&format!("{at}.type"), "a tensor value needs a tensor type"))?;
        let shape = t.static_shape().ok_or_else(|| {
            self.err(&format!("{at}.type"), "a tensor value needs a static shape")
        })?;
        let mut n = 1usize;
        for &d in &shape {
            n = n
                .checked_mul(d)
                .filter(|&n| n <= 1 << 40)
                .ok_or_else(|| self.err(&format!("{at}.type"), "element count overflows"))?;
        }
        Ok((t.dtype, shape))
    }

    fn immediate(
        &self,
        tv: &proto::TensorValue,
        dtype: DataType,
        shape: &[usize],
        at: &str,
    ) -> R<Elements> {
        use proto::tensor_value::Value as T;
        use DataType::*;
        let count: usize = shape.iter().product();
        let is_int = matches!(
            dtype,
            Int8 | Int16
                | Int32
                | Int64
                | UInt8
                | UInt16
                | UInt32
                | UInt64
                | Int4
                | UInt1
                | UInt2
                | UInt3
                | UInt4
                | UInt6
        );
        let (field, ok, e) = match &tv.value {
            None => ("(none)", true, None),
            Some(T::Floats(f)) => (
                "floats",
                dtype.is_float(),
                Some(Elements::F32(f.values.clone())),
            ),
            Some(T::Doubles(f)) => (
                "doubles",
                dtype.is_float(),
                Some(Elements::F64(f.values.clone())),
            ),
            Some(T::Ints(f)) => ("ints", is_int, Some(Elements::I32(f.values.clone()))),
            Some(T::LongInts(f)) => ("longInts", is_int, Some(Elements::I64(f.values.clone()))),
            Some(T::Bools(f)) => (
                "bools",
                dtype == Bool,
                Some(Elements::Bool(f.values.clone())),
            ),
            Some(T::Strings(f)) => (
                "strings",
                dtype == String,
                Some(Elements::Str(f.values.clone())),
            ),
            Some(T::Bytes(b)) => {
                let f = format!("{at}.tensor.bytes");
                let e = Elements::decode(dtype, &b.values, count as u64)
                    .map_err(|e| self.err(&f, format!("{dtype} {shape:?}: {e}")))?;
                ("bytes", true, Some(e))
            }
        };
        if !ok {
            return Err(self.err(
                &format!("{at}.tensor.{field}"),
                format!("cannot hold {dtype} elements"),
            ));
        }
        let e = match e {
            Some(e) => e,
            None if count == 0 => Elements::F32(Vec::new()),
            None => {
                return Err(self.err(
                    &format!("{at}.tensor"),
                    format!("no elements for a {dtype} {shape:?} tensor"),
                ))
            }
        };
        if e.len() != count {
            return Err(self.err(
                &format!("{at}.tensor.{field}"),
                format!("{} elements for a {dtype} {shape:?} tensor", e.len()),
            ));
        }
        Ok(e)
    }

    fn blob(
        &self,
        b: &proto::value::BlobFileValue,
        (dtype, shape): (DataType, Vec<usize>),
        at: &str,
    ) -> R<Value> {
        let f = format!("{at}.blobFileValue");
        if !b.file_name.ends_with("weight.bin") {
            return Err(self.err(
                &format!("{f}.fileName"),
                format!("{:?} is not the package's weights/weight.bin", b.file_name),
            ));
        }
        let w = self.weights.ok_or_else(|| {
            self.err(
                &format!("{f}.fileName"),
                "the package has no weights/weight.bin",
            )
        })?;
        let blob = w.blob(b.offset)?;
        if blob.dtype != dtype {
            return Err(PackageError::invalid(
                w.name(),
                format!("blob@{}.mil_dtype", b.offset),
                format!("{}, but {at} is {dtype}", blob.dtype),
            ));
        }
        let count: u64 = shape.iter().map(|&d| d as u64).product();
        if blob.count() != count {
            return Err(PackageError::invalid(
                w.name(),
                format!("blob@{}.sizeInBytes", b.offset),
                format!(
                    "holds {} elements, but {at} is {dtype} {shape:?}",
                    blob.count()
                ),
            ));
        }
        Ok(Value::Tensor(TensorValue {
            dtype,
            shape,
            data: TensorData::Blob { offset: b.offset },
        }))
    }
}
