//! Our CPU kernels against candle's own (slow) implementation, on seeded random inputs.

mod support;

use candle_core::{DType, Device, ModuleT, Tensor};
use coreml_candle::ops::activation::{self, Activation};
use coreml_candle::ops::bn_fold::BatchNormParams;
use coreml_candle::ops::conv_gemm::DenseConv2d;
use coreml_candle::ops::conv_layer::{Conv2dLayer, Kernels};
use coreml_candle::ops::conv_params::ConvParams;
use coreml_candle::ops::depthwise::DepthwiseConv2d;
use coreml_candle::ops::runtime;
use support::{max_abs, max_abs_diff, rand_tensor, rand_vec, watchdog};

/// Reference: candle conv2d + bias + residual + activation, all with candle ops.
#[allow(clippy::too_many_arguments)]
fn candle_conv(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    stride: usize,
    padding: usize,
    groups: usize,
    residual: Option<&Tensor>,
    act: Activation,
) -> Tensor {
    let c_out = w.dims()[0];
    let mut y = x
        .conv2d(w, padding, stride, 1, groups)
        .unwrap()
        .broadcast_add(&b.reshape((1, c_out, 1, 1)).unwrap())
        .unwrap();
    if let Some(r) = residual {
        y = (y + r).unwrap();
    }
    match act {
        Activation::Identity => y,
        Activation::Relu => y.relu().unwrap(),
        Activation::Relu6 => y.clamp(0f32, 6f32).unwrap(),
        Activation::Gelu => y.gelu_erf().unwrap(),
    }
}

#[test]
fn depthwise_matches_candle_grouped_conv() {
    watchdog(120, || {
        // (channels, multiplier, k, stride, padding, h, w, batch, activation)
        let cases = [
            (8, 1, 3, 1, 1, 13, 11, 2, Activation::Identity),
            (8, 1, 3, 2, 1, 13, 11, 1, Activation::Relu),
            (6, 2, 7, 2, 3, 16, 15, 1, Activation::Identity),
            (6, 2, 3, 2, 1, 9, 9, 2, Activation::Gelu),
            (5, 1, 7, 1, 3, 7, 7, 1, Activation::Gelu),
            (4, 3, 5, 1, 0, 10, 12, 1, Activation::Relu6),
            (4, 1, 3, 3, 2, 17, 10, 1, Activation::Relu),
            (3, 1, 7, 1, 3, 2, 3, 1, Activation::Identity), // kernel larger than the image
            (48, 1, 7, 1, 3, 56, 56, 1, Activation::Identity),
        ];
        for (i, &(c, m, k, s, p, h, w, b, act)) in cases.iter().enumerate() {
            let seed = 100 + i as u64;
            let x = rand_tensor(seed, &[b, c, h, w], 1.0);
            let wt = rand_tensor(seed + 1, &[c * m, 1, k, k], 1.0 / k as f32);
            let bias = rand_tensor(seed + 2, &[c * m], 0.5);
            let want = candle_conv(&x, &wt, &bias, s, p, c, None, act);
            let op = DepthwiseConv2d::new(&wt, Some(&bias), c, s, p, act).unwrap();
            let got = op.forward(&x).unwrap();
            assert_eq!(got.dims(), want.dims(), "case {i}");
            let d = max_abs_diff(&got, &want);
            assert!(max_abs(&want) > 0.1, "case {i}: degenerate reference");
            assert!(d < 1e-5, "case {i}: L∞ {d}");

            let res = rand_tensor(seed + 3, want.dims(), 1.0);
            let want = candle_conv(&x, &wt, &bias, s, p, c, Some(&res), act);
            let d = max_abs_diff(&op.forward_add(&x, &res).unwrap(), &want);
            assert!(d < 1e-5, "case {i} with residual: L∞ {d}");
        }
    });
}

#[test]
fn dense_gemm_conv_matches_candle_conv() {
    watchdog(120, || {
        // (c_in, c_out, k, stride, padding, h, w, batch, activation)
        let cases = [
            (16, 24, 1, 1, 0, 14, 14, 2, Activation::Identity),
            (16, 24, 1, 2, 0, 15, 14, 1, Activation::Relu),
            (8, 12, 3, 1, 1, 13, 11, 2, Activation::Relu),
            (8, 12, 3, 2, 1, 13, 11, 1, Activation::Gelu),
            (3, 16, 7, 2, 3, 32, 30, 1, Activation::Relu),
            (5, 7, 3, 1, 0, 6, 9, 1, Activation::Relu6),
            (4, 4, 5, 3, 2, 11, 11, 1, Activation::Gelu),
            (64, 64, 3, 1, 1, 56, 56, 1, Activation::Relu),
        ];
        for (i, &(ci, co, k, s, p, h, w, b, act)) in cases.iter().enumerate() {
            let seed = 200 + i as u64;
            let x = rand_tensor(seed, &[b, ci, h, w], 1.0);
            let scale = (3.0 / (ci * k * k) as f32).sqrt();
            let wt = rand_tensor(seed + 1, &[co, ci, k, k], scale);
            let bias = rand_tensor(seed + 2, &[co], 0.5);
            let op = DenseConv2d::new(&wt, Some(&bias), s, p, act).unwrap();
            let want = candle_conv(&x, &wt, &bias, s, p, 1, None, act);
            let got = op.forward(&x).unwrap();
            assert_eq!(got.dims(), want.dims(), "case {i}");
            assert!(max_abs(&want) > 0.1, "case {i}: degenerate reference");
            let d = max_abs_diff(&got, &want);
            assert!(d < 1e-5, "case {i}: L∞ {d}");

            let res = rand_tensor(seed + 3, want.dims(), 1.0);
            let want = candle_conv(&x, &wt, &bias, s, p, 1, Some(&res), act);
            let d = max_abs_diff(&op.forward_add(&x, &res).unwrap(), &want);
            assert!(d < 1e-5, "case {i} with residual: L∞ {d}");
        }
    });
}

#[test]
fn end_padding_equals_an_explicitly_padded_input() {
    watchdog(120, || {
        // TensorFlow "SAME" at stride 2 on even sizes: (k-2)/2 zeros before, the rest after.
        // (c, k, h, w, depthwise, activation)
        let cases = [
            (6, 3, 16, 12, true, Activation::Relu6),
            (6, 5, 14, 14, true, Activation::Identity),
            (3, 3, 20, 16, false, Activation::Relu6),
            (4, 5, 10, 12, false, Activation::Relu),
        ];
        for (i, &(c, k, h, w, dw, act)) in cases.iter().enumerate() {
            let seed = 600 + i as u64;
            let (begin, end) = ((k - 2) / 2, k - 2 - (k - 2) / 2);
            let co = if dw { c } else { 2 * c };
            let x = rand_tensor(seed, &[1, c, h, w], 1.0);
            let wt = rand_tensor(
                seed + 1,
                &[co, if dw { 1 } else { c }, k, k],
                1.0 / k as f32,
            );
            let bias = rand_tensor(seed + 2, &[co], 0.5);
            let padded = x
                .pad_with_zeros(2, begin, end)
                .unwrap()
                .pad_with_zeros(3, begin, end)
                .unwrap();
            let want = candle_conv(&padded, &wt, &bias, 2, 0, if dw { c } else { 1 }, None, act);
            let got = if dw {
                DepthwiseConv2d::new(&wt, Some(&bias), c, 2, begin, act)
                    .unwrap()
                    .with_end_padding(end)
                    .forward(&x)
                    .unwrap()
            } else {
                DenseConv2d::new(&wt, Some(&bias), 2, begin, act)
                    .unwrap()
                    .with_end_padding(end)
                    .forward(&x)
                    .unwrap()
            };
            assert_eq!(got.dims(), want.dims(), "case {i}");
            assert!(max_abs(&want) > 0.1, "case {i}: degenerate reference");
            let d = max_abs_diff(&got, &want);
            assert!(d < 1e-5, "case {i}: L∞ {d}");
        }
    });
}

#[test]
fn batchnorm_folding_matches_conv_then_batchnorm() {
    watchdog(60, || {
        let (ci, co, k) = (6, 10, 3);
        let x = rand_tensor(300, &[2, ci, 9, 9], 1.0);
        let wt = rand_tensor(301, &[co, ci, k, k], 0.3);
        let bn = BatchNormParams {
            gamma: rand_vec(302, co, 1.0),
            beta: rand_vec(303, co, 1.0),
            mean: rand_vec(304, co, 1.0),
            var: rand_vec(305, co, 0.9).iter().map(|v| v + 1.0).collect(),
            eps: 1e-5,
        };
        let dev = Device::Cpu;
        let t = |v: &Vec<f32>| Tensor::new(v.as_slice(), &dev).unwrap();
        let candle_bn = candle_nn::BatchNorm::new(
            co,
            t(&bn.mean),
            t(&bn.var),
            t(&bn.gamma),
            t(&bn.beta),
            bn.eps,
        )
        .unwrap();
        let want = candle_bn
            .forward_t(&x.conv2d(&wt, 1, 1, 1, 1).unwrap(), false)
            .unwrap();
        let mut p = ConvParams {
            c_out: co,
            c_in: ci,
            groups: 1,
            kh: k,
            kw: k,
            stride: 1,
            padding: 1,
            weight: wt.flatten_all().unwrap().to_vec1().unwrap(),
            bias: vec![0.0; co],
        };
        p.fold_bn(&bn).unwrap();
        for kernels in [Kernels::FAST, Kernels::CANDLE] {
            let layer = Conv2dLayer::build(p.clone(), Activation::Identity, kernels, &dev).unwrap();
            let d = max_abs_diff(&layer.forward(&x).unwrap(), &want);
            assert!(max_abs(&want) > 1.0);
            assert!(d < 2e-5, "{kernels:?}: L∞ {d}");
        }
    });
}

#[test]
fn reparameterised_branches_equal_the_sum_of_branches() {
    watchdog(60, || {
        // MobileOne-style: 3×3 depthwise + 1×1 depthwise (padded) + identity = one 3×3 conv.
        let c = 8;
        let dev = Device::Cpu;
        let x = rand_tensor(400, &[1, c, 10, 10], 1.0);
        let mut k3 = ConvParams::identity(c, c, 3, 1, 1);
        k3.weight = rand_vec(401, c * 9, 0.5);
        k3.bias = rand_vec(402, c, 0.5);
        let mut k1 = ConvParams::identity(c, c, 1, 1, 0);
        k1.weight = rand_vec(403, c, 0.5);
        k1.bias = rand_vec(404, c, 0.5);
        let id = ConvParams::identity(c, c, 3, 1, 1);
        let run = |p: &ConvParams| {
            Conv2dLayer::build(p.clone(), Activation::Identity, Kernels::CANDLE, &dev)
                .unwrap()
                .forward(&x)
                .unwrap()
        };
        let want = ((run(&k3) + run(&k1)).unwrap() + &x).unwrap();
        let mut fused = k3.clone();
        fused.add(&k1.pad_to(3).unwrap()).unwrap();
        fused.add(&id).unwrap();
        let got = Conv2dLayer::build(fused, Activation::Identity, Kernels::FAST, &dev)
            .unwrap()
            .forward(&x)
            .unwrap();
        let d = max_abs_diff(&got, &want);
        assert!(d < 1e-5, "L∞ {d}");
    });
}

#[test]
fn fast_gelu_matches_candle_gelu_erf() {
    watchdog(60, || {
        let mut v: Vec<f32> = (-20_000..=20_000).map(|i| i as f32 * 5e-4).collect();
        v.extend(rand_vec(500, 100_000, 12.0));
        v.extend([0.0, -0.0, 1e-30, -1e-30, 90.0, -90.0, 1e4, -1e4]);
        let x = Tensor::new(v.as_slice(), &Device::Cpu).unwrap();
        let want = x.gelu_erf().unwrap();
        let got = activation::gelu(&x).unwrap();
        let d = max_abs_diff(&got, &want);
        assert!(d < 2e-6, "GELU L∞ {d}");
        let relu = activation::relu(&x).unwrap();
        assert_eq!(max_abs_diff(&relu, &x.relu().unwrap()), 0.0);
        // Non-f32 falls back to candle.
        let x64 = x.to_dtype(DType::F64).unwrap();
        assert_eq!(activation::gelu(&x64).unwrap().dtype(), DType::F64);
    });
}

#[test]
fn runtime_caches_the_thread_count_and_publishes_it_to_candle() {
    watchdog(30, || {
        let n = runtime::init_cpu_runtime(Some(2));
        assert!(n >= 1);
        assert_eq!(runtime::init_cpu_runtime(Some(7)), n, "first call wins");
        assert_eq!(runtime::cpu_threads(), n);
        let env: usize = std::env::var("RAYON_NUM_THREADS").unwrap().parse().unwrap();
        assert_eq!(env, n);
        assert_eq!(candle_core::utils::get_num_threads(), n);
        // candle's spinning elementwise pool stays off unless the user configured it.
        assert!(std::env::var_os("CANDLE_NUM_THREADS").is_some());
        assert!(runtime::cpu_runtime().is_some());
    });
}
