"""Write a complete figurine weights tree with tiny random models and the real file layout.

    python scripts/make_tiny_weights.py /tmp/tiny-weights
    figurine make photo.jpg --name Ada --weights /tmp/tiny-weights --config configs/tiny.toml

Every loader in figurine runs on this tree exactly as on the real weights (same folders, file
names, fp16 variants, config files, state-dict keys, ONNX signatures); only the numbers are
random, so the pictures are noise. Takes a few seconds on a CPU and about 10 MB of disk.

Layout (see configs/weights.toml for the real files):
    sdxl-base/                 StableDiffusionXLPipeline folder, fp16 variant files
    sdxl-vae-fp16-fix/         AutoencoderKL
    controlnet-openpose-sdxl/  ControlNetModel
    ip-adapter-faceid/ip-adapter-faceid_sdxl.safetensors   FaceID projection, to_k_ip/to_v_ip, LoRA
    insightface/buffalo_l/     det_10g.onnx, w600k_r50.onnx (synthetic; see tiny_insightface.py)
    annotators/                body_pose_model.safetensors, with --annotators (tiny_annotators.py)
    depth-anything-v2-small/   Depth Anything V2 for `figurine print3d`, with --depth (tiny_depth.py)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from figurine import random_weights  # noqa: E402  (shared with --random-weights benchmarks)
from figurine.random_weights import byte_level_vocab  # noqa: E402,F401

# Sizes follow diffusers' own tiny SDXL test components (see DESIGN.md).
TEXT_DIM = 32  # each CLIP text encoder's hidden size; the UNet sees both, concatenated: 64
UNET = dict(
    block_out_channels=(32, 64),
    layers_per_block=2,
    sample_size=32,
    in_channels=4,
    out_channels=4,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
    attention_head_dim=(2, 4),
    use_linear_projection=True,
    addition_embed_type="text_time",
    addition_time_embed_dim=8,
    transformer_layers_per_block=(1, 2),
    projection_class_embeddings_input_dim=80,  # 6 * 8 time ids + 32 pooled text
    cross_attention_dim=2 * TEXT_DIM,
    norm_num_groups=32,
)
VAE = dict(
    block_out_channels=(32, 64),
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
    up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
    latent_channels=4,
    sample_size=64,
    scaling_factor=0.13025,
)
FACEID_LORA_RANK = 4


def text_encoders_and_tokenizers():
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    vocab = byte_level_vocab()
    config = CLIPTextConfig(
        hidden_size=TEXT_DIM, intermediate_size=37, num_attention_heads=4, num_hidden_layers=5,
        vocab_size=len(vocab), projection_dim=TEXT_DIM, max_position_embeddings=77,
        hidden_act="gelu", bos_token_id=512, eos_token_id=513, pad_token_id=513,
    )
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)
    return CLIPTextModel(config), CLIPTextModelWithProjection(config), tokenizer


def write_tokenizer(folder: Path) -> None:
    """The real repos' tokenizer files: vocab.json, merges.txt (no merges here), tokenizer_config.json."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tokenizer.json").unlink(missing_ok=True)
    (folder / "special_tokens_map.json").write_text(json.dumps({
        "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
    }, indent=2))
    (folder / "vocab.json").write_text(json.dumps(byte_level_vocab()))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
    }, indent=2))


def scheduler():
    from diffusers import EulerDiscreteScheduler

    # SDXL base's own scheduler settings.
    return EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
        steps_offset=1, timestep_spacing="leading", prediction_type="epsilon", use_karras_sigmas=False,
    )


def faceid_state_dict(unet) -> dict[str, torch.Tensor]:
    """The FaceID adapter as h94's file has it once converted (flat image_proj.* / ip_adapter.*
    keys), at this tree's sizes; the shapes are figurine.random_weights.faceid_shapes."""
    return random_weights.faceid_state_dict(unet, lora_rank=FACEID_LORA_RANK, dtype=torch.float16, seed=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path, help="weights root to write (created if missing)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--annotators", action="store_true",
                        help="also write the OpenPose body annotator (real architecture: ~105 MB)")
    parser.add_argument("--depth", action="store_true",
                        help="also write a tiny Depth Anything V2 for figurine print3d (~0.7 MB)")
    args = parser.parse_args(argv)
    root: Path = args.directory

    from diffusers import AutoencoderKL, ControlNetModel, StableDiffusionXLPipeline, UNet2DConditionModel

    torch.manual_seed(args.seed)
    # 1. The base checkpoint, saved as the real repo's fp16 variant files.
    unet = UNet2DConditionModel(**UNET)
    vae = AutoencoderKL(**VAE)
    te1, te2, tok = text_encoders_and_tokenizers()
    base = StableDiffusionXLPipeline(
        vae=vae, text_encoder=te1, text_encoder_2=te2, tokenizer=tok, tokenizer_2=tok,
        unet=unet, scheduler=scheduler(),
    )
    base.to(torch.float16).save_pretrained(root / "sdxl-base", variant="fp16")
    for name in ("tokenizer", "tokenizer_2"):
        write_tokenizer(root / "sdxl-base" / name)

    # 2. The fp16-fix VAE (its own weights, no upcast needed).
    fixed_vae = AutoencoderKL(**VAE, force_upcast=False)
    fixed_vae.to(torch.float16).save_pretrained(root / "sdxl-vae-fp16-fix")

    # 3. The OpenPose ControlNet, shaped from the UNet as xinsir's is from SDXL's.
    controlnet = ControlNetModel.from_unet(unet.float(), conditioning_embedding_out_channels=(16, 32))
    controlnet.to(torch.float16).save_pretrained(root / "controlnet-openpose-sdxl")

    # 4. The FaceID adapter.
    (root / "ip-adapter-faceid").mkdir(parents=True, exist_ok=True)
    save_file(faceid_state_dict(unet), root / "ip-adapter-faceid" / "ip-adapter-faceid_sdxl.safetensors")

    # 5. insightface's buffalo_l pack and the OpenPose annotator, synthetic.
    from tiny_insightface import write_pack

    write_pack(root / "insightface" / "buffalo_l")
    if args.annotators:
        from tiny_annotators import write_annotators

        write_annotators(root / "annotators")
    if args.depth:
        from tiny_depth import write_depth

        write_depth(root / "depth-anything-v2-small")
    print(f"tiny weights written to {root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
