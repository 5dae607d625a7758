#!/usr/bin/env python3
"""Full-size Stable Diffusion 1.5 and 2.1 (768-v) diffusers folders with RANDOM weights, built
from the published configs written out below (no model hub): for testing loaders, memory and
speed of the Rust side at real sizes. Their outputs mean nothing. Nothing here goes into git.

Environment: the venv of notebooks/make_sd_fixtures.py (notebooks/requirements-sd.txt):

    python3 -m venv /root/.cache/diffc/venv-sd
    /root/.cache/diffc/venv-sd/bin/pip install -r notebooks/requirements-sd.txt

Command (from the repository root):

    HF_HUB_OFFLINE=1 nice -n 10 /root/.cache/diffc/venv-sd/bin/python \\
        notebooks/make_sd_random_full.py [--out /root/.cache/diffc/sd-random] [--fp16] \\
        [--models sd15,sd21]

writes OUT/sd15 and OUT/sd21, each: model_index.json, unet/, vae/, text_encoder/, scheduler/
(float32 `diffusion_pytorch_model.safetensors` / `model.safetensors`; with --fp16 also the
`variant="fp16"` files `*.fp16.safetensors` next to them, as the hub repositories have them).
Measured on the 2-core dev machine: SD 1.5 float32 4.3 GB (UNet 3.4 GB, VAE 335 MB, CLIP-L
492 MB); SD 2.1 float32 5.2 GB (OpenCLIP-H text encoder 1.4 GB); --fp16 adds half of that again.

Weights: torch/transformers default init under torch.manual_seed(0). Like the hub checkpoints,
the text encoder keys carry the `text_model.` prefix (transformers >= 5 writes them without it;
we add it back -- see make_sd_fixtures.py). The text encoder configs keep the published
bos/eos/pad ids (0/2/1, as the hub's text_encoder/config.json say); they do not matter for
last_hidden_state.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

import torch
from diffusers import (AutoencoderKL, DDIMScheduler, PNDMScheduler, StableDiffusionPipeline,
                       UNet2DConditionModel)
from transformers import CLIPTextConfig, CLIPTextModel

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_sd_fixtures import add_text_model_prefix  # noqa: E402

DOWN = ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"]
UP = ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]

# unet/config.json of SD 1.5 (stable-diffusion-v1-5)
UNET_SD15 = dict(
    act_fn="silu", attention_head_dim=8, block_out_channels=[320, 640, 1280, 1280],
    center_input_sample=False, cross_attention_dim=768, down_block_types=DOWN,
    downsample_padding=1, flip_sin_to_cos=True, freq_shift=0, in_channels=4, layers_per_block=2,
    mid_block_scale_factor=1, norm_eps=1e-5, norm_num_groups=32, out_channels=4, sample_size=64,
    up_block_types=UP,
)
# unet/config.json of SD 2.1 (stable-diffusion-2-1, 768-v). attention_head_dim is the number
# of heads per block (diffusers' historic misnaming): 320/5 = 640/10 = 1280/20 = 64 wide.
UNET_SD21 = dict(
    UNET_SD15, attention_head_dim=[5, 10, 20, 20], cross_attention_dim=1024,
    dual_cross_attention=False, num_class_embeds=None, only_cross_attention=False,
    resnet_time_scale_shift="default", sample_size=96, upcast_attention=True,
    use_linear_projection=True,
)
# vae/config.json (SD 1.5: sample_size 512; SD 2.1: 768)
VAE = dict(
    act_fn="silu", block_out_channels=[128, 256, 512, 512],
    down_block_types=["DownEncoderBlock2D"] * 4, in_channels=3, latent_channels=4,
    layers_per_block=2, norm_num_groups=32, out_channels=3, sample_size=512,
    up_block_types=["UpDecoderBlock2D"] * 4, scaling_factor=0.18215,
)
# text_encoder/config.json: CLIP ViT-L/14 text tower (SD 1.x) and OpenCLIP ViT-H/14 (SD 2.x,
# 23 of its 24 layers: SD 2 uses the penultimate layer)
TEXT_SD15 = dict(
    attention_dropout=0.0, bos_token_id=0, eos_token_id=2, pad_token_id=1,
    hidden_act="quick_gelu", hidden_size=768, initializer_factor=1.0, initializer_range=0.02,
    intermediate_size=3072, layer_norm_eps=1e-5, max_position_embeddings=77,
    num_attention_heads=12, num_hidden_layers=12, projection_dim=768, vocab_size=49408,
)
TEXT_SD21 = dict(
    TEXT_SD15, hidden_act="gelu", hidden_size=1024, intermediate_size=4096,
    num_attention_heads=16, num_hidden_layers=23, projection_dim=512,
)
# scheduler/scheduler_config.json
SCHED_SD15 = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                  num_train_timesteps=1000, trained_betas=None, set_alpha_to_one=False,
                  skip_prk_steps=True, steps_offset=1, prediction_type="epsilon")
SCHED_SD21 = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                  num_train_timesteps=1000, trained_betas=None, set_alpha_to_one=False,
                  clip_sample=False, steps_offset=1, prediction_type="v_prediction")

MODELS = {
    "sd15": dict(unet=UNET_SD15, vae=VAE, text=TEXT_SD15, sched_cls=PNDMScheduler,
                 sched=SCHED_SD15),
    "sd21": dict(unet=UNET_SD21, vae=dict(VAE, sample_size=768), text=TEXT_SD21,
                 sched_cls=DDIMScheduler, sched=SCHED_SD21),
}


def size_of(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def save_fp16_variant(model, folder: Path) -> None:
    """Save `model` in float16 with variant="fp16" into `folder`, keeping its config.json."""
    with tempfile.TemporaryDirectory(dir=folder.parent) as tmp:
        model.to(torch.float16).save_pretrained(tmp, variant="fp16")
        for f in Path(tmp).iterdir():
            if f.name != "config.json":
                shutil.move(str(f), str(folder / f.name))


def build(name: str, spec: dict, out: Path, fp16: bool) -> None:
    folder = out / name
    if folder.exists():
        shutil.rmtree(folder)
    t0 = time.time()
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**spec["unet"]).eval()
    vae = AutoencoderKL(**spec["vae"]).eval()
    text = CLIPTextModel(CLIPTextConfig(**spec["text"])).eval()
    sched = spec["sched_cls"](**spec["sched"])
    t1 = time.time()
    for what, m in (("unet", unet), ("vae", vae), ("text_encoder", text)):
        print(f"[{name}] {what}: {sum(p.numel() for p in m.parameters()) / 1e6:.1f} M params")
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=None, unet=unet,
                                   scheduler=sched, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.save_pretrained(str(folder))
    add_text_model_prefix(folder / "text_encoder" / "model.safetensors")
    if fp16:
        for sub, m in (("unet", unet), ("vae", vae), ("text_encoder", text)):
            save_fp16_variant(m, folder / sub)
        add_text_model_prefix(folder / "text_encoder" / "model.fp16.safetensors")
    t2 = time.time()
    print(f"[{name}] init {t1 - t0:.0f} s, save {t2 - t1:.0f} s -> {folder}")
    for sub in ("unet", "vae", "text_encoder"):
        for f in sorted((folder / sub).iterdir()):
            print(f"  {f.stat().st_size / 1e6:10.1f} MB  {sub}/{f.name}")
    print(f"  total {size_of(folder) / 1e9:.2f} GB")
    del pipe, unet, vae, text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("/root/.cache/diffc/sd-random"))
    ap.add_argument("--fp16", action="store_true", help='also save the variant="fp16" files')
    ap.add_argument("--models", default="sd15,sd21", help="comma list from: sd15, sd21")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.models.split(","):
        build(name, MODELS[name], args.out, args.fp16)


if __name__ == "__main__":
    main()
