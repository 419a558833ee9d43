"""The variants of every converted model, and the post-conversion compression passes.

    >>> [v.name for v in VARIANTS]
    ['fp32', 'fp16', 'fp16_image', 'int8', 'pal4', 'int4_block32', 'w8a8']

`fp32`, `fp16` and `fp16_image` come out of the converter (convert.py); the others are
coremltools.optimize.coreml passes applied to the saved `fp16` package (torch-free, so the
pytest suite runs them on tiny MIL-builder programs):

  int8          linear symmetric INT8 weights, per output channel
  pal4          4-bit palettization, k-means (scikit-learn), one LUT per tensor
  int4_block32  linear symmetric INT4 weights, per block of 32 input channels (iOS18+)
  w8a8          INT8 activations (calibrated on the golden inputs) + INT8 weights. coremltools
                calibrates by running the model (MLModel.predict), which exists only on macOS:
                on Linux this variant is reported as not built, with the converter's error.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Variant:
    name: str
    precision: str            # compute precision of the program
    quantization: str         # what the manifest says
    base: str | None = None   # the package this one is derived from (None: converted)
    image: bool = False       # Core ML image input (vision models only)
    vision_only: bool = False
    budget: str = "fp16"      # parity budget class: fp32 | fp16 | int8 | int4
    config: dict = field(default_factory=dict)


VARIANTS = [
    Variant("fp32", "fp32", "none", budget="fp32"),
    Variant("fp16", "fp16", "none", budget="fp16"),
    Variant("fp16_image", "fp16", "none", image=True, vision_only=True, budget="fp16"),
    Variant("int8", "fp16", "int8 linear symmetric weights, per channel", base="fp16", budget="int8",
            config={"mode": "linear_symmetric", "dtype": "int8", "granularity": "per_channel"}),
    Variant("pal4", "fp16", "4-bit palettized weights (k-means, per tensor)", base="fp16", budget="int4",
            config={"mode": "kmeans", "nbits": 4, "granularity": "per_tensor"}),
    Variant("int4_block32", "fp16", "int4 linear symmetric weights, per block of 32 (iOS18)", base="fp16",
            budget="int4", config={"mode": "linear_symmetric", "dtype": "int4", "granularity": "per_block",
                                   "block_size": 32}),
    Variant("w8a8", "fp16", "int8 activations (calibrated) + int8 weights per channel", base="fp16",
            budget="int8", config={"mode": "linear_symmetric"}),
]
BY_NAME = {v.name: v for v in VARIANTS}

# Parity budgets against PyTorch FP32 (the plan's): L-inf and RMSE.
BUDGETS = {
    "fp32": {"linf": 1e-4, "rmse": None},
    "fp16": {"linf": 1e-2, "rmse": 1e-3},
    "int8": {"linf": 5e-2, "rmse": 5e-3},
    "int4": {"linf": None, "rmse": None},  # no budget in the plan: reported, not gated
}


class VariantUnsupported(Exception):
    """This variant cannot be built on this machine (the reason is the message)."""


def variants_for(kind: str, only: list[str] | None = None) -> list[Variant]:
    out = [v for v in VARIANTS if not (v.vision_only and kind != "vision")]
    if only:
        unknown = set(only) - set(BY_NAME)
        if unknown:
            raise ValueError(f"unknown variant(s) {sorted(unknown)}; known: {list(BY_NAME)}")
        out = [v for v in out if v.name in only]
    return out


def _min_weight_elements() -> int:
    # coremltools skips tensors smaller than this by default (2048); keep its default.
    return 2048


def compress(mlmodel, variant: Variant, sample_data=None, palettize_mode: str | None = None):
    """Applies a derived variant's pass to a loaded fp16 MLModel; returns the new MLModel."""
    import coremltools.optimize.coreml as cto

    c = dict(variant.config)
    if variant.name in ("int8", "int4_block32"):
        op = cto.OpLinearQuantizerConfig(**c, weight_threshold=_min_weight_elements())
        return cto.linear_quantize_weights(mlmodel, cto.OptimizationConfig(global_config=op))
    if variant.name == "pal4":
        if palettize_mode:
            c["mode"] = palettize_mode
        op = cto.OpPalettizerConfig(**c, weight_threshold=_min_weight_elements())
        return cto.palettize_weights(mlmodel, cto.OptimizationConfig(global_config=op))
    if variant.name == "w8a8":
        if sys.platform != "darwin":
            raise VariantUnsupported(
                "coremltools calibrates activation quantization with MLModel.predict, which needs "
                "macOS (coremltools.optimize.coreml.experimental.linear_quantize_activations); "
                "run `make models` on a Mac to build it"
            )
        from coremltools.optimize.coreml.experimental import linear_quantize_activations

        act = cto.OptimizationConfig(global_config=cto.experimental.OpActivationLinearQuantizerConfig(mode="linear_symmetric"))
        a8 = linear_quantize_activations(mlmodel, act, sample_data or [])
        w8 = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", granularity="per_channel")
        return cto.linear_quantize_weights(a8, cto.OptimizationConfig(global_config=w8))
    raise ValueError(f"{variant.name} is not a derived variant")
