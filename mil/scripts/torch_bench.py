"""PyTorch FP32 latency of the model set on the golden inputs, for `mil-bench --torch-json`.

    $(scripts/python_env.sh torch) mil/scripts/torch_bench.py OUT.json [--runs N] [MODEL ...]

Builds each model with scripts/models/registry.py (the modules the packages were
converted from, same weights), runs it on `golden_inputs.safetensors` with two threads
(the bench machine's cores), and writes {"<model>/fp32": p50_ms}.
"""

import json
import os
import sys
import time

import numpy as np
import torch
from safetensors.numpy import load_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "models"))
import registry  # noqa: E402


def main():
    args = sys.argv[1:]
    out = args.pop(0)
    runs = 10
    if "--runs" in args:
        i = args.index("--runs")
        runs = int(args[i + 1])
        del args[i:i + 2]
    names = args or [m.name for m in registry.MODELS]
    torch.set_num_threads(2)
    result = {}
    for name in names:
        spec = registry.BY_NAME[name]
        d = registry.cache_root() / "models" / name
        inputs = load_file(str(d / "golden_inputs.safetensors"))
        built = spec.build(False)
        module = built.module.eval()
        feed = [torch.from_numpy(np.asarray(inputs[n]).astype(np.int64 if dt == "int32" else np.float32))
                for n, _, dt in spec.inputs]
        times = []
        with torch.inference_mode():
            for i in range(runs + 1):
                t = time.perf_counter()
                module(*feed)
                if i:
                    times.append(time.perf_counter() - t)
        times.sort()
        result[f"{name}/fp32"] = times[len(times) // 2] * 1e3
        print(f"{name}: p50 {result[f'{name}/fp32']:.1f} ms", file=sys.stderr)
    with open(out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
