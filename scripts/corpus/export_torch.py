"""Exports untrained torchvision / torch.nn architectures with torch.onnx.export, after
calibrating their BatchNorm statistics on natural-ish images (random-init BN makes
activations degenerate); writes calib/, heldout/ and the fleetcal configs.

usage: export_torch.py NAME OUTDIR      NAME: one of MODELS below
Deterministic: one thread, fixed seeds, torch.use_deterministic_algorithms(True).
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)


class SegOut(nn.Module):
    """torchvision segmentation models return {"out": ...}: export the tensor."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        return self.m(x)["out"]


class TinyUNet(nn.Module):
    """A 3-level U-Net: Conv-BN-ReLU encoder, MaxPool, ConvTranspose upsampling, Concat
    skips, a 1x1 mask head with Sigmoid (a segmenter's decoder as exporters emit it)."""

    def __init__(self, c=16, classes=2):
        super().__init__()

        def block(i, o):
            return nn.Sequential(nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True),
                                 nn.Conv2d(o, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True))
        self.e1, self.e2, self.e3 = block(3, c), block(c, 2 * c), block(2 * c, 4 * c)
        self.pool = nn.MaxPool2d(2)
        self.u2 = nn.ConvTranspose2d(4 * c, 2 * c, 2, stride=2)
        self.d2 = block(4 * c, 2 * c)
        self.u1 = nn.ConvTranspose2d(2 * c, c, 2, stride=2)
        self.d1 = block(2 * c, c)
        self.head = nn.Conv2d(c, classes, 1)

    def forward(self, x):
        x1 = self.e1(x)
        x2 = self.e2(self.pool(x1))
        x3 = self.e3(self.pool(x2))
        y = self.d2(torch.cat([self.u2(x3), x2], 1))
        y = self.d1(torch.cat([self.u1(y), x1], 1))
        return torch.sigmoid(self.head(y))


class Encoder(nn.Module):
    """BERT-style: nn.TransformerEncoder (post-norm, GELU) over token embeddings, then a
    final LayerNorm; input [batch, tokens, 64]."""

    def __init__(self, d=64, heads=4, layers=3):
        super().__init__()
        layer = nn.TransformerEncoderLayer(d, heads, dim_feedforward=4 * d, dropout=0.0,
                                           activation="gelu", batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)

    def forward(self, x):
        return self.norm(self.encoder(x))


IMG = "images"
# name -> (constructor, opset, input shape without batch, input kind, output name)
MODELS = {
    "resnet18": (lambda: torchvision.models.resnet18(num_classes=1000), 9, (3, 64, 64), IMG, "logits"),
    "shufflenet_v2_x0_5": (lambda: torchvision.models.shufflenet_v2_x0_5(num_classes=1000), 11, (3, 64, 64), IMG, "logits"),
    "efficientnet_b0": (lambda: torchvision.models.efficientnet_b0(num_classes=1000), 13, (3, 64, 64), IMG, "logits"),
    "lraspp_mobilenet_v3_large": (lambda: SegOut(torchvision.models.segmentation.lraspp_mobilenet_v3_large(
        weights=None, weights_backbone=None, num_classes=21)), 17, (3, 96, 96), IMG, "out"),
    "unet_convtranspose": (TinyUNet, 11, (3, 64, 64), IMG, "mask"),
    "encoder_opset13": (Encoder, 13, (32, 64), "tokens", "hidden"),
}


def token_embeddings(n, tokens, d, seed):
    """Sequences of embeddings as an embedding layer hands them to an encoder: rows of a
    fixed N(0,1)/sqrt-scaled table picked by Zipf-distributed token ids, plus sinusoidal
    positions."""
    table = np.random.default_rng(1234).standard_normal((2000, d)).astype(np.float32)
    rng = np.random.default_rng(seed)
    ids = np.minimum(rng.zipf(1.3, size=(n, tokens)), 2000) - 1
    pos = np.arange(tokens)[:, None] / np.power(10000, np.arange(0, d, 2)[None] / d)
    pe = np.zeros((tokens, d), np.float32)
    pe[:, 0::2], pe[:, 1::2] = np.sin(pos), np.cos(pos)
    return (table[ids] + pe[None]).astype(np.float32)


def inputs(kind, shape, n, seed, offset, split="t10k"):
    if kind == IMG:
        return common.natural_images(n, shape[1], shape[2], seed, split=split, offset=offset)
    return token_embeddings(n, shape[0], shape[1], seed)


def calibrate_bn(model, kind, shape):
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # exact average over the batches
    x = torch.from_numpy(inputs(kind, shape, 128, seed=3, offset=0, split="train"))
    model.train()
    with torch.no_grad():
        for b in range(0, 128, 16):
            model(x[b:b + 16])


def main():
    name, outdir = sys.argv[1], sys.argv[2]
    if name not in MODELS:
        raise SystemExit(f"export_torch: unknown model {name}; valid: {', '.join(MODELS)}")
    ctor, opset, shape, kind, out_name = MODELS[name]
    torch.manual_seed(0)
    model = ctor()
    calibrate_bn(model, kind, shape)
    model.eval()
    os.makedirs(outdir, exist_ok=True)
    path = os.path.join(outdir, "model.onnx")
    x = torch.from_numpy(inputs(kind, shape, 1, seed=9, offset=500))
    in_name = "input" if kind == IMG else "embeddings"
    dyn = {in_name: {0: "batch"}, out_name: {0: "batch"}}
    if kind != IMG:
        dyn = {in_name: {0: "batch", 1: "tokens"}, out_name: {0: "batch", 1: "tokens"}}
    # grad enabled: nn.TransformerEncoder's inference fast path has no ONNX export
    torch.onnx.export(model, x, path + ".tmp", opset_version=opset, input_names=[in_name],
                      output_names=[out_name], dynamic_axes=dyn, do_constant_folding=True)
    os.replace(path + ".tmp", path)
    n = common.N_SAMPLES
    xc = inputs(kind, shape, n, seed=1, offset=0)
    xh = inputs(kind, shape, n, seed=2, offset=n)
    common.write_samples(outdir, [xc[i:i + 1] for i in range(n)], [xh[i:i + 1] for i in range(n)])
    common.write_configs(outdir, name, transformer=(kind != IMG))


if __name__ == "__main__":
    main()
