//! The golden cases, used by `golden.rs` both to check and (with the variable below) to regenerate
//! the files: `UPDATE_GOLDEN=1 cargo test -p coreml-ipc-schema --test golden`.

use coreml_ipc_schema::*;

fn hello(major: u16, minor: u16, coreml: Option<&str>) -> Hello {
    Hello {
        protocol_major: major,
        protocol_minor: minor,
        helper_version: "0.1.0".into(),
        os: "macOS".into(),
        os_build: "24G84".into(),
        chip: "Apple M2".into(),
        coreml_version: coreml.map(Into::into),
        compute_units: ComputeUnits::ALL.to_vec(),
        sandboxed: true,
        sandbox_detail: Some("seatbelt deny-default".into()),
        engine: "coreml".into(),
        pid: 4242,
    }
}

fn tref(dtype: DType, shape: &[u64], region: u32, offset: u64) -> TensorRef {
    TensorRef::contiguous(dtype, shape.to_vec(), region, offset)
}

/// Every case: (name, envelope).
pub fn cases() -> Vec<(String, Envelope)> {
    let mut v: Vec<(String, Envelope)> = Vec::new();
    let mut add =
        |name: &str, id: u64, m: Message| v.push((name.to_string(), Envelope::new(id, m)));

    add("hello", 0, Message::Hello(hello(2, 0, Some("9.0"))));
    add(
        "hello_linux_no_coreml",
        0,
        Message::Hello(Hello {
            os: "Linux".into(),
            os_build: "6.1.0".into(),
            chip: "x86_64".into(),
            compute_units: vec![ComputeUnits::CpuOnly],
            sandboxed: false,
            sandbox_detail: None,
            engine: "diagnostic".into(),
            pid: u32::MAX,
            ..hello(2, 0, None)
        }),
    );
    add(
        "hello_newer_minor",
        0,
        Message::Hello(hello(2, 7, Some("9.0"))),
    );
    add("hello_v1", 0, Message::Hello(hello(1, 0, Some("9.0"))));
    add(
        "hello_other_major",
        0,
        Message::Hello(hello(3, 0, Some("9.0"))),
    );
    add(
        "welcome",
        0,
        Message::Welcome(Welcome {
            protocol_major: 2,
            protocol_minor: 0,
            supervisor_version: "0.1.0".into(),
        }),
    );
    add("ping", 1, Message::Ping(Ping { nonce: 0 }));
    add(
        "ping_max",
        u64::MAX,
        Message::Ping(Ping { nonce: u64::MAX }),
    );
    add(
        "pong",
        1,
        Message::Pong(Pong {
            nonce: 0x1234_5678_9abc,
        }),
    );
    add("shutdown", 2, Message::Shutdown(Shutdown {}));
    add("shutdown_ack", 2, Message::ShutdownAck(ShutdownAck {}));
    for code in ErrorCode::KNOWN {
        let name = format!("error_{}", code.name().unwrap());
        add(
            &name,
            9,
            Message::Error(ErrorReply {
                code: *code,
                message: format!("{} happened", code.name().unwrap()),
            }),
        );
    }
    add(
        "error_unknown_code",
        9,
        Message::Error(ErrorReply {
            code: ErrorCode(70_000),
            message: String::new(),
        }),
    );
    add(
        "error_unsolicited_long_message",
        0,
        Message::Error(ErrorReply {
            code: ErrorCode::BAD_REQUEST,
            message: "é".repeat(300),
        }),
    );
    add(
        "attach_region",
        3,
        Message::AttachRegion(AttachRegion {
            region: 0,
            size: 64 * 1024 * 1024,
        }),
    );
    add(
        "attach_region_max",
        3,
        Message::AttachRegion(AttachRegion {
            region: u32::MAX,
            size: u64::MAX,
        }),
    );
    add(
        "region_attached",
        3,
        Message::RegionAttached(RegionAttached { region: 0 }),
    );
    add(
        "detach_region",
        4,
        Message::DetachRegion(DetachRegion { region: 1 }),
    );
    add(
        "region_detached",
        4,
        Message::RegionDetached(RegionDetached { region: 1 }),
    );
    for cu in ComputeUnits::ALL {
        add(
            &format!("compile_{cu:?}").to_lowercase(),
            5,
            Message::Compile(Compile {
                source_path: "/models/fastvit_t8.mlpackage".into(),
                staging_dir: "/cache/staging/7f3a".into(),
                compute_units: *cu,
                deadline_us: None,
            }),
        );
    }
    add(
        "compiled_mlprogram",
        5,
        Message::Compiled(Compiled {
            bundle_path: "/cache/staging/7f3a/fastvit_t8.mlmodelc".into(),
            backend: Backend::MlProgram,
            compile_us: 1_234_567,
        }),
    );
    add(
        "compiled_neuralnetwork",
        5,
        Message::Compiled(Compiled {
            bundle_path: "/cache/staging/x/m.mlmodelc".into(),
            backend: Backend::NeuralNetwork,
            compile_us: 0,
        }),
    );
    add(
        "load",
        6,
        Message::Load(Load {
            model_id: 1,
            bundle_path: "/cache/models/ab/fastvit_t8.mlmodelc".into(),
            compute_units: ComputeUnits::CpuAndNe,
            deadline_us: None,
        }),
    );
    add(
        "load_deadline",
        6,
        Message::Load(Load {
            model_id: 2,
            bundle_path: "/cache/models/ab/fastvit_t8.mlmodelc".into(),
            compute_units: ComputeUnits::All,
            deadline_us: Some(30_000_000),
        }),
    );
    add(
        "compile_deadline",
        5,
        Message::Compile(Compile {
            source_path: "/models/fastvit_t8.mlpackage".into(),
            staging_dir: "/cache/staging/7f3a".into(),
            compute_units: ComputeUnits::All,
            deadline_us: Some(u64::MAX),
        }),
    );
    add(
        "load_diag",
        6,
        Message::Load(Load {
            model_id: u64::MAX,
            bundle_path: "diag:echo?dtype=f16&shape=1x3x224x224".into(),
            compute_units: ComputeUnits::All,
            deadline_us: None,
        }),
    );
    let spec_in = TensorSpec {
        name: "image".into(),
        dtype: DType::F32,
        shape: vec![1, 3, 224, 224],
        enumerated_shapes: vec![],
        shape_ranges: vec![],
        optional: false,
        image: None,
    };
    let spec_flex = TensorSpec {
        name: "input_ids".into(),
        dtype: DType::I32,
        shape: vec![1, 128],
        enumerated_shapes: vec![vec![1, 64], vec![1, 128]],
        shape_ranges: vec![[1, 1], [1, u64::MAX]],
        optional: true,
        image: None,
    };
    let spec_scalar = TensorSpec {
        name: "".into(),
        dtype: DType::F16,
        shape: vec![],
        enumerated_shapes: vec![],
        shape_ranges: vec![],
        optional: false,
        image: None,
    };
    add(
        "loaded",
        6,
        Message::Loaded(Loaded {
            model_id: 1,
            inputs: vec![spec_in.clone(), spec_flex],
            outputs: vec![
                TensorSpec {
                    name: "logits".into(),
                    shape: vec![1, 1000],
                    ..spec_in
                },
                spec_scalar,
            ],
            compute_units: ComputeUnits::CpuAndGpu,
            load_us: 3_900_000,
        }),
    );
    add(
        "loaded_empty_schema",
        6,
        Message::Loaded(Loaded {
            model_id: 0,
            inputs: vec![],
            outputs: vec![],
            compute_units: ComputeUnits::CpuOnly,
            load_us: 0,
        }),
    );
    // Since 2.1: an image input (BGRA, 224x224) and an image output (grayscale f16) beside a
    // multi-array output; `image` is written only where the feature is an image.
    let rgb = ImageSpec {
        width: 224,
        height: 224,
        pixel_format: PixelFormat::Bgra8,
    };
    let mask = ImageSpec {
        width: 7,
        height: 5,
        pixel_format: PixelFormat::GrayF16,
    };
    add(
        "loaded_image",
        6,
        Message::Loaded(Loaded {
            model_id: 3,
            inputs: vec![TensorSpec::image("image", rgb)],
            outputs: vec![
                TensorSpec::image("mask", mask),
                TensorSpec {
                    name: "logits".into(),
                    dtype: DType::F32,
                    shape: vec![1, 1000],
                    enumerated_shapes: vec![],
                    shape_ranges: vec![],
                    optional: false,
                    image: None,
                },
            ],
            compute_units: ComputeUnits::All,
            load_us: 12,
        }),
    );
    add(
        "loaded_image_formats",
        6,
        Message::Loaded(Loaded {
            model_id: 4,
            inputs: PixelFormat::ALL
                .iter()
                .map(|&f| {
                    TensorSpec::image(
                        f.name(),
                        ImageSpec {
                            width: u64::MAX,
                            height: 1,
                            pixel_format: f,
                        },
                    )
                })
                .collect(),
            outputs: vec![],
            compute_units: ComputeUnits::CpuOnly,
            load_us: 0,
        }),
    );
    // The image's rows padded to 64 bytes (224 * 4 = 896 already is; 7 f16 = 14 -> 64).
    add(
        "predict_image",
        12,
        Message::Predict(Predict {
            model_id: 3,
            inputs: vec![NamedTensor {
                name: "image".into(),
                tensor: image_ref(&rgb, 0, 0),
            }],
            outputs: vec![
                NamedTensor {
                    name: "mask".into(),
                    tensor: image_ref(&mask, 1, 0),
                },
                NamedTensor {
                    name: "logits".into(),
                    tensor: tref(DType::F32, &[1, 1000], 1, 16384),
                },
            ],
            deadline_us: 0,
        }),
    );
    add("unload", 7, Message::Unload(Unload { model_id: 1 }));
    add("unloaded", 7, Message::Unloaded(Unloaded { model_id: 1 }));
    add(
        "get_compute_plan",
        8,
        Message::GetComputePlan(GetComputePlan { model_id: 1 }),
    );
    add(
        "compute_plan",
        8,
        Message::ComputePlan(ComputePlan {
            model_id: 1,
            ops: vec![
                OpPlan {
                    operator: "conv".into(),
                    preferred: Some(Device::NeuralEngine),
                    supported: Device::ALL.to_vec(),
                    cost: Some(0.75),
                },
                OpPlan {
                    operator: "softmax".into(),
                    preferred: Some(Device::Cpu),
                    supported: vec![Device::Cpu, Device::Gpu],
                    cost: Some(0.25),
                },
                OpPlan {
                    operator: "gather".into(),
                    preferred: None,
                    supported: vec![],
                    cost: None,
                },
            ],
            ne_coverage: Some(0.75),
            unavailable_reason: None,
        }),
    );
    add(
        "compute_plan_unknown",
        8,
        Message::ComputePlan(ComputePlan {
            model_id: 1,
            ops: vec![],
            ne_coverage: None,
            unavailable_reason: Some("MLComputePlan needs macOS 14.4".into()),
        }),
    );
    let dtypes = DType::ALL;
    add(
        "predict",
        10,
        Message::Predict(Predict {
            model_id: 1,
            inputs: dtypes
                .iter()
                .enumerate()
                .map(|(i, d)| NamedTensor {
                    name: format!("in_{}", d.name()),
                    tensor: tref(*d, &[2, 3], 0, i as u64 * 16384),
                })
                .collect(),
            outputs: vec![NamedTensor {
                name: "y".into(),
                tensor: tref(DType::F32, &[1, 1000], 1, 0),
            }],
            deadline_us: 250_000,
        }),
    );
    add(
        "predict_empty_shapes",
        11,
        Message::Predict(Predict {
            model_id: 2,
            inputs: vec![
                NamedTensor {
                    name: "scalar".into(),
                    tensor: tref(DType::F32, &[], 0, 0),
                },
                NamedTensor {
                    name: "empty".into(),
                    tensor: tref(DType::U8, &[0, 4], 0, 16384),
                },
            ],
            outputs: vec![],
            deadline_us: u64::MAX,
        }),
    );
    add(
        "predicted",
        10,
        Message::Predicted(Predicted {
            model_id: 1,
            outputs: vec![NamedTensor {
                name: "y".into(),
                tensor: TensorRef {
                    dtype: DType::F16,
                    shape: vec![2, 1500],
                    strides: vec![1504, 1],
                    region: 1,
                    offset: 32768,
                    len: 6008,
                },
            }],
            inputs_retained: true,
            marshal_in_us: 12,
            predict_us: 640,
            marshal_out_us: 30,
        }),
    );
    add(
        "inputs_released",
        10,
        Message::InputsReleased(InputsReleased { model_id: 1 }),
    );
    add("get_stats", 12, Message::GetStats(GetStats {}));
    add(
        "stats",
        12,
        Message::Stats(Stats {
            rss_bytes: 123_456_789,
            peak_rss_bytes: 223_456_789,
            requests: 100,
            errors: 1,
            predictions: 90,
            models_loaded: 2,
            regions_attached: 3,
        }),
    );
    v
}
