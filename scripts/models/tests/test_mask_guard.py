"""The BERT attention-mask trap: (1 - mask) * finfo(fp32).min becomes fp16 -inf, and
0 * -inf = NaN on every real token. The guard must find it in the saved MIL program."""
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import FP32_MIN, mask_program, save

import audit
import coremltools as ct

MANIFESTS = Path(__file__).resolve().parent.parent / "manifests"


def test_hf_mask_constant_becomes_minus_inf_and_is_caught(tmp_path):
    pkg = save(mask_program(FP32_MIN), tmp_path / "bad.mlpackage")
    findings = audit.constant_hazards(pkg)
    assert len(findings) == 1, findings
    assert findings[0]["problem"] == "inf"
    assert findings[0]["min"] == -np.inf
    assert findings[0]["used_by"] == ["mul"] and findings[0]["nan_risk"] is True
    with pytest.raises(audit.ConstantHazard) as e:
        audit.guard_constants(pkg)
    assert "inf" in str(e.value)


def test_finite_mask_constant_passes(tmp_path):
    pkg = save(mask_program(-65504.0), tmp_path / "good.mlpackage")
    assert audit.constant_hazards(pkg) == []
    audit.guard_constants(pkg)


def test_fp32_program_with_fp32_min_is_flagged_as_fp16_overflow(tmp_path):
    # An fp32 program keeps -3.4e38, but Core ML runs fp32 models on the GPU/ANE in fp16.
    pkg = save(mask_program(FP32_MIN), tmp_path / "fp32.mlpackage", precision=ct.precision.FLOAT32)
    findings = audit.constant_hazards(pkg)
    assert [f["problem"] for f in findings] == ["|x| > 65504 (inf in fp16)"]


def test_an_inf_that_select_only_picks_is_reported_without_nan_risk(tmp_path):
    # DistilBERT/DETR style: masked_fill(mask, -inf) -> select(cond, -inf, scores).
    from coremltools.converters.mil import Builder as mb

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 8)), mb.TensorSpec(shape=(1, 8))],
                opset_version=ct.target.macOS15)
    def prog(x, mask):
        filled = mb.select(cond=mb.equal(x=mask, y=np.float32(0.0)), a=np.float32(-np.inf), b=x)
        return mb.softmax(x=filled, axis=-1, name="probs")

    pkg = save(prog, tmp_path / "select.mlpackage")
    findings = audit.constant_hazards(pkg)
    assert [(f["problem"], f["used_by"], f["nan_risk"]) for f in findings] == [("inf", ["select"], False)]


def test_nan_in_a_weight_blob_is_found(tmp_path):
    # Large constants go to weight.bin: the guard reads blobs too.
    w = np.ones((64, 64), np.float32)
    w[3, 5] = np.nan
    from coremltools.converters.mil import Builder as mb

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 64))], opset_version=ct.target.macOS15)
    def prog(x):
        return mb.linear(x=x, weight=w, name="y")

    pkg = save(prog, tmp_path / "nan.mlpackage", precision=ct.precision.FLOAT32)
    assert (pkg / "Data/com.apple.CoreML/weights/weight.bin").stat().st_size > 64 * 64 * 4
    findings = audit.constant_hazards(pkg)
    assert [f["problem"] for f in findings] == ["NaN"]


def test_committed_bert_family_manifests_have_no_mask_hazard():
    """Every committed BERT-family manifest (from a real `make models`) was audited clean."""
    found = 0
    for p in MANIFESTS.glob("*/*.json"):
        m = json.loads(p.read_text())
        if not m.get("mask_guard"):
            continue
        found += 1
        assert m["op_audit"]["constant_hazards"] == [], p
        assert m["mask_guard"]["constant"] == -65504.0
    assert found > 0, "no BERT-family manifest committed (run `make models`)"
