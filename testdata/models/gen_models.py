#!/usr/bin/env python3
"""Generate fleetcal's ONNX test fixtures.

Run from the repository root:

    python3 testdata/models/gen_models.py

(on Debian, use /usr/bin/python3 if another python3 shadows the system one:
the script needs the python3-onnx and python3-numpy packages.)

Every file is written next to this script. The output is deterministic: weights
come from numpy's RandomState with a fixed seed per model, and running the
script twice gives byte-identical files. All models except the deliberately
bad ones pass onnx.checker.check_model.

Models (all float32):
  convnet_op13.onnx       input [1,3,16,16] -> logits [1,10]; Conv+bias, unfolded
                          BatchNormalization, Relu, Conv, Relu, MaxPool, Conv, Relu,
                          GlobalAveragePool, Flatten, Gemm. Weights as initializers.
  convnet_op11.onnx       the same net at opset 11, plus Clip(min, max as inputs)
                          and an Unsqueeze/Squeeze pair with `axes` attributes.
  convnet_op9_const.onnx  the same net at opset 9, every weight in a Constant node,
                          Clip with min/max attributes, Unsqueeze/Squeeze with axes.
  convnet_dynamic.onnx    convnet_op13 with batch dimension dim_param "N".
  convnet_extdata.onnx    convnet_op13 with its weights in convnet_extdata.onnx.data.
  cascade_stage1.onnx     input [1,3,16,16] -> Conv+Relu -> features [1,8,16,16].
  cascade_stage2.onnx     features -> Conv+Relu+GlobalAveragePool+Flatten+Gemm -> logits.
  two_inputs.onnx         a [1,4], b [1,4] -> Add -> MatMul(4x3) -> y [1,3].
  bench_cnn.onnx          input [1,3,64,64], 8 Conv3x3+Relu (32-64 channels), MaxPool,
                          GlobalAveragePool, Flatten, Gemm -> logits [1,10].
  bad_domain.onnx         a valid tiny model using a node of domain com.example.unknown.
Deliberately bad files:
  truncated.onnx          the first 100 bytes of convnet_op13.onnx.
  not_onnx.onnx           a text file.
  missing_weights.onnx    an external-data model whose .data file is not shipped.
"""

import copy
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
IR_VERSION = 7
PRODUCER = "fleetcal gen_models.py"


def path(name):
    return os.path.join(HERE, name)


class Builder:
    """Builds a graph; weights become initializers or Constant nodes."""

    def __init__(self, seed, const_weights=False):
        self.rng = np.random.RandomState(seed)
        self.const_weights = const_weights
        self.nodes = []
        self.inits = []
        self.count = {}

    def uniq(self, prefix):
        n = self.count.get(prefix, 0)
        self.count[prefix] = n + 1
        return "%s_%d" % (prefix, n)

    def weight(self, name, arr):
        arr = np.ascontiguousarray(arr)
        t = numpy_helper.from_array(arr, name)
        if self.const_weights:
            self.nodes.append(helper.make_node("Constant", [], [name], name=name + "_const", value=t))
        else:
            self.inits.append(t)
        return name

    def node(self, op, inputs, n_out=1, **attrs):
        name = self.uniq(op.lower())
        outs = [name + "_out" if n_out == 1 else "%s_out%d" % (name, i) for i in range(n_out)]
        self.nodes.append(helper.make_node(op, inputs, outs, name=name, **attrs))
        return outs[0] if n_out == 1 else outs

    def rename_last_output(self, new):
        n = self.nodes[-1]
        n.output[0] = new
        return new

    def conv(self, x, cin, cout, k=3, pad=1):
        name = self.uniq("conv")
        fan_in = cin * k * k
        w = (self.rng.randn(cout, cin, k, k) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        b = (self.rng.randn(cout) * 0.1).astype(np.float32)
        wn = self.weight(name + ".weight", w)
        bn = self.weight(name + ".bias", b)
        out = name + "_out"
        self.nodes.append(
            helper.make_node(
                "Conv", [x, wn, bn], [out], name=name,
                kernel_shape=[k, k], pads=[pad, pad, pad, pad], strides=[1, 1],
            )
        )
        return out

    def batchnorm(self, x, c):
        name = self.uniq("bn")
        scale = self.rng.uniform(0.5, 1.5, c).astype(np.float32)
        bias = (self.rng.randn(c) * 0.1).astype(np.float32)
        mean = (self.rng.randn(c) * 0.1).astype(np.float32)
        var = self.rng.uniform(0.5, 1.5, c).astype(np.float32)
        ins = [x] + [self.weight(name + "." + s, a) for s, a in
                     (("scale", scale), ("bias", bias), ("mean", mean), ("var", var))]
        out = name + "_out"
        self.nodes.append(helper.make_node("BatchNormalization", ins, [out], name=name, epsilon=1e-5))
        return out

    def gemm(self, x, cin, cout):
        name = self.uniq("gemm")
        w = (self.rng.randn(cout, cin) * np.sqrt(1.0 / cin)).astype(np.float32)
        b = (self.rng.randn(cout) * 0.1).astype(np.float32)
        wn = self.weight(name + ".weight", w)
        bn = self.weight(name + ".bias", b)
        out = name + "_out"
        self.nodes.append(helper.make_node("Gemm", [x, wn, bn], [out], name=name, transB=1))
        return out


def make_model(b, name, inputs, outputs, opsets):
    graph = helper.make_graph(b.nodes, name, inputs, outputs, initializer=b.inits)
    ops = [helper.make_opsetid(d, v) for d, v in opsets]
    m = helper.make_model(graph, opset_imports=ops, producer_name=PRODUCER)
    m.ir_version = IR_VERSION
    return m


def fvi(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def convnet(opset, const_weights=False, batch=1, clip=None, squeeze=False, seed=13):
    """The shared small convnet.

    clip: None, "inputs" (min/max as inputs, opset >= 11) or "attrs" (opset < 11).
    squeeze: add an Unsqueeze/Squeeze pair with axes attributes (opset < 13).
    """
    b = Builder(seed, const_weights)
    x = b.conv("input", 3, 8)
    x = b.batchnorm(x, 8)
    x = b.node("Relu", [x])
    x = b.conv(x, 8, 8)
    x = b.node("Relu", [x])
    if clip == "inputs":
        lo = b.weight("clip_min", np.array(0.0, dtype=np.float32))
        hi = b.weight("clip_max", np.array(6.0, dtype=np.float32))
        x = b.node("Clip", [x, lo, hi])
    elif clip == "attrs":
        x = b.node("Clip", [x], min=0.0, max=6.0)
    x = b.node("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
    x = b.conv(x, 8, 16)
    x = b.node("Relu", [x])
    x = b.node("GlobalAveragePool", [x])
    x = b.node("Flatten", [x], axis=1)
    if squeeze:
        x = b.node("Unsqueeze", [x], axes=[2])
        x = b.node("Squeeze", [x], axes=[2])
    b.gemm(x, 16, 10)
    b.rename_last_output("logits")
    return make_model(
        b, "convnet",
        [fvi("input", [batch, 3, 16, 16])], [fvi("logits", [batch, 10])],
        [("", opset)],
    )


def cascade_stage1():
    b = Builder(21)
    x = b.conv("input", 3, 8)
    b.node("Relu", [x])
    b.rename_last_output("features")
    return make_model(b, "stage1", [fvi("input", [1, 3, 16, 16])], [fvi("features", [1, 8, 16, 16])], [("", 13)])


def cascade_stage2():
    b = Builder(22)
    x = b.conv("features", 8, 16)
    x = b.node("Relu", [x])
    x = b.node("GlobalAveragePool", [x])
    x = b.node("Flatten", [x], axis=1)
    b.gemm(x, 16, 10)
    b.rename_last_output("logits")
    return make_model(b, "stage2", [fvi("features", [1, 8, 16, 16])], [fvi("logits", [1, 10])], [("", 13)])


def two_inputs():
    b = Builder(4)
    x = b.node("Add", ["a", "b"])
    w = b.weight("w", b.rng.randn(4, 3).astype(np.float32))
    b.node("MatMul", [x, w])
    b.rename_last_output("y")
    return make_model(b, "two_inputs", [fvi("a", [1, 4]), fvi("b", [1, 4])], [fvi("y", [1, 3])], [("", 13)])


def bench_cnn():
    b = Builder(64)
    x = "input"
    # 3 convs at 64x64 (3->32->32->32), MaxPool, 5 convs at 32x32 (32->64->64...).
    chans = [(3, 32), (32, 32), (32, 32), None, (32, 64), (64, 64), (64, 64), (64, 64), (64, 64)]
    for c in chans:
        if c is None:
            x = b.node("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
            continue
        x = b.conv(x, c[0], c[1])
        x = b.node("Relu", [x])
    x = b.node("GlobalAveragePool", [x])
    x = b.node("Flatten", [x], axis=1)
    b.gemm(x, 64, 10)
    b.rename_last_output("logits")
    return make_model(b, "bench_cnn", [fvi("input", [1, 3, 64, 64])], [fvi("logits", [1, 10])], [("", 13)])


def bad_domain():
    b = Builder(5)
    x = b.node("Relu", ["x"])
    b.nodes.append(helper.make_node("Frobnicate", [x], ["y"], name="frob", domain="com.example.unknown"))
    return make_model(
        b, "bad_domain", [fvi("x", [1, 4])], [fvi("y", [1, 4])],
        [("", 13), ("com.example.unknown", 1)],
    )


def save(model, name):
    onnx.save_model(model, path(name))
    onnx.checker.check_model(path(name))


def save_external(model, name, check=True):
    data = name + ".data"
    # onnx appends to an existing data file: start from nothing.
    if os.path.exists(path(data)):
        os.remove(path(data))
    model = copy.deepcopy(model)
    onnx.save_model(
        model, path(name), save_as_external_data=True, all_tensors_to_one_file=True,
        location=data, size_threshold=0,
    )
    if check:
        onnx.checker.check_model(path(name))


def main():
    op13 = convnet(13)
    save(op13, "convnet_op13.onnx")
    save(convnet(11, clip="inputs", squeeze=True), "convnet_op11.onnx")
    save(convnet(9, const_weights=True, clip="attrs", squeeze=True), "convnet_op9_const.onnx")
    save(convnet(13, batch="N"), "convnet_dynamic.onnx")
    save_external(op13, "convnet_extdata.onnx")
    save(cascade_stage1(), "cascade_stage1.onnx")
    save(cascade_stage2(), "cascade_stage2.onnx")
    save(two_inputs(), "two_inputs.onnx")
    save(bench_cnn(), "bench_cnn.onnx")
    save(bad_domain(), "bad_domain.onnx")

    # Deliberately bad files.
    with open(path("convnet_op13.onnx"), "rb") as f:
        head = f.read(100)
    with open(path("truncated.onnx"), "wb") as f:
        f.write(head)
    with open(path("not_onnx.onnx"), "w") as f:
        f.write("this is not an ONNX model, just text.\n")
    save_external(two_inputs(), "missing_weights.onnx", check=False)
    os.remove(path("missing_weights.onnx.data"))


if __name__ == "__main__":
    main()
