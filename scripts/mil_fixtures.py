"""Builds the tiny ML Program test packages under tests/fixtures/mlpackage/.

    $(scripts/python_env.sh coremltools) scripts/mil_fixtures.py [OUT_DIR]

Every package is written with coremltools' MIL builder (no torch) and comes with
NAME.golden.json: the inputs and the outputs this script computes itself with NumPy,
independently of Core ML, from the semantics in the MIL op documentation. The
compressed packages (constexpr dequantisation ops) are made with
coremltools.optimize.coreml on a tiny model; their golden outputs come from NumPy
dequantisation of the compressed parameters read back from the MIL program.

Deterministic (fixed seeds): re-running rewrites the same tensors (the manifest UUIDs are
random).
"""

import json
import math
import os
import shutil
import sys
import warnings

import numpy as np

warnings.filterwarnings("ignore")
import coremltools as ct  # noqa: E402
import coremltools.optimize.coreml as cto  # noqa: E402
from coremltools.converters.mil import Builder as mb  # noqa: E402
from coremltools.converters.mil.mil import types  # noqa: E402

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "mlpackage")
rng = np.random.default_rng(14)

TARGETS = {15: ct.target.iOS15, 16: ct.target.iOS16, 17: ct.target.iOS17, 18: ct.target.iOS18}


def rnd(*shape, lo=-1.0, hi=1.0):
    return rng.uniform(lo, hi, size=shape).astype(np.float32)


def enc(a):
    a = np.asarray(a)
    if a.dtype == np.bool_:
        dt, data = "bool", [bool(v) for v in a.reshape(-1)]
    elif np.issubdtype(a.dtype, np.integer):
        dt, data = "int32", [int(v) for v in a.reshape(-1)]
    elif a.dtype == np.float16:
        dt, data = "fp16", [float(v) for v in a.astype(np.float32).reshape(-1)]
    else:
        dt, data = "fp32", [float(v) for v in a.astype(np.float32).reshape(-1)]
    return {"shape": list(a.shape), "dtype": dt, "data": data}


def save(name, model, inputs, outputs, atol, note=""):
    path = os.path.join(OUT, name + ".mlpackage")
    if os.path.exists(path):
        shutil.rmtree(path)
    model.save(path)
    golden = {
        "package": name + ".mlpackage",
        "note": note,
        "atol": atol,
        "inputs": {k: enc(v) for k, v in inputs.items()},
        "outputs": {k: enc(v) for k, v in outputs.items()},
    }
    with open(os.path.join(OUT, name + ".golden.json"), "w") as f:
        json.dump(golden, f, separators=(",", ":"))
        f.write("\n")
    print(f"{name}: {', '.join(outputs)}")


def build(name, specs, fn, inputs, expected, target=16, fp16=False, atol=1e-5, note=""):
    """specs: list of (name, shape, dtype); fn builds the program body and returns
    a dict output-name -> Var; expected: dict output-name -> numpy array."""
    tspecs = [mb.TensorSpec(shape=s, dtype=d) for (_, s, d) in specs]
    names = [n for (n, _, _) in specs]

    # mb.program reads the input names from the function's parameters.
    scope = {"fn": fn}
    exec(f"def body({', '.join(names)}):\n"
         f"    return tuple(fn({', '.join(n + '=' + n for n in names)}).values())", scope)
    prog = mb.program(input_specs=tspecs, opset_version=TARGETS[target])(scope["body"])
    model = ct.convert(
        prog,
        convert_to="mlprogram",
        minimum_deployment_target=TARGETS[target],
        compute_precision=ct.precision.FLOAT16 if fp16 else ct.precision.FLOAT32,
        skip_model_load=True,
    )
    spec_outs = [o.name for o in model.get_spec().description.output]
    assert spec_outs == list(expected.keys()), (name, spec_outs, list(expected))
    save(name, model, inputs, expected, atol if not fp16 else max(atol, 2e-2), note)
    return model


# ---------------------------------------------------------------- numpy references

def np_gelu(x, mode):
    if mode == "EXACT":
        return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))
    if mode == "TANH_APPROXIMATION":
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    return x / (1 + np.exp(-1.702 * x))


def np_softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def same_pads(d, k, s, dil, lower=False):
    keff = (k - 1) * dil + 1
    total = max(0, (math.ceil(d / s) - 1) * s + keff - d)
    before = total // 2 if not lower else total - total // 2
    return before, total - before


def np_conv2d(x, w, b, strides, pads, dil, groups):
    # pads: [top, bottom, left, right]
    n, cin, h, wd = x.shape
    cout, cpg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[1]), (pads[2], pads[3])))
    oh = (h + pads[0] + pads[1] - ((kh - 1) * dil[0] + 1)) // strides[0] + 1
    ow = (wd + pads[2] + pads[3] - ((kw - 1) * dil[1] + 1)) // strides[1] + 1
    y = np.zeros((n, cout, oh, ow), np.float64)
    opg = cout // groups
    for co in range(cout):
        g = co // opg
        for i in range(oh):
            for j in range(ow):
                for ki in range(kh):
                    for kj in range(kw):
                        patch = xp[:, g * cpg:(g + 1) * cpg, i * strides[0] + ki * dil[0],
                                   j * strides[1] + kj * dil[1]]
                        y[:, co, i, j] += patch @ w[co, :, ki, kj]
        y[:, co] += 0 if b is None else b[co]
    return y.astype(np.float32)


def np_conv1d(x, w, b, stride, pads, dil):
    y = np_conv2d(x[:, :, None, :], w[:, :, None, :], b, (1, stride), (0, 0, pads[0], pads[1]),
                  (1, dil), 1)
    return y[:, :, 0, :]


def np_conv_transpose2d(x, w, b, strides, pads, dil, groups):
    # w: [Cin, Cout/groups, kh, kw]; pads [top, bottom, left, right] cropped from the full output
    n, cin, h, wd = x.shape
    _, opg, kh, kw = w.shape
    ipg = cin // groups
    cout = opg * groups
    fh = (h - 1) * strides[0] + (kh - 1) * dil[0] + 1
    fw = (wd - 1) * strides[1] + (kw - 1) * dil[1] + 1
    y = np.zeros((n, cout, fh, fw), np.float64)
    for ci in range(cin):
        g = ci // ipg
        for i in range(h):
            for j in range(wd):
                for ki in range(kh):
                    for kj in range(kw):
                        y[:, g * opg:(g + 1) * opg, i * strides[0] + ki * dil[0],
                          j * strides[1] + kj * dil[1]] += x[:, ci, i, j][:, None] * w[ci, :, ki, kj]
    y = y[:, :, pads[0]:fh - pads[1], pads[2]:fw - pads[3]]
    if b is not None:
        y += b[None, :, None, None]
    return y.astype(np.float32)


def np_pool(x, k, s, pads, kind, exclude=False):
    n, c, h, w = x.shape
    fill = -np.inf if kind == "max" else 0.0
    xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[1]), (pads[2], pads[3])), constant_values=fill)
    ones = np.pad(np.ones((h, w)), ((pads[0], pads[1]), (pads[2], pads[3])))
    oh = (h + pads[0] + pads[1] - k[0]) // s[0] + 1
    ow = (w + pads[2] + pads[3] - k[1]) // s[1] + 1
    y = np.zeros((n, c, oh, ow), np.float32)
    for i in range(oh):
        for j in range(ow):
            win = xp[:, :, i * s[0]:i * s[0] + k[0], j * s[1]:j * s[1] + k[1]]
            if kind == "max":
                y[:, :, i, j] = win.max(axis=(2, 3))
            else:
                cnt = ones[i * s[0]:i * s[0] + k[0], j * s[1]:j * s[1] + k[1]].sum() if exclude \
                    else k[0] * k[1]
                y[:, :, i, j] = win.sum(axis=(2, 3)) / cnt
    return y


def np_bilinear(x, oh, ow, align_corners):
    n, c, h, w = x.shape

    def coords(o, i):
        if align_corners:
            src = np.arange(o) * ((i - 1) / (o - 1) if o > 1 else 0.0)
        else:
            src = np.maximum((np.arange(o) + 0.5) * (i / o) - 0.5, 0.0)
        lo = np.minimum(np.floor(src).astype(int), i - 1)
        hi = np.minimum(lo + 1, i - 1)
        return lo, hi, src - lo

    y0, y1, fy = coords(oh, h)
    x0, x1, fx = coords(ow, w)
    top = x[:, :, y0][:, :, :, x0] * (1 - fx) + x[:, :, y0][:, :, :, x1] * fx
    bot = x[:, :, y1][:, :, :, x0] * (1 - fx) + x[:, :, y1][:, :, :, x1] * fx
    return (top * (1 - fy)[:, None] + bot * fy[:, None]).astype(np.float32)


# ---------------------------------------------------------------- op fixtures

def elementwise():
    x, y = rnd(2, 3, 4), rnd(3, 1)
    y = np.where(np.abs(y) < 0.1, 0.5, y).astype(np.float32)
    build("elementwise", [("x", x.shape, types.fp32), ("y", y.shape, types.fp32)],
          lambda x, y: {
              "add": mb.add(x=x, y=y, name="add"),
              "sub": mb.sub(x=x, y=y, name="sub"),
              "mul": mb.mul(x=x, y=y, name="mul"),
              "real_div": mb.real_div(x=x, y=y, name="real_div"),
              "maximum": mb.maximum(x=x, y=y, name="maximum"),
              "minimum": mb.minimum(x=x, y=y, name="minimum"),
              "pow": mb.pow(x=mb.abs(x=x), y=2.5, name="pow"),
              "equal": mb.cast(x=mb.equal(x=mb.mul(x=x, y=0.0), y=0.0), dtype="fp32", name="equal"),
              "less": mb.cast(x=mb.less(x=x, y=y), dtype="fp32", name="less"),
              "greater": mb.cast(x=mb.greater(x=x, y=y), dtype="fp32", name="greater"),
          },
          {"x": x, "y": y},
          {"add": x + y, "sub": x - y, "mul": x * y, "real_div": x / y,
           "maximum": np.maximum(x, y), "minimum": np.minimum(x, y),
           "pow": np.abs(x) ** 2.5, "equal": np.ones_like(x),
           "less": (x < y).astype(np.float32), "greater": (x > y).astype(np.float32)})


def unary():
    x = rnd(2, 8, lo=-3, hi=3)
    p = np.abs(x) + 0.1
    build("unary", [("x", x.shape, types.fp32)],
          lambda x: {
              "relu": mb.relu(x=x, name="relu"),
              "relu6": mb.relu6(x=mb.mul(x=x, y=3.0), name="relu6"),
              "sigmoid": mb.sigmoid(x=x, name="sigmoid"),
              "tanh": mb.tanh(x=x, name="tanh"),
              "silu": mb.silu(x=x, name="silu"),
              "leaky_relu": mb.leaky_relu(x=x, alpha=0.1, name="leaky_relu"),
              "clip": mb.clip(x=x, alpha=-0.5, beta=1.5, name="clip"),
              "gelu_exact": mb.gelu(x=x, mode="EXACT", name="gelu_exact"),
              "gelu_tanh": mb.gelu(x=x, mode="TANH_APPROXIMATION", name="gelu_tanh"),
              "gelu_sigmoid": mb.gelu(x=x, mode="SIGMOID_APPROXIMATION", name="gelu_sigmoid"),
              "exp": mb.exp(x=x, name="exp"),
              "sqrt": mb.sqrt(x=mb.add(x=mb.abs(x=x), y=0.1), name="sqrt"),
              "rsqrt": mb.rsqrt(x=mb.add(x=mb.abs(x=x), y=0.1), name="rsqrt"),
              "log": mb.log(x=mb.add(x=mb.abs(x=x), y=0.1), name="log"),
              "neg_abs": mb.mul(x=mb.abs(x=x), y=-1.0, name="neg_abs"),
              "erf": mb.erf(x=x, name="erf"),
              "softplus": mb.softplus(x=x, name="softplus"),
              "elu": mb.elu(x=x, alpha=1.0, name="elu"),
              "floor": mb.floor(x=x, name="floor"),
              "square": mb.square(x=x, name="square"),
          },
          {"x": x},
          {"relu": np.maximum(x, 0), "relu6": np.clip(3 * x, 0, 6), "sigmoid": 1 / (1 + np.exp(-x)),
           "tanh": np.tanh(x), "silu": x / (1 + np.exp(-x)), "leaky_relu": np.where(x > 0, x, 0.1 * x),
           "clip": np.clip(x, -0.5, 1.5), "gelu_exact": np_gelu(x, "EXACT"),
           "gelu_tanh": np_gelu(x, "TANH_APPROXIMATION"), "gelu_sigmoid": np_gelu(x, "SIG"),
           "exp": np.exp(x), "sqrt": np.sqrt(p), "rsqrt": 1 / np.sqrt(p), "log": np.log(p),
           "neg_abs": -np.abs(x), "erf": np.vectorize(math.erf)(x), "softplus": np.log1p(np.exp(x)),
           "elu": np.where(x > 0, x, np.exp(x) - 1), "floor": np.floor(x), "square": x * x},
          atol=1e-4)


def softmax_norms():
    x = rnd(2, 3, 4, 5)
    g, b = rnd(5), rnd(5)
    g2, b2 = rnd(4, 5), rnd(4, 5)
    mean, var = rnd(3), rnd(3, lo=0.5, hi=2.0)
    gc, bc = rnd(3), rnd(3)
    ln = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5) * g + b
    m2 = x.mean((-2, -1), keepdims=True)
    ln2 = (x - m2) / np.sqrt(((x - m2) ** 2).mean((-2, -1), keepdims=True) + 1e-3) * g2 + b2
    bn = (x - mean[:, None, None]) / np.sqrt(var[:, None, None] + 1e-5) * gc[:, None, None] \
        + bc[:, None, None]
    mi = x.mean((2, 3), keepdims=True)
    inorm = (x - mi) / np.sqrt(((x - mi) ** 2).mean((2, 3), keepdims=True) + 1e-5) \
        * gc[:, None, None] + bc[:, None, None]
    build("norms", [("x", x.shape, types.fp32)],
          lambda x: {
              "softmax_last": mb.softmax(x=x, axis=-1, name="softmax_last"),
              "softmax_1": mb.softmax(x=x, axis=1, name="softmax_1"),
              "layer_norm": mb.layer_norm(x=x, axes=[-1], gamma=g, beta=b, epsilon=1e-5, name="layer_norm"),
              "layer_norm2": mb.layer_norm(x=x, axes=[2, 3], gamma=g2, beta=b2, epsilon=1e-3,
                                           name="layer_norm2"),
              "batch_norm": mb.batch_norm(x=x, mean=mean, variance=var, gamma=gc, beta=bc,
                                          epsilon=1e-5, name="batch_norm"),
              "instance_norm": mb.instance_norm(x=x, gamma=gc, beta=bc, epsilon=1e-5,
                                                name="instance_norm"),
          },
          {"x": x},
          {"softmax_last": np_softmax(x, -1), "softmax_1": np_softmax(x, 1), "layer_norm": ln,
           "layer_norm2": ln2, "batch_norm": bn, "instance_norm": inorm},
          atol=1e-4)


def reductions():
    x = rnd(2, 3, 4)
    build("reductions", [("x", x.shape, types.fp32)],
          lambda x: {
              "mean_all": mb.reduce_mean(x=x, name="mean_all"),
              "mean_12": mb.reduce_mean(x=x, axes=[1, 2], keep_dims=True, name="mean_12"),
              "sum_0": mb.reduce_sum(x=x, axes=[0], name="sum_0"),
              "max_m1": mb.reduce_max(x=x, axes=[-1], name="max_m1"),
              "min_1": mb.reduce_min(x=x, axes=[1], keep_dims=True, name="min_1"),
              "prod_2": mb.reduce_prod(x=x, axes=[2], name="prod_2"),
              "l2_m1": mb.reduce_l2_norm(x=x, axes=[-1], name="l2_m1"),
              "argmax_1": mb.reduce_argmax(x=x, axis=1, name="argmax_1"),
          },
          {"x": x},
          {"mean_all": np.float32(x.mean()), "mean_12": x.mean((1, 2), keepdims=True),
           "sum_0": x.sum(0), "max_m1": x.max(-1), "min_1": x.min(1, keepdims=True),
           "prod_2": x.prod(2), "l2_m1": np.sqrt((x * x).sum(-1)),
           "argmax_1": x.argmax(1).astype(np.int32)}, atol=1e-5)


def convs():
    x = rnd(1, 4, 7, 6)
    w = rnd(6, 4, 3, 3)
    b = rnd(6)
    wg = rnd(6, 2, 3, 2)
    wd = rnd(4, 1, 3, 3)
    w1 = rnd(5, 4, 3)
    x1 = rnd(1, 4, 9)
    outs, exp = {}, {}

    def body(x, x1):
        return {
            "valid": mb.conv(x=x, weight=w, bias=b, pad_type="valid", name="valid"),
            "same_s2": mb.conv(x=x, weight=w, pad_type="same", strides=[2, 2], name="same_s2"),
            "same_lower_s2": mb.conv(x=x, weight=w, pad_type="same_lower", strides=[2, 2],
                                     name="same_lower_s2"),
            "custom_dil": mb.conv(x=x, weight=w, bias=b, pad_type="custom", pad=[1, 2, 0, 1],
                                  dilations=[2, 1], name="custom_dil"),
            "groups2": mb.conv(x=x, weight=wg, pad_type="custom", pad=[1, 1, 1, 0], groups=2,
                               strides=[1, 2], name="groups2"),
            "depthwise": mb.conv(x=x, weight=wd, bias=b[:4], pad_type="same", groups=4,
                                 name="depthwise"),
            "depthwise_s2": mb.conv(x=x, weight=wd, pad_type="custom", pad=[1, 1, 1, 1], groups=4,
                                    strides=[2, 2], name="depthwise_s2"),
            "conv1d": mb.conv(x=x1, weight=w1, pad_type="custom", pad=[1, 1], strides=[2],
                              dilations=[2], name="conv1d"),
        }
    p_s = same_pads(7, 3, 2, 1) + same_pads(6, 3, 2, 1)
    p_sl = same_pads(7, 3, 2, 1, True) + same_pads(6, 3, 2, 1, True)
    exp = {
        "valid": np_conv2d(x, w, b, (1, 1), (0, 0, 0, 0), (1, 1), 1),
        "same_s2": np_conv2d(x, w, None, (2, 2), p_s, (1, 1), 1),
        "same_lower_s2": np_conv2d(x, w, None, (2, 2), p_sl, (1, 1), 1),
        "custom_dil": np_conv2d(x, w, b, (1, 1), (1, 2, 0, 1), (2, 1), 1),
        "groups2": np_conv2d(x, wg, None, (1, 2), (1, 1, 1, 0), (1, 1), 2),
        "depthwise": np_conv2d(x, wd, b[:4], (1, 1), (1, 1, 1, 1), (1, 1), 4),
        "depthwise_s2": np_conv2d(x, wd, None, (2, 2), (1, 1, 1, 1), (1, 1), 4),
        "conv1d": np_conv1d(x1, w1, None, 2, (1, 1), 2),
    }
    build("conv", [("x", x.shape, types.fp32), ("x1", x1.shape, types.fp32)], body,
          {"x": x, "x1": x1}, exp, atol=1e-4)


def conv_transpose():
    x = rnd(1, 4, 3, 4)
    w = rnd(4, 3, 3, 3)
    wg = rnd(4, 2, 2, 3)
    b = rnd(3)
    build("conv_transpose", [("x", x.shape, types.fp32)],
          lambda x: {
              "valid_s2": mb.conv_transpose(x=x, weight=w, bias=b, pad_type="valid", strides=[2, 2],
                                            name="valid_s2"),
              "custom": mb.conv_transpose(x=x, weight=w, pad_type="custom", pad=[1, 1, 0, 1],
                                          strides=[2, 1], name="custom"),
              "groups_dil": mb.conv_transpose(x=x, weight=wg, pad_type="valid", groups=2,
                                              dilations=[2, 1], name="groups_dil"),
          },
          {"x": x},
          {"valid_s2": np_conv_transpose2d(x, w, b, (2, 2), (0, 0, 0, 0), (1, 1), 1),
           "custom": np_conv_transpose2d(x, w, None, (2, 1), (1, 1, 0, 1), (1, 1), 1),
           "groups_dil": np_conv_transpose2d(x, wg, None, (1, 1), (0, 0, 0, 0), (2, 1), 2)},
          atol=1e-4)


def pools():
    x = rnd(1, 2, 7, 6)
    build("pool", [("x", x.shape, types.fp32)],
          lambda x: {
              "max_3s2p1": mb.max_pool(x=x, kernel_sizes=[3, 3], strides=[2, 2], pad_type="custom",
                                       pad=[1, 1, 1, 1], name="max_3s2p1"),
              "max_valid": mb.max_pool(x=x, kernel_sizes=[2, 2], strides=[2, 2], pad_type="valid",
                                       name="max_valid"),
              "avg_same": mb.avg_pool(x=x, kernel_sizes=[3, 3], strides=[1, 1], pad_type="same",
                                      name="avg_same"),
              "avg_excl": mb.avg_pool(x=x, kernel_sizes=[3, 2], strides=[2, 1], pad_type="custom",
                                      pad=[1, 1, 1, 0], exclude_padding_from_average=True,
                                      name="avg_excl"),
          },
          {"x": x},
          {"max_3s2p1": np_pool(x, (3, 3), (2, 2), (1, 1, 1, 1), "max"),
           "max_valid": np_pool(x, (2, 2), (2, 2), (0, 0, 0, 0), "max"),
           "avg_same": np_pool(x, (3, 3), (1, 1), (1, 1, 1, 1), "avg"),
           "avg_excl": np_pool(x, (3, 2), (2, 1), (1, 1, 1, 0), "avg", exclude=True)},
          atol=1e-5)


def linear_matmul():
    x = rnd(2, 3, 5)
    w, b = rnd(4, 5), rnd(4)
    y = rnd(2, 5, 6)
    yt = rnd(6, 5)
    v = rnd(5, 6)
    build("linear_matmul", [("x", x.shape, types.fp32), ("y", y.shape, types.fp32)],
          lambda x, y: {
              "linear": mb.linear(x=x, weight=w, bias=b, name="linear"),
              "linear_nobias": mb.linear(x=x, weight=w, name="linear_nobias"),
              "matmul": mb.matmul(x=x, y=y, name="matmul"),
              "matmul_ty": mb.matmul(x=x, y=yt, transpose_y=True, name="matmul_ty"),
              "matmul_tx": mb.matmul(x=y, y=x, transpose_x=True, transpose_y=True, name="matmul_tx"),
              "matmul_bcast": mb.matmul(x=x, y=v, name="matmul_bcast"),
          },
          {"x": x, "y": y},
          {"linear": x @ w.T + b, "linear_nobias": x @ w.T, "matmul": x @ y,
           "matmul_ty": x @ yt.T, "matmul_tx": np.swapaxes(y, -1, -2) @ np.swapaxes(x, -1, -2),
           "matmul_bcast": x @ v}, atol=1e-5)


def shapes():
    x = rnd(2, 3, 4)
    build("shape_ops", [("x", x.shape, types.fp32)],
          lambda x: {
              "reshape": mb.reshape(x=x, shape=[4, -1], name="reshape"),
              "reshape0": mb.reshape(x=x, shape=[0, -1, 2], name="reshape0"),
              "transpose": mb.transpose(x=x, perm=[2, 0, -2], name="transpose"),
              "expand_dims": mb.expand_dims(x=x, axes=[0, -1], name="expand_dims"),
              "squeeze": mb.squeeze(x=mb.reshape(x=x, shape=[2, 1, 3, 1, 4]), axes=[1, -2],
                                    name="squeeze"),
              "squeeze_all": mb.squeeze(x=mb.reshape(x=x, shape=[1, 6, 1, 4]), name="squeeze_all"),
              "tile": mb.tile(x=x, reps=[1, 2, 3], name="tile"),
              "slice": mb.slice_by_index(x=x, begin=[0, 1, -1], end=[2, 3, 0], stride=[1, 1, -2],
                                         end_mask=[False, False, True], name="slice"),
              "slice_sq": mb.slice_by_index(x=x, begin=[0, 0, 0], end=[1, 1, 4],
                                            end_mask=[True, False, True],
                                            squeeze_mask=[False, True, False], name="slice_sq"),
              "concat": mb.concat(values=[x, mb.mul(x=x, y=2.0)], axis=-1, name="concat"),
              "concat_il": mb.concat(values=[x, mb.mul(x=x, y=2.0)], axis=1, interleave=True,
                                     name="concat_il"),
          },
          {"x": x},
          {"reshape": x.reshape(4, -1), "reshape0": x.reshape(2, -1, 2),
           "transpose": x.transpose(2, 0, 1), "expand_dims": x[None, ..., None],
           "squeeze": x, "squeeze_all": x.reshape(6, 4), "tile": np.tile(x, (1, 2, 3)),
           "slice": x[0:2, 1:3, -1::-2], "slice_sq": x[:, 0, :],
           "concat": np.concatenate([x, 2 * x], -1),
           "concat_il": np.stack([x, 2 * x], 2).reshape(2, 6, 4)})


def split_gather_select():
    x = rnd(4, 6)
    idx = np.array([[3, 0], [-1, 2]], np.int32)
    cond = rnd(4, 6) > 0
    bidx = np.array([[1, 0, 5], [2, 2, 0], [0, 1, 4], [3, 3, 3]], np.int32)
    s = np.split(x, [2, 5], axis=1)
    build("split_gather_select",
          [("x", x.shape, types.fp32), ("idx", idx.shape, types.int32)],
          lambda x, idx: dict(zip(
              ["split_0", "split_1", "split_2", "half_0", "half_1", "gather0", "gather1",
               "gather_batch", "select", "cast_int", "cast_back"],
              list(mb.split(x=x, split_sizes=[2, 3, 1], axis=1, name="split")) +
              list(mb.split(x=x, num_splits=2, axis=0, name="half")) +
              [mb.gather(x=x, indices=idx, axis=0, name="gather0"),
               mb.gather(x=x, indices=idx, axis=-1, name="gather1"),
               mb.gather(x=x, indices=bidx, axis=1, batch_dims=1, name="gather_batch"),
               mb.select(cond=cond, a=x, b=mb.mul(x=x, y=-1.0), name="select"),
               mb.cast(x=mb.mul(x=x, y=10.0), dtype="int32", name="cast_int"),
               mb.cast(x=mb.cast(x=mb.mul(x=x, y=10.0), dtype="int32"), dtype="fp32",
                       name="cast_back")])),
          {"x": x, "idx": idx},
          {"split_0": s[0], "split_1": s[1], "split_2": s[2], "half_0": x[:2], "half_1": x[2:],
           "gather0": x[np.where(idx < 0, idx + 4, idx)],
           "gather1": x[:, np.where(idx < 0, idx + 6, idx)],
           "gather_batch": np.take_along_axis(x, bidx, 1),
           "select": np.where(cond, x, -x), "cast_int": np.trunc(10 * x).astype(np.int32),
           "cast_back": np.trunc(10 * x)}, atol=1e-6)


def pad_cumsum():
    x = rnd(1, 2, 3, 4)
    build("pad_cumsum", [("x", x.shape, types.fp32)],
          lambda x: {
              "pad_const": mb.pad(x=x, pad=[1, 0, 2, 1], mode="constant", constant_val=0.5,
                                  name="pad_const"),
              "pad_reflect": mb.pad(x=x, pad=[2, 1, 1, 2], mode="reflect", name="pad_reflect"),
              "pad_replicate": mb.pad(x=x, pad=[0, 0, 1, 2, 3, 0], mode="replicate",
                                      name="pad_replicate"),
              "cumsum": mb.cumsum(x=x, axis=-1, name="cumsum"),
              "cumsum_ex_rev": mb.cumsum(x=x, axis=2, exclusive=True, reverse=True,
                                         name="cumsum_ex_rev"),
          },
          {"x": x},
          {"pad_const": np.pad(x, [(0, 0), (0, 0), (1, 0), (2, 1)], constant_values=0.5),
           "pad_reflect": np.pad(x, [(0, 0), (0, 0), (2, 1), (1, 2)], mode="reflect"),
           "pad_replicate": np.pad(x, [(0, 0), (0, 0), (1, 2), (3, 0)], mode="edge"),
           "cumsum": np.cumsum(x, -1),
           "cumsum_ex_rev": np.flip(np.cumsum(np.flip(x, 2), 2), 2) - x}, atol=1e-5)


def upsample():
    x = rnd(1, 2, 3, 4)
    build("upsample", [("x", x.shape, types.fp32)],
          lambda x: {
              "nearest": mb.upsample_nearest_neighbor(x=x, scale_factor_height=2,
                                                      scale_factor_width=3, name="nearest"),
              "bilinear_ac": mb.upsample_bilinear(x=x, scale_factor_height=2, scale_factor_width=2,
                                                  align_corners=True, name="bilinear_ac"),
              "bilinear_hp": mb.upsample_bilinear(x=x, scale_factor_height=2, scale_factor_width=2,
                                                  align_corners=False, half_pixel_centers=True,
                                                  name="bilinear_hp"),
          },
          {"x": x},
          {"nearest": x.repeat(2, axis=2).repeat(3, axis=3),
           "bilinear_ac": np_bilinear(x, 6, 8, True), "bilinear_hp": np_bilinear(x, 6, 8, False)},
          atol=1e-5)


def small_cnn(name, fp16, target=16):
    """conv-bn-relu-pool-linear with fp16 option: the FP16 program path."""
    x = rnd(1, 3, 8, 8)
    w1, b1 = rnd(8, 3, 3, 3, lo=-0.5, hi=0.5), rnd(8)
    w2 = rnd(8, 1, 3, 3, lo=-0.5, hi=0.5)
    wl, bl = rnd(5, 8), rnd(5)
    h = np.maximum(np_conv2d(x, w1, b1, (2, 2), (1, 1, 1, 1), (1, 1), 1), 0)
    h = np_gelu(np_conv2d(h, w2, None, (1, 1), (1, 1, 1, 1), (1, 1), 8), "EXACT")
    y = h.mean((2, 3)) @ wl.T + bl
    build(name, [("image", x.shape, types.fp32)],
          lambda image: {
              "logits": mb.linear(
                  x=mb.reduce_mean(x=mb.gelu(x=mb.conv(
                      x=mb.relu(x=mb.conv(x=image, weight=w1, bias=b1, strides=[2, 2],
                                          pad_type="custom", pad=[1, 1, 1, 1])),
                      weight=w2, groups=8, pad_type="custom", pad=[1, 1, 1, 1]), mode="EXACT"),
                      axes=[2, 3]),
                  weight=wl, bias=bl, name="logits")},
          {"image": x}, {"logits": y}, target=target, fp16=fp16, atol=1e-4)


def fp16_io():
    """An FP16 program with FP16 inputs and outputs (no casts inserted)."""
    x = rnd(2, 6).astype(np.float16)
    w = rnd(3, 6, lo=-0.5, hi=0.5)
    y = np.tanh(x.astype(np.float32) @ w.T.astype(np.float16).astype(np.float32))
    build("fp16_io", [("x", x.shape, types.fp16)],
          lambda x: {"y": mb.tanh(x=mb.linear(x=x, weight=w.astype(np.float16)), name="y")},
          {"x": x}, {"y": y.astype(np.float16)}, fp16=True, atol=1e-2)


# ---------------------------------------------------------------- compressed fixtures

def mlp_model(target, w1, w2):
    @mb.program(input_specs=[mb.TensorSpec(shape=(2, w1.shape[1]))], opset_version=TARGETS[target])
    def prog(x):
        return mb.linear(x=mb.relu(x=mb.linear(x=x, weight=w1)), weight=w2, name="y")
    return ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=TARGETS[target],
                      compute_precision=ct.precision.FLOAT32, skip_model_load=True)


def unpack_bits(data, nbits, count):
    bits = np.unpackbits(np.frombuffer(np.asarray(data, np.uint8).tobytes(), np.uint8),
                         bitorder="little")
    bits = bits[:count * nbits].reshape(count, nbits)
    return (bits * (1 << np.arange(nbits))).sum(1)


def dequantized_weights(model):
    """NumPy dequantisation of every constexpr op of the compressed program,
    from its parameters (not from coremltools' own materialisation)."""
    prog = model._mil_program
    vals = {}
    for op in prog.functions["main"].operations:
        if not op.op_type.startswith("constexpr"):
            continue
        p = {k: (v.val if v is not None else None) for k, v in op.inputs.items()}
        for k, v in p.items():
            if isinstance(v, str) or v is None:
                continue
            if k in vals:
                p[k] = vals[k]
        if op.op_type == "constexpr_affine_dequantize":
            q = p["quantized_data"].astype(np.float32)
            ax = int(p["axis"])
            sh = [1] * q.ndim
            sh[ax] = -1
            zp = np.asarray(p["zero_point"], np.float32)
            sc = np.asarray(p["scale"], np.float32)
            out = (q - (zp.reshape(sh) if zp.size > 1 else zp)) * (sc.reshape(sh) if sc.size > 1 else sc)
        elif op.op_type == "constexpr_lut_to_dense" and "shape" in p:  # iOS16
            lut = np.asarray(p["lut"], np.float32)
            n = int(math.log2(lut.size))
            shape = [int(v) for v in p["shape"]]
            cnt = int(np.prod(shape))
            raw = np.asarray(p["indices"]).astype(np.uint8)
            out = lut[unpack_bits(raw, n, cnt)].reshape(shape)
        elif op.op_type == "constexpr_lut_to_dense":  # iOS18: indices already unpacked uintN
            idx = np.asarray(p["indices"]).astype(np.int64)
            lut = np.asarray(p["lut"], np.float32)
            assert lut.shape[-1] == 1
            bs = [idx.shape[d] // lut.shape[d] for d in range(idx.ndim)]
            out = np.zeros(idx.shape, np.float32)
            for i in np.ndindex(idx.shape):
                blk = tuple(i[d] // bs[d] for d in range(idx.ndim))
                out[i] = lut[blk + (idx[i], 0)]
        elif op.op_type == "constexpr_blockwise_shift_scale":
            d = np.asarray(p["data"]).astype(np.float32)
            sc = np.asarray(p["scale"], np.float32)
            off = p.get("offset")
            for ax in range(d.ndim):
                r = d.shape[ax] // sc.shape[ax]
                sc = np.repeat(sc, r, axis=ax)
                if off is not None:
                    off = np.repeat(np.asarray(off, np.float32), r, axis=ax)
            out = (d - (off if off is not None else 0)) * sc
        else:
            raise RuntimeError("unexpected " + op.op_type)
        vals[op.outputs[0].name] = out
    return vals


def compressed(name, target, config, w1, w2, kinds):
    model = mlp_model(target, w1, w2)
    model = config(model)
    ops = [op.op_type for op in model._mil_program.functions["main"].operations]
    assert any(k in ops for k in kinds), (name, ops)
    deq = list(dequantized_weights(model).values())
    assert len(deq) == 2, (name, len(deq))
    dw1, dw2 = (deq[0], deq[1]) if deq[0].shape == w1.shape else (deq[1], deq[0])
    x = rnd(2, w1.shape[1])
    y = np.maximum(x @ dw1.T, 0) @ dw2.T
    # and the compression really happened: the dequantised weights differ from FP32
    assert np.abs(dw1 - w1).max() > 0
    save(name, model, {"x": x}, {"y": y}, 1e-4,
         note=f"constexpr ops: {sorted(set(o for o in ops if o.startswith('constexpr')))}")


def compressed_all():
    w1, w2 = rnd(32, 64, lo=-0.5, hi=0.5), rnd(8, 32, lo=-0.5, hi=0.5)

    def lin(dtype, gran="per_channel", block=None):
        def f(m):
            kw = dict(mode="linear_symmetric", dtype=dtype, granularity=gran, weight_threshold=1)
            if block:
                kw["block_size"] = block
            return cto.linear_quantize_weights(
                m, cto.OptimizationConfig(global_config=cto.OpLinearQuantizerConfig(**kw)))
        return f

    def pal(nbits, gran="per_tensor", group=None):
        def f(m):
            kw = dict(mode="uniform", nbits=nbits, granularity=gran, weight_threshold=1)
            if group:
                kw["group_size"] = group
            return cto.palettize_weights(
                m, cto.OptimizationConfig(global_config=cto.OpPalettizerConfig(**kw)))
        return f

    compressed("q_int8_ios16", 16, lin("int8"), w1, w2, ["constexpr_affine_dequantize"])
    for n in (1, 2, 4, 8):
        compressed(f"pal{n}_ios16", 16, pal(n), w1, w2, ["constexpr_lut_to_dense"])
    compressed("q_int8_ios18", 18, lin("int8"), w1, w2, ["constexpr_blockwise_shift_scale"])
    compressed("q_int4_block32_ios18", 18, lin("int4", "per_block", 32), w1, w2,
               ["constexpr_blockwise_shift_scale"])
    compressed("pal3_grouped8_ios18", 18, pal(3, "per_grouped_channel", 8), w1, w2,
               ["constexpr_lut_to_dense"])
    compressed("pal6_ios18", 18, pal(6), w1, w2, ["constexpr_lut_to_dense"])


def main():
    os.makedirs(OUT, exist_ok=True)
    only = set(os.environ.get("ONLY", "").split(",")) - {""}
    steps = [elementwise, unary, softmax_norms, reductions, convs, conv_transpose, pools,
             linear_matmul, shapes, split_gather_select, upsample, pad_cumsum,
             lambda: small_cnn("small_cnn_fp32", False),
             lambda: small_cnn("small_cnn_fp16", True),
             lambda: small_cnn("small_cnn_fp16_ios18", True, target=18),
             fp16_io, compressed_all]
    for s in steps:
        if not only or s.__name__ in only:
            s()


if __name__ == "__main__":
    main()
