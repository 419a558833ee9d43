//! Conversions between the API's [`Tensor`] and candle's tensors.
//!
//! ```
//! use coreml_candle::tensors::{from_candle, to_candle};
//! use coreml_inference::Tensor;
//!
//! let t = Tensor::new(vec![2, 2], vec![1.0f32, 2.0, 3.0, 4.0]).unwrap();
//! let c = to_candle(&t, &candle_core::Device::Cpu).unwrap();
//! assert_eq!(c.dims(), &[2, 2]);
//! assert_eq!(from_candle(&(c * 2.0).unwrap()).unwrap().to_f32_vec().unwrap(), vec![2.0, 4.0, 6.0, 8.0]);
//! ```

use candle_core::{DType as CDType, Device, Tensor as CTensor};
use coreml_inference::{DType, Tensor};

/// The candle dtype of an API dtype, where candle has one.
pub fn candle_dtype(d: DType) -> Option<CDType> {
    Some(match d {
        DType::F32 => CDType::F32,
        DType::F16 => CDType::F16,
        DType::BF16 => CDType::BF16,
        DType::F64 => CDType::F64,
        DType::I64 => CDType::I64,
        DType::I32 => CDType::I32,
        DType::I16 => CDType::I16,
        DType::U8 | DType::Bool => CDType::U8,
        _ => return None,
    })
}

/// A candle tensor with the same dtype, shape and elements.
pub fn to_candle(t: &Tensor, device: &Device) -> candle_core::Result<CTensor> {
    let shape = t.shape().to_vec();
    let dtype = candle_dtype(t.dtype())
        .ok_or_else(|| candle_core::Error::Msg(format!("candle has no dtype for {}", t.dtype())))?;
    CTensor::from_raw_buffer(t.as_bytes(), dtype, &shape, device)
}

/// An API tensor copied from a candle tensor (any layout).
pub fn from_candle(t: &CTensor) -> candle_core::Result<Tensor> {
    let shape = t.dims().to_vec();
    let flat = t.flatten_all()?;
    let err = |e: coreml_inference::TensorError| candle_core::Error::Msg(e.to_string());
    match t.dtype() {
        CDType::F32 => Tensor::new(shape, flat.to_vec1::<f32>()?).map_err(err),
        CDType::F16 => Tensor::new(shape, flat.to_vec1::<half::f16>()?).map_err(err),
        CDType::BF16 => Tensor::new(shape, flat.to_vec1::<half::bf16>()?).map_err(err),
        CDType::F64 => Tensor::new(shape, flat.to_vec1::<f64>()?).map_err(err),
        CDType::I64 => Tensor::new(shape, flat.to_vec1::<i64>()?).map_err(err),
        CDType::U8 => Tensor::new(shape, flat.to_vec1::<u8>()?).map_err(err),
        CDType::U32 => {
            let v: Vec<i64> = flat.to_vec1::<u32>()?.into_iter().map(i64::from).collect();
            Tensor::new(shape, v).map_err(err)
        }
        other => {
            let v = flat.to_dtype(CDType::F32)?.to_vec1::<f32>()?;
            Tensor::new(shape, v).map_err(|e| candle_core::Error::Msg(format!("{other:?}: {e}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_and_float_tensors_round_trip() {
        let dev = Device::Cpu;
        for t in [
            Tensor::new(vec![1, 3], vec![101i64, -5, 102]).unwrap(),
            Tensor::new(vec![3], vec![1.5f64, 2.0, -3.0]).unwrap(),
            Tensor::from_bytes(DType::U8, vec![2], &[7, 9]).unwrap(),
            Tensor::new(
                vec![2],
                vec![half::f16::from_f32(0.5), half::f16::from_f32(-2.0)],
            )
            .unwrap(),
        ] {
            let c = to_candle(&t, &dev).unwrap();
            assert_eq!(from_candle(&c).unwrap(), t);
        }
        // Non-contiguous candle tensors come back row-major.
        let c = CTensor::arange(0f32, 6., &dev)
            .unwrap()
            .reshape((2, 3))
            .unwrap()
            .t()
            .unwrap();
        assert_eq!(
            from_candle(&c).unwrap().to_f32_vec().unwrap(),
            vec![0., 3., 1., 4., 2., 5.]
        );
    }
}
