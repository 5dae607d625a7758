#!/usr/bin/env python3
"""Train diffc's pixel-space diffusion U-Net (JAX, CPU or GPU) and export it for candle.

One command trains, evaluates and exports:

    python notebooks/train_unet.py --minutes 90            # fresh run
    python notebooks/train_unet.py --minutes 60 --resume   # continue from checkpoints/NAME

Model: fully convolutional U-Net on planar RGB in [-1, 1], conditioned on the log-SNR λ
(Fourier features → MLP → per-resblock scale/shift), GroupNorm + SiLU resblocks, no
attention. It predicts v = α ε − σ x, so x̂ = α z − σ v̂.
Diffusion: variance preserving, z = α x + σ ε, α² = sigmoid(λ), σ² = sigmoid(−λ).

Objective: the continuous-time VDM bound (Kingma et al. 2021). With λ ~ U[λ_min, λ_max]
the diffusion term of the VLB is ½ (λ_max − λ_min) E‖ε − ε̂‖² = ½ (λ_max − λ_min) α² E‖v − v̂‖²
(nats, summed over dimensions). λ is drawn with low-discrepancy (stratified) sampling per batch.

Evaluation (dev24 256×256 crops): full VLB in bits/dim = diffusion term (K stratified λ per
image) + prior KL at λ_min + discretised-Gaussian 8-bit reconstruction at λ_max, next to
PNG's bits/dim (Pillow, optimize=True) on the same crops.

HFD refiner (Hoogeboom et al. 2023), `--cond-mse checkpoints/hfd-mse.safetensors`: the same
U-Net, conditioned on c = 2·X̂_MSE − 1, the reconstruction of the MSE codec
(notebooks/train_hfd_mse.py) at a rate r ~ U[RATE_MIN, R−1] drawn per training crop; c is appended
to the per-pixel input features (config `cond_channels`), and the log-SNR range is usually
shifted towards low noise (diffusion only adds detail). Sampling starts at λ_min from
z = α c + σ ε. Eval: conditional VLB on dev24 at a few rates, with the PSNR of X̂_MSE there.

    python notebooks/train_unet.py --name hfd-refiner --cond-mse checkpoints/hfd-mse.safetensors \
        --init-from checkpoints/photo-unet-s.safetensors --logsnr-min -6 --logsnr-max 13 \
        --crop 128 --batch 8 --minutes 40
    python notebooks/train_unet.py --name hfd-refiner --write-fixture   # tests/fixtures/refiner_parity

Export: checkpoints/NAME.safetensors (f32, candle layout: conv OIHW, linear (out, in);
architecture in the `__metadata__` key `diffc_unet_config` as JSON) and checkpoints/NAME.json
(model card). `--write-fixture` writes tests/fixtures/unet_parity.safetensors from the
exported checkpoint (inputs and JAX outputs) for the Rust parity test.
"""
import argparse
import datetime
import glob
import io
import json
import math
import os
import pickle
import platform
import queue
import subprocess
import sys
import threading
import time
import zlib

import numpy as np
from PIL import Image

import jax
import jax.numpy as jnp
import optax
from safetensors.numpy import load as st_load, save_file

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_KEY = "diffc_unet_config"

# ----------------------------------------------------------------------------- model


def default_config(args):
    return {
        "arch": "diffc-unet-v1",
        "in_channels": 3,
        "patch": args.patch,
        "input_fourier": not args.no_input_fourier,
        "fourier_gate_logsnr": 6.0,
        "grid_skip": not args.no_grid_skip,
        "channels": [int(c) for c in args.channels.split(",")],
        "num_res_blocks": [int(n) for n in args.num_res.split(",")],
        "groups": args.groups,
        "emb_dim": args.emb_dim,
        "num_freqs": args.num_freqs,
        "gn_eps": 1e-5,
        "prediction": "v",
        "logsnr_min": args.logsnr_min,
        "logsnr_max": args.logsnr_max,
        "cond_channels": 3 if args.cond_mse else 0,
    }


def resblock_names(cfg):
    """Yields (prefix, c_in, c_out) for every resblock, in forward order."""
    ch, nres = cfg["channels"], cfg["num_res_blocks"]
    L = len(ch)
    out = []
    for l in range(L):
        for i in range(nres[l]):
            out.append((f"down.{l}.{i}", ch[l], ch[l]))
    for l in reversed(range(L - 1)):
        for i in range(nres[l]):
            out.append((f"up.{l}.{i}", ch[l], ch[l]))
    return out


def init_params(cfg, seed):
    """Flat dict name → f32 array, in candle's layout."""
    rng = np.random.default_rng(seed)
    p = {}

    def conv(name, cin, cout, k, zero=False):
        fan_in = cin * k * k
        w = rng.standard_normal((cout, cin, k, k)) * math.sqrt(1.0 / fan_in)
        p[name + ".weight"] = np.zeros((cout, cin, k, k)) if zero else w
        p[name + ".bias"] = np.zeros((cout,))

    def lin(name, cin, cout, zero=False):
        w = rng.standard_normal((cout, cin)) * math.sqrt(1.0 / cin)
        p[name + ".weight"] = np.zeros((cout, cin)) if zero else w
        p[name + ".bias"] = np.zeros((cout,))

    def norm(name, c):
        p[name + ".weight"] = np.ones((c,))
        p[name + ".bias"] = np.zeros((c,))

    F, E = cfg["num_freqs"], cfg["emb_dim"]
    # Periods from ~3× the λ range down to ~1.5: smooth in λ, yet able to resolve it.
    p["temb.freqs"] = np.exp(np.linspace(math.log(2 * math.pi / 70.0), math.log(4.0), F))
    lin("temb.lin1", 2 * F, E)
    lin("temb.lin2", E, E)
    ch, nres = cfg["channels"], cfg["num_res_blocks"]
    pc = cfg["in_channels"] * cfg["patch"] ** 2
    conv("conv_in", conv_in_channels(cfg), ch[0], 3)
    for prefix, cin, cout in resblock_names(cfg):
        norm(prefix + ".norm1", cin)
        conv(prefix + ".conv1", cin, cout, 3)
        lin(prefix + ".emb", E, 2 * cout, zero=True)
        norm(prefix + ".norm2", cout)
        conv(prefix + ".conv2", cout, cout, 3, zero=True)
        if cin != cout:
            conv(prefix + ".skip", cin, cout, 1)
    for l in range(len(ch) - 1):
        conv(f"down.{l}.ds", ch[l], ch[l + 1], 3)
        conv(f"up.{l}.us", ch[l + 1], ch[l], 1)
    if cfg.get("grid_skip"):
        lin("grid_gate", E, 1, zero=True)
    norm("norm_out", ch[0])
    conv("conv_out", ch[0], pc, 3, zero=True)
    return {k: jnp.asarray(v, jnp.float32) for k, v in p.items()}


def conv_in_channels(cfg):
    """Input channels of conv_in: space-to-depth of [z (+ its grid phase features), cond]."""
    per_pixel = cfg["in_channels"] * (3 if cfg.get("input_fourier") else 1) + cfg.get("cond_channels", 0)
    return per_pixel * cfg["patch"] ** 2


def _conv(p, name, x, stride=1):
    """NHWC conv with a candle-layout (OIHW) weight, 'same' padding for odd kernels."""
    w = jnp.transpose(p[name + ".weight"], (2, 3, 1, 0))  # HWIO
    k = w.shape[0]
    pad = (k - 1) // 2
    y = jax.lax.conv_general_dilated(
        x, w, (stride, stride), [(pad, pad), (pad, pad)],
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        precision=jax.lax.Precision.HIGHEST)
    return y + p[name + ".bias"]


def _lin(p, name, x):
    return jnp.dot(x, p[name + ".weight"].T, precision=jax.lax.Precision.HIGHEST) + p[name + ".bias"]


def _gn(p, name, x, groups, eps):
    B, H, W, C = x.shape
    xg = x.reshape(B, H, W, groups, C // groups)
    mean = xg.mean(axis=(1, 2, 4), keepdims=True)
    var = ((xg - mean) ** 2).mean(axis=(1, 2, 4), keepdims=True)
    xg = (xg - mean) / jnp.sqrt(var + eps)
    return xg.reshape(B, H, W, C) * p[name + ".weight"] + p[name + ".bias"]


def _resblock(p, prefix, x, emb, cfg):
    G, eps = cfg["groups"], cfg["gn_eps"]
    h = jax.nn.silu(_gn(p, prefix + ".norm1", x, G, eps))
    h = _conv(p, prefix + ".conv1", h)
    ss = _lin(p, prefix + ".emb", emb)  # (B, 2C)
    C = h.shape[-1]
    scale, shift = ss[:, :C], ss[:, C:]
    h = _gn(p, prefix + ".norm2", h, G, eps)
    h = h * (1.0 + scale[:, None, None, :]) + shift[:, None, None, :]
    h = jax.nn.silu(h)
    h = _conv(p, prefix + ".conv2", h)
    skip = _conv(p, prefix + ".skip", x) if (prefix + ".skip.weight") in p else x
    return skip + h


def embed_logsnr(p, logsnr):
    arg = logsnr[:, None] * p["temb.freqs"][None, :]
    f = jnp.concatenate([jnp.sin(arg), jnp.cos(arg)], axis=1)
    e = jax.nn.silu(_lin(p, "temb.lin1", f))
    return jax.nn.silu(_lin(p, "temb.lin2", e))


def input_features(cfg, z, logsnr):
    """[z, g·sin 2πr, g·cos 2πr] with r = frac((z + 1)·127.5): the phase of z on the 8-bit grid.

    At high log-SNR the noise is smaller than a quantisation step, and these features let
    the network read ε off the grid (VDM's input Fourier features). The gate
    g = sigmoid(λ − fourier_gate_logsnr) mutes them where they are pure noise. All ops are
    exact or range-reduced in f32 so that candle reproduces them.
    """
    if not cfg.get("input_fourier"):
        return z
    u = (z + 1.0) * 127.5
    r = u - jnp.floor(u)
    arg = r * jnp.float32(2 * math.pi)
    g = jax.nn.sigmoid(logsnr - cfg["fourier_gate_logsnr"])[:, None, None, None]
    return jnp.concatenate([z, jnp.sin(arg) * g, jnp.cos(arg) * g], axis=-1)


GRID_K = (-2, -1, 0, 1, 2)


def grid_v(z, logsnr):
    """v implied by the posterior mean of x under a flat prior on the 8-bit grid.

    With u = (z + 1)·127.5 and rc its signed offset from the nearest grid point (in steps),
    the 5 nearest grid points k − rc get weights ∝ exp(−(k − rc)² e^λ / (2·127.5²)) (noise
    scale σ/α = e^{−λ/2}, taking α ≈ 1, which holds where this matters); x̂ − z = m, and
    v = (α z − x̂)/σ. Near λ_max this is almost exactly the noise; the network learns, per λ,
    how much of it to add to its output (`grid_gate`, zero at init).
    """
    u = (z + 1.0) * 127.5
    r = u - jnp.floor(u)
    rc = r - jnp.floor(r + 0.5)
    c = jnp.exp(logsnr) / jnp.float32(2 * 127.5 ** 2)
    d = [jnp.float32(k) - rc for k in GRID_K]
    lw = [-(dk * dk) * c for dk in d]
    mx = lw[0]
    for l in lw[1:]:
        mx = jnp.maximum(mx, l)
    e = [jnp.exp(l - mx) for l in lw]
    num, den = e[0] * d[0], e[0]
    for ek, dk in zip(e[1:], d[1:]):
        num = num + ek * dk
        den = den + ek
    m = num / den / jnp.float32(127.5)
    a, s = alpha_sigma(logsnr)
    return ((a - 1.0) * z - m) / s


def unet_apply(p, cfg, z, logsnr, cond=None):
    """z: (B, H, W, 3) NHWC, H and W multiples of patch·2^(levels−1); logsnr: (B,). Returns v̂.

    cond: (B, H, W, cond_channels) NHWC in [−1, 1], required iff cfg["cond_channels"] > 0;
    it is appended to the per-pixel input features (after z's Fourier features, before
    space-to-depth). After space-to-depth (channel c·P² + dy·P + dx) its channels are the
    last conv_in input columns, so an unconditional checkpoint's conv_in fills the first ones.
    """
    ch, nres = cfg["channels"], cfg["num_res_blocks"]
    L = len(ch)
    emb = embed_logsnr(p, logsnr)
    P = cfg["patch"]
    B, H, W, C = z.shape
    z_in = z
    z = input_features(cfg, z, logsnr)
    nc = cfg.get("cond_channels", 0)
    if nc:
        if cond is None or cond.shape != (B, H, W, nc):
            raise ValueError(f"model needs a condition of shape {(B, H, W, nc)}, got "
                             f"{None if cond is None else cond.shape}")
        z = jnp.concatenate([z, cond.astype(z.dtype)], axis=-1)
    elif cond is not None:
        raise ValueError("model has no condition input (cond_channels = 0)")
    if P > 1:  # space-to-depth; channel index = c·P² + dy·P + dx (as a CHW reshape gives)
        Ci = z.shape[-1]
        z = z.reshape(B, H // P, P, W // P, P, Ci).transpose(0, 1, 3, 5, 2, 4).reshape(B, H // P, W // P, Ci * P * P)
    h = _conv(p, "conv_in", z)
    skips = []
    for l in range(L):
        for i in range(nres[l]):
            h = _resblock(p, f"down.{l}.{i}", h, emb, cfg)
        if l < L - 1:
            skips.append(h)
            h = _conv(p, f"down.{l}.ds", h, stride=2)
    for l in reversed(range(L - 1)):
        h = _conv(p, f"up.{l}.us", h)
        h = jnp.repeat(jnp.repeat(h, 2, axis=1), 2, axis=2)
        h = h + skips.pop()
        for i in range(nres[l]):
            h = _resblock(p, f"up.{l}.{i}", h, emb, cfg)
    h = jax.nn.silu(_gn(p, "norm_out", h, cfg["groups"], cfg["gn_eps"]))
    h = _conv(p, "conv_out", h)
    if P > 1:  # depth-to-space, inverse of the above
        h = h.reshape(B, H // P, W // P, C, P, P).transpose(0, 1, 4, 2, 5, 3).reshape(B, H, W, C)
    if cfg.get("grid_skip"):
        gate = _lin(p, "grid_gate", emb)[:, None, None, :]  # (B, 1, 1, 1)
        h = h + gate * grid_v(z_in, logsnr[:, None, None, None])
    return h


def flops_per_pixel(cfg):
    """Multiply-adds × 2 of convs and per-pixel work, per full-resolution pixel (approx)."""
    ch, nres = cfg["channels"], cfg["num_res_blocks"]
    P2 = cfg["patch"] ** 2
    tot = 2 * 9 * (conv_in_channels(cfg) + 3 * P2) * ch[0] / P2  # conv_in + conv_out
    for prefix, cin, cout in resblock_names(cfg):
        l = int(prefix.split(".")[1])
        tot += (2 * 9 * cin * cout + 2 * 9 * cout * cout) / 4 ** l / P2
    for l in range(len(ch) - 1):
        tot += (2 * 9 * ch[l] * ch[l + 1] + 2 * ch[l + 1] * ch[l]) / 4 ** (l + 1) / P2
    return tot


def alpha_sigma(logsnr):
    return jnp.sqrt(jax.nn.sigmoid(logsnr)), jnp.sqrt(jax.nn.sigmoid(-logsnr))


# ----------------------------------------------------------------------------- loss


def diffusion_loss(p, cfg, x, eps, logsnr, cond=None, weight="vlb"):
    """VDM continuous-time diffusion term, nats per image (summed over dims).

    weight "xmse" replaces the bound's α² by σ², i.e. plain ‖x − x̂‖²: same minimiser per λ,
    but low log-SNR (where the bound's weight vanishes, yet DiffC's low rates live) counts.
    """
    a, s = alpha_sigma(logsnr)
    a4, s4 = a[:, None, None, None], s[:, None, None, None]
    z = a4 * x + s4 * eps
    v = a4 * eps - s4 * x
    vhat = unet_apply(p, cfg, z, logsnr, cond)
    rng = cfg["logsnr_max"] - cfg["logsnr_min"]
    w = s ** 2 if weight == "xmse" else a ** 2
    return 0.5 * rng * w * jnp.sum((v - vhat) ** 2, axis=(1, 2, 3))


def make_train_step(cfg, opt, weight="vlb"):
    def loss_fn(p, x, eps, logsnr, cond):
        per = diffusion_loss(p, cfg, x, eps, logsnr, cond, weight)
        D = x.shape[1] * x.shape[2] * x.shape[3]
        return jnp.mean(per) / D  # nats/dim

    @jax.jit
    def step(p, ema, opt_state, x, eps, logsnr, ema_decay, cond=None):
        loss, g = jax.value_and_grad(loss_fn)(p, x, eps, logsnr, cond)
        gnorm = optax.global_norm(g)
        upd, opt_state = opt.update(g, opt_state, p)
        p = optax.apply_updates(p, upd)
        ema = jax.tree_util.tree_map(lambda e, q: ema_decay * e + (1 - ema_decay) * q, ema, p)
        return p, ema, opt_state, loss, gnorm

    return step


# ----------------------------------------------------------------------------- data


def load_rgb(path):
    im = Image.open(path)
    im = im.convert("RGB")
    return im


class PhotoSampler:
    """Random crops from training photos with random 2–4× box downscale and flips.

    Each photo is held in memory at a few box-downscaled sizes (the downscale washes out JPEG
    artefacts); a sample picks a photo (weighted by area), a scale, a crop and a flip.
    """

    def __init__(self, paths, crop, seed, scales=(2.0, 2.5, 3.0, 4.0), cifar=None, short_sides=None):
        self.crop = crop
        self.rng = np.random.default_rng(seed)
        self.levels = []  # list of lists of uint8 HWC arrays
        for path in paths:
            im = load_rgb(path)
            W, H = im.size
            lv = []
            # short_sides: whole-photo views, each photo box-downscaled so that its short side
            # is each of these lengths (a crop then holds most of the photo)
            ss = scales if short_sides is None else [min(W, H) / t for t in short_sides if min(W, H) >= t]
            for s in ss:
                w, h = int(W / s), int(H / s)
                if w < crop or h < crop:
                    continue
                lv.append(np.asarray(im.resize((w, h), Image.BOX), dtype=np.uint8))
            if not lv and W >= crop and H >= crop:
                lv.append(np.asarray(im, dtype=np.uint8))
            if lv:
                self.levels.append(lv)
        if not self.levels:
            raise SystemExit("no usable training photos")
        area = np.array([lv[0].shape[0] * lv[0].shape[1] for lv in self.levels], dtype=np.float64)
        # sqrt-area weighting: big photos give more crops but do not dominate
        self.weights = np.sqrt(area) / np.sqrt(area).sum()
        print(f"data: {len(self.levels)} photos, {sum(len(l) for l in self.levels)} scaled copies",
              flush=True)

    def batch(self, B):
        c = self.crop
        out = np.empty((B, c, c, 3), np.uint8)
        idx = self.rng.choice(len(self.levels), size=B, p=self.weights)
        for b, i in enumerate(idx):
            lv = self.levels[i]
            a = lv[self.rng.integers(len(lv))]
            y = self.rng.integers(a.shape[0] - c + 1)
            x = self.rng.integers(a.shape[1] - c + 1)
            t = a[y:y + c, x:x + c]
            if self.rng.random() < 0.5:
                t = t[:, ::-1]
            out[b] = t
        return out


class CifarSampler:
    """The 2,000 CIFAR-10 cats and dogs (32×32, whole images) with horizontal flips."""

    def __init__(self, path, seed):
        self.data = np.load(path)
        self.rng = np.random.default_rng(seed)

    def batch(self, B):
        idx = self.rng.integers(len(self.data), size=B)
        out = self.data[idx].copy()
        flip = self.rng.random(B) < 0.5
        out[flip] = out[flip][:, :, ::-1]
        return out


class SyntheticSampler:
    """Smooth random images, for testing the pipeline without data."""

    def __init__(self, crop, seed):
        self.crop, self.rng = crop, np.random.default_rng(seed)

    def batch(self, B):
        c = self.crop
        lo = self.rng.random((B, c // 8, c // 8, 3))
        x = np.repeat(np.repeat(lo, 8, 1), 8, 2)
        return (x * 255).astype(np.uint8)


def prefetch(sampler, B, depth=4):
    q = queue.Queue(maxsize=depth)

    def work():
        while True:
            q.put(sampler.batch(B))

    threading.Thread(target=work, daemon=True).start()
    while True:
        yield q.get()


def to_unit(u8):
    return u8.astype(np.float32) / 127.5 - 1.0


# ----------------------------------------------------------------------------- eval


def png_bpd(u8_images):
    bits, dims = 0, 0
    for a in u8_images:
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format="PNG", optimize=True)
        bits += 8 * len(buf.getvalue())
        dims += a.size
    return bits / dims


def make_eval_fn(cfg):
    @jax.jit
    def f(p, x, eps, logsnr, cond=None):
        return diffusion_loss(p, cfg, x, eps, logsnr, cond)
    return f


def vlb_bpd(p, cfg, u8_images, K, seed, batch=4, conds=None):
    """Full VLB (bits/dim) of 8-bit images: diffusion + prior + reconstruction terms.

    With `conds` (one (H, W, C) array in [−1, 1] per image) the bound is conditional,
    −log p(x | c): the network sees c, and the prior at λ_min is N(α c, σ² I) — the decoder
    starts from z = α c + σ ε — so the prior term is ½ e^{λ_min} ‖x − c‖².
    """
    from scipy.special import ndtr
    f = make_eval_fn(cfg)
    rng = np.random.default_rng(seed)
    lmin, lmax = cfg["logsnr_min"], cfg["logsnr_max"]
    total_nats, total_dims = 0.0, 0
    terms = {"diffusion": 0.0, "prior": 0.0, "recon": 0.0}
    for n, a in enumerate(u8_images):
        x = to_unit(a)[None]
        c = None if conds is None else np.asarray(conds[n], np.float32)[None]
        D = x.size
        # diffusion term: K stratified λ, fresh ε each
        u = (rng.random() + np.arange(K)) / K
        lams = (lmin + u * (lmax - lmin)).astype(np.float32)
        dif = []
        for j in range(0, K, batch):
            l = lams[j:j + batch]
            xb = np.repeat(x, len(l), 0)
            eps = rng.standard_normal(xb.shape).astype(np.float32)
            cb = None if c is None else np.repeat(c, len(l), 0)
            dif.append(np.asarray(f(p, xb, eps, l, cb)))
        dif = float(np.concatenate(dif).mean())
        a2, s2 = 1 / (1 + math.exp(-lmin)), 1 / (1 + math.exp(lmin))
        x64 = x.astype(np.float64)
        if c is None:  # prior: KL(q(z_1|x) ‖ N(0, I)) at λ_min
            prior = float(0.5 * np.sum(a2 * x64 ** 2 + s2 - 1.0 - math.log(s2)))
        else:  # KL(N(α x, σ²) ‖ N(α c, σ²))
            prior = float(0.5 * math.exp(lmin) * np.sum((x64 - c.astype(np.float64)) ** 2))
        # reconstruction: discretised Gaussian around z_0/α_0 with scale σ_0/α_0
        a0, s0 = math.sqrt(1 / (1 + math.exp(-lmax))), math.sqrt(1 / (1 + math.exp(lmax)))
        e0 = rng.standard_normal(x.shape)
        mu = (a0 * x64 + s0 * e0) / a0
        sc = s0 / a0
        half = 1.0 / 255.0
        hi = np.where(a >= 255, np.inf, (x64 + half - mu) / sc)
        lo = np.where(a <= 0, -np.inf, (x64 - half - mu) / sc)
        prob = np.maximum(ndtr(hi) - ndtr(lo), 1e-300)
        recon = float(-np.sum(np.log(prob)))
        terms["diffusion"] += dif
        terms["prior"] += prior
        terms["recon"] += recon
        total_nats += dif + prior + recon
        total_dims += D
    k = 1.0 / (total_dims * math.log(2))
    return total_nats * k, {t: v * k for t, v in terms.items()}


class MseCond:
    """HFD's condition: the MSE codec's reconstruction X̂_MSE (notebooks/train_hfd_mse.py).

    `cond(u8, r)` maps 8-bit NHWC images (H, W multiples of 64) and continuous rates r ∈ [0, R−1]
    to c = 2·X̂_MSE − 1 ∈ [−1, 1] (float, rounding quantisation, no gradient).
    """

    def __init__(self, path):
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import train_hfd_mse as hm
        with open(path, "rb") as fh:
            self.crc32 = zlib.crc32(fh.read())
        self.path = path
        self.p, self.cfg = hm.load_exported(path)
        self.R = len(self.cfg["lambdas"])
        self.rate_min = getattr(hm, "RATE_MIN", 0.0)
        self._rec = jax.jit(lambda mp, x, r: 2.0 * hm.reconstruct(mp, x, r) - 1.0)
        self._fwd = jax.jit(lambda mp, x, r: hm.forward(mp, x, r, 0.0, 0.0, hard=True))

    def cond(self, u8, r):
        x = jnp.asarray(u8.astype(np.float32) / 255.0)
        return np.asarray(self._rec(self.p, x, jnp.asarray(r, jnp.float32)))

    def at_rate(self, u8_images, r):
        """Conditions for each image at rate r, with mean PSNR (8-bit X̂_MSE) and ideal bpp."""
        conds, psnrs, bpps = [], [], []
        for a in u8_images:
            H, W = a.shape[:2]
            if H % 64 or W % 64:
                raise SystemExit(f"MSE codec needs multiples of 64, got {H}x{W}")
            x = jnp.asarray(a[None].astype(np.float32) / 255.0)
            xh, by, bz = self._fwd(self.p, x, jnp.asarray([float(r)], jnp.float32))
            xh = np.clip(np.asarray(xh)[0], 0.0, 1.0)
            conds.append((2.0 * xh - 1.0).astype(np.float32))
            mse = np.mean((np.round(xh * 255.0) - a.astype(np.float64)) ** 2)
            psnrs.append(10 * math.log10(255 ** 2 / max(mse, 1e-10)))
            bpps.append(float(by[0] + bz[0]) / (H * W))
        return conds, float(np.mean(psnrs)), float(np.mean(bpps))


def load_dev(data_dir, limit=None):
    paths = sorted(glob.glob(os.path.join(data_dir, "dev24", "crop256", "*.png")))
    if limit:
        paths = paths[:limit]
    return [np.asarray(load_rgb(p), dtype=np.uint8) for p in paths]


# ----------------------------------------------------------------------------- export


def save_checkpoint(path, p, cfg, extra_meta):
    meta = {CONFIG_KEY: json.dumps(cfg, sort_keys=True)}
    meta.update({k: str(v) for k, v in extra_meta.items()})
    arrs = {k: np.ascontiguousarray(np.asarray(v, np.float32)) for k, v in p.items()}
    tmp = path + ".tmp"
    save_file(arrs, tmp, metadata=meta)
    os.replace(tmp, path)


def load_checkpoint(path):
    with open(path, "rb") as fh:
        return load_checkpoint_bytes(fh.read())


def load_checkpoint_bytes(raw):
    n = int.from_bytes(raw[:8], "little")
    meta = json.loads(raw[8:8 + n]).get("__metadata__", {})
    cfg = json.loads(meta[CONFIG_KEY])
    p = {k: jnp.asarray(v) for k, v in st_load(raw).items()}
    return p, cfg, meta


def param_count(p):
    return int(sum(np.prod(v.shape) for k, v in p.items() if k != "temb.freqs"))


def write_fixture(ckpt, out):
    """Inputs and JAX outputs for the Rust parity tests.

    `z`/`logsnr`/`v`: the raw network on a (3m)×(5m) input (m = the size multiple) at three λ.
    `pad_z`/`pad_logsnr`/`pad_x`: the denoiser adapter path on a 3×13×17 input: reflect-pad
    bottom/right to the size multiple, run, crop back, x̂ = clip(α z − σ v̂, −1, 1).
    A conditional model (cond_channels > 0) also gets `c` (N, C, H, W) and `pad_c` (C, 13, 17),
    drawn after everything else so that an unconditional fixture is unchanged; its condition
    is reflect-padded exactly like z.
    """
    with open(ckpt, "rb") as fh:
        raw = fh.read()
    p, cfg, _ = load_checkpoint_bytes(raw)
    rng = np.random.default_rng(1234)
    lams = np.array([-6.0, 0.5, 9.0, 12.5], np.float32)
    m = cfg["patch"] * 2 ** (len(cfg["channels"]) - 1)
    N, H, W = len(lams), 3 * m, 5 * m
    x = np.clip(rng.standard_normal((N, 3, H, W)) * 0.5, -1, 1)
    eps = rng.standard_normal((N, 3, H, W))
    a = np.sqrt(1 / (1 + np.exp(-lams.astype(np.float64))))[:, None, None, None]
    s = np.sqrt(1 / (1 + np.exp(lams.astype(np.float64))))[:, None, None, None]
    z = (a * x + s * eps).astype(np.float32)
    # adapter case
    h2, w2 = 13, 17
    lam2 = np.float32(2.0)
    pz = rng.standard_normal((3, h2, w2)).astype(np.float32)
    ph, pw = (-h2) % m, (-w2) % m
    nc = cfg.get("cond_channels", 0)
    c = pc = None
    if nc:
        # a smooth-ish condition near x (like X̂_MSE), and an independent one for the adapter
        c = np.clip(x + 0.1 * rng.standard_normal(x.shape), -1, 1).astype(np.float32)
        pc = np.clip(rng.standard_normal((nc, h2, w2)) * 0.5, -1, 1).astype(np.float32)
    nhwc = lambda t: None if t is None else jnp.asarray(t.transpose(0, 2, 3, 1))
    v = unet_apply(p, cfg, nhwc(z), jnp.asarray(lams), nhwc(c))
    v = np.asarray(v).transpose(0, 3, 1, 2).astype(np.float32)
    zp = np.pad(pz, ((0, 0), (0, ph), (0, pw)), mode="reflect")
    cp = None if pc is None else np.pad(pc, ((0, 0), (0, ph), (0, pw)), mode="reflect")[None]
    vp = unet_apply(p, cfg, jnp.asarray(zp.transpose(1, 2, 0)[None]), jnp.asarray([lam2]), nhwc(cp))
    vp = np.asarray(vp)[0].transpose(2, 0, 1)[:, :h2, :w2]
    a2 = math.sqrt(1 / (1 + math.exp(-float(lam2))))
    s2 = math.sqrt(1 / (1 + math.exp(float(lam2))))
    px = np.clip(a2 * pz.astype(np.float64) - s2 * vp.astype(np.float64), -1, 1).astype(np.float32)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    arrs = {"z": z, "logsnr": lams, "v": v,
            "pad_z": pz, "pad_logsnr": np.array([lam2], np.float32), "pad_x": px}
    if nc:
        arrs.update({"c": c, "pad_c": pc})
    save_file({k: np.ascontiguousarray(a) for k, a in arrs.items()},
              out, metadata={"checkpoint": os.path.basename(ckpt),
                             "checkpoint_crc32": str(zlib.crc32(raw))})
    print(f"wrote {out} ({os.path.getsize(out)} bytes)")


# ----------------------------------------------------------------------------- main


def git_rev():
    try:
        return subprocess.check_output(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                                       stderr=subprocess.DEVNULL).decode().strip()
    except Exception:
        return "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", default="photo-unet-s")
    ap.add_argument("--data-dir", default=os.path.expanduser("~/.cache/diffc"))
    ap.add_argument("--out-dir", default=os.path.join(REPO, "checkpoints"))
    ap.add_argument("--state-dir", default=None, help="full optimizer state (outside git); "
                    "default DATA_DIR/runs/NAME")
    ap.add_argument("--channels", default="64,96,128")
    ap.add_argument("--num-res", default="1,2,2")
    ap.add_argument("--patch", type=int, default=2, help="space-to-depth factor at the input")
    ap.add_argument("--groups", type=int, default=8)
    ap.add_argument("--emb-dim", type=int, default=128)
    ap.add_argument("--num-freqs", type=int, default=16)
    ap.add_argument("--logsnr-min", type=float, default=-10.0)
    ap.add_argument("--logsnr-max", type=float, default=13.0)
    ap.add_argument("--crop", type=int, default=64)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--large-crop", type=int, default=0,
                    help="also train on crops this large (e.g. 256): the network sees whole-image "
                    "statistics, which low log-SNR denoising (low DiffC rates) depends on")
    ap.add_argument("--large-batch", type=int, default=2)
    ap.add_argument("--large-every", type=int, default=2, help="every N-th step is a large-crop step")
    ap.add_argument("--large-logsnr-min", type=float, default=None,
                    help="large-crop steps draw log-SNR in [this (default logsnr_min), --large-logsnr-max]")
    ap.add_argument("--large-logsnr-max", type=float, default=4.0,
                    help="upper end of the large-crop log-SNR range: where whole-image context matters")
    ap.add_argument("--large-weight", choices=["vlb", "xmse"], default="vlb",
                    help="large-crop loss weight: the bound's (α²) or plain x-MSE (σ²)")
    ap.add_argument("--short-sides", default=None,
                    help="whole-photo views: box-downscale every photo so its short side is each of "
                    "these lengths (e.g. 64,80,96,128,160,192) instead of the 2-4x scales")
    ap.add_argument("--cifar-every", type=int, default=0,
                    help="every N-th step trains on a batch of the 2,000 CIFAR images (32x32, whole)")
    ap.add_argument("--total-minutes", type=float, default=None,
                    help="the cosine learning-rate schedule spans this much cumulative training "
                    "(across resumed sessions); default: this session's --minutes")
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--minutes", type=float, default=90.0, help="training wall-clock budget")
    ap.add_argument("--max-steps", type=int, default=0)
    ap.add_argument("--export-every-min", type=float, default=10.0)
    ap.add_argument("--eval-k", type=int, default=4, help="λ samples per dev image (periodic)")
    ap.add_argument("--final-eval-k", type=int, default=16)
    ap.add_argument("--eval-limit", type=int, default=0, help="only the first N dev images")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--init-from", default=None, help="warm start: copy matching weights from a "
                    "checkpoint (conv_in: its input channels are the first ones)")
    ap.add_argument("--no-input-fourier", action="store_true")
    ap.add_argument("--no-grid-skip", action="store_true")
    ap.add_argument("--synthetic", action="store_true", help="smooth random images (pipeline test)")
    ap.add_argument("--no-eval", action="store_true")
    ap.add_argument("--bench", action="store_true", help="time train steps and exit")
    ap.add_argument("--write-fixture", action="store_true",
                    help="write the parity fixture (--fixture-out) from the checkpoint and exit")
    ap.add_argument("--fixture-out", default=None,
                    help="default tests/fixtures/unet_parity.safetensors, or "
                    "tests/fixtures/refiner_parity.safetensors for a conditional checkpoint")
    ap.add_argument("--cond-mse", default=None, metavar="CKPT",
                    help="HFD refiner: condition on the reconstruction of this MSE codec "
                    "(checkpoints/hfd-mse.safetensors), rate r ~ U[0, R-1] per element")
    ap.add_argument("--eval-rates", default=None,
                    help="conditional eval: MSE-codec rates (default 0,(R-1)/2,R-1)")
    ap.add_argument("--periodic-eval-images", type=int, default=6,
                    help="conditional runs: dev images in the periodic (non-final) evals")
    ap.add_argument("--eval-only", action="store_true", help="evaluate the checkpoint, update its card")
    ap.add_argument("--rust-seconds", type=float, default=None,
                    help="measured candle forward seconds (256×256) to record in the card")
    args = ap.parse_args()

    ckpt = os.path.join(args.out_dir, args.name + ".safetensors")
    card_path = os.path.join(args.out_dir, args.name + ".json")
    state_dir = args.state_dir or os.path.join(args.data_dir, "runs", args.name)

    if args.write_fixture:
        out = args.fixture_out
        if out is None:
            _, fcfg, _ = load_checkpoint(ckpt)
            out = os.path.join(REPO, "tests", "fixtures", "refiner_parity.safetensors"
                               if fcfg.get("cond_channels", 0) else "unet_parity.safetensors")
        write_fixture(ckpt, out)
        return

    mse = MseCond(args.cond_mse) if args.cond_mse else None
    if mse is not None and args.crop % 64:
        raise SystemExit("--cond-mse needs --crop a multiple of 64 (the MSE codec's size multiple)")

    def load_card():
        if os.path.exists(card_path):
            with open(card_path) as fh:
                return json.load(fh)
        return {}

    def evaluate(p, cfg, K, final=True):
        if cfg.get("cond_channels", 0):
            return evaluate_cond(p, cfg, K, final)
        dev = load_dev(args.data_dir, args.eval_limit or None)
        if not dev:
            return None
        t = time.time()
        bpd, terms = vlb_bpd(p, cfg, dev, K=K, seed=2024)
        return {"dev_vlb_bpd": round(bpd, 4), "dev_vlb_terms_bpd": {k: round(v, 4) for k, v in terms.items()},
                "png_bpd": round(png_bpd(dev), 4), "dev_images": len(dev), "dev_vlb_lambda_samples": K,
                "eval_wall_s": round(time.time() - t, 1)}

    def evaluate_cond(p, cfg, K, final):
        if mse is None:
            raise SystemExit("a conditional model needs --cond-mse to be evaluated")
        lim = args.eval_limit or None
        if not final:
            lim = min(lim or 10 ** 9, args.periodic_eval_images)
        dev = load_dev(args.data_dir, lim)
        if not dev:
            return None
        t = time.time()
        R = mse.R
        rates = ([float(r) for r in args.eval_rates.split(",")] if args.eval_rates
                 else sorted({0.0, (R - 1) / 2, float(R - 1)}))
        rows = []
        for r in rates:
            conds, psnr, bpp = mse.at_rate(dev, r)
            bpd, terms = vlb_bpd(p, cfg, dev, K=K, seed=2024, conds=conds)
            rows.append({"rate": r, "mse_ideal_bpp": round(bpp, 4), "mse_psnr_db": round(psnr, 2),
                         "cond_vlb_bpd": round(bpd, 4),
                         "cond_vlb_terms_bpd": {k: round(v, 4) for k, v in terms.items()}})
        return {"dev_cond_eval": rows, "dev_cond_vlb_bpd_mean": round(float(np.mean([r["cond_vlb_bpd"] for r in rows])), 4),
                "png_bpd": round(png_bpd(dev), 4), "dev_images": len(dev),
                "dev_vlb_lambda_samples": K, "eval_wall_s": round(time.time() - t, 1)}

    if args.eval_only:
        p, cfg, meta = load_checkpoint(ckpt)
        card = load_card()
        ev = evaluate(p, cfg, args.final_eval_k)
        print(json.dumps(ev), flush=True)
        if ev:
            card.update(ev)
        if args.rust_seconds is not None:
            card["rust_cpu_forward_256_s"] = args.rust_seconds
        with open(card_path, "w") as fh:
            json.dump(card, fh, indent=2)
            fh.write("\n")
        return

    # ---- model / state
    step0, elapsed0 = 0, 0.0
    cfg = default_config(args)
    params = None
    if args.resume:
        st = os.path.join(state_dir, "state.pkl")
        if os.path.exists(st):
            with open(st, "rb") as fh:
                s = pickle.load(fh)
            cfg, step0, elapsed0 = s["cfg"], s["step"], s.get("elapsed", 0.0)
            params = {k: jnp.asarray(v) for k, v in s["params"].items()}
            ema = {k: jnp.asarray(v) for k, v in s["ema"].items()}
            opt_state_saved = s["opt_state"]
            print(f"resumed full state from {st} at step {step0}", flush=True)
        elif os.path.exists(ckpt):
            params, cfg, meta = load_checkpoint(ckpt)
            ema = dict(params)
            step0 = int(meta.get("step", 0))
            elapsed0 = float(meta.get("train_seconds", 0.0))
            opt_state_saved = None
            print(f"resumed weights from {ckpt} at step {step0}", flush=True)
        else:
            raise SystemExit(f"--resume: neither {st} nor {ckpt} exists")
    init_note = None
    if params is None:
        params = init_params(cfg, args.seed)
        if args.init_from:
            src, scfg, smeta = load_checkpoint(args.init_from)
            for k, v in src.items():
                if k in params and params[k].shape == v.shape:
                    params[k] = v
                elif k == "conv_in.weight" and v.shape[1] < params[k].shape[1]:
                    w = np.zeros(params[k].shape, np.float32)
                    w[:, :v.shape[1]] = np.asarray(v)
                    params[k] = jnp.asarray(w)
                else:
                    print(f"init-from: skipping {k} {v.shape}", flush=True)
            step0 = int(smeta.get("step", 0))
            elapsed0 = float(smeta.get("train_seconds", 0.0))
            diff = {k: cfg.get(k) for k in cfg if scfg.get(k) != cfg.get(k)}
            init_note = (f"warm-started at step {step0} from {os.path.basename(args.init_from)} "
                         f"(new here: {json.dumps(diff)}; new weights zero-initialised); "
                         f"steps and train_seconds are cumulative")
            print(f"warm start from {args.init_from} at step {step0}", flush=True)
        ema = dict(params)
        opt_state_saved = None
    if bool(cfg.get("cond_channels", 0)) != (mse is not None):
        raise SystemExit("a conditional model (cond_channels > 0) trains with --cond-mse, and only it")
    npar = param_count(params)
    fpp = flops_per_pixel(cfg)
    print(f"config {json.dumps(cfg)}\nparams {npar}  ~{fpp/1e3:.0f} kFLOP/pixel "
          f"({fpp*65536/1e9:.1f} GFLOP per 256×256 forward)", flush=True)

    # ---- data
    if args.synthetic:
        sampler = SyntheticSampler(args.crop, args.seed + step0)
        train_desc = "synthetic"
    else:
        paths = sorted(glob.glob(os.path.join(args.data_dir, "train", "*.png")) +
                       glob.glob(os.path.join(args.data_dir, "train", "*.jpg")))
        if not paths:
            raise SystemExit(f"no training photos in {args.data_dir}/train")
        short = [int(t) for t in args.short_sides.split(",")] if args.short_sides else None
        sampler = PhotoSampler(paths, args.crop, args.seed + 7919 * step0, short_sides=short)
        views = (f"whole-photo views box-downscaled to short sides {args.short_sides}" if short
                 else "2/2.5/3/4x box-downscaled copies")
        train_desc = (f"{len(paths)} training photos from {args.data_dir}/train (eval/data/fetch_data.py), "
                      f"random {args.crop}x{args.crop} crops of {views}, horizontal flips")
    if mse is not None:
        train_desc += (f"; condition: {os.path.basename(mse.path)} (crc32 {mse.crc32}) reconstruction of "
                       f"each crop at r ~ U[{mse.rate_min}, {mse.R - 1}]")

    # ---- optimiser (learning rate set each step from the time budget)
    opt = optax.chain(optax.clip_by_global_norm(args.clip),
                      optax.inject_hyperparams(optax.adam)(learning_rate=args.lr))
    opt_state = opt.init(params)
    if opt_state_saved is not None:
        opt_state = jax.tree_util.tree_map(jnp.asarray, opt_state_saved)
    train_step = make_train_step(cfg, opt)
    large_step = make_train_step(cfg, opt, args.large_weight)

    def set_lr(state, lr):
        inner = state[1]
        inner.hyperparams["learning_rate"] = jnp.asarray(lr, jnp.float32)
        return state

    B = args.batch
    lmin, lmax = cfg["logsnr_min"], cfg["logsnr_max"]
    noise_rng = np.random.default_rng(args.seed * 1000003 + step0)
    batches = prefetch(sampler, B)
    large_batches = None
    if args.large_crop:
        if args.synthetic or mse is not None:
            raise SystemExit("--large-crop trains the unconditional photo model only")
        large_batches = prefetch(PhotoSampler(paths, args.large_crop, args.seed + 7919 * step0 + 1),
                                 args.large_batch)
        lo = lmin if args.large_logsnr_min is None else args.large_logsnr_min
        train_desc += (f"; every {args.large_every}th step instead {args.large_batch} crops of "
                       f"{args.large_crop}x{args.large_crop} with logsnr in [{lo}, {args.large_logsnr_max}] "
                       f"and {args.large_weight} loss weight")
    cifar_batches = None
    if args.cifar_every:
        cifar_batches = prefetch(CifarSampler(os.path.join(args.data_dir, "cifar", "cifar.npy"),
                                              args.seed + 7919 * step0 + 2), B)
        train_desc += f"; every {args.cifar_every}th step instead {B} CIFAR-10 images (32x32, whole)"
    budget = args.minutes * 60.0
    # the cosine schedule runs over cumulative training time (resumed sessions continue it)
    schedule_s = (args.total_minutes if args.total_minutes else elapsed0 / 60.0 + args.minutes) * 60.0
    t_start = time.time()
    last_export = t_start
    losses = []
    step = step0
    warm_from = step0  # warm up again after a resume with fresh optimiser state
    best = None

    def export(final=False):
        nonlocal best
        os.makedirs(args.out_dir, exist_ok=True)
        os.makedirs(state_dir, exist_ok=True)
        train_s = elapsed0 + (time.time() - t_start)
        ev = None if args.no_eval else evaluate(ema, cfg, args.final_eval_k if final else args.eval_k, final)
        card = load_card()
        meta = {"step": step, "train_seconds": round(train_s, 1)}
        if mse is not None:
            meta.update({"cond_mse_checkpoint": os.path.basename(mse.path), "cond_mse_crc32": mse.crc32})
        save_checkpoint(ckpt, ema, cfg, meta)
        with open(os.path.join(state_dir, "state.pkl"), "wb") as fh:
            pickle.dump({"cfg": cfg, "step": step, "elapsed": train_s,
                         "params": {k: np.asarray(v) for k, v in params.items()},
                         "ema": {k: np.asarray(v) for k, v in ema.items()},
                         "opt_state": jax.tree_util.tree_map(np.asarray, opt_state)}, fh)
        card.update({
            "name": args.name,
            "file": os.path.basename(ckpt),
            "architecture": ("pixel-space U-Net, v-prediction, log-SNR Fourier features -> MLP -> "
                             "per-resblock scale/shift, GroupNorm+SiLU resblocks, no attention"),
            "config": cfg,
            "parameters": npar,
            "flops_per_pixel": round(fpp),
            "diffusion": "variance preserving, z = a x + s eps, a^2 = sigmoid(logsnr), continuous time",
            "objective": ("continuous-time VDM bound, logsnr ~ U[min,max] stratified per batch; "
                          "weights are the EMA (decay %g)" % args.ema),
            "data": train_desc,
            "eval_data": "dev24/crop256 (24 held-out 256x256 crops, lossless PNG)",
            "steps": step,
            "batch": B,
            "crop": args.crop,
            "train_seconds": round(train_s, 1),
            "training_command": "python notebooks/train_unet.py " + " ".join(sys.argv[1:]),
            "hardware": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
                        f"JAX {jax.__version__} on {jax.default_backend()}",
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "code_revision": git_rev(),
        })
        if mse is not None:
            card.update({
                "condition": ("HFD refiner (Hoogeboom et al. 2023): samples x ~ p(x | c) with c = 2*X_mse - 1 "
                              "in [-1, 1], X_mse the reconstruction (rounding quantisation, float, clipped to "
                              "[0, 1]) of the MSE codec below at a rate r ~ U[%g, %d] drawn per training "
                              "example (rates below 0 extrapolate the gains); c is concatenated to the "
                              "per-pixel input features before space-to-depth (cond_channels)"
                              % (mse.rate_min, mse.R - 1)),
                "cond_mse_checkpoint": os.path.basename(mse.path),
                "cond_mse_crc32": mse.crc32,
                "cond_mse_lambdas": mse.cfg["lambdas"],
                "sampling": ("trained on logsnr in [%g, %g]: decoding starts at some logsnr in that range "
                             "(at the latest logsnr_min) from z = a*c + s*eps and denoises to logsnr_max; the "
                             "conditional VLB's prior term is KL(q(z|x) || N(a*c, s^2 I)) at logsnr_min"
                             % (cfg["logsnr_min"], cfg["logsnr_max"])),
            })
            card["objective"] = ("continuous-time VDM bound of x given c, logsnr ~ U[min,max] stratified per "
                                 "batch; weights are the EMA (decay %g)" % args.ema)
            card["eval_data"] = ("dev24/crop256 (held-out 256x256 crops, lossless PNG); final eval on all "
                                 "of them, periodic evals on the first %d" % args.periodic_eval_images)
        if ev:
            card.update(ev)
        if init_note:
            hist = card.get("history", [])
            hist = hist if isinstance(hist, list) else [hist]
            if init_note not in hist:
                hist.append(init_note)
            card["history"] = hist
        with open(card_path, "w") as fh:
            json.dump(card, fh, indent=2)
            fh.write("\n")
        if ev and "dev_cond_eval" in ev:
            rows = " | ".join(f"r={r['rate']:g}: mse {r['mse_ideal_bpp']:.3f} bpp {r['mse_psnr_db']:.2f} dB, "
                              f"cond vlb {r['cond_vlb_bpd']:.4f} bpd" for r in ev["dev_cond_eval"])
            print(f"exported {ckpt} step {step} ({ev['dev_images']} imgs, K={ev['dev_vlb_lambda_samples']}, "
                  f"{ev['eval_wall_s']} s) {rows}", flush=True)
        else:
            print(f"exported {ckpt} step {step}" + (f" dev_vlb_bpd {ev['dev_vlb_bpd']} png_bpd {ev['png_bpd']} "
                  f"{ev['dev_vlb_terms_bpd']} ({ev['eval_wall_s']} s)" if ev else ""), flush=True)

    while True:
        now = time.time()
        frac = (now - t_start) / budget
        if frac >= 1.0 or (args.max_steps and step - step0 >= args.max_steps):
            break
        warm = min(1.0, (step - warm_from + 1) / args.warmup)
        sfrac = (elapsed0 + now - t_start) / schedule_s
        lr = args.lr * warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(sfrac, 1.0))))
        opt_state = set_lr(opt_state, lr)
        large = large_batches is not None and (step - step0) % args.large_every == args.large_every - 1
        small = (not large and cifar_batches is not None
                 and (step - step0) % args.cifar_every == args.cifar_every - 1)
        u8 = next(large_batches if large else cifar_batches if small else batches)
        x = to_unit(u8)
        eps = noise_rng.standard_normal(x.shape).astype(np.float32)
        nb = x.shape[0]
        u = (noise_rng.random() + np.arange(nb)) / nb
        noise_rng.shuffle(u)
        lo = (lmin if args.large_logsnr_min is None else args.large_logsnr_min) if large else lmin
        hi = args.large_logsnr_max if large else lmax
        lam = (lo + u * (hi - lo)).astype(np.float32)
        cond = None
        if mse is not None:
            # RATE_MIN < 0: the Rust codec also serves rates below the lowest trained one
            # (extrapolated gains), so the refiner sees those reconstructions too
            rates = noise_rng.uniform(mse.rate_min, mse.R - 1, size=B).astype(np.float32)
            cond = mse.cond(u8, rates)
        ema_decay = min(args.ema, (1 + step - warm_from) / (10 + step - warm_from))
        params, ema, opt_state, loss, gnorm = (large_step if large else train_step)(
            params, ema, opt_state, x, eps, lam, jnp.float32(ema_decay), cond)
        step += 1
        if not large and not small:
            losses.append(float(loss))
        if step == step0 + 1:
            t_first = time.time()
            print(f"first step (compile) {t_first - now:.1f}s", flush=True)
        if args.bench and step - step0 == 21:
            dt = (time.time() - t_first) / 20
            print(f"bench: {dt*1000:.0f} ms/step, {B*args.crop**2/dt/1e3:.0f} kpx/s, "
                  f"~{3*fpp*B*args.crop**2/dt/1e9:.0f} GFLOP/s", flush=True)
            return
        if step % 50 == 0:
            el = time.time() - t_start
            print(f"step {step} loss {np.mean(losses)/math.log(2):.4f} bpd(diff) gnorm {float(gnorm):.3f} "
                  f"lr {lr:.2e} {el/60:.1f} min", flush=True)
            losses = []
        if time.time() - last_export > args.export_every_min * 60:
            export()
            last_export = time.time()
    export(final=True)


if __name__ == "__main__":
    main()
