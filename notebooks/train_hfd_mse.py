#!/usr/bin/env python3
"""Train HFD's MSE transform codec (JAX, CPU or GPU) and export it for candle.

    python notebooks/train_hfd_mse.py --minutes 50            # fresh run
    python notebooks/train_hfd_mse.py --minutes 30 --resume   # continue from checkpoints/NAME

Model (Ballé et al. 2018 mean-scale hyperprior, small):
  g_a: 4 × [conv5×5 stride 2] with GDN between → y (M channels, 1/16 resolution)
  g_s: 4 × [conv3×3 → depth-to-space ×2] with inverse GDN between → x̂
  h_a: conv3×3, ReLU, conv5×5 s2, ReLU, conv5×5 s2 → z (1/64 resolution)
  h_s: 2 × [conv3×3 → depth-to-space ×2, ReLU], conv3×3 → (μ, log σ) of y
Variable rate (Cui et al. 2021 gain units): per rate r a gain vector on y before quantisation
and an inverse gain after; rates between the trained ones interpolate gains log-linearly, so
one model serves any bpp. z has a per-channel zero-mean Gaussian prior.

Training: additive uniform noise for quantisation, loss = bits/pixel + λ_r · 255² · MSE with
x in [0, 1]; each batch element draws its own rate r. Test-time quantisation (rounding or the
shared-seed dither) and entropy coding happen in Rust (src/codec/hfd*), with CDF tables that
are a pure function of integers (a fixed scale table), so both sides build identical tables.

Export: checkpoints/NAME.safetensors (f32, candle layout, conv OIHW; GDN as effective β, γ;
config JSON in metadata key `diffc_hfd_mse_config`) and checkpoints/NAME.json (model card).
"""
import argparse
import datetime
import glob
import json
import math
import os
import pickle
import platform
import sys
import time
import zlib

import numpy as np

import jax
import jax.numpy as jnp
import optax
from safetensors.numpy import save_file, load as st_load

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_unet import PhotoSampler, SyntheticSampler, prefetch, load_dev, git_rev, _conv  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_KEY = "diffc_hfd_mse_config"
SCALE_MIN = 0.11  # lower bound on σ (CompressAI's scale-table minimum)
RATE_MIN = -2.5  # lowest continuous rate the Rust codec serves (src/codec/hfd_mse.rs)


def default_config(args):
    return {
        "arch": "diffc-hfd-mse-v1",
        "n": args.n,
        "m": args.m,
        "nz": args.nz,
        "lambdas": [float(v) for v in args.lambdas.split(",")],
        "scale_min": SCALE_MIN,
    }


# ----------------------------------------------------------------------------- model


def init_params(cfg, seed):
    rng = np.random.default_rng(seed)
    p = {}
    N, M, Z = cfg["n"], cfg["m"], cfg["nz"]

    def conv(name, cin, cout, k):
        p[name + ".weight"] = rng.standard_normal((cout, cin, k, k)) * math.sqrt(1.0 / (cin * k * k))
        p[name + ".bias"] = np.zeros((cout,))

    def gdn(name, c):
        # effective β = b², γ = g² (≥ 0); stored raw here, exported effective
        p[name + ".beta_raw"] = np.ones((c,))
        p[name + ".gamma_raw"] = np.sqrt(0.1) * np.eye(c)

    conv("g_a.0", 3, N, 5); gdn("g_a.gdn0", N)
    conv("g_a.1", N, N, 5); gdn("g_a.gdn1", N)
    conv("g_a.2", N, N, 5); gdn("g_a.gdn2", N)
    conv("g_a.3", N, M, 5)
    conv("g_s.0", M, 4 * N, 3); gdn("g_s.igdn0", N)
    conv("g_s.1", N, 4 * N, 3); gdn("g_s.igdn1", N)
    conv("g_s.2", N, 4 * N, 3); gdn("g_s.igdn2", N)
    conv("g_s.3", N, 12, 3)
    conv("h_a.0", M, N, 3)
    conv("h_a.1", N, N, 5)
    conv("h_a.2", N, Z, 5)
    conv("h_s.0", Z, 4 * N, 3)
    conv("h_s.1", N, 4 * N, 3)
    conv("h_s.2", N, 2 * M, 3)
    R = len(cfg["lambdas"])
    # log gains: spread so that low rates start with small gains
    lg = np.linspace(-1.0, 1.0, R)[:, None] * np.ones((1, M))
    p["gain.log"] = lg
    p["gain.log_inv"] = -lg
    p["z_prior.log_scale"] = np.zeros((Z,))
    return {k: jnp.asarray(v, jnp.float32) for k, v in p.items()}


def gdn_params(p, name):
    return p[name + ".beta_raw"] ** 2 + 1e-6, p[name + ".gamma_raw"] ** 2


def _gdn(p, name, x, inverse=False):
    beta, gamma = gdn_params(p, name)
    # norm_i = sqrt(β_i + Σ_j γ_ij x_j²)
    n = jnp.sqrt(beta + jnp.einsum("bhwj,ij->bhwi", x * x, gamma,
                                   precision=jax.lax.Precision.HIGHEST))
    return x * n if inverse else x / n


def depth_to_space(x, r=2):
    """NHWC (B,H,W,C·r²) → (B,H·r,W·r,C); channel index c·r² + dy·r + dx (candle/PyTorch order)."""
    B, H, W, C4 = x.shape
    C = C4 // (r * r)
    x = x.reshape(B, H, W, C, r, r)
    x = x.transpose(0, 1, 4, 2, 5, 3)
    return x.reshape(B, H * r, W * r, C)


def g_a(p, x):
    h = _gdn(p, "g_a.gdn0", _conv(p, "g_a.0", x, 2))
    h = _gdn(p, "g_a.gdn1", _conv(p, "g_a.1", h, 2))
    h = _gdn(p, "g_a.gdn2", _conv(p, "g_a.2", h, 2))
    return _conv(p, "g_a.3", h, 2)


def g_s(p, y):
    h = _gdn(p, "g_s.igdn0", depth_to_space(_conv(p, "g_s.0", y)), inverse=True)
    h = _gdn(p, "g_s.igdn1", depth_to_space(_conv(p, "g_s.1", h)), inverse=True)
    h = _gdn(p, "g_s.igdn2", depth_to_space(_conv(p, "g_s.2", h)), inverse=True)
    return depth_to_space(_conv(p, "g_s.3", h))


def h_a(p, y):
    h = jax.nn.relu(_conv(p, "h_a.0", y))
    h = jax.nn.relu(_conv(p, "h_a.1", h, 2))
    return _conv(p, "h_a.2", h, 2)


def h_s(p, z):
    h = jax.nn.relu(depth_to_space(_conv(p, "h_s.0", z)))
    h = jax.nn.relu(depth_to_space(_conv(p, "h_s.1", h)))
    o = _conv(p, "h_s.2", h)
    M = o.shape[-1] // 2
    return o[..., :M], o[..., M:]  # μ, log σ


def gains(p, r):
    """Gain and inverse gain for continuous rates r (B,) in [0, R−1]: log-linear interpolation."""
    R = p["gain.log"].shape[0]
    i = jnp.clip(jnp.floor(r), 0, R - 2).astype(jnp.int32)
    t = (r - i)[:, None]
    g = (1 - t) * p["gain.log"][i] + t * p["gain.log"][i + 1]
    gi = (1 - t) * p["gain.log_inv"][i] + t * p["gain.log_inv"][i + 1]
    return jnp.exp(g), jnp.exp(gi)


def _phi(x):
    return 0.5 * jax.scipy.special.erfc(-x / math.sqrt(2.0))


def gauss_bits(v, mu, sigma):
    """−log2 of the Gaussian mass of [v − ½, v + ½] (the density convolved with U(±½))."""
    # use the upper tail symmetrically for accuracy
    d = jnp.abs(v - mu)
    lik = _phi((0.5 - d) / sigma) - _phi((-0.5 - d) / sigma)
    return -jnp.log2(jnp.maximum(lik, 1e-9))


def forward(p, x, r, noise_y, noise_z, hard=False):
    """x (B,H,W,3) in [0,1]; returns x̂, bits of y, bits of z (per image)."""
    y = g_a(p, x - 0.5)
    g, gi = gains(p, r)
    yg = y * g[:, None, None, :]
    z = h_a(p, yg)
    zs = jnp.exp(p["z_prior.log_scale"])
    if hard:
        zq = jnp.round(z)
    else:
        zq = z + noise_z
    bz = gauss_bits(zq, 0.0, jnp.maximum(zs, SCALE_MIN)).sum(axis=(1, 2, 3))
    mu, ls = h_s(p, zq)
    sigma = jnp.maximum(jnp.exp(ls), SCALE_MIN)
    if hard:
        yq = jnp.round(yg - mu) + mu
    else:
        yq = yg + noise_y
    by = gauss_bits(yq, mu, sigma).sum(axis=(1, 2, 3))
    xh = g_s(p, yq * gi[:, None, None, :]) + 0.5
    return xh, by, bz


def make_train_step(cfg, opt):
    lambdas = jnp.asarray(cfg["lambdas"], jnp.float32)

    def loss_fn(p, x, r, ny, nz):
        xh, by, bz = forward(p, x, r.astype(jnp.float32), ny, nz)
        pix = x.shape[1] * x.shape[2]
        bpp = (by + bz) / pix
        mse = jnp.mean((xh - x) ** 2, axis=(1, 2, 3))
        loss = jnp.mean(bpp + lambdas[r] * 255.0 ** 2 * mse)
        return loss, (bpp, mse)

    @jax.jit
    def step(p, opt_state, x, r, ny, nz):
        (loss, (bpp, mse)), g = jax.value_and_grad(loss_fn, has_aux=True)(p, x, r, ny, nz)
        gnorm = optax.global_norm(g)
        upd, opt_state = opt.update(g, opt_state, p)
        p = optax.apply_updates(p, upd)
        return p, opt_state, loss, bpp, mse, gnorm

    return step


# ----------------------------------------------------------------------------- eval


def evaluate(p, cfg, dev):
    """Per trained rate: mean ideal bpp (rounding, discretised Gaussian) and PSNR on dev crops."""
    f = jax.jit(lambda p, x, r: forward(p, x, r, 0.0, 0.0, hard=True))
    out = []
    for ri in range(len(cfg["lambdas"])):
        bpps, psnrs = [], []
        for a in dev:
            x = jnp.asarray(a[None].astype(np.float32) / 255.0)
            H, W = a.shape[:2]
            ph, pw = (-H) % 64, (-W) % 64
            xp = jnp.pad(x, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge")
            xh, by, bz = f(p, xp, jnp.asarray([float(ri)]))
            xh = np.clip(np.round(np.asarray(xh)[0, :H, :W] * 255), 0, 255)
            mse = np.mean((xh - a.astype(np.float64)) ** 2)
            bpps.append(float(by[0] + bz[0]) / (H * W))
            psnrs.append(10 * math.log10(255 ** 2 / max(mse, 1e-10)))
        out.append({"rate": ri, "lambda": cfg["lambdas"][ri], "ideal_bpp": float(np.mean(bpps)),
                    "psnr": float(np.mean(psnrs))})
    return out


# ----------------------------------------------------------------------------- export


def export_params(p):
    """Candle layout: GDN as effective β, γ; everything else as is."""
    out = {}
    for k, v in p.items():
        if k.endswith(".beta_raw"):
            out[k[:-4]] = np.asarray(v) ** 2 + 1e-6
        elif k.endswith(".gamma_raw"):
            out[k[:-4]] = np.asarray(v) ** 2
        else:
            out[k] = np.asarray(v)
    return {k: np.ascontiguousarray(v.astype(np.float32)) for k, v in out.items()}


def save_checkpoint(path, p, cfg, meta):
    md = {CONFIG_KEY: json.dumps(cfg, sort_keys=True)}
    md.update({k: str(v) for k, v in meta.items()})
    tmp = path + ".tmp"
    save_file(export_params(p), tmp, metadata=md)
    os.replace(tmp, path)


def load_exported(path):
    """Loads an exported checkpoint back into training parameters: (params, config)."""
    with open(path, "rb") as fh:
        raw = fh.read()
    n = int.from_bytes(raw[:8], "little")
    cfg = json.loads(json.loads(raw[8:8 + n])["__metadata__"][CONFIG_KEY])
    p = {}
    for k, v in st_load(raw).items():
        if k.endswith(".beta"):
            p[k + "_raw"] = jnp.asarray(np.sqrt(np.maximum(v - 1e-6, 0.0)))
        elif k.endswith(".gamma"):
            p[k + "_raw"] = jnp.asarray(np.sqrt(v))
        else:
            p[k] = jnp.asarray(v)
    return p, cfg


def reconstruct(p, x, r):
    """MSE-codec reconstruction with rounding (what the Rust decoder outputs, up to float noise).

    x (B,H,W,3) in [0,1] with H, W multiples of 64; r (B,) continuous rates in [0, R−1].
    Returns x̂ clipped to [0, 1].
    """
    xh, _, _ = forward(p, x, r, 0.0, 0.0, hard=True)
    return jnp.clip(xh, 0.0, 1.0)


def param_count(p):
    return int(sum(np.prod(v.shape) for v in p.values()))


def write_fixture(p, cfg, out, ckpt=None):
    """Inputs and JAX outputs of every network for the Rust parity test (hard quantisation).

    Records the CRC-32 of the exported checkpoint `ckpt`, which must hold the same `p`."""
    rng = np.random.default_rng(77)
    H, W = 64, 128
    x = rng.random((1, H, W, 3)).astype(np.float32)
    r = np.array([1.5], np.float32)
    y = g_a(p, jnp.asarray(x) - 0.5)
    g, gi = gains(p, jnp.asarray(r))
    yg = y * g[:, None, None, :]
    z = h_a(p, yg)
    zq = jnp.round(z)
    mu, ls = h_s(p, zq)
    yq = jnp.round(yg - mu) + mu
    xh = g_s(p, yq * gi[:, None, None, :]) + 0.5
    nchw = lambda a: np.ascontiguousarray(np.asarray(a).transpose(0, 3, 1, 2).astype(np.float32))
    arrs = {"x": nchw(x), "rate": r, "y": nchw(yg), "z": nchw(z), "z_hat": nchw(zq),
            "mu": nchw(mu), "log_scale": nchw(ls), "y_hat": nchw(yq), "x_hat": nchw(xh)}
    os.makedirs(os.path.dirname(out), exist_ok=True)
    meta = {}
    if ckpt:
        with open(ckpt, "rb") as fh:
            meta["checkpoint_crc32"] = str(zlib.crc32(fh.read()))
    save_file(arrs, out, metadata=meta)
    print(f"wrote {out}")


# ----------------------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", default="hfd-mse")
    ap.add_argument("--data-dir", default=os.path.expanduser("~/.cache/diffc"))
    ap.add_argument("--out-dir", default=os.path.join(REPO, "checkpoints"))
    ap.add_argument("--state-dir", default=os.path.expanduser("~/.cache/diffc/runs"))
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--m", type=int, default=96)
    ap.add_argument("--nz", type=int, default=48)
    ap.add_argument("--lambdas", default="0.0004,0.001,0.0025,0.006,0.015")
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--lr-end", type=float, default=5e-5)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--minutes", type=float, default=50.0)
    ap.add_argument("--max-steps", type=int, default=0)
    ap.add_argument("--export-every-min", type=float, default=10.0)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--synthetic", action="store_true")
    ap.add_argument("--eval-limit", type=int, default=0)
    ap.add_argument("--write-fixture", default=None, help="write the parity fixture to this path and exit")
    args = ap.parse_args()

    os.makedirs(args.state_dir, exist_ok=True)
    state_path = os.path.join(args.state_dir, args.name + ".state.pkl")
    ckpt = os.path.join(args.out_dir, args.name + ".safetensors")
    card_path = os.path.join(args.out_dir, args.name + ".json")

    if args.resume or args.write_fixture:
        with open(state_path, "rb") as fh:
            st = pickle.load(fh)
        cfg, p = st["cfg"], {k: jnp.asarray(v) for k, v in st["params"].items()}
        step0, secs0, hist = st["step"], st["seconds"], st.get("history", [])
    else:
        cfg = default_config(args)
        p = init_params(cfg, args.seed)
        step0, secs0, hist = 0, 0.0, []
    if args.write_fixture:
        write_fixture(p, cfg, args.write_fixture, ckpt)
        return

    opt = optax.chain(optax.clip_by_global_norm(args.clip),
                      optax.inject_hyperparams(optax.adam)(learning_rate=args.lr))
    opt_state = opt.init(p)
    if args.resume and "opt_state" in st:
        opt_state = jax.tree_util.tree_map(jnp.asarray, st["opt_state"])
    step_fn = make_train_step(cfg, opt)

    if args.synthetic:
        sampler = SyntheticSampler(args.crop, args.seed)
    else:
        paths = sorted(glob.glob(os.path.join(args.data_dir, "train", "*")))
        sampler = PhotoSampler(paths, args.crop, args.seed + step0)
    dev = load_dev(args.data_dir, args.eval_limit or None)
    R = len(cfg["lambdas"])
    rng = np.random.default_rng(args.seed + 7 + step0)
    batches = prefetch(sampler, args.batch)
    print(f"params {param_count(p)}, config {cfg}", flush=True)

    t0 = time.time()
    last_export = t0
    step = step0
    lr_now = args.lr
    while True:
        el = time.time() - t0
        if el > args.minutes * 60 or (args.max_steps and step - step0 >= args.max_steps):
            break
        # linear warm-up, then cosine decay over the wall-clock budget
        frac = min(1.0, el / (args.minutes * 60))
        lr_now = args.lr_end + 0.5 * (args.lr - args.lr_end) * (1 + math.cos(math.pi * frac))
        lr_now *= min(1.0, (step - step0 + 1) / args.warmup)
        opt_state[1].hyperparams["learning_rate"] = jnp.asarray(lr_now, jnp.float32)
        x = next(batches).astype(np.float32) / 255.0
        r = rng.integers(0, R, size=args.batch).astype(np.int32)
        ny = rng.uniform(-0.5, 0.5, (args.batch, args.crop // 16, args.crop // 16, cfg["m"])).astype(np.float32)
        nz = rng.uniform(-0.5, 0.5, (args.batch, args.crop // 64, args.crop // 64, cfg["nz"])).astype(np.float32)
        p, opt_state, loss, bpp, mse, gn = step_fn(p, opt_state, jnp.asarray(x), jnp.asarray(r),
                                                  jnp.asarray(ny), jnp.asarray(nz))
        step += 1
        if step % 50 == 0:
            bpp, mse = np.asarray(bpp), np.asarray(mse)
            per = " ".join(f"r{k}:{bpp[r == k].mean():.3f}b/{10*math.log10(1/max(mse[r == k].mean(),1e-10)):.1f}dB"
                           for k in range(R) if (r == k).any())
            print(f"step {step} loss {float(loss):.4f} gn {float(gn):.2f} lr {lr_now:.2e} "
                  f"{per} {time.time()-t0:.0f}s", flush=True)
        if time.time() - last_export > args.export_every_min * 60:
            _save(args, state_path, ckpt, card_path, p, opt_state, cfg, step, secs0 + time.time() - t0, hist, None)
            last_export = time.time()
    ev = evaluate(p, cfg, dev)
    for e in ev:
        print(f"eval rate {e['rate']} λ {e['lambda']}: ideal {e['ideal_bpp']:.4f} bpp, {e['psnr']:.2f} dB", flush=True)
    hist = hist + [f"steps {step0}-{step}: {' '.join(sys.argv[1:])}"]
    _save(args, state_path, ckpt, card_path, p, opt_state, cfg, step, secs0 + time.time() - t0, hist, ev)


def _save(args, state_path, ckpt, card_path, p, opt_state, cfg, step, secs, hist, ev):
    with open(state_path + ".tmp", "wb") as fh:
        pickle.dump({"cfg": cfg, "params": {k: np.asarray(v) for k, v in p.items()},
                     "opt_state": jax.tree_util.tree_map(np.asarray, opt_state),
                     "step": step, "seconds": secs, "history": hist}, fh)
    os.replace(state_path + ".tmp", state_path)
    save_checkpoint(ckpt, p, cfg, {"step": step})
    card = {}
    if os.path.exists(card_path):
        with open(card_path) as fh:
            card = json.load(fh)
    card.update({
        "name": args.name,
        "file": os.path.basename(ckpt),
        "architecture": "Ballé 2018 mean-scale hyperprior (small): g_a 4×conv5 s2 + GDN, g_s 4×(conv3 + depth-to-space) + IGDN, h_a/h_s conv + ReLU; gain units for variable rate",
        "config": cfg,
        "parameters": param_count(p),
        "objective": "bits/pixel + λ·255²·MSE (x in [0,1]), additive uniform noise for quantisation, per-element rate index",
        "data": "76 training photos (eval/data/fetch_data.py), random crops of 2-4× box-downscaled copies, flips",
        "steps": step,
        "batch": args.batch,
        "crop": args.crop,
        "train_seconds": round(secs, 1),
        "hardware": f"{platform.machine()}, {os.cpu_count()} CPU cores, JAX {jax.__version__} on {jax.default_backend()}",
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "code_revision": git_rev(),
        "history": hist,
        "training_command": "python notebooks/train_hfd_mse.py " + " ".join(sys.argv[1:]),
    })
    if ev is not None:
        write_fixture(p, cfg, os.path.join(REPO, "tests", "fixtures", "hfd_mse_parity.safetensors"), ckpt)
        card["dev24_jax_eval"] = {"note": "JAX, rounding, ideal (discretised-Gaussian) bits, not a bitstream; real files: eval/results",
                                  "rates": ev}
    with open(card_path + ".tmp", "w") as fh:
        json.dump(card, fh, indent=2)
    os.replace(card_path + ".tmp", card_path)
    print(f"saved step {step}", flush=True)


if __name__ == "__main__":
    main()
