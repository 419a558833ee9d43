//! Named tensors: the inputs and outputs of one inference.
//!
//! ```
//! use coreml_inference::{Tensor, TensorMap};
//!
//! let inputs = TensorMap::new()
//!     .with("input_ids", Tensor::new(vec![1, 3], vec![101i64, 7592, 102]).unwrap())
//!     .with("attention_mask", Tensor::new(vec![1, 3], vec![1i64, 1, 1]).unwrap());
//! assert_eq!(inputs.len(), 2);
//! assert_eq!(inputs.i64("input_ids").unwrap(), &[101, 7592, 102]);
//! assert!(inputs.f32("input_ids").is_err()); // wrong dtype: typed error
//! assert!(inputs.get("pixel_values").is_none());
//! ```

use std::collections::BTreeMap;

use crate::dtype::Element;
use crate::error::TensorError;
use crate::tensor::Tensor;

/// Tensors by name, in name order (so iteration and files are deterministic).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TensorMap {
    tensors: BTreeMap<String, Tensor>,
}

impl TensorMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builder form of [`TensorMap::insert`].
    #[must_use]
    pub fn with(mut self, name: impl Into<String>, tensor: Tensor) -> Self {
        self.insert(name, tensor);
        self
    }

    /// Inserts a tensor, returning the one it replaced.
    pub fn insert(&mut self, name: impl Into<String>, tensor: Tensor) -> Option<Tensor> {
        self.tensors.insert(name.into(), tensor)
    }

    /// The tensor called `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.get(name)
    }

    /// The tensor called `name`, or [`TensorError::Missing`].
    pub fn require(&self, name: &str) -> Result<&Tensor, TensorError> {
        self.get(name).ok_or_else(|| TensorError::Missing {
            name: name.to_owned(),
        })
    }

    /// The tensor called `name`, mutable.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Tensor> {
        self.tensors.get_mut(name)
    }

    /// Removes and returns the tensor called `name`.
    pub fn remove(&mut self, name: &str) -> Option<Tensor> {
        self.tensors.remove(name)
    }

    /// Whether a tensor called `name` exists.
    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether there are no tensors.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// Names in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// `(name, tensor)` pairs in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.tensors.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Total bytes of all tensors.
    pub fn total_bytes(&self) -> usize {
        self.tensors.values().map(Tensor::byte_len).sum()
    }

    /// Typed view of the tensor called `name`.
    pub fn typed<T: Element>(&self, name: &str) -> Result<&[T], TensorError> {
        self.require(name)?.as_slice::<T>()
    }

    /// `f32` view of the tensor called `name`.
    pub fn f32(&self, name: &str) -> Result<&[f32], TensorError> {
        self.typed(name)
    }

    /// `f16` view of the tensor called `name`.
    pub fn f16(&self, name: &str) -> Result<&[half::f16], TensorError> {
        self.typed(name)
    }

    /// `i64` view of the tensor called `name`.
    pub fn i64(&self, name: &str) -> Result<&[i64], TensorError> {
        self.typed(name)
    }

    /// `i32` view of the tensor called `name`.
    pub fn i32(&self, name: &str) -> Result<&[i32], TensorError> {
        self.typed(name)
    }

    /// `u8` view of the tensor called `name`.
    pub fn u8(&self, name: &str) -> Result<&[u8], TensorError> {
        self.typed(name)
    }
}

impl FromIterator<(String, Tensor)> for TensorMap {
    fn from_iter<I: IntoIterator<Item = (String, Tensor)>>(iter: I) -> Self {
        Self {
            tensors: iter.into_iter().collect(),
        }
    }
}

impl IntoIterator for TensorMap {
    type Item = (String, Tensor);
    type IntoIter = std::collections::btree_map::IntoIter<String, Tensor>;

    fn into_iter(self) -> Self::IntoIter {
        self.tensors.into_iter()
    }
}

impl Extend<(String, Tensor)> for TensorMap {
    fn extend<I: IntoIterator<Item = (String, Tensor)>>(&mut self, iter: I) {
        self.tensors.extend(iter);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::DType;

    #[test]
    fn names_are_ordered_and_lookups_are_typed() {
        let mut m: TensorMap = [
            ("b".to_owned(), Tensor::zeros(DType::F32, vec![2]).unwrap()),
            ("a".to_owned(), Tensor::zeros(DType::U8, vec![3]).unwrap()),
        ]
        .into_iter()
        .collect();
        assert_eq!(m.names().collect::<Vec<_>>(), vec!["a", "b"]);
        assert_eq!(m.total_bytes(), 11);
        assert!(matches!(m.f32("zz"), Err(TensorError::Missing { .. })));
        assert!(matches!(m.f32("a"), Err(TensorError::DTypeMismatch { .. })));
        m.get_mut("b").unwrap().as_mut_slice::<f32>().unwrap()[0] = 1.5;
        assert_eq!(m.f32("b").unwrap(), &[1.5, 0.0]);
        assert!(m.remove("a").is_some());
        assert!(!m.contains("a"));
        assert_eq!(m.len(), 1);
    }
}
