"""Exporter-like variants of corpus models, made with python3-onnx:

  fp16 SRC OUTDIR      float initializers stored as FLOAT16, each followed by a Cast to
                       FLOAT (what onnxconverter-common's float16 conversion with
                       keep_io_types=True leaves around weights); graph inputs/outputs stay
                       float32
  extdata SRC OUTDIR   onnx.save(save_as_external_data=True): tensors over 1 KiB in
                       model.onnx.data beside model.onnx

The source model's calib/, heldout/ and labels are copied; configs are rewritten.
"""
import json
import os
import shutil
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def to_fp16(m):
    g = m.graph
    casts = []
    rename = {}
    for init in g.initializer:
        if init.data_type != TensorProto.FLOAT:
            continue
        arr = numpy_helper.to_array(init)
        if arr.size < 16:  # scalars and shape-like constants stay float (as the converter's op block list leaves them)
            continue
        half = numpy_helper.from_array(arr.astype(np.float16), init.name + "_fp16")
        init.CopyFrom(half)
        out = init.name[:-len("_fp16")]
        rename[init.name] = out
        casts.append(helper.make_node("Cast", [init.name], [out], name=out + "_cast", to=TensorProto.FLOAT))
    # the Cast outputs keep the old names, so consumers are unchanged; drop any graph
    # input entries of old initializer names (IR < 4 exports list them)
    keep = [i for i in g.input if i.name not in rename.values()]
    del g.input[:]
    g.input.extend(keep)
    nodes = casts + list(g.node)
    del g.node[:]
    g.node.extend(nodes)
    vi = [v for v in g.value_info if v.name not in rename.values()]
    del g.value_info[:]
    g.value_info.extend(vi)
    m.producer_name = "onnxconverter-common-like (fleetcal corpus variants.py)"
    return m


def main():
    kind, src, outdir = sys.argv[1:4]
    src_model = os.path.join(src, "model.onnx")
    os.makedirs(outdir, exist_ok=True)
    for sub in ("calib", "heldout"):
        if os.path.isdir(os.path.join(outdir, sub)):
            shutil.rmtree(os.path.join(outdir, sub))
        shutil.copytree(os.path.join(src, sub), os.path.join(outdir, sub))
    labelled = False
    for f in ("labels-calib.json", "labels-heldout.json"):
        if os.path.exists(os.path.join(src, f)):
            shutil.copyfile(os.path.join(src, f), os.path.join(outdir, f))
            labelled = True
    src_cfg = json.load(open(os.path.join(src, "config.json")))
    transformer = "model_type" in json.dumps(src_cfg)
    name = os.path.basename(os.path.normpath(outdir))
    path = os.path.join(outdir, "model.onnx")
    m = onnx.load(src_model)
    if kind == "fp16":
        m = to_fp16(m)
        onnx.checker.check_model(m)
        onnx.save(m, path + ".tmp")
        os.replace(path + ".tmp", path)
        common.write_configs(outdir, name, labelled=labelled, transformer=transformer)
    elif kind == "extdata":
        for f in ("model.onnx", "model.onnx.data"):
            if os.path.exists(os.path.join(outdir, f)):
                os.remove(os.path.join(outdir, f))
        onnx.save(m, path, save_as_external_data=True, all_tensors_to_one_file=True,
                  location="model.onnx.data", size_threshold=1024, convert_attribute=False)
        onnx.checker.check_model(path)
        common.write_configs(outdir, name, weights="model.onnx.data", labelled=labelled, transformer=transformer)
    else:
        raise SystemExit(f"variants: unknown kind {kind}; valid: fp16, extdata")


if __name__ == "__main__":
    main()
