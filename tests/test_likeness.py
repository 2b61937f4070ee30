"""Likeness (issue 15): FaceID Plus V2, the face detail pass, and a bigger face from the portrait bucket.

FaceID Plus V2, reference usage written here from the diffusers IP-Adapter guide ("Face model":
IP-Adapter FaceID Plus / Plus v2) on the tiny weights tree:

    image_encoder = CLIPVisionModelWithProjection.from_pretrained(IMAGE_ENCODER, dtype=dtype)
    pipe = StableDiffusionXLControlNetPipeline.from_pretrained(BASE, controlnet=..., vae=...,
                                                                image_encoder=image_encoder, ...)
    pipe.load_ip_adapter(FACEID_DIR, subfolder=None, weight_name=PLUSV2_FILE, image_encoder_folder=None)
    faces = app.get(cv2.cvtColor(np.asarray(photo), cv2.COLOR_BGR2RGB))
    ip_adapter_images = [face_align.norm_crop(image, landmark=faces[0].kps, image_size=224)]
    id_embeds = cat([zeros, emb])                                   # as for FaceID
    clip_embeds = pipe.prepare_ip_adapter_image_embeds([ip_adapter_images], None, device, 1, True)[0]
    pipe.unet.encoder_hid_proj.image_projection_layers[0].clip_embeds = clip_embeds.to(dtype)
    pipe.unet.encoder_hid_proj.image_projection_layers[0].shortcut = True   # Plus v2
    pipe(prompt, image=pose, ip_adapter_image_embeds=[id_embeds], ...)

One deliberate difference, kept in the reference below: the guide's crop is cut from the BGR
array insightface reads, and handed to CLIP as it is; figurine hands CLIP the RGB crop (the
channel order CLIP was trained on; tencent-ailab/IP-Adapter#430 reports the guide's blue faces).
A negative control shows the comparison sees the channel order.

The face detail pass, reference: StableDiffusionXLImg2ImgPipeline on the same files with the
FaceID adapter, run on the square around the face scaled to the detail size; the result scaled
back and pasted through the feathered mask.

Tolerances as in tests/test_generate.py (TOL levels of 8 bits per dtype); every negative control
moves the picture by more than twice that.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from figurine.errors import ConfigError, WeightsError
from tests.conftest import TINY_CONFIG
from tests.photos import make_face_photo
from tests.test_generate import DTYPES, TOL, id_embeds, module_state, pixels, with_faceid_card

PLUSV2_FILE = "ip-adapter-faceid-plusv2_sdxl.safetensors"
ENCODER_DIR = "clip-vit-h-14-image-encoder"
PROMPT, NEGATIVE = "a 1/12 scale action figure of a person", "blurry, lowres"


# ---------------------------------------------------------------------------------------------
# Shared pieces


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    return make_face_photo(tmp_path_factory.mktemp("likeness-photo") / "selfie.jpg")


@pytest.fixture(scope="module")
def face(tiny_weights, photo):
    """figurine's identity stage on the photo: embedding, box and the aligned 224 px RGB crop."""
    from figurine.face import FaceAnalyzer, pick
    from figurine.photo import load_photo

    return pick(FaceAnalyzer(tiny_weights / "insightface" / "buffalo_l").faces(load_photo(photo)), -1)


@pytest.fixture(scope="module")
def guide_face(tiny_weights, photo, tmp_path_factory):
    """The guide's identity code: FaceAnalysis on the cv2-converted photo -> (embedding, BGR crop)."""
    import cv2
    from insightface.app import FaceAnalysis
    from insightface.utils import face_align

    root = tmp_path_factory.mktemp("insightface-root")
    (root / "models").mkdir()
    (root / "models" / "buffalo_l").symlink_to(tiny_weights / "insightface" / "buffalo_l", target_is_directory=True)
    app = FaceAnalysis(name="buffalo_l", root=str(root), providers=["CPUExecutionProvider"])
    app.prepare(ctx_id=0, det_size=(640, 640))
    image = cv2.cvtColor(np.asarray(Image.open(photo).convert("RGB")), cv2.COLOR_BGR2RGB)
    faces = app.get(image)
    return faces[0].normed_embedding, face_align.norm_crop(image, landmark=faces[0].kps, image_size=224)


def tiny_config(tiny_weights, dtype: str, *more: str):
    from figurine.config import load_config

    return load_config([TINY_CONFIG], overrides=[f"runtime.dtype={dtype}", *more], weights=tiny_weights)


def control_image(cfg, preset: str = "hero"):
    from figurine.pose import load_preset, render_pose

    g = cfg.generation
    return render_pose(load_preset(preset), g.width, g.height, cfg.pose.limb_width, cfg.pose.point_radius)


# ---------------------------------------------------------------------------------------------
# FaceID Plus V2 against the guide's recipe


def reference_plusv2_pipeline(weights: Path, dtype, ip_scale: float, lora_scale: float):
    from diffusers import AutoencoderKL, ControlNetModel, StableDiffusionXLControlNetPipeline
    from transformers import CLIPVisionModelWithProjection

    image_encoder = CLIPVisionModelWithProjection.from_pretrained(weights / ENCODER_DIR, dtype=dtype)
    controlnet = ControlNetModel.from_pretrained(weights / "controlnet-openpose-sdxl", torch_dtype=dtype)
    vae = AutoencoderKL.from_pretrained(weights / "sdxl-vae-fp16-fix", torch_dtype=dtype)
    pipe = StableDiffusionXLControlNetPipeline.from_pretrained(
        weights / "sdxl-base", controlnet=controlnet, vae=vae, image_encoder=image_encoder, torch_dtype=dtype,
        variant="fp16", add_watermarker=False)
    return with_faceid_card(pipe, weights, PLUSV2_FILE, ip_scale, lora_scale)


def reference_plusv2_figure(pipe, cfg, guide_face, dtype: str, seed: int, *, shortcut=True, bgr=False):
    embedding, bgr_crop = guide_face
    ip_adapter_images = [bgr_crop if bgr else np.ascontiguousarray(bgr_crop[:, :, ::-1])]
    clip_embeds = pipe.prepare_ip_adapter_image_embeds([ip_adapter_images], None, torch.device("cpu"), 1, True)[0]
    projection = pipe.unet.encoder_hid_proj.image_projection_layers[0]
    projection.clip_embeds = clip_embeds.to(dtype=DTYPES[dtype])
    projection.shortcut = shortcut
    g = cfg.generation
    return pipe(prompt=PROMPT, negative_prompt=NEGATIVE, image=control_image(cfg),
                ip_adapter_image_embeds=[id_embeds(embedding, DTYPES[dtype])],
                controlnet_conditioning_scale=g.controlnet_scale, num_inference_steps=g.steps,
                guidance_scale=g.guidance, width=g.width, height=g.height,
                generator=torch.Generator("cpu").manual_seed(seed)).images[0]


@pytest.fixture(scope="module", params=list(DTYPES))
def plus(request, tiny_weights):
    """figurine's Generator with model.identity = faceid-plusv2, per dtype."""
    from figurine.generate import Generator

    cfg = tiny_config(tiny_weights, request.param, "model.identity=faceid-plusv2")
    return request.param, cfg, Generator(cfg)


def test_plusv2_figure_equals_the_guides_recipe(plus, tiny_weights, face, guide_face):
    dtype, cfg, gen = plus
    g = cfg.generation
    assert gen.plus and type(gen.pipe.image_encoder).__name__ == "CLIPVisionModelWithProjection"
    before = module_state(gen.pipe)
    ours = pixels(gen.decode(gen.figure(PROMPT, NEGATIVE, control_image(cfg), face.embedding, seed=7,
                                        face_crop=face.crop))[0])
    assert module_state(gen.pipe) == before
    projection = gen.pipe.unet.encoder_hid_proj.image_projection_layers[0]
    assert projection.shortcut is True and projection.shortcut_scale == g.face_structure
    assert tuple(projection.clip_embeds.shape) == (2, 1, 257, gen.pipe.image_encoder.config.hidden_size)

    ref_pipe = reference_plusv2_pipeline(tiny_weights, DTYPES[dtype], g.ip_adapter_scale, g.lora_scale)
    ref = pixels(reference_plusv2_figure(ref_pipe, cfg, guide_face, dtype, seed=7))
    tol = TOL[dtype]
    diff = int(np.abs(ours - ref).max())
    assert diff <= tol, f"figurine's Plus V2 figure differs from the guide's recipe by {diff} levels (tolerance {tol})"

    # Negative controls: each change the comparison must catch moves the picture past twice the tolerance.
    changed = {
        "shortcut off (Plus V1's projection)": dict(shortcut=False),
        "the guide's BGR crop given to CLIP": dict(bgr=True),
    }
    for what, change in changed.items():
        moved = int(np.abs(pixels(reference_plusv2_figure(ref_pipe, cfg, guide_face, dtype, 7, **change)) - ref).max())
        assert moved > 2 * tol, f"{what} changes the picture by only {moved} levels: the check cannot see it"


def test_plusv2_accessories_then_figure_keep_the_modules_and_the_result(plus, face):
    """Accessories run with the adapter off (zero CLIP tokens, shaped for their batch); the next
    figure is the same as before them, and no shared module changed dtype or device."""
    dtype, cfg, gen = plus
    first = gen.figure(PROMPT, NEGATIVE, control_image(cfg), face.embedding, seed=3, face_crop=face.crop)
    before = module_state(gen.pipe)
    a = cfg.accessories
    gen.accessories([("a gear", "person", 1), ("a cup", "person", 2)], a.width, a.height, a.steps, a.guidance)
    assert module_state(gen.pipe) == before
    again = gen.figure(PROMPT, NEGATIVE, control_image(cfg), face.embedding, seed=3, face_crop=face.crop)
    assert torch.equal(first, again)
    with pytest.raises(ValueError, match="face crop"):
        gen.figure(PROMPT, NEGATIVE, control_image(cfg), face.embedding, seed=3)


def test_plusv2_averages_the_crops_of_several_photos(plus, face):
    """Several photos of one person: the CLIP input is the mean of each crop's embedding (the
    zero image's, for CFG's negative half, is the same for all)."""
    dtype, cfg, gen = plus
    projection = gen.pipe.unet.encoder_hid_proj.image_projection_layers[0]
    mirrored = face.crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    single = {}
    for name, crop in (("photo", face.crop), ("mirrored", mirrored)):
        gen._set_clip(crop, 1, cfg.generation.guidance)
        single[name] = projection.clip_embeds.float().clone()
    gen._set_clip([face.crop, mirrored], 1, cfg.generation.guidance)
    both = projection.clip_embeds.float()
    assert not torch.equal(single["photo"], single["mirrored"])
    assert torch.allclose(both, (single["photo"] + single["mirrored"]) / 2, atol=2e-3 if dtype == "float16" else 1e-6)
    assert torch.equal(single["photo"][0], single["mirrored"][0])  # the negative half: the zero image


def test_plusv2_survives_qkv_fusion(tiny_weights, face):
    """runtime.fuse_qkv (CUDA) fuses the plain attention layers; the Plus adapter's resampler
    attends from its latents to (CLIP tokens, latents), which a fused layer cannot run, so it is
    left alone. Called here directly on the CPU."""
    from diffusers.models.attention_processor import AttnProcessor2_0

    from figurine.generate import Generator, fuse_plain_attention

    cfg = tiny_config(tiny_weights, "float32", "model.identity=faceid-plusv2")
    gen = Generator(cfg)
    assert fuse_plain_attention(gen.pipe.unet, gen.pipe.controlnet, gen.pipe.vae) > 0
    resampler = gen.pipe.unet.encoder_hid_proj.image_projection_layers[0]
    assert all(type(b.attn.processor) is AttnProcessor2_0 for b in resampler.layers)
    latents = gen.figure(PROMPT, NEGATIVE, control_image(cfg), face.embedding, seed=2, face_crop=face.crop)
    assert torch.isfinite(latents).all()


def test_plusv2_without_its_files_names_them_and_the_optional_fetch(tiny_weights, tmp_path):
    from figurine.generate import Generator

    cfg = tiny_config(tiny_weights, "float32", "model.identity=faceid-plusv2",
                      f"model.image_encoder={tmp_path / 'nowhere'}")
    with pytest.raises(WeightsError) as e:
        Generator(cfg)
    assert "nowhere" in str(e.value) and "--optional" in (e.value.hint or "")
    with pytest.raises(ConfigError, match="model.identity"):
        tiny_config(tiny_weights, "float32", "model.identity=faceid-plus")


# ---------------------------------------------------------------------------------------------
# The face detail pass


def reference_img2img_pipeline(weights: Path, dtype, ip_scale: float, lora_scale: float):
    from diffusers import AutoencoderKL, StableDiffusionXLImg2ImgPipeline

    vae = AutoencoderKL.from_pretrained(weights / "sdxl-vae-fp16-fix", torch_dtype=dtype)
    pipe = StableDiffusionXLImg2ImgPipeline.from_pretrained(weights / "sdxl-base", vae=vae, torch_dtype=dtype,
                                                            variant="fp16", add_watermarker=False)
    return with_faceid_card(pipe, weights, "ip-adapter-faceid_sdxl.safetensors", ip_scale, lora_scale)


def drawn_figure(width: int, height: int):
    """A stand-in for a generated figure (the detail pass takes any picture): the hero pose's
    skeleton drawn thick on a grey studio backdrop."""
    from figurine.pose import load_preset, render_pose

    pose = np.asarray(render_pose(load_preset("hero"), width, height, limb_width=60, point_radius=30)).astype(int)
    grey = np.full_like(pose, 128)
    return Image.fromarray(np.where(pose.any(axis=-1, keepdims=True), pose, grey).astype(np.uint8), "RGB")


@pytest.fixture(scope="module", params=list(DTYPES))
def detailed(request, tiny_weights, face):
    """The detail pass (plain FaceID, the default) on a tiny figure's face, per dtype."""
    from figurine.generate import Generator
    from figurine.pose import head_box, load_preset

    dtype = request.param
    # Six steps: img2img at strength 0.35 then runs int(6 x 0.35) = 2 of them (from t = 167), and
    # another strength starts elsewhere (at two steps every strength < 1 runs only the last one).
    cfg = tiny_config(tiny_weights, dtype, "generation.steps=6")
    gen = Generator(cfg)
    g, d = cfg.generation, cfg.detail
    figure = drawn_figure(g.width, g.height)
    box = head_box(load_preset("hero"), g.width, g.height)
    before = module_state(gen.pipe)
    t0 = time.perf_counter()
    result = gen.detail(figure, box, PROMPT, NEGATIVE, face.embedding, d.strength, seed=9, size=d.size)
    seconds = time.perf_counter() - t0
    return dtype, cfg, gen, figure, box, result, before, seconds


def test_detail_pass_changes_no_pixel_outside_its_square(detailed):
    from figurine.generate import detail_square, feather_mask

    dtype, cfg, gen, figure, box, result, before, seconds = detailed
    assert result.size == figure.size and result.mode == "RGB"
    x0, y0, side = detail_square(box, figure.size, cfg.detail.margin)
    # The square holds the face box and the margin, inside the picture.
    assert x0 <= box[0] and y0 <= box[1] and x0 + side >= box[2] and y0 + side >= box[3]
    assert 0 <= x0 and 0 <= y0 and x0 + side <= figure.width and y0 + side <= figure.height
    old, new = pixels(figure), pixels(result)
    inside = np.zeros(old.shape[:2], bool)
    inside[y0 + 1:y0 + side - 1, x0 + 1:x0 + side - 1] = True  # the square less its outer ring
    assert np.array_equal(old[~inside], new[~inside]), "the detail pass changed a pixel outside its feathered square"
    moved = np.abs(old - new).max(axis=-1)
    assert moved[inside].max() > 2 * TOL[dtype], "the detail pass changed nothing inside its square"
    # The mask: zero on the ring, full over the face box, rising in between.
    mask = np.asarray(feather_mask(side, cfg.detail.margin))
    assert mask[0].max() == mask[-1].max() == mask[:, 0].max() == mask[:, -1].max() == 0
    fx0, fy0 = math.ceil(box[0]) - x0, math.ceil(box[1]) - y0
    fx1, fy1 = int(box[2]) - x0, int(box[3]) - y0
    assert (mask[fy0:fy1, fx0:fx1] == 255).all()
    # The shared modules keep their dtypes and devices.
    assert module_state(gen.pipe) == before
    assert {p.dtype for p in gen.pipe.unet.parameters()} == {DTYPES[dtype]}
    print(f"tiny detail pass ({dtype}, {cfg.detail.size}px, 1 step): {seconds:.2f} s")


def test_detail_pass_equals_the_img2img_recipe(detailed, tiny_weights, guide_face):
    from figurine.generate import detail_square, detail_steps, feather_mask

    dtype, cfg, gen, figure, box, result, before, seconds = detailed
    g, d = cfg.generation, cfg.detail
    x0, y0, side = detail_square(box, figure.size, d.margin)
    crop = figure.crop((x0, y0, x0 + side, y0 + side)).resize((d.size, d.size), Image.Resampling.LANCZOS)
    embedding = guide_face[0]

    pipe = reference_img2img_pipeline(tiny_weights, DTYPES[dtype], g.ip_adapter_scale, g.lora_scale)

    def redo(ip_scale=g.ip_adapter_scale, strength=d.strength):
        pipe.set_ip_adapter_scale(ip_scale)
        return pipe(prompt=PROMPT, negative_prompt=NEGATIVE, image=crop, strength=strength,
                    num_inference_steps=detail_steps(g.steps, strength), guidance_scale=g.guidance,
                    ip_adapter_image_embeds=[id_embeds(embedding, DTYPES[dtype])],
                    generator=torch.Generator("cpu").manual_seed(9)).images[0]

    def pasted(redone, feather=True):
        out = figure.copy()
        out.paste(redone.resize((side, side), Image.Resampling.LANCZOS), (x0, y0),
                  feather_mask(side, d.margin) if feather else None)
        return pixels(out)

    redone = redo()
    ref = pasted(redone)
    tol = TOL[dtype]
    diff = int(np.abs(pixels(result) - ref).max())
    assert diff <= tol, f"figurine's detail pass differs from the img2img recipe by {diff} levels (tolerance {tol})"
    changed = {
        "adapter scale 0": pasted(redo(ip_scale=0.0)),
        "strength 0.6, not the setting": pasted(redo(strength=0.6)),
        "pasted without the feathered mask": pasted(redone, feather=False),
    }
    for what, image in changed.items():
        moved = int(np.abs(image - ref).max())
        assert moved > 2 * tol, f"{what} changes the picture by only {moved} levels: the check cannot see it"


def test_detail_pass_with_plusv2_takes_the_face_crop(plus, face):
    from figurine.pose import head_box, load_preset

    dtype, cfg, gen = plus
    g = cfg.generation
    figure = drawn_figure(g.width, g.height)
    box = head_box(load_preset("hero"), g.width, g.height)
    before = module_state(gen.pipe)
    with pytest.raises(ValueError, match="face crop"):
        gen.detail(figure, box, PROMPT, NEGATIVE, face.embedding, 0.35, seed=1, size=cfg.detail.size)
    out = gen.detail(figure, box, PROMPT, NEGATIVE, face.embedding, 0.35, seed=1, size=cfg.detail.size,
                     face_crop=face.crop)
    assert out.size == figure.size and not np.array_equal(pixels(out), pixels(figure))
    assert module_state(gen.pipe) == before


def test_detail_square_and_steps():
    from figurine.generate import detail_square, detail_steps

    # Centred on the box, the box's larger side plus 60 % of it on each side.
    assert detail_square((400, 300, 500, 430), (832, 1216), 0.6) == (307, 222, 286)
    # Near the top edge: moved down into the picture, the same size.
    assert detail_square((400, 20, 500, 150), (832, 1216), 0.6) == (307, 0, 286)
    # Never larger than the picture's shorter side, always inside it.
    x0, y0, side = detail_square((0, 0, 60, 90), (64, 96), 0.6)
    assert side == 64 and (x0, y0) == (0, 13)  # centred on the box vertically, clamped at the left
    for bad in [(10, 10, 5, 20), (1000, 1000, 1100, 1100), (1, 2, 3)]:
        with pytest.raises(ValueError):
            detail_square(bad, (832, 1216), 0.6)
    # img2img runs int(steps x strength) steps: never zero.
    for steps, strength in [(2, 0.35), (30, 0.35), (1, 0.01), (4, 1 / 3), (30, 1.0)]:
        n = detail_steps(steps, strength)
        assert n >= steps and int(n * strength) >= 1


# ---------------------------------------------------------------------------------------------
# A bigger face: the portrait bucket


def face_width(pose, width: int, height: int) -> float:
    """The face's width in pixels on a width x height figure: the span of the ears' keypoints
    (eyes' span x 2.3, the presets' ratio, where an ear is hidden)."""
    from figurine.pose import KEYPOINT_NAMES, pose_to_pixels

    px = dict(zip(KEYPOINT_NAMES, pose_to_pixels(pose, width, height)))
    if px["r_ear"] is not None and px["l_ear"] is not None:
        return math.dist(px["r_ear"], px["l_ear"])
    return 2.3 * math.dist(px["r_eye"], px["l_eye"])


def test_the_portrait_bucket_gives_every_pose_a_bigger_face():
    """Measured on the control image the ControlNet gets: the ears' joint dots, found by their
    OpenPose colours. A standing figure at 1024x1024: 80.0 px; at 832x1216: 95.0 px."""
    from figurine.config import load_config
    from figurine.pose import COLORS, KEYPOINT_NAMES, list_presets, load_preset, render_pose

    g = load_config([]).generation
    assert (g.width, g.height) == (832, 1216), "the default generation size is SDXL's portrait bucket"
    widths = {}
    for preset in list_presets():
        pose = load_preset(preset.name)
        square, portrait = face_width(pose, 1024, 1024), face_width(pose, 832, 1216)
        widths[preset.name] = (square, portrait)
        assert portrait > 1.15 * square, f"{preset.name}: {square:.1f} px at 1024x1024, {portrait:.1f} px at 832x1216"
        # The same distance measured on the rendered control image (small dots, so none overlap).
        if pose.point("r_ear") is not None and pose.point("l_ear") is not None:
            for (w, h), want in (((1024, 1024), square), ((832, 1216), portrait)):
                a = np.asarray(render_pose(pose, w, h, limb_width=2, point_radius=3)).astype(int)
                dots = []
                for name in ("r_ear", "l_ear"):
                    ys, xs = np.nonzero((a == COLORS[KEYPOINT_NAMES.index(name)]).all(axis=-1))
                    dots.append((xs.mean(), ys.mean()))
                assert math.dist(*dots) == pytest.approx(want, abs=1.5), preset.name
    square, portrait = widths["standing"]
    assert 75 < square < 85 and 90 < portrait < 100, widths["standing"]
    print("face width in px (1024x1024 -> 832x1216):",
          ", ".join(f"{n} {a:.1f} -> {b:.1f}" for n, (a, b) in sorted(widths.items())))


def test_the_detail_pass_is_on_by_default_and_tiny_is_portrait():
    from figurine.config import load_config

    d = load_config([]).detail
    assert d.enabled and 0 < d.strength < 1 and d.size == 1024 and d.margin > 0
    tiny = load_config([TINY_CONFIG]).generation
    assert tiny.height > tiny.width


def test_a_box_window_takes_a_portrait_figure_at_its_full_height():
    """A standing figure generated at 832x1216 is cut out and placed in every template's figure
    area: it fills the area's height (its width is to spare), exactly as the same figure from a
    1024x1024 canvas does; the portrait one brings ~19 % more pixels to that same size."""
    from figurine.packaging.draw import Canvas
    from figurine.packaging.enclosure import place
    from figurine.packaging.template import list_templates, load_template
    from figurine.pose import load_preset, render_pose

    def cutout(w, h):
        drawn = render_pose(load_preset("standing"), w, h, limb_width=40, point_radius=20)
        alpha = Image.fromarray((np.asarray(drawn).any(axis=-1) * 255).astype(np.uint8), "L")
        img = drawn.convert("RGBA")
        img.putalpha(alpha)
        return img.crop(alpha.getbbox())  # what packaging places: the cut-out cropped to its ink

    portrait, square = cutout(832, 1216), cutout(1024, 1024)
    assert portrait.height > 1.15 * square.height
    for name in list_templates():
        t = load_template(name)
        x, y, w, h = t["enclosure"]["box"]
        p = t["enclosure"]["padding"]
        area = (x + p, y + p, w - 2 * p, h - 2 * p)
        placed = {}
        for label, img in (("portrait", portrait), ("square", square)):
            c = Canvas(t["page"]["width"], t["page"]["height"], scale=4.0)
            ax0, ay0, ax1, ay1 = c.pixel_box(area)
            px, py, pw, ph = place(c, img, area, "bottom")
            full = ay1 - ay0  # within the pixel int() rounds away
            assert full - 1 <= ph <= full and pw < ax1 - ax0, f"{name}: the {label} figure does not fill the height"
            assert py + ph == ay1
            placed[label] = (pw, ph)
        # The same size (the drawn limbs are a little thinner on the portrait canvas: 2 % slack).
        assert abs(placed["portrait"][1] - placed["square"][1]) <= 1
        assert placed["portrait"][0] == pytest.approx(placed["square"][0], rel=0.02)
