"""Check that figurine's quality-neutral speed settings leave the output unchanged.

    python scripts/check_speedups.py                       # GPU: full-size random weights; CPU: tiny
    python scripts/check_speedups.py --arch configs/arch-tiny --changes channels_last,fuse_qkv,fp16_vae
    python scripts/check_speedups.py --steps 30 --out speedups.json

Each change is run on random weights (figurine.random_weights, the same seed so the same weights)
through figurine's own Generator, with the same prompt, pose, face embedding and noise seed as the
plain path, and compared with the plain path:

    plain         channels_last off, fuse_qkv off, compile off, VAE in fp32
    repeat        the plain path again: the noise floor of this machine's kernels
    channels_last runtime.channels_last = true
    fuse_qkv      fused q/k/v projections (generate.fuse_plain_attention; the Generator does this
                  only on CUDA, so on the CPU this script fuses the same layers itself)
    fp16_vae      the VAE (fp16-fix architecture, force_upcast false) decodes in the model dtype
    compile       runtime.compile = true (torch.compile of UNet and ControlNet; minutes to compile)
    other_seed    a different noise seed: a NEGATIVE control that must exceed the tolerance,
                  showing the comparison can see a real difference

Reported per change: max |a - b| and relative L2 distance ||a - b|| / ||a|| of the final latents,
and max / mean |a - b| of the decoded pixels (0..1). Tolerance, stated and checked:
    latents relative L2   <= 1e-4 (float32)  or 2e-2 (float16 / bfloat16)
    pixels mean |a - b|   <= 0.5/255 (float32) or 2/255 (float16 / bfloat16)
Random weights amplify rounding over many steps more than trained ones do, so these bounds are a
check that nothing changed in kind (a lost adapter, a wrong layout), not a perceptual metric.
Exit status 0 when every change is within tolerance and the negative control is not, else 1.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHANGES = ("channels_last", "fuse_qkv", "fp16_vae", "compile")
TOLERANCE = {  # model dtype -> (latents relative L2, pixels mean abs)
    "float32": (1e-4, 0.5 / 255),
    "float16": (2e-2, 2 / 255),
    "bfloat16": (2e-2, 2 / 255),
}


def variant_config(base, change: str | None):
    """The plain configuration, with one change switched on."""
    cfg = copy.deepcopy(base)
    rt = cfg.runtime
    rt.channels_last, rt.fuse_qkv, rt.compile, rt.vae_fp32 = False, False, False, True
    rt.memory = "none"
    if change == "channels_last":
        rt.channels_last = True
    elif change == "fuse_qkv":
        rt.fuse_qkv = True
    elif change == "compile":
        rt.compile = True
    elif change == "fp16_vae":
        rt.vae_fp32 = False
    return cfg


def run_once(cfg, runtime, arch: Path, change: str | None, seed: int, inputs: dict) -> dict:
    """Build random weights (same seed: same weights), run figurine's path, return outputs."""
    import numpy as np
    import torch

    from figurine import random_weights
    from figurine.generate import Generator, fuse_plain_attention

    t0 = time.perf_counter()
    pipe = random_weights.build_pipeline(cfg, runtime, arch_dir=arch, seed=0)
    gen = Generator.from_components(cfg, pipe, runtime)
    fused = getattr(gen, "fused_layers", None)
    if change == "fuse_qkv" and runtime.device != "cuda":
        fused = fuse_plain_attention(pipe.unet, pipe.controlnet, pipe.vae)
    if change == "fp16_vae" and runtime.dtype == torch.float32:
        pipe.vae.to(torch.float16)  # on a float32 runtime: decode in fp16 to show what it changes
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    latents = gen.figure(inputs["prompt"], inputs["negative"], inputs["control"], inputs["face"], seed=seed)
    image = gen.decode(latents)[0]
    seconds = time.perf_counter() - t0
    out = {"latents": latents.float().cpu(), "pixels": np.asarray(image, dtype=np.float32) / 255.0,
           "seconds": seconds, "build_seconds": build, "fused_layers": fused,
           "vae_dtype": str(next(pipe.vae.parameters()).dtype).replace("torch.", "")}
    del gen, pipe
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return out


def compare(plain: dict, other: dict) -> dict:
    import numpy as np

    a, b = plain["latents"], other["latents"]
    diff = (a - b).abs()
    norm = float(a.norm()) or 1.0
    pa, pb = plain["pixels"], other["pixels"]
    finite = bool(a.isfinite().all() and b.isfinite().all())
    return {"latents_max_abs": float(diff.max()), "latents_rel_l2": float((a - b).norm()) / norm,
            "pixels_max_abs": float(np.abs(pa - pb).max()), "pixels_mean_abs": float(np.abs(pa - pb).mean()),
            "finite": finite}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, help="settings (default: configs/bench-30step.toml on a GPU, "
                        "configs/tiny.toml on the CPU)")
    parser.add_argument("--arch", type=Path, help="architecture folder (default: configs/arch on a GPU, "
                        "configs/arch-tiny on the CPU)")
    parser.add_argument("--changes", default=",".join(CHANGES),
                        help=f"comma-separated subset of {','.join(CHANGES)} (default: all)")
    parser.add_argument("--steps", type=int, help="denoising steps (default: the config's)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    from figurine import prompt
    from figurine.config import load_config
    from figurine.generate import choose_runtime
    from figurine.pose import load_preset, render_pose

    changes = [c.strip() for c in args.changes.split(",") if c.strip()]
    unknown = [c for c in changes if c not in CHANGES]
    if unknown:
        parser.error(f"unknown change(s) {', '.join(unknown)}; choose from {', '.join(CHANGES)}")
    gpu = torch.cuda.is_available()
    config = args.config or ROOT / "configs" / ("bench-30step.toml" if gpu else "tiny.toml")
    arch = args.arch or ROOT / "configs" / ("arch" if gpu else "arch-tiny")
    base = load_config([config])
    if args.steps:
        base.generation.steps = args.steps
    runtime = choose_runtime(variant_config(base, None))
    dtype = str(runtime.dtype).replace("torch.", "")
    tol_latents, tol_pixels = TOLERANCE[dtype]
    g = base.generation
    prompts = prompt.build_prompts("Speed Check", tagline="Test Pilot")
    face = np.random.default_rng(0).standard_normal(512).astype(np.float32)
    inputs = {"prompt": prompts.figure, "negative": prompts.figure_negative, "face": face / np.linalg.norm(face),
              "control": render_pose(load_preset(base.pose.preset), g.width, g.height, base.pose.limb_width,
                                     base.pose.point_radius)}
    print(f"device {runtime.device}, {dtype}, {g.width}x{g.height}, {g.steps} steps, arch {arch}")
    print(f"tolerance: latents relative L2 <= {tol_latents:g}, pixels mean |diff| <= {tol_pixels * 255:g}/255")

    plain = run_once(variant_config(base, None), runtime, arch, None, args.seed, inputs)
    if not bool(plain["latents"].isfinite().all()):
        print("the plain path's output is not finite (random weights overflowed): no comparison possible")
        return 1
    rows = []
    runs = [("repeat", None, args.seed)] + [(c, c, args.seed) for c in changes] + [("other_seed", None, args.seed + 1)]
    for label, change, seed in runs:
        other = run_once(variant_config(base, change), runtime, arch, change, seed, inputs)
        d = compare(plain, other)
        within = d["finite"] and d["latents_rel_l2"] <= tol_latents and d["pixels_mean_abs"] <= tol_pixels
        ok = not within if label == "other_seed" else within
        rows.append({"change": label, **d, "within_tolerance": within, "ok": ok, "seconds": other["seconds"],
                     "fused_layers": other["fused_layers"], "vae_dtype": other["vae_dtype"]})
        print(f"{label:13s} latents max {d['latents_max_abs']:.3g} rel {d['latents_rel_l2']:.3g}; "
              f"pixels max {d['pixels_max_abs'] * 255:.3g}/255 mean {d['pixels_mean_abs'] * 255:.3g}/255; "
              f"{other['seconds']:.2f} s; "
              + ("ok" if ok else "FAILED") + (" (negative control: must differ)" if label == "other_seed" else ""))
    report = {"device": runtime.device, "dtype": dtype, "config": str(config), "arch": str(arch),
              "width": g.width, "height": g.height, "steps": g.steps, "seed": args.seed,
              "tolerance": {"latents_rel_l2": tol_latents, "pixels_mean_abs": tol_pixels},
              "plain_seconds": plain["seconds"], "results": rows}
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
