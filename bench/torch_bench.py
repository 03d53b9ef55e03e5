#!/usr/bin/python3
"""PyTorch side of `make bench`: ViT training throughput written the way a user would write it for speed.

The model is the lean reference program's (../shared/bench/lean_torch_vit.py, copied and adapted): a plain
nn.Module ViT in timm's layout (patch conv, class token, learned position embedding, pre-norm blocks with
softmax(q k^T / sqrt(hd)) v attention and exact GELU, final LayerNorm, linear head), cross-entropy,
torch.optim.AdamW(foreach=True), zero_grad(set_to_none=True), no Python loops in the step other than the
module's loop over blocks, and gradient clipping to global norm 1.0, the same work as the C step
(bench/bench_train.c clips as every bin/ewa recipe does, train.grad_clip = 1.0): torch.nn.utils.clip_grad_norm_
with foreach=True where the installed torch offers it (2.0 and later), else the same foreach kernels it
calls (torch._foreach_norm, torch._foreach_mul_; Debian's torch 1.13 has them, and its clip_grad_norm_ loops
over the tensors in Python); --clip 0 leaves it out.
Random inputs of the right shape. fp32, or bf16 through torch.autocast('cpu', dtype=torch.bfloat16) (fp32
master weights, as the C bf16 path).

Prints one line of key=value pairs:
  torch precision=fp32 images_per_s=... step_ms=... cpu_util=... peak_rss_mib=... threads=... torch_version=...
  clip=foreach|foreach_kernels|off (how the gradients were clipped) ...
cpu_util = process CPU seconds / (wall seconds x threads) over the timed steps: below ~0.9 the run shared
its cores with other work.
"""
import argparse
import inspect
import resource
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(s, D, H, heads):
        super().__init__()
        s.heads = heads
        s.norm1 = nn.LayerNorm(D, eps=1e-6); s.qkv = nn.Linear(D, 3 * D); s.proj = nn.Linear(D, D)
        s.norm2 = nn.LayerNorm(D, eps=1e-6); s.fc1 = nn.Linear(D, H); s.fc2 = nn.Linear(H, D)

    def forward(s, x):
        B, T, D = x.shape
        h = s.heads
        q, k, v = s.qkv(s.norm1(x)).view(B, T, 3, h, D // h).permute(2, 0, 3, 1, 4)
        a = ((q @ k.transpose(-2, -1)) * (D // h) ** -0.5).softmax(-1)
        x = x + s.proj((a @ v).transpose(1, 2).reshape(B, T, D))
        return x + s.fc2(F.gelu(s.fc1(s.norm2(x))))


class ViT(nn.Module):
    def __init__(s, D, depth, heads, H, P=4, C=1, img=28, K=10):
        super().__init__()
        s.patch = nn.Conv2d(C, D, P, P)
        s.cls = nn.Parameter(torch.zeros(1, 1, D))
        s.pos = nn.Parameter(torch.zeros(1, (img // P) ** 2 + 1, D))
        s.blocks = nn.ModuleList([Block(D, H, heads) for _ in range(depth)])
        s.norm = nn.LayerNorm(D, eps=1e-6); s.head = nn.Linear(D, K)

    def forward(s, x):
        x = s.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([s.cls.expand(x.shape[0], -1, -1), x], 1) + s.pos
        for b in s.blocks:
            x = b(x)
        return s.head(s.norm(x)[:, 0])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
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
    ap.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    ap.add_argument("--clip", type=float, default=1.0, help="max global gradient norm; 0 = no clipping")
    a = ap.parse_args()
    if a.steps < 1 or a.warmup < 0 or a.threads < 1:
        ap.error("need --steps >= 1, --warmup >= 0, --threads >= 1")
    if a.dim % a.heads or a.img % a.patch:
        ap.error("dim must be divisible by heads and img by patch")
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    m = ViT(a.dim, a.depth, a.heads, int(a.dim * a.mlp_ratio), a.patch, a.chans, a.img, a.classes)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3, weight_decay=0.05, foreach=True)
    x = torch.randn(a.batch, a.chans, a.img, a.img)
    y = torch.randint(0, a.classes, (a.batch,))
    bf16 = a.precision == "bf16"
    params = list(m.parameters())
    has_kw = "foreach" in inspect.signature(nn.utils.clip_grad_norm_).parameters

    def clip_grads():
        if has_kw:
            nn.utils.clip_grad_norm_(params, a.clip, foreach=True)
            return
        # clip_grad_norm_(foreach=True) of torch >= 2.0, on the kernels torch 1.13 already has
        grads = [p.grad for p in params if p.grad is not None]
        total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads, 2.0)), 2.0)
        torch._foreach_mul_(grads, torch.clamp(a.clip / (total + 1e-6), max=1.0))
    clip = "off" if a.clip <= 0 else "foreach" if has_kw else "foreach_kernels"

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(m(x), y)
        loss.backward()
        if a.clip > 0:
            clip_grads()
        opt.step()
        return loss

    for _ in range(a.warmup):
        step()
    c0, t0 = time.process_time(), time.perf_counter()
    for _ in range(a.steps):
        loss = step()
    final = loss.item()
    dt, dc = time.perf_counter() - t0, time.process_time() - c0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
    print("torch precision=%s images_per_s=%.2f step_ms=%.1f cpu_util=%.2f peak_rss_mib=%.1f threads=%d "
          "torch_version=%s clip=%s batch=%d steps=%d dim=%d depth=%d heads=%d final_loss=%.4f"
          % (a.precision, a.batch * a.steps / dt, 1000.0 * dt / a.steps, dc / (dt * a.threads), rss,
             torch.get_num_threads(), torch.__version__, clip, a.batch, a.steps, a.dim, a.depth, a.heads, final))


if __name__ == "__main__":
    main()
