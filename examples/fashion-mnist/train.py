#!/usr/bin/env python3
"""Train the small Fashion-MNIST CNN used by the fleetcal examples and export it to ONNX.

Run with the Debian Python that has python3-torch and python3-onnx installed:

    /usr/bin/python3 examples/fashion-mnist/train.py

Inputs : the Fashion-MNIST IDX files of the Debian package dataset-fashion-mnist
         (/usr/share/datasets/fashion-mnist, override with --data-dir).
Outputs: examples/fashion-mnist/model.onnx (opset 13, weights inline, BatchNormalization
         kept as separate nodes), examples/fashion-mnist/reference_logits.json (FP32 torch
         logits of the first 32 calibration samples, for engine tests), and a JSON summary
         on stdout (test accuracy, ONNX re-check).

Preprocessing (must match the Go data loader config):
    x = uint8 pixel / 255 ; x = (x - 0.2860) / 0.3530 ; layout NCHW [N,1,28,28] float32
"""
import argparse
import gzip
import json
import os
import random
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

SCALE = 255.0
MEAN = 0.2860
STD = 0.3530
SEED = 20240601
HERE = os.path.dirname(os.path.abspath(__file__))


def read_idx(path):
    """Read a gzipped IDX file (MNIST format) into a numpy array."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise ValueError(f"{path}: expected {dims} values, found {arr.size}")
    return arr.reshape(dims)


def preprocess(images_u8):
    """uint8 [N,28,28] -> float32 [N,1,28,28], the exact preprocessing of the examples:
    ((x / 255) - 0.2860) / 0.3530 evaluated in float64 and rounded once to float32, which is
    what fleetcal's Go data loader does, so its tensors are bit-identical to these."""
    x = (images_u8.astype(np.float64) / SCALE - MEAN) / STD
    return x[:, None, :, :].astype(np.float32)


class FashionCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)    # 28x28
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)   # 14x14
        self.bn2 = nn.BatchNorm2d(32)
        self.conv3 = nn.Conv2d(32, 64, 3)              # 7x7 -> 5x5
        self.fc1 = nn.Linear(64 * 5 * 5, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        x = F.relu(self.conv3(x))
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        return self.fc2(x)


def evaluate(model, x, y, batch=1000):
    model.eval()
    correct = 0
    logits = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            out = model(x[i:i + batch])
            logits.append(out)
            correct += (out.argmax(1) == y[i:i + batch]).sum().item()
    return correct / len(x), torch.cat(logits)


def run_onnx_with_torch(onnx_model, x):
    """Interpret the exported ONNX graph with torch ops (no onnxruntime on this machine):
    an independent check that the file computes what the trained model computes."""
    from onnx import numpy_helper
    env = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in onnx_model.graph.initializer}
    env[onnx_model.graph.input[0].name] = x
    attrs = lambda n: {a.name: a for a in n.attribute}
    for n in onnx_model.graph.node:
        a = attrs(n)
        i = [env[name] if name else None for name in n.input]
        if n.op_type == "Conv":
            pads = list(a["pads"].ints) if "pads" in a else [0, 0, 0, 0]
            assert pads[:2] == pads[2:], pads
            out = F.conv2d(i[0], i[1], i[2] if len(i) > 2 else None,
                           stride=list(a["strides"].ints), padding=pads[:2],
                           dilation=list(a["dilations"].ints), groups=a["group"].i if "group" in a else 1)
        elif n.op_type == "BatchNormalization":
            out = F.batch_norm(i[0], i[3], i[4], i[1], i[2], False, 0.0, a["epsilon"].f)
        elif n.op_type == "Relu":
            out = F.relu(i[0])
        elif n.op_type == "MaxPool":
            out = F.max_pool2d(i[0], list(a["kernel_shape"].ints), list(a["strides"].ints))
        elif n.op_type == "Flatten":
            out = torch.flatten(i[0], a["axis"].i if "axis" in a else 1)
        elif n.op_type == "Gemm":
            A, B = i[0], i[1]
            if "transA" in a and a["transA"].i:
                A = A.t()
            if "transB" in a and a["transB"].i:
                B = B.t()
            out = A @ B + i[2]
        elif n.op_type == "Constant":
            out = torch.from_numpy(numpy_helper.to_array(a["value"].t).copy())
        else:
            raise NotImplementedError(f"op {n.op_type} in node {n.name}")
        env[n.output[0]] = out
    return env[onnx_model.graph.output[0].name]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--out", default=os.path.join(HERE, "model.onnx"))
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--max-cpu-seconds", type=float, default=600.0,
                   help="stop after the epoch that crosses this budget of process CPU time "
                        "(all threads). The default run (6 epochs, 1 thread) "
                        "needs ~300 CPU seconds; an early stop makes the result depend on the machine")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    random.seed(SEED)
    np.random.seed(SEED)
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)

    d = args.data_dir
    xtr = torch.from_numpy(preprocess(read_idx(os.path.join(d, "train-images-idx3-ubyte.gz"))))
    ytr = torch.from_numpy(read_idx(os.path.join(d, "train-labels-idx1-ubyte.gz")).astype(np.int64))
    xte = torch.from_numpy(preprocess(read_idx(os.path.join(d, "t10k-images-idx3-ubyte.gz"))))
    yte = torch.from_numpy(read_idx(os.path.join(d, "t10k-labels-idx1-ubyte.gz")).astype(np.int64))
    print(f"train {tuple(xtr.shape)} test {tuple(xte.shape)}", file=sys.stderr)

    model = FashionCNN()
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    steps_per_epoch = (len(xtr) + args.batch_size - 1) // args.batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, epochs=args.epochs,
                                                steps_per_epoch=steps_per_epoch)
    gen = torch.Generator().manual_seed(SEED)
    t0, c0 = time.time(), time.process_time()
    epochs_done = 0
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(xtr), generator=gen)
        total, n = 0.0, 0
        for s in range(steps_per_epoch):
            idx = perm[s * args.batch_size:(s + 1) * args.batch_size]
            xb, yb = xtr[idx], ytr[idx]
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
            n += len(idx)
        epochs_done += 1
        acc, _ = evaluate(model, xte, yte)
        print(f"epoch {epoch + 1}/{args.epochs} loss {total / n:.4f} test top-1 {acc:.4f} "
              f"({time.time() - t0:.0f}s wall, {time.process_time() - c0:.0f}s CPU)", file=sys.stderr)
        if time.process_time() - c0 > args.max_cpu_seconds and epoch + 1 < args.epochs:
            print("CPU budget reached, stopping early (result is no longer reproducible)", file=sys.stderr)
            break
    train_seconds = time.time() - t0
    train_cpu_seconds = time.process_time() - c0

    model.eval()
    acc, test_logits = evaluate(model, xte, yte)

    # Export: eval mode, TrainingMode.PRESERVE (the default EVAL mode runs a peephole pass
    # that fuses Conv+BatchNormalization) and no constant folding, so BatchNormalization
    # stays a node of its own, as in real exported models.
    import onnx
    dummy = torch.zeros(1, 1, 28, 28)
    torch.onnx.export(model, dummy, args.out, opset_version=13,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
                      training=torch.onnx.TrainingMode.PRESERVE,
                      do_constant_folding=False)
    m = onnx.load(args.out)
    onnx.checker.check_model(m, full_check=True)
    ops = [n.op_type for n in m.graph.node]
    assert ops.count("BatchNormalization") == 2, ops

    # Independent check of the exported file on the whole test set.
    with torch.no_grad():
        onnx_logits = torch.cat([run_onnx_with_torch(m, xte[i:i + 1000]) for i in range(0, len(xte), 1000)])
    onnx_acc = (onnx_logits.argmax(1) == yte).float().mean().item()
    max_diff = (onnx_logits - test_logits).abs().max().item()

    # Reference FP32 logits of the first 32 training images (= data/calib-npy samples).
    with torch.no_grad():
        ref = model(xtr[:32])
    ref_path = os.path.join(os.path.dirname(os.path.abspath(args.out)), "reference_logits.json")
    with open(ref_path, "w") as f:
        json.dump({f"{i:06d}": [float(f"{v:.6g}") for v in ref[i].tolist()] for i in range(32)}, f, indent=1)
        f.write("\n")

    summary = {
        "fp32_test_top1": round(acc, 4),
        "onnx_interpreted_test_top1": round(onnx_acc, 4),
        "onnx_vs_torch_max_abs_logit_diff": max_diff,
        "epochs": epochs_done,
        "train_seconds": round(train_seconds, 1),
        "train_cpu_seconds": round(train_cpu_seconds, 1),
        "threads": args.threads,
        "params": sum(p.numel() for p in model.parameters()),
        "onnx_ops": ops,
        "model": args.out,
        "model_bytes": os.path.getsize(args.out),
        "torch": torch.__version__,
        "onnx": onnx.__version__,
    }
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
