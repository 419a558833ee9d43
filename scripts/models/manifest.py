"""Manifest of one converted package: what it is, its I/O, sizes, digests and op audit.

    >>> m = build_manifest(pkg, model=entry, variant=variant, source_digest=...)  # doctest: +SKIP
    >>> write_json(m, "manifests/resnet50/fp16.json")                            # doctest: +SKIP

The schema follows the plan's ("model, source, backend, precision, quantization, compute
units, io_schema, shapes, expected speed-ups, ane_op_coverage_pct") and adds the sizes, the
sha256 digests and the op audit read from the package itself (audit.py). Fields that cannot
be known off a Mac (measured latency, real Neural-Engine placement) are absent or marked as
estimates, never invented.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from audit import audit_package, load_spec, package_paths

MANIFEST_FORMAT = 1

ARRAY_DTYPES = {65568: "fp32", 65552: "fp16", 65600: "fp64", 131104: "int32", 131080: "int8"}
IMAGE_COLOR = {10: "grayscale", 20: "rgb", 30: "bgr", 40: "grayscale_fp16"}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def package_files(pkg: Path) -> list[Path]:
    return sorted(p for p in Path(pkg).rglob("*") if p.is_file())


def package_digest(pkg: Path) -> str:
    """sha256 over (relative path, NUL, sha256 of content, newline) of every file, sorted.
    Manifest.json holds fresh UUIDs on every save and the spec differs between two
    conversions of the same model, so this digest names one built artifact; the weight.bin
    digest (`sha256.weights_bin`) was the same across two conversions of FastViT-T8."""
    h = hashlib.sha256()
    for p in package_files(pkg):
        rel = p.relative_to(pkg).as_posix()
        h.update(rel.encode() + b"\0" + sha256_file(p).encode() + b"\n")
    return h.hexdigest()


def package_size(pkg: Path) -> int:
    return sum(p.stat().st_size for p in package_files(pkg))


def feature_schema(feature) -> dict:
    t = feature.type
    kind = t.WhichOneof("Type")
    if kind == "multiArrayType":
        a = t.multiArrayType
        return {"name": feature.name, "type": "tensor", "dtype": ARRAY_DTYPES.get(a.dataType, str(a.dataType)),
                "shape": list(a.shape), "flexible": a.WhichOneof("ShapeFlexibility")}
    if kind == "imageType":
        im = t.imageType
        return {"name": feature.name, "type": "image", "color": IMAGE_COLOR.get(im.colorSpace, str(im.colorSpace)),
                "width": im.width, "height": im.height, "flexible": im.WhichOneof("SizeFlexibility")}
    return {"name": feature.name, "type": kind}


def io_schema(spec) -> dict:
    return {
        "inputs": [feature_schema(f) for f in spec.description.input],
        "outputs": [feature_schema(f) for f in spec.description.output],
    }


def build_manifest(pkg: Path, *, model: dict, variant: dict, extra: dict | None = None) -> dict:
    """The manifest of a saved package. `model` is the registry's public description,
    `variant` the variant's (name, precision, quantization, image input...)."""
    pkg = Path(pkg)
    spec = load_spec(pkg)
    spec_path, weights_dir = package_paths(pkg)
    weight_bin = weights_dir / "weight.bin"
    audit = audit_package(pkg)
    manifest = {
        "format": MANIFEST_FORMAT,
        "model": model["name"],
        "variant": variant["name"],
        "task": model["task"],
        "source": model["source"],
        "weights": model["weights"],
        "backend": "mlprogram",
        "minimum_deployment_target": model["minimum_deployment_target"],
        "specification_version": spec.specificationVersion,
        "precision": variant["precision"],
        "quantization": variant["quantization"],
        "input_kind": "image" if variant.get("image") else "tensor",
        "compute_units": variant.get("compute_units", "cpu_and_ne"),
        "io_schema": io_schema(spec),
        "shapes": model["shapes"],
        "sizes": {
            "package_bytes": package_size(pkg),
            "weights_bytes": weight_bin.stat().st_size if weight_bin.exists() else 0,
            "spec_bytes": spec_path.stat().st_size,
        },
        "sha256": {
            "package": package_digest(pkg),
            "spec": sha256_file(spec_path),
            "weights_bin": sha256_file(weight_bin) if weight_bin.exists() else None,
            "source_weights": model.get("source_weights_sha256"),
        },
        "ane_op_coverage_pct_estimate": audit["ane"]["coverage_pct_estimate"],
        "expected_speedup": model.get("expected_speedup"),
        "op_audit": audit,
    }
    if extra:
        manifest.update(extra)
    return manifest


def write_json(obj: dict, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=False) + "\n")
    tmp.replace(path)
