#!/usr/bin/python3
"""Model, data and config for the fleet scaling benchmark (scripts/bench_scaling.sh).

Usage: scripts/gen_scaling_model.py WORKDIR [--size S] [--samples N]

Writes into WORKDIR:
  scaling_cnn.onnx  testdata/models/bench_cnn.onnx's topology (8 Conv3x3+Relu with 32-64
                    channels, MaxPool, GlobalAveragePool, Flatten, Gemm -> logits [1,10]) at
                    input [1,3,S,S] (default S=112: about 3x bench_cnn's per-sample time);
                    random weights, seeded, opset 13.
  calib/NNNNN.npy   N (default 1024) float32 samples [1,3,S,S], N(0,1), seeded.
  config.json       MinMaxQuantization (no bias correction), stat_subset_size N, so the
                    calibration run is one statistics pass over the N samples.
Needs Debian's python3-onnx and python3-numpy. Deterministic: same inputs, same bytes.
"""

import argparse
import json
import os
import sys

try:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
except ImportError:
    if os.path.exists("/usr/bin/python3") and os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    raise


def build(size):
    rng = np.random.RandomState(64)
    nodes, inits = [], []
    count = {}

    def uniq(p):
        n = count.get(p, 0)
        count[p] = n + 1
        return "%s_%d" % (p, n)

    def weight(name, arr):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def node(op, ins, **attrs):
        name = uniq(op.lower())
        nodes.append(helper.make_node(op, ins, [name + "_out"], name=name, **attrs))
        return name + "_out"

    def conv(x, cin, cout):
        name = uniq("conv")
        w = (rng.randn(cout, cin, 3, 3) * np.sqrt(2.0 / (cin * 9))).astype(np.float32)
        b = (rng.randn(cout) * 0.1).astype(np.float32)
        nodes.append(helper.make_node("Conv", [x, weight(name + ".weight", w), weight(name + ".bias", b)],
                                      [name + "_out"], name=name, kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                                      strides=[1, 1]))
        return name + "_out"

    x = "input"
    for c in [(3, 32), (32, 32), (32, 32), None, (32, 64), (64, 64), (64, 64), (64, 64), (64, 64)]:
        if c is None:
            x = node("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
            continue
        x = node("Relu", [conv(x, c[0], c[1])])
    x = node("GlobalAveragePool", [x])
    x = node("Flatten", [x], axis=1)
    w = (rng.randn(10, 64) * np.sqrt(1.0 / 64)).astype(np.float32)
    b = (rng.randn(10) * 0.1).astype(np.float32)
    nodes.append(helper.make_node("Gemm", [x, weight("gemm.weight", w), weight("gemm.bias", b)], ["logits"],
                                  name="gemm", transB=1))
    graph = helper.make_graph(nodes, "scaling_cnn",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, size, size])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
                              initializer=inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="fleetcal gen_scaling_model.py")
    m.ir_version = 7
    return m


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("workdir")
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--samples", type=int, default=1024)
    a = ap.parse_args()
    os.makedirs(os.path.join(a.workdir, "calib"), exist_ok=True)
    path = os.path.join(a.workdir, "scaling_cnn.onnx")
    onnx.save_model(build(a.size), path)
    onnx.checker.check_model(path)
    rng = np.random.default_rng(0)
    for i in range(a.samples):
        np.save(os.path.join(a.workdir, "calib", "%05d.npy" % i),
                rng.standard_normal((1, 3, a.size, a.size)).astype(np.float32))
    cfg = {
        "model": {"model_name": "scaling_cnn", "model": "scaling_cnn.onnx"},
        "engine": {"data_source": {"type": "npy", "path": "calib"}, "threads": 1},
        "compression": {"algorithms": [{"name": "MinMaxQuantization",
                                        "params": {"preset": "performance",
                                                   "stat_subset_size": a.samples}}]},
    }
    with open(os.path.join(a.workdir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    print(json.dumps({"model": path, "size": a.size, "samples": a.samples}))


if __name__ == "__main__":
    main()
