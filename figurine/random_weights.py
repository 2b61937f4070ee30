"""Full-size SDXL + ControlNet + FaceID with random weights: benchmark any GPU, download nothing.

    import torch
    from figurine.config import load_config
    from figurine.generate import Generator, choose_runtime
    from figurine import random_weights
    cfg = load_config(["configs/bench-30step.toml"])
    runtime = choose_runtime(cfg)
    pipe = random_weights.build_pipeline(cfg, runtime)      # bare diffusers, FaceID loaded
    gen = Generator.from_components(cfg, pipe, runtime)     # figurine's code path on it

Speed, energy and memory do not depend on the values of the weights, only on their shapes and
dtype. The shapes come from configs/arch/*.json, written from the published config.json files
of SDXL base 1.0 (UNet, VAE, both CLIP text encoders, scheduler), xinsir's OpenPose ControlNet
(ControlNetModel.from_unet of that UNet) and h94's IP-Adapter-FaceID SDXL (MLP projection of
the 512-d ArcFace embedding to 4 tokens, to_k_ip/to_v_ip per cross-attention, LoRA rank 128).
Nothing is written to disk. The pictures are noise.

`build_components(..., empty=True)` puts every parameter on the meta device (no memory, no
time): that is how the CPU tests check the full-size shapes (UNet about 2.57 B parameters,
ControlNet about 1.25 B) without running them.

figurine/tiny/weights.py (behind scripts/make_tiny_weights.py) builds its tiny tree with the
same `build_components`, from configs/arch-tiny/ (TINY_ARCH_DIR): one definition of the tiny model.
"""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path

import torch

from figurine.data import config_dir
from figurine.errors import ConfigError

ARCH_DIR = config_dir() / "arch"
TINY_ARCH_DIR = config_dir() / "arch-tiny"
ARCH_FILES = ("unet", "controlnet", "vae", "text_encoder", "text_encoder_2", "faceid", "scheduler")

# Published sizes, for the tests and for a sanity line in the bench report.
PUBLISHED_PARAMETERS = {"unet": 2.567e9, "controlnet": 1.251e9}


# ---------------------------------------------------------------------------------------------
# Architecture files


def read_arch(name: str, arch_dir: Path = ARCH_DIR) -> dict:
    """One architecture config (configs/arch/<name>.json) without its "_comment"/"_class_name"."""
    path = Path(arch_dir) / f"{name}.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"missing architecture config {path}") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: not valid JSON ({e})") from None
    return {k: v for k, v in data.items() if not k.startswith("_")}


@contextlib.contextmanager
def _building(dtype: torch.dtype, device: str, empty: bool):
    """New parameters are made directly on `device` in `dtype` (or on the meta device)."""
    if empty:
        from accelerate import init_empty_weights

        with init_empty_weights():
            yield
        return
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            yield
    finally:
        torch.set_default_dtype(old)


# ---------------------------------------------------------------------------------------------
# The byte-level CLIP tokenizer (no vocabulary file needed)


def byte_level_vocab() -> dict[str, int]:
    """CLIP's byte-to-unicode alphabet: each byte alone and with '</w>', plus the two specials."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = [], 0
    for b in range(256):
        if b in printable:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": 256 + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = 512
    vocab["<|endoftext|>"] = 513
    return vocab


def byte_level_tokenizer():
    """A CLIPTokenizer over `byte_level_vocab()`: every prompt pads to 77 tokens as SDXL's does."""
    from transformers import CLIPTokenizer

    return CLIPTokenizer(vocab=byte_level_vocab(), merges=[], model_max_length=77)


# ---------------------------------------------------------------------------------------------
# The FaceID adapter


def _processor_sizes(unet) -> list[tuple[int, str, int, int]]:
    """(key id, processor name, hidden size, context size) over unet.attn_processors, in order."""
    channels = unet.config.block_out_channels
    cross = unet.config.cross_attention_dim
    sizes = []
    for key_id, name in enumerate(unet.attn_processors.keys()):
        if name.startswith("mid_block"):
            hidden = channels[-1]
        elif name.startswith("up_blocks"):
            hidden = list(reversed(channels))[int(name.split(".")[1])]
        else:
            hidden = channels[int(name.split(".")[1])]
        context = hidden if name.endswith("attn1.processor") else cross
        sizes.append((key_id, name, hidden, context))
    return sizes


def faceid_shapes(unet, lora_rank: int, num_tokens: int = 4, id_dim: int = 512,
                  hidden_dim: int = 1024) -> dict[str, tuple[int, ...]]:
    """Every tensor of the FaceID adapter file (flat image_proj.* / ip_adapter.* keys) and its shape.

    image_proj: id_dim -> hidden_dim -> num_tokens x cross_attention_dim, then LayerNorm.
    ip_adapter: to_k_ip / to_v_ip for each cross-attention processor (attn2: odd key ids), and
    the adapter's own LoRA (to_q/k/v/out_lora) on every processor, keyed by processor index.
    """
    cross = unet.config.cross_attention_dim
    shapes: dict[str, tuple[int, ...]] = {
        "image_proj.proj.0.weight": (hidden_dim, id_dim), "image_proj.proj.0.bias": (hidden_dim,),
        "image_proj.proj.2.weight": (num_tokens * cross, hidden_dim),
        "image_proj.proj.2.bias": (num_tokens * cross,),
        "image_proj.norm.weight": (cross,), "image_proj.norm.bias": (cross,),
    }
    for key_id, name, hidden, context in _processor_sizes(unet):
        if not name.endswith("attn1.processor"):
            shapes[f"ip_adapter.{key_id}.to_k_ip.weight"] = (hidden, cross)
            shapes[f"ip_adapter.{key_id}.to_v_ip.weight"] = (hidden, cross)
        for proj, fan_in in (("to_q", hidden), ("to_k", context), ("to_v", context), ("to_out", hidden)):
            shapes[f"ip_adapter.{key_id}.{proj}_lora.down.weight"] = (lora_rank, fan_in)
            shapes[f"ip_adapter.{key_id}.{proj}_lora.up.weight"] = (hidden, lora_rank)
    return shapes


def faceid_state_dict(unet, lora_rank: int = 4, num_tokens: int = 4, id_dim: int = 512,
                      hidden_dim: int = 1024, dtype: torch.dtype = torch.float16,
                      device: str = "cpu", seed: int = 1, std: float = 0.02,
                      lora_std: float = 0.02) -> dict[str, torch.Tensor]:
    """A random FaceID adapter with the shapes of `faceid_shapes`: N(0, std), LayerNorm at 1/0.

    `std` and `lora_std` (the LoRA's spread): the tiny tree uses larger ones so that the face and
    the rank-4 LoRA move its 64 px pictures visibly (at 0.02 the LoRA's effect stays below one
    8-bit level, and no test could see it).
    """
    g = torch.Generator(device).manual_seed(seed)
    sd = {}
    for key, shape in faceid_shapes(unet, lora_rank, num_tokens, id_dim, hidden_dim).items():
        if key == "image_proj.norm.weight":
            sd[key] = torch.ones(shape, device=device)
        elif key == "image_proj.norm.bias":
            sd[key] = torch.zeros(shape, device=device)
        else:
            spread = lora_std if "_lora." in key else std
            sd[key] = torch.randn(shape, generator=g, device=device) * spread
    return {k: v.to(dtype).contiguous() for k, v in sd.items()}


def nest_adapter(flat: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """Flat file keys -> the {"image_proj": ..., "ip_adapter": ...} dict load_ip_adapter takes."""
    nested: dict[str, dict[str, torch.Tensor]] = {"image_proj": {}, "ip_adapter": {}}
    for key, value in flat.items():
        part, _, rest = key.partition(".")
        nested[part][rest] = value
    return nested


def faceid_plus_shapes(unet, clip_hidden: int, lora_rank: int, num_tokens: int = 4, id_dim: int = 512,
                       depth: int = 4, dim_head: int = 64, ff_mult: int = 4) -> dict[str, tuple[int, ...]]:
    """Every tensor of a FaceID Plus / PlusV2 adapter file (h94's ProjPlusModel, flat keys).

    image_proj: the ArcFace MLP (proj.0: id_dim -> 2 id_dim, proj.2: -> num_tokens x dim) and its
    LayerNorm `norm`, then `perceiver_resampler`: proj_in (CLIP hidden -> dim), `depth` layers of
    (PerceiverAttention: norm1, norm2, to_q, to_kv, to_out; FeedForward: LayerNorm, Linear,
    GELU, Linear as keys 1.0 / 1.1 / 1.3), proj_out and norm_out; dim = the UNet's
    cross_attention_dim, dim_head x (dim // dim_head) heads. diffusers'
    `_convert_ip_adapter_image_proj_to_diffusers` ("IP-Adapter Face ID Plus") reads exactly these
    names (4 layers, 64-dim heads). ip_adapter: the same to_k_ip/to_v_ip and LoRA as FaceID.
    """
    cross = unet.config.cross_attention_dim
    dim, inner, hidden = cross, (cross // dim_head) * dim_head, 2 * id_dim
    shapes: dict[str, tuple[int, ...]] = {
        "image_proj.proj.0.weight": (hidden, id_dim), "image_proj.proj.0.bias": (hidden,),
        "image_proj.proj.2.weight": (num_tokens * dim, hidden), "image_proj.proj.2.bias": (num_tokens * dim,),
        "image_proj.norm.weight": (dim,), "image_proj.norm.bias": (dim,),
    }
    r = "image_proj.perceiver_resampler"
    shapes.update({f"{r}.proj_in.weight": (dim, clip_hidden), f"{r}.proj_in.bias": (dim,),
                   f"{r}.proj_out.weight": (cross, dim), f"{r}.proj_out.bias": (cross,),
                   f"{r}.norm_out.weight": (cross,), f"{r}.norm_out.bias": (cross,)})
    for i in range(depth):
        layer = f"{r}.layers.{i}"
        for norm in ("0.norm1", "0.norm2", "1.0"):
            shapes[f"{layer}.{norm}.weight"] = (dim,)
            shapes[f"{layer}.{norm}.bias"] = (dim,)
        shapes.update({f"{layer}.0.to_q.weight": (inner, dim), f"{layer}.0.to_kv.weight": (2 * inner, dim),
                       f"{layer}.0.to_out.weight": (dim, inner),
                       f"{layer}.1.1.weight": (dim * ff_mult, dim), f"{layer}.1.3.weight": (dim, dim * ff_mult)})
    shapes.update({k: v for k, v in faceid_shapes(unet, lora_rank, num_tokens, id_dim).items()
                   if k.startswith("ip_adapter.")})
    return shapes


def faceid_plus_state_dict(unet, clip_hidden: int, lora_rank: int = 4, num_tokens: int = 4, id_dim: int = 512,
                           depth: int = 4, dim_head: int = 64, ff_mult: int = 4,
                           dtype: torch.dtype = torch.float16, device: str = "cpu", seed: int = 1,
                           std: float = 0.02, lora_std: float = 0.02) -> dict[str, torch.Tensor]:
    """A random FaceID Plus V2 adapter with the shapes of `faceid_plus_shapes`: N(0, std), every
    LayerNorm at weight 1 and bias 0 (as trained ones start)."""
    g = torch.Generator(device).manual_seed(seed)
    sd = {}
    shapes = faceid_plus_shapes(unet, clip_hidden, lora_rank, num_tokens, id_dim, depth, dim_head, ff_mult)
    norm = re.compile(r"\.(norm|norm1|norm2|norm_out)\.(weight|bias)$|\.layers\.\d+\.1\.0\.(weight|bias)$")
    for key, shape in shapes.items():
        if key.startswith("image_proj.") and norm.search(key):
            sd[key] = (torch.ones if key.endswith(".weight") else torch.zeros)(shape, device=device)
        else:
            spread = lora_std if "_lora." in key else std
            sd[key] = torch.randn(shape, generator=g, device=device) * spread
    return {k: v.to(dtype).contiguous() for k, v in sd.items()}


def build_image_encoder(dtype: torch.dtype = torch.float32, device: str = "cpu", arch_dir: Path = ARCH_DIR,
                        seed: int = 0, empty: bool = False):
    """The CLIPVisionModelWithProjection FaceID Plus V2 reads the face crop with (arch_dir/image_encoder.json)."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    config = CLIPVisionConfig(**read_arch("image_encoder", arch_dir))
    torch.manual_seed(seed)
    with _building(dtype, device, empty):
        model = CLIPVisionModelWithProjection(config)
    if not empty:
        model.to(device=device, dtype=dtype).eval().requires_grad_(False)
    return model


# ---------------------------------------------------------------------------------------------
# Components and the pipeline


def build_components(dtype: torch.dtype = torch.float16, device: str = "cpu",
                     arch_dir: Path = ARCH_DIR, seed: int = 0, empty: bool = False) -> dict:
    """UNet, ControlNet, VAE, both text encoders, tokenizers and scheduler, from arch_dir.

    empty=True: every parameter on the meta device (shapes only; nothing can run).
    """
    import diffusers
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    # 1. Read every architecture file first (a missing one is a ConfigError naming it).
    arch = {name: read_arch(name, arch_dir) for name in ARCH_FILES}
    torch.manual_seed(seed)
    # 2. Build each model directly in place (device and dtype, or meta).
    with _building(dtype, device, empty):
        unet = diffusers.UNet2DConditionModel(**arch["unet"])
        controlnet = diffusers.ControlNetModel(**arch["controlnet"])
        vae = diffusers.AutoencoderKL(**arch["vae"])
        text_encoder = CLIPTextModel(CLIPTextConfig(**arch["text_encoder"]))
        text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(**arch["text_encoder_2"]))
    models = [unet, controlnet, vae, text_encoder, text_encoder_2]
    if not empty:
        for m in models:  # the text encoders may keep fp32 buffers from their own init
            wake_zero_layers(m)
            m.to(device=device, dtype=dtype).eval().requires_grad_(False)
    tokenizer = byte_level_tokenizer()
    scheduler = diffusers.EulerDiscreteScheduler(**arch["scheduler"])
    return {"unet": unet, "controlnet": controlnet, "vae": vae, "text_encoder": text_encoder,
            "text_encoder_2": text_encoder_2, "tokenizer": tokenizer, "tokenizer_2": tokenizer,
            "scheduler": scheduler, "faceid": arch["faceid"]}


def wake_zero_layers(model: torch.nn.Module) -> int:
    """Give every zero-initialised Conv/Linear layer PyTorch's default random init instead.

    diffusers starts a ControlNet's output convolutions (and its conditioning embedding's last
    conv) at zero, so that training begins from the plain UNet. Random weights left that way
    would make the ControlNet add exactly nothing: the pose would change no pixel, and no test
    could see a pose bug. Returns how many layers were changed.
    """
    woken = 0
    for module in model.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)) and not bool(module.weight.any()):
            module.reset_parameters()
            woken += 1
    return woken


def parameter_counts(components: dict) -> dict[str, int]:
    """Parameters per model (works on meta tensors), plus the FaceID adapter's from its shapes."""
    counts = {name: sum(p.numel() for p in components[name].parameters())
              for name in ("unet", "controlnet", "vae", "text_encoder", "text_encoder_2")}
    f = components["faceid"]
    shapes = faceid_shapes(components["unet"], f["lora_rank"], f["num_tokens"], f["id_embedding_dim"],
                           f["hidden_dim"])
    counts["faceid"] = sum(int(torch.Size(s).numel()) for s in shapes.values())
    return counts


def build_pipeline(cfg, runtime, arch_dir: Path = ARCH_DIR, seed: int = 0):
    """A bare StableDiffusionXLControlNetPipeline on random full-size components, FaceID loaded.

    Placed on runtime.device in runtime.dtype with diffusers' defaults (no figurine speed-ups):
    the bare baseline. `Generator.from_components(cfg, pipe, runtime)` then takes it over.
    """
    import diffusers

    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    import transformers

    transformers.utils.logging.set_verbosity_error()  # the byte-level tokenizer's >77 warning
    from figurine.generate import make_scheduler

    # 1. Components, built where they will run (offload policies still start on the device:
    #    the Generator moves them afterwards).
    device = runtime.device
    parts = build_components(runtime.dtype, device, arch_dir, seed)
    faceid = parts.pop("faceid")
    parts["scheduler"] = make_scheduler(cfg.generation.scheduler, parts["scheduler"].config)
    pipe = diffusers.StableDiffusionXLControlNetPipeline(**parts, add_watermarker=False)
    # 2. The FaceID adapter: projection, to_k_ip/to_v_ip and its LoRA, from a random state dict.
    flat = faceid_state_dict(parts["unet"], lora_rank=faceid["lora_rank"], num_tokens=faceid["num_tokens"],
                             id_dim=faceid["id_embedding_dim"], hidden_dim=faceid["hidden_dim"],
                             dtype=runtime.dtype, device=device, seed=seed + 1)
    pipe.load_ip_adapter(nest_adapter(flat), subfolder="", weight_name="random-faceid",
                         image_encoder_folder=None)
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe
