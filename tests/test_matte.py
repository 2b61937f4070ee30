"""Matting: a figure on a plain grey backdrop comes out clean (figurine/matte.py)."""

import numpy as np
import pytest
from PIL import Image, ImageDraw

from figurine.matte import BACKDROP_PROMPT, BACKDROP_RGB, cut_out

SS = 4
GREY = (200, 200, 200)
RED = (190, 30, 40)


def _scene(size=(320, 400)):
    """A red 'figure' with arms making a closed loop (a backdrop hole), a light grey patch on
    its chest, and a few specks of dirt on a slightly uneven grey backdrop; drawn 4x larger
    and reduced so the edges are anti-aliased like a real picture."""
    W, H = size[0] * SS, size[1] * SS
    img = Image.new("RGB", (W, H), GREY)
    d = ImageDraw.Draw(img)
    s = SS
    d.rectangle([120 * s, 60 * s, 200 * s, 340 * s], fill=RED)                 # body
    d.ellipse([40 * s, 120 * s, 280 * s, 260 * s], outline=RED, width=26 * s)   # arms: a loop
    d.rectangle([140 * s, 100 * s, 180 * s, 130 * s], fill=(232, 232, 228))    # light shirt
    img = img.reduce(SS)
    arr = np.asarray(img, np.float32)
    # Studio falloff and sensor noise on the backdrop.
    yy = np.linspace(-6, 6, size[1], dtype=np.float32)[:, None, None]
    rng = np.random.default_rng(0)
    arr = arr + yy + rng.normal(0, 1.2, arr.shape).astype(np.float32)
    out = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    dd = ImageDraw.Draw(out)
    for x, y in ((20, 20), (300, 380), (290, 30)):
        dd.rectangle([x, y, x + 2, y + 2], fill=(60, 60, 60))                  # specks
    return out


@pytest.fixture(scope="module")
def matte():
    return cut_out(_scene())


def test_backdrop_prompt_names_the_colour_it_assumes():
    assert "grey" in BACKDROP_PROMPT and "plain" in BACKDROP_PROMPT
    assert all(150 <= v <= 240 for v in BACKDROP_RGB)


def test_figure_opaque_backdrop_and_enclosed_hole_transparent(matte):
    a = np.asarray(matte.getchannel("A"))
    assert matte.mode == "RGBA"
    assert a[200, 160] == 255          # body
    assert a[190, 53] == 255           # left arm (loop)
    assert a[5, 5] == 0                # backdrop
    assert a[190, 90] == 0             # hole between the left arm and the body
    assert a[190, 235] == 0            # hole between the right arm and the body
    assert a[115, 160] == 255          # light grey shirt inside the figure stays


def test_specks_are_dropped(matte):
    a = np.asarray(matte.getchannel("A"))
    for x, y in ((20, 20), (300, 380), (290, 30)):
        assert a[y:y + 3, x:x + 3].max() == 0


def test_edges_are_soft_and_carry_no_backdrop_halo(matte):
    arr = np.asarray(matte).astype(np.float32)
    a = arr[..., 3] / 255.0
    edge = (a > 0.15) & (a < 0.85)
    assert edge.sum() > 100, "edges should be soft (partly transparent), not cut hard"
    rgb = arr[..., :3][edge]
    # Decontaminated: a half-transparent edge pixel has the figure's colour, not grey.
    dist_to_red = np.linalg.norm(rgb - np.array(RED, np.float32), axis=1)
    dist_to_grey = np.linalg.norm(rgb - np.array(GREY, np.float32), axis=1)
    assert np.median(dist_to_red) < 30
    assert (dist_to_red < dist_to_grey).mean() > 0.97
    # Over black, the outline is never lighter than the figure itself.
    over_black = arr[..., :3] * a[..., None]
    assert over_black[edge].mean(axis=1).max() <= np.mean(RED) + 12


def test_rgba_input_with_transparency_is_used_as_is():
    img = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    ImageDraw.Draw(img).ellipse([10, 10, 50, 50], fill=(200, 200, 200, 255))
    out = cut_out(img)
    assert out.tobytes() == img.tobytes()


def test_rgba_input_is_a_cut_out_even_when_opaque():
    img = _scene().convert("RGBA")
    assert cut_out(img).tobytes() == img.tobytes()


def test_shading_through_the_backdrop_colour_stays_opaque():
    """A white part shaded down through the backdrop's grey (a common case for plastic toys)
    is not a hole: it has no crisp, flat gap inside."""
    img = Image.new("RGB", (200, 240), GREY)
    ImageDraw.Draw(img).rectangle([40, 30, 160, 210], fill=RED)
    arr = np.asarray(img).astype(np.float32)
    ramp = np.linspace(250, 150, 100, dtype=np.float32)[:, None]    # white -> grey -> darker
    arr[70:170, 70:130] = ramp[..., None]
    a = np.asarray(cut_out(Image.fromarray(arr.astype(np.uint8))).getchannel("A"))
    assert a[70:170, 70:130].min() == 255
    assert a[5, 5] == 0
