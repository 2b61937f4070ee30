"""One place for the facts several stages share: sizes, schedulers, slots, file naming.

    from figurine import limits
    limits.SIZES["story"]              # (1080, 1920)
    limits.slug("Ada Lovelace")        # 'ada-lovelace'
    limits.run_dir_for(Path("ada.png"))   # ada.run

Imports nothing heavy: the config checks its choices against these before any model loads.
"""

from __future__ import annotations

import re
from pathlib import Path

# Package pictures: name -> (width, height) in pixels.
SIZES: dict[str, tuple[int, int]] = {"social": (1080, 1350), "story": (1080, 1920)}

# The accessory tray's compartments: the box draws at most this many items.
MAX_ACCESSORY_SLOTS = 4

# Schedulers by figurine's short name: diffusers class, its settings, and the sampler name
# AUTOMATIC1111 writes (read by A1111's PNG Info tab and CivitAI).
SCHEDULERS: dict[str, tuple[str, dict, str]] = {
    # h94's FaceID SDXL model card: DDIM with clip_sample and set_alpha_to_one off (as SDXL base's
    # own scheduler config has them; stated here so any base config gets the card's).
    "ddim": ("DDIMScheduler", {"clip_sample": False, "set_alpha_to_one": False}, "DDIM"),
    "euler": ("EulerDiscreteScheduler", {}, "Euler"),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}, "Euler a"),
    "dpmpp_2m_karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True, "algorithm_type": "dpmsolver++"},
                        "DPM++ 2M Karras"),
    "dpmpp_2m": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++"}, "DPM++ 2M"),
    "unipc": ("UniPCMultistepScheduler", {}, "UniPC"),
    "lcm": ("LCMScheduler", {}, "LCM"),
}

# Output pictures, by extension.
OUTPUT_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}


def slug(name: str) -> str:
    """A file name from a person's name: 'Ada Lovelace' -> 'ada-lovelace' (at most 60 characters)."""
    return re.sub(r"[^\w-]+", "-", name.strip().lower()).strip("-")[:60].strip("-") or "figure"


def run_dir_for(output: Path) -> Path:
    """OUT.png -> OUT.run, next to it."""
    return Path(output).with_name(Path(output).stem + ".run")


def sidecar_for(output: Path) -> Path:
    """OUT.png -> OUT.json: the settings beside the picture."""
    return Path(output).with_suffix(".json")
