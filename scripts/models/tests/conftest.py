"""Tiny ML Programs built with coremltools' MIL builder (no torch), shared by the tests."""
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
warnings.filterwarnings("ignore")

import coremltools as ct  # noqa: E402
from coremltools.converters.mil import Builder as mb  # noqa: E402

FP32_MIN = float(np.finfo(np.float32).min)  # what Hugging Face BERT masks with


def save(prog, path: Path, precision=ct.precision.FLOAT16, inputs=None) -> Path:
    kwargs = {"inputs": inputs} if inputs else {}
    m = ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.macOS15,
                   compute_precision=precision, **kwargs)
    m.save(str(path))
    return path


def mask_program(mask_value: float):
    """The BERT attention-mask pattern: scores + (1 - mask) * mask_value."""
    w = np.random.RandomState(0).randn(8, 8).astype(np.float32)

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 8)), mb.TensorSpec(shape=(1, 8))],
                opset_version=ct.target.macOS15)
    def prog(x, mask):
        scores = mb.linear(x=x, weight=w)
        add = mb.mul(x=mb.sub(x=np.float32(1.0), y=mask), y=np.float32(mask_value))
        return mb.softmax(x=mb.add(x=scores, y=add), axis=-1, name="probs")

    return prog


def cnn_program(h=16, dynamic=False):
    rs = np.random.RandomState(1)
    w1 = rs.randn(32, 3, 3, 3).astype(np.float32) * 0.2
    w2 = rs.randn(128, 32, 1, 1).astype(np.float32) * 0.2
    fc = rs.randn(10, 128).astype(np.float32) * 0.2
    shape = (1, 3, h, h)

    @mb.program(input_specs=[mb.TensorSpec(shape=shape)], opset_version=ct.target.macOS15)
    def prog(x):
        y = mb.relu(x=mb.conv(x=x, weight=w1, pad_type="same"))
        y = mb.relu(x=mb.conv(x=y, weight=w2))
        y = mb.reduce_mean(x=y, axes=[2, 3], keep_dims=False)
        return mb.linear(x=y, weight=fc, name="logits")

    return prog


@pytest.fixture(scope="session")
def cnn_fp16(tmp_path_factory) -> Path:
    return save(cnn_program(), tmp_path_factory.mktemp("cnn") / "cnn.mlpackage")
