#!/usr/bin/env python3
"""Export a candle-bench case to ONNX (opset 17) from the PyTorch side, for the ONNX
Runtime worker (bench_onnxruntime.py), which calls this once per case and caches the file.

  export_onnx.py <case> <out.onnx>     (also writes <out>.json: {"flops": N})

The module and inputs are bench_pytorch.model_and_inputs(case): the same seeded weights,
the same seeded 224×224 input or MiniLM token ids, so the three engines run one graph.
The FLOPs of one forward (torch's FlopCounterMode: 2 per multiply-accumulate of convs and
matrix products) go next to it for candle-bench's share-of-peak column.
Runs in the torch environment: "$(scripts/python_env.sh torch)" scripts/bench/export_onnx.py
"""
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

OPSET = 17


def export(case: str, out: Path) -> None:
    import torch

    import bench_pytorch

    net, inputs = bench_pytorch.model_and_inputs(case)
    names = ["input_ids", "attention_mask"] if case == "minilm" else ["pixel_values"]
    tmp = out.with_suffix(".tmp")
    with torch.inference_mode():
        torch.onnx.export(
            net,
            inputs,
            str(tmp),
            input_names=names,
            output_names=["output"],
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as fc:
            net(*inputs)
    out.with_suffix(".json").write_text(json.dumps({"case": case, "opset": OPSET, "flops": int(fc.get_total_flops())}))
    tmp.replace(out)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: export_onnx.py <case> <out.onnx>")
    export(sys.argv[1], Path(sys.argv[2]))
