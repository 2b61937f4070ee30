"""Packaging: every template renders, text stays in its box, the barcode scans, the PDF has the
print geometry, renders are reproducible (the committed docs/examples re-render pixel for
pixel), and bad text is refused with one clear line."""

import importlib
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pypdf
import pytest
import zxingcpp
from PIL import Image, ImageDraw

from figurine.errors import ConfigError, InputError
from figurine.packaging import (PackText, export_pdf, list_templates, load_template, render_image,
                                render_package, validate_text)
from figurine.packaging.barcode import check_digit, ean13_for, ean13_modules
from figurine.packaging.template import TEMPLATE_DIR, edition_label

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "docs" / "examples"
TEMPLATES = list_templates()
NAMES = {
    "1": "Q",
    "12": "Ada Lovelace",
    "40": "Zoë Ångström-Łukasiewicz de la Peña Øst",
}
TAGLINE = "Analytical Engine Pilot"


def _figure() -> Image.Image:
    """A small RGBA figure cut-out: head, body, legs (fast to draw and to place)."""
    img = Image.new("RGBA", (200, 400), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    d.ellipse([70, 10, 130, 80], fill=(236, 188, 150, 255))
    d.rounded_rectangle([50, 80, 150, 240], 20, fill=(40, 90, 200, 255))
    d.rectangle([60, 240, 95, 390], fill=(30, 30, 40, 255))
    d.rectangle([105, 240, 140, 390], fill=(30, 30, 40, 255))
    return img


def _accessory(i: int) -> Image.Image:
    """Accessory pictures on a plain grey backdrop (RGB): they go through the matte."""
    img = Image.new("RGB", (120, 120), (210, 210, 210))
    colours = [(220, 40, 40), (40, 160, 60), (240, 180, 20), (120, 60, 200)]
    ImageDraw.Draw(img).ellipse([20, 30, 100, 90], fill=colours[i % 4])
    return img


FIGURE = _figure()
_cache: dict = {}


def _render(template: str, name: str, n_acc: int = 1, size: str = "social"):
    key = (template, name, n_acc, size)
    if key not in _cache:
        _cache[key] = render_package(FIGURE, [_accessory(i) for i in range(n_acc)],
                                     PackText(name, TAGLINE), template, size, edition=42)
    return _cache[key]


def _inside(inner, outer) -> bool:
    return (inner[0] >= outer[0] and inner[1] >= outer[1]
            and inner[2] <= outer[2] and inner[3] <= outer[3])


# -- templates ----------------------------------------------------------------------------------
def test_at_least_four_distinct_templates():
    assert {"classic-blister", "fashion-doll", "vintage-80s", "collector-window"} <= set(TEMPLATES)
    looks = {(t["card"]["top"], t["card"]["art"], t["enclosure"]["kind"],
              t["side_panel"]["width"] > 0, t["hang_tab"]["hole"])
             for t in map(load_template, TEMPLATES)}
    assert len(looks) == len(TEMPLATES)


@pytest.mark.parametrize("template", TEMPLATES)
@pytest.mark.parametrize("length", ["1", "12", "40"])
def test_name_renders_inside_its_box(template, length):
    img, layout = _render(template, NAMES[length])
    assert img.size == (1080, 1350) and img.mode == "RGB"
    for key in ("name", "tagline", "brand"):
        tb = layout.text[key]
        assert _inside(tb.ink, tb.box), f"{key} ink {tb.ink} outside its box {tb.box}"
        assert tb.ink[2] - tb.ink[0] > 0
    name = layout.text["name"]
    # Large display type: the name fills its box in at least one direction.
    fill_w = (name.ink[2] - name.ink[0]) / (name.box[2] - name.box[0])
    fill_h = (name.ink[3] - name.ink[1]) / (name.box[3] - name.box[1])
    assert max(fill_w, fill_h) > 0.75
    # Something was drawn there: the name's box is not flat colour.
    crop = np.asarray(img.crop(name.ink), np.float32)
    assert crop.std() > 20


@pytest.mark.parametrize("n_acc", [0, 1, 2, 3, 4])
def test_one_compartment_per_accessory(n_acc):
    template = TEMPLATES[n_acc % len(TEMPLATES)]
    img, layout = _render(template, NAMES["12"], n_acc)
    assert len(layout.compartments) == n_acc
    arr = np.asarray(img, np.float32)
    for i, box in enumerate(layout.compartments):
        assert _inside(box, (0, 0, 1080, 1350))
        x0, y0, x1, y1 = box
        centre = arr[(y0 + y1) // 2 - 3:(y0 + y1) // 2 + 3, (x0 + x1) // 2 - 3:(x0 + x1) // 2 + 3]
        # The accessory's own colour sits in the middle of its compartment (matted, scaled).
        dominant = np.argmax(centre.reshape(-1, 3).mean(axis=0))
        want = np.argmax(np.array(_accessory(i).getpixel((60, 60)), np.float32))
        assert dominant == want
    for a, b in zip(layout.compartments, layout.compartments[1:]):
        assert a[2] <= b[0], "compartments overlap"


@pytest.mark.parametrize("template", TEMPLATES)
def test_barcode_decodes_to_valid_ean13(template):
    img, layout = _render(template, NAMES["12"])
    found = zxingcpp.read_barcodes(img.crop(layout.barcode_box).resize(
        (2 * (layout.barcode_box[2] - layout.barcode_box[0]), 2 * (layout.barcode_box[3] - layout.barcode_box[1]))))
    found = found or zxingcpp.read_barcodes(img)
    codes = [r.text for r in found if r.format == zxingcpp.BarcodeFormat.EAN13]
    assert codes == [layout.barcode]
    code = codes[0]
    assert len(code) == 13 and check_digit(code[:12]) == int(code[12])
    assert code[0] == "2"  # restricted-circulation range: never a real product's number


def test_story_size():
    img, layout = _render("classic-blister", NAMES["12"], 0, "story")
    assert img.size == (1080, 1920)
    assert _inside(layout.text["name"].ink, layout.text["name"].box)


def test_renders_are_identical():
    text = PackText("Ada Lovelace", TAGLINE)
    a, b = (render_image(FIGURE, [_accessory(0)], text, "fashion-doll", edition=3) for _ in range(2))
    ba, bb = io.BytesIO(), io.BytesIO()
    a.save(ba, "PNG")
    b.save(bb, "PNG")
    assert ba.getvalue() == bb.getvalue()


def test_text_and_edition_change_the_picture():
    a = render_image(FIGURE, [], PackText("Ada"), "vintage-80s", edition=1)
    b = render_image(FIGURE, [], PackText("Ada"), "vintage-80s", edition=2)
    c = render_image(FIGURE, [], PackText("Bob"), "vintage-80s", edition=1)
    assert a.tobytes() != b.tobytes() and a.tobytes() != c.tobytes()


# -- the committed examples ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def remade_examples(tmp_path_factory):
    """docs/examples made again by scripts/make_examples.sh itself (`figurine pack` and the
    reduction to 540x675), into a temporary folder; `python3` is this test's interpreter."""
    out = tmp_path_factory.mktemp("examples")
    bin_dir = tmp_path_factory.mktemp("bin")
    shim = bin_dir / "python3"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    shim.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    r = subprocess.run(["bash", str(ROOT / "scripts" / "make_examples.sh"), str(out)],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    return out


def test_examples_script_makes_every_committed_picture(remade_examples):
    assert sorted(p.name for p in remade_examples.iterdir()) == sorted(p.name for p in EXAMPLES.glob("*.png"))


SIMD_LEVELS = 4


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.png")))
def test_committed_examples_rerender_pixel_for_pixel(remade_examples, name):
    with Image.open(EXAMPLES / name) as a, Image.open(remade_examples / name) as b:
        assert (b.mode, b.size) == (a.mode, a.size)
        committed, remade = np.asarray(a, np.int16), np.asarray(b, np.int16)
    diff = np.abs(committed - remade).reshape(committed.shape[0], committed.shape[1], -1).max(axis=2)
    # Drawing is deterministic on one machine, but numpy/OpenCV pick SIMD kernels by CPU (AVX-512 or
    # not), which moves a few thousand pixels of the drawn figure by 1-3 levels between machines.
    # Any real drawing change moves pixels by far more (a badge, a letter: tens to 255 levels).
    ys, xs = np.nonzero(diff > SIMD_LEVELS)
    assert len(xs) == 0, (f"{name}: {len(xs)} pixels differ by more than {SIMD_LEVELS} levels (up to {diff.max()}) "
                          f"within x {xs.min()}-{xs.max()}, y {ys.min()}-{ys.max()}; if the change is meant, run "
                          "`bash scripts/make_examples.sh` and commit the pictures")
    assert (diff > 0).mean() < 0.01, f"{name}: {(diff > 0).mean():.2%} of the pixels differ"


def test_public_names_and_the_render_submodule():
    import figurine.packaging as packaging

    for name in packaging.__all__:
        assert hasattr(packaging, name), name
    # `figurine.packaging.render` is the composition module, not a function shadowing it.
    assert packaging.render is importlib.import_module("figurine.packaging.render")
    assert packaging.render.render_package is packaging.render_package


# -- print PDF ----------------------------------------------------------------------------------
@pytest.mark.parametrize("template", ["classic-blister", "collector-window"])
def test_pdf_page_is_trim_plus_bleed_at_300_dpi(template, tmp_path):
    t = load_template(template)
    path = tmp_path / "pack.pdf"
    export_pdf(FIGURE, [_accessory(0), _accessory(1)], PackText("Ada Lovelace", TAGLINE), template, path,
               edition=9)
    page = pypdf.PdfReader(path).pages[0]
    mm = 25.4 / 72
    W, H, bleed = t["page"]["width"], t["page"]["height"], 3.0
    assert float(page.mediabox.width) * mm == pytest.approx(W + 2 * bleed, abs=0.01)
    assert float(page.mediabox.height) * mm == pytest.approx(H + 2 * bleed, abs=0.01)
    trim = [float(v) * mm for v in page.trimbox]
    assert trim == pytest.approx([bleed, bleed, W + bleed, H + bleed], abs=0.01)
    images = page.images
    assert len(images) == 1
    art = images[0].image
    assert art.width == round((W + 2 * bleed) / 25.4 * 300)
    assert art.height == round((H + 2 * bleed) / 25.4 * 300)
    # Crop marks: eight short lines, each drawn twice (white under-stroke, black hairline).
    content = page.get_contents().get_data().decode()
    assert content.count(" m ") == 16 and content.count(" l ") == 16
    # The barcode scans on the printed artwork too.
    codes = [r.text for r in zxingcpp.read_barcodes(art) if r.format == zxingcpp.BarcodeFormat.EAN13]
    assert codes == [ean13_for("Ada Lovelace", 9)]


def test_pdf_is_reproducible(tmp_path):
    text = PackText("Ada", "")
    for name in ("a.pdf", "b.pdf"):
        export_pdf(FIGURE, [], text, "vintage-80s", tmp_path / name, dpi=100)
    assert (tmp_path / "a.pdf").read_bytes() == (tmp_path / "b.pdf").read_bytes()


# -- text rules ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name, codes", [
    ("\u200b\u200b", "U+200B"),            # zero-width space
    ("\u00ad", "U+00AD"),                   # soft hyphen
    (" \u2060 \ufeff ", "U+2060 U+FEFF"),  # word joiner, byte-order mark, spaces around
    ("\u200c\u200d\u200e", "U+200C U+200D U+200E"),  # joiners and a bidi mark
    ("\u3164", "U+3164"),                   # Hangul filler (default-ignorable, not a format char)
])
def test_an_invisible_name_is_refused_like_an_empty_one(name, codes):
    with pytest.raises(InputError) as e:
        validate_text(name)
    assert str(e.value) == f"name is empty: it has only invisible characters ({codes}); give 1 to 40 characters"
    with pytest.raises(InputError, match="name is empty"):
        render_image(FIGURE, [], PackText(name), "classic-blister")


def test_a_name_with_a_zero_width_joiner_inside_is_fine():
    validate_text("Zoë\u200dAda")


@pytest.mark.parametrize("name, tagline, words", [
    ("", "", "empty"),
    ("   ", "", "empty"),
    ("A" * 41, "", "limit is 40"),
    ("Ada\x07Lovelace", "", "control character"),
    ("Ada\nLovelace", "", "control character"),
    ("山田太郎", "", "cannot draw"),
    ("Ada", "x" * 61, "limit is 60"),
])
def test_bad_text_is_refused_with_one_line(name, tagline, words):
    with pytest.raises(InputError) as e:
        validate_text(name, tagline)
    assert words in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(InputError):
        render_image(FIGURE, [], PackText(name, tagline), "classic-blister")


def test_text_that_cannot_fit_a_template_is_refused(tmp_path):
    src = (TEMPLATE_DIR / "classic-blister.toml").read_text()
    tiny = src.replace("box = [14, 242, 142, 17]", "box = [14, 242, 30, 17]")
    path = tmp_path / "tiny-name.toml"
    path.write_text(tiny)
    validate_text("Ada", "", template=str(path))  # a short name still fits
    with pytest.raises(InputError, match="too long to fit"):
        validate_text("Maximilian Alexander Wolfgang von Hohen", "", template=str(path))


def test_greek_and_cyrillic_render():
    img, layout = render_package(FIGURE, [], PackText("Ωμέγα Сергей", "Καλημέρα"), "collector-window")
    assert _inside(layout.text["name"].ink, layout.text["name"].box)


def test_a_blank_cut_out_is_packaged_whole_with_one_line(capsys):
    """The renderer treats a picture with nothing left after cutting out as make and pack do:
    the whole picture, said in one line (it was an error naming no file)."""
    def green_pixels(img):
        a = np.asarray(img, int)
        return int(((a[..., 1] > 150) & (a[..., 0] < 90) & (a[..., 2] < 110)).sum())

    clear = Image.new("RGBA", (100, 160), (30, 200, 60, 0))  # fully transparent, green underneath
    img, _ = render_package(clear, [_accessory(2)], PackText("Ada"), "classic-blister")
    assert capsys.readouterr().out == "the figure: nothing stands out from the backdrop; packaging the whole picture\n"
    normal, _ = render_package(FIGURE, [_accessory(2)], PackText("Ada"), "classic-blister")
    assert green_pixels(normal) < 1000 < 20_000 < green_pixels(img)  # the green picture fills the bubble


def test_too_many_accessories():
    with pytest.raises(InputError, match="at most 4"):
        render_image(FIGURE, [_accessory(i) for i in range(5)], PackText("Ada"), "classic-blister")


# -- templates as data --------------------------------------------------------------------------
def test_user_template_from_a_toml_file(tmp_path):
    src = (TEMPLATE_DIR / "classic-blister.toml").read_text()
    path = tmp_path / "green.toml"
    path.write_text(src.replace('top = "#e8303a"', 'top = "#10a040"').replace('text = "FIGURINE"', 'text = "GREENCO"'))
    img, layout = render_package(FIGURE, [], PackText("Ada"), str(path))
    assert layout.text["brand"].lines == ["GREENCO"]
    r, g, b = img.getpixel(((layout.text["brand"].box[0] + 1080 // 2) // 2, layout.text["brand"].box[1] - 20))
    assert g > r


@pytest.mark.parametrize("edit, message", [
    (('radius = 5', 'radius = 5\nsparkle = true'), "unknown key 'page.sparkle'"),
    (('top = "#e8303a"', 'top = "red"'), "must be a colour"),
    (('art = "rays"', 'art = "zigzag"'), "must be one of"),
    (('width = 170', 'width = "wide"'), "wrong type"),
])
def test_template_mistakes_are_config_errors(tmp_path, edit, message):
    src = (TEMPLATE_DIR / "classic-blister.toml").read_text()
    path = tmp_path / "bad.toml"
    path.write_text(src.replace(*edit, 1))
    with pytest.raises(ConfigError, match=message):
        load_template(str(path))


@pytest.mark.parametrize("edit, message", [
    (("radius = 5\n", "radius = 5\nbleed = 1e6\n"), "'page.bleed' must be a number from 0 to 10, got 1000000.0"),
    (("width = 170", "width = inf"), "'page.width' must be a number from 20 to 420, got inf"),
    (("width = 170", "width = 1e6"), "'page.width' must be a number from 20 to 420, got 1000000.0"),
    (("radius = 5\n", "radius = nan\n"), "'page.radius' must be a number from 0 to 210, got nan"),
    (("width = 170", "width = -170"), "'page.width' must be a number from 20 to 420, got -170.0"),
    (("box = [14, 242, 142, 17]", "box = [14, 242, 1e9, 17]"),
     "'name.box[2]' must be a number from 0 to 420, got 1000000000.0"),
    (("box = [14, 242, 142, 17]", "box = [14, -inf, 142, 17]"), "'name.box[1]' must be a number from -420 to 420, got -inf"),
    (("size = [25, 25]", "size = [0, 25]"), "'badge[0].size[0]' must be a number from 1 to 420, got 0.0"),
    (("rotate = -12", "rotate = nan"), "'badge[0].rotate' must be a number from -360 to 360, got nan"),
    (("min_size = 3.5", "min_size = 0"), "'name.min_size' must be a number from 0.5 to 100, got 0.0"),
    (("weight = 900\nwidth = 62.5", "weight = 9000\nwidth = 62.5"), "'name.weight' must be a number from 100 to 900, got 9000.0"),
    (("max_lines = 2", "max_lines = 100000"), "'name.max_lines' must be a number from 1 to 3, got 100000"),
    (("art_count = 22", "art_count = 22.5"), "'card.art_count' must be a whole number from 1 to 200, got 22.5"),
    (("art_count = 22", "art_count = 1000000000"), "'card.art_count' must be a number from 1 to 200, got 1000000000"),
    (("art_opacity = 0.16", "art_opacity = -0.5"), "'card.art_opacity' must be a number from 0 to 1, got -0.5"),
    (("height = 26", "height = 200"), "'hang_tab.height' must be at most half of page.height (142.5), got 200"),
    (("[hang_tab]", "[side_panel]\nwidth = 100\n\n[hang_tab]"),
     "'side_panel.width' must be at most half of page.width (85), got 100"),
])
def test_template_numbers_must_be_finite_and_in_range(tmp_path, edit, message):
    """Issue 12: a crafted template (bleed 1e6, inf, nan, negative sizes) is one ConfigError line
    naming the file and the key, before anything is allocated or drawn."""
    src = (TEMPLATE_DIR / "classic-blister.toml").read_text()
    assert edit[0] in src
    path = tmp_path / "crafted.toml"
    path.write_text(src.replace(*edit, 1))
    with pytest.raises(ConfigError) as e:
        load_template(str(path))
    assert str(e.value) == f"{path}: {message}"
    with pytest.raises(ConfigError):
        render_image(FIGURE, [], PackText("Ada"), str(path))


def test_every_number_a_template_can_set_has_a_range():
    from figurine.packaging.template import BADGE_DEFAULTS, DEFAULTS, RANGES

    def numeric(defaults, prefix):
        for key, value in defaults.items():
            if isinstance(value, dict):
                yield from numeric(value, f"{prefix}{key}.")
            elif isinstance(value, (int, float, list)) and not isinstance(value, bool) and key != "badge":
                yield f"{prefix}{key}"

    keys = list(numeric(DEFAULTS, "")) + list(numeric(BADGE_DEFAULTS, "badge."))
    assert len(keys) > 50
    assert [k for k in keys if k not in RANGES] == []


def test_the_largest_template_allowed_loads(tmp_path):
    src = (TEMPLATE_DIR / "classic-blister.toml").read_text()
    path = tmp_path / "huge.toml"
    path.write_text(src.replace("width = 170\nheight = 285\nradius = 5", "width = 420\nheight = 420\nradius = 5\nbleed = 10"))
    t = load_template(str(path))
    assert (t["page"]["width"], t["page"]["height"], t["page"]["bleed"]) == (420.0, 420.0, 10.0)


FIELD_HELP = "only {edition} is filled in (e.g. \"No. {edition:04d}\"; write {{ and }} for a brace)"


@pytest.mark.parametrize("text, why", [
    ("No. {0}", "has the format field '{0}'"),
    ("No. {}", "has the format field '{}'"),
    ("{edition.__class__}", "has the format field '{edition.__class__}'"),
    ("{edition[0]}", "has the format field '{edition[0]}'"),
    ("{edition!r}", "has the format field '{edition!r}'"),
    ("{name}", "has the format field '{name}'"),
    ("{edition:>999999999}", "asks for a width over 12 characters: '{edition:>999999999}'"),
    ("{edition:{edition}}", "has a field inside a field: '{edition:{edition}}'"),
    ("{edition", "is not a valid format (expected '}' before end of string): '{edition'"),
    ("{edition:s}", "has a format that does not fit a number (Unknown format code 's' for object of type 'int')"),
])
def test_edition_text_may_only_format_the_edition(tmp_path, text, why):
    """Issue 12: `{0}` (or any field but {edition}) in a template's edition text is a ConfigError
    line naming the file and the key, for [badge_text] and for an edition badge's own text."""
    src = (TEMPLATE_DIR / "classic-blister.toml").read_text()
    quoted = '"' + text.replace("\\", "\\\\") + '"'
    for key, edit in (("badge_text.edition", ('ai = "AI-GENERATED IMAGE"', f'ai = "AI-GENERATED IMAGE"\nedition = {quoted}')),
                      ("badge[1].text", ('kind = "edition"', f'kind = "edition"\ntext = {quoted}'))):
        path = tmp_path / "crafted.toml"
        path.write_text(src.replace(*edit, 1))
        with pytest.raises(ConfigError) as e:
            load_template(str(path))
        assert str(e.value) == f"{path}: '{key}' {why}; {FIELD_HELP}"


def test_an_edition_text_with_only_the_edition_field_renders(tmp_path):
    src = (TEMPLATE_DIR / "classic-blister.toml").read_text()
    path = tmp_path / "own.toml"
    path.write_text(src.replace('ai = "AI-GENERATED IMAGE"', 'ai = "AI-GENERATED IMAGE"\nedition = "{{#}}{edition:,}"'))
    t = load_template(str(path))
    assert edition_label(t["badge_text"]["edition"], 1234) == "{#}1,234"
    # A text badge's braces are shown as written: only edition texts are formatted.
    path.write_text(src.replace('kind = "age"', 'kind = "text"\ntext = "{0} {}"'))
    assert load_template(str(path))["badge"][2]["text"] == "{0} {}"
    img, _ = render_package(FIGURE, [], PackText("Ada"), str(path), edition=7)
    assert img.size == (1080, 1350)


def test_unknown_template_name():
    with pytest.raises(InputError, match="unknown template"):
        load_template("no-such-box")


# -- EAN-13 -------------------------------------------------------------------------------------
def test_ean13_check_digit_and_pattern():
    assert check_digit("400638133393") == 1          # a published example: 4006381333931
    bars = ean13_modules("4006381333931")
    assert len(bars) == 95 and bars[:3] == [True, False, True] and bars[45:50] == [False, True, False, True, False]
    with pytest.raises(ValueError):
        ean13_modules("4006381333932")


# -- the command --------------------------------------------------------------------------------
def test_cli_pack_writes_png_and_pdf_and_refuses_to_overwrite(tmp_path):
    fig = tmp_path / "figure.png"
    # A figure on a plain grey backdrop, as generated: the command keys it out.
    bg = Image.new("RGB", (200, 400), (210, 210, 210))
    bg.paste(FIGURE, (0, 0), FIGURE)
    bg.save(fig)
    acc = tmp_path / "acc.png"
    _accessory(2).save(acc)
    out, pdf = tmp_path / "out.png", tmp_path / "out.pdf"
    cmd = [sys.executable, "-m", "figurine", "pack", str(fig), "--name", "Zoë Ångström",
           "--tagline", "Physicist", "--accessory-image", str(acc), "--template", "fashion-doll",
           "-o", str(out), "--pdf", str(pdf)]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    with Image.open(out) as im:
        assert im.size == (1080, 1350)
    assert pypdf.PdfReader(pdf).pages[0].trimbox is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["acc.png", "figure.png", "out.pdf", "out.png"]

    before = out.read_bytes()
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 2
    assert "exists" in r.stderr and "--force" in r.stderr and "Traceback" not in r.stderr
    assert out.read_bytes() == before

    r = subprocess.run(cmd[:-4] + ["--size", "story", "-o", str(out), "--force"],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    with Image.open(out) as im:
        assert im.size == (1080, 1920)


def test_cli_pack_bad_name_is_one_line(tmp_path):
    fig = tmp_path / "figure.png"
    FIGURE.save(fig)
    r = subprocess.run([sys.executable, "-m", "figurine", "pack", str(fig), "--name", "A" * 41,
                        "-o", str(tmp_path / "o.png")], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "limit is 40" in r.stderr
    assert not (tmp_path / "o.png").exists()
