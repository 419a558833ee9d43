#!/usr/bin/env python3
"""PyTorch CPU side of `candle-bench` (candle-engine/src/bin/candle-bench): a worker
process driven over stdin/stdout, so PyTorch and Candle rounds interleave in one run.

Protocol (one line each way):
  load <case>          -> "ok" | "err <message>"     (builds the model, 2 warm-up runs)
  run <case> <iters>   -> "times <ms> <ms> ..."
  quit
Cases: resnet50, fastvit_t8 (timm, as loaded), fastvit_t8_reparam (timm
reparameterize_model), efficientnet_lite0, minilm (when their assets exist).
Inputs are the same seeded tensors as the Candle side (gen_parity_vision.seeded_input).
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def build(case: str):
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
        return lambda: net(x)
    if case == "efficientnet_lite0":
        return build_external("efficientnet_lite0_ref", "bench_model", x)
    if case == "minilm":
        return build_external("minilm_ref", "bench_model", None)
    raise ValueError(f"unknown case {case}")


def build_external(module: str, func: str, x):
    """Models owned by another part of the project expose `bench_model(x)` in their script."""
    import importlib

    mod = importlib.import_module(module)
    if not hasattr(mod, func):
        raise ValueError(f"scripts/{module}.py has no {func}()")
    return getattr(mod, func)(x)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    torch.set_grad_enabled(False)
    cases = {}
    out = sys.stdout
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        try:
            if words[0] == "quit":
                break
            if words[0] == "load":
                fn = build(words[1])
                with torch.inference_mode():
                    fn()
                    fn()
                cases[words[1]] = fn
                out.write("ok\n")
            elif words[0] == "run":
                fn, n = cases[words[1]], int(words[2])
                times = []
                with torch.inference_mode():
                    for _ in range(n):
                        t0 = time.perf_counter()
                        fn()
                        times.append((time.perf_counter() - t0) * 1e3)
                out.write("times " + " ".join(f"{t:.4f}" for t in times) + "\n")
            elif words[0] == "info":
                out.write(f"ok torch {torch.__version__} threads {torch.get_num_threads()} pid {os.getpid()}\n")
            else:
                out.write(f"err unknown command {words[0]}\n")
        except Exception as e:  # reported to the coordinator, which decides
            out.write(f"err {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}\n")
        out.flush()


if __name__ == "__main__":
    main()
