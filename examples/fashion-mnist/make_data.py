#!/usr/bin/env python3
"""Write the Fashion-MNIST data shipped with the fleetcal examples.

    /usr/bin/python3 examples/fashion-mnist/make_data.py

Reads the Debian package dataset-fashion-mnist (/usr/share/datasets/fashion-mnist) and writes,
under examples/fashion-mnist/data/:
  test/       t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz   (copied byte for byte)
  calib/      train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz (first 1000 training
              samples, re-encoded as IDX: magic 0x00000803 / 0x00000801, big-endian dims)
  calib-npy/  000000.npy ... 000031.npy: the first 32 calibration samples preprocessed
              (x/255, then (x-0.2860)/0.3530), float32, shape [1,1,28,28]; labels.json
              {"000000": 9, ...}
The gzip headers carry no file name and mtime 0, so the output is byte-reproducible.
Needs only numpy (no torch).
"""
import argparse
import gzip
import json
import os
import shutil
import struct

import numpy as np

SCALE = 255.0
MEAN = 0.2860
STD = 0.3530
HERE = os.path.dirname(os.path.abspath(__file__))


def read_idx(path):
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


def write_idx_gz(path, arr):
    """Write a uint8 array as a gzipped IDX file: 2 zero bytes, type 0x08 (ubyte), ndim,
    then ndim big-endian uint32 dims, then the data in C order."""
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    header = struct.pack(">HBB", 0, 0x08, arr.ndim) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    tmp = path + ".tmp"
    with open(tmp, "wb") as raw:
        # filename="" and mtime=0: deterministic bytes
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as f:
            f.write(header)
            f.write(arr.tobytes())
    os.replace(tmp, path)


def preprocess(images_u8):
    """uint8 [N,28,28] -> float32 [N,1,28,28], the exact preprocessing of the examples:
    ((x / 255) - 0.2860) / 0.3530 evaluated in float64 and rounded once to float32, which is
    what fleetcal's Go data loader does, so its tensors are bit-identical to these."""
    x = (images_u8.astype(np.float64) / SCALE - MEAN) / STD
    return x[:, None, :, :].astype(np.float32)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--out", default=os.path.join(HERE, "data"))
    p.add_argument("--calib", type=int, default=1000)
    p.add_argument("--npy", type=int, default=32)
    args = p.parse_args()
    src, out = args.data_dir, args.out

    # test set: verbatim copies
    test_dir = os.path.join(out, "test")
    os.makedirs(test_dir, exist_ok=True)
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copyfile(os.path.join(src, name), os.path.join(test_dir, name))

    # calibration subset: first N training samples, IDX
    images = read_idx(os.path.join(src, "train-images-idx3-ubyte.gz"))[:args.calib]
    labels = read_idx(os.path.join(src, "train-labels-idx1-ubyte.gz"))[:args.calib]
    calib_dir = os.path.join(out, "calib")
    os.makedirs(calib_dir, exist_ok=True)
    write_idx_gz(os.path.join(calib_dir, "train-images-idx3-ubyte.gz"), images)
    write_idx_gz(os.path.join(calib_dir, "train-labels-idx1-ubyte.gz"), labels)
    # read back and verify magic numbers and contents
    for name, arr, magic in (("train-images-idx3-ubyte.gz", images, 0x00000803),
                             ("train-labels-idx1-ubyte.gz", labels, 0x00000801)):
        path = os.path.join(calib_dir, name)
        with gzip.open(path, "rb") as f:
            assert struct.unpack(">I", f.read(4))[0] == magic, path
        assert np.array_equal(read_idx(path), arr), path

    # preprocessed .npy samples + labels.json
    npy_dir = os.path.join(out, "calib-npy")
    os.makedirs(npy_dir, exist_ok=True)
    x = preprocess(images[:args.npy])
    ann = {}
    for i in range(args.npy):
        key = f"{i:06d}"
        np.save(os.path.join(npy_dir, key + ".npy"), x[i:i + 1])  # [1,1,28,28] float32
        ann[key] = int(labels[i])
    with open(os.path.join(npy_dir, "labels.json"), "w") as f:
        json.dump(ann, f, indent=1, sort_keys=True)
        f.write("\n")

    print(json.dumps({"test": len(read_idx(os.path.join(test_dir, "t10k-labels-idx1-ubyte.gz"))),
                      "calib": int(len(labels)), "calib_npy": args.npy,
                      "calib_label_counts": np.bincount(labels, minlength=10).tolist()}))


if __name__ == "__main__":
    main()
