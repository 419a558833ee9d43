//! Bounded property test: mutated and truncated real packages give errors or
//! packages, never panics (the unbounded version is `fuzz/`'s `package` target).

use std::fs;
use std::path::Path;

use coreml_mlpackage::Package;
use proptest::prelude::*;

struct Files {
    manifest: Vec<u8>,
    model: Vec<u8>,
    weights: Option<Vec<u8>>,
}

fn load(name: &str) -> Files {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/mlpackage")
        .join(name);
    Files {
        manifest: fs::read(p.join("Manifest.json")).unwrap(),
        model: fs::read(p.join("Data/com.apple.CoreML/model.mlmodel")).unwrap(),
        weights: fs::read(p.join("Data/com.apple.CoreML/weights/weight.bin")).ok(),
    }
}

/// Opens the package and decodes every tensor, as an executor would.
fn exercise(f: &Files) {
    if let Ok(pkg) = Package::from_bytes(&f.manifest, &f.model, f.weights.clone()) {
        for op in &pkg.main().block.operations {
            for v in op.attributes.values() {
                if let Some(t) = v.tensor() {
                    let _ = pkg.tensor(t);
                }
            }
        }
        let _ = pkg.weight_sizes();
        if let Some(w) = pkg.weights() {
            let _ = w.blobs();
        }
    }
}

#[derive(Debug, Clone)]
enum Edit {
    Flip { file: u8, at: usize, bits: u8 },
    Truncate { file: u8, keep: usize },
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (0u8..3, any::<usize>(), 1u8..=255).prop_map(|(file, at, bits)| Edit::Flip {
            file,
            at,
            bits
        }),
        (0u8..3, any::<usize>()).prop_map(|(file, keep)| Edit::Truncate { file, keep }),
    ]
}

fn pick(f: &mut Files, i: u8) -> Option<&mut Vec<u8>> {
    match i {
        0 => Some(&mut f.manifest),
        1 => Some(&mut f.model),
        _ => f.weights.as_mut(),
    }
}

fn apply(f: &mut Files, e: &Edit) {
    match *e {
        Edit::Flip { file, at, bits } => {
            if let Some(v) = pick(f, file).filter(|v| !v.is_empty()) {
                let n = v.len();
                v[at % n] ^= bits;
            }
        }
        Edit::Truncate { file, keep } => {
            if let Some(v) = pick(f, file) {
                let n = v.len() + 1;
                v.truncate(keep % n);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_packages_never_panic(
        which in 0usize..4,
        edits in proptest::collection::vec(edit(), 1..4),
    ) {
        let names = ["conv.mlpackage", "q_int4_block32_ios18.mlpackage", "pal3_grouped8_ios18.mlpackage", "split_gather_select.mlpackage"];
        let mut f = load(names[which]);
        for e in &edits {
            apply(&mut f, e);
        }
        exercise(&f);
    }
}

#[test]
fn unmutated_fixtures_open_from_bytes() {
    for n in [
        "conv.mlpackage",
        "q_int4_block32_ios18.mlpackage",
        "pal3_grouped8_ios18.mlpackage",
    ] {
        let f = load(n);
        Package::from_bytes(&f.manifest, &f.model, f.weights).unwrap();
    }
}
