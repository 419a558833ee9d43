"""Tensor refs into shared memory (docs/protocol.md, section 5), for the protocol peer.

    >>> check_ref({"dtype": 1, "shape": [2, 3], "strides": [4, 1], "region": 1,
    ...            "offset": 0, "len": 28}, {1: bytearray(64)}) is None
    True
    >>> check_ref({"dtype": 1, "shape": [2, 3], "strides": [2, 1], "region": 1,
    ...            "offset": 0, "len": 20}, {1: bytearray(64)})[0]
    5

Elements are little-endian (both platforms the protocol runs on).
"""

import itertools
import struct

DTYPE_SIZE = {1: 4, 2: 2, 3: 2, 4: 8, 5: 1, 6: 2, 7: 4, 8: 8, 9: 1}
SCHEMA_MISMATCH, SHM_FAILED = 5, 11
U64_MAX = (1 << 64) - 1
F32 = struct.Struct("<f")


def check_ref(ref, regions):
    """None when `ref` is valid (rules 1-5), else (error code, message)."""
    try:
        dtype, shape, strides = ref["dtype"], list(ref["shape"]), list(ref["strides"])
        region, offset, length = ref["region"], ref["offset"], ref["len"]
    except (KeyError, TypeError):
        return SCHEMA_MISMATCH, "tensor ref lacks a field"
    if dtype not in DTYPE_SIZE:
        return SCHEMA_MISMATCH, "unknown dtype %r" % (dtype,)
    if len(shape) != len(strides) or len(shape) > 8:
        return SCHEMA_MISMATCH, "shape and strides differ in length or exceed 8"
    extent = 1
    for dim, stride in sorted((p for p in zip(shape, strides) if p[0] > 1), key=lambda p: p[1]):
        if stride < extent:
            return SCHEMA_MISMATCH, "dimensions overlap (stride %d < extent %d)" % (stride, extent)
        extent += (dim - 1) * stride
    size = DTYPE_SIZE[dtype]
    span = 0 if 0 in shape else (1 + sum((d - 1) * s for d, s in zip(shape, strides))) * size
    if span > U64_MAX or length != span:
        return SCHEMA_MISMATCH, "len %d is not the span %d" % (length, span)
    if offset % size:
        return SCHEMA_MISMATCH, "offset %d is not a multiple of %d" % (offset, size)
    if region not in regions:
        return SHM_FAILED, "region %r is not attached" % (region,)
    if offset + length > len(regions[region]):
        return SCHEMA_MISMATCH, "ref ends past its region"
    return None


def room(slot_len):
    """Bytes an output slot offers: whole 16 KiB pages, at least one (section 5)."""
    return max(1, -(-slot_len // 16384)) * 16384


def padded(slot, pad):
    """The slot's contiguous ref with rows padded by `pad` elements (rank >= 2).

    >>> padded({"dtype": 1, "shape": [2, 3], "strides": [3, 1], "region": 1,
    ...         "offset": 0, "len": 24}, 5)["strides"], room(24)
    ([8, 1], 16384)
    """
    if not pad:
        return dict(slot)
    shape = list(slot["shape"])
    strides = [1] * len(shape)
    for d in range(len(shape) - 2, -1, -1):
        strides[d] = strides[d + 1] * shape[d + 1] + (pad if d == len(shape) - 2 else 0)
    size = DTYPE_SIZE[slot["dtype"]]
    span = 0 if 0 in shape else (1 + sum((n - 1) * s for n, s in zip(shape, strides))) * size
    return dict(slot, strides=strides, len=span)


def element_offsets(ref):
    """Byte offsets of the elements in row-major index order."""
    size = DTYPE_SIZE[ref["dtype"]]
    ranges = [range(d) for d in ref["shape"]]
    for index in itertools.product(*ranges):
        yield ref["offset"] + sum(i * s for i, s in zip(index, ref["strides"])) * size


def read_f32(memory, ref):
    return [F32.unpack_from(memory, at)[0] for at in element_offsets(ref)]


def write_f32(memory, ref, values):
    for at, value in zip(element_offsets(ref), values):
        F32.pack_into(memory, at, value)
