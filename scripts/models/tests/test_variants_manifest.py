"""Compression variants and manifests on a tiny MIL-builder CNN (no torch)."""
import hashlib
import json
import shutil
import sys

import numpy as np
import pytest
from conftest import cnn_program, save

import audit
import coremltools as ct
import manifest
import variants


def load(pkg):
    return ct.models.MLModel(str(pkg), skip_model_load=True)


@pytest.mark.parametrize("name,op", [("int8", "constexpr_blockwise_shift_scale"),
                                     ("int4_block32", "constexpr_blockwise_shift_scale"),
                                     ("pal4", "constexpr_lut_to_dense")])
def test_compression_variant_adds_its_decompression_op(cnn_fp16, tmp_path, name, op):
    # pal4 runs k-means in `make models` (scikit-learn); here the uniform LUT, same pass.
    out = variants.compress(load(cnn_fp16), variants.BY_NAME[name],
                            palettize_mode="uniform" if name == "pal4" else None)
    pkg = tmp_path / f"{name}.mlpackage"
    out.save(str(pkg))
    hist = audit.op_histogram(audit.load_spec(pkg))
    # only the 128x32x1x1 conv (4096 elements) passes coremltools' size threshold
    assert hist.get(op) == 1, hist
    before = (cnn_fp16 / "Data/com.apple.CoreML/weights/weight.bin").stat().st_size
    after = (pkg / "Data/com.apple.CoreML/weights/weight.bin").stat().st_size
    assert after < before


@pytest.mark.skipif(sys.platform == "darwin", reason="on macOS the variant is buildable")
def test_w8a8_says_why_it_cannot_be_built_on_linux(cnn_fp16):
    with pytest.raises(variants.VariantUnsupported, match="macOS"):
        variants.compress(load(cnn_fp16), variants.BY_NAME["w8a8"], sample_data=[])


def test_variant_selection():
    assert "fp16_image" in [v.name for v in variants.variants_for("vision")]
    assert "fp16_image" not in [v.name for v in variants.variants_for("text")]
    assert [v.name for v in variants.variants_for("text", ["int8"])] == ["int8"]
    with pytest.raises(ValueError, match="unknown variant"):
        variants.variants_for("text", ["int3"])
    assert variants.BUDGETS["fp16"] == {"linf": 1e-2, "rmse": 1e-3}
    assert variants.BUDGETS["int8"] == {"linf": 5e-2, "rmse": 5e-3}


MODEL = {"name": "tiny", "task": "test", "source": "MIL builder", "weights": "seeded", "shapes": {"x": [1, 3, 16, 16]},
         "minimum_deployment_target": "macOS15", "source_weights_sha256": None, "expected_speedup": None}


def test_manifest_of_a_tiny_package(cnn_fp16):
    m = manifest.build_manifest(cnn_fp16, model=MODEL, variant={"name": "fp16", "precision": "fp16",
                                                                 "quantization": "none"})
    assert m["backend"] == "mlprogram"
    assert m["io_schema"]["inputs"] == [{"name": "x", "type": "tensor", "dtype": "fp32", "shape": [1, 3, 16, 16],
                                         "flexible": None}]
    assert m["io_schema"]["outputs"][0]["dtype"] == "fp32"
    wb = cnn_fp16 / "Data/com.apple.CoreML/weights/weight.bin"
    assert m["sha256"]["weights_bin"] == hashlib.sha256(wb.read_bytes()).hexdigest()
    assert m["sizes"]["weights_bytes"] == wb.stat().st_size
    assert m["sizes"]["package_bytes"] > m["sizes"]["weights_bytes"]
    assert m["op_audit"]["op_histogram"]["conv"] == 2
    json.dumps(m)  # serialisable


def test_package_digest_follows_content(cnn_fp16, tmp_path):
    copy = tmp_path / "copy.mlpackage"
    shutil.copytree(cnn_fp16, copy)
    assert manifest.package_digest(copy) == manifest.package_digest(cnn_fp16)
    with open(copy / "Data/com.apple.CoreML/weights/weight.bin", "r+b") as f:
        f.seek(200)
        f.write(b"\x01")
    assert manifest.package_digest(copy) != manifest.package_digest(cnn_fp16)


def test_image_input_in_the_schema(tmp_path):
    pkg = save(cnn_program(), tmp_path / "img.mlpackage",
               inputs=[ct.ImageType(name="x", shape=(1, 3, 16, 16), scale=1 / 255.0, bias=[0, 0, 0],
                                    color_layout=ct.colorlayout.RGB)])
    schema = manifest.io_schema(audit.load_spec(pkg))
    assert schema["inputs"] == [{"name": "x", "type": "image", "color": "rgb", "width": 16, "height": 16,
                                 "flexible": None}]
    # The scale is folded into the program (a mul on the image).
    assert audit.op_histogram(audit.load_spec(pkg)).get("mul", 0) >= 1
