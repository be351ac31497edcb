#!/usr/bin/env python3
"""Generate sensitive_cnn.onnx and its labelled data: a conv net that
DefaultQuantization breaks and AccuracyAwareQuantization repairs.

Run from the repository root with Debian's python3 (python3-onnx,
python3-numpy):

    /usr/bin/python3 algorithms/accuracyaware/testdata/gen_sensitive_cnn.py
        writes sensitive_cnn.onnx and sensitive_cnn_data/ (64 samples,
        labels.json) next to this script
    /usr/bin/python3 algorithms/accuracyaware/testdata/gen_sensitive_cnn.py --data DIR --n 500
        writes a larger data set (same model, other samples) to DIR

Everything is deterministic (fixed seeds): two runs give byte-identical
files.

The network. x [1,3,32,32] (pixel values 0..255, stored as uint8 .npy files,
cast to float32 by the config's data_source.dtype) goes through nine 3x3
Conv+Relu layers, then GlobalAveragePool, Flatten and a Gemm to 10 logits:

    conv_0  3->32 32x32       conv_5 64->64 /2 16x16 (channel 63: massive)
    conv_1 32->64 32x32       conv_6 64->64    16x16 <- the sensitive layer
    conv_2 64->64 32x32       conv_7 64->64 /2  8x8
    conv_3 64->64 32x32       conv_8 64->64     8x8
    conv_4 64->64 32x32       GlobalAveragePool -> Flatten -> fc (Gemm 64->10)

About 310 MFLOP per sample: a few milliseconds in FP32 with one ONNX Runtime
thread, so the integer kernels (QLinearConv) are measurably faster. The
weights are random (He), each layer rescaled on data so its channels have
zero mean and unit variance before the Relu (batch normalization folded in,
as in a trained net); the classifier is a ridge regression on the pooled
features of a separate training set.

The task is structured: 10 classes, each a colour and a smooth pattern (a
2-D sinusoid per channel, of a frequency proper to the class); a sample is
its class pattern, shifted by up to 4 pixels, with a random contrast and
Gaussian noise, as pixels 0..255. A
sample's label is its class. Only samples that the FP32 model classifies
right with a top-2 logit margin of at least MARGIN (the ridge targets are
+1 and -1) are kept, so the FP32 accuracy is 100% and the 8-bit rounding of
well-behaved layers flips no label (main() checks it on a numpy simulation
of the quantizer: 100% with every layer but conv_6 quantized; with a margin
of 0.5 a few labels flipped). The model is not equally confident on every
class, so the kept set is unbalanced (main() prints the label counts;
classes 3 and 5 are rare or absent): a constant guess scores about 25%.

Why conv_6 is sensitive. Channel 63 of conv_5's output is a "massive
activation": 1000 plus a unit-variance signal for every input, as reported
in large language models and vision transformers (Sun et al., "Massive
Activations in Large Language Models", 2024). conv_6 reads it with a tiny weight (0.002 at
the kernel's centre, which never falls on the zero padding) and its bias
cancels it, so in float the channel changes nothing. But conv_5's Relu
output is conv_6's input, and an activation is quantized per tensor: its
8-bit grid must span [0, 1000], a step of 1000/255 = 3.9, while the 63
informative channels live in [0, ~4] (unit variance). They collapse to 0 or
one step and most of the class information is lost: accuracy drops far
more than 2 points with DefaultQuantization, whatever the preset (the range
is [0, 1000] either way) and bias correction (it fixes a mean shift, not
lost information). Keeping conv_6 in float (its input then is not
quantized) restores the model; every other layer quantizes with a
negligible error, so AccuracyAwareQuantization should rank conv_6 first and
revert only it, leaving the other layers in INT8. conv_6 is one of the
cheap layers (16x16, 6% of the FLOPs), so the result stays much faster
than FP32.
"""

import argparse
import collections
import json
import os
import sys

try:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
except ImportError:
    # Another python3 (pyenv, venv) shadows Debian's, which has python3-onnx.
    if os.path.exists("/usr/bin/python3") and os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    raise

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = os.path.join(HERE, "sensitive_cnn.onnx")
DATA = os.path.join(HERE, "sensitive_cnn_data")

CLASSES, SIZE = 10, 32
# (in, out, stride) of conv_0..conv_8.
CONVS = [(3, 32, 1), (32, 64, 1), (64, 64, 1), (64, 64, 1), (64, 64, 1),
         (64, 64, 2), (64, 64, 1), (64, 64, 2), (64, 64, 1)]
SENSITIVE = 6            # conv_6 reads the massive channel
MASSIVE, MASSIVE_CH, MASSIVE_W = 1000.0, 63, 0.002
MARGIN = 1.0             # top-2 logit margin a kept sample has in FP32
SHIFT, NOISE = 4, 0.3


def templates(rng):
    """Per class: a colour (a random offset per channel) and, per channel,
    a 2-D sinusoid of the class's frequency (1 + 0.6 c cycles per image)
    with a random orientation and phase."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    t = np.zeros((CLASSES, 3, SIZE, SIZE))
    for c in range(CLASSES):
        color = rng.randn(3) * 0.5
        f = 1 + 0.6 * c
        for ch in range(3):
            a, p = rng.uniform(0, np.pi), rng.uniform(0, 2 * np.pi)
            t[c, ch] = np.sin(2 * np.pi * f * (np.cos(a) * xx + np.sin(a) * yy) + p) + color[ch]
    return t


def samples(rng, tmpl, n):
    """n samples (uint8 [n,3,32,32]) and their classes."""
    y = rng.randint(0, CLASSES, n)
    x = np.empty((n, 3, SIZE, SIZE))
    for i in range(n):
        dy, dx = rng.randint(-SHIFT, SHIFT + 1, 2)
        x[i] = np.roll(tmpl[y[i]], (dy, dx), axis=(1, 2)) * rng.uniform(0.6, 1.4)
    x += rng.randn(*x.shape) * NOISE
    return np.clip(np.round(128 + 40 * x), 0, 255).astype(np.uint8), y


def conv(x, w, b, stride):
    """3x3 convolution, padding 1: x [n,c,h,w], w [o,c,3,3] (im2col, one
    matrix product)."""
    n, c, h, wd = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    ho, wo = (h - 1) // stride + 1, (wd - 1) // stride + 1
    cols = np.empty((n, ho, wo, c, 3, 3), dtype=x.dtype)
    for i in range(3):
        for j in range(3):
            cols[..., i, j] = xp[:, :, i:i + stride * ho:stride, j:j + stride * wo:stride].transpose(0, 2, 3, 1)
    out = cols.reshape(n * ho * wo, c * 9) @ w.reshape(len(w), -1).T.astype(x.dtype) + b.astype(x.dtype)
    return out.reshape(n, ho, wo, -1).transpose(0, 3, 1, 2)


def fake_quant_act(x, hi):
    """uint8 per-tensor activation with range [0, hi] (inputs are >= 0)."""
    s = hi / 255
    return np.clip(np.round(x / s), 0, 255) * s


def fake_quant_weight(w):
    """int8 per-output-channel symmetric weights."""
    s = np.abs(w.reshape(w.shape[0], -1)).max(axis=1) / 127
    s = np.where(s == 0, 1, s).reshape((-1,) + (1,) * (w.ndim - 1))
    return np.round(w / s) * s


def forward(params, x, quantized=(), ranges=None, collect=None):
    """numpy reference of the model on float32 x. Layers in quantized (0..8
    for convs, 9 for fc) get fleetcal's performance preset, approximately:
    per-channel int8 weights and a uint8 input whose range is ranges[layer]
    (the mean over samples of the per-sample maximum). collect, a dict,
    receives each layer's per-sample input maxima."""
    convs, (fw, fb) = params
    h = x.astype(np.float32)
    for i, (w, b, stride) in enumerate(convs):
        if collect is not None:
            collect.setdefault(i, []).append(h.reshape(len(h), -1).max(axis=1))
        if i in quantized:
            h, w = fake_quant_act(h, ranges[i]), fake_quant_weight(w)
        h = np.maximum(conv(h, w, b, stride), 0)
    g = h.mean(axis=(2, 3))
    if collect is not None:
        collect.setdefault(len(convs), []).append(g.max(axis=1))
    if len(convs) in quantized:
        g, fw = fake_quant_act(g, ranges[len(convs)]), fake_quant_weight(fw)
    return g @ fw.T + fb


def batched(f, x, n=16):
    return np.concatenate([f(x[i:i + n]) for i in range(0, len(x), n)])


def network(rng, calib):
    """The weights: He init, each layer normalized on calib."""
    convs = []
    h = calib.astype(np.float32)
    for i, (cin, cout, stride) in enumerate(CONVS):
        w = rng.randn(cout, cin, 3, 3) * np.sqrt(2 / (cin * 9))
        b = np.zeros(cout)
        if i == SENSITIVE:
            w[:, MASSIVE_CH] = 0  # the massive channel is added below
        z = conv(h, w, b, stride)
        mu, sd = z.mean(axis=(0, 2, 3), dtype=np.float64), z.std(axis=(0, 2, 3), dtype=np.float64)
        w, b = w / sd[:, None, None, None], -mu / sd
        if i == SENSITIVE - 1:
            # The massive channel: 1000 plus a unit-variance signal. (Its
            # weights keep their size: with tiny weights the int32 bias
            # 1000 / (input scale x weight scale) would overflow.)
            b[MASSIVE_CH] += MASSIVE
        if i == SENSITIVE:
            # Read it at the kernel's centre with a tiny weight; the bias
            # cancels it, so the layer does not depend on it in float.
            w[:, MASSIVE_CH, 1, 1] = MASSIVE_W
            b -= MASSIVE_W * MASSIVE
        convs.append((w, b, stride))
        h = np.maximum(conv(h, w, b, stride), 0)
    return convs


def features(convs, x):
    h = x.astype(np.float32)
    for w, b, stride in convs:
        h = np.maximum(conv(h, w, b, stride), 0)
    return h.mean(axis=(2, 3))


def head(feats, y):
    """Ridge regression of one-hot targets on centred pooled features."""
    mu = feats.mean(axis=0)
    f = (feats - mu).astype(np.float64)
    t = np.eye(CLASSES)[y] * 2 - 1
    w = np.linalg.solve(f.T @ f + 1e-3 * len(f) * np.eye(f.shape[1]), f.T @ t).T
    return w, -w @ mu


def build(params):
    convs, (fw, fb) = params
    nodes, inits = [], []
    h = "x"
    for i, (w, b, stride) in enumerate(convs):
        name = "conv_%d" % i
        inits += [numpy_helper.from_array(w.astype(np.float32), name + ".weight"),
                  numpy_helper.from_array(b.astype(np.float32), name + ".bias")]
        nodes.append(helper.make_node("Conv", [h, name + ".weight", name + ".bias"], [name + "_out"], name=name,
                                      kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[stride, stride]))
        nodes.append(helper.make_node("Relu", [name + "_out"], ["relu_%d_out" % i], name="relu_%d" % i))
        h = "relu_%d_out" % i
    nodes.append(helper.make_node("GlobalAveragePool", [h], ["pool_out"], name="pool"))
    nodes.append(helper.make_node("Flatten", ["pool_out"], ["flat_out"], name="flatten", axis=1))
    inits += [numpy_helper.from_array(fw.astype(np.float32), "fc.weight"),
              numpy_helper.from_array(fb.astype(np.float32), "fc.bias")]
    nodes.append(helper.make_node("Gemm", ["flat_out", "fc.weight", "fc.bias"], ["logits"], name="fc", transB=1))
    graph = helper.make_graph(
        nodes, "sensitive_cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, CLASSES])],
        initializer=inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="fleetcal gen_sensitive_cnn.py")
    m.ir_version = 7
    return m


def make():
    """The model's parameters (float32-rounded) and the class templates."""
    rng = np.random.RandomState(2025)
    tmpl = templates(rng)
    calib, _ = samples(rng, tmpl, 32)
    convs = network(rng, calib)
    train, ty = samples(rng, tmpl, 256)
    fw, fb = head(batched(lambda x: features(convs, x), train), ty)
    f32 = lambda a: a.astype(np.float32)
    return ([(f32(w), f32(b), s) for w, b, s in convs], (f32(fw), f32(fb))), tmpl


def kept(params, tmpl, seed, n):
    """n samples of the data set seed that the FP32 model classifies right
    with a margin of at least MARGIN."""
    rng = np.random.RandomState(seed)
    xs, ys = [], []
    while sum(len(x) for x in xs) < n:
        x, y = samples(rng, tmpl, 64)
        logits = batched(lambda b: forward(params, b), x)
        top = np.sort(logits, axis=1)
        ok = (np.argmax(logits, axis=1) == y) & (top[:, -1] - top[:, -2] >= MARGIN)
        xs.append(x[ok]), ys.append(y[ok])
    return np.concatenate(xs)[:n], np.concatenate(ys)[:n]


def write_data(folder, x, y):
    os.makedirs(folder, exist_ok=True)
    labels = {}
    for i in range(len(x)):
        name = "%04d" % i
        np.save(os.path.join(folder, name + ".npy"), x[i:i + 1])
        labels[name] = int(y[i])
    with open(os.path.join(folder, "labels.json"), "w") as f:
        json.dump(labels, f, indent=0, sort_keys=True)
        f.write("\n")


def check(params, x, y):
    """The quantizer simulation: every layer but conv_6 quantized keeps the
    labels; conv_6 alone (its input range spans the massive channel)
    drops accuracy by far more than 2 points."""
    coll = {}
    batched(lambda b: forward(params, b, collect=coll), x)
    ranges = {k: np.concatenate(v).mean() for k, v in coll.items()}
    layers = range(len(CONVS) + 1)

    def acc(q):
        return (np.argmax(batched(lambda b: forward(params, b, q, ranges), x), axis=1) == y).mean()
    print("labels:", dict(sorted(collections.Counter(y.tolist()).items())))
    fp, all_but, only, every = acc(()), acc([l for l in layers if l != SENSITIVE]), acc((SENSITIVE,)), acc(layers)
    print("accuracy on %d samples: FP32 %.4f, every layer but conv_%d quantized %.4f, conv_%d alone %.4f, all %.4f"
          % (len(y), fp, SENSITIVE, all_but, SENSITIVE, only, every))
    print("conv_%d input range %.1f (the massive channel), conv_%d's %.2f" % (SENSITIVE, ranges[SENSITIVE], SENSITIVE - 1, ranges[SENSITIVE - 1]))
    assert fp == 1.0 and all_but >= 0.995 and only < 0.9 and every < 0.9, (fp, all_but, only, every)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", help="write only a data set of --n samples to this folder")
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--check", action="store_true", help="with --data: also run the quantizer simulation on it")
    args = ap.parse_args()
    params, tmpl = make()
    if args.data:
        x, y = kept(params, tmpl, 2, args.n)
        write_data(args.data, x, y)
        if args.check:
            check(params, x.astype(np.float32), y)
        return
    x, y = kept(params, tmpl, 1, 64)
    check(params, x.astype(np.float32), y)
    onnx.save_model(build(params), MODEL)
    onnx.checker.check_model(MODEL)
    write_data(DATA, x, y)


if __name__ == "__main__":
    main()
