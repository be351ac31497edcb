#!/usr/bin/env python3
"""Generate a ResNet-18-style ONNX model with random but deterministic weights.

    /usr/bin/python3 examples/resnet/gen_resnet.py [OUT.onnx]   # default examples/resnet/resnet.onnx

It is a compute-heavy model for throughput and latency work (about 3.6 GFLOP per sample at
224x224), not an accurate classifier: the weights are random. Everything is seeded, so the
same script and torch version give the same weights, and the export is checked with
onnx.checker. The .onnx (~47 MB, weights inline) is not committed; run this script to make it.

Weights: Kaiming-normal convolutions, then BatchNormalization running statistics are
estimated on seeded random N(0,1) images (train-mode forward passes, cumulative average) and
gamma/beta perturbed, so that every BatchNormalization is non-trivial and activations stay
in a realistic range through all 18 layers. The model is exported in eval mode with
BatchNormalization kept as separate nodes (TrainingMode.PRESERVE, no constant folding),
like fashion-mnist/model.onnx; pass --fold-bn for the usual folded export.

Input "input" float32 [1,3,224,224] (pass --dynamic-batch for a symbolic batch "N"),
output "logits" float32 [1,1000]. ONNX opset 13.
"""
import argparse
import hashlib
import json
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

SEED = 1234
HERE = os.path.dirname(os.path.abspath(__file__))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.down is None else self.down(x)))


class ResNet18(nn.Module):
    def __init__(self, num_classes=1000, widths=(64, 128, 256, 512), blocks=(2, 2, 2, 2)):
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        layers, cin = [], widths[0]
        for i, (w, n) in enumerate(zip(widths, blocks)):
            for j in range(n):
                layers.append(BasicBlock(cin, w, 2 if (j == 0 and i > 0) else 1))
                cin = w
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        x = self.layers(x)
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(x)


def count_macs(model, x):
    """Multiply-accumulates of Conv2d and Linear layers for one forward pass of x."""
    macs = [0]

    def conv_hook(m, inp, out):
        macs[0] += out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def linear_hook(m, inp, out):
        macs[0] += out.numel() * m.in_features

    hooks = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return macs[0] // x.shape[0]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", nargs="?", default=os.path.join(HERE, "resnet.onnx"))
    p.add_argument("--size", type=int, default=224, help="input height and width")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--fold-bn", action="store_true", help="fold BatchNormalization into Conv at export")
    p.add_argument("--dynamic-batch", action="store_true", help="symbolic batch dimension 'N'")
    args = p.parse_args()

    t0 = time.time()
    torch.set_num_threads(args.threads)
    torch.manual_seed(SEED)
    model = ResNet18()
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.uniform_(m.bias, -0.1, 0.1)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.weight, 0.5, 1.5)   # gamma
            nn.init.normal_(m.bias, 0.0, 0.1)     # beta
            m.momentum = None                     # cumulative average of batch statistics
            m.reset_running_stats()

    # Non-trivial running statistics: estimate them on seeded random images.
    g = torch.Generator().manual_seed(SEED + 1)
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(4, 3, args.size, args.size, generator=g))
    model.eval()
    # Perturb them a little so they are not exactly the statistics of the probe data.
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.add_(0.05 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.mul_(torch.empty(m.running_var.shape).uniform_(0.8, 1.25, generator=g))

    x = torch.randn(1, 3, args.size, args.size, generator=g)
    macs = count_macs(model, x)
    params = sum(t.numel() for t in model.parameters())
    with torch.no_grad():
        logits = model(x)

    import onnx
    out = os.path.abspath(args.out)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    tmp = out + ".tmp"
    torch.onnx.export(model, torch.zeros(1, 3, args.size, args.size), tmp, opset_version=13,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}} if args.dynamic_batch else None,
                      training=torch.onnx.TrainingMode.EVAL if args.fold_bn else torch.onnx.TrainingMode.PRESERVE,
                      do_constant_folding=args.fold_bn)
    m = onnx.load(tmp)
    onnx.checker.check_model(m, full_check=True)
    os.replace(tmp, out)
    ops = {}
    for n in m.graph.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    with open(out, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()

    print(json.dumps({
        "model": out,
        "bytes": os.path.getsize(out),
        "sha256": sha,
        "input": [1, 3, args.size, args.size],
        "params": params,
        "macs_per_sample": macs,
        "gflop_per_sample": round(2 * macs / 1e9, 3),
        "ops": ops,
        "bn_folded": args.fold_bn,
        "logits_probe": {"mean": round(logits.mean().item(), 4), "std": round(logits.std().item(), 4),
                         "argmax": int(logits.argmax())},
        "seconds": round(time.time() - t0, 1),
        "torch": torch.__version__,
        "onnx": onnx.__version__,
    }, indent=1))
    print(f"GFLOP per sample (2 x MACs): {2 * macs / 1e9:.3f}", file=sys.stderr)


if __name__ == "__main__":
    main()
