#!/usr/bin/python3
"""Writes PyTorch reference fixtures for the C ViT tests.

Usage: /usr/bin/python3 tests/torch_ref.py --out DIR

For each case writes
  DIR/<case>.weights.safetensors  every parameter (timm names, F32); the model,
                                  data and optimizer config as string metadata
  DIR/<case>.ref.safetensors      x, y, logits, loss, grad.<name>,
                                  adam_losses, adam_grad_norms, param_after.<name>

All reference arithmetic is float64 starting from the float32-rounded weights
and inputs that are stored, so the C side starts from exactly the same values.
"""

import argparse
import os
import sys
from collections import OrderedDict

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_vit as tv  # noqa: E402

CASES = OrderedDict([
    ("tiny_cls", dict(img_c=1, img_h=8, img_w=8, patch=4, dim=16, depth=2, heads=2,
                      mlp_ratio=4, num_classes=5, pool="cls", batch=3,
                      label_smoothing=0.1, seed=1234)),
    ("tiny_mean", dict(img_c=3, img_h=8, img_w=8, patch=2, dim=12, depth=1, heads=3,
                       mlp_ratio=2, num_classes=4, pool="mean", batch=2,
                       label_smoothing=0.0, seed=4321)),
])

OPT = dict(lr=1e-2, weight_decay=0.05, beta1=0.9, beta2=0.999, eps=1e-8,
           grad_clip=1.0, adam_steps=5)

META_KEYS = ["img_c", "img_h", "img_w", "num_classes", "dim", "depth", "heads",
             "mlp_ratio", "patch", "pool", "batch", "label_smoothing", "lr",
             "weight_decay", "beta1", "beta2", "eps", "grad_clip", "adam_steps"]


def fmt(v):
    if isinstance(v, float):
        return repr(v)          # e.g. 0.01, 1e-08, 0.999
    return str(v)


def build_model(cfg):
    return tv.ViT(img_c=cfg["img_c"], img_h=cfg["img_h"], img_w=cfg["img_w"],
                  patch=cfg["patch"], dim=cfg["dim"], depth=cfg["depth"],
                  heads=cfg["heads"], mlp_ratio=cfg["mlp_ratio"],
                  num_classes=cfg["num_classes"], pool=cfg["pool"])


def nontrivial_init(model):
    """Random everything (float32), so every gradient path is exercised."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("weight") and ("norm" in name.split(".")[-2]):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))     # LayerNorm gains
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
            else:                                             # weights, cls, pos
                p.copy_(0.2 * torch.randn_like(p))


def make_case(name, cfg, outdir):
    torch.manual_seed(cfg["seed"])
    model = build_model(cfg)            # float32
    nontrivial_init(model)
    B = cfg["batch"]
    x32 = torch.randn(B, cfg["img_c"], cfg["img_h"], cfg["img_w"])
    y = torch.randint(0, cfg["num_classes"], (B,))

    meta = OrderedDict()
    for k in META_KEYS:
        meta[k] = fmt(cfg[k] if k in cfg else OPT[k])

    names = [n for n, _ in model.named_parameters()]
    weights = OrderedDict((n, p.detach().clone()) for n, p in model.named_parameters())

    # ---- float64 reference from the float32 values -------------------------
    model = model.double()
    x = x32.double()
    ls = cfg["label_smoothing"]

    model.zero_grad(set_to_none=True)
    logits = model(x)
    loss = tv.loss_fn(logits, y, ls)
    loss.backward()
    grads = OrderedDict((n, p.grad.detach().clone()) for n, p in model.named_parameters())
    for n in names:
        assert grads[n] is not None and torch.count_nonzero(grads[n]) > 0, \
            "%s: gradient of %s is zero" % (name, n)

    opt = tv.make_optimizer(model, OPT["lr"], OPT["weight_decay"],
                            betas=(OPT["beta1"], OPT["beta2"]), eps=OPT["eps"])
    adam_losses, grad_norms = [], []
    for _ in range(OPT["adam_steps"]):
        opt.zero_grad(set_to_none=True)
        l = tv.loss_fn(model(x), y, ls)
        l.backward()
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), OPT["grad_clip"])
        opt.step()
        adam_losses.append(l.item())
        grad_norms.append(float(gn))

    ref = OrderedDict()
    ref["x"] = x32
    ref["y"] = y.to(torch.float32)
    ref["logits"] = logits.detach()
    ref["loss"] = loss.detach().reshape(1)
    for n in names:
        ref["grad." + n] = grads[n]
    ref["adam_losses"] = torch.tensor(adam_losses, dtype=torch.float64)
    ref["adam_grad_norms"] = torch.tensor(grad_norms, dtype=torch.float64)
    for n, p in model.named_parameters():
        ref["param_after." + n] = p.detach()

    wpath = os.path.join(outdir, name + ".weights.safetensors")
    rpath = os.path.join(outdir, name + ".ref.safetensors")
    for path, tensors in ((wpath, weights), (rpath, ref)):
        tmp = path + ".tmp"
        tv.save_safetensors(tmp, tensors, meta)
        os.replace(tmp, path)

    self_check(name, wpath, rpath, cfg)
    nclip = sum(1 for g in grad_norms if g > OPT["grad_clip"])
    print("%s: wrote %s (%d params, %d values) and %s (%d tensors); loss=%.6f "
          "adam_losses=[%s] grad_norms=[%s] (clipped %d/%d)"
          % (name, os.path.basename(wpath), len(weights),
             sum(w.numel() for w in weights.values()), os.path.basename(rpath),
             len(ref), loss.item(), ", ".join("%.4f" % v for v in adam_losses),
             ", ".join("%.3f" % v for v in grad_norms), nclip, len(grad_norms)))


def self_check(name, wpath, rpath, cfg):
    """Reload both files with the hand-written reader, rebuild the model from the
    stored weights and config metadata, and recompute the logits."""
    w, meta = tv.load_safetensors(wpath)
    r, rmeta = tv.load_safetensors(rpath)
    assert list(meta.keys()) == META_KEYS, meta.keys()
    assert rmeta == meta
    c = dict(img_c=int(meta["img_c"]), img_h=int(meta["img_h"]), img_w=int(meta["img_w"]),
             patch=int(meta["patch"]), dim=int(meta["dim"]), depth=int(meta["depth"]),
             heads=int(meta["heads"]), mlp_ratio=float(meta["mlp_ratio"]),
             num_classes=int(meta["num_classes"]), pool=meta["pool"])
    model = build_model(c)
    sd = model.state_dict()
    assert list(sd.keys()) == list(w.keys()), "parameter names/order differ"
    for n in sd:
        assert tuple(sd[n].shape) == w[n].shape, (n, sd[n].shape, w[n].shape)
        assert ("grad." + n) in r and r["grad." + n].shape == w[n].shape
        assert ("param_after." + n) in r and r["param_after." + n].shape == w[n].shape
    model.load_state_dict(OrderedDict((n, torch.from_numpy(a)) for n, a in w.items()))
    model = model.double()
    x = torch.from_numpy(r["x"]).double()
    y = torch.from_numpy(r["y"]).long()
    assert r["x"].shape == (int(meta["batch"]), c["img_c"], c["img_h"], c["img_w"])
    assert r["adam_losses"].shape == (int(meta["adam_steps"]),)
    with torch.no_grad():
        logits = model(x)
        loss = tv.loss_fn(logits, y, float(meta["label_smoothing"]))
    lg32 = logits.float().numpy()
    if not np.array_equal(lg32, r["logits"]):
        d = np.abs(lg32 - r["logits"]).max()
        raise AssertionError("%s: recomputed logits differ (max abs %g)" % (name, d))
    assert np.float32(loss.item()) == r["loss"][0], (loss.item(), r["loss"][0])
    assert abs(r["adam_losses"][0] - r["loss"][0]) == 0
    # float32 forward as a sanity check of the tolerance the C side can expect
    model32 = model.float()
    with torch.no_grad():
        d32 = np.abs(model32(x.float()).numpy() - r["logits"]).max()
    assert d32 < 1e-4, d32


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--cases", default=",".join(CASES),
                    help="comma-separated subset of: " + ", ".join(CASES))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    torch.set_num_threads(1)
    for name in a.cases.split(","):
        if name not in CASES:
            ap.error("unknown case %r" % name)
        make_case(name, CASES[name], a.out)


if __name__ == "__main__":
    main()
