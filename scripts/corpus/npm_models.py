"""Lays out a model shipped inside an npm package (already extracted by build.sh):
copies (or, for imgly's chunked resources, reassembles) the .onnx file into OUTDIR and
writes calib/, heldout/ and the fleetcal configs.

usage: npm_models.py NAME PACKAGE_DIR OUTDIR
"""
import json
import os
import shutil
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

N = common.N_SAMPLES


def images(shape, mean, std, n=N):
    c, h, w = shape
    calib = common.natural_images(n, h, w, seed=1, mean=mean, std=std, offset=0)
    held = common.natural_images(n, h, w, seed=2, mean=mean, std=std, offset=n)
    return [calib[i:i + 1] for i in range(n)], [held[i:i + 1] for i in range(n)]


def vad(chunk, state_shapes):
    """Each sample is a first chunk of a 16 kHz stream: audio-like signal, zero state."""
    out = []
    for seed in (1, 2):
        a = common.audio_chunks(N, chunk, seed)
        samples = []
        for i in range(N):
            s = {"input": a[i:i + 1], "sr": np.array(16000, dtype=np.int64)}
            for k, shp in state_shapes.items():
                s[k] = np.zeros(shp, np.float32)
            samples.append(s)
        out.append(samples)
    return out


# name -> (path inside the package, sample maker)
MODELS = {
    # PaddleOCR v4 detector (DB): ImageNet normalization, H and W multiples of 32
    "ppocr_det": ("package/assets/ch_PP-OCRv4_det_infer.onnx",
                  lambda: images((3, 128, 128), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))),
    # PaddleOCR v4 recognizer (SVTR-LCNet + CTC): height 48, (x - 0.5) / 0.5
    "ppocr_rec": ("package/assets/ch_PP-OCRv4_rec_infer.onnx",
                  lambda: images((3, 48, 160), (0.5,) * 3, (0.5,) * 3)),
    # PaddleOCR mobile v2.0 text-direction classifier: 3x48x192, (x - 0.5) / 0.5
    "ppocr_cls": ("package/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx",
                  lambda: images((3, 48, 192), (0.5,) * 3, (0.5,) * 3)),
    # silero VAD v4 (torch 1.12 export, opset 16, If over the sample rate, LSTM state h/c)
    "silero_vad_v4": ("package/dist/silero_vad.onnx",
                      lambda: vad(1536, {"h": (2, 1, 64), "c": (2, 1, 64)})),
    # silero VAD v5 (spox export, opset 16, If over the sample rate, state [2,1,128])
    "silero_vad_v5": ("package/dist/silero_vad_v5.onnx",
                      lambda: vad(512, {"state": (2, 1, 128)})),
    # IS-Net background removal, float16 weights with Cast nodes (torch 2.0.1 export);
    # 1024x1024 input: 16 samples each, not 64 (one inference is seconds on one core)
    "isnet_fp16": ("package/dist/resources.json#/models/medium",
                   lambda: images((3, 1024, 1024), (0.5,) * 3, (1.0,) * 3, n=16)),
}


def copy_model(pkg, inner, dst):
    if "#" not in inner:
        shutil.copyfile(os.path.join(pkg, inner), dst + ".tmp")
    else:  # imgly: a resource is a list of content-addressed chunks
        index, key = inner.split("#")
        res = json.load(open(os.path.join(pkg, index)))[key]
        with open(dst + ".tmp", "wb") as out:
            for ch in res["chunks"]:
                with open(os.path.join(pkg, os.path.dirname(index), ch["hash"]), "rb") as f:
                    out.write(f.read())
        if os.path.getsize(dst + ".tmp") != res["size"]:
            raise SystemExit(f"npm_models: {key}: reassembled {os.path.getsize(dst + '.tmp')} bytes, want {res['size']}")
    os.replace(dst + ".tmp", dst)


def main():
    name, pkg, outdir = sys.argv[1:4]
    if name not in MODELS:
        raise SystemExit(f"npm_models: unknown model {name}; valid: {', '.join(MODELS)}")
    inner, maker = MODELS[name]
    os.makedirs(outdir, exist_ok=True)
    copy_model(pkg, inner, os.path.join(outdir, "model.onnx"))
    calib, held = maker()
    common.write_samples(outdir, calib, held)
    common.write_configs(outdir, name, stat_subset_size=len(calib))


if __name__ == "__main__":
    main()
