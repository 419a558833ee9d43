//! Fuzzes the package reader: the input is split into manifest, model and
//! weight-file bytes by two little-endian u16 lengths (manifest, model).
//! Run with `make fuzz-mlpackage`.
#![no_main]

use coreml_mlpackage::Package;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let a = u16::from_le_bytes([data[0], data[1]]) as usize;
    let b = u16::from_le_bytes([data[2], data[3]]) as usize;
    let rest = &data[4..];
    let a = a.min(rest.len());
    let b = b.min(rest.len() - a);
    let (manifest, rest) = rest.split_at(a);
    let (model, weights) = rest.split_at(b);
    if let Ok(pkg) = Package::from_bytes(manifest, model, Some(weights.to_vec())) {
        for op in &pkg.main().block.operations {
            for v in op.attributes.values() {
                if let Some(t) = v.tensor() {
                    let _ = pkg.tensor(t);
                }
            }
        }
        let _ = pkg.weight_sizes();
    }
});
