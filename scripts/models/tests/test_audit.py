"""Op histogram, dynamic dimensions and the Neural-Engine estimate, read from packages."""
import struct

import numpy as np
import pytest
from conftest import cnn_program, save

import audit
import coremltools as ct
from coremltools.converters.mil import Builder as mb


def test_histogram_of_a_tiny_cnn(cnn_fp16):
    hist = audit.op_histogram(audit.load_spec(cnn_fp16))
    assert hist["conv"] == 2
    assert hist["relu"] == 2
    assert hist["reduce_mean"] == 1
    assert hist["linear"] == 1
    assert hist["cast"] == 2  # fp32 I/O around an fp16 program
    assert "const" in hist


def test_histogram_recurses_into_nested_blocks(tmp_path):
    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 4)), mb.TensorSpec(shape=(1,), dtype=ct.converters.mil.mil.types.bool)],
                opset_version=ct.target.macOS15)
    def prog(x, flag):
        def yes():
            return mb.sigmoid(x=x)

        def no():
            return mb.tanh(x=x)

        return mb.cond(pred=mb.squeeze(x=flag), _true_fn=yes, _false_fn=no, name="y")

    pkg = save(prog, tmp_path / "cond.mlpackage", precision=ct.precision.FLOAT32)
    hist = audit.op_histogram(audit.load_spec(pkg))
    assert hist.get("cond") == 1
    assert hist.get("sigmoid") == 1 and hist.get("tanh") == 1


def test_fixed_shapes_have_no_dynamic_dims(cnn_fp16):
    assert audit.dynamic_dims(audit.load_spec(cnn_fp16)) == []


def test_range_dim_input_is_flagged(tmp_path):
    @mb.program(input_specs=[mb.TensorSpec(shape=(1, ct.converters.mil.mil.get_new_symbol(), 8))],
                opset_version=ct.target.macOS15)
    def prog(x):
        return mb.relu(x=x, name="y")

    pkg = save(prog, tmp_path / "dyn.mlpackage",
               inputs=[ct.TensorType(name="x", shape=(1, ct.RangeDim(1, 64), 8), dtype=np.float32)])
    dyn = audit.dynamic_dims(audit.load_spec(pkg))
    assert any(d["where"] == "input x" and d["kind"] == "shapeRange" for d in dyn), dyn
    assert any("unknown dimension" == d["kind"] for d in dyn), dyn


def test_ane_estimate_counts_compute_ops_only():
    est = audit.ane_estimate({"const": 50, "conv": 2, "gather": 1, "made_up_op": 1,
                              "constexpr_lut_to_dense": 3, "transpose": 4})
    assert est["estimate"] is True
    assert est["ops_counted"] == 8
    assert est["coverage_pct_estimate"] == 75.0       # conv + transpose (conditional)
    assert est["coverage_pct_unconditional"] == 25.0  # conv only
    assert est["not_eligible"] == ["gather"]
    assert est["unknown"] == ["made_up_op"]


def test_every_op_of_the_reference_inventory_is_in_the_table():
    # The 30 op types of the reference packages (mlpackage-format.md section 6).
    ops = ("add batch_norm cast const constexpr_affine_dequantize constexpr_blockwise_shift_scale "
           "constexpr_lut_to_dense conv equal expand_dims gather gelu layer_norm linear matmul max_pool mul "
           "reduce_mean relu reshape select sigmoid slice_by_index softmax split squeeze sub tanh tile transpose").split()
    table = audit.load_ane_table()["ops"]
    assert [op for op in ops if op not in table] == []
    assert all(e["eligible"] in ("yes", "no", "conditional") for e in table.values())


def test_audit_package_summary(cnn_fp16):
    a = audit.audit_package(cnn_fp16)
    assert a["specification_version"] == 9
    assert a["opsets"] == {"main": "CoreML8"}
    assert a["op_count"] == sum(a["op_histogram"].values())
    assert a["op_count_excluding_const"] == a["op_count"] - a["op_histogram"]["const"]
    assert a["constant_hazards"] == []


def test_corrupt_blob_is_a_clear_error(tmp_path):
    bin_ = tmp_path / "weight.bin"
    bin_.write_bytes(struct.pack("<II", 1, 2) + b"\0" * 56 + struct.pack("<IIQQ", 0x12345678, 2, 4, 128) + b"\0" * 40)
    with pytest.raises(audit.AuditError, match="bad sentinel"):
        audit.read_blob(tmp_path, 64, {})
    with pytest.raises(audit.AuditError, match="past the end"):
        audit.read_blob(tmp_path, 4096, {})


def test_not_a_package_is_a_clear_error(tmp_path):
    with pytest.raises(audit.AuditError, match="not an .mlpackage"):
        audit.load_spec(tmp_path)
