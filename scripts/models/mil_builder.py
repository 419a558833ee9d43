#!/usr/bin/env python3
"""ML Program packages of the demo models, built with coremltools' MIL builder from the
safetensors weights of `make assets` (no torch).

    $(scripts/python_env.sh coremltools) scripts/models/mil_builder.py [--model NAME]... [--force]

Writes `$COREML_BRIDGE_CACHE/weights/<weights dir>/mil-builder.mlpackage` for

* all-MiniLM-L6-v2: BERT embeddings + 6 encoder layers + mean pooling + L2 norm, the
  architecture of `registry.build_minilm` (the same finite additive mask (1 - m) * -65504,
  the same max(count, 1e-9) and max(norm, 1e-12)); inputs `input_ids`, `attention_mask`
  int32 [1, 128], output `embedding` fp32 [1, 384];
* EfficientNet-Lite0: `scripts/efficientnet_lite0_ref.py` (TF "SAME" padding, BatchNorm eps
  1e-3, ReLU6, mean pool, fc); input `pixel_values` fp32 [1, 3, 224, 224], output `logits`
  fp32 [1, 1000].

For MiniLM it also writes `mil-builder.example.safetensors`: the tokens of one sentence,
padded to 128 (a request for `coreml-bridge run`; `make demo` uses it).

The I/O names, dtypes and shapes are those of the torch-converted `fp32` packages of
`make models`, so either serves the same requests (`tests/test_mil_builder.py` compares
the two). FP32 precision, deployment target iOS 18 (specification 9), as `make models`.

Cached: a package is rebuilt only when `<package>.key` (sha256 of this file and of the
weights) changes, or with --force. Written under a temporary name and renamed.
"""

import argparse
import hashlib
import json
import os
import shutil
import struct
import sys
import warnings
from pathlib import Path

import numpy as np

warnings.filterwarnings("ignore")

MODELS = {
    # name: (weights directory under $COREML_BRIDGE_CACHE/weights, builder)
    "all_minilm_l6_v2": "all-minilm-l6-v2",
    "efficientnet_lite0": "efficientnet-lite0",
}
PACKAGE = "mil-builder.mlpackage"
MASK_MIN = -65504.0  # registry.MASK_MIN: finite in fp16, no 0 * -inf
SEQ = 128


def cache_root() -> Path:
    c = os.environ.get("COREML_BRIDGE_CACHE")
    return Path(c) if c else Path.home() / ".cache" / "coreml-bridge"


def package_path(model: str) -> Path:
    return cache_root() / "weights" / MODELS[model] / PACKAGE


def read_safetensors(path: Path) -> dict:
    """The F32/I64 tensors of a safetensors file as NumPy arrays (the format: u64 header
    length, JSON header, raw little-endian data)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    dtypes = {"F32": np.float32, "I64": np.int64, "F16": np.float16}
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        if meta["dtype"] not in dtypes:
            raise ValueError(f"{path}: {name} is {meta['dtype']}, not one of {sorted(dtypes)}")
        a, b = meta["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype=dtypes[meta["dtype"]]).reshape(meta["shape"]).copy()
    return out


# --------------------------------------------------------------------------- MiniLM

def minilm_program(w: dict, layers: int = 6, heads: int = 12):
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    hidden = w["embeddings.word_embeddings.weight"].shape[1]
    dh = hidden // heads
    eps = 1e-12

    def ln(x, prefix):
        return mb.layer_norm(x=x, axes=[-1], gamma=w[prefix + ".weight"], beta=w[prefix + ".bias"],
                             epsilon=eps)

    def lin(x, prefix):
        return mb.linear(x=x, weight=w[prefix + ".weight"], bias=w[prefix + ".bias"])

    def split_heads(x):
        return mb.transpose(x=mb.reshape(x=x, shape=[1, SEQ, heads, dh]), perm=[0, 2, 1, 3])

    specs = [mb.TensorSpec(shape=(1, SEQ), dtype=types.int32) for _ in range(2)]

    @mb.program(input_specs=specs, opset_version=ct.target.iOS18)
    def prog(input_ids, attention_mask):
        # BertEmbeddings: word + token type 0, + absolute positions, LayerNorm.
        x = mb.gather(x=w["embeddings.word_embeddings.weight"], indices=input_ids, axis=0,
                      batch_dims=0)
        x = mb.add(x=x, y=w["embeddings.token_type_embeddings.weight"][0])
        x = mb.add(x=x, y=w["embeddings.position_embeddings.weight"][:SEQ])
        x = ln(x, "embeddings.LayerNorm")
        m = mb.cast(x=attention_mask, dtype="fp32")
        add_mask = mb.mul(x=mb.sub(x=np.float32(1.0), y=m), y=np.float32(MASK_MIN))
        add_mask = mb.reshape(x=add_mask, shape=[1, 1, 1, SEQ])
        scale = np.float32(np.sqrt(dh))
        for i in range(layers):
            p = f"encoder.layer.{i}."
            q = split_heads(lin(x, p + "attention.self.query"))
            k = split_heads(lin(x, p + "attention.self.key"))
            v = split_heads(lin(x, p + "attention.self.value"))
            s = mb.real_div(x=mb.matmul(x=q, y=k, transpose_y=True), y=scale)
            probs = mb.softmax(x=mb.add(x=s, y=add_mask), axis=-1)
            ctx = mb.transpose(x=mb.matmul(x=probs, y=v), perm=[0, 2, 1, 3])
            ctx = mb.reshape(x=ctx, shape=[1, SEQ, hidden])
            x = ln(mb.add(x=lin(ctx, p + "attention.output.dense"), y=x), p + "attention.output.LayerNorm")
            h = mb.gelu(x=lin(x, p + "intermediate.dense"), mode="EXACT")
            x = ln(mb.add(x=lin(h, p + "output.dense"), y=x), p + "output.LayerNorm")
        # Mean pooling over real tokens, then L2 normalisation.
        m3 = mb.expand_dims(x=m, axes=[-1])
        summed = mb.reduce_sum(x=mb.mul(x=x, y=m3), axes=[1], keep_dims=False)
        count = mb.maximum(x=mb.reduce_sum(x=m3, axes=[1], keep_dims=False), y=np.float32(1e-9))
        mean = mb.real_div(x=summed, y=count)
        norm = mb.maximum(x=mb.reduce_l2_norm(x=mean, axes=[1], keep_dims=True), y=np.float32(1e-12))
        return mb.real_div(x=mean, y=norm, name="embedding")

    return prog, ["input_ids", "attention_mask"]


# ------------------------------------------------------------------ EfficientNet-Lite0

# (repeats, kernel, stride, expand, in, out) per stage: scripts/efficientnet_lite0_ref.py.
STAGES = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]
BN_EPS = 1e-3


def efficientnet_program(w: dict):
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb

    def conv(x, name, stride=1, groups=1):
        # pad_type "same" is TensorFlow's SAME: before = floor(P / 2), as SameConv.
        return mb.conv(x=x, weight=w[name + ".weight"], strides=[stride, stride], pad_type="same",
                       groups=groups)

    def bn(x, name):
        return mb.batch_norm(x=x, mean=w[name + ".running_mean"], variance=w[name + ".running_var"],
                             gamma=w[name + ".weight"], beta=w[name + ".bias"], epsilon=BN_EPS)

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 3, 224, 224))], opset_version=ct.target.iOS18)
    def prog(pixel_values):
        x = mb.relu6(x=bn(conv(pixel_values, "_conv_stem", stride=2), "_bn0"))
        b = 0
        for repeats, _k, stride, expand, cin, cout in STAGES:
            for i in range(repeats):
                s, ci = (stride, cin) if i == 0 else (1, cout)
                p = f"_blocks.{b}."
                y = x
                if expand != 1:
                    y = mb.relu6(x=bn(conv(y, p + "_expand_conv"), p + "_bn0"))
                mid = ci * expand
                y = mb.relu6(x=bn(conv(y, p + "_depthwise_conv", stride=s, groups=mid), p + "_bn1"))
                y = bn(conv(y, p + "_project_conv"), p + "_bn2")
                x = mb.add(x=y, y=x) if (s == 1 and ci == cout) else y
                b += 1
        x = mb.relu6(x=bn(conv(x, "_conv_head"), "_bn1"))
        x = mb.reduce_mean(x=x, axes=[2, 3], keep_dims=False)
        return mb.linear(x=x, weight=w["_fc.weight"], bias=w["_fc.bias"], name="logits")

    return prog, ["pixel_values"]


BUILDERS = {"all_minilm_l6_v2": minilm_program, "efficientnet_lite0": efficientnet_program}

EXAMPLE_SENTENCE = "A man is playing a guitar."


def wordpiece(sentence: str, tokenizer_json: Path) -> list:
    """BERT uncased WordPiece for plain ASCII text (lower-case, split words and
    punctuation, greedy longest match with `##` continuations), with [CLS] and [SEP]."""
    import re

    vocab = json.loads(tokenizer_json.read_text())["model"]["vocab"]
    ids = [vocab["[CLS]"]]
    for word in re.findall(r"\w+|[^\w\s]", sentence.lower()):
        start, pieces = 0, []
        while start < len(word):
            end = len(word)
            while end > start and (("##" if start else "") + word[start:end]) not in vocab:
                end -= 1
            if end == start:
                pieces = [vocab["[UNK]"]]
                break
            pieces.append(vocab[("##" if start else "") + word[start:end]])
            start = end
        ids.extend(pieces)
    return ids + [vocab["[SEP]"]]


def write_safetensors(path: Path, tensors: dict) -> None:
    header, blobs, offset = {}, [], 0
    names = {np.dtype(np.int32): "I32", np.dtype(np.float32): "F32"}
    for name, a in tensors.items():
        b = np.ascontiguousarray(a).tobytes()
        header[name] = {"dtype": names[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    path.write_bytes(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def write_example(model: str) -> Path:
    """An example request for the package, next to it (`mil-builder.example.safetensors`):
    the tokens of EXAMPLE_SENTENCE padded to 128 for MiniLM."""
    d = cache_root() / "weights" / MODELS[model]
    out = d / "mil-builder.example.safetensors"
    if model == "all_minilm_l6_v2":
        ids = wordpiece(EXAMPLE_SENTENCE, d / "tokenizer.json")[:SEQ]
        input_ids = np.zeros((1, SEQ), np.int32)
        mask = np.zeros((1, SEQ), np.int32)
        input_ids[0, :len(ids)] = ids
        mask[0, :len(ids)] = 1
        write_safetensors(out, {"input_ids": input_ids, "attention_mask": mask})
    return out


def key_of(model: str, weights: Path) -> str:
    h = hashlib.sha256()
    h.update(Path(__file__).read_bytes())
    with open(weights, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return f"{model}:{h.hexdigest()}"


def build(model: str, force: bool = False, out: Path = None) -> Path:
    import coremltools as ct

    weights = cache_root() / "weights" / MODELS[model] / "model.safetensors"
    if not weights.is_file():
        raise SystemExit(f"mil_builder: {weights} is missing; run `make assets` first")
    dst = out or package_path(model)
    key_file = dst.with_suffix(".key")
    key = key_of(model, weights)
    if not force and dst.is_dir() and key_file.is_file() and key_file.read_text().strip() == key:
        print(f"{model}: cached {dst}")
        return dst
    prog, inputs = BUILDERS[model](read_safetensors(weights))
    mlmodel = ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS18,
                         compute_precision=ct.precision.FLOAT32, skip_model_load=True)
    got = [i.name for i in mlmodel.get_spec().description.input]
    if got != inputs:
        raise SystemExit(f"mil_builder: {model} has inputs {got}, expected {inputs}")
    tmp = dst.with_name(".tmp-" + dst.name)
    shutil.rmtree(tmp, ignore_errors=True)
    mlmodel.save(str(tmp))
    shutil.rmtree(dst, ignore_errors=True)
    tmp.rename(dst)
    key_file.write_text(key + "\n")
    print(f"{model}: built {dst}")
    return dst


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", action="append", choices=sorted(MODELS),
                    help="build only this model (repeatable; default: both)")
    ap.add_argument("--force", action="store_true", help="rebuild even when the key matches")
    args = ap.parse_args(argv)
    for m in args.model or sorted(MODELS):
        build(m, args.force)
        if m == "all_minilm_l6_v2":
            write_example(m)
    return 0


if __name__ == "__main__":
    sys.exit(main())
