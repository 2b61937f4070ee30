"""Depth: Depth Anything V2 Small on the figure picture, from local weights only.

    from pathlib import Path
    from PIL import Image
    from figurine.print3d import depth
    folder = depth.model_folder(Path("weights"))            # weights/depth-anything-v2-small
    if depth.available(folder):
        est = depth.estimate(Image.open("ada.run/figure-0-matte.png"), folder, device="cpu", dtype="float32")
        print(est.disparity.shape, est.dtype, est.seconds)   # (H, W) float32, larger = nearer

The model is transformers' own DepthAnythingForDepthEstimation with its DPTImageProcessor, as
published in depth-anything/Depth-Anything-V2-Small-hf (Apache-2.0; pinned in
configs/weights.toml, fetched with `figurine weights fetch --optional`). Nothing is downloaded
here: both load with local_files_only from the weights folder. Tests run the same code on a
tiny random model of the same architecture (figurine/tiny/depth.py).

1. Check the folder: the three files present, config.json a plain JSON object naming this
   architecture (the folder is untrusted), the safetensors header sound.
2. Load processor and model (float32 on the CPU by default, float16 on a GPU).
3. The figure is shown to the model as generated: its cut-out on the plain light grey backdrop.
4. Predict, and resize the prediction back to the picture (the processor's own post-processing).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from figurine.errors import ConfigError, WeightsError

FOLDER = "depth-anything-v2-small"
FILES = ("config.json", "model.safetensors", "preprocessor_config.json")
METHOD = "depth-anything-v2-small"
BACKDROP_RGB = (210, 210, 210)  # figurine.matte.BACKDROP_RGB: what the generator draws behind figures


@dataclass
class Estimate:
    disparity: np.ndarray  # float32 (H, W) over the whole picture; larger = nearer
    device: str
    dtype: str
    seconds: float


def model_folder(weights_root: Path) -> Path:
    return Path(weights_root) / FOLDER


def available(folder: Path) -> bool:
    return all((Path(folder) / f).is_file() for f in FILES)


def runtime(device: str = "auto", dtype: str = "auto") -> tuple[str, str]:
    """'auto' resolved: CUDA when torch sees one; float16 there, float32 on the CPU."""
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("runtime.device is 'cuda' but no CUDA GPU is visible to torch")
    dev = "cuda" if device == "cuda" or (device == "auto" and torch.cuda.is_available()) else "cpu"
    dt = ("float16" if dev == "cuda" else "float32") if dtype == "auto" else dtype
    if dt not in ("float16", "bfloat16", "float32"):
        raise ConfigError(f"unknown dtype '{dt}'")
    return dev, dt


def check_folder(folder: Path) -> None:
    """Step 1: WeightsError naming what is wrong with the folder."""
    from figurine.weights import check_safetensors, require

    folder = Path(folder)
    require([folder / f for f in FILES])
    for name in ("config.json", "preprocessor_config.json"):
        try:
            data = json.loads((folder / name).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise WeightsError(f"{folder / name}: not readable JSON ({e.__class__.__name__})") from None
        if not isinstance(data, dict):
            raise WeightsError(f"{folder / name}: not a JSON object")
        if name == "config.json" and (data.get("model_type") != "depth_anything"
                                      or data.get("architectures") != ["DepthAnythingForDepthEstimation"]):
            raise WeightsError(f"{folder / name}: not a Depth Anything depth-estimation model")
    check_safetensors(folder / "model.safetensors")


def estimate(rgba, folder: Path, device: str = "auto", dtype: str = "auto") -> Estimate:
    """Steps 1-4 of the module docstring."""
    import torch
    import transformers
    from PIL import Image
    from transformers import AutoImageProcessor, DepthAnythingForDepthEstimation

    check_folder(folder)  # 1
    dev, dt = runtime(device, dtype)
    t0 = time.perf_counter()
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()  # no "Loading weights" bar on the terminal
    try:  # 2
        processor = AutoImageProcessor.from_pretrained(str(folder), local_files_only=True)
        model = DepthAnythingForDepthEstimation.from_pretrained(
            str(folder), local_files_only=True, dtype=getattr(torch, dt), use_safetensors=True)
    except (OSError, ValueError) as e:
        raise WeightsError(f"{folder}: the depth model did not load ({e})") from None
    finally:
        if bars:
            transformers.utils.logging.enable_progress_bar()
    model = model.to(dev).eval()

    # 3. On the backdrop.
    picture = Image.new("RGB", rgba.size, BACKDROP_RGB)
    picture.paste(rgba.convert("RGB"), mask=rgba.getchannel("A"))
    inputs = processor(images=picture, return_tensors="pt")

    # 4. Predict, back to the picture's size.
    with torch.inference_mode():
        out = model(pixel_values=inputs["pixel_values"].to(dev, getattr(torch, dt)))
        out.predicted_depth = out.predicted_depth.float()
        post = processor.post_process_depth_estimation(out, target_sizes=[(rgba.height, rgba.width)])
    disparity = post[0]["predicted_depth"].float().cpu().numpy().astype(np.float32)
    if disparity.shape != (rgba.height, rgba.width) or not np.isfinite(disparity).all():
        raise WeightsError(f"{folder}: the depth model gave no usable depth map ({dt} on {dev})")
    return Estimate(disparity, dev, dt, round(time.perf_counter() - t0, 3))


def file_hashes(folder: Path, weights_root: Path) -> dict[str, str]:
    """sha256 of the model's files, named relative to the weights root (for the stage key)."""
    import os

    from figurine.weights import file_hashes as hashes

    out = hashes([Path(folder) / f for f in FILES], weights_root)
    return {os.path.relpath(k, weights_root) if Path(k).is_relative_to(weights_root) else Path(k).name: v
            for k, v in sorted(out.items())}
