"""The generation stage against the documented recipes, in float16 and float32 (issue 10).

Reference usage, written here from the diffusers IP-Adapter guide ("Face model" / FaceID) and
h94's IP-Adapter-FaceID SDXL model card, on the tiny weights tree:

    controlnet = ControlNetModel.from_pretrained(CONTROLNET, torch_dtype=dtype)
    vae = AutoencoderKL.from_pretrained(VAE_FP16_FIX, torch_dtype=dtype)
    pipe = StableDiffusionXLControlNetPipeline.from_pretrained(BASE, controlnet=controlnet, vae=vae,
                                                                torch_dtype=dtype, variant="fp16")
    pipe.scheduler = DDIMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                                   beta_schedule="scaled_linear", clip_sample=False,
                                   set_alpha_to_one=False, steps_offset=1)      # the card's
    pipe.load_ip_adapter(FACEID_DIR, subfolder=None, weight_name=FILE, image_encoder_folder=None)
    pipe.set_ip_adapter_scale(ip_adapter_scale)
    pipe.set_adapters(["faceid_0"], adapter_weights=[lora_scale])  # the LoRA the adapter file carries
    app = FaceAnalysis(name="buffalo_l", root=ROOT); app.prepare(ctx_id=0, det_size=(640, 640))
    faces = app.get(cv2.cvtColor(np.asarray(photo), cv2.COLOR_BGR2RGB))   # insightface wants BGR
    emb = torch.from_numpy(faces[0].normed_embedding).unsqueeze(0)
    emb = torch.stack([emb], dim=0).unsqueeze(0)                          # (1, 1, 1, 512)
    embeds = torch.cat([torch.zeros_like(emb), emb]).to(dtype)            # [negative, positive]
    pipe(prompt, negative_prompt=negative, image=pose, ip_adapter_image_embeds=[embeds],
         controlnet_conditioning_scale=controlnet_scale, ...)

Accessories: a plain StableDiffusionXLPipeline on the same base and VAE, with no adapter.

figurine deliberately differs from the card in its default strengths only (ip_adapter_scale 0.8,
lora_scale 0.6 where diffusers loads the LoRA at 1.0; see the README); the tests give the
reference the same numbers, so they pin the mechanism, and each check has a negative control
that shows the comparison would catch the change.

Tolerance: outputs are compared as decoded 8-bit pictures (what a user sees). figurine keeps
channels_last convolutions and batches accessories, so equality is to within float rounding:
TOL below, per dtype, in 0-255 levels. Every negative control moves the picture by more than
twice that.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import TINY_CONFIG, one_error_line, run_figurine
from tests.photos import make_face_photo

DTYPES = {"float32": torch.float32, "float16": torch.float16}
# Largest allowed difference between figurine's picture and the reference's, in 0-255 levels.
TOL = {"float32": 1, "float16": 3}


# ---------------------------------------------------------------------------------------------
# The reference recipe


def reference_faceid_pipeline(weights: Path, dtype, ip_scale: float, lora_scale: float, vae: str = "fix"):
    from diffusers import AutoencoderKL, ControlNetModel, StableDiffusionXLControlNetPipeline

    controlnet = ControlNetModel.from_pretrained(weights / "controlnet-openpose-sdxl", torch_dtype=dtype)
    extra = {}
    if vae == "fix":
        extra["vae"] = AutoencoderKL.from_pretrained(weights / "sdxl-vae-fp16-fix", torch_dtype=dtype)
    pipe = StableDiffusionXLControlNetPipeline.from_pretrained(
        weights / "sdxl-base", controlnet=controlnet, torch_dtype=dtype, variant="fp16",
        add_watermarker=False, **extra)
    return with_faceid_card(pipe, weights, "ip-adapter-faceid_sdxl.safetensors", ip_scale, lora_scale)


def ddim_card():
    """The scheduler of the FaceID model card's SDXL example."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                         clip_sample=False, set_alpha_to_one=False, steps_offset=1)


def with_faceid_card(pipe, weights: Path, weight_name: str, ip_scale: float, lora_scale: float):
    """A bare diffusers SDXL pipeline set up as the model card does: its DDIM scheduler, the FaceID
    adapter file (its LoRA comes with it) at the given adapter and LoRA scales."""
    pipe.scheduler = ddim_card()
    pipe.load_ip_adapter(str(weights / "ip-adapter-faceid"), subfolder=None, weight_name=weight_name,
                         image_encoder_folder=None)
    pipe.set_ip_adapter_scale(ip_scale)
    pipe.set_adapters(["faceid_0"], adapter_weights=[lora_scale])
    pipe.set_progress_bar_config(disable=True)
    return pipe


def reference_text_pipeline(weights: Path, dtype):
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionXLPipeline

    vae = AutoencoderKL.from_pretrained(weights / "sdxl-vae-fp16-fix", torch_dtype=dtype)
    pipe = StableDiffusionXLPipeline.from_pretrained(weights / "sdxl-base", vae=vae, torch_dtype=dtype,
                                                     variant="fp16", add_watermarker=False)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config, clip_sample=False, set_alpha_to_one=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def insightface_embedding(pack: Path, photo: Path, tmp: Path) -> np.ndarray:
    """The guide's FaceAnalysis usage on the pack folder (models live under ROOT/models/NAME)."""
    import cv2
    from insightface.app import FaceAnalysis

    (tmp / "models").mkdir(parents=True, exist_ok=True)
    link = tmp / "models" / "buffalo_l"
    if not link.exists():
        link.symlink_to(pack, target_is_directory=True)
    app = FaceAnalysis(name="buffalo_l", root=str(tmp), providers=["CPUExecutionProvider"])
    app.prepare(ctx_id=0, det_size=(640, 640))
    rgb = np.asarray(Image.open(photo).convert("RGB"))
    faces = app.get(cv2.cvtColor(rgb, cv2.COLOR_BGR2RGB))  # RGB -> BGR (the same channel swap)
    face = max(faces, key=lambda f: (f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1]))
    return face.normed_embedding


def id_embeds(embedding: np.ndarray, dtype, order: str = "negative-first") -> torch.Tensor:
    emb = torch.stack([torch.from_numpy(embedding).unsqueeze(0)], dim=0).unsqueeze(0)
    pair = [torch.zeros_like(emb), emb] if order == "negative-first" else [emb, torch.zeros_like(emb)]
    return torch.cat(pair).to(dtype=dtype)


def module_state(pipe) -> dict[str, tuple]:
    """(dtype, device) of every parameter and buffer of every model in a pipeline."""
    state = {}
    for name in ("unet", "controlnet", "vae", "text_encoder", "text_encoder_2"):
        module = getattr(pipe, name, None)
        if module is not None:
            for key, t in list(module.named_parameters()) + list(module.named_buffers()):
                state[f"{name}.{key}"] = (t.dtype, t.device.type)
    return state


def pixels(image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


# ---------------------------------------------------------------------------------------------
# Fixtures: one make run per dtype (subprocess, the user's command), read back by every test


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    return make_face_photo(tmp_path_factory.mktemp("gen-photo") / "selfie.jpg")


@pytest.fixture(scope="module", params=list(DTYPES))
def made(request, tmp_path_factory, tiny_weights, photo):
    """`figurine make` with two accessories in this dtype; returns (dtype name, run dir, record)."""
    dtype = request.param
    tmp = tmp_path_factory.mktemp(f"gen-{dtype}")
    proc = run_figurine("make", photo, "--name", "Ada", "--accessory", "brass gear", "--accessory", "tea cup",
                        "--seed", "11", "--weights", tiny_weights, "--config", TINY_CONFIG,
                        "--set", f"runtime.dtype={dtype}", "-o", tmp / "ada.png", cwd=tmp)
    assert proc.returncode == 0, proc.stderr
    run = tmp / "ada.run"
    return dtype, run, json.loads((run / "run.json").read_text())


@pytest.fixture(scope="module")
def faceid_refs(tiny_weights):
    """Reference FaceID pipelines per dtype, built once."""
    cache = {}

    def get(dtype: str, ip_scale=0.8, lora_scale=0.6, vae="fix"):
        key = (dtype, vae)
        if key not in cache:
            cache[key] = reference_faceid_pipeline(tiny_weights, DTYPES[dtype], ip_scale, lora_scale, vae)
        pipe = cache[key]
        pipe.set_ip_adapter_scale(ip_scale)
        pipe.set_adapters(["faceid_0"], adapter_weights=[lora_scale])
        return pipe
    return get


def reference_figure(pipe, record: dict, run: Path, embedding, dtype: str, *, order="negative-first",
                     controlnet_scale=None, negative=None, output_type="pil"):
    g = record["config"]["generation"]
    out = pipe(prompt=record["prompts"]["figure"],
               negative_prompt=record["prompts"]["negative"] if negative is None else negative,
               image=Image.open(run / record["stages"]["figure"]["pose_image"]).convert("RGB"),
               ip_adapter_image_embeds=[id_embeds(embedding, DTYPES[dtype], order)],
               controlnet_conditioning_scale=g["controlnet_scale"] if controlnet_scale is None else controlnet_scale,
               num_inference_steps=g["steps"], guidance_scale=g["guidance"], width=g["width"], height=g["height"],
               generator=torch.Generator("cpu").manual_seed(record["resolved"]["seed"]), output_type=output_type)
    return out.images[0]


# ---------------------------------------------------------------------------------------------
# The identity stage: figurine's analyser gives insightface's own embedding


def test_face_embedding_equals_insightface_faceanalysis(tiny_weights, photo, tmp_path):
    from figurine.face import FaceAnalyzer, pick
    from figurine.photo import load_photo

    pack = tiny_weights / "insightface" / "buffalo_l"
    ours = pick(FaceAnalyzer(pack).faces(load_photo(photo)), -1).embedding
    theirs = insightface_embedding(pack, photo, tmp_path)
    assert np.allclose(ours, theirs, atol=1e-5), float(np.abs(ours - theirs).max())
    # Negative control: the same photo with red and blue swapped (an RGB/BGR mix-up) differs.
    swapped = Image.fromarray(np.asarray(load_photo(photo))[:, :, ::-1].copy())
    other = pick(FaceAnalyzer(pack).faces(swapped), -1).embedding
    assert float(ours @ other) < 0.999


# ---------------------------------------------------------------------------------------------
# The figure: make's picture equals the recipe's


def test_figure_equals_the_reference_recipe(made, faceid_refs, tiny_weights, photo, tmp_path):
    dtype, run, record = made
    g = record["config"]["generation"]
    embedding = insightface_embedding(tiny_weights / "insightface" / "buffalo_l", photo, tmp_path)
    ref = pixels(reference_figure(faceid_refs(dtype, g["ip_adapter_scale"], g["lora_scale"]), record, run,
                                  embedding, dtype))
    ours = pixels(Image.open(run / record["stages"]["figure"]["files"][0]))
    tol = TOL[dtype]
    diff = int(np.abs(ours - ref).max())
    assert diff <= tol, f"figurine's figure differs from the recipe by {diff} levels (tolerance {tol})"

    # Negative controls: each change the suite must catch moves the picture past the tolerance.
    changed = {
        "embeddings as [face, zeros]": reference_figure(faceid_refs(dtype, g["ip_adapter_scale"], g["lora_scale"]),
                                                        record, run, embedding, dtype, order="positive-first"),
        "adapter scale 0": reference_figure(faceid_refs(dtype, 0.0, g["lora_scale"]), record, run, embedding, dtype),
        "LoRA scale ignored (1.0)": reference_figure(faceid_refs(dtype, g["ip_adapter_scale"], 1.0),
                                                     record, run, embedding, dtype),
        "ControlNet scale 0": reference_figure(faceid_refs(dtype, g["ip_adapter_scale"], g["lora_scale"]),
                                               record, run, embedding, dtype, controlnet_scale=0.0),
        "negative prompt dropped": reference_figure(faceid_refs(dtype, g["ip_adapter_scale"], g["lora_scale"]),
                                                    record, run, embedding, dtype, negative=""),
        "base VAE, not the fp16-fix one": reference_figure(faceid_refs(dtype, g["ip_adapter_scale"], g["lora_scale"],
                                                                       vae="base"), record, run, embedding, dtype),
    }
    for what, image in changed.items():
        moved = int(np.abs(pixels(image) - ref).max())
        assert moved > 2 * tol, f"{what} changes the picture by only {moved} levels: the check cannot see it"


def test_accessories_equal_a_plain_sdxl_call(made, tiny_weights):
    dtype, run, record = made
    a = record["config"]["accessories"]
    pipe = reference_text_pipeline(tiny_weights, DTYPES[dtype])
    items = record["stages"]["accessories"]["items"]
    assert [i["text"] for i in items] == ["brass gear", "tea cup"]
    for item in items:
        from figurine.prompt import build_prompts

        negative = build_prompts("x").accessory(item["text"])[1]
        ref = pipe(prompt=item["prompt"], negative_prompt=negative, num_inference_steps=a["steps"],
                   guidance_scale=a["guidance"], width=a["width"], height=a["height"],
                   generator=torch.Generator("cpu").manual_seed(item["seed"])).images[0]
        ours = pixels(Image.open(run / item["raw"]))
        diff = int(np.abs(ours - pixels(ref)).max())
        assert diff <= TOL[dtype], f"accessory '{item['text']}' differs from plain SDXL by {diff} levels"


# ---------------------------------------------------------------------------------------------
# One process, several calls: nothing changes the shared modules (the web UI keeps them)


@pytest.fixture(scope="module", params=list(DTYPES))
def generator(request, tiny_weights):
    from figurine.config import load_config
    from figurine.generate import Generator

    cfg = load_config([TINY_CONFIG], overrides=[f"runtime.dtype={request.param}"], weights=tiny_weights)
    return request.param, cfg, Generator(cfg)


def _control(cfg, preset="hero"):
    from figurine.pose import load_preset, render_pose

    g = cfg.generation
    return render_pose(load_preset(preset), g.width, g.height, cfg.pose.limb_width, cfg.pose.point_radius)


def test_figure_accessories_figure_keeps_every_module_and_the_result(generator):
    dtype, cfg, gen = generator
    face = np.random.default_rng(0).standard_normal(512).astype(np.float32)
    face /= np.linalg.norm(face)
    before = module_state(gen.pipe)
    assert {d for d, _ in before.values() if d.is_floating_point} <= {DTYPES[dtype], torch.float32}
    first = gen.figure("a figure", "blurry", _control(cfg), face, seed=3)
    a = cfg.accessories
    gen.accessories([("a gear", "person", 1), ("a cup", "person", 2)], a.width, a.height, a.steps, a.guidance)
    assert module_state(gen.pipe) == before, "the accessory call changed a shared module's dtype or device"
    second = gen.figure("a figure", "blurry", _control(cfg), face, seed=3)
    gen.decode(second)
    assert module_state(gen.pipe) == before
    assert module_state(gen.text_pipeline()) == {k: v for k, v in before.items() if not k.startswith("controlnet.")}
    assert first.dtype == DTYPES[dtype]
    assert torch.equal(first, second), "a figure after accessories differs from the same figure before"
    # The face adapter and its LoRA are back on for figures after the accessories.
    scales = {p.scale[0] for p in gen.pipe.unet.attn_processors.values() if hasattr(p, "scale")}
    assert scales == {cfg.generation.ip_adapter_scale}


def test_vae_fp32_setting_holds_after_accessories(tiny_weights):
    from figurine.config import load_config
    from figurine.generate import Generator

    cfg = load_config([TINY_CONFIG], overrides=["runtime.dtype=float16", "runtime.vae_fp32=true"],
                      weights=tiny_weights)
    gen = Generator(cfg)
    a = cfg.accessories
    latents = gen.accessories([("a gear", "person", 1)], a.width, a.height, a.steps, a.guidance)
    gen.decode(latents)
    assert {p.dtype for p in gen.pipe.vae.parameters()} == {torch.float32}
    assert {p.dtype for p in gen.pipe.unet.parameters()} == {torch.float16}


def test_a_different_pose_gives_a_different_figure(generator):
    """The tiny ControlNet is awake: the pose moves the latents beyond float16 rounding (about
    0.004 at the latents' size), while the same pose twice gives identical latents."""
    dtype, cfg, gen = generator
    face = np.ones(512, dtype=np.float32) / np.sqrt(512)
    hero = gen.figure("a figure", "blurry", _control(cfg, "hero"), face, seed=5)
    again = gen.figure("a figure", "blurry", _control(cfg, "hero"), face, seed=5)
    wave = gen.figure("a figure", "blurry", _control(cfg, "wave"), face, seed=5)
    assert torch.equal(hero, again)
    assert float((hero.float() - wave.float()).abs().max()) > 0.016


def test_the_face_reaches_the_pipeline_after_the_zeros(generator):
    _, cfg, gen = generator
    face = torch.arange(512, dtype=torch.float32) / 512
    (embeds,) = gen._face_embeds(face[None], guidance=5.0)
    assert embeds.shape == (2, 1, 1, 512)
    assert not embeds[0].any() and torch.allclose(embeds[1].float().flatten(), face, atol=1e-2)


def test_default_scheduler_is_the_model_cards_ddim(tiny_weights):
    from figurine.config import load_config
    from figurine.generate import make_scheduler

    cfg = load_config([], weights=tiny_weights)
    assert cfg.generation.scheduler == "ddim"
    from diffusers import DDIMScheduler

    base = DDIMScheduler.load_config(tiny_weights / "sdxl-base" / "scheduler")
    ours = make_scheduler("ddim", base)
    card = ddim_card()
    ours.set_timesteps(30)
    card.set_timesteps(30)
    assert torch.equal(ours.timesteps, card.timesteps)
    assert torch.allclose(ours.alphas_cumprod, card.alphas_cumprod)
    assert ours.final_alpha_cumprod == card.final_alpha_cumprod


def test_compile_builds_each_graph_once(tiny_weights):
    """runtime.compile: a make with accessories traces the ControlNet, the figure UNet graph and
    the accessory UNet graph once each; switching back and forth (LoRA and adapter scales, batch
    size, no ControlNet residuals) reuses them. Recompiles are decided by TorchDynamo's guards,
    whatever the backend, so the cheap `eager` backend counts them for inductor too."""
    from torch._dynamo.utils import counters

    from figurine.config import load_config
    from figurine.generate import Generator

    torch._dynamo.reset()
    counters.clear()
    cfg = load_config([TINY_CONFIG], overrides=["runtime.compile=true", "runtime.compile_backend=eager"],
                      weights=tiny_weights)
    gen = Generator(cfg)
    face = np.ones(512, dtype=np.float32) / np.sqrt(512)
    a = cfg.accessories

    def graphs() -> int:
        return counters["stats"]["unique_graphs"]

    try:
        gen.figure("a figure", "blurry", _control(cfg), face, seed=1)
        gen.accessories([("a gear", "person", 1), ("a cup", "person", 2)], a.width, a.height, a.steps, a.guidance)
        compiled = graphs()
        assert compiled == 3, f"expected ControlNet + figure UNet + accessory UNet graphs, got {compiled}"
        gen.figure("a figure", "blurry", _control(cfg), face, seed=2)
        gen.accessories([("a mug", "person", 3)], a.width, a.height, a.steps, a.guidance)
        gen.figure("a figure", "blurry", _control(cfg, "wave"), face, seed=3)
        assert graphs() == compiled, "switching between figure and accessories recompiled"
    finally:
        torch._dynamo.reset()


# ---------------------------------------------------------------------------------------------
# The user's commands in the GPU dtypes


def test_bfloat16_make_with_two_candidates_and_two_accessories(tiny_weights, photo, tmp_path):
    proc = run_figurine("make", photo, "--name", "Ada", "--candidates", "2", "--accessory", "gear",
                        "--accessory", "tea cup", "--weights", tiny_weights, "--config", TINY_CONFIG,
                        "--set", "runtime.dtype=bfloat16", "-o", tmp_path / "ada.png", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    record = json.loads((tmp_path / "ada.json").read_text())
    assert record["runtime"]["dtype"] == "bfloat16"
    assert len(record["stages"]["figure"]["files"]) == 2
    assert [i["text"] for i in record["stages"]["accessories"]["items"]] == ["gear", "tea cup"]


def test_second_generate_in_one_process_float16(tiny_weights, photo, tmp_path):
    """The web UI keeps one pipeline between clicks: a second Generate with new accessories and a
    new seed works, and the shared modules keep their dtype and device."""
    from figurine.config import load_config
    from figurine.pipeline import FigurinePipeline
    from figurine.request import Request

    cfg = load_config([TINY_CONFIG], overrides=["runtime.dtype=float16"], weights=tiny_weights)
    pipe = FigurinePipeline(cfg)
    first = pipe(Request(photos=[photo], name="Ada", output=tmp_path / "a.png", accessories=["gear"], seed=1))
    state = module_state(pipe.generator().pipe)
    second = pipe(Request(photos=[photo], name="Ada", output=tmp_path / "b.png", accessories=["cup", "hat"],
                          seed=2))
    assert module_state(pipe.generator().pipe) == state
    assert {p.dtype for p in pipe.generator().pipe.unet.parameters()} == {torch.float16}
    assert first.record["resolved"]["seed"] == 1 and second.record["resolved"]["seed"] == 2
    assert len(second.record["stages"]["accessories"]["items"]) == 2


def test_an_unexpected_model_error_is_one_line_with_a_log(tiny_weights, photo, tmp_path):
    """A crash inside a model call ends with one line naming the stage and a likely setting,
    exit 4, and the full traceback in the run directory's error.log (shown with -v). The crash
    here: a UNet config edited so its time embedding no longer fits its weights (they still
    load; the first denoising step fails), as a hand-edited or mixed-up model folder would."""
    weights = tmp_path / "w"
    shutil.copytree(tiny_weights, weights, symlinks=True)
    cfg_path = weights / "sdxl-base" / "unet" / "config.json"
    unet = json.loads(cfg_path.read_text())
    unet["addition_time_embed_dim"] = 4  # 6 x 4 + 32 inputs where the weights take 6 x 8 + 32
    cfg_path.write_text(json.dumps(unet))
    proc = run_figurine("make", photo, "--name", "Ada", "--weights", weights, "--config", TINY_CONFIG,
                        "-o", tmp_path / "ada.png", cwd=tmp_path)
    assert proc.returncode == 4, proc.stderr
    error = one_error_line(proc)
    assert "the generation stage failed" in error and "likely setting:" in error, error
    log = (tmp_path / "ada.run" / "error.log").read_text()
    assert "Traceback (most recent call last)" in log and "stage generation" in log
    verbose = run_figurine("make", photo, "--name", "Ada", "--weights", weights, "--config", TINY_CONFIG,
                           "-o", tmp_path / "ada.png", "-v", cwd=tmp_path)
    assert verbose.returncode == 4 and "Traceback (most recent call last)" in verbose.stderr
