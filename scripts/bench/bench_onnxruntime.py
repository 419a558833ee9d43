#!/usr/bin/env python3
"""ONNX Runtime CPU side of `candle-bench`: a worker process with the same line protocol as
scripts/bench_pytorch.py (scripts/bench/bench_worker.py), so ONNX Runtime, PyTorch and Candle rounds interleave in one run.

  load <case>          -> "ok flops <N>" | "err <message>"   (session built, 2 warm-up runs;
                          N = FLOPs of one forward, counted at export)
  run <case> <iters>   -> "times <ms> <ms> ..."
  info                 -> "ok onnxruntime <version> threads <n> pid <pid>"
  quit

Cases: resnet50, fastvit_t8 (timm reparameterised), efficientnet_lite0, minilm. The models
are exported from the PyTorch side at opset 17 by export_onnx.py (run once, in a child
process of the same interpreter, so this worker never imports torch) and cached under
$COREML_BRIDGE_CACHE/onnx/, keyed by the weight file's size and mtime. Sessions run the
CPU provider with every graph optimisation, `intra_op_num_threads` = --threads,
one inter-op thread, sequential execution.
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import numpy as np  # noqa: E402

import gen_parity_vision as gpv  # noqa: E402
from bench_worker import serve  # noqa: E402

SEQ = 128
# ORT case -> (PyTorch case exported, weight file it depends on)
CASES = {
    "resnet50": ("resnet50", "resnet50-seeded-v1.safetensors"),
    "fastvit_t8": ("fastvit_t8_reparam", "fastvit_t8-seeded-v1.safetensors"),
    "efficientnet_lite0": ("efficientnet_lite0", "efficientnet-lite0/model.safetensors"),
    "minilm": ("minilm", "all-minilm-l6-v2/model.safetensors"),
}


def onnx_path(case: str) -> Path:
    torch_case, weights = CASES[case]
    w = gpv.gw.cache_dir() / weights
    st = w.stat()
    d = gpv.gw.cache_dir().parent / "onnx"
    d.mkdir(parents=True, exist_ok=True)
    out = d / f"{torch_case}-opset17-{st.st_size}-{int(st.st_mtime)}.onnx"
    if not out.exists() or not out.with_suffix(".json").exists():
        r = subprocess.run(
            [sys.executable, str(HERE / "export_onnx.py"), torch_case, str(out)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        if r.returncode != 0 or not out.exists():
            tail = (r.stderr.strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"export of {torch_case} failed: {tail}")
    return out


def inputs(case: str) -> dict:
    if case == "minilm":
        ids = np.array([[101] + [1000 + (i * 7919) % 29000 for i in range(1, SEQ - 1)] + [102]], dtype=np.int64)
        return {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    return {"pixel_values": gpv.seeded_input()}


def build(case: str, threads: int):
    import onnxruntime as ort

    if case not in CASES:
        raise ValueError(f"unknown case {case}")
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(str(onnx_path(case)), so, providers=["CPUExecutionProvider"])
    feed = inputs(case)
    flops = json.loads(onnx_path(case).with_suffix(".json").read_text())["flops"]
    return (lambda: sess.run(None, feed)), flops


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    def info() -> str:
        import onnxruntime as ort

        return f"onnxruntime {ort.__version__} threads {args.threads} pid {os.getpid()}"

    def load(case: str):
        fn, flops = build(case, args.threads)
        return fn, f"flops {flops}"

    serve(load, info)


if __name__ == "__main__":
    main()
