#!/usr/bin/env python3
"""PyTorch CPU side of `candle-bench` (candle-engine/src/bin/candle-bench): a worker
process driven over stdin/stdout, so PyTorch and Candle rounds interleave in one run.

Protocol (one line each way):
  load <case>          -> "ok" | "err <message>"     (builds the model, 2 warm-up runs)
  run <case> <iters>   -> "times <ms> <ms> ..."
  quit
Cases: resnet50, fastvit_t8 (timm, as loaded), fastvit_t8_reparam (timm
reparameterize_model), efficientnet_lite0, minilm (when their assets exist).
scripts/bench/bench_onnxruntime.py serves the same protocol for ONNX Runtime.
Inputs are the same seeded tensors as the Candle side (gen_parity_vision.seeded_input).
Runs in the torch environment: `make bench` passes `--python "$(scripts/python_env.sh torch)"`.
"""
import argparse
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "bench"))

from bench_worker import serve  # noqa: E402


def model_and_inputs(case: str):
    """The eval-mode module of `case` and its input tuple (also used by
    bench/export_onnx.py, so ONNX Runtime runs the very same graph and inputs)."""
    import torch

    import gen_parity_vision as gpv

    spec = json.loads(gpv.gw.SPEC.read_text())
    x = torch.from_numpy(gpv.seeded_input())
    if case in ("resnet50", "fastvit_t8", "fastvit_t8_reparam"):
        key = "fastvit_t8" if case.startswith("fastvit") else case
        net, _, _ = gpv.load(key, spec["models"][key])
        if case == "fastvit_t8_reparam":
            from timm.utils.model import reparameterize_model

            net = reparameterize_model(net)
        return net, (x,)
    if case == "efficientnet_lite0":
        from safetensors.torch import load_file

        from efficientnet_lite0_ref import EfficientNetLite0

        net = EfficientNetLite0().eval()
        net.load_state_dict(load_file(str(gpv.gw.cache_dir() / "efficientnet-lite0" / "model.safetensors")), strict=True)
        return net, (x,)
    if case == "minilm":
        return minilm(gpv.gw.cache_dir() / "all-minilm-l6-v2")
    raise ValueError(f"unknown case {case}")


def build(case: str):
    net, inputs = model_and_inputs(case)
    return lambda: net(*inputs)


SEQ = 128


def minilm_ids():
    """Same ids as candle-bench (external.rs): [CLS] 1000 + (i*7919 mod 29000) ... [SEP]."""
    return [101] + [1000 + (i * 7919) % 29000 for i in range(1, SEQ - 1)] + [102]


def minilm(d: Path):
    """Hugging Face BertModel + sentence-transformers pooling (mean over the mask, L2)."""
    import torch
    from safetensors.torch import load_file
    from transformers import BertConfig, BertModel

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bert = BertModel(BertConfig.from_json_file(str(d / "config.json")), add_pooling_layer=False)
            missing, _ = self.bert.load_state_dict(load_file(str(d / "model.safetensors")), strict=False)
            assert not missing, missing

        def forward(self, ids, mask):
            hidden = self.bert(input_ids=ids, attention_mask=mask).last_hidden_state
            m = mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * m).sum(1) / torch.clamp(m.sum(1), min=1e-9)
            return torch.nn.functional.normalize(mean, p=2, dim=1)

    ids = torch.tensor([minilm_ids()])
    return Encoder().eval(), (ids, torch.ones_like(ids))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    torch.set_grad_enabled(False)
    serve(
        lambda case: (build(case), ""),
        lambda: f"torch {torch.__version__} threads {torch.get_num_threads()} pid {os.getpid()}",
        context=torch.inference_mode,
    )


if __name__ == "__main__":
    main()
