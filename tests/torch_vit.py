"""PyTorch reference ViT in timm's conventions (docs/DESIGN.md 2.1).

Shared by tests/torch_ref.py (gradient/optimizer reference fixtures for the C
tests).

Parameter names are exactly timm's VisionTransformer names:
  cls_token, pos_embed, patch_embed.proj.{weight,bias},
  blocks.{i}.norm1.*, blocks.{i}.attn.qkv.*, blocks.{i}.attn.proj.*,
  blocks.{i}.norm2.*, blocks.{i}.mlp.fc1.*, blocks.{i}.mlp.fc2.*,
  norm.*, head.*

Pooling (core/vit.h: VIT_POOL_*), as timm's VisionTransformer spells it:
  'cls'  token 0 after the final norm            global_pool='token'
  'mean' mean of the patch tokens (class token
         excluded) after the final norm          global_pool='avg', fc_norm=False
  'avg'  mean of the patch tokens of the last
         block's output, then a LayerNorm named
         fc_norm; `norm` is an identity (no
         tensors)                                global_pool='avg' (timm's default
                                                 fc_norm=None means True)
VisionTransformer(**timm_kwargs) builds this model from timm's constructor
arguments (the `timm_kwargs` JSON that bin/ewa writes into a checkpoint's
metadata), for the subset of them this harness trains; anything else is a
TypeError, as timm's own constructor would raise for unknown arguments.

PointViT is the 3D point-cloud model (docs/DESIGN.md 2.9) with the C layout's names
(core/vit.c: layout_points): cls_token, cls_pos, patch_embed.{conv1,norm1,conv2,conv3,norm3,conv4}.*
(mini-PointNet, core/layers/pointnet.h), pos_embed.fc{1,2}.* (centre MLP),
then the same blocks, norm and head as the ViT.

Also provides a small hand-written safetensors reader/writer (no external
packages).
"""

import json
import struct
from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

LN_EPS = 1e-6


class PatchEmbed(nn.Module):
    def __init__(self, chans, dim, patch):
        super().__init__()
        self.patch = patch
        self.proj = nn.Conv2d(chans, dim, kernel_size=patch, stride=patch, bias=True)

    def forward(self, x):
        x = self.proj(x)                      # (B, D, H/P, W/P)
        return x.flatten(2).transpose(1, 2)   # (B, T, D), row-major patch order


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        assert dim % heads == 0
        self.heads = heads
        self.head_dim = dim // heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)                       # each (B, H, N, hd)
        attn = (q * self.scale) @ k.transpose(-2, -1)  # (B, H, N, N)
        attn = attn.softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj(x)


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()  # exact erf form
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim, heads, hidden):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = Mlp(dim, hidden)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        x = x + self.mlp(self.norm2(x))
        return x


class RMoE(nn.Module):
    """Random-partition MoE (docs/DESIGN.md 2.3): the B*T tokens are permuted (perm,
    a LongTensor of N indices, set by the caller so both sides use the same
    partition; random when None) and cut into E chunks of sizes N//E or
    N//E + 1, the larger first; chunk e goes to expert e."""

    def __init__(self, dim, hidden, experts):
        super().__init__()
        self.experts = nn.ModuleList([Mlp(dim, hidden) for _ in range(experts)])
        self.perm = None
        self.aux = 0.0

    def forward(self, x):
        B, T, D = x.shape
        N, E = B * T, len(self.experts)
        xf = x.reshape(N, D)
        perm = self.perm if self.perm is not None else torch.randperm(N)
        out = torch.zeros_like(xf)
        start = 0
        for e in range(E):
            n = N // E + (1 if e < N % E else 0)
            idx = perm[start:start + n]
            start += n
            out = out.index_add(0, idx, self.experts[e](xf[idx]))
        return out.reshape(B, T, D)


class RoutedMoE(nn.Module):
    """Naive routed MoE (docs/DESIGN.md 2.6): softmax router (no bias), top-k with
    gates p (k = 1) or p renormalised over the selected experts (k > 1),
    capacity ceil(k * cf * units / E) filled first choices first then second
    choices, each in unit order (over capacity: dropped, the unit's residual
    carries it); aux = aux_coef * E * sum f_e P_e + zloss_coef *
    mean(logsumexp^2); token or image (mean token) routing; optional shared
    expert. The auxiliary loss of the last forward is in self.aux."""

    def __init__(self, dim, hidden, experts, top_k=1, capacity_factor=1.25, aux_coef=0.01,
                 zloss_coef=0.0, shared=False, route_image=False):
        super().__init__()
        self.router = nn.Linear(dim, experts, bias=False)
        self.experts = nn.ModuleList([Mlp(dim, hidden) for _ in range(experts)])
        self.shared = Mlp(dim, hidden) if shared else None
        self.top_k, self.cf, self.aux_coef, self.zloss_coef = top_k, capacity_factor, aux_coef, zloss_coef
        self.route_image = route_image
        self.use_capacity = True
        self.aux = 0.0
        self.dropped = 0

    def forward(self, x):
        import math
        B, T, D = x.shape
        E, k = len(self.experts), self.top_k
        if self.route_image:
            rin, R, rpu = x.mean(dim=1), B, T
        else:
            rin, R, rpu = x.reshape(B * T, D), B * T, 1
        logits = self.router(rin)
        p = logits.softmax(dim=-1)
        choice = torch.topk(p.detach(), k, dim=-1).indices            # (R, k)
        sel = p.gather(1, choice)
        gates = sel if k == 1 else sel / sel.sum(dim=-1, keepdim=True)
        f = F.one_hot(choice[:, 0], E).to(p.dtype).mean(dim=0)
        aux = self.aux_coef * E * (f * p.mean(dim=0)).sum()
        if self.zloss_coef:
            aux = aux + self.zloss_coef * (torch.logsumexp(logits, dim=-1) ** 2).mean()
        cap = R
        if self.use_capacity and self.cf > 0:
            cap = min(R, math.ceil(k * self.cf * R / E - 1e-9))
        kept = torch.zeros(R, k, dtype=torch.bool)
        count = [0] * E
        ch = choice.tolist()
        for j in range(k):
            for u in range(R):
                e = ch[u][j]
                if count[e] < cap:
                    count[e] += 1
                    kept[u, j] = True
        self.dropped = int((~kept).sum())
        xu = x.reshape(R, rpu, D)
        out = torch.zeros_like(xu)
        for e in range(E):
            us, js = ((choice == e) & kept).nonzero(as_tuple=True)
            if len(us) == 0:
                continue
            ye = self.experts[e](xu[us])
            out = out.index_add(0, us, gates[us, js][:, None, None] * ye)
        y = out.reshape(B, T, D)
        if self.shared is not None:
            y = y + self.shared(x)
        self.aux = aux
        return y


def make_moe(dim, hidden, moe):
    if moe["kind"] == "random":
        return RMoE(dim, hidden, moe["experts"])
    return RoutedMoE(dim, hidden, moe["experts"], moe.get("top_k", 1), moe.get("capacity_factor", 1.25),
                     moe.get("aux_coef", 0.01), moe.get("zloss_coef", 0.0), moe.get("shared", False),
                     moe.get("routing", "token") == "image")


def ewa_update(model, beta):
    """The paper's Eq. 6 on every expert tensor of every MoE layer:
    W_i <- (1 - beta) W_i + beta/(N-1) sum_{j != i} W_j."""
    with torch.no_grad():
        for blk in model.blocks:
            if not isinstance(blk.mlp, (RMoE, RoutedMoE)):
                continue
            ex = blk.mlp.experts
            n = len(ex)
            for name, _ in ex[0].named_parameters():
                ws = [dict(e.named_parameters())[name] for e in ex]
                total = sum(w.clone() for w in ws)
                new = [(1 - beta) * w + beta / (n - 1) * (total - w) for w in ws]
                for w, v in zip(ws, new):
                    w.copy_(v)


def mlp_hidden(dim, mlp_ratio):
    return int(dim * mlp_ratio)


POOLS = ("cls", "mean", "avg")


def final_norms(dim, pool):
    """(norm, fc_norm) as timm's VisionTransformer builds them: the final
    LayerNorm is `norm` (before pooling) for 'cls' and 'mean', `fc_norm`
    (after pooling) for 'avg'; the other one is an identity without tensors."""
    ln = nn.LayerNorm(dim, eps=LN_EPS)
    return (nn.Identity(), ln) if pool == "avg" else (ln, nn.Identity())


# timm VisionTransformer arguments this twin implements, with timm's defaults
# (timm/models/vision_transformer.py). Values other than these defaults for
# the fixed ones are refused.
TIMM_FIXED = dict(qkv_bias=True, qk_norm=False, init_values=None, class_token=True,
                  no_embed_class=False, reg_tokens=0, pre_norm=False, final_norm=True,
                  dynamic_img_size=False, drop_rate=0.0, pos_drop_rate=0.0, patch_drop_rate=0.0,
                  proj_drop_rate=0.0, attn_drop_rate=0.0, drop_path_rate=0.0)


def VisionTransformer(img_size=224, patch_size=16, in_chans=3, num_classes=1000, global_pool="token",
                      embed_dim=768, depth=12, num_heads=12, mlp_ratio=4.0, fc_norm=None, **fixed):
    """timm's VisionTransformer constructor (the subset above) -> ViT.
    global_pool 'token' -> pool 'cls'; 'avg' with fc_norm None/True -> 'avg'
    (timm: use_fc_norm = global_pool == 'avg' if fc_norm is None); 'avg' with
    fc_norm=False -> 'mean'."""
    for k, v in fixed.items():
        if k not in TIMM_FIXED:
            raise TypeError("VisionTransformer() got an unexpected keyword argument %r" % k)
        if v != TIMM_FIXED[k]:
            raise TypeError("VisionTransformer twin: %s=%r is not implemented (only %r)"
                            % (k, v, TIMM_FIXED[k]))
    if global_pool == "token":
        if fc_norm:
            raise TypeError("VisionTransformer twin: global_pool='token' with fc_norm=True")
        pool = "cls"
    elif global_pool == "avg":
        pool = "mean" if fc_norm is False else "avg"
    else:
        raise TypeError("VisionTransformer twin: global_pool=%r is not implemented" % (global_pool,))
    h, w = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
    return ViT(img_c=in_chans, img_h=h, img_w=w, patch=patch_size, dim=embed_dim, depth=depth,
               heads=num_heads, mlp_ratio=mlp_ratio, num_classes=num_classes, pool=pool)


class ViT(nn.Module):
    def __init__(self, img_c=1, img_h=28, img_w=28, patch=4, dim=192, depth=6,
                 heads=3, mlp_ratio=4.0, num_classes=10, pool="cls", moe=None):
        super().__init__()
        assert img_h % patch == 0 and img_w % patch == 0
        assert pool in POOLS, pool
        self.pool = pool
        self.num_patches = (img_h // patch) * (img_w // patch)
        self.patch_embed = PatchEmbed(img_c, dim, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.num_patches + 1, dim))
        hidden = mlp_hidden(dim, mlp_ratio)
        self.blocks = nn.Sequential(*[Block(dim, heads, hidden) for _ in range(depth)])
        if moe:   # MoE layers replace the mlp of the listed blocks
            for i in moe["blocks"]:
                self.blocks[i].mlp = make_moe(dim, hidden, moe)
        self.norm, self.fc_norm = final_norms(dim, pool)
        self.head = nn.Linear(dim, num_classes)
        self.reset_parameters_timm()

    def reset_parameters_timm(self):
        """Ordinary (timm-like) init, used by the benchmark."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def aux_loss(self):
        """Sum of the MoE auxiliary losses of the last forward."""
        return sum((b.mlp.aux for b in self.blocks if isinstance(b.mlp, RoutedMoE)), 0.0)

    def forward_features(self, x):
        x = self.patch_embed(x)
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        x = torch.cat((cls, x), dim=1) + self.pos_embed
        x = self.blocks(x)
        return self.norm(x)

    def forward(self, x):
        x = self.forward_features(x)        # self.norm is an identity for 'avg'
        if self.pool == "cls":
            x = x[:, 0]
        else:
            x = x[:, 1:].mean(dim=1)
        return self.head(self.fc_norm(x))   # fc_norm is an identity unless 'avg'


class PointNetEmbed(nn.Module):
    """Mini-PointNet patch embedding (core/layers/pointnet.h), on patches
    (B, G, k, 3) of neighbour offsets -> tokens (B, G, D):
      h1 = x W1^T; a1 = GELU(IN1(h1)); f = a1 W2^T; g = max_k f;
      h3 = [g, f] W3^T; a3 = GELU(IN3(h3)); h4 = a3 W4^T + b4; tok = max_k h4.
    IN is InstanceNorm1d(affine=True) over the G*k points of each cloud. The
    1x1 convolutions are Linear layers named conv1..conv4 (weights 2D, as in
    the C layout); conv1..conv3 have no bias (a norm cancels it)."""

    def __init__(self, c1, c2, c3, dim):
        super().__init__()
        self.conv1 = nn.Linear(3, c1, bias=False)
        self.norm1 = nn.InstanceNorm1d(c1, affine=True, eps=1e-5)
        self.conv2 = nn.Linear(c1, c2, bias=False)
        self.conv3 = nn.Linear(2 * c2, c3, bias=False)
        self.norm3 = nn.InstanceNorm1d(c3, affine=True, eps=1e-5)
        self.conv4 = nn.Linear(c3, dim)

    @staticmethod
    def cloud_norm(norm, h):                               # h (B, G, k, C)
        B, G, k, C = h.shape
        return norm(h.reshape(B, G * k, C).transpose(1, 2)).transpose(1, 2).reshape(B, G, k, C)

    def features(self, x):
        """(f, h4): the two max-pooled tensors, (B, G, k, c2) and (B, G, k, D)."""
        f = self.conv2(F.gelu(self.cloud_norm(self.norm1, self.conv1(x))))
        g = f.max(dim=2, keepdim=True).values              # (B, G, 1, c2)
        h = torch.cat((g.expand_as(f), f), dim=-1)         # [global, local]
        h4 = self.conv4(F.gelu(self.cloud_norm(self.norm3, self.conv3(h))))
        return f, h4

    def forward(self, x):                                  # (B, G, k, 3)
        return self.features(x)[1].max(dim=2).values       # (B, G, D)


class PosEmbed3D(nn.Module):
    """Centre position embedding: GELU(c Wp1^T + bp1) Wp2^T + bp2."""

    def __init__(self, hidden, dim):
        super().__init__()
        self.fc1 = nn.Linear(3, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, c):
        return self.fc2(F.gelu(self.fc1(c)))


class PointViT(ViT):
    """Point-cloud ViT (docs/DESIGN.md 2.9). Input x: (B, G*3 + G*k*3), per cloud the
    G centres (G,3) followed by the (G,k,3) neighbour offsets (the C model's
    input layout, vit_input_floats). Tokens: x[b,0] = cls_token + cls_pos,
    x[b,1+g] = patch_embed(patch g) + pos_embed(centre g); then the ViT's
    blocks, final norm, pool and head."""

    def __init__(self, groups=64, group_k=32, pn_width=128, pos_hidden=128, dim=192, depth=6,
                 heads=3, mlp_ratio=4.0, num_classes=10, pool="cls", moe=None):
        nn.Module.__init__(self)
        assert pool in POOLS, pool
        self.pool = pool
        self.groups, self.group_k = groups, group_k
        self.num_patches = groups
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.cls_pos = nn.Parameter(torch.zeros(1, 1, dim))
        self.patch_embed = PointNetEmbed(pn_width, 2 * pn_width, 4 * pn_width, dim)
        self.pos_embed = PosEmbed3D(pos_hidden, dim)
        hidden = mlp_hidden(dim, mlp_ratio)
        self.blocks = nn.Sequential(*[Block(dim, heads, hidden) for _ in range(depth)])
        if moe:
            for i in moe["blocks"]:
                self.blocks[i].mlp = make_moe(dim, hidden, moe)
        self.norm, self.fc_norm = final_norms(dim, pool)
        self.head = nn.Linear(dim, num_classes)

    def input_floats(self):
        return self.groups * 3 * (1 + self.group_k)

    def forward_features(self, x):
        B, G, k = x.shape[0], self.groups, self.group_k
        assert x.shape == (B, self.input_floats()), x.shape
        centres = x[:, :G * 3].reshape(B, G, 3)
        patches = x[:, G * 3:].reshape(B, G, k, 3)
        tok = self.patch_embed(patches) + self.pos_embed(centres)
        cls = (self.cls_token + self.cls_pos).expand(B, -1, -1)
        x = torch.cat((cls, tok), dim=1)
        x = self.blocks(x)
        return self.norm(x)


def loss_fn(logits, y, label_smoothing=0.0):
    """Mean cross-entropy over the batch with label smoothing (torch semantics:
    target = (1-s)*onehot + s/K)."""
    return F.cross_entropy(logits, y, label_smoothing=label_smoothing)


def decays(name, p):
    """Weight decay only on tensors with ndim >= 2 other than pos_embed/cls_token
    (and the 3D model's cls_pos)."""
    return p.ndim >= 2 and name not in ("pos_embed", "cls_token", "cls_pos")


def param_groups(model, weight_decay):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (decay if decays(name, p) else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model, lr, weight_decay, betas=(0.9, 0.999), eps=1e-8):
    return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr,
                             betas=betas, eps=eps)


def train_step(model, opt, x, y, label_smoothing=0.0, grad_clip=1.0):
    """One step: forward, loss, backward, clip (over all params), AdamW step.
    Returns the loss (tensor, before the step)."""
    opt.zero_grad(set_to_none=True)
    loss = loss_fn(model(x), y, label_smoothing)
    loss.backward()
    if grad_clip and grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()
    return loss.detach()


# --------------------------------------------------------------------------
# Minimal safetensors I/O (F32; F16 and BF16 through torch), no external package.

TORCH_DTYPES = {"F16": torch.float16, "BF16": torch.bfloat16}


def save_safetensors(path, tensors, metadata=None, dtypes=None):
    """tensors: ordered mapping name -> array-like; written little-endian in
    the given order, as F32 or as dtypes[name] ("F16" or "BF16": torch's
    round-to-nearest-even conversion of the float32 values)."""
    header = OrderedDict()
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs, off = [], 0
    for name, t in tensors.items():
        dt = (dtypes or {}).get(name, "F32")
        if isinstance(t, torch.Tensor):
            t = t.detach().cpu().float().numpy()
        a = np.ascontiguousarray(np.asarray(t, dtype="<f4"))
        if dt != "F32":   # 16-bit patterns via torch (numpy has no bfloat16)
            a = torch.from_numpy(a).to(TORCH_DTYPES[dt]).view(torch.int16).numpy().astype("<i2")
        b = a.tobytes()
        header[name] = {"dtype": dt, "shape": list(a.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    hj = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hj += b" " * ((8 - len(hj) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for b in blobs:
            f.write(b)


def load_safetensors(path):
    """Returns (OrderedDict name -> np.float32 array, metadata dict)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"), object_pairs_hook=OrderedDict)
    meta = header.pop("__metadata__", {})
    base = 8 + n
    out = OrderedDict()
    for name, info in header.items():
        b, e = info["data_offsets"]
        shape = tuple(info["shape"])
        if info["dtype"] == "F32":
            arr = np.frombuffer(data[base + b:base + e], dtype="<f4")
        elif info["dtype"] in TORCH_DTYPES:   # widened to float32
            bits = torch.from_numpy(np.frombuffer(data[base + b:base + e], dtype="<i2").copy())
            arr = bits.view(TORCH_DTYPES[info["dtype"]]).float().numpy()
        else:
            raise ValueError("%s: tensor %s has dtype %s, only F32, F16 and BF16 are supported"
                             % (path, name, info["dtype"]))
        if arr.size != int(np.prod(shape, dtype=np.int64)):
            raise ValueError("%s: tensor %s size mismatch" % (path, name))
        out[name] = arr.reshape(shape).copy()
    return out, meta
