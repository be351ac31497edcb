"""Trains a small classifier on Fashion-MNIST (Debian's dataset-fashion-mnist) and
exports it with torch.onnx.export; writes calib/ and heldout/ (real test images with
labels) and the fleetcal configs.

usage: train_fmnist.py ARCH OUTDIR     ARCH: mobilenetv3 | lstm | gru | transformer
Deterministic: one thread, fixed seeds, torch.use_deterministic_algorithms(True).
"""
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

torch.set_num_threads(1)
TEST_IMAGES = 2000  # first images of t10k; calib/ and heldout/ are the first 128 of them
torch.use_deterministic_algorithms(True)

# arch -> (opset, train steps, batch, lr)
ARCHS = {
    "mobilenetv3": (13, 250, 64, 3e-3),
    "lstm": (9, 400, 64, 3e-3),
    "gru": (11, 400, 64, 3e-3),
    "transformer": (17, 300, 64, 2e-3),
}


class MobileNetV3Gray(nn.Module):
    """torchvision's mobilenet_v3_small, 1-channel stem, 10 classes, input upsampled
    28 -> 32 inside the graph (a Resize in the exported model)."""

    def __init__(self):
        super().__init__()
        self.net = torchvision.models.mobilenet_v3_small(num_classes=10)
        stem = self.net.features[0][0]
        self.net.features[0][0] = nn.Conv2d(1, stem.out_channels, 3, 2, 1, bias=False)

    def forward(self, x):
        x = nn.functional.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
        return self.net(x)


class RowRNN(nn.Module):
    """Reads the image row by row (28 steps of 28 pixels); classifies from the last state."""

    def __init__(self, cell):
        super().__init__()
        rnn = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = rnn(28, 64, num_layers=1, batch_first=True)
        self.head = nn.Linear(64, 10)

    def forward(self, x):  # x [N,1,28,28]
        seq = x.reshape(x.shape[0], 28, 28)
        out, _ = self.rnn(seq)
        return self.head(out[:, -1])


class PatchTransformer(nn.Module):
    """ViT-like: 4x4 patches (49 tokens of 16), linear embedding, learned positions,
    a 2-layer nn.TransformerEncoder (GELU, pre-norm), mean pooling, linear head."""

    def __init__(self, d=48, heads=4, layers=2):
        super().__init__()
        self.embed = nn.Linear(16, d)
        self.pos = nn.Parameter(torch.zeros(1, 49, d))
        nn.init.normal_(self.pos, std=0.02)
        layer = nn.TransformerEncoderLayer(d, heads, dim_feedforward=2 * d, dropout=0.0,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, 10)

    def forward(self, x):  # x [N,1,28,28]
        n = x.shape[0]
        p = x.reshape(n, 7, 4, 7, 4).permute(0, 1, 3, 2, 4).reshape(n, 49, 16)
        h = self.encoder(self.embed(p) + self.pos)
        return self.head(self.norm(h).mean(dim=1))


def build(arch):
    if arch == "mobilenetv3":
        return MobileNetV3Gray()
    if arch in ("lstm", "gru"):
        return RowRNN(arch)
    if arch == "transformer":
        return PatchTransformer()
    raise SystemExit(f"train_fmnist: unknown arch {arch}; valid: {', '.join(ARCHS)}")


def recalibrate_bn(model, x, order, batches=40, bs=250):
    """Recomputes BatchNorm running statistics as exact averages over training batches:
    torchvision's MobileNetV3 uses momentum 0.01, too slow for a few hundred steps."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    with torch.no_grad():
        for b in range(batches):
            model(x[order[b * bs:(b + 1) * bs]])
    model.eval()


def accuracy(model, x, y, bs=500):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), bs):
            correct += (model(x[i:i + bs]).argmax(1) == y[i:i + bs]).sum().item()
    return correct / len(x)


def main():
    arch, outdir = sys.argv[1], sys.argv[2]
    opset, steps, bs, lr = ARCHS[arch]
    steps = int(os.environ.get("CORPUS_STEPS", steps))  # for quick trials only
    torch.manual_seed(0)
    np.random.seed(0)
    xtr, ytr = common.fmnist("train")
    xte, yte = common.fmnist("t10k")
    xte, yte = xte[:TEST_IMAGES], yte[:TEST_IMAGES]
    xtr = torch.from_numpy(common.fmnist_norm(xtr))[:, None]
    xte = torch.from_numpy(common.fmnist_norm(xte))[:, None]
    ytr, yte = torch.from_numpy(ytr), torch.from_numpy(yte)

    model = build(arch)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    g = torch.Generator().manual_seed(1)
    order = torch.randperm(len(xtr), generator=g)
    t0 = time.time()
    model.train()
    for step in range(steps):
        idx = order[(step * bs) % len(xtr):(step * bs) % len(xtr) + bs]
        loss = nn.functional.cross_entropy(model(xtr[idx]), ytr[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0:
            print(f"{arch}: step {step} loss {loss.item():.3f} ({time.time() - t0:.0f}s)", flush=True)
    recalibrate_bn(model, xtr, order)
    model.eval()
    acc = accuracy(model, xte, yte)
    print(f"{arch}: test accuracy {acc:.4f} on {len(xte)} images, trained {time.time() - t0:.0f}s", flush=True)

    os.makedirs(outdir, exist_ok=True)
    path = os.path.join(outdir, "model.onnx")
    # with grad enabled: nn.TransformerEncoder's inference fast path
    # (aten::_transformer_encoder_layer_fwd) has no ONNX export
    if True:
        torch.onnx.export(model, xte[:1], path + ".tmp", opset_version=opset,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                          do_constant_folding=True)
    os.replace(path + ".tmp", path)
    n = common.N_SAMPLES
    xc, xh = xte[:n].numpy(), xte[n:2 * n].numpy()
    common.write_samples(outdir, [xc[i:i + 1] for i in range(n)], [xh[i:i + 1] for i in range(n)],
                         yte[:n].numpy(), yte[n:2 * n].numpy())
    common.write_configs(outdir, "fmnist_" + arch, labelled=True, transformer=(arch == "transformer"))
    with open(os.path.join(outdir, "train.json"), "w") as f:
        json.dump({"arch": arch, "opset": opset, "steps": steps, "batch": bs, "lr": lr,
                   "test_accuracy": acc, "test_images": len(xte),
                   "calib_accuracy": accuracy(model, xte[:n], yte[:n]),
                   "heldout_accuracy": accuracy(model, xte[n:2 * n], yte[n:2 * n])}, f, indent=2)


if __name__ == "__main__":
    main()
