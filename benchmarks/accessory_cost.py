"""What generating accessories at SDXL's 1024² instead of 512² costs, in floating-point work.

    python benchmarks/accessory_cost.py        # about a minute on a CPU; writes nothing, prints a table

Counts the FLOPs of one denoising step (PyTorch's FlopCounterMode over the full-size SDXL UNet,
and the xinsir ControlNet for the figure, built from configs/arch/ on the meta device: shapes
only, no weights, no GPU) at the accessory sizes, and puts them beside the figure's. Time on a
GPU follows the FLOPs closely for these large convolution/attention shapes; `figurine bench`
reports the accessories stage's measured seconds and joules on your GPU.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from figurine import random_weights  # noqa: E402
from figurine.config import load_config  # noqa: E402


def step_flops(model, width: int, height: int, controlnet: bool = False) -> float:
    """FLOPs of one classifier-free-guided step (batch 2) at width x height."""
    with torch.device("meta"):
        x = torch.randn(2, 4, height // 8, width // 8)
        t = torch.tensor([500, 500])
        ctx = torch.randn(2, 77, 2048)
        added = {"text_embeds": torch.randn(2, 1280), "time_ids": torch.randn(2, 6)}
        kwargs = {"controlnet_cond": torch.randn(2, 3, height, width), "conditioning_scale": 0.8} if controlnet else {}
        with FlopCounterMode(display=False) as counter:
            model(x, t, encoder_hidden_states=ctx, added_cond_kwargs=added, **kwargs)
    return counter.get_total_flops()


def main() -> int:
    import diffusers

    diffusers.utils.logging.set_verbosity_error()
    parts = random_weights.build_components(torch.float16, "cpu", random_weights.ARCH_DIR, empty=True)
    cfg = load_config()
    g, a = cfg.generation, cfg.accessories
    figure_step = step_flops(parts["unet"], g.width, g.height) + step_flops(parts["controlnet"], g.width, g.height,
                                                                            controlnet=True)
    figure = figure_step * g.steps
    print(f"figure: {g.width}x{g.height}, {g.steps} steps, UNet + ControlNet: {figure / 1e12:.0f} TFLOP")
    print("| accessory size | TFLOP per step | TFLOP per accessory | vs one figure |")
    print("|---|---|---|---|")
    for side in (512, 768, 1024):
        step = step_flops(parts["unet"], side, side)
        print(f"| {side}x{side} | {step / 1e12:.2f} | {step * a.steps / 1e12:.0f} ({a.steps} steps) | "
              f"{step * a.steps / figure:.0%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
