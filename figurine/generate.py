"""Generation stage: SDXL + ControlNet OpenPose + IP-Adapter FaceID, from local files only.

    from figurine.config import load_config
    from figurine.generate import Generator
    cfg = load_config(["configs/tiny.toml"], weights="/tmp/tiny-weights")
    gen = Generator(cfg)                                   # loads every component once
    latents = gen.figure(prompt, negative, control_image, face_embedding, seed=1)
    image = gen.decode(latents)                            # VAE decode, timed apart
    items = gen.accessories([(p, n, seed)], width=512, height=512)
    face_box = (20, 8, 40, 30)                             # x0, y0, x1, y1 of the face on image[0]
    better = gen.detail(image[0], face_box, prompt, negative, face_embedding, strength=0.35, seed=1)

With model.identity = "faceid-plusv2" every call that takes face_embedding also takes the aligned
face crop (figurine.face.Face.crop), e.g. gen.figure(..., seed=1, face_crop=face.crop).

The pipeline is diffusers' StableDiffusionXLControlNetPipeline built from explicit components,
each loaded from a path under the weights root with local_files_only=True. Accessories are
text-only SDXL generations on the same components: no ControlNet, the face adapter's scale and
LoRA turned off for the call.

FaceID Plus V2 (model.identity = "faceid-plusv2") follows the diffusers IP-Adapter guide: the
CLIP ViT-H/14 image encoder is loaded as a CLIPVisionModelWithProjection and given to the
pipeline, the Plus V2 file is loaded like the FaceID one, and before each call the image
projection gets `clip_embeds` (prepare_ip_adapter_image_embeds of the aligned face crop: CLIP's
penultimate hidden states, [zero image, face] under CFG) and `shortcut = True` (V2), with
`shortcut_scale` = generation.face_structure. One deliberate difference: the guide (and h94's
model card) hand CLIP the crop in insightface's BGR channel order; figurine gives it the RGB crop
CLIP was trained on (tencent-ailab/IP-Adapter#430).

The face detail pass (`detail`) re-denoises a square around the figure's face at SDXL
resolution with StableDiffusionXLImg2ImgPipeline on the same modules, and pastes it back
through a feathered mask that is zero on the square's outer ring: no pixel outside changes.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from figurine.config import Config
from figurine.errors import ConfigError, GenerationError, WeightsError

log = logging.getLogger(__name__)

MEMORY_POLICIES = ["none", "model-offload", "sequential-offload"]  # weakest to strongest
FREE_VRAM_FOR_NONE = 14 * 2**30  # SDXL + ControlNet fp16 at 1024² peak about 12 GiB
FREE_VRAM_FOR_MODEL_OFFLOAD = 8 * 2**30


@dataclass
class Runtime:
    """Where and how the models run, as decided from the config and the machine."""

    device: str
    dtype: torch.dtype
    memory: str
    notes: list[str] = field(default_factory=list)


def choose_runtime(cfg: Config) -> Runtime:
    """Resolve runtime.device / dtype / memory 'auto' against this machine."""
    r = cfg.runtime
    has_cuda = torch.cuda.is_available()
    if r.device == "cuda" and not has_cuda:
        raise ConfigError("runtime.device is 'cuda' but no CUDA GPU is visible to torch")
    device = "cuda" if (r.device == "cuda" or (r.device == "auto" and has_cuda)) else "cpu"
    notes = []
    if device == "cpu":
        notes.append(
            "running on the CPU: expect tens of minutes per 1024x1024 image with real SDXL weights "
            "(seconds with the tiny test weights)"
        )
    if r.dtype == "auto":
        dtype = torch.float16 if device == "cuda" else torch.float32
    else:
        dtype = getattr(torch, r.dtype)
    memory = r.memory
    if memory == "auto":
        memory = "none"
        if device == "cuda":
            free, _ = torch.cuda.mem_get_info()
            if free < FREE_VRAM_FOR_MODEL_OFFLOAD:
                memory = "sequential-offload"
            elif free < FREE_VRAM_FOR_NONE:
                memory = "model-offload"
            notes.append(f"{free / 2**30:.1f} GiB free VRAM: memory policy '{memory}'")
    elif memory != "none" and device == "cpu":
        notes.append(f"memory policy '{memory}' has no effect on the CPU")
        memory = "none"
    return Runtime(device, dtype, memory, notes)


def make_scheduler(name: str, base_config):
    """Scheduler by figurine's short name, from the base checkpoint's scheduler config."""
    import diffusers

    from figurine.limits import SCHEDULERS

    cls_name, extra, _ = SCHEDULERS[name]
    return getattr(diffusers, cls_name).from_config(base_config, **extra)


def check_files(paths: list[Path], weights_root: Path | None = None) -> list[Path]:
    """Before loading: every model path exists, holds only regular files (no FIFO, device, link
    loop or link out of the weights root) and no pickle, and every safetensors file has an
    intact header. Returns the files the loaders may open."""
    from figurine import weights

    files = weights.check_tree(paths, weights_root)
    for f in files:
        if f.suffix == ".safetensors":
            weights.check_safetensors(f)
    return files


def _has_fp16_variant(folder: Path) -> bool:
    return any(folder.rglob("*.fp16.safetensors"))


def fuse_plain_attention(*models) -> int:
    """Fuse q/k/v of the attention layers that run diffusers' plain processor on plain Linear
    projections; leave IP-Adapter processors and LoRA-wrapped projections as they are.
    Returns how many layers were fused."""
    from diffusers.models.attention_processor import Attention, AttnProcessor2_0, FusedAttnProcessor2_0

    fused = 0
    for model in models:
        for name, module in model.named_modules():
            # The Plus adapters' resampler attends from its latents to (CLIP tokens, latents): a
            # self-attention layer called with encoder states, which the fused processor cannot run.
            if name.startswith("encoder_hid_proj."):
                continue
            if (isinstance(module, Attention) and type(module.processor) is AttnProcessor2_0
                    and all(type(getattr(module, p)) is torch.nn.Linear for p in ("to_q", "to_k", "to_v"))):
                module.fuse_projections(fuse=True)
                module.set_processor(FusedAttnProcessor2_0())
                fused += 1
    return fused


FIGURE_MODULES = ("text_encoder", "text_encoder_2", "unet", "controlnet")  # what the first step runs
ACCESSORY_MODULES = ("text_encoder", "text_encoder_2", "unet")
_LABELS = {"unet": "UNet", "controlnet": "ControlNet", "text_encoder": "text encoder",
           "text_encoder_2": "text encoder 2", "vae": "VAE"}


def _names(modules: tuple[str, ...]) -> str:
    return "/".join(_LABELS[m] for m in modules if m in ("unet", "controlnet"))


def weight_sources(base: Path, controlnet: Path, vae: Path | None, adapter: Path,
                   loras: list[Path]) -> dict[str, Path]:
    """Which file or folder each module's weights came from (to name a damaged one)."""
    single = base.is_file()
    sources = {name: base if single else base / name for name in ("unet", "text_encoder", "text_encoder_2", "vae")}
    if vae is not None:
        sources["vae"] = vae
    sources.update({"controlnet": controlnet, "faceid_0": adapter})
    sources.update({f"style_{i}": p for i, p in enumerate(loras)})
    return sources


def nonfinite_weight(pipe, modules: tuple[str, ...], sources: dict[str, Path]) -> str | None:
    """"<module> weight '<tensor>' is NaN/inf in <file>" for the first non-finite parameter of
    `modules`, or None. Runs only after a NaN was seen; offloaded (meta) tensors are skipped."""
    from figurine import weights

    for attr in modules:
        module = getattr(pipe, attr, None)
        if module is None:
            continue
        for name, param in module.named_parameters():
            if param.is_meta or bool(torch.isfinite(param).all()):
                continue
            # An adapter's tensors (FaceID's projection and to_k_ip/to_v_ip, a LoRA's A/B) come
            # from the adapter's file; the rest from the module's own folder.
            owner = next((a for a in sources if a.startswith(("faceid_", "style_")) and f".{a}." in f".{name}."),
                         None)
            if owner is None and any(k in name for k in ("to_k_ip", "to_v_ip", "encoder_hid_proj")):
                owner = "faceid_0"
            source = sources.get(owner or attr)
            if source is None:
                return f"{_LABELS[attr]} weight '{name}' is NaN/inf (no weights file: built in memory)"
            where = (weights.find_tensor(source, name) if owner is None else None) or source
            return f"{_LABELS[attr]} weight '{name}' is NaN/inf in {where}"
    return None


class Generator:
    """Every diffusion component, loaded once; figure and accessory generations share them."""

    def __init__(self, cfg: Config, runtime: Runtime | None = None):
        import diffusers

        from figurine import weights

        diffusers.utils.logging.set_verbosity_error()
        diffusers.utils.logging.disable_progress_bar()  # loading bars; the denoising bar stays
        import transformers

        transformers.utils.logging.disable_progress_bar()
        transformers.utils.logging.set_verbosity_error()
        self.cfg = cfg
        self.runtime = runtime or choose_runtime(cfg)
        t0 = time.perf_counter()
        # 1. Paths: all local, all checked before anything is loaded.
        m = cfg.model
        base, controlnet_dir = cfg.path("model.base"), cfg.path("model.controlnet")
        vae_dir, adapter = cfg.path("model.vae"), cfg.path("model.ip_adapter")
        encoder_dir = None
        if m.identity == "faceid-plusv2":  # the Plus V2 adapter, and the CLIP encoder it reads the crop with
            adapter, encoder_dir = cfg.path("model.ip_adapter_plusv2"), cfg.path("model.image_encoder")
            require_plusv2_files(adapter, encoder_dir)
        loras = [cfg.weights_root / p if not Path(p).is_absolute() else Path(p) for p in m.loras]
        paths = [p for p in (base, controlnet_dir, vae_dir, adapter, encoder_dir, *loras) if p is not None]
        if base is not None and base.is_file():
            paths.append(cfg.path("model.base_config"))
            weights.require_safetensors(base, "model.base")
        weights.require_safetensors(adapter, "model.ip_adapter_plusv2" if encoder_dir else "model.ip_adapter")
        for path in loras:
            weights.require_safetensors(path, "model.loras entry")
        check_files(paths, cfg.weights_root)
        if cfg.runtime.verify_weights:  # every byte hashed, before any loader reads it
            weights.verify_files(paths, cfg.weights_root)
        self.files = paths
        self._sources = weight_sources(base, controlnet_dir, vae_dir, adapter, loras)
        dtype = self.runtime.dtype
        try:
            # 2. Components.
            # use_safetensors=True everywhere: never a pickle, even where one sits beside them.
            controlnet = diffusers.ControlNetModel.from_pretrained(
                controlnet_dir, dtype=dtype, local_files_only=True, use_safetensors=True,
                variant="fp16" if _has_fp16_variant(controlnet_dir) else None,
            )
            extra = {"controlnet": controlnet, "add_watermarker": False}
            if vae_dir is not None:
                extra["vae"] = diffusers.AutoencoderKL.from_pretrained(
                    vae_dir, dtype=dtype, local_files_only=True, use_safetensors=True,
                    variant="fp16" if _has_fp16_variant(vae_dir) else None,
                )
            if encoder_dir is not None:  # the guide's way: the encoder given to the pipeline
                import transformers

                extra["image_encoder"] = transformers.CLIPVisionModelWithProjection.from_pretrained(
                    encoder_dir, dtype=dtype, local_files_only=True, use_safetensors=True,
                )
            cls = diffusers.StableDiffusionXLControlNetPipeline
            if base.is_file():
                pipe = cls.from_single_file(
                    base, config=str(cfg.path("model.base_config")), dtype=dtype,
                    local_files_only=True, **extra,
                )
            else:
                pipe = cls.from_pretrained(
                    base, dtype=dtype, local_files_only=True, use_safetensors=True,
                    variant="fp16" if _has_fp16_variant(base) else None, **extra,
                )
            if cfg.runtime.vae_fp32:
                pipe.vae.to(torch.float32)
            pipe.scheduler = make_scheduler(cfg.generation.scheduler, pipe.scheduler.config)
            # 3. The FaceID adapter: projection of the ArcFace embedding, to_k_ip/to_v_ip, its LoRA.
            # (load_ip_adapter reads a .safetensors weight_name with safe_open; the name was checked)
            pipe.load_ip_adapter(
                str(adapter.parent), subfolder="", weight_name=adapter.name,
                image_encoder_folder=None, local_files_only=True, use_safetensors=True,
            )
            self.faceid_lora = "faceid_0" in getattr(pipe.unet, "peft_config", {})
            if encoder_dir is not None and not _plus_projection(pipe):
                raise ValueError(f"{adapter.name} is not a FaceID Plus adapter (it has no perceiver resampler)")
            # 4. Style LoRAs, after FaceID (its set_adapters would switch earlier ones off).
            names, scales = (["faceid_0"], [cfg.generation.lora_scale]) if self.faceid_lora else ([], [])
            for i, path in enumerate(loras):
                pipe.load_lora_weights(str(path.parent), weight_name=path.name, adapter_name=f"style_{i}",
                                       local_files_only=True, use_safetensors=True)
                names.append(f"style_{i}")
                scales.append(1.0)
            if names:
                pipe.set_adapters(names, adapter_weights=scales)
        except (OSError, ValueError, KeyError, RuntimeError) as e:
            if isinstance(e, torch.cuda.OutOfMemoryError):
                raise
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise WeightsError(f"could not load the models: {first}", hint="check `figurine weights verify`") from e
        self.pipe, self._text_pipe = pipe, None
        self.adapter_names, self.adapter_scales = names, scales
        # 5. Speed settings that do not change the output, then placement.
        self._optimise()
        self.apply_memory_policy(self.runtime.memory)
        pipe.set_progress_bar_config(disable=None, leave=False)  # tqdm: on in a terminal, off in logs
        self.load_seconds = time.perf_counter() - t0

    @classmethod
    def from_components(cls, cfg: Config, pipe, runtime: Runtime | None = None) -> "Generator":
        """A Generator around a pipeline built elsewhere, e.g. figurine.random_weights.build_pipeline.

        The pipeline must already carry the FaceID adapter (load_ip_adapter). The same steps as
        __init__ after loading: scheduler, FaceID LoRA scale, speed settings, memory policy.
        Style LoRAs (model.loras) are not loaded: there are no files.
        """
        self = cls.__new__(cls)
        self.cfg, self.runtime, self.files, self._sources = cfg, runtime or choose_runtime(cfg), [], {}
        t0 = time.perf_counter()
        if cfg.runtime.vae_fp32:
            pipe.vae.to(torch.float32)
        pipe.scheduler = make_scheduler(cfg.generation.scheduler, pipe.scheduler.config)
        self.faceid_lora = "faceid_0" in getattr(pipe.unet, "peft_config", {})
        names, scales = (["faceid_0"], [cfg.generation.lora_scale]) if self.faceid_lora else ([], [])
        if names:
            pipe.set_adapters(names, adapter_weights=scales)
        self.pipe, self._text_pipe = pipe, None
        self.adapter_names, self.adapter_scales = names, scales
        self._optimise()
        self.apply_memory_policy(self.runtime.memory)
        pipe.set_progress_bar_config(disable=None, leave=False)  # tqdm: on in a terminal, off in logs
        self.load_seconds = time.perf_counter() - t0
        return self

    def _optimise(self) -> None:
        rt, pipe = self.cfg.runtime, self.pipe
        if rt.channels_last:
            for m in (pipe.unet, pipe.controlnet, pipe.vae):
                m.to(memory_format=torch.channels_last)
        if rt.fuse_qkv and self.runtime.device == "cuda":
            # Fused projections change nothing but the number of matmuls. Only plain attention
            # layers are fused: diffusers' pipe.fuse_qkv_projections() would replace FaceID's
            # processors too (the face is lost; the UNet call fails on the adapter's tuple input)
            # and its fused weights would leave out the FaceID LoRA.
            self.fused_layers = fuse_plain_attention(pipe.unet, pipe.controlnet, pipe.vae)
        if rt.compile:
            t0 = time.perf_counter()
            # Module.compile keeps the modules themselves in the pipeline: a torch.compile wrapper
            # in their place hides the UNet's PEFT adapters from set_adapters (FaceID LoRA).
            backend = rt.compile_backend
            options = {"mode": "max-autotune-no-cudagraphs"} if backend == "inductor" else {}
            pipe.unet.compile(backend=backend, **options)
            pipe.controlnet.compile(backend=backend, **options)
            self.compile_seconds = time.perf_counter() - t0  # the real cost comes on the first call

    def apply_memory_policy(self, memory: str) -> None:
        pipe = self.pipe
        pipe.remove_all_hooks() if hasattr(pipe, "remove_all_hooks") else None
        if memory == "model-offload":
            pipe.enable_model_cpu_offload()
        elif memory == "sequential-offload":
            pipe.enable_sequential_cpu_offload()
        else:
            pipe.to(self.runtime.device)
        self.runtime.memory = memory

    def _generators(self, seeds: list[int]) -> list[torch.Generator]:
        # CPU generators: the same seed gives the same starting noise on any machine.
        return [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]

    def _set_face(self, on: bool) -> None:
        self.pipe.set_ip_adapter_scale(self.cfg.generation.ip_adapter_scale if on else 0.0)
        if self.adapter_names:
            scales = list(self.adapter_scales)
            if self.faceid_lora and not on:
                scales[0] = 0.0
            self.pipe.set_adapters(self.adapter_names, adapter_weights=scales)

    def _face_embeds(self, faces: torch.Tensor, guidance: float) -> list[torch.Tensor]:
        """(n, 512) faces -> [(2n, 1, 1, 512)]: zeros for CFG's unconditional half, then the faces."""
        emb = faces.to(torch.float32).reshape(-1, 1, 1, 512)
        emb = torch.cat([torch.zeros_like(emb), emb]) if guidance > 1 else emb
        dev = self.runtime.device if self.runtime.memory == "none" else "cpu"
        return [emb.to(device=dev, dtype=self.runtime.dtype)]

    def figure(self, prompt: str, negative: str, control_image, face_embedding, seed: int,
               face_crop=None) -> torch.Tensor:
        """Denoise one figure; returns latents (decode them with `decode`).

        face_crop: the aligned face crop (Face.crop; a list: several photos' crops, their CLIP
        embeddings averaged); needed, and only used, with model.identity = "faceid-plusv2".
        """
        g = self.cfg.generation
        self._check_crop(face_crop)
        self._set_face(True)
        self._set_clip(face_crop, 1, g.guidance)
        out = self._run(lambda: self.pipe(
            prompt=prompt, negative_prompt=negative, image=control_image,
            ip_adapter_image_embeds=self._face_embeds(torch.as_tensor(face_embedding), g.guidance),
            controlnet_conditioning_scale=g.controlnet_scale,
            num_inference_steps=g.steps, guidance_scale=g.guidance,
            width=g.width, height=g.height, generator=self._generators([seed])[0],
            output_type="latent", callback_on_step_end=self._first_step_check("figure", FIGURE_MODULES),
        ))
        self._check_latents(out.images, "figure")
        return out.images

    def text_pipeline(self):
        """The text-only SDXL pipeline for accessories, built once from the loaded components.

        It shares every module with the figure pipeline (no copy, no cast, no move: diffusers'
        `from_pipe` without a dtype would cast the shared UNet, VAE and text encoders to float32
        in place). Only the scheduler is its own: schedulers keep state between steps.
        """
        if self._text_pipe is None:
            import diffusers

            p = self.pipe
            self._text_pipe = diffusers.StableDiffusionXLPipeline(
                vae=p.vae, text_encoder=p.text_encoder, text_encoder_2=p.text_encoder_2,
                tokenizer=p.tokenizer, tokenizer_2=p.tokenizer_2, unet=p.unet,
                scheduler=type(p.scheduler).from_config(p.scheduler.config),
                force_zeros_for_empty_prompt=p.config.force_zeros_for_empty_prompt, add_watermarker=False,
            )
            self._text_pipe.set_progress_bar_config(disable=None, leave=False)
        return self._text_pipe

    def accessories(self, jobs: list[tuple[str, str, int]], width: int, height: int, steps: int,
                    guidance: float) -> torch.Tensor:
        """Text-only generations (prompt, negative, seed) in one batch; returns latents."""
        text_pipe = self.text_pipeline()
        self._set_face(False)
        self._set_clip(None, len(jobs), guidance)  # Plus V2: zeros, batch-shaped (the adapter is off)
        # Scale 0 makes the adapter's attention add nothing; the pipeline still wants embeddings.
        no_face = torch.zeros(len(jobs), 512)
        try:
            out = self._run(lambda: text_pipe(
                prompt=[j[0] for j in jobs], negative_prompt=[j[1] for j in jobs],
                ip_adapter_image_embeds=self._face_embeds(no_face, guidance),
                num_inference_steps=steps, guidance_scale=guidance, width=width, height=height,
                generator=self._generators([j[2] for j in jobs]), output_type="latent",
                callback_on_step_end=self._first_step_check("accessories", ACCESSORY_MODULES),
            ))
        finally:
            self._set_face(True)
        self._check_latents(out.images, "accessories")
        return out.images

    # -- finite outputs: a NaN weight makes a black picture, never a silent one ------------------
    def _first_step_check(self, what: str, modules: tuple[str, ...]):
        """diffusers' callback_on_step_end: after the first denoising step, stop with a
        GenerationError naming the likely file when the latents hold NaN or inf (one sync)."""

        def check(pipe, step: int, timestep, tensors: dict) -> dict:
            if step == 0 and not bool(torch.isfinite(tensors["latents"]).all()):
                raise self._nan_error(f"the {_names(modules)} produced NaN at the first denoising step "
                                      f"of the {what}", modules)
            return {}

        return check

    def _check_latents(self, latents: torch.Tensor, what: str) -> None:
        if not bool(torch.isfinite(latents).all()):  # the first step was finite: later overflow
            raise self._nan_error(f"the {what} turned NaN/inf during denoising (after a finite first step)",
                                  ("text_encoder", "text_encoder_2", "unet", "controlnet"))

    def _nan_error(self, what: str, modules: tuple[str, ...]) -> GenerationError:
        """What went NaN, and the weights file holding a non-finite tensor when one does."""
        found = nonfinite_weight(self.pipe, modules, self._sources)
        if found is not None:
            return GenerationError(f"{what}: {found}", hint="a damaged weights file? run `figurine weights verify`")
        return GenerationError(f"{what}; no weight is NaN/inf", hint="a numerical overflow? try --set "
                               "runtime.dtype=float32; or a damaged weights file: run `figurine weights verify`")

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> list:
        """VAE decode to PIL images (fp32 for a VAE that asks for it: SDXL's original overflows in fp16)."""
        pipe, vae = self.pipe, self.pipe.vae
        upcast = vae.dtype == torch.float16 and vae.config.force_upcast
        if upcast:
            vae.to(torch.float32)
        lat = latents.to(device=vae.device if self.runtime.memory == "none" else latents.device,
                         dtype=next(vae.post_quant_conv.parameters()).dtype)
        mean, std = getattr(vae.config, "latents_mean", None), getattr(vae.config, "latents_std", None)
        if mean is not None and std is not None:
            mean = torch.tensor(mean).view(1, -1, 1, 1).to(lat)
            std = torch.tensor(std).view(1, -1, 1, 1).to(lat)
            lat = lat * std / vae.config.scaling_factor + mean
        else:
            lat = lat / vae.config.scaling_factor
        images = self._run(lambda: vae.decode(lat, return_dict=False)[0])
        if upcast:
            vae.to(torch.float16)
        if not bool(torch.isfinite(images).all()):  # finite latents, NaN pixels: the VAE
            found = nonfinite_weight(pipe, ("vae",), self._sources)
            if found is not None:
                raise GenerationError(f"the VAE decoded NaN/inf: {found}",
                                      hint="a damaged weights file? run `figurine weights verify`")
            raise GenerationError("the VAE decoded NaN/inf; no weight is NaN/inf",
                                  hint="an fp16 overflow? set runtime.vae_fp32 = true or use the fp16-fix VAE")
        return pipe.image_processor.postprocess(images, output_type="pil")

    # -----------------------------------------------------------------------------------------
    # FaceID Plus V2: the CLIP embedding of the face crop

    @property
    def plus(self) -> bool:
        """Whether the loaded adapter is FaceID Plus (V2): its projection reads CLIP embeddings."""
        return _plus_projection(self.pipe) is not None

    @torch.no_grad()
    def _set_clip(self, face_crop, n: int, guidance: float) -> None:
        """Plus V2: set the image projection's CLIP input for the next call of batch n.

        The guide's recipe: `prepare_ip_adapter_image_embeds([crop], None, device, n, cfg)[0]`
        (the encoder's penultimate hidden states, the zero image's for CFG's negative half),
        assigned to `clip_embeds`, with `shortcut = True` for V2. Several crops: their embeddings
        are averaged. face_crop None: zeros of the right shape, for calls with the adapter off.
        Plain FaceID: nothing to do.
        """
        proj = _plus_projection(self.pipe)
        if proj is None:
            return
        device = self.pipe._execution_device
        if face_crop is None:
            # As many rows as the pipeline makes of the id embeddings: it repeats the (2n, ...)
            # embeddings it is given once per prompt of the batch.
            ids = self._face_embeds(torch.zeros(n, 512), guidance)
            rows = len(self.pipe.prepare_ip_adapter_image_embeds(None, ids, "cpu", n, guidance > 1)[0])
            enc = self.pipe.image_encoder.config
            tokens = (enc.image_size // enc.patch_size) ** 2 + 1  # the patches and the class token
            clip = torch.zeros(rows, 1, tokens, enc.hidden_size)
        else:
            crops = list(face_crop) if isinstance(face_crop, (list, tuple)) else [face_crop]
            embeds = [self.pipe.prepare_ip_adapter_image_embeds([crop.convert("RGB")], None, device, n,
                                                                guidance > 1)[0] for crop in crops]
            clip = torch.stack([e.float() for e in embeds]).mean(0)
        proj.clip_embeds = clip.to(device=device, dtype=self.runtime.dtype)
        proj.shortcut = True
        proj.shortcut_scale = self.cfg.generation.face_structure

    def _check_crop(self, face_crop) -> None:
        if self.plus and face_crop is None:
            raise ValueError("model.identity = 'faceid-plusv2' needs the aligned face crop (face_crop=Face.crop)")

    # -----------------------------------------------------------------------------------------
    # The face detail pass

    def detail_pipeline(self):
        """SDXL img2img on the loaded modules, built once (shared like `text_pipeline`'s: no copy,
        no cast, no move; only the scheduler is its own)."""
        if getattr(self, "_detail_pipe", None) is None:
            import diffusers

            p = self.pipe
            self._detail_pipe = diffusers.StableDiffusionXLImg2ImgPipeline(
                vae=p.vae, text_encoder=p.text_encoder, text_encoder_2=p.text_encoder_2,
                tokenizer=p.tokenizer, tokenizer_2=p.tokenizer_2, unet=p.unet,
                scheduler=type(p.scheduler).from_config(p.scheduler.config),
                image_encoder=getattr(p, "image_encoder", None), feature_extractor=getattr(p, "feature_extractor", None),
                requires_aesthetics_score=False, force_zeros_for_empty_prompt=p.config.force_zeros_for_empty_prompt,
                add_watermarker=False,
            )
            self._detail_pipe.set_progress_bar_config(disable=None, leave=False)
        return self._detail_pipe

    def detail(self, image, box, prompt: str, negative: str, face_embedding, strength: float, seed: int,
               size: int = 1024, face_crop=None, margin: float | None = None):
        """The figure with its face re-denoised at size x size; returns a new PIL picture.

        box: the face on `image` (x0, y0, x1, y1 pixels: insightface's box, or one drawn around
        the pose's head joints). The square of `detail_square(box, image.size, margin)` is cut
        out, scaled to size x size, denoised again from `strength` (SDXL img2img: same prompt,
        the face adapter and its LoRA on, generation.guidance, int(steps x strength) steps, at
        least one), scaled back and pasted through `feather_mask`: outside the square, and on its
        outer ring, every pixel stays as it was. margin None: detail.margin.
        """
        from PIL import Image

        g = self.cfg.generation
        margin = self.cfg.detail.margin if margin is None else float(margin)
        # 1. Inputs.
        if not isinstance(image, Image.Image):
            raise TypeError(f"detail takes a PIL image, got {type(image).__name__}")
        if not 0.0 < float(strength) <= 1.0:
            raise ValueError(f"detail strength must be in (0, 1], got {strength!r}")
        if int(size) < 64 or int(size) % 8:
            raise ValueError(f"detail size must be a multiple of 8 of at least 64, got {size!r}")
        self._check_crop(face_crop)
        x0, y0, side = detail_square(box, image.size, margin)
        # 2. The square around the face, at SDXL's resolution.
        base = image.convert("RGB")
        crop = base.crop((x0, y0, x0 + side, y0 + side)).resize((size, size), Image.Resampling.LANCZOS)
        # 3. Encode (a sample of the VAE's posterior, as img2img does) and denoise from `strength`.
        pipe = self.detail_pipeline()
        generator = self._generators([seed])[0]
        latents = self._encode(crop, generator)
        self._set_face(True)
        self._set_clip(face_crop, 1, g.guidance)
        out = self._run(lambda: pipe(
            prompt=prompt, negative_prompt=negative, image=latents, strength=float(strength),
            num_inference_steps=detail_steps(g.steps, float(strength)), guidance_scale=g.guidance,
            ip_adapter_image_embeds=self._face_embeds(torch.as_tensor(face_embedding), g.guidance),
            generator=generator, output_type="latent",
            callback_on_step_end=self._first_step_check("face detail", ACCESSORY_MODULES),
        ))
        self._check_latents(out.images, "face detail")
        redone = self.decode(out.images)[0]
        # 4. Back to the square's size, through the feathered mask.
        redone = redone.resize((side, side), Image.Resampling.LANCZOS)
        result = base.copy()
        result.paste(redone, (x0, y0), feather_mask(side, margin))
        return result

    @torch.no_grad()
    def _encode(self, image, generator: torch.Generator) -> torch.Tensor:
        """PIL -> the initial latents SDXL img2img makes from it: the VAE posterior sampled with
        `generator`, scaled (and shifted, for a VAE with latents_mean/std); in the VAE's dtype,
        fp32 for a VAE that asks for it, as in `decode`. Returned in the runtime dtype."""
        vae = self.pipe.vae
        upcast = vae.dtype == torch.float16 and vae.config.force_upcast
        if upcast:
            vae.to(torch.float32)
        try:
            dtype = next(vae.encoder.parameters()).dtype
            pixels = self.pipe.image_processor.preprocess(image).to(device=self.pipe._execution_device, dtype=dtype)
            latents = self._run(lambda: vae.encode(pixels).latent_dist.sample(generator))
        finally:
            if upcast:
                vae.to(torch.float16)
        mean, std = getattr(vae.config, "latents_mean", None), getattr(vae.config, "latents_std", None)
        if mean is not None and std is not None:
            mean = torch.tensor(mean).view(1, -1, 1, 1).to(latents)
            std = torch.tensor(std).view(1, -1, 1, 1).to(latents)
            latents = (latents - mean) * vae.config.scaling_factor / std
        else:
            latents = latents * vae.config.scaling_factor
        return latents.to(self.runtime.dtype)

    def _run(self, fn):
        """Call fn; on CUDA out-of-memory retry once with the next stronger memory policy."""
        try:
            return fn()
        except torch.cuda.OutOfMemoryError as first:
            g, policy = self.cfg.generation, self.runtime.memory
            i = MEMORY_POLICIES.index(policy)
            if i + 1 < len(MEMORY_POLICIES):
                stronger = MEMORY_POLICIES[i + 1]
                log.warning("out of GPU memory with memory policy '%s'; retrying once with '%s'", policy, stronger)
                torch.cuda.empty_cache()
                self.apply_memory_policy(stronger)
                try:
                    return fn()
                except torch.cuda.OutOfMemoryError:
                    pass
            raise GenerationError(
                f"out of GPU memory at {g.width}x{g.height} even with memory policy '{self.runtime.memory}'",
                hint="settings that fit less memory: --set generation.width=768 --set generation.height=768, "
                "--set accessories.batch=1, or close other programs using the GPU",
            ) from first


# ---------------------------------------------------------------------------------------------
# Helpers of the Plus adapter and the detail pass


def _plus_projection(pipe):
    """The FaceID Plus image projection of a pipeline's UNet, or None (plain FaceID, no adapter)."""
    from diffusers.models.embeddings import IPAdapterFaceIDPlusImageProjection

    layers = getattr(getattr(pipe.unet, "encoder_hid_proj", None), "image_projection_layers", None) or []
    return layers[0] if layers and isinstance(layers[0], IPAdapterFaceIDPlusImageProjection) else None


def require_plusv2_files(adapter: Path, encoder_dir: Path) -> None:
    """A WeightsError naming the missing Plus V2 file and the optional fetch that brings it."""
    for path in (adapter, encoder_dir / "config.json", encoder_dir / "model.safetensors"):
        if not path.exists():
            raise WeightsError(f"model.identity = 'faceid-plusv2' needs {path}, which is missing",
                               hint="run `figurine weights fetch --optional` (or set model.identity = faceid)")


def detail_steps(steps: int, strength: float) -> int:
    """num_inference_steps for img2img at `strength`: the configured steps, raised until
    int(steps x strength) (the steps img2img runs) is at least one."""
    n = max(int(steps), math.ceil(1.0 / strength))
    while int(n * strength) < 1:
        n += 1
    return n


def detail_square(box, image_size: tuple[int, int], margin: float) -> tuple[int, int, int]:
    """(left, top, side) of the square the detail pass redraws: centred on the face box, its
    side the box's larger side plus `margin` of it on each side, within the picture (moved
    inside it, and no larger than its shorter side)."""
    width, height = image_size
    try:
        x0, y0, x1, y1 = (float(v) for v in box)
    except (TypeError, ValueError):
        raise ValueError(f"the face box must be 4 numbers (x0, y0, x1, y1), got {box!r}") from None
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)) or x1 <= x0 or y1 <= y0:
        raise ValueError(f"the face box must have x1 > x0 and y1 > y0, got {box!r}")
    if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
        raise ValueError(f"the face box {box!r} lies outside the {width}x{height} picture")
    if margin < 0:
        raise ValueError(f"the detail margin must be >= 0, got {margin!r}")
    side = round(max(x1 - x0, y1 - y0) * (1 + 2 * margin))
    side = max(8, min(side, width, height))
    left = round((x0 + x1) / 2 - side / 2)
    top = round((y0 + y1) / 2 - side / 2)
    return min(max(left, 0), width - side), min(max(top, 0), height - side), side


def feather_mask(side: int, margin: float):
    """The paste mask of the detail pass (PIL "L", side x side): 0 on the outer ring, rising
    smoothly over half the margin band to 255, which covers the face box and more."""
    import numpy as np
    from PIL import Image

    ramp = max(1.0, side * margin / (1 + 2 * margin) / 2)
    edge = np.arange(side)
    edge = np.minimum(edge, side - 1 - edge)  # pixels from the nearest edge: 0 on the outer ring
    t = np.clip(np.minimum(edge[:, None], edge[None, :]) / ramp, 0.0, 1.0)
    return Image.fromarray(np.round(255 * t * t * (3 - 2 * t)).astype(np.uint8), "L")
