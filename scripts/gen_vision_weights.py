#!/usr/bin/env python3
"""Seeded random weights for the vision models, in timm/torchvision naming.

Reads scripts/vision_weight_spec.json (tensor names, shapes and kinds taken once from
torchvision `resnet50` and timm `fastvit_t8` by `gen_parity_vision.py --write-spec`) and
writes one safetensors file per model to
    ${COREML_BRIDGE_CACHE:-$HOME/.cache/coreml-bridge}/weights/
Needs numpy and safetensors only. Idempotent: a file whose sha256 matches the pin in
the spec is left alone; a mismatch is an error (or, with --pin, the new hash is written
into the spec).

Values are bit-reproducible on any machine: a counter-based splitmix64 stream per tensor
(keyed by sha256 of "seed:name"), mapped to uniform values with exact IEEE operations
only (integer shifts, float64 multiply/add, one cast to float32); no libm function.

Scales (so activations stay O(1) and an L-infinity tolerance of 1e-4 is meaningful):
  conv weight      U(-b, b), b = sqrt(3 g / fan_in), var g/fan_in: g = 2 (He) for ResNet-50;
                   g = 1.5 for FastViT-T8, whose summed branches (MobileOne, RepMixer,
                   large+small patch-embed kernels) otherwise grow activations to ~700
  linear weight    U(-b, b), b = sqrt(3 / fan_in)      (var 1/fan_in)
  conv/linear bias U(-0.1, 0.1)
  BN weight (γ)    U(0.5, 1.0); BN bias (β) U(-0.2, 0.2)
  BN running_mean  U(-0.2, 0.2); BN running_var U(0.5, 2.0)   (randomised, not trivial)
  layer scale      U(0.1, 0.5)  (timm initialises 1e-5, which would hide the branches)

Usage: gen_vision_weights.py [--model resnet50|fastvit_t8] [--pin] [--print-path]
"""
import argparse
import hashlib
import json
import math
import os
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

SPEC = Path(__file__).resolve().parent / "vision_weight_spec.json"
GOLDEN = np.uint64(0x9E3779B97F4A7C15)

# Weight kinds drawn as U(-b, b) with variance gain / fan_in, b = sqrt(3 * gain / fan_in);
# the default gains can be overridden per model by the spec's "gains".
GAINS = {"conv_weight": 2.0, "linear_weight": 1.0}
# Other kinds: fixed (low, high).
RANGES = {
    "bias": (-0.1, 0.1),
    "bn_weight": (0.5, 1.0),
    "bn_bias": (-0.2, 0.2),
    "bn_mean": (-0.2, 0.2),
    "bn_var": (0.5, 2.0),
    "layer_scale": (0.1, 0.5),
}


def cache_dir() -> Path:
    root = os.environ.get("COREML_BRIDGE_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "coreml-bridge"
    )
    return Path(root) / "weights"


def splitmix64(key: int, n: int) -> np.ndarray:
    """Outputs 1..n of splitmix64 started at `key` (state_i = key + i*GOLDEN)."""
    with np.errstate(over="ignore"):
        z = np.uint64(key) + GOLDEN * np.arange(1, n + 1, dtype=np.uint64)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def uniform(key: int, n: int, low: float, high: float) -> np.ndarray:
    """U[low, high) with 24-bit resolution, computed exactly in float64, cast to float32."""
    u = (splitmix64(key, n) >> np.uint64(40)).astype(np.float64) * (1.0 / (1 << 24))
    return (low + (high - low) * u).astype(np.float32)


def tensor_key(seed: int, name: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:8], "little")


def make_tensor(seed: int, name: str, shape, kind: str, gains: dict | None = None) -> np.ndarray:
    n = int(np.prod(shape)) if shape else 1
    if kind in GAINS:
        fan_in = int(np.prod(shape[1:]))
        gain = (gains or {}).get(kind, GAINS[kind])
        bound = math.sqrt(3.0 * gain / fan_in)
        low, high = -bound, bound
    else:
        low, high = RANGES[kind]
    return uniform(tensor_key(seed, name), n, low, high).reshape(shape)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def generate(name: str, model: dict, pin: bool) -> tuple[Path, str]:
    out = cache_dir() / model["file"]
    want = model.get("sha256")
    if out.exists() and want and sha256_file(out) == want:
        return out, want
    tensors = {
        t["name"]: make_tensor(model["seed"], t["name"], t["shape"], t["kind"], model.get("gains"))
        for t in model["tensors"]
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata={"generator": f"coreml-bridge gen_vision_weights v1: {name}"})
    got = sha256_file(tmp)
    if want and got != want and not pin:
        tmp.unlink()
        sys.exit(
            f"{name}: generated sha256 {got} != pinned {want} "
            "(numpy/safetensors changed the bytes? rerun with --pin after checking parity)"
        )
    os.replace(tmp, out)
    return out, got


def dump_spec(spec: dict) -> str:
    """The spec as JSON with one tensor per line (small diffs, readable)."""
    lines = ["{", f' "format": {spec["format"]},', f' "note": {json.dumps(spec["note"])},', ' "models": {']
    models = list(spec["models"].items())
    for mi, (name, model) in enumerate(models):
        lines.append(f"  {json.dumps(name)}: {{")
        for key in ("source", "file", "seed", "gains", "sha256"):
            lines.append(f"   {json.dumps(key)}: {json.dumps(model.get(key))},")
        lines.append('   "tensors": [')
        for ti, t in enumerate(model["tensors"]):
            comma = "," if ti + 1 < len(model["tensors"]) else ""
            lines.append(f"    {json.dumps(t, separators=(', ', ': '))}{comma}")
        lines.append("   ]")
        lines.append("  }" + ("," if mi + 1 < len(models) else ""))
    lines += [" }", "}"]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", help="only this model (repeatable)")
    ap.add_argument("--pin", action="store_true", help="write the sha256 of new files into the spec")
    ap.add_argument("--print-path", action="store_true", help="print only the paths")
    args = ap.parse_args()
    spec = json.loads(SPEC.read_text())
    changed = False
    for name, model in spec["models"].items():
        if args.model and name not in args.model:
            continue
        path, digest = generate(name, model, args.pin)
        if model.get("sha256") != digest:
            model["sha256"] = digest
            changed = True
        print(path if args.print_path else f"{name}: {path} sha256 {digest}")
    if changed and args.pin:
        SPEC.write_text(dump_spec(spec))
    elif changed:
        sys.exit("spec has no sha256 pin for a model: rerun with --pin")


if __name__ == "__main__":
    main()
