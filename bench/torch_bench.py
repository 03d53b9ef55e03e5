#!/usr/bin/python3
"""PyTorch side of benchmark R1 (DESIGN 7): float32 ViT training throughput.

One step = forward, cross-entropy, backward, clip_grad_norm_(1.0) over all
parameters, AdamW step (decay only on ndim>=2 tensors other than pos_embed /
cls_token). Random data of the right shape. Defaults are R1.

Prints one line:
  torch images_per_s=... step_ms=... threads=T torch_version=... peak_rss_mib=...
"""

import argparse
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import torch_vit as tv  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description="PyTorch ViT training benchmark (R1)")
    ap.add_argument("--steps", type=int, default=20, help="timed steps")
    ap.add_argument("--warmup", type=int, default=3, help="untimed warm-up steps")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dim", type=int, default=192)
    ap.add_argument("--depth", type=int, default=6)
    ap.add_argument("--heads", type=int, default=3)
    ap.add_argument("--mlp-ratio", type=float, default=4.0)
    ap.add_argument("--patch", type=int, default=4)
    ap.add_argument("--img", type=int, default=28)
    ap.add_argument("--chans", type=int, default=1)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--pool", choices=("cls", "mean"), default="cls")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    if a.steps < 1 or a.warmup < 0 or a.threads < 1:
        ap.error("need --steps >= 1, --warmup >= 0, --threads >= 1")
    if a.dim % a.heads or a.img % a.patch:
        ap.error("dim must be divisible by heads and img by patch")

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    model = tv.ViT(img_c=a.chans, img_h=a.img, img_w=a.img, patch=a.patch, dim=a.dim,
                   depth=a.depth, heads=a.heads, mlp_ratio=a.mlp_ratio,
                   num_classes=a.classes, pool=a.pool).float().train()
    opt = tv.make_optimizer(model, a.lr, a.weight_decay)
    x = torch.randn(a.batch, a.chans, a.img, a.img)
    y = torch.randint(0, a.classes, (a.batch,))

    for _ in range(a.warmup):
        tv.train_step(model, opt, x, y, 0.0, 1.0)
    t0 = time.perf_counter()
    for _ in range(a.steps):
        loss = tv.train_step(model, opt, x, y, 0.0, 1.0)
    loss.item()
    dt = time.perf_counter() - t0

    step_ms = 1000.0 * dt / a.steps
    ips = a.batch * a.steps / dt
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
    print("torch images_per_s=%.2f step_ms=%.1f threads=%d torch_version=%s "
          "peak_rss_mib=%.1f batch=%d steps=%d warmup=%d dim=%d depth=%d heads=%d "
          "mlp_ratio=%g patch=%d img=%d chans=%d classes=%d final_loss=%.4f"
          % (ips, step_ms, torch.get_num_threads(), torch.__version__, rss_mib,
             a.batch, a.steps, a.warmup, a.dim, a.depth, a.heads, a.mlp_ratio,
             a.patch, a.img, a.chans, a.classes, loss.item()))


if __name__ == "__main__":
    main()
