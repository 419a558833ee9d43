#!/usr/bin/env python3
"""Seeded random DistilBERT weights in Hugging Face naming (numpy + safetensors only).

Writes ${COREML_BRIDGE_CACHE:-$HOME/.cache/coreml-bridge}/weights/distilbert-seeded/
    model.safetensors   distilbert-base-uncased shapes, seeded values
    config.json         Hugging Face DistilBertConfig
    tokenizer.json      copied from all-minilm-l6-v2 (same uncased 30522-token WordPiece
                        vocabulary as distilbert-base-uncased; run fetch_weights.sh first)
Idempotent: files whose sha256 match the pins are left alone; a mismatch is an error
(--pin prints the new hashes instead).

Values are bit-reproducible without a random-number library: per tensor a splitmix64
stream keyed by sha256("<seed>:<name>"), mapped to U(0,1) as (z >> 11) * 2^-53 in float64,
scaled with exact float64 operations and cast once to float32.
  linear weight     U(-b, b), b = sqrt(3 / fan_in)   (variance 1/fan_in)
  linear bias       U(-0.1, 0.1)
  embeddings        U(-0.5, 0.5)
  LayerNorm weight  U(0.5, 1.5); LayerNorm bias U(-0.2, 0.2)
"""
import argparse
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

SEED = 20251125
CONFIG = {
    "activation": "gelu",
    "architectures": ["DistilBertModel"],
    "attention_dropout": 0.1,
    "dim": 768,
    "dropout": 0.1,
    "hidden_dim": 3072,
    "initializer_range": 0.02,
    "max_position_embeddings": 512,
    "model_type": "distilbert",
    "n_heads": 12,
    "n_layers": 6,
    "pad_token_id": 0,
    "qa_dropout": 0.1,
    "seq_classif_dropout": 0.2,
    "sinusoidal_pos_embds": False,
    "tie_weights_": True,
    "vocab_size": 30522,
}
PINS = {
    "model.safetensors": "3343cd59e9785c04371dae8a901d911718f4ee6ae1caaa8bcb58656456087de4",
    "config.json": "28e0c8af921f67cc983f8283105b3eee7ca0861f86fad66dcb79e47544338d99",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
}
GOLDEN = np.uint64(0x9E3779B97F4A7C15)
M1 = np.uint64(0xBF58476D1CE4E5B9)
M2 = np.uint64(0x94D049BB133111EB)


def weights_dir() -> Path:
    root = os.environ.get("COREML_BRIDGE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "coreml-bridge")
    return Path(root) / "weights"


def uniform(name: str, n: int) -> np.ndarray:
    key = np.uint64(int.from_bytes(hashlib.sha256(f"{SEED}:{name}".encode()).digest()[:8], "little"))
    out = np.empty(n, dtype=np.float64)
    chunk = 1 << 22
    with np.errstate(over="ignore"):
        for start in range(0, n, chunk):
            i = np.arange(start + 1, min(n, start + chunk) + 1, dtype=np.uint64)
            z = key + i * GOLDEN
            z = (z ^ (z >> np.uint64(30))) * M1
            z = (z ^ (z >> np.uint64(27))) * M2
            z = z ^ (z >> np.uint64(31))
            out[start : start + len(i)] = (z >> np.uint64(11)).astype(np.float64) * (2.0**-53)
    return out


def tensor(name, shape, low, high):
    u = uniform(name, int(np.prod(shape)))
    return (low + (high - low) * u).astype(np.float32).reshape(shape)


def state_dict():
    c = CONFIG
    d, h = c["dim"], c["hidden_dim"]
    sd = {
        "embeddings.word_embeddings.weight": ((c["vocab_size"], d), -0.5, 0.5),
        "embeddings.position_embeddings.weight": ((c["max_position_embeddings"], d), -0.5, 0.5),
        "embeddings.LayerNorm.weight": ((d,), 0.5, 1.5),
        "embeddings.LayerNorm.bias": ((d,), -0.2, 0.2),
    }
    for i in range(c["n_layers"]):
        p = f"transformer.layer.{i}."
        for lin, (fin, fout) in {
            "attention.q_lin": (d, d),
            "attention.k_lin": (d, d),
            "attention.v_lin": (d, d),
            "attention.out_lin": (d, d),
            "ffn.lin1": (d, h),
            "ffn.lin2": (h, d),
        }.items():
            b = (3.0 / fin) ** 0.5
            sd[p + lin + ".weight"] = ((fout, fin), -b, b)
            sd[p + lin + ".bias"] = ((fout,), -0.1, 0.1)
        for ln in ("sa_layer_norm", "output_layer_norm"):
            sd[p + ln + ".weight"] = ((d,), 0.5, 1.5)
            sd[p + ln + ".bias"] = ((d,), -0.2, 0.2)
    return {k: tensor(k, *v) for k, v in sd.items()}


def sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pin", action="store_true", help="print new hashes instead of failing on a mismatch")
    args = ap.parse_args()
    out = weights_dir() / "distilbert-seeded"
    out.mkdir(parents=True, exist_ok=True)
    fresh = lambda name: (out / name).is_file() and sha(out / name) == PINS[name]  # noqa: E731
    if not fresh("config.json"):
        (out / "config.json").write_text(json.dumps(CONFIG, indent=2, sort_keys=True) + "\n")
    if not fresh("tokenizer.json"):
        src = weights_dir() / "all-minilm-l6-v2" / "tokenizer.json"
        if not src.is_file():
            sys.exit(f"{src} is missing: run scripts/fetch_weights.sh first")
        shutil.copyfile(src, out / "tokenizer.json")
    if not fresh("model.safetensors"):
        tmp = out / "model.safetensors.tmp"
        save_file(state_dict(), str(tmp), metadata={"format": "pt"})
        tmp.replace(out / "model.safetensors")
    bad = {n: sha(out / n) for n in PINS if sha(out / n) != PINS[n]}
    if bad and args.pin:
        for n, s in bad.items():
            print(f'    "{n}": "{s}",')
    elif bad:
        sys.exit(f"gen_distilbert_weights: sha256 mismatch in {out}: {bad}")
    print(f"gen_distilbert_weights: ok ({out})", file=sys.stderr)


if __name__ == "__main__":
    main()
