"""Op audit of a saved .mlpackage, read from the package itself (no torch).

    >>> from audit import audit_package                                    # doctest: +SKIP
    >>> a = audit_package("resnet50.fp16.mlpackage")                       # doctest: +SKIP
    >>> a["op_histogram"]["conv"], a["dynamic_dims"], a["ane"]["coverage_pct_estimate"]  # doctest: +SKIP
    (53, [], 100.0)

What it reads (docs/mlpackage-format in the reference notes; field numbers from
coremltools' MIL.proto):
  * the op histogram: `spec.mlProgram.functions[f].block_specializations[opset]`, recursing
    into nested blocks, every function;
  * dynamic dimensions: function inputs and op outputs whose `Dimension` is `unknown`, and
    model inputs with a shape range or enumerated shapes;
  * the Neural-Engine estimate: each op type looked up in `ane_ops.json` (a documented
    table, an estimate, never a measurement: only Core ML's MLComputePlan on a Mac knows);
  * the constant guard: every float constant (immediate or in weight.bin) that is not
    finite, or whose magnitude exceeds the fp16 range (it becomes +-inf once the model runs
    in fp16 on the GPU or Neural Engine). A BERT-family attention mask built as
    `(1 - mask) * finfo(fp32).min` shows up here: 0 x -inf = NaN on every real token.
"""
from __future__ import annotations

import json
import struct
from collections import Counter
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ANE_TABLE = HERE / "ane_ops.json"
FP16_MAX = 65504.0

# MIL DataType codes (MIL.proto) and blob dtype codes (MILBlob BlobDataType.hpp).
MIL_FP16, MIL_FP32 = 10, 11
BLOB_FP16, BLOB_FP32 = 1, 2
BLOB_SENTINEL = 0xDEADBEEF
# Ops for which an infinite operand gives NaN on ordinary values (0 * inf, inf - inf).
NAN_RISK_OPS = {"mul", "add", "sub", "linear", "matmul", "conv", "real_div", "einsum", "clip"}


class AuditError(Exception):
    """The package cannot be read or audited."""


class ConstantHazard(Exception):
    """A constant that produces inf/NaN (the BERT attention-mask trap, among others)."""

    def __init__(self, findings: list[dict]):
        self.findings = findings
        names = ", ".join(f"{f['op']} ({f['problem']})" for f in findings[:5])
        super().__init__(f"{len(findings)} hazardous constant(s): {names}")


def package_paths(pkg: Path) -> tuple[Path, Path]:
    """(model.mlmodel, weights dir) of a package."""
    pkg = Path(pkg)
    spec = pkg / "Data" / "com.apple.CoreML" / "model.mlmodel"
    if not spec.is_file():
        raise AuditError(f"{pkg}: no Data/com.apple.CoreML/model.mlmodel (not an .mlpackage?)")
    return spec, spec.parent / "weights"


def load_spec(pkg: Path):
    """The protobuf Model of a package (coremltools' generated classes, no torch)."""
    from coremltools.proto import Model_pb2

    spec_path, _ = package_paths(pkg)
    spec = Model_pb2.Model()
    spec.ParseFromString(spec_path.read_bytes())
    if spec.WhichOneof("Type") != "mlProgram":
        raise AuditError(f"{pkg}: not an ML Program (type {spec.WhichOneof('Type')})")
    return spec


def iter_ops(block):
    """Every operation of a block, nested blocks included (depth first)."""
    for op in block.operations:
        yield op
        for inner in op.blocks:
            yield from iter_ops(inner)


def main_blocks(spec):
    """(function name, opset, block) for every function of the program."""
    for fname, fn in spec.mlProgram.functions.items():
        opset = fn.opset
        if opset not in fn.block_specializations:
            raise AuditError(f"function {fname}: no block for its opset {opset}")
        yield fname, opset, fn.block_specializations[opset]


def op_histogram(spec) -> dict[str, int]:
    counts: Counter = Counter()
    for _, _, block in main_blocks(spec):
        counts.update(op.type for op in iter_ops(block))
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _dims(tensor_type) -> list:
    out = []
    for d in tensor_type.dimensions:
        out.append(d.constant.size if d.WhichOneof("dimension") == "constant" else None)
    return out


def dynamic_dims(spec) -> list[dict]:
    """Every place a dimension is not fixed."""
    found = []
    for feature in spec.description.input:
        t = feature.type
        if t.WhichOneof("Type") == "multiArrayType":
            flex = t.multiArrayType.WhichOneof("ShapeFlexibility")
            if flex:
                found.append({"where": f"input {feature.name}", "kind": flex})
        elif t.WhichOneof("Type") == "imageType":
            flex = t.imageType.WhichOneof("SizeFlexibility")
            if flex:
                found.append({"where": f"input {feature.name}", "kind": flex})
    for fname, _, block in main_blocks(spec):
        for inp in spec.mlProgram.functions[fname].inputs:
            tt = inp.type.tensorType
            if inp.type.WhichOneof("type") == "tensorType" and (tt.rank < 0 or None in _dims(tt)):
                found.append({"where": f"{fname} input {inp.name}", "kind": "unknown dimension"})
        for op in iter_ops(block):
            for out in op.outputs:
                if out.type.WhichOneof("type") != "tensorType":
                    continue
                tt = out.type.tensorType
                if tt.rank < 0 or None in _dims(tt):
                    found.append({"where": f"{op.type} -> {out.name}", "kind": "unknown dimension"})
    return found


def load_ane_table(path: Path = ANE_TABLE) -> dict:
    table = json.loads(Path(path).read_text())
    if "ops" not in table or not isinstance(table["ops"], dict):
        raise AuditError(f"{path}: no 'ops' object")
    return table


def ane_estimate(histogram: dict[str, int], table: dict | None = None) -> dict:
    """Per-op eligibility from the table; coverage over compute ops (const and the
    load-time constexpr decompressions are excluded: they are not executed per request)."""
    table = table or load_ane_table()
    ops = table["ops"]
    skip = set(table.get("not_counted", []))
    per_op = {}
    counted = eligible = certain = 0
    for op, n in histogram.items():
        entry = ops.get(op, {"eligible": "unknown", "note": "not in ane_ops.json"})
        per_op[op] = {"count": n, "eligible": entry["eligible"], "note": entry.get("note", "")}
        if op in skip:
            continue
        counted += n
        if entry["eligible"] == "yes":
            eligible += n
            certain += n
        elif entry["eligible"] == "conditional":
            eligible += n  # upper bound: counted as eligible; the condition is in the note
    return {
        "estimate": True,
        "basis": table.get("basis", ""),
        # upper bound (yes + conditional) and lower bound (yes only), over compute ops
        "coverage_pct_estimate": round(100.0 * eligible / counted, 1) if counted else None,
        "coverage_pct_unconditional": round(100.0 * certain / counted, 1) if counted else None,
        "ops_counted": counted,
        "not_eligible": sorted(op for op, e in per_op.items() if e["eligible"] == "no"),
        "unknown": sorted(op for op, e in per_op.items() if e["eligible"] == "unknown"),
        "per_op": per_op,
    }


# --- constants -------------------------------------------------------------------------

def read_blob(weights_dir: Path, offset: int, cache: dict) -> tuple[int, bytes]:
    """(blob dtype code, data bytes) of the blob whose metadata is at `offset`."""
    path = Path(weights_dir) / "weight.bin"
    data = cache.get(path)
    if data is None:
        if not path.is_file():
            raise AuditError(f"{path}: missing")
        data = cache[path] = path.read_bytes()
    if offset + 64 > len(data):
        raise AuditError(f"weight.bin: metadata offset {offset} past the end ({len(data)})")
    sentinel, dtype, size, data_off = struct.unpack_from("<IIQQ", data, offset)
    if sentinel != BLOB_SENTINEL:
        raise AuditError(f"weight.bin: bad sentinel {sentinel:#x} at {offset}")
    if data_off + size > len(data):
        raise AuditError(f"weight.bin: blob at {offset} runs past the end")
    return dtype, data[data_off : data_off + size]


def _float_values(value, weights_dir: Path, cache: dict) -> np.ndarray | None:
    """The float elements of a MIL Value (fp16/fp32 only; None for other types)."""
    if value.type.WhichOneof("type") != "tensorType":
        return None
    dt = value.type.tensorType.dataType
    if dt not in (MIL_FP16, MIL_FP32):
        return None
    kind = value.WhichOneof("value")
    if kind == "immediateValue":
        tv = value.immediateValue.tensor
        which = tv.WhichOneof("value")
        if which == "floats":
            return np.asarray(tv.floats.values, dtype=np.float32)
        if which == "bytes":
            return np.frombuffer(tv.bytes.values, dtype=np.float16 if dt == MIL_FP16 else np.float32)
        if which == "doubles":
            return np.asarray(tv.doubles.values, dtype=np.float64)
        return None
    if kind == "blobFileValue":
        code, raw = read_blob(weights_dir, value.blobFileValue.offset, cache)
        if code == BLOB_FP16:
            return np.frombuffer(raw, dtype=np.float16)
        if code == BLOB_FP32:
            return np.frombuffer(raw, dtype=np.float32)
    return None


def constant_hazards(pkg: Path, limit: float = FP16_MAX) -> list[dict]:
    """Float constants that are not finite or exceed `limit` in magnitude."""
    spec = load_spec(pkg)
    _, weights_dir = package_paths(pkg)
    cache: dict = {}
    findings = []
    consumers: dict[str, set] = {}
    for _, _, block in main_blocks(spec):
        for op in iter_ops(block):
            for arg in op.inputs.values():
                for b in arg.arguments:
                    if b.WhichOneof("binding") == "name":
                        consumers.setdefault(b.name, set()).add(op.type)
    for _, _, block in main_blocks(spec):
        for op in iter_ops(block):
            values = []
            if op.type == "const" and "val" in op.attributes:
                values.append(("val", op.attributes["val"]))
            for arg_name, arg in op.inputs.items():
                for binding in arg.arguments:
                    if binding.WhichOneof("binding") == "value":
                        values.append((arg_name, binding.value))
            for arg_name, v in values:
                arr = _float_values(v, weights_dir, cache)
                if arr is None or arr.size == 0:
                    continue
                a = arr.astype(np.float64)
                bad = ~np.isfinite(a)
                if bad.any():
                    problem = "NaN" if np.isnan(a).any() else "inf"
                elif (np.abs(a) > limit).any():
                    problem = f"|x| > {limit:g} (inf in fp16)"
                else:
                    continue
                name = op.outputs[0].name
                used_by = sorted(consumers.get(name, set())) if op.type == "const" else [op.type]
                findings.append({"op": f"{op.type} {name}", "arg": arg_name, "problem": problem,
                                 "min": float(np.nanmin(a)) if not np.isnan(a).all() else None,
                                 "used_by": used_by,
                                 # inf * 0 = NaN: multiplying ops turn it into NaN on real
                                 # values; a select (masked_fill) only picks it.
                                 "nan_risk": any(u in NAN_RISK_OPS for u in used_by)})
    return findings


def guard_constants(pkg: Path) -> None:
    """Raises ConstantHazard if the package holds an inf/NaN-producing constant."""
    findings = constant_hazards(pkg)
    if findings:
        raise ConstantHazard(findings)


def audit_package(pkg: Path, table: dict | None = None) -> dict:
    spec = load_spec(pkg)
    hist = op_histogram(spec)
    fn_opsets = {name: fn.opset for name, fn in spec.mlProgram.functions.items()}
    return {
        "source": "read from the saved package's model.mlmodel (protobuf), not from the torch graph",
        "specification_version": spec.specificationVersion,
        "opsets": fn_opsets,
        "op_count": sum(hist.values()),
        "op_count_excluding_const": sum(n for op, n in hist.items() if op != "const"),
        "op_histogram": hist,
        "dynamic_dims": dynamic_dims(spec),
        "constant_hazards": constant_hazards(pkg),
        "ane": ane_estimate(hist, table),
    }
