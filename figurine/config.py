"""Settings: TOML files -> typed dataclasses, with command-line overrides.

    from figurine.config import load_config
    cfg = load_config(["configs/tiny.toml"], overrides=["generation.steps=4"], weights="w/")
    print(cfg.generation.steps, cfg.path("model.base"))

Layering: configs/default.toml, then each --config FILE in order, then each --set key=value.
A --config that names no file but a shipped config ("tiny", "bench-4step") reads that one from
figurine's configs/ (figurine/data.py says where that is, in a clone or an installed package).
A file only needs the keys it changes. Unknown sections or keys are an error that names them,
and so is a value of the wrong type. Model paths are relative to the weights root (--weights
DIR, else $FIGURINE_WEIGHTS, else ./weights; figurine/data.py); absolute paths are used as is.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from figurine import limits
from figurine.data import config_dir, config_file, shipped_configs
from figurine.data import weights_root as resolve_weights_root
from figurine.errors import ConfigError

CONFIG_DIR = config_dir()
DEFAULT_CONFIG = CONFIG_DIR / "default.toml"


@dataclass
class ModelConfig:
    base: str = "sdxl-base"  # diffusers folder, or a single .safetensors checkpoint
    base_config: str = "sdxl-base"  # local diffusers config folder used for a single-file base
    vae: str = "sdxl-vae-fp16-fix"  # "" = the base checkpoint's own VAE
    controlnet: str = "controlnet-openpose-sdxl"
    ip_adapter: str = "ip-adapter-faceid/ip-adapter-faceid_sdxl.safetensors"
    identity: str = "faceid"  # faceid | faceid-plusv2 (adds a CLIP ViT-H/14 embedding of the face crop)
    ip_adapter_plusv2: str = "ip-adapter-faceid/ip-adapter-faceid-plusv2_sdxl.safetensors"
    image_encoder: str = "clip-vit-h-14-image-encoder"  # CLIPVisionModelWithProjection folder, for plus-v2
    loras: list[str] = field(default_factory=list)  # extra style LoRAs, loaded after FaceID
    insightface: str = "insightface/buffalo_l"
    annotators: str = "annotators"


@dataclass
class GenerationConfig:
    scheduler: str = "ddim"
    steps: int = 30
    guidance: float = 5.0
    width: int = 832  # SDXL's portrait bucket: a standing figure's face ~95 px wide, not ~80
    height: int = 1216
    seed: int = 0
    ip_adapter_scale: float = 0.8
    lora_scale: float = 0.6
    controlnet_scale: float = 0.8
    candidates: int = 1
    face_structure: float = 1.0  # plus-v2 only: weight of the CLIP face-structure tokens (h94's s_scale)


@dataclass
class RuntimeConfig:
    device: str = "auto"  # auto | cuda | cpu
    dtype: str = "auto"  # auto | float16 | bfloat16 | float32
    memory: str = "auto"  # auto | none | model-offload | sequential-offload
    channels_last: bool = True
    fuse_qkv: bool = True
    compile: bool = False
    compile_backend: str = "inductor"  # torch.compile backend; eager / aot_eager isolate compiler bugs
    vae_fp32: bool = False  # keep the VAE in fp32 (needed when the VAE is not the fp16-fix one)
    verify_weights: bool = False  # hash every weights file before loading it (seconds per GB; `weights verify`)


@dataclass
class FaceConfig:
    det_size: int = 640
    det_thresh: float = 0.5
    index: int = -1  # -1: the largest face; N: the N-th face from left to right
    same_person: float = 0.4  # several photos: every pair's ArcFace cosine must reach this


@dataclass
class PoseConfig:
    preset: str = "hero"
    limb_width: int = 24  # full thickness in px at 1024 px; scaled with the image
    point_radius: int = 12


@dataclass
class PromptConfig:
    style: str = "premium collectible action figure"
    outfit: str = ""
    extra: str = ""
    negative: str = (
        "photo of a real person, realistic skin, blurry, lowres, deformed, extra limbs, "
        "extra fingers, text, watermark, logo, packaging, box, cluttered background"
    )


@dataclass
class DetailConfig:
    enabled: bool = True  # re-denoise the figure's face at SDXL resolution after generation
    strength: float = 0.35  # img2img strength: 0 keeps the face, 1 redraws it
    margin: float = 0.6  # room around the face box on each side, as a fraction of its larger side
    size: int = 1024  # the face square is denoised at size x size


@dataclass
class AccessoryConfig:
    max: int = 4
    width: int = 1024
    height: int = 1024
    steps: int = 20
    guidance: float = 5.0
    batch: int = 2  # how many accessories one pipeline call generates


@dataclass
class MatteConfig:
    method: str = "auto"  # auto (the learned model when its file is there, else the colour key) | colour-key | birefnet
    model: str = "birefnet-lite/model.onnx"  # under the weights root; `figurine weights fetch --optional`


@dataclass
class PackagingConfig:
    template: str = "classic-blister"
    size: str = "social"  # social (1080x1350) | story (1080x1920)


@dataclass
class EnergyConfig:
    grid_intensity: float = 480.0  # g CO2e per kWh; see figurine/energy.py for the source
    measure_idle: bool = True  # measure the GPU's baseline power before and after (see docs/energy.md)
    settle_seconds: float = 2.0  # quiet time before each baseline measurement
    baseline_seconds: float = 3.0  # how long each baseline is measured


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    face: FaceConfig = field(default_factory=FaceConfig)
    pose: PoseConfig = field(default_factory=PoseConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    accessories: AccessoryConfig = field(default_factory=AccessoryConfig)
    detail: DetailConfig = field(default_factory=DetailConfig)
    matte: MatteConfig = field(default_factory=MatteConfig)
    packaging: PackagingConfig = field(default_factory=PackagingConfig)
    energy: EnergyConfig = field(default_factory=EnergyConfig)
    weights_root: Path = Path("weights")
    sources: list[str] = field(default_factory=list)  # the files and --set lines applied

    def path(self, dotted: str) -> Path | None:
        """Resolve a model path setting ("model.base") against the weights root; None if empty."""
        value = self.get(dotted)
        if not value:
            return None
        p = Path(os.path.expanduser(str(value)))
        return p if p.is_absolute() else self.weights_root / p

    def get(self, dotted: str) -> Any:
        section, key = _split(dotted)
        return getattr(getattr(self, section), key)

    def to_dict(self) -> dict:
        """Every setting, as plain TOML-able data (weights root and sources included)."""
        d = {s: dataclasses.asdict(getattr(self, s)) for s in SECTIONS}
        d["weights_root"] = str(self.weights_root)
        d["sources"] = list(self.sources)
        return d


SECTIONS = [f.name for f in dataclasses.fields(Config) if f.name not in ("weights_root", "sources")]


def _split(dotted: str) -> tuple[str, str]:
    section, _, key = dotted.partition(".")
    if section not in SECTIONS or not key:
        raise ConfigError(f"unknown config key '{dotted}' (sections: {', '.join(SECTIONS)})")
    return section, key


def _coerce(name: str, value: Any, typ: Any) -> Any:
    """Check a value against a dataclass field type; ints are accepted where floats are."""
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if typ == list[str]:
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
        raise ConfigError(f"config key '{name}' must be a list of strings, got {value!r}")
    if typ in (int, float) and isinstance(value, bool):
        raise ConfigError(f"config key '{name}' must be {typ.__name__}, got {value!r}")
    if not isinstance(value, typ):
        raise ConfigError(f"config key '{name}' must be {typ.__name__}, got {value!r}")
    return value


def apply(cfg: Config, data: dict, origin: str) -> None:
    """Merge a nested dict (one TOML file) into cfg, rejecting unknown keys by name."""
    for section, values in data.items():
        if section not in SECTIONS:
            raise ConfigError(f"{origin}: unknown config section '{section}'")
        if not isinstance(values, dict):
            raise ConfigError(f"{origin}: '{section}' must be a table of settings")
        obj = getattr(cfg, section)
        hints = get_type_hints(type(obj))
        for key, value in values.items():
            if key not in hints:
                raise ConfigError(f"{origin}: unknown config key '{section}.{key}'")
            setattr(obj, key, _coerce(f"{section}.{key}", value, hints[key]))
    cfg.sources.append(origin)


def parse_override(line: str) -> dict:
    """'generation.steps=20' -> {'generation': {'steps': 20}}; bare words are strings."""
    key, sep, raw = line.partition("=")
    if not sep:
        raise ConfigError(f"--set needs key=value, got '{line}'")
    section, name = _split(key.strip())
    raw = raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # an unquoted string such as a path or a scheduler name
    return {section: {name: value}}


def read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}",
                          hint=f"or name a shipped one: {', '.join(shipped_configs())}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None


def load_config(
    files: list[str | Path] = (), overrides: list[str] = (), weights: str | Path | None = None,
    stored: dict | None = None,
) -> Config:
    """Defaults, then `stored` settings (a run's or a shared picture's record, for re-runs), then
    each file, then each key=value override; then the weights root.

    A stored record is untrusted (a PNG from someone else, a copied run directory): only the
    settings that decide the picture are taken from it (STORED_SETTINGS), each through the same
    type and range checks as a config file; never a model path, the weights root or a device.
    """
    cfg = Config()
    apply(cfg, read_toml(DEFAULT_CONFIG), str(DEFAULT_CONFIG))
    if stored is not None:
        apply(cfg, stored_settings(stored), "stored settings")
    for f in files:
        apply(cfg, read_toml(config_file(f)), str(f))
    for line in overrides:
        apply(cfg, parse_override(line), f"--set {line}")
    cfg.weights_root = resolve_weights_root(weights)
    validate(cfg)
    return cfg


CHOICES = {
    "runtime.device": ("auto", "cuda", "cpu"),
    "runtime.dtype": ("auto", "float16", "bfloat16", "float32"),
    "runtime.memory": ("auto", "none", "model-offload", "sequential-offload"),
    "runtime.compile_backend": ("inductor", "eager", "aot_eager", "cudagraphs"),
    "generation.scheduler": tuple(limits.SCHEDULERS),
    "packaging.size": tuple(limits.SIZES),
    "matte.method": ("auto", "colour-key", "birefnet"),
    "model.identity": ("faceid", "faceid-plusv2"),
}


# What a stored record may set: whole sections, or single keys of the others.
STORED_SECTIONS = ("generation", "face", "pose", "prompt", "accessories", "detail", "packaging")
STORED_KEYS = {"runtime": ("dtype",), "matte": ("method",)}


def stored_settings(stored: object) -> dict:
    if not isinstance(stored, dict):
        raise ConfigError("the stored settings are not a table")
    picked = {k: v for k, v in stored.items() if k in STORED_SECTIONS}
    for section, keys in STORED_KEYS.items():
        values = stored.get(section)
        if isinstance(values, dict):
            picked[section] = {k: values[k] for k in keys if k in values}
    return picked


# Ranges every setting must fall in, whoever wrote it: (low, high), inclusive.
RANGES = {
    "generation.steps": (1, 500), "generation.guidance": (0.0, 50.0),
    "generation.width": (64, 4096), "generation.height": (64, 4096),
    "generation.seed": (-1, 2**32 - 1), "generation.ip_adapter_scale": (0.0, 5.0),
    "generation.lora_scale": (0.0, 5.0), "generation.controlnet_scale": (0.0, 5.0),
    "generation.candidates": (1, 16),
    "face.det_size": (32, 2048), "face.det_thresh": (0.0, 1.0), "face.index": (-1, 64),
    "face.same_person": (-1.0, 1.0),
    "pose.limb_width": (1, 256), "pose.point_radius": (0, 256),
    "accessories.width": (64, 4096), "accessories.height": (64, 4096), "accessories.steps": (1, 500),
    "accessories.guidance": (0.0, 50.0), "accessories.batch": (1, 16),
    "energy.grid_intensity": (0.0, 5000.0), "energy.settle_seconds": (0.0, 60.0),
    "energy.baseline_seconds": (0.5, 60.0),
    "generation.face_structure": (0.0, 5.0),
    "detail.strength": (0.01, 1.0), "detail.margin": (0.0, 4.0), "detail.size": (64, 4096),
}
MAX_PROMPT_TEXT = 1000


def validate(cfg: Config) -> None:
    """Value checks that TOML types alone cannot express."""
    for key, allowed in CHOICES.items():
        if cfg.get(key) not in allowed:
            raise ConfigError(f"config key '{key}' must be one of {', '.join(allowed)}, got '{cfg.get(key)}'")
    for key, (low, high) in RANGES.items():
        v = cfg.get(key)
        if not (low <= v <= high):  # NaN fails too
            raise ConfigError(f"config key '{key}' must be between {low} and {high}, got {v}")
    for key in ("generation.width", "generation.height", "accessories.width", "accessories.height"):
        if cfg.get(key) % 8:
            raise ConfigError(f"config key '{key}' must be a multiple of 8, got {cfg.get(key)}")
    if cfg.detail.size % 8:
        raise ConfigError(f"config key 'detail.size' must be a multiple of 8, got {cfg.detail.size}")
    for key in ("style", "outfit", "extra", "negative"):
        if len(getattr(cfg.prompt, key)) > MAX_PROMPT_TEXT:
            raise ConfigError(f"config key 'prompt.{key}' is longer than {MAX_PROMPT_TEXT} characters")
    if not 0 <= cfg.accessories.max <= limits.MAX_ACCESSORY_SLOTS:
        raise ConfigError(f"config key 'accessories.max' must be 0 to {limits.MAX_ACCESSORY_SLOTS} "
                          f"(the box's tray has {limits.MAX_ACCESSORY_SLOTS} compartments), got {cfg.accessories.max}")
    for lora in cfg.model.loras:
        name = Path(lora).name.lower()
        if name.startswith("ip-adapter-faceid") and "lora" in name:
            raise ConfigError(
                f"model.loras: {Path(lora).name} is the FaceID adapter's own LoRA, which the adapter file "
                "already carries and figurine always applies (strength: generation.lora_scale); remove it "
                "from model.loras, or it would apply twice")
