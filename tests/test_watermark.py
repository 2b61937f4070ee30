"""The invisible watermark (figurine/watermark.py): read back from a real package after what
sharing does to a picture (re-encoding by Pillow's real JPEG and WebP codecs, scaling,
brightness), lost where the README says it is lost (cropping), not seen in unmarked pictures,
and invisible enough (PSNR, largest pixel change)."""

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from figurine import watermark as wm
from figurine.packaging import PackText, render_image
from tests.photos import make_face_photo, make_two_face_photo


def _figure() -> Image.Image:
    """A toy figure cut-out with some shading (RGBA), fast to draw."""
    img = Image.new("RGBA", (300, 600), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    for i in range(20):  # a shaded body: texture like a generated figure has
        d.rounded_rectangle([60 + i, 120 + i, 240 - i, 360 - i], 30, fill=(40 + 8 * i, 90, 200 - 4 * i, 255))
    d.ellipse([100, 10, 200, 120], fill=(236, 188, 150, 255))
    d.rectangle([80, 360, 140, 590], fill=(30, 30, 40, 255))
    d.rectangle([160, 360, 220, 590], fill=(30, 30, 40, 255))
    return img


@pytest.fixture(scope="module")
def package() -> Image.Image:
    return render_image(_figure(), [], PackText("Ada Lovelace", "Analytical Engine Pilot"), "classic-blister")


@pytest.fixture(scope="module")
def marked(package) -> Image.Image:
    return wm.embed(package)


def _reencode(im: Image.Image, fmt: str, **kw) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def test_mark_reads_back_whole_and_is_invisible(package, marked):
    assert marked.size == package.size and marked.mode == "RGB"
    result = wm.detect(marked)
    assert result.found and result.matched == wm.N_BITS
    assert result.p_chance < 1e-18
    diff = np.asarray(package, np.float64) - np.asarray(marked, np.float64)
    psnr = 10 * np.log10(255 ** 2 / np.mean(diff ** 2))
    assert psnr > 34  # measured 36-37 dB on packages
    assert np.abs(diff).max() <= 40  # no speckles: measured <= 28 of 255


@pytest.mark.parametrize("change", [
    pytest.param(lambda im: _reencode(im, "JPEG", quality=80), id="jpeg-q80"),
    pytest.param(lambda im: _reencode(im, "JPEG", quality=50), id="jpeg-q50"),
    pytest.param(lambda im: _reencode(im, "WEBP", quality=80), id="webp-q80"),
    pytest.param(lambda im: im.resize((im.width // 2, im.height // 2), Image.Resampling.LANCZOS), id="half-size"),
    pytest.param(lambda im: _reencode(im.resize((im.width // 2, im.height // 2), Image.Resampling.BILINEAR),
                                      "JPEG", quality=80), id="half-size-then-jpeg-q80"),
    pytest.param(lambda im: Image.fromarray(np.clip(np.asarray(im, int) + 20, 0, 255).astype(np.uint8)),
                 id="brightness+20"),
])
def test_mark_survives_what_sharing_does(marked, change):
    changed = change(marked)
    result = wm.detect(changed)
    assert result.found, result.describe()
    assert result.matched >= wm.MIN_MATCH


def test_cropping_loses_the_mark(marked):
    """As the README says: the blocks no longer line up, so a crop removes the mark."""
    cropped = marked.crop((marked.width // 10, marked.height // 10, marked.width, marked.height))
    result = wm.detect(cropped)
    assert not result.found
    assert result.matched < wm.MIN_MATCH


def test_scaled_photo_sizes_are_not_scaled_back(tmp_path):
    """Scaling survives only for figurine's own output sizes, which detect() scales back to;
    a half-size copy of a picture of another size loses the mark (stated in the README)."""
    photo = Image.open(make_face_photo(tmp_path / "p.jpg", size=(600, 600))).convert("RGB")
    half = wm.embed(photo).resize((300, 300), Image.Resampling.LANCZOS)
    assert wm.candidate_sizes(half.size) == [(300, 300)]
    assert not wm.detect(half).found


def test_unmarked_pictures_are_not_flagged(tmp_path, package):
    pictures = [package, _reencode(package, "JPEG", quality=80),
                package.resize((540, 675), Image.Resampling.LANCZOS)]
    for seed in range(3):
        pictures.append(Image.open(make_face_photo(tmp_path / f"a{seed}.jpg", size=(512, 512), seed=seed)))
        pictures.append(Image.open(make_two_face_photo(tmp_path / f"b{seed}.jpg", size=(768, 768), seed=seed)))
    rng = np.random.default_rng(1)
    pictures.append(Image.fromarray(rng.integers(0, 256, (400, 400, 3), dtype=np.uint8)))
    for im in pictures:
        result = wm.detect(im)
        assert not result.found, result.describe()
        assert result.matched < wm.MIN_MATCH - 8  # measured 22..40 of 64
    assert "not found" in wm.detect(package).describe()


def test_small_pictures_are_not_marked_or_checked_nor_huge_ones_read():
    small = Image.new("RGB", (200, 300), (120, 130, 140))
    with pytest.raises(ValueError, match="at least 256x256"):
        wm.embed(small)
    result = wm.detect(small)
    assert not result.found and result.size is None
    assert result.describe() == "not checked (picture smaller than 256x256)"
    huge = Image.new("RGB", (4100, 4000))  # over 16 megapixels: bounded work for inspect
    assert wm.detect(huge).describe() == "not checked (picture over 16 megapixels)"


def test_alpha_is_kept_and_odd_sizes_work():
    rng = np.random.default_rng(2)
    rgba = Image.fromarray(rng.integers(0, 256, (301, 333, 4), dtype=np.uint8), "RGBA")
    out = wm.embed(rgba)
    assert out.mode == "RGBA" and out.size == (333, 301)
    assert out.getchannel("A").tobytes() == rgba.getchannel("A").tobytes()
    assert wm.detect(out).found


def test_false_alarm_bound_is_the_binomial_tail():
    assert wm.p_chance(0) == 1.0
    assert wm.p_chance(64) == 2.0 ** -64
    assert 2e-10 < wm.p_chance(wm.MIN_MATCH) < 4e-10
