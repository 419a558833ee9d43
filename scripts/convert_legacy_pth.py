#!/usr/bin/env python3
"""Convert a PyTorch legacy (non-zip) .pth state dict to safetensors, without torch.

    python3 scripts/convert_legacy_pth.py IN.pth OUT.safetensors [--family efficientnet-lite0]

The legacy format (torch.save before 1.6, or _use_new_zipfile_serialization=False)
is a run of pickles followed by raw storages:

    pickle(magic) pickle(protocol) pickle(sys_info) pickle(object) pickle(storage_keys)
    then per key in that order: int64 element count, little-endian elements

The object pickle refers to storages by persistent id
('storage', torch.XStorage, key, location, numel[, view_metadata]) and builds
tensors with torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...).
A restricted Unpickler maps exactly those globals to plain Python stand-ins and
refuses every other global, so an untrusted file cannot run code.

Key mapping (efficientnet-lite0): efficientnet_pytorch names are kept as they are
(`_conv_stem`, `_bn0`, `_blocks.N._expand_conv`, `_depthwise_conv`, `_project_conv`,
`_bn0/1/2`, `_conv_head`, `_bn1`, `_fc`), a `module.` prefix (DataParallel) is
stripped, and BatchNorm `num_batches_tracked` counters are dropped (inference does
not use them). Needs numpy and safetensors only.
"""

import argparse
import collections
import pickle
import struct
import sys

import numpy as np
from safetensors.numpy import save_file

MAGIC = 0x1950A86A20F9469CFC6C
STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class StorageType:
    def __init__(self, name):
        self.name = name
        self.dtype = np.dtype(STORAGE_DTYPES[name])


class StorageRef:
    def __init__(self, key, dtype, numel):
        self.key, self.dtype, self.numel = key, dtype, numel


class TensorRef:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)


def rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    return TensorRef(storage, storage_offset, size, stride)


class LegacyUnpickler(pickle.Unpickler):
    def __init__(self, f):
        super().__init__(f)
        self.storages = {}

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return rebuild_tensor_v2
        if module == "torch" and name in STORAGE_DTYPES:
            return StorageType(name)
        raise pickle.UnpicklingError(f"refusing global {module}.{name}")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        _, storage_type, key, _location, numel = pid[:5]
        if len(pid) > 5 and pid[5] is not None:
            raise pickle.UnpicklingError("storage views are not supported")
        ref = self.storages.get(key)
        if ref is None:
            ref = self.storages[key] = StorageRef(key, storage_type.dtype, numel)
        return ref


def load_legacy(path):
    """The state dict of a legacy .pth as {name: numpy array}."""
    with open(path, "rb") as f:
        if f.read(2) == b"PK":
            raise SystemExit(f"{path}: zip-format checkpoint, not the legacy format")
        f.seek(0)
        magic = LegacyUnpickler(f).load()
        if magic != MAGIC:
            raise SystemExit(f"{path}: not a legacy torch checkpoint (magic {magic!r})")
        LegacyUnpickler(f).load()  # protocol version
        LegacyUnpickler(f).load()  # sys_info (endianness, type sizes)
        up = LegacyUnpickler(f)
        obj = up.load()
        keys = LegacyUnpickler(f).load()
        data = {}
        for key in keys:
            ref = up.storages[key]
            (numel,) = struct.unpack("<q", f.read(8))
            raw = f.read(numel * ref.dtype.itemsize)
            if len(raw) != numel * ref.dtype.itemsize:
                raise SystemExit(f"{path}: truncated storage {key}")
            data[key] = np.frombuffer(raw, dtype=ref.dtype.newbyteorder("<"))
    if isinstance(obj, dict) and "state_dict" in obj:
        obj = obj["state_dict"]
    out = collections.OrderedDict()
    for name, t in obj.items():
        if not isinstance(t, TensorRef):
            continue
        flat = data[t.storage.key]
        item = flat.dtype.itemsize
        arr = np.lib.stride_tricks.as_strided(
            flat[t.offset :], shape=t.size, strides=tuple(s * item for s in t.stride)
        )
        out[name] = np.ascontiguousarray(arr)
    return out


def map_keys(state, family):
    out = collections.OrderedDict()
    for name, arr in state.items():
        if name.startswith("module."):
            name = name[len("module.") :]
        if name.endswith("num_batches_tracked"):
            continue
        out[name] = arr
    if family == "efficientnet-lite0":
        needed = ["_conv_stem.weight", "_bn0.running_var", "_blocks.0._depthwise_conv.weight",
                  "_blocks.15._project_conv.weight", "_conv_head.weight", "_bn1.weight", "_fc.weight", "_fc.bias"]
        missing = [k for k in needed if k not in out]
        if missing:
            raise SystemExit(f"not an efficientnet_pytorch lite0 state dict: missing {missing}")
        if out["_fc.weight"].shape != (1000, 1280):
            raise SystemExit(f"unexpected _fc.weight shape {out['_fc.weight'].shape}")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--family", default="efficientnet-lite0")
    args = ap.parse_args()
    state = map_keys(load_legacy(args.src), args.family)
    # One metadata key only: safetensors writes its header from a hash map, so several
    # keys could come out in any order and change the file's sha256.
    save_file(dict(state), args.dst, metadata={"format": "pt"})
    print(f"{args.dst}: {len(state)} tensors", file=sys.stderr)


if __name__ == "__main__":
    main()
