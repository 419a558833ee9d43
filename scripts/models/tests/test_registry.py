"""The model set and the driver's cache keys, without torch."""
import subprocess
import sys
from pathlib import Path

import registry
import convert

HERE = Path(__file__).resolve().parent.parent


def test_torch_is_not_needed_to_import_the_driver():
    # `import torch` raises when sys.modules["torch"] is None: the driver, registry,
    # audit and manifest modules must import lazily.
    code = ("import sys; sys.modules['torch'] = None; sys.path.insert(0, %r); "
            "import registry, convert, audit, manifest, variants, report; print('ok')" % str(HERE))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ok")


def test_model_set_in_plan_priority():
    names = [m.name for m in registry.MODELS]
    assert len(names) == len(set(names)) == 10
    assert names[:3] == ["fastvit_t8", "resnet50", "all_minilm_l6_v2"]


def test_bert_family_is_guarded_and_vision_models_have_image_variants():
    by = registry.BY_NAME
    assert {m.name for m in registry.MODELS if m.mask_guard} == {"all_minilm_l6_v2", "bert_qa", "distilbert_qa"}
    for m in registry.MODELS:
        if m.kind == "vision":
            assert m.image and len(m.image["bias"]) == 3, m.name
        for _, shape, dtype in m.inputs:
            assert all(isinstance(d, int) and d > 0 for d in shape), m.name  # fixed shapes
            assert dtype in ("float32", "int32")
    assert by["detr_resnet50"].inputs[0][1][2] <= 800
    assert registry.MASK_MIN == -65504.0


def test_candle_models_name_their_weights():
    candle = {m.name: m.candle for m in registry.MODELS if m.candle}
    assert set(candle) == {"fastvit_t8", "resnet50", "all_minilm_l6_v2", "efficientnet_lite0", "distilbert_qa"}
    for c in candle.values():
        assert c["architecture"] and c["weights"] and c["outputs"]


def test_seeded_image_matches_the_parity_generator():
    x = registry.seeded_image((1, 3, 4, 4))
    assert x.dtype.name == "float32" and x.shape == (1, 3, 4, 4)
    assert (x >= -2).all() and (x < 2).all()
    # every value is a multiple of 2^-22 (exact in f32, so Rust rebuilds it bit for bit)
    assert ((x.astype("float64") * 2**22) % 1 == 0).all()


def test_job_key_changes_with_what_goes_in():
    v = {"coremltools": "9.0"}
    a = convert.job_key("resnet50", "fp16", False, v)
    assert a == convert.job_key("resnet50", "fp16", False, v)
    assert a != convert.job_key("resnet50", "int8", False, v)
    assert a != convert.job_key("resnet50", "fp16", True, v)
    assert a != convert.job_key("resnet50", "fp16", False, {"coremltools": "9.1"})
