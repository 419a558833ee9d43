//! `coreml-bridge inspect PACKAGE` and `coreml-bridge diff A B`: what an
//! `.mlpackage` holds, read with the Rust reader (no Python, no Core ML): the
//! I/O schema, the op histogram, dynamic shapes, the operations the MIL
//! executor does not support, and weight sizes per dtype.
//!
//! ```text
//! $ coreml-bridge inspect tests/fixtures/mlpackage/small_cnn_fp32.mlpackage
//! package   tests/fixtures/mlpackage/small_cnn_fp32.mlpackage (spec 7, opset CoreML6)
//! input     image  fp32 [1, 3, 8, 8]
//! output    logits fp32 [1, 5]
//! ops       const 12, conv 2, gelu 1, linear 1, reduce_mean 1, relu 1
//! dynamic   none
//! unsupported none
//! weights   fp32: 7 tensors, 1.9 KiB
//! $ coreml-bridge diff a.mlpackage b.mlpackage
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;
use coreml_mlpackage::description::{Feature, FeatureKind, ImageFlexibility, ShapeFlexibility};
use coreml_mlpackage::program::Block;
use coreml_mlpackage::Package;
use serde::Serialize;

use crate::Global;

/// `inspect` arguments.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The `.mlpackage` directory.
    pub package: PathBuf,
}

/// `diff` arguments.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// First package.
    pub a: PathBuf,
    /// Second package.
    pub b: PathBuf,
}

/// What `inspect` reports about one package.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub package: String,
    pub specification_version: i32,
    pub opset: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    /// Op type -> count, over `main`.
    pub ops: BTreeMap<String, usize>,
    /// Inputs with flexible shapes, and op results whose shape is not static.
    pub dynamic: Vec<String>,
    /// Op types the MIL executor does not run.
    pub unsupported: Vec<String>,
    /// Dtype -> count and bytes of the constants (const and constexpr parameters).
    pub weights: BTreeMap<String, Weights>,
}

/// Constant tensors of one element type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Weights {
    pub tensors: usize,
    /// Stored size (sub-byte types packed).
    pub bytes: u64,
}

fn feature(f: &Feature) -> String {
    match &f.kind {
        FeatureKind::MultiArray(a) | FeatureKind::State(a) => {
            let flex = match &a.flexibility {
                None => String::new(),
                Some(ShapeFlexibility::Enumerated(s)) => format!(" one of {s:?}"),
                Some(ShapeFlexibility::Range(r)) => format!(
                    " ranges [{}]",
                    r.iter()
                        .map(|(lo, hi)| format!(
                            "{lo}..={}",
                            hi.map_or("inf".into(), |h| h.to_string())
                        ))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            format!("{} {} {:?}{flex}", f.name, a.dtype, a.shape)
        }
        FeatureKind::Image(i) => {
            let flex = match &i.flexibility {
                None => String::new(),
                Some(ImageFlexibility::Enumerated(s)) => format!(" one of {s:?}"),
                Some(ImageFlexibility::Range { width, height }) => {
                    format!(" width {width:?} height {height:?}")
                }
            };
            format!(
                "{} image {:?} {}x{}{flex}",
                f.name, i.color_space, i.width, i.height
            )
        }
        other => format!("{} {other:?}", f.name),
    }
}

/// Counts op types (nested blocks included) and notes results whose shape is not static.
fn walk(block: &Block, ops: &mut BTreeMap<String, usize>, dynamic: &mut Vec<String>) {
    for op in &block.operations {
        *ops.entry(op.op_type.clone()).or_insert(0) += 1;
        for o in &op.outputs {
            if o.ty.tensor().is_some_and(|t| t.static_shape().is_none()) {
                dynamic.push(format!("{} {}", op.op_type, o.name));
            }
        }
        for b in &op.blocks {
            walk(b, ops, dynamic);
        }
    }
}

/// Summarises an opened package.
pub fn summarize(label: &str, pkg: &Package) -> Summary {
    let main = pkg.main();
    let mut ops = BTreeMap::new();
    let mut dynamic: Vec<String> = pkg
        .description
        .inputs
        .iter()
        .filter(|f| {
            matches!(&f.kind, FeatureKind::MultiArray(a) if a.flexibility.is_some())
                || matches!(&f.kind, FeatureKind::Image(i) if i.flexibility.is_some())
        })
        .map(|f| format!("input {}", f.name))
        .collect();
    walk(&main.block, &mut ops, &mut dynamic);
    let unsupported = ops
        .keys()
        .filter(|t| !coreml_mil::ops::SUPPORTED.contains(&t.as_str()))
        .cloned()
        .collect();
    Summary {
        package: label.to_string(),
        specification_version: pkg.specification_version,
        opset: main.opset.clone(),
        inputs: pkg.description.inputs.iter().map(feature).collect(),
        outputs: pkg.description.outputs.iter().map(feature).collect(),
        ops,
        dynamic,
        unsupported,
        weights: pkg
            .weight_sizes()
            .into_iter()
            .map(|(d, (tensors, bytes))| (d.to_string(), Weights { tensors, bytes }))
            .collect(),
    }
}

fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

fn or_none(v: Vec<String>) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// The text form of a summary.
pub fn render(s: &Summary) -> String {
    let mut out = format!(
        "package   {} (spec {}, opset {})\n",
        s.package, s.specification_version, s.opset
    );
    for i in &s.inputs {
        out += &format!("input     {i}\n");
    }
    for o in &s.outputs {
        out += &format!("output    {o}\n");
    }
    out += &format!(
        "ops       {}\n",
        or_none(s.ops.iter().map(|(k, v)| format!("{k} {v}")).collect())
    );
    out += &format!("dynamic   {}\n", or_none(s.dynamic.clone()));
    out += &format!("unsupported {}\n", or_none(s.unsupported.clone()));
    out += &format!(
        "weights   {}\n",
        or_none(
            s.weights
                .iter()
                .map(|(d, w)| format!("{d}: {} tensors, {}", w.tensors, bytes(w.bytes)))
                .collect()
        )
    );
    out
}

/// The text form of a diff: schemas and op histograms side by side.
pub fn render_diff(a: &Summary, b: &Summary) -> String {
    let mut out = format!("{:<24} {:<40} {}\n", "", a.package, b.package);
    let version_a = format!("{} {}", a.specification_version, a.opset);
    out += &format!(
        "{:<24} {:<40} {} {}\n",
        "spec/opset", version_a, b.specification_version, b.opset
    );
    let rows = |label: &str, x: &[String], y: &[String]| -> String {
        (0..x.len().max(y.len()))
            .map(|i| {
                let (l, r) = (
                    x.get(i).map_or("", String::as_str),
                    y.get(i).map_or("", String::as_str),
                );
                format!(
                    "{label:<24} {l:<40} {r}{}\n",
                    if l != r { "   *" } else { "" }
                )
            })
            .collect()
    };
    out += &rows("input", &a.inputs, &b.inputs);
    out += &rows("output", &a.outputs, &b.outputs);
    let mut types: Vec<&String> = a.ops.keys().chain(b.ops.keys()).collect();
    types.sort();
    types.dedup();
    for t in types {
        let (x, y) = (
            a.ops.get(t).copied().unwrap_or(0),
            b.ops.get(t).copied().unwrap_or(0),
        );
        out += &format!(
            "{:<24} {:<40} {y}{}\n",
            format!("op {t}"),
            x,
            if x != y {
                format!("   ({:+})", y as i64 - x as i64)
            } else {
                String::new()
            }
        );
    }
    let mut dtypes: Vec<&String> = a.weights.keys().chain(b.weights.keys()).collect();
    dtypes.sort();
    dtypes.dedup();
    for d in dtypes {
        let side = |s: &Summary| {
            s.weights.get(d).map_or("-".to_string(), |w| {
                format!("{} x{}", bytes(w.bytes), w.tensors)
            })
        };
        out += &format!(
            "{:<24} {:<40} {}\n",
            format!("weights {d}"),
            side(a),
            side(b)
        );
    }
    let (wa, wb): (u64, u64) = (
        a.weights.values().map(|w| w.bytes).sum(),
        b.weights.values().map(|w| w.bytes).sum(),
    );
    out += &format!("{:<24} {:<40} {}\n", "weights all", bytes(wa), bytes(wb));
    out
}

/// Opens and checks a package (every weight blob's record included); an
/// error names the package, then the file and field inside it.
fn open(p: &std::path::Path) -> Result<Summary, String> {
    let advice = "give an ML Program .mlpackage directory (a damaged one must be converted again)";
    let pkg = Package::open(p).map_err(|e| crate::app::file_error(p, e, advice))?;
    if let Some(w) = pkg.weights() {
        w.blobs()
            .map_err(|e| crate::app::file_error(p, e, advice))?;
    }
    Ok(summarize(&p.display().to_string(), &pkg))
}

/// `inspect`.
pub fn run(global: Global, args: InspectArgs) -> Result<(), String> {
    let s = open(&args.package)?;
    if global.json {
        crate::app::print_json(&serde_json::to_value(&s).map_err(|e| e.to_string())?);
    } else {
        crate::out_part!("{}", render(&s));
    }
    Ok(())
}

/// `diff`.
pub fn run_diff(global: Global, args: DiffArgs) -> Result<(), String> {
    let (a, b) = (open(&args.a)?, open(&args.b)?);
    if global.json {
        crate::app::print_json(&serde_json::json!({ "a": a, "b": b }));
    } else {
        crate::out_part!("{}", render_diff(&a, &b));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/mlpackage")
            .join(name)
    }

    #[test]
    fn inspect_counts_ops_and_weights() {
        let s = open(&fixture("small_cnn_fp32.mlpackage")).unwrap();
        assert_eq!(s.ops["conv"], 2);
        assert_eq!(s.ops["linear"], 1);
        assert_eq!(s.inputs, vec!["image fp32 [1, 3, 8, 8]".to_string()]);
        assert!(s.unsupported.is_empty() && s.dynamic.is_empty());
        assert!(s.weights["fp32"].bytes >= (8 * 3 * 9 + 8 * 9 + 5 * 8) as u64 * 4);
        let text = render(&s);
        assert!(
            text.contains("conv 2") && text.contains("opset CoreML6"),
            "{text}"
        );
    }

    #[test]
    fn diff_shows_compression_ops_and_weight_dtypes() {
        let a = open(&fixture("pal4_ios16.mlpackage")).unwrap();
        let b = open(&fixture("q_int4_block32_ios18.mlpackage")).unwrap();
        assert!(
            a.weights.contains_key("uint8") && b.weights.contains_key("int4"),
            "{:?} {:?}",
            a.weights,
            b.weights
        );
        let d = render_diff(&a, &b);
        assert!(
            d.contains("op constexpr_lut_to_dense")
                && d.contains("op constexpr_blockwise_shift_scale"),
            "{d}"
        );
        assert!(d.contains("(-") && d.contains("(+"), "{d}");
    }

    #[test]
    fn a_missing_package_is_an_error_naming_it() {
        let e = open(&fixture("nope.mlpackage")).unwrap_err();
        assert!(
            e.contains("nope.mlpackage") && e.contains("Manifest.json"),
            "{e}"
        );
    }
}
