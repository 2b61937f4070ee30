"""Write a complete figurine weights tree with tiny random models and the real file layout.

    from figurine.tiny.weights import write_tree
    write_tree("/tmp/tiny-weights")

    python -m figurine.tiny.weights /tmp/tiny-weights        # the same from the shell
    python scripts/make_tiny_weights.py /tmp/tiny-weights    # the same, from a clone
    figurine make photo.jpg --name Ada --weights /tmp/tiny-weights --config tiny

Every loader in figurine runs on this tree exactly as on the real weights (same folders, file
names, fp16 variants, config files, state-dict keys, ONNX signatures); only the numbers are
random, so the pictures are noise. Takes a few seconds on a CPU and about 10 MB of disk.

The models are built by figurine.random_weights.build_components from configs/arch-tiny/, the
same builder `figurine bench --random-weights` uses at full size: one definition of each shape.
No layer is left at zero (diffusers starts a ControlNet's outputs at zero): the pose, the face
adapter, its LoRA and the VAE all change the picture, so tests comparing outputs can see them.

Layout (see configs/weights.toml for the real files):
    sdxl-base/                 StableDiffusionXLPipeline folder, fp16 variant files
    sdxl-vae-fp16-fix/         AutoencoderKL (its own random weights, no upcast)
    controlnet-openpose-sdxl/  ControlNetModel
    ip-adapter-faceid/ip-adapter-faceid_sdxl.safetensors   FaceID projection, to_k_ip/to_v_ip, LoRA
    ip-adapter-faceid/ip-adapter-faceid-plusv2_sdxl.safetensors   Plus V2: + perceiver resampler
    clip-vit-h-14-image-encoder/  CLIPVisionModelWithProjection (ViT-H/14 layout, tiny widths)
    insightface/buffalo_l/     det_10g.onnx, w600k_r50.onnx (synthetic; see insightface.py)
    birefnet-lite/model.onnx   the learned cut-out's graph signature, fixed layers (birefnet.py)
    annotators/                body_pose_model.safetensors, with --annotators (annotators.py)
    depth-anything-v2-small/   Depth Anything V2 for `figurine print3d`, with --depth (depth.py)

torch, diffusers and onnx are imported inside the functions: importing this module is cheap.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def write_tokenizer(folder: Path) -> None:
    """The real repos' tokenizer files: vocab.json, merges.txt (no merges here), tokenizer_config.json."""
    from figurine import random_weights

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tokenizer.json").unlink(missing_ok=True)
    (folder / "special_tokens_map.json").write_text(json.dumps({
        "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
    }, indent=2))
    (folder / "vocab.json").write_text(json.dumps(random_weights.byte_level_vocab()))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
    }, indent=2))


def write_tree(root: str | Path, seed: int = 0, annotators: bool = False, depth: bool = False) -> Path:
    """Write the whole tiny tree under `root` (created) and return it; `annotators` adds the
    OpenPose body annotator (real architecture, ~105 MB), `depth` a tiny Depth Anything V2."""
    import diffusers
    import transformers

    from figurine.tiny.annotators import write_annotators
    from figurine.tiny.birefnet import write_model
    from figurine.tiny.insightface import write_pack

    root = Path(root)
    # Quiet while building (one line of output, not a bar per model), as before afterwards.
    verbosity, bars = diffusers.utils.logging.get_verbosity(), transformers.utils.logging.is_progress_bar_enabled()
    diffusers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    try:
        _write_models(root, seed)
    finally:
        diffusers.utils.logging.set_verbosity(verbosity)
        if bars:
            transformers.utils.logging.enable_progress_bar()
    # 4. insightface's buffalo_l pack, the cut-out model and the OpenPose annotator, synthetic.
    write_pack(root / "insightface" / "buffalo_l")
    write_model(root / "birefnet-lite" / "model.onnx")
    if annotators:
        write_annotators(root / "annotators")
    if depth:
        from figurine.tiny.depth import write_depth

        write_depth(root / "depth-anything-v2-small")
    from figurine.weights import record_hashes

    record_hashes(root, source="figurine tiny test weights")  # so `runtime.verify_weights` works on them too
    return root


def _write_models(root: Path, seed: int) -> None:
    """Steps 1-3 of write_tree: the diffusers models and the FaceID adapter."""
    import torch
    from diffusers import AutoencoderKL, StableDiffusionXLPipeline
    from safetensors.torch import save_file

    from figurine import random_weights  # the shared builder

    arch_dir = random_weights.TINY_ARCH_DIR
    # 1. Every model from configs/arch-tiny, in float32, then saved as the real repos store them.
    parts = random_weights.build_components(torch.float32, "cpu", arch_dir, seed=seed)
    faceid = parts.pop("faceid")
    # SDXL base's own VAE upcasts to fp32 (force_upcast); the fp16-fix one (from arch) does not.
    torch.manual_seed(seed + 1)
    base_vae = AutoencoderKL(**{**random_weights.read_arch("vae", arch_dir), "force_upcast": True})
    base = StableDiffusionXLPipeline(
        vae=base_vae, text_encoder=parts["text_encoder"], text_encoder_2=parts["text_encoder_2"],
        tokenizer=parts["tokenizer"], tokenizer_2=parts["tokenizer_2"], unet=parts["unet"],
        scheduler=parts["scheduler"],
    )
    base.to(torch.float16).save_pretrained(root / "sdxl-base", variant="fp16")
    for name in ("tokenizer", "tokenizer_2"):
        write_tokenizer(root / "sdxl-base" / name)
    # 2. The fp16-fix VAE and the OpenPose ControlNet.
    parts["vae"].to(torch.float16).save_pretrained(root / "sdxl-vae-fp16-fix")
    parts["controlnet"].to(torch.float16).save_pretrained(root / "controlnet-openpose-sdxl")
    # 3. The FaceID adapter, as h94's file has it once converted (flat image_proj.* / ip_adapter.*).
    (root / "ip-adapter-faceid").mkdir(parents=True, exist_ok=True)
    adapter = random_weights.faceid_state_dict(
        parts["unet"], lora_rank=faceid["lora_rank"], num_tokens=faceid["num_tokens"],
        id_dim=faceid["id_embedding_dim"], hidden_dim=faceid["hidden_dim"], dtype=torch.float16, seed=1,
        std=0.1, lora_std=0.25)
    save_file(adapter, root / "ip-adapter-faceid" / "ip-adapter-faceid_sdxl.safetensors")
    # 3b. FaceID Plus V2: its CLIP image encoder (saved as h94/IP-Adapter's models/image_encoder,
    #     float32 like the real file) and the adapter, with the real file's key layout.
    encoder = random_weights.build_image_encoder(torch.float32, "cpu", arch_dir, seed=seed + 2)
    encoder.save_pretrained(root / "clip-vit-h-14-image-encoder")
    plus = random_weights.read_arch("faceid_plusv2", arch_dir)
    plus_adapter = random_weights.faceid_plus_state_dict(
        parts["unet"], encoder.config.hidden_size, lora_rank=plus["lora_rank"], num_tokens=plus["num_tokens"],
        id_dim=plus["id_embedding_dim"], depth=plus["depth"], dim_head=plus["dim_head"], ff_mult=plus["ff_mult"],
        dtype=torch.float16, seed=2, std=0.1, lora_std=0.25)
    save_file(plus_adapter, root / "ip-adapter-faceid" / "ip-adapter-faceid-plusv2_sdxl.safetensors")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path, help="weights root to write (created if missing)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--annotators", action="store_true",
                        help="also write the OpenPose body annotator (real architecture: ~105 MB)")
    parser.add_argument("--depth", action="store_true",
                        help="also write a tiny Depth Anything V2 for figurine print3d (~0.7 MB)")
    args = parser.parse_args(argv)
    root = write_tree(args.directory, seed=args.seed, annotators=args.annotators, depth=args.depth)
    print(f"tiny weights written to {root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
