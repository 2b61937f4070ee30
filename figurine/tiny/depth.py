"""A tiny random Depth Anything V2 with the real checkpoint's layout, for tests and smoke runs.

    from figurine.tiny.depth import write_depth
    write_depth(Path("/tmp/tiny-weights/depth-anything-v2-small"))
    python scripts/make_tiny_weights.py /tmp/tiny-weights --depth    # writes it with the whole tree

Writes what depth-anything/Depth-Anything-V2-Small-hf holds: config.json
(DepthAnythingForDepthEstimation over a DINOv2 backbone), model.safetensors and
preprocessor_config.json (DPTImageProcessor: 518 px, aspect kept, multiple of 14, ImageNet
mean/std; the very file the real repo publishes). figurine loads it with transformers' own classes exactly as the real one; only the
sizes are tiny (hidden 32 instead of 384, 4 layers instead of 12: about 0.1 MB) and the weights
random, so the depth it predicts is noise (but noise that varies, so the relief code uses it).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

# The real checkpoint's preprocessor_config.json at the pinned revision, key for key: written with
# json.dumps(indent=2, sort_keys=True) plus a newline it is byte-identical to the published file
# (its sha256 is the one pinned in configs/weights.toml), so the loader reads exactly that file.
PROCESSOR = {
    "_valid_processor_keys": ["images", "do_resize", "size", "keep_aspect_ratio", "ensure_multiple_of", "resample",
                              "do_rescale", "rescale_factor", "do_normalize", "image_mean", "image_std", "do_pad",
                              "size_divisor", "return_tensors", "data_format", "input_data_format"],
    "do_normalize": True, "do_pad": False, "do_rescale": True, "do_resize": True,
    "ensure_multiple_of": 14, "image_mean": [0.485, 0.456, 0.406],
    "image_processor_type": "DPTImageProcessor", "image_std": [0.229, 0.224, 0.225],
    "keep_aspect_ratio": True, "resample": 3, "rescale_factor": 0.00392156862745098,
    "size": {"height": 518, "width": 518}, "size_divisor": None,
}


def tiny_config():
    """DepthAnythingConfig shaped like V2 Small (4 tapped backbone stages, reassemble factors
    4/2/1/0.5, patch 14), at tiny widths."""
    from transformers import DepthAnythingConfig, Dinov2Config

    backbone = Dinov2Config(
        hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
        image_size=518, patch_size=14, out_indices=[1, 2, 3, 4], reshape_hidden_states=False,
        initializer_range=0.2,
    )
    return DepthAnythingConfig(
        backbone_config=backbone, patch_size=14, reassemble_hidden_size=32,
        reassemble_factors=[4, 2, 1, 0.5], neck_hidden_sizes=[8, 16, 32, 32],
        fusion_hidden_size=16, head_hidden_size=8, depth_estimation_type="relative",
        # Wider random weights than the default 0.02: with those the tiny head's output is ~1e-7
        # everywhere (a flat map), and the relief code would never see a depth that varies.
        initializer_range=0.2,
    )


def write_depth(folder: Path, seed: int = 0) -> Path:
    """Write the tiny model (float32 safetensors, as the real repo) and its processor config."""
    import torch
    from transformers import DepthAnythingForDepthEstimation

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = DepthAnythingForDepthEstimation(tiny_config()).eval()
    model.save_pretrained(folder, safe_serialization=True)
    (folder / "preprocessor_config.json").write_text(json.dumps(PROCESSOR, indent=2, sort_keys=True) + "\n")
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="folder to write (e.g. WEIGHTS/depth-anything-v2-small)")
    args = parser.parse_args(argv)
    print(f"tiny depth model written to {write_depth(args.folder)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
