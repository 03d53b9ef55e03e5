#!/usr/bin/python3
"""Checks that a bin/ewa checkpoint is a timm VisionTransformer checkpoint.

Usage: /usr/bin/python3 tests/timm_check.py --checkpoint FINAL.safetensors
           --data FMNIST_DIR --summary SUMMARY.csv

What a timm user does, in the PyTorch twin (tests/torch_vit.py, whose
VisionTransformer(**kwargs) mirrors timm's constructor for the arguments
bin/ewa writes):
  kwargs = json.loads(metadata["timm_kwargs"])
  model = VisionTransformer(**kwargs)
  model.load_state_dict(state_dict, strict=True)
then evaluates the model on the Fashion-MNIST-format test split in FMNIST_DIR
(t10k-*-ubyte.gz, normalised with the checkpoint's data.mean/data.std) and
requires the run's own numbers from SUMMARY.csv: the same top-1 (the same
count of correct images) and the plain cross-entropy final_test_loss within
2e-5 (float32 against float32, printed with 6 decimals).

It also requires that the state dict does NOT load strictly into the model of
the other fc_norm setting (a check that could fail if the names were wrong).
Exit 0 and one line "timm_check: ok ..." on success, 1 with a message if not.
"""

import argparse
import csv
import gzip
import json
import os
import struct
import sys
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_vit as tv  # noqa: E402


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, n = struct.unpack(">II", data[:8])
    if magic == 0x803:
        h, w = struct.unpack(">II", data[8:16])
        return np.frombuffer(data[16:16 + n * h * w], dtype=np.uint8).reshape(n, 1, h, w)
    return np.frombuffer(data[8:8 + n], dtype=np.uint8)


def fail(msg):
    print("timm_check: FAIL: " + msg)
    sys.exit(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--summary", required=True)
    a = ap.parse_args()
    torch.set_num_threads(1)
    weights, meta = tv.load_safetensors(a.checkpoint)
    if "timm_kwargs" not in meta:
        fail("%s has no timm_kwargs metadata" % a.checkpoint)
    kwargs = json.loads(meta["timm_kwargs"])
    sd = OrderedDict((k, torch.from_numpy(v)) for k, v in weights.items())
    model = tv.VisionTransformer(**kwargs)
    model.load_state_dict(sd, strict=True)   # raises on any missing or unexpected tensor
    other = dict(kwargs, fc_norm=not kwargs.get("fc_norm", False))
    if other["global_pool"] == "token":
        other = dict(kwargs, global_pool="avg", fc_norm=True)
    try:
        tv.VisionTransformer(**other).load_state_dict(sd, strict=True)
        fail("the state dict also loads strictly with %r: the check cannot tell the layouts apart" % other)
    except RuntimeError:
        pass
    model.eval()

    x = read_idx(os.path.join(a.data, "t10k-images-idx3-ubyte.gz"))
    y = torch.from_numpy(read_idx(os.path.join(a.data, "t10k-labels-idx1-ubyte.gz")).astype(np.int64))
    mean, std = np.float32(meta["data.mean"]), np.float32(meta["data.std"])
    xf = torch.from_numpy((x.astype(np.float32) / np.float32(255.0) - mean) / std)
    with torch.no_grad():
        logits = model(xf)
    loss = float(F.cross_entropy(logits.double(), y))
    correct = int((logits.argmax(dim=1) == y).sum())

    with open(a.summary, newline="") as f:
        row = next(csv.DictReader(f))
    n = int(row["n_test"])
    if n != len(y):
        fail("summary n_test %d, test split has %d images" % (n, len(y)))
    want_correct = round(float(row["final_top1"]) * n)
    if correct != want_correct:
        fail("top-1 %d/%d in the twin, %d/%d in bin/ewa" % (correct, n, want_correct, n))
    want_loss = float(row["final_test_loss"])
    if abs(loss - want_loss) > 2e-5:
        fail("cross-entropy %.6f in the twin, %.6f in bin/ewa" % (loss, want_loss))
    print("timm_check: ok VisionTransformer(**%s) strict load; top1 %d/%d, cross-entropy %.6f "
          "(bin/ewa %.6f)" % (json.dumps(kwargs, sort_keys=True), correct, n, loss, want_loss))


if __name__ == "__main__":
    main()
