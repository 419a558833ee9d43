#!/usr/bin/env python3
"""`make models`: convert the model set to ML Program .mlpackage, every variant, with
manifests, op audits, Candle weights and golden tensors. Cached and resumable.

    scripts/models/convert.py                          every model, every variant
    scripts/models/convert.py --model resnet50         one model's sweep
    scripts/models/convert.py --variant int8 --variant pal4
    scripts/models/convert.py --pretrained             published weights (needs the model hubs)
    scripts/models/convert.py --list                   the model set and variants
    scripts/models/convert.py --report                 markdown table from the committed manifests

Output, per model, in $COREML_BRIDGE_CACHE/models/<model>/ (never in the repository):
    <variant>.mlpackage      the package
    <variant>.json           its manifest (also copied to scripts/models/manifests/<model>/)
    <variant>.key            the input hash it was built from (cache/resume marker)
    weights.safetensors      the PyTorch weights, in the names the Candle engine loads
    golden_inputs.safetensors, golden_outputs.safetensors   PyTorch FP32 reference
    golden.json              what `coreml-bridge parity` reads

A job is skipped when its .key matches the hash of (this script and its modules, the
model's weights digest, the library versions, --pretrained); anything else rebuilds it.
An interrupted run leaves no half-written package: packages are saved under a temporary
name and renamed.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
import traceback
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402

from audit import ConstantHazard, constant_hazards  # noqa: E402
from manifest import build_manifest, write_json  # noqa: E402
from variants import BUDGETS, BY_NAME, VariantUnsupported, compress, variants_for  # noqa: E402

MANIFESTS = HERE / "manifests"
# Bump when the way packages are made changes (conversion options, wrappers, passes):
# it is part of every job's cache key, with variants.py (the compression configs), the
# model's registry fingerprint and the library versions. The audit and manifest code is
# not: a cached package gets a fresh manifest on every run.
CONVERSION_VERSION = 1
SOURCES = ["variants.py"]


def models_root() -> Path:
    import registry

    return registry.cache_root() / "models"


def human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024
    return f"{n:.1f} GB"


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("coremltools", "torch", "torchvision", "timm", "transformers", "numpy", "scikit-learn"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def model_fingerprint(spec) -> str:
    """What of registry.py goes into a model's packages: the shared helpers (everything
    above the model builders), the model's own builder and golden inputs, its fields."""
    import inspect

    import registry

    text = (HERE / "registry.py").read_text()
    helpers = text.split("# --- the models")[0]
    parts = [helpers, inspect.getsource(spec.build)]
    try:
        parts.append(inspect.getsource(spec.golden))
    except (OSError, TypeError):
        pass
    fields = {k: v for k, v in vars(spec).items() if not callable(v)}
    parts.append(json.dumps(fields, sort_keys=True, default=str))
    del registry
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def job_key(model: str, variant: str, pretrained: bool, vers: dict, fingerprint: str = "") -> str:
    h = hashlib.sha256()
    h.update(f"{CONVERSION_VERSION}:{fingerprint}".encode())
    for name in SOURCES:
        h.update((HERE / name).read_bytes())
    h.update(json.dumps({"model": model, "variant": variant, "pretrained": pretrained, "versions": vers},
                        sort_keys=True).encode())
    return h.hexdigest()


def np_dtype(name: str):
    return {"float32": np.float32, "int32": np.int32}[name]


class Session:
    """One model's conversions: builds the torch model once, lazily."""

    def __init__(self, spec, pretrained: bool, out: Path):
        self.spec = spec
        self.pretrained = pretrained
        self.out = out
        self._built = None
        self._golden = None

    def built(self):
        if self._built is None:
            import torch

            torch.manual_seed(0)
            torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
            self._built = self.spec.build(self.pretrained)
        return self._built

    def golden_inputs(self) -> dict:
        if self._golden is None:
            self._golden = {k: np.ascontiguousarray(v) for k, v in self.spec.golden().items()}
        return self._golden

    def public(self) -> dict:
        """The registry's description for the manifest."""
        s = self.spec
        b = self.built() if self._built is not None else None
        meta = self.meta()
        return {
            "name": s.name, "task": s.task, "source": s.source,
            "weights": b.weights if b else meta.get("weights"),
            "source_weights_sha256": b.source_weights_sha256 if b else meta.get("source_weights_sha256"),
            "minimum_deployment_target": "macOS15 / iOS18 (ML Program, specification 9, opset CoreML8)",
            "shapes": s.shapes(), "expected_speedup": s.expected_speedup or {
                "published_latency_ms": None, "speedup_vs_cpu": None,
                "source": "no published Core ML figure for this model was found; measure on a Mac"},
        }

    def meta(self) -> dict:
        p = self.out / "golden.json"
        return json.loads(p.read_text()) if p.exists() else {}

    # -- golden tensors and Candle weights --------------------------------------------
    def write_golden(self, key: str) -> None:
        import torch
        from safetensors.numpy import save_file

        b = self.built()
        ins = self.golden_inputs()
        with torch.inference_mode():
            outs = b.module(*[torch.from_numpy(ins[n]) for n, _, _ in self.spec.inputs])
        golden = {n: o.detach().float().numpy() for n, o in zip(self.spec.outputs, outs)}
        if b.extra_golden:
            golden.update({k: v.astype(np.float32) for k, v in b.extra_golden(ins).items()})
        for n, v in golden.items():
            if not np.isfinite(v).all():
                raise RuntimeError(f"{self.spec.name}: PyTorch output {n} is not finite")
        self.out.mkdir(parents=True, exist_ok=True)
        save_file(ins, str(self.out / "golden_inputs.safetensors"))
        save_file({k: np.ascontiguousarray(v) for k, v in golden.items()}, str(self.out / "golden_outputs.safetensors"))
        sd = {k: np.ascontiguousarray(v.detach().float().numpy()) for k, v in b.state_dict.items()
              if v.dtype.is_floating_point}
        save_file(sd, str(self.out / "weights.safetensors"), metadata={"format": "pt"})
        from manifest import sha256_file

        meta = {
            "format": 1,
            "model": self.spec.name,
            "reference": "PyTorch FP32, eval mode, on the golden inputs",
            "weights": b.weights,
            "source_weights_sha256": b.source_weights_sha256,
            "weights_safetensors_sha256": sha256_file(self.out / "weights.safetensors"),
            "inputs": {n: {"shape": list(s), "dtype": d} for n, s, d in self.spec.inputs},
            "outputs": {n: list(v.shape) for n, v in golden.items()},
            "candle": self.spec.candle,
            "budgets": BUDGETS,
            "variants": {},
            "key": key,
        }
        write_json(meta, self.out / "golden.json")

    # -- conversion --------------------------------------------------------------------
    def convert(self, variant, dest: Path) -> None:
        import coremltools as ct
        import torch

        b = self.built()
        module = b.module
        ins = self.golden_inputs()
        example = tuple(torch.from_numpy(ins[n]) for n, _, _ in self.spec.inputs)
        ct_inputs = []
        if variant.image:
            img = self.spec.image
            module = image_wrapper(module, img.get("normalize"))
            (name, shape, _), = self.spec.inputs
            ct_inputs.append(ct.ImageType(name=name, shape=shape, scale=img["scale"], bias=img["bias"],
                                          color_layout=ct.colorlayout.RGB))
        else:
            for name, shape, dtype in self.spec.inputs:
                ct_inputs.append(ct.TensorType(name=name, shape=shape, dtype=np_dtype(dtype)))
        outputs = [ct.TensorType(name=n, dtype=np.float32) for n in self.spec.outputs]
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(module, example, strict=False, check_trace=False)
        precision = ct.precision.FLOAT32 if variant.precision == "fp32" else ct.precision.FLOAT16
        mlmodel = ct.convert(traced, inputs=ct_inputs, outputs=outputs, convert_to="mlprogram",
                             minimum_deployment_target=ct.target.macOS15, compute_precision=precision)
        mlmodel.short_description = f"{self.spec.name} {variant.name} (coreml-bridge scripts/models)"
        mlmodel.save(str(dest))


def image_wrapper(module, normalize):
    import torch

    class ImageInput(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = module
            if normalize:
                self.register_buffer("mean", torch.tensor(normalize["mean"]).view(1, 3, 1, 1))
                self.register_buffer("inv_std", 1.0 / torch.tensor(normalize["std"]).view(1, 3, 1, 1))

        def forward(self, x):
            if normalize:
                x = (x - self.mean) * self.inv_std
            return self.inner(x)

    return ImageInput().eval()


class JobLog:
    """Sends the libraries' chatter (coremltools' pass progress bars and skip notices,
    torch tracer warnings) to <model>/<variant>.log, so the terminal shows only our bars."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        import contextlib

        self.file = open(self.path, "w")
        self.stack = contextlib.ExitStack()
        self.stack.enter_context(contextlib.redirect_stderr(self.file))
        self.stack.enter_context(contextlib.redirect_stdout(self.file))
        self.saved = {}
        for h in self._handlers():
            self.saved[id(h)] = h.stream
            h.stream = self.file  # (not setStream: it flushes, and the old stream may be gone)
        return self

    @staticmethod
    def _handlers():
        import logging

        seen = {}
        for logger in [logging.getLogger()] + [logging.getLogger(n) for n in list(logging.root.manager.loggerDict)]:
            for h in getattr(logger, "handlers", []):
                if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler):
                    seen[id(h)] = h
        return list(seen.values())

    def __exit__(self, *exc):
        # Handlers the libraries created during the job point at the log too.
        for h in self._handlers():
            if h.stream is self.file:
                h.stream = self.saved.get(id(h), sys.__stderr__)
        self.stack.close()
        self.file.close()
        return False


def run_job(session: Session, variant, key: str) -> dict:
    with JobLog(session.out / f"{variant.name}.log"):
        return _run_job(session, variant, key)


def _run_job(session: Session, variant, key: str) -> dict:
    out = session.out
    dest = out / f"{variant.name}.mlpackage"
    tmp = out / f".{variant.name}.partial.mlpackage"
    shutil.rmtree(tmp, ignore_errors=True)
    if variant.base is None:
        session.convert(variant, tmp)
    else:
        import coremltools as ct

        base = out / f"{variant.base}.mlpackage"
        if not base.exists():
            raise RuntimeError(f"{variant.base} package missing: build it first")
        src = ct.models.MLModel(str(base), skip_model_load=True)
        sample = None
        if variant.name == "w8a8":
            sample = [{k: v for k, v in session.golden_inputs().items()}]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compress(src, variant, sample).save(str(tmp))
    hazards = constant_hazards(tmp)
    if hazards and session.spec.mask_guard:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ConstantHazard(hazards)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    manifest = write_manifest(session, variant, dest)
    (out / f"{variant.name}.key").write_text(key)
    return manifest


def write_manifest(session: Session, variant, dest: Path) -> dict:
    """The manifest of a saved package, into the cache and scripts/models/manifests/."""
    out = session.out
    manifest = build_manifest(dest, model=session.public(), variant={
        "name": variant.name, "precision": variant.precision, "quantization": variant.quantization,
        "image": variant.image, "compute_units": "cpu_and_ne"}, extra={
        "image_input": ({"scale": session.spec.image["scale"], "bias": session.spec.image["bias"],
                         "color": "RGB", "folded_in_program": session.spec.image.get("normalize")}
                        if variant.image else None),
        "derived_from": variant.base,
        "parity_budget": {"class": variant.budget, **BUDGETS[variant.budget]},
        "mask_guard": ({"constant": -65504.0, "checked": "no inf/NaN/|x|>65504 float constant in the program"}
                       if session.spec.mask_guard else None),
        "package_path": f"$COREML_BRIDGE_CACHE/models/{session.spec.name}/{variant.name}.mlpackage",
        "built_with": versions(),
    })
    if session.spec.mask_guard and manifest["op_audit"]["constant_hazards"]:
        raise ConstantHazard(manifest["op_audit"]["constant_hazards"])
    write_json(manifest, out / f"{variant.name}.json")
    write_json(manifest, MANIFESTS / session.spec.name / f"{variant.name}.json")
    return manifest


def record_variant(session: Session, variant, status: dict) -> None:
    meta = session.meta()
    if not meta:
        return
    meta["variants"][variant.name] = status
    write_json(meta, session.out / "golden.json")


def main(argv=None) -> int:
    import registry

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", help="only this model (repeatable)")
    ap.add_argument("--variant", action="append", help="only this variant (repeatable)")
    ap.add_argument("--pretrained", action="store_true", help="published weights (model hubs; online users)")
    ap.add_argument("--force", action="store_true", help="rebuild even when cached")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--report", action="store_true", help="markdown table of scripts/models/manifests")
    args = ap.parse_args(argv)

    if args.report:
        from report import markdown_table

        print(markdown_table(MANIFESTS))
        return 0
    models = [m for m in sorted(registry.MODELS, key=lambda m: m.priority)
              if not args.model or m.name in args.model]
    if args.model and len(models) != len(set(args.model)):
        known = [m.name for m in registry.MODELS]
        print(f"unknown model in {args.model}; known: {known}", file=sys.stderr)
        return 2
    jobs = [(m, v) for m in models for v in variants_for(m.kind, args.variant)]
    if args.list:
        for m in models:
            print(f"{m.name:26} {m.kind:7} {', '.join(v.name for v in variants_for(m.kind))}")
        return 0

    from tqdm import tqdm

    vers = versions()
    results = []
    bar = tqdm(total=len(jobs), unit="pkg", dynamic_ncols=True, file=sys.__stderr__)
    for m in models:
        out = models_root() / m.name
        out.mkdir(parents=True, exist_ok=True)
        session = Session(m, args.pretrained, out)
        fp = model_fingerprint(m)
        gkey = job_key(m.name, "golden", args.pretrained, vers, fp)
        model_failed = None
        if args.force or session.meta().get("key") != gkey:
            bar.set_description(f"{m.name}/golden")
            try:
                with JobLog(out / "golden.log"):
                    session.write_golden(gkey)
            except Exception as e:  # noqa: BLE001 - reported per model, the sweep goes on
                model_failed = f"{type(e).__name__}: {e}"
                with open(out / "golden.log", "a") as log:
                    traceback.print_exc(file=log)
        for v in variants_for(m.kind, args.variant):
            bar.set_description(f"{m.name}/{v.name}")
            key = job_key(m.name, v.name, args.pretrained, vers, fp)
            dest = out / f"{v.name}.mlpackage"
            keyfile = out / f"{v.name}.key"
            t0 = time.monotonic()
            if model_failed:
                status = {"status": "failed", "error": f"model build failed: {model_failed}"}
            elif not args.force and dest.exists() and keyfile.exists() and keyfile.read_text() == key:
                try:
                    man = write_manifest(session, v, dest)
                    status = {"status": "cached", "bytes": man["sizes"]["package_bytes"]}
                except Exception as e:  # noqa: BLE001
                    status = {"status": "failed", "error": f"manifest: {type(e).__name__}: {e}"[:500]}
            else:
                try:
                    man = run_job(session, v, key)
                    status = {"status": "built", "bytes": man["sizes"]["package_bytes"]}
                except VariantUnsupported as e:
                    status = {"status": "not built", "error": str(e)}
                    write_json({"format": 1, "model": m.name, "variant": v.name, "status": "not built here",
                                "quantization": v.quantization, "reason": str(e)},
                               MANIFESTS / m.name / f"{v.name}.json")
                except Exception as e:  # noqa: BLE001
                    with open(out / f"{v.name}.log", "a") as log:
                        traceback.print_exc(file=log)
                    status = {"status": "failed", "error": f"{type(e).__name__}: {e}"[:500]}
            status["seconds"] = round(time.monotonic() - t0, 1)
            status["budget"] = v.budget
            record_variant(session, v, status)
            results.append((m.name, v.name, status))
            size = human(status["bytes"]) if "bytes" in status else "-"
            bar.set_postfix_str(f"{status['status']} {size} {status['seconds']}s")
            bar.write(f"{m.name:26} {v.name:13} {status['status']:9} {size:>10} {status['seconds']:7.1f}s"
                      + (f"  {status['error'][:160]}" if "error" in status else ""))
            bar.update(1)
    bar.close()
    failed = [(m, v, s) for m, v, s in results if s["status"] == "failed"]
    print(f"models: {len(results)} jobs, {sum(s['status'] == 'built' for _, _, s in results)} built, "
          f"{sum(s['status'] == 'cached' for _, _, s in results)} cached, "
          f"{sum(s['status'] == 'not built' for _, _, s in results)} not buildable here, {len(failed)} failed",
          file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
