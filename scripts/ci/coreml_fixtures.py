#!/usr/bin/env python3
"""Tiny Core ML test packages for the macOS CI, built with coremltools' MIL builder.

Example:
    python scripts/ci/coreml_fixtures.py OUT_DIR
    # -> OUT_DIR/affine_fp32.mlpackage, OUT_DIR/affine_fp16.mlpackage, OUT_DIR/fixtures.json

Each model is y = relu(x @ W + b) with x: float32[1, 4] and y: float32[1, 3]; `affine_fp32`
computes in float32, `affine_fp16` in float16 (what the GPU and the Neural Engine run).
W, b, the input and the golden output are stored in scripts/ci/coreml_fixtures.json. This
script recomputes the golden output with numpy and refuses to go on if it differs from the
stored one, so the packages and the golden values cannot drift apart. Runs on Linux too
(conversion and saving need no Core ML; only prediction does).
"""
import json
import pathlib
import sys

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
SPEC = HERE / "coreml_fixtures.json"


def reference(fixture):
    x = np.array(fixture["input"], dtype=np.float64)
    w = np.array(fixture["weight"], dtype=np.float64)
    b = np.array(fixture["bias"], dtype=np.float64)
    return np.maximum(x @ w + b, 0.0)


def build(fixture, precision):
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb

    w = np.array(fixture["weight"], dtype=np.float32)
    b = np.array(fixture["bias"], dtype=np.float32)

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 4), dtype=ct.converters.mil.mil.types.fp32)],
                opset_version=ct.target.macOS13)
    def prog(x):
        # linear takes the weight as [out, in].
        y = mb.linear(x=x, weight=w.T.copy(), bias=b, name="affine")
        return mb.relu(x=y, name="y")

    return ct.convert(prog, convert_to="mlprogram", compute_precision=precision,
                      minimum_deployment_target=ct.target.macOS13)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: coreml_fixtures.py OUT_DIR")
    out = pathlib.Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    spec = json.loads(SPEC.read_text())
    import coremltools as ct

    precisions = {"float32": ct.precision.FLOAT32, "float16": ct.precision.FLOAT16}
    for fixture in spec["models"]:
        golden = np.array(fixture["golden"], dtype=np.float64)
        if not np.allclose(reference(fixture), golden, rtol=0, atol=1e-6):
            sys.exit(f"{fixture['name']}: stored golden output differs from numpy: {reference(fixture).tolist()}")
        model = build(fixture, precisions[fixture["precision"]])
        path = out / f"{fixture['name']}.mlpackage"
        model.save(str(path))
        print(f"wrote {path}")
    (out / "fixtures.json").write_text(json.dumps(spec, indent=2) + "\n")
    print(f"wrote {out / 'fixtures.json'}")


if __name__ == "__main__":
    main()
