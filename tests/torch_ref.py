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
    # timm's default global_pool='avg': pool, then fc_norm (no final norm)
    ("tiny_avg", dict(img_c=2, img_h=8, img_w=12, patch=4, dim=16, depth=2, heads=2,
                      mlp_ratio=2, num_classes=3, pool="avg", batch=3,
                      label_smoothing=0.1, seed=5150)),
    ("tiny_mean", dict(img_c=3, img_h=8, img_w=8, patch=2, dim=12, depth=1, heads=3,
                       mlp_ratio=2, num_classes=4, pool="mean", batch=2,
                       label_smoothing=0.0, seed=4321)),
    # MoE kinds (docs/DESIGN.md 2.3, 2.6). RMoE: the partition of each MoE block is
    # drawn here and stored as rmoe_perm.<block> so the C side uses it too;
    # beta > 0 applies EWA (Eq. 6) after every AdamW step.
    ("tiny_rmoe", dict(img_c=1, img_h=8, img_w=8, patch=4, dim=16, depth=2, heads=2,
                       mlp_ratio=2, num_classes=5, pool="mean", batch=3,
                       label_smoothing=0.1, seed=2024,
                       moe=dict(method="ewa", kind="random", experts=3, blocks=[1], beta=0.3))),
    ("tiny_moe_top2", dict(img_c=1, img_h=8, img_w=8, patch=4, dim=16, depth=2, heads=2,
                           mlp_ratio=2, num_classes=5, pool="cls", batch=3,
                           label_smoothing=0.0, seed=2025,
                           moe=dict(method="moe", kind="routed", experts=4, blocks=[0, 1], top_k=2,
                                    capacity_factor=1.0, aux_coef=0.05, zloss_coef=0.01,
                                    shared=False, routing="token", beta=0.0))),
    ("tiny_vimoe_image", dict(img_c=1, img_h=8, img_w=8, patch=4, dim=16, depth=2, heads=2,
                              mlp_ratio=2, num_classes=5, pool="mean", batch=4,
                              label_smoothing=0.0, seed=2026,
                              moe=dict(method="vimoe", kind="routed", experts=3, blocks=[1], top_k=1,
                                       capacity_factor=1.25, aux_coef=0.01, zloss_coef=0.0,
                                       shared=True, routing="image", beta=0.0))),
    # 3D point clouds (docs/DESIGN.md 2.9): tv.PointViT; the image fields are the
    # 1x1 "image", patch 1 the C side passes to vit_dims before
    # vit_set_points. pos_hidden is 128 as vit_set_points fixes it. x is the
    # model input (B, G*3 + G*k*3): centres, then neighbour offsets.
    ("tiny_points", dict(img_c=1, img_h=1, img_w=1, patch=1, dim=12, depth=1, heads=2,
                         mlp_ratio=2, num_classes=3, pool="cls", batch=3,
                         label_smoothing=0.1, seed=3037,
                         points=64, groups=4, group_k=5, pn_width=4)),
    ("tiny_points_rmoe", dict(img_c=1, img_h=1, img_w=1, patch=1, dim=12, depth=2, heads=2,
                              mlp_ratio=2, num_classes=3, pool="mean", batch=3,
                              label_smoothing=0.0, seed=3043,
                              points=64, groups=4, group_k=5, pn_width=4,
                              moe=dict(method="ewa", kind="random", experts=2, blocks=[1], beta=0.3))),
])

OPT = dict(lr=1e-2, weight_decay=0.05, beta1=0.9, beta2=0.999, eps=1e-8,
           grad_clip=1.0, adam_steps=5)

META_KEYS = ["img_c", "img_h", "img_w", "num_classes", "dim", "depth", "heads",
             "mlp_ratio", "patch", "pool", "batch", "label_smoothing", "lr",
             "weight_decay", "beta1", "beta2", "eps", "grad_clip", "adam_steps"]


POINT_META_KEYS = ["points", "groups", "group_k", "pn_width"]
POS_HIDDEN = 128   # fixed by vit_set_points

MOE_META_KEYS = ["method", "moe_kind", "experts", "moe_blocks", "top_k", "capacity_factor",
                 "aux_coef", "zloss_coef", "shared", "routing", "beta"]


def moe_meta(moe):
    return OrderedDict([
        ("method", moe["method"]),   # bin/ewa's moe.method (experiments/methods.c)
        ("moe_kind", moe["kind"]), ("experts", str(moe["experts"])),
        ("moe_blocks", ",".join(str(b) for b in moe["blocks"])),
        ("top_k", str(moe.get("top_k", 1))), ("capacity_factor", fmt(float(moe.get("capacity_factor", 0.0)))),
        ("aux_coef", fmt(float(moe.get("aux_coef", 0.0)))),
        ("zloss_coef", fmt(float(moe.get("zloss_coef", 0.0)))),
        ("shared", "1" if moe.get("shared") else "0"), ("routing", moe.get("routing", "token")),
        ("beta", fmt(float(moe.get("beta", 0.0))))])


def moe_from_meta(meta):
    if "moe_kind" not in meta:
        return None
    return dict(kind=meta["moe_kind"], experts=int(meta["experts"]),
                blocks=[int(b) for b in meta["moe_blocks"].split(",")], top_k=int(meta["top_k"]),
                capacity_factor=float(meta["capacity_factor"]), aux_coef=float(meta["aux_coef"]),
                zloss_coef=float(meta["zloss_coef"]), shared=meta["shared"] == "1",
                routing=meta["routing"], beta=float(meta["beta"]))


def set_perms(model, perms):
    for b, p in perms.items():
        model.blocks[b].mlp.perm = p


def total_loss(model, x, y, ls):
    return tv.loss_fn(model(x), y, ls) + model.aux_loss()


def fmt(v):
    if isinstance(v, float):
        return repr(v)          # e.g. 0.01, 1e-08, 0.999
    return str(v)


def build_model(cfg):
    if cfg.get("groups"):
        return tv.PointViT(groups=cfg["groups"], group_k=cfg["group_k"], pn_width=cfg["pn_width"],
                           pos_hidden=POS_HIDDEN, dim=cfg["dim"], depth=cfg["depth"],
                           heads=cfg["heads"], mlp_ratio=cfg["mlp_ratio"],
                           num_classes=cfg["num_classes"], pool=cfg["pool"], moe=cfg.get("moe"))
    return tv.ViT(img_c=cfg["img_c"], img_h=cfg["img_h"], img_w=cfg["img_w"],
                  patch=cfg["patch"], dim=cfg["dim"], depth=cfg["depth"],
                  heads=cfg["heads"], mlp_ratio=cfg["mlp_ratio"],
                  num_classes=cfg["num_classes"], pool=cfg["pool"], moe=cfg.get("moe"))


def tokens(cfg):
    if cfg.get("groups"):
        return cfg["groups"] + 1
    return (cfg["img_h"] // cfg["patch"]) * (cfg["img_w"] // cfg["patch"]) + 1


def input_shape(cfg, B):
    if cfg.get("groups"):
        return (B, cfg["groups"] * 3 * (1 + cfg["group_k"]))
    return (B, cfg["img_c"], cfg["img_h"], cfg["img_w"])


def maxpool_margin(model, x):
    """Smallest gap, relative to the pooled tensor's scale, between the
    largest and second-largest candidate of any max-pool of the PointViT's
    patch embedding (float64). A small gap would let float32 round-off pick a
    different argmax on the C side; the cases are seeded so it is large."""
    pe = model.patch_embed
    B, G, k = x.shape[0], model.groups, model.group_k
    with torch.no_grad():
        f, h4 = pe.features(x[:, G * 3:].reshape(B, G, k, 3))
        out = []
        for t in (f, h4):
            top2 = t.topk(2, dim=2).values
            out.append(float(((top2[:, :, 0] - top2[:, :, 1]) / t.abs().max()).min()))
    return min(out)


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
    x32 = torch.randn(*input_shape(cfg, B))
    if cfg.get("groups"):   # centres spread out, neighbour offsets local
        G = cfg["groups"]
        x32[:, :G * 3] *= 0.6
        x32[:, G * 3:] *= 0.5
    y = torch.randint(0, cfg["num_classes"], (B,))

    meta = OrderedDict()
    for k in META_KEYS:
        meta[k] = fmt(cfg[k] if k in cfg else OPT[k])
    if cfg.get("groups"):
        for k in POINT_META_KEYS:
            meta[k] = fmt(cfg[k])
    moe = cfg.get("moe")
    perms = {}
    if moe:
        meta.update(moe_meta(moe))
        if moe["kind"] == "random":
            T = tokens(cfg)
            for b in moe["blocks"]:
                perms[b] = torch.randperm(B * T)
        set_perms(model, perms)

    names = [n for n, _ in model.named_parameters()]
    weights = OrderedDict((n, p.detach().clone()) for n, p in model.named_parameters())

    # ---- float64 reference from the float32 values -------------------------
    model = model.double()
    x = x32.double()
    ls = cfg["label_smoothing"]
    margin = None
    if cfg.get("groups"):
        margin = maxpool_margin(model, x)
        assert margin > 1e-4, "%s: max-pool margin %g too small for float32 parity" % (name, margin)

    model.zero_grad(set_to_none=True)
    logits = model(x)
    loss = tv.loss_fn(logits, y, ls) + model.aux_loss()
    loss.backward()
    grads = OrderedDict((n, p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p))
                        for n, p in model.named_parameters())
    for n in names:
        if ".experts." in n and moe and moe["kind"] == "routed":
            continue   # a routed expert may receive no token
        assert torch.count_nonzero(grads[n]) > 0, "%s: gradient of %s is zero" % (name, n)
    dropped = sum(b.mlp.dropped for b in model.blocks if isinstance(b.mlp, tv.RoutedMoE))

    opt = tv.make_optimizer(model, OPT["lr"], OPT["weight_decay"],
                            betas=(OPT["beta1"], OPT["beta2"]), eps=OPT["eps"])
    adam_losses, grad_norms = [], []
    for _ in range(OPT["adam_steps"]):
        opt.zero_grad(set_to_none=True)
        l = total_loss(model, x, y, ls)
        l.backward()
        for p in model.parameters():   # an expert that got no token: zero gradient, as in C
            if p.grad is None:          # (AdamW would otherwise skip it entirely)
                p.grad = torch.zeros_like(p)
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), OPT["grad_clip"])
        opt.step()
        if moe and moe.get("beta", 0.0) > 0:
            tv.ewa_update(model, moe["beta"])
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
    for b, p in perms.items():
        ref["rmoe_perm.%d" % b] = p.to(torch.float32)

    wpath = os.path.join(outdir, name + ".weights.safetensors")
    rpath = os.path.join(outdir, name + ".ref.safetensors")
    for path, tensors in ((wpath, weights), (rpath, ref)):
        tmp = path + ".tmp"
        tv.save_safetensors(tmp, tensors, meta)
        os.replace(tmp, path)

    self_check(name, wpath, rpath, cfg)
    nclip = sum(1 for g in grad_norms if g > OPT["grad_clip"])
    if moe:
        print("%s: MoE %s, %d routed assignments dropped at the initial weights"
              % (name, moe["kind"], dropped))
    if margin is not None:
        print("%s: smallest relative max-pool margin at the initial weights %.3g" % (name, margin))
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
    want_keys = (META_KEYS + (POINT_META_KEYS if cfg.get("groups") else [])
                 + (MOE_META_KEYS if "moe" in cfg else []))
    assert list(meta.keys()) == want_keys, meta.keys()
    assert rmeta == meta
    c = dict(img_c=int(meta["img_c"]), img_h=int(meta["img_h"]), img_w=int(meta["img_w"]),
             patch=int(meta["patch"]), dim=int(meta["dim"]), depth=int(meta["depth"]),
             heads=int(meta["heads"]), mlp_ratio=float(meta["mlp_ratio"]),
             num_classes=int(meta["num_classes"]), pool=meta["pool"], moe=moe_from_meta(meta))
    if "groups" in meta:
        for k in POINT_META_KEYS:
            c[k] = int(meta[k])
    model = build_model(c)
    set_perms(model, {int(k.split(".")[1]): torch.from_numpy(v).long()
                      for k, v in r.items() if k.startswith("rmoe_perm.")})
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
    assert r["x"].shape == input_shape(c, int(meta["batch"])), r["x"].shape
    assert r["adam_losses"].shape == (int(meta["adam_steps"]),)
    with torch.no_grad():
        logits = model(x)
        loss = tv.loss_fn(logits, y, float(meta["label_smoothing"])) + model.aux_loss()
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


# A timm-layout checkpoint of another input shape (issue 14): 3x32x32, patch
# 4, stored the way timm users often share weights: pos_embed in BF16, the
# patch projection in F16, the rest F32, no harness metadata. The reference
# holds what fine-tuning at other shapes must make of it, computed by torch:
# the widened tensors, F.interpolate(mode='bicubic', align_corners=False) of
# the patch grid (class token kept) and timm's adapt_input_conv rules.
RGB32 = dict(img_c=3, img_h=32, img_w=32, patch=4, dim=16, depth=1, heads=2, mlp_ratio=2,
             num_classes=10, pool="cls")
RGB32_TARGETS = {"1x28x28": (1, 28, 28), "4x48x40": (4, 48, 40)}


def adapt_in_chans(w, chans):
    """timm adapt_input_conv for a 3-channel source: 1 channel sums, more
    repeat and scale by 3 / chans."""
    if chans == 1:
        return w.sum(dim=1, keepdim=True)
    reps = -(-chans // w.shape[1])
    return w.repeat(1, reps, 1, 1)[:, :chans] * (w.shape[1] / float(chans))


def make_rgb32(outdir):
    torch.manual_seed(777)
    model = build_model(RGB32)
    nontrivial_init(model)
    sd = OrderedDict((n, p.detach().clone()) for n, p in model.state_dict().items())
    dtypes = {"pos_embed": "BF16", "patch_embed.proj.weight": "F16"}
    path = os.path.join(outdir, "timm_rgb32.safetensors")
    tv.save_safetensors(path + ".tmp", sd, None, dtypes)
    os.replace(path + ".tmp", path)
    w, _ = tv.load_safetensors(path)            # the widened values
    ref = OrderedDict()
    for n in dtypes:
        ref["widened." + n] = torch.from_numpy(w[n])
    pos = torch.from_numpy(w["pos_embed"]).double()
    pw = torch.from_numpy(w["patch_embed.proj.weight"]).double()
    D, P, g = RGB32["dim"], RGB32["patch"], RGB32["img_h"] // RGB32["patch"]
    for name, (c, h, wd) in RGB32_TARGETS.items():
        grid = pos[:, 1:].reshape(1, g, g, D).permute(0, 3, 1, 2)
        new = torch.nn.functional.interpolate(grid, size=(h // P, wd // P), mode="bicubic",
                                              align_corners=False)
        new = new.permute(0, 2, 3, 1).reshape(1, -1, D)
        ref["pos_embed." + name] = torch.cat((pos[:, :1], new), dim=1)
        ref["patch_embed.proj.weight." + name] = adapt_in_chans(pw, c)
    rpath = os.path.join(outdir, "timm_rgb32.ref.safetensors")
    tv.save_safetensors(rpath + ".tmp", ref)
    os.replace(rpath + ".tmp", rpath)
    print("timm_rgb32: wrote %s (pos_embed BF16, patch projection F16) and its adaptation reference "
          "for %s" % (os.path.basename(path), ", ".join(RGB32_TARGETS)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--cases", default=",".join(list(CASES) + ["timm_rgb32"]),
                    help="comma-separated subset of: " + ", ".join(list(CASES) + ["timm_rgb32"]))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    torch.set_num_threads(1)
    for name in a.cases.split(","):
        if name == "timm_rgb32":
            make_rgb32(a.out)
            continue
        if name not in CASES:
            ap.error("unknown case %r" % name)
        make_case(name, CASES[name], a.out)


if __name__ == "__main__":
    main()
