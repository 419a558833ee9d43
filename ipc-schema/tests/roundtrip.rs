//! Property test: every message round-trips through encode → frame → decode.

use coreml_ipc_schema::*;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

fn text() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[a-z_./:0-9]{1,40}", ".{0,60}"]
}

fn cu() -> impl Strategy<Value = ComputeUnits> {
    proptest::sample::select(ComputeUnits::ALL)
}

fn dtype() -> impl Strategy<Value = DType> {
    proptest::sample::select(DType::ALL)
}

fn device() -> impl Strategy<Value = Device> {
    proptest::sample::select(Device::ALL)
}

fn shape() -> impl Strategy<Value = Vec<u64>> {
    vec(prop_oneof![0u64..5, any::<u64>()], 0..MAX_RANK)
}

fn tensor_ref() -> impl Strategy<Value = TensorRef> {
    (dtype(), shape(), any::<u32>(), any::<u64>(), any::<u64>()).prop_flat_map(
        |(d, s, region, offset, len)| {
            let n = s.len();
            (
                Just(d),
                Just(s),
                vec(any::<u64>(), n),
                Just(region),
                Just(offset),
                Just(len),
            )
                .prop_map(|(dtype, shape, strides, region, offset, len)| TensorRef {
                    dtype,
                    shape,
                    strides,
                    region,
                    offset,
                    len,
                })
        },
    )
}

fn named() -> impl Strategy<Value = NamedTensor> {
    (text(), tensor_ref()).prop_map(|(name, tensor)| NamedTensor { name, tensor })
}

fn spec() -> impl Strategy<Value = TensorSpec> {
    (
        text(),
        dtype(),
        shape(),
        vec(shape(), 0..3),
        vec(any::<[u64; 2]>(), 0..4),
        any::<bool>(),
        option::of(image()),
    )
        .prop_map(
            |(name, dtype, shape, enumerated_shapes, shape_ranges, optional, image)| TensorSpec {
                name,
                dtype,
                shape,
                enumerated_shapes,
                shape_ranges,
                optional,
                image,
            },
        )
}

fn image() -> impl Strategy<Value = ImageSpec> {
    (
        any::<u64>(),
        any::<u64>(),
        prop::sample::select(PixelFormat::ALL),
    )
        .prop_map(|(width, height, pixel_format)| ImageSpec {
            width,
            height,
            pixel_format,
        })
}

fn unit_f64() -> impl Strategy<Value = f64> {
    prop_oneof![Just(0.0), Just(1.0), 0.0f64..=1.0]
}

fn message() -> impl Strategy<Value = Message> {
    let hello = (
        (
            any::<u16>(),
            any::<u16>(),
            text(),
            text(),
            text(),
            text(),
            option::of(text()),
        ),
        (
            vec(cu(), 0..4),
            any::<bool>(),
            option::of(text()),
            text(),
            any::<u32>(),
        ),
    )
        .prop_map(
            |((ma, mi, hv, os, ob, chip, cv), (units, sb, sd, engine, pid))| {
                Message::Hello(Hello {
                    protocol_major: ma,
                    protocol_minor: mi,
                    helper_version: hv,
                    os,
                    os_build: ob,
                    chip,
                    coreml_version: cv,
                    compute_units: units,
                    sandboxed: sb,
                    sandbox_detail: sd,
                    engine,
                    pid,
                })
            },
        );
    let op = (
        text(),
        option::of(device()),
        vec(device(), 0..3),
        option::of(unit_f64()),
    )
        .prop_map(|(operator, preferred, supported, cost)| OpPlan {
            operator,
            preferred,
            supported,
            cost,
        });
    prop_oneof![
        hello,
        any::<u64>().prop_map(|nonce| Message::Ping(Ping { nonce })),
        any::<u64>().prop_map(|nonce| Message::Pong(Pong { nonce })),
        Just(Message::Shutdown(Shutdown {})),
        Just(Message::ShutdownAck(ShutdownAck {})),
        (any::<u32>(), text()).prop_map(|(c, message)| Message::Error(ErrorReply {
            code: ErrorCode(c),
            message
        })),
        (any::<u16>(), any::<u16>(), text()).prop_map(
            |(protocol_major, protocol_minor, supervisor_version)| Message::Welcome(Welcome {
                protocol_major,
                protocol_minor,
                supervisor_version
            })
        ),
        (any::<u32>(), any::<u64>())
            .prop_map(|(region, size)| Message::AttachRegion(AttachRegion { region, size })),
        any::<u32>().prop_map(|region| Message::RegionAttached(RegionAttached { region })),
        any::<u32>().prop_map(|region| Message::DetachRegion(DetachRegion { region })),
        any::<u32>().prop_map(|region| Message::RegionDetached(RegionDetached { region })),
        (text(), text(), cu(), proptest::option::of(any::<u64>())).prop_map(
            |(source_path, staging_dir, compute_units, deadline_us)| {
                Message::Compile(Compile {
                    source_path,
                    staging_dir,
                    compute_units,
                    deadline_us,
                })
            }
        ),
        (text(), proptest::sample::select(Backend::ALL), any::<u64>()).prop_map(
            |(bundle_path, backend, compile_us)| {
                Message::Compiled(Compiled {
                    bundle_path,
                    backend,
                    compile_us,
                })
            }
        ),
        (
            any::<u64>(),
            text(),
            cu(),
            proptest::option::of(any::<u64>())
        )
            .prop_map(|(model_id, bundle_path, compute_units, deadline_us)| {
                Message::Load(Load {
                    model_id,
                    bundle_path,
                    compute_units,
                    deadline_us,
                })
            }),
        (
            any::<u64>(),
            vec(spec(), 0..4),
            vec(spec(), 0..4),
            cu(),
            any::<u64>()
        )
            .prop_map(|(model_id, inputs, outputs, compute_units, load_us)| {
                Message::Loaded(Loaded {
                    model_id,
                    inputs,
                    outputs,
                    compute_units,
                    load_us,
                })
            }),
        any::<u64>().prop_map(|model_id| Message::Unload(Unload { model_id })),
        any::<u64>().prop_map(|model_id| Message::Unloaded(Unloaded { model_id })),
        any::<u64>().prop_map(|model_id| Message::GetComputePlan(GetComputePlan { model_id })),
        (
            any::<u64>(),
            vec(op, 0..5),
            option::of(unit_f64()),
            option::of(text())
        )
            .prop_map(|(model_id, ops, ne_coverage, unavailable_reason)| {
                Message::ComputePlan(ComputePlan {
                    model_id,
                    ops,
                    ne_coverage,
                    unavailable_reason,
                })
            }),
        (
            any::<u64>(),
            vec(named(), 0..4),
            vec(named(), 0..4),
            any::<u64>()
        )
            .prop_map(|(model_id, inputs, outputs, deadline_us)| {
                Message::Predict(Predict {
                    model_id,
                    inputs,
                    outputs,
                    deadline_us,
                })
            }),
        (
            any::<u64>(),
            vec(named(), 0..4),
            any::<bool>(),
            any::<[u64; 3]>()
        )
            .prop_map(|(model_id, outputs, inputs_retained, t)| {
                Message::Predicted(Predicted {
                    model_id,
                    outputs,
                    inputs_retained,
                    marshal_in_us: t[0],
                    predict_us: t[1],
                    marshal_out_us: t[2],
                })
            }),
        any::<u64>().prop_map(|model_id| Message::InputsReleased(InputsReleased { model_id })),
        Just(Message::GetStats(GetStats {})),
        any::<[u64; 7]>().prop_map(|s| Message::Stats(Stats {
            rss_bytes: s[0],
            peak_rss_bytes: s[1],
            requests: s[2],
            errors: s[3],
            predictions: s[4],
            models_loaded: s[5],
            regions_attached: s[6],
        })),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn every_message_round_trips(id in any::<u64>(), msg in message()) {
        let env = Envelope::new(id, msg);
        let frame = encode_frame(&env).unwrap();
        let mut cursor = &frame[..];
        let body = read_frame(&mut cursor, MAX_FRAME_LEN).unwrap().unwrap();
        prop_assert!(cursor.is_empty());
        prop_assert_eq!(Envelope::decode(&body).unwrap(), env);
    }

    #[test]
    fn split_delivery_reassembles(msgs in vec((any::<u64>(), message()), 1..6), cut in vec(1usize..50, 1..20)) {
        let mut stream = Vec::new();
        for (id, m) in &msgs {
            stream.extend(encode_frame(&Envelope::new(*id, m.clone())).unwrap());
        }
        let mut dec = FrameDecoder::new(MAX_FRAME_LEN);
        let mut out = Vec::new();
        let mut pos = 0;
        let mut i = 0;
        while pos < stream.len() {
            let n = cut[i % cut.len()].min(stream.len() - pos);
            dec.feed(&stream[pos..pos + n]);
            pos += n;
            i += 1;
            while let Some(body) = dec.next_frame().unwrap() {
                out.push(Envelope::decode(&body).unwrap());
            }
        }
        dec.finish().unwrap();
        let want: Vec<Envelope> = msgs.into_iter().map(|(id, m)| Envelope::new(id, m)).collect();
        prop_assert_eq!(out, want);
    }
}
