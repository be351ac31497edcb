#!/usr/bin/python3
"""Generate deep_resnet.onnx: a small but deep residual CNN for determinism tests.

    /usr/bin/python3 testdata/models/gen_deep.py      (writes next to itself)

Input "input" float32 [N,3,8,8] (dynamic batch "N"), output "logits" [N,10], opset 13.
A stem Conv, then 16 residual blocks of Conv-Relu-Conv + Add + Relu (8 channels), then
GlobalAveragePool, Flatten and Gemm: 33 Conv/Gemm layers and 16 Adds, so a quantizer
touches well over 30 layers, yet one inference is well under a millisecond. Weights are
seeded (numpy default_rng(7)) and scaled so activations stay in a sane range through all
blocks; the file is byte-identical on every run.
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

C, BLOCKS = 8, 16
rng = np.random.default_rng(7)
nodes, inits = [], []


def weight(name, shape, scale):
    inits.append(numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name))
    return name


def conv(name, x, cin, cout, k=3):
    w = weight(name + ".weight", (cout, cin, k, k), np.sqrt(2.0 / (cin * k * k)) * 0.5)
    b = weight(name + ".bias", (cout,), 0.1)
    nodes.append(helper.make_node("Conv", [x, w, b], [name + "_out"], name=name, pads=[k // 2] * 4))
    return name + "_out"


def relu(name, x):
    nodes.append(helper.make_node("Relu", [x], [name + "_out"], name=name))
    return name + "_out"


x = relu("stem_relu", conv("stem", "input", 3, C))
for i in range(BLOCKS):
    y = relu(f"b{i}_relu1", conv(f"b{i}_conv1", x, C, C))
    y = conv(f"b{i}_conv2", y, C, C)
    nodes.append(helper.make_node("Add", [x, y], [f"b{i}_add_out"], name=f"b{i}_add"))
    x = relu(f"b{i}_relu2", f"b{i}_add_out")
nodes.append(helper.make_node("GlobalAveragePool", [x], ["gap_out"], name="gap"))
nodes.append(helper.make_node("Flatten", ["gap_out"], ["flat_out"], name="flatten"))
wfc = weight("fc.weight", (10, C), 0.5)
bfc = weight("fc.bias", (10,), 0.1)
nodes.append(helper.make_node("Gemm", ["flat_out", wfc, bfc], ["logits"], name="fc", transB=1))

graph = helper.make_graph(
    nodes, "deep_resnet",
    [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 8, 8])],
    [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
    inits)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="fleetcal-testdata")
model.ir_version = 7
onnx.checker.check_model(model)
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "deep_resnet.onnx")
onnx.save(model, out)
print(out, sum(n.op_type in ("Conv", "Gemm") for n in nodes), "Conv/Gemm layers")
