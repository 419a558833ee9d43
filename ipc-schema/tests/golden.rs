//! Golden byte vectors: the encoder must produce exactly the committed bytes and
//! the decoder must read them back. Regenerate (after a deliberate, versioned
//! change only) with `UPDATE_GOLDEN=1 cargo test -p coreml-ipc-schema --test golden`.

#[path = "common/cases.rs"]
mod cases;

use coreml_ipc_schema::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::PathBuf;

fn golden_dir() -> PathBuf {
    manifest_dir().join("golden")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// MessagePack → JSON, the readable form stored beside the bytes.
fn readable(v: &rmpv::Value) -> Value {
    match v {
        rmpv::Value::Nil => Value::Null,
        rmpv::Value::Boolean(b) => json!(b),
        rmpv::Value::Integer(i) => {
            if let Some(u) = i.as_u64() {
                json!(u)
            } else {
                json!(i.as_i64().unwrap())
            }
        }
        rmpv::Value::F32(f) => json!(f),
        rmpv::Value::F64(f) => json!(f),
        rmpv::Value::String(s) => json!(s.as_str().expect("utf-8")),
        rmpv::Value::Array(a) => Value::Array(a.iter().map(readable).collect()),
        rmpv::Value::Map(m) => {
            let mut o = serde_json::Map::new();
            for (k, v) in m {
                o.insert(k.as_str().expect("string keys").to_string(), readable(v));
            }
            Value::Object(o)
        }
        other => panic!("unexpected MessagePack value in a v1 message: {other:?}"),
    }
}

fn case_json(name: &str, env: &Envelope) -> Value {
    let frame = encode_frame(env).unwrap();
    let body = rmpv::decode::read_value(&mut &frame[4..]).unwrap();
    let arr = body.as_array().unwrap();
    json!({
        "name": name,
        "message": env.message.tag().name(),
        "tag": env.message.tag() as u16,
        "request_id": env.request_id,
        "payload": readable(&arr[2]),
        "hex": hex(&frame),
    })
}

#[test]
fn golden_vectors_match_encoder_and_decoder() {
    let cases = cases::cases();
    let dir = golden_dir();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for entry in std::fs::read_dir(&dir).unwrap() {
            std::fs::remove_file(entry.unwrap().path()).unwrap();
        }
        for (name, env) in &cases {
            let text = serde_json::to_string_pretty(&case_json(name, env)).unwrap() + "\n";
            std::fs::write(dir.join(format!("{name}.json")), text).unwrap();
        }
    }
    let mut seen = BTreeSet::new();
    for (name, env) in &cases {
        assert!(seen.insert(name.clone()), "duplicate case name {name}");
        let path = dir.join(format!("{name}.json"));
        let stored: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| {
                panic!("{}: {e}; regenerate with UPDATE_GOLDEN=1", path.display())
            }))
            .unwrap();
        let expected = case_json(name, env);
        assert_eq!(
            stored, expected,
            "case {name}: encoder output differs from the golden file"
        );
        // The stored bytes decode to the same value.
        let frame = unhex(stored["hex"].as_str().unwrap());
        let mut dec = FrameDecoder::new(MAX_FRAME_LEN);
        dec.feed(&frame);
        let body = dec.next_frame().unwrap().unwrap();
        assert_eq!(dec.buffered(), 0);
        let decoded = Envelope::decode(&body).unwrap_or_else(|e| panic!("case {name}: {e}"));
        assert_eq!(&decoded, env, "case {name}: decoded value differs");
    }
    let files: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .trim_end_matches(".json")
                .to_string()
        })
        .collect();
    assert_eq!(files, seen, "golden folder and case list differ");
}

#[test]
fn golden_vectors_cover_every_message_and_error_code() {
    let cases = cases::cases();
    let tags: BTreeSet<u16> = cases.iter().map(|(_, e)| e.message.tag() as u16).collect();
    for tag in Tag::ALL {
        assert!(
            tags.contains(&(*tag as u16)),
            "no golden case for {}",
            tag.name()
        );
    }
    let codes: BTreeSet<u32> = cases
        .iter()
        .filter_map(|(_, e)| match &e.message {
            Message::Error(r) => Some(r.code.0),
            _ => None,
        })
        .collect();
    for code in ErrorCode::KNOWN {
        assert!(
            codes.contains(&code.0),
            "no golden case for error code {code}"
        );
    }
    assert!(
        codes.iter().any(|c| ErrorCode(*c).name().is_none()),
        "no unknown error code case"
    );
}

#[test]
fn hello_versions_negotiate() {
    let by_name = |n: &str| {
        cases::cases()
            .into_iter()
            .find(|(name, _)| name == n)
            .unwrap()
            .1
    };
    let get = |n: &str| match by_name(n).message {
        Message::Hello(h) => h,
        _ => unreachable!(),
    };
    assert_eq!(
        get("hello").negotiate().unwrap(),
        Negotiated { major: 2, minor: 0 }
    );
    assert_eq!(
        get("hello_newer_minor").negotiate().unwrap(),
        Negotiated { major: 2, minor: 1 }
    );
    // A v1 helper (regions by name) cannot work with descriptor passing.
    assert_eq!(
        get("hello_v1").negotiate(),
        Err(VersionError::IncompatibleVersion {
            ours: 2,
            theirs_major: 1,
            theirs_minor: 0
        })
    );
    assert_eq!(
        get("hello_other_major").negotiate(),
        Err(VersionError::IncompatibleVersion {
            ours: 2,
            theirs_major: 3,
            theirs_minor: 0
        })
    );
}

/// This package's directory. Read at run time (cargo sets it for tests) before the
/// compile-time value: a cached test binary built from another checkout of the
/// workspace (same target dir, older sources) would otherwise look there.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}
