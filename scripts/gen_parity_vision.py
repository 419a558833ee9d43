#!/usr/bin/env python3
"""PyTorch reference outputs for the vision models (needs torch, torchvision, timm).

  gen_parity_vision.py --write-spec   take tensor names/shapes from torchvision resnet50 and
                                      timm fastvit_t8 once -> scripts/vision_weight_spec.json
  gen_parity_vision.py                load the seeded weights (gen_vision_weights.py makes
                                      them), run the models in eval mode on the seeded input,
                                      write tests/fixtures/parity/<model>.json

The input is splitmix64 (seed 20251125) mapped to (u * 4 - 2), u = (z >> 40) / 2^24: every
value is a multiple of 2^-22 in [-2, 2), exactly representable in f32, so Rust rebuilds
the same tensor bit for bit (coreml_candle::models::seeded::seeded_input).

Run with the torch environment: "$(scripts/python_env.sh torch)" scripts/gen_parity_vision.py
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import gen_vision_weights as gw  # noqa: E402

ROOT = HERE.parent
FIXTURES = ROOT / "tests" / "fixtures" / "parity"
INPUT_SEED = 20251125
INPUT_SHAPE = (1, 3, 224, 224)
MODELS = {
    # name: (source, file, weight seed, gain overrides)
    "resnet50": ("torchvision 0.22.0 resnet50 state_dict", "resnet50-seeded-v1.safetensors", 50, None),
    "fastvit_t8": (
        "timm fastvit_t8 state_dict (non-reparameterised)",
        "fastvit_t8-seeded-v1.safetensors",
        8,
        {"conv_weight": 1.5},
    ),
}


def build(name: str):
    import timm
    import torchvision

    if name == "resnet50":
        return torchvision.models.resnet50(weights=None)
    if name == "fastvit_t8":
        return timm.create_model("fastvit_t8", pretrained=False)
    raise ValueError(name)


def classify(name: str, shape, names) -> str | None:
    if name.endswith("num_batches_tracked"):
        return None
    prefix, leaf = name.rsplit(".", 1)
    if f"{prefix}.running_mean" in names:
        return {"weight": "bn_weight", "bias": "bn_bias", "running_mean": "bn_mean", "running_var": "bn_var"}[leaf]
    if leaf == "gamma":
        return "layer_scale"
    if leaf == "bias":
        return "bias"
    if leaf == "weight":
        return "conv_weight" if len(shape) == 4 else "linear_weight"
    raise ValueError(f"unclassified tensor {name}")


def write_spec() -> None:
    old = json.loads(gw.SPEC.read_text())["models"] if gw.SPEC.exists() else {}
    spec = {
        "format": 1,
        "note": "tensor names/shapes of torchvision resnet50 and timm fastvit_t8 (written by "
        "gen_parity_vision.py --write-spec); gen_vision_weights.py fills them from seeds",
        "models": {},
    }
    for name, (source, file, seed, gains) in MODELS.items():
        sd = build(name).state_dict()
        names = set(sd)
        tensors = []
        for k, v in sd.items():
            kind = classify(k, tuple(v.shape), names)
            if kind:
                tensors.append({"name": k, "shape": list(v.shape), "kind": kind})
        prev = old.get(name, {})
        same = prev.get("tensors") == tensors and prev.get("seed") == seed and prev.get("gains") == gains
        spec["models"][name] = {
            "source": source,
            "file": file,
            "seed": seed,
            "gains": gains,
            "sha256": prev.get("sha256") if same else None,
            "tensors": tensors,
        }
    gw.SPEC.write_text(gw.dump_spec(spec))
    print(f"wrote {gw.SPEC}")


def seeded_input() -> np.ndarray:
    n = int(np.prod(INPUT_SHAPE))
    u = (gw.splitmix64(INPUT_SEED, n) >> np.uint64(40)).astype(np.float64) * (1.0 / (1 << 24))
    return (u * 4.0 - 2.0).astype(np.float32).reshape(INPUT_SHAPE)


def load(name: str, model: dict):
    import torch
    from safetensors.torch import load_file

    path, digest = gw.generate(name, model, pin=False)
    net = build(name)
    missing, unexpected = net.load_state_dict(load_file(str(path)), strict=False)
    bad = [k for k in missing if not k.endswith("num_batches_tracked")]
    if bad or unexpected:
        sys.exit(f"{name}: missing {bad[:5]} unexpected {unexpected[:5]}")
    net.eval()
    torch.set_num_threads(2)
    return net, path, digest


def stats(net, x) -> dict:
    """Largest |activation| after each top-level child: checks the scaling keeps O(1)."""
    import torch

    out = {}
    with torch.inference_mode():
        h = x
        for child_name, child in net.named_children():
            if child_name in ("fc", "head"):
                h = torch.flatten(net.avgpool(h), 1) if child_name == "fc" else h
            if child_name == "avgpool":
                continue
            h = child(h)
            out[child_name] = float(h.abs().max())
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--write-spec", action="store_true")
    args = ap.parse_args()
    if args.write_spec:
        write_spec()
        return
    import timm
    import torch
    import torchvision

    spec = json.loads(gw.SPEC.read_text())
    x = torch.from_numpy(seeded_input())
    FIXTURES.mkdir(parents=True, exist_ok=True)
    for name, model in spec["models"].items():
        net, path, digest = load(name, model)
        with torch.inference_mode():
            y = net(x).double()
        if name == "fastvit_t8":
            from timm.utils.model import reparameterize_model

            with torch.inference_mode():
                yr = reparameterize_model(net)(x).double()
            print(f"  {name}: timm reparameterised vs plain L-inf {float((yr - y).abs().max()):.3g}")
        fixture = {
            "model": name,
            "reference": f"{model['source']}; eval mode; torch {torch.__version__}, "
            f"torchvision {torchvision.__version__}, timm {timm.__version__}",
            "weights": {"file": model["file"], "sha256": digest},
            "input": {"generator": "splitmix64, u*4-2", "seed": INPUT_SEED, "shape": list(INPUT_SHAPE)},
            "output_shape": list(y.shape),
            "output_max_abs": float(y.abs().max()),
            "output_std": float(y.std()),
            "output": [float(np.float32(v)) for v in y.flatten().tolist()],
        }
        dst = FIXTURES / f"{name}.json"
        dst.write_text(json.dumps(fixture, indent=None, separators=(",", ":")) + "\n")
        print(f"{name}: max|y| {fixture['output_max_abs']:.3f} std {fixture['output_std']:.3f} -> {dst}")
        if name == "resnet50":
            print("  activations:", {k: round(v, 2) for k, v in stats(net, x).items()})


if __name__ == "__main__":
    main()
