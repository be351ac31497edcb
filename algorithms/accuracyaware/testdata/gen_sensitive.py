#!/usr/bin/env python3
"""Generate sensitive_mlp.onnx, the AccuracyAwareQuantization test model.

Run from the repository root (Debian's python3 has python3-onnx and
python3-numpy):

    /usr/bin/python3 algorithms/accuracyaware/testdata/gen_sensitive.py

The output is deterministic (fixed seed): running the script twice gives a
byte-identical file.

The task. The input x [1,8] has values in [-1, 1]; the label is the index of
the largest of x[0..3]. The network computes logits [1,4] equal to x[0..3]
(up to float rounding) through five Gemm layers, so its FP32 accuracy is
100% on any data set, and 100% top-1 agreement with itself. The Go test
draws samples whose top-2 margin is at least 0.1, well above the error
8-bit quantization of the well-behaved layers causes (main() checks: 99.9%
accuracy with every layer but gemm_1 quantized).

    x ─ gemm_0+Relu ─ h0 ─ gemm_1+Relu ─ h1 ─ gemm_2+Relu ─ h2 ─ gemm_3+Relu ─ h3 ─ gemm_4 ─ logits
           [8→24]          [24→24]            [24→24]            [24→24]           [24→4]

Hidden layer i carries the signal s_i = Q_i x, rotated by a random
orthogonal 8x8 matrix Q_i, as relu(s_i) and relu(-s_i) (Relu loses nothing:
s_i is their difference), plus random "feature" channels no later layer
reads. gemm_{i+1} undoes the rotation (Q_{i+1} Q_i^T), and gemm_4 returns
x[0..3].

Why one layer is sensitive. Channel 23 of h0 is a "massive activation", a
constant 1000 (zero weights, bias 1000), as seen in large transformers and
some CNNs (Sun et al., "Massive Activations in Large Language Models",
2024): the next layer reads it with a tiny weight (0.002, its bias
compensates), so in float it is harmless. But h0 is the input of gemm_1, and
an activation is quantized per tensor: its 8-bit grid must span [0, 1000],
a step of 1000/255 = 3.9, while the informative channels h0[0:16] live in
[0, 2.9]. They collapse to 0 and the class is lost: per-tensor INT8 drops
accuracy to about chance level, with the mixed preset as with performance
(the range is [0, 1000] either way). Keeping gemm_1 in float (its input then
is not quantized) restores the model; every other layer quantizes with a
negligible error. So AccuracyAwareQuantization must rank gemm_1 first and
revert only it.
"""

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
D, H, OUTLIER, OUTLIER_W = 8, 24, 1000.0, 0.002


def orthogonal(rng, n):
    q, r = np.linalg.qr(rng.randn(n, n))
    return q * np.sign(np.diag(r))


def layers(rng):
    """Returns [(W [out,in], b [out])] for gemm_0..gemm_4 (Gemm with transB=1).

    Hidden layer i holds s_i = Q_i x as h[0:8] = relu(s_i), h[8:16] =
    relu(-s_i) (lossless: s_i = h[0:8] - h[8:16]), then features.
    """
    qs = [orthogonal(rng, D) for _ in range(4)]
    out = []
    # gemm_0: x -> h0 = [relu(Q0 x), relu(-Q0 x), 7 features, 1000].
    w = np.zeros((H, D)); b = np.zeros(H)
    w[:D], w[D:2 * D] = qs[0], -qs[0]
    w[2 * D:H - 1] = rng.randn(H - 1 - 2 * D, D) * 0.5
    b[2 * D:H - 1] = rng.rand(H - 1 - 2 * D)
    b[H - 1] = OUTLIER
    out.append((w, b))
    # gemm_1..gemm_3: h_{i-1} -> h_i = [relu(Q_i x), relu(-Q_i x), 8 features].
    for i in range(1, 4):
        w = np.zeros((H, H)); b = np.zeros(H)
        rot = qs[i] @ qs[i - 1].T
        read = np.hstack([rot, -rot])  # rot @ s_{i-1}
        w[:D, :2 * D], w[D:2 * D, :2 * D] = read, -read
        f = rng.randn(H - 2 * D, D) * 0.3
        w[2 * D:, :2 * D] = np.hstack([f, -f])
        b[2 * D:] = rng.rand(H - 2 * D)
        if i == 1:
            # Read the massive activation with a tiny weight; the bias
            # cancels it, so h1 does not depend on it in float.
            w[:2 * D, H - 1] = OUTLIER_W
            b[:2 * D] -= OUTLIER_W * OUTLIER
        out.append((w, b))
    # gemm_4: h3 -> x[0..3].
    back = qs[3].T[:4]
    w = np.zeros((4, H))
    w[:, :2 * D] = np.hstack([back, -back])
    out.append((w, np.zeros(4)))
    return [(w.astype(np.float32), b.astype(np.float32)) for w, b in out]


def forward(params, x, quantized=()):
    """numpy reference. Layers in quantized get fleetcal's performance
    preset, approximately: per-tensor int8 weights, and an 8-bit input whose
    range is the mean over samples of the per-sample absolute maximum."""
    h = x
    for i, (w, b) in enumerate(params):
        if i in quantized:
            hi = np.abs(h).max(axis=1).mean()
            s = hi / (255 if h.min() >= 0 else 127)
            h = np.clip(np.round(h / s), -128 if h.min() < 0 else 0, 255) * s
            ws = np.abs(w).max() / 127
            w = np.round(w / ws) * ws
        h = h @ w.T + b
        if i < len(params) - 1:
            h = np.maximum(h, 0)
    return h


def build(params):
    nodes, inits = [], []
    h = "x"
    for i, (w, b) in enumerate(params):
        name = "gemm_%d" % i
        inits += [numpy_helper.from_array(w, name + ".weight"), numpy_helper.from_array(b, name + ".bias")]
        out = "logits" if i == len(params) - 1 else name + "_out"
        nodes.append(helper.make_node("Gemm", [h, name + ".weight", name + ".bias"], [out], name=name, transB=1))
        if i < len(params) - 1:
            r = "relu_%d" % i
            nodes.append(helper.make_node("Relu", [out], [r + "_out"], name=r))
            h = r + "_out"
    graph = helper.make_graph(
        nodes, "sensitive_mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, D])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 4])],
        initializer=inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="fleetcal gen_sensitive.py")
    m.ir_version = 7
    return m


def main():
    params = layers(np.random.RandomState(2024))
    # Self-check on data like the Go test's (top-2 margin >= 0.1).
    rng = np.random.RandomState(7)
    x = rng.uniform(-1, 1, (4000, D)).astype(np.float32)
    top = np.sort(x[:, :4], axis=1)
    x = x[top[:, -1] - top[:, -2] >= 0.1]
    labels = np.argmax(x[:, :4], axis=1)
    fp = forward(params, x)
    assert np.abs(fp - x[:, :4]).max() < 1e-3, np.abs(fp - x[:, :4]).max()

    def acc(quantized):
        return (np.argmax(forward(params, x, quantized), 1) == labels).mean()
    all_but_1, only_1 = acc((0, 2, 3, 4)), acc((1,))
    print("accuracy: FP32 %.4f, every layer but gemm_1 quantized %.4f, gemm_1 quantized %.4f, all %.4f"
          % (acc(()), all_but_1, only_1, acc(range(5))))
    assert acc(()) == 1.0 and all_but_1 >= 0.995 and only_1 < 0.7

    path = os.path.join(HERE, "sensitive_mlp.onnx")
    onnx.save_model(build(params), path)
    onnx.checker.check_model(path)


if __name__ == "__main__":
    main()
