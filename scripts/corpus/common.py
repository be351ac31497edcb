"""Shared helpers of the corpus scripts: Fashion-MNIST, sample writers, configs.

Fixture tooling only: fleetcal itself never needs Python.
"""
import gzip
import hashlib
import json
import os
import struct

import numpy as np

FMNIST_DIR = os.environ.get("FMNIST_DIR", "/usr/share/datasets/fashion-mnist")
FMNIST_MEAN, FMNIST_STD = 0.2860, 0.3530
N_SAMPLES = 64  # calib/ and heldout/ each


def read_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic, = struct.unpack(">I", raw[:4])
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    return np.frombuffer(raw[4 + 4 * ndim:], dtype=np.uint8).reshape(dims)


def fmnist(split):
    """(images uint8 [N,28,28], labels int64 [N]) of "train" or "t10k"."""
    if not os.path.isdir(FMNIST_DIR):
        raise SystemExit(f"corpus: {FMNIST_DIR} missing: apt-get install dataset-fashion-mnist")
    x = read_idx(os.path.join(FMNIST_DIR, f"{split}-images-idx3-ubyte.gz"))
    y = read_idx(os.path.join(FMNIST_DIR, f"{split}-labels-idx1-ubyte.gz")).astype(np.int64)
    return x, y


def fmnist_norm(x_u8):
    return ((x_u8.astype(np.float32) / 255.0) - FMNIST_MEAN) / FMNIST_STD


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def write_atomic(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _save_sample(folder, i, sample):
    """sample: an ndarray (single-input model, .npy) or {input name: ndarray} (.npz)."""
    name = os.path.join(folder, f"{i:03d}")
    if isinstance(sample, dict):
        np.savez(name + ".npz", **sample)
    else:
        np.save(name + ".npy", sample)


def write_samples(outdir, calib, heldout, labels_calib=None, labels_heldout=None):
    """Writes calib/ and heldout/ (000.npy ...) and labels.json beside each when labelled."""
    for sub, samples, labels in (("calib", calib, labels_calib), ("heldout", heldout, labels_heldout)):
        d = os.path.join(outdir, sub)
        os.makedirs(d, exist_ok=True)
        for f in os.listdir(d):
            os.remove(os.path.join(d, f))
        for i, s in enumerate(samples):
            _save_sample(d, i, s)
        if labels is not None:
            with open(os.path.join(outdir, f"labels-{sub}.json"), "w") as f:
                json.dump({f"{i:03d}": int(l) for i, l in enumerate(labels)}, f, indent=0, sort_keys=True)


def write_configs(outdir, name, model_file="model.onnx", weights=None, labelled=False,
                  transformer=False, stat_subset_size=N_SAMPLES):
    """config.json (calibrate and evaluate on calib/) and heldout.json (evaluate on heldout/)."""
    for cfg_name, sub in (("config.json", "calib"), ("heldout.json", "heldout")):
        model = {"model_name": name, "model": model_file}
        if weights:
            model["weights"] = weights
        engine = {"type": "onnxruntime", "data_source": {"type": "npy", "path": sub + "/"}, "threads": 1}
        if labelled:
            engine["annotations"] = {"path": f"labels-{sub}.json"}
            engine["metric"] = {"name": "accuracy", "top_k": 1}
        params = {"preset": "performance", "stat_subset_size": stat_subset_size}
        if transformer:
            params["model_type"] = "transformer"
        cfg = {"model": model, "engine": engine,
               "compression": {"target_device": "CPU",
                               "algorithms": [{"name": "DefaultQuantization", "params": params}]}}
        with open(os.path.join(outdir, cfg_name), "w") as f:
            json.dump(cfg, f, indent=2)
            f.write("\n")


# ---- realistic synthetic inputs -------------------------------------------------------

def _blur(img, k):
    """Box blur of [..., H, W] k times with a 5-tap kernel (cheap smoothed noise)."""
    for _ in range(k):
        img = (np.roll(img, 1, -1) + np.roll(img, -1, -1) + np.roll(img, 2, -1) + np.roll(img, -2, -1) + img) / 5
        img = (np.roll(img, 1, -2) + np.roll(img, -1, -2) + np.roll(img, 2, -2) + np.roll(img, -2, -2) + img) / 5
    return img


def natural_images(n, h, w, seed, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
                   split="t10k", offset=0):
    """n RGB images [n,3,h,w] float32, ImageNet-normalized: a Fashion-MNIST object
    (bilinear-upsampled, tinted) on a smoothed-noise background. Pixel values in [0,1]
    before normalization, smooth, with edges: close enough to photos for activation
    statistics."""
    import torch
    import torch.nn.functional as F
    rng = np.random.default_rng(seed)
    x, _ = fmnist(split)
    obj = torch.from_numpy(x[offset:offset + n].astype(np.float32) / 255.0)[:, None]
    side = int(min(h, w) * rng.uniform(0.6, 0.95))
    obj = F.interpolate(obj, size=(side, side), mode="bilinear", align_corners=False).numpy()
    bg = _blur(rng.standard_normal((n, 3, h // 4 + 1, w // 4 + 1)).astype(np.float32), 2)
    bg = F.interpolate(torch.from_numpy(bg), size=(h, w), mode="bilinear", align_corners=False).numpy()
    bg = 0.5 + 0.6 * bg / (np.abs(bg).max(axis=(1, 2, 3), keepdims=True) + 1e-6) * 0.5
    out = bg.copy()
    for i in range(n):
        tint = rng.uniform(0.2, 1.0, size=3).astype(np.float32)
        y0 = rng.integers(0, h - side + 1)
        x0 = rng.integers(0, w - side + 1)
        a = obj[i, 0]
        for c in range(3):
            region = out[i, c, y0:y0 + side, x0:x0 + side]
            out[i, c, y0:y0 + side, x0:x0 + side] = region * (1 - a) + a * tint[c]
    out += rng.normal(0, 0.02, size=out.shape).astype(np.float32)
    out = np.clip(out, 0, 1)
    m = np.array(mean, np.float32)[None, :, None, None]
    s = np.array(std, np.float32)[None, :, None, None]
    return ((out - m) / s).astype(np.float32)


def audio_chunks(n, length, seed, sr=16000):
    """n float32 [length] chunks at sr, in [-1,1]: voiced-like harmonic tones with
    formant-ish amplitude envelopes, fricative noise bursts and near-silence, mixed."""
    rng = np.random.default_rng(seed)
    t = np.arange(length, dtype=np.float64) / sr
    out = np.zeros((n, length), np.float32)
    for i in range(n):
        kind = i % 4
        noise = rng.normal(0, 0.003, length)
        if kind == 3:  # near silence / room noise
            sig = noise
        elif kind == 2:  # fricative: band-limited noise burst
            sig = np.convolve(rng.normal(0, 0.15, length), np.ones(3) / 3, mode="same")
            env = np.exp(-((t - t.mean()) ** 2) / (2 * (t[-1] / 4) ** 2))
            sig = sig * env + noise
        else:  # voiced: f0 with vibrato and decaying harmonics
            f0 = rng.uniform(90, 260)
            ph = 2 * np.pi * np.cumsum(f0 * (1 + 0.02 * np.sin(2 * np.pi * 5 * t))) / sr
            sig = sum((0.6 / k) * np.sin(k * ph + rng.uniform(0, 6.3)) for k in range(1, 12))
            sig = sig * rng.uniform(0.1, 0.5) * (0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(2, 6) * t)) + noise
        out[i] = np.clip(sig, -1, 1)
    return out
