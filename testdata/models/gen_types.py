#!/usr/bin/env python3
"""Generate the exporter-like fixtures for type inference and quantization of
models with shape arithmetic.

Run from the repository root:

    python3 testdata/models/gen_types.py

(on Debian, use /usr/bin/python3 if another python3 shadows the system one:
the script needs the python3-onnx and python3-numpy packages.)

Both files are written next to this script, deterministically (fixed seed),
and pass onnx.checker.check_model(full_check=True).

  shape_arith_op11.onnx   opset 11 (Unsqueeze axes as an attribute)
  shape_arith_op13.onnx   opset 13 (Unsqueeze axes as an input)

The graph, with one float input "x" [1,3,8,8], imitates what paddle2onnx,
torch.onnx and tf2onnx emit around two quantizable Conv layers:

  conv1 = Relu(Conv(x, 8 filters 3x3, pad 1))                  FLOAT [1,8,8,8]
  s = Shape(conv1); n, c = Gather(s, 0), Gather(s, 1)          INT64
  shp = Concat(Unsqueeze(n), Unsqueeze(c), Constant [-1])      INT64 [3]
  flat = Reshape(conv1, shp)                                   FLOAT [1,8,64]
  ones = ConstantOfShape(Concat(Unsqueeze(n), Unsqueeze(c)))   FLOAT [1,8]
  scaled = Mul(flat, Unsqueeze(ones, 2))                       FLOAT [1,8,64]
  half = Cast(Mul(Cast(Gather(s, 2), FLOAT), 0.5), INT64)      INT64 scalar
  steps = Range(0, half, 1)                                    INT64 [4]  (output)
  If(Greater(Gather(s, 2), 4)): then Relu(scaled), else Neg(scaled)
  fp16 island: Cast(if_out, FLOAT16) -> Mul(fp16 2.0) -> Cast(FLOAT)
  gelu = com.microsoft Gelu(...)                                (type unknown to ONNX)
  conv2 = Conv(Reshape(gelu, Shape(conv1)), 4 filters 3x3)      FLOAT [1,4,8,8]
  s2 = Shape(conv2); w = Where(Equal(s2, 1), 1, s2)             INT64 [4]
  y = Reshape(conv2, w)                                         FLOAT [1,4,8,8] (output)
  nonzero = NonZero(Greater(conv2, 0))                          INT64 [4,?] (output)
  topk_values, topk_indices = TopK(Flatten(conv2), 5)           FLOAT/INT64 [1,5] (outputs)
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
PRODUCER = "fleetcal-testdata"


def shape_arith(opset):
    rng = np.random.RandomState(11 + opset)
    inits = []
    nodes = []

    def init(name, arr):
        inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def node(op, ins, outs, domain=None, **attrs):
        nodes.append(helper.make_node(op, ins, outs, name=outs[0] + "_node", domain=domain, **attrs))
        return outs[0]

    def unsqueeze(x, axis, out):
        if opset >= 13:
            return node("Unsqueeze", [x, init(out + "_axes", np.array([axis], np.int64))], [out])
        return node("Unsqueeze", [x], [out], axes=[axis])

    init("conv1.weight", (rng.randn(8, 3, 3, 3) * 0.3).astype(np.float32))
    init("conv1.bias", (rng.randn(8) * 0.1).astype(np.float32))
    init("conv2.weight", (rng.randn(4, 8, 3, 3) * 0.2).astype(np.float32))
    init("conv2.bias", (rng.randn(4) * 0.1).astype(np.float32))
    for i in range(3):
        init("idx%d" % i, np.array(i, np.int64))
    init("four", np.array(4, np.int64))
    init("zero", np.array(0, np.int64))
    init("one", np.array(1, np.int64))
    init("ones4", np.ones(4, np.int64))
    init("half_f", np.array(0.5, np.float32))
    init("two_f16", np.array(2.0, np.float16))
    init("k", np.array([5], np.int64))

    node("Conv", ["x", "conv1.weight", "conv1.bias"], ["conv1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    node("Relu", ["conv1"], ["relu1"])
    # Shape arithmetic.
    node("Shape", ["relu1"], ["s"])
    node("Gather", ["s", "idx0"], ["n"], axis=0)
    node("Gather", ["s", "idx1"], ["c"], axis=0)
    node("Gather", ["s", "idx2"], ["h"], axis=0)
    unsqueeze("n", 0, "n_1d")
    unsqueeze("c", 0, "c_1d")
    node("Constant", [], ["minus_one"], value=helper.make_tensor("minus_one", TensorProto.INT64, [1], [-1]))
    node("Concat", ["n_1d", "c_1d", "minus_one"], ["flat_shape"], axis=0)
    node("Reshape", ["relu1", "flat_shape"], ["flat"])
    node("Concat", ["n_1d", "c_1d"], ["nc"], axis=0)
    node("ConstantOfShape", ["nc"], ["ones"], value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0]))
    unsqueeze("ones", 2, "ones_3d")
    node("Mul", ["flat", "ones_3d"], ["scaled"])
    # Cast to float and back to int64, then Range.
    node("Cast", ["h"], ["h_f"], to=TensorProto.FLOAT)
    node("Mul", ["h_f", "half_f"], ["half_hf"])
    node("Cast", ["half_hf"], ["half_h"], to=TensorProto.INT64)
    node("Range", ["zero", "half_h", "one"], ["steps"])
    # If with two branches using the outer scope.
    node("Greater", ["h", "four"], ["cond"])
    then_g = helper.make_graph(
        [helper.make_node("Relu", ["scaled"], ["then_out"], name="then_relu")], "then",
        [], [helper.make_tensor_value_info("then_out", TensorProto.FLOAT, None)])
    else_g = helper.make_graph(
        [helper.make_node("Neg", ["scaled"], ["else_out"], name="else_neg")], "else",
        [], [helper.make_tensor_value_info("else_out", TensorProto.FLOAT, None)])
    node("If", ["cond"], ["if_out"], then_branch=then_g, else_branch=else_g)
    # float16 island.
    node("Cast", ["if_out"], ["h16"], to=TensorProto.FLOAT16)
    node("Mul", ["h16", "two_f16"], ["m16"])
    node("Cast", ["m16"], ["m32"], to=TensorProto.FLOAT)
    # A contrib operator ONNX does not know.
    node("Gelu", ["m32"], ["gelu"], domain="com.microsoft")
    node("Reshape", ["gelu", "s"], ["back"])
    node("Conv", ["back", "conv2.weight", "conv2.bias"], ["conv2"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    # Equal/Where on a shape.
    node("Shape", ["conv2"], ["s2"])
    node("Equal", ["s2", "ones4"], ["is_one"])
    node("Where", ["is_one", "ones4", "s2"], ["s2w"])
    node("Reshape", ["conv2", "s2w"], ["y"])
    # NonZero, TopK.
    node("Greater", ["conv2", "zero_f"], ["positive"])
    init("zero_f", np.array(0.0, np.float32))
    node("NonZero", ["positive"], ["nonzero"])
    node("Flatten", ["conv2"], ["conv2_flat"], axis=1)
    nodes.append(helper.make_node("TopK", ["conv2_flat", "k"], ["topk_values", "topk_indices"], name="topk", axis=-1))

    graph = helper.make_graph(
        nodes, "shape_arith_op%d" % opset,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8]),
            helper.make_tensor_value_info("topk_values", TensorProto.FLOAT, [1, 5]),
            helper.make_tensor_value_info("topk_indices", TensorProto.INT64, [1, 5]),
            helper.make_tensor_value_info("nonzero", TensorProto.INT64, [4, None]),
            helper.make_tensor_value_info("steps", TensorProto.INT64, [None]),
        ],
        initializer=inits)
    m = helper.make_model(graph, producer_name=PRODUCER, opset_imports=[
        helper.make_opsetid("", opset), helper.make_opsetid("com.microsoft", 1)])
    m.ir_version = 7 if opset >= 13 else 6
    return m


def main():
    for opset in (11, 13):
        m = shape_arith(opset)
        onnx.checker.check_model(m, full_check=True)
        path = os.path.join(HERE, "shape_arith_op%d.onnx" % opset)
        with open(path, "wb") as f:
            f.write(m.SerializeToString())
        print(path, os.path.getsize(path), "bytes")


if __name__ == "__main__":
    main()
