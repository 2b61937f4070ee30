"""Compose a finished package around a figure: the drawers in order, then the picture around it.

    from PIL import Image
    from figurine.packaging.render import render_package, PackText
    img, layout = render_package(Image.open("figure.png"), [], PackText("Ada Lovelace"),
                                 "classic-blister", size="social")
    layout.text["name"].ink   # the drawn name's pixel bbox, inside layout.text["name"].box

Two outputs share one drawing routine, `_draw_package`, which works in millimetres on a
Canvas (see draw.py):
- social / story: the package, scaled to fit 1080x1350 or 1080x1920, stands on a studio
  backdrop with a soft shadow; a window box with a side panel shows that panel in perspective.
- print: the flat package at 300 DPI on a page of trim + bleed; die-cut shapes (outline, hang
  hole) grow into the bleed so a slightly off cut shows no white edge.

Drawing order (_draw_package), one module per part:
  1 card and hang tab, 2 card art, 3 side panel ........ card.py (motifs: art.py)
  4 brand ............................................... lettering.py
  5 enclosure (bubble or window) with the figure ........ enclosure.py
  6 accessory tray ...................................... tray.py
  7 name and tagline .................................... lettering.py
  8 badges .............................................. badges.py
  9 barcode ............................................. barcode.py
Each drawer records where it put things (text ink, compartments, barcode) in a Layout
(layout.py); primitives (canvas, shapes, coverage) are in draw.py, text fitting in text.py.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from figurine.errors import InputError
from figurine.matte import cut_out
from figurine.packaging.badges import draw_badge
from figurine.packaging.barcode import draw_barcode, ean13_for
from figurine.packaging.card import draw_card, draw_card_art, draw_side_panel, side_in_perspective
from figurine.packaging.draw import WHITE, Canvas, _to_u8, blur
from figurine.packaging.enclosure import draw_bubble, draw_window, place
from figurine.limits import SIZES  # one source for the picture sizes
from figurine.packaging.layout import Layout, PackText, TextBox
from figurine.packaging.lettering import draw_brand, draw_name_and_tagline
from figurine.packaging.template import Template, load_template
from figurine.packaging.text import validate_text
from figurine.packaging.tray import MAX_ACCESSORIES, draw_tray

__all__ = ["SIZES", "MAX_ACCESSORIES", "PackText", "Layout", "TextBox", "render_package",
           "render_print", "check_fit"]


def render_package(figure: Image.Image, accessories: list[Image.Image], text: PackText,
                   template: str | Template = "classic-blister", size: str = "social",
                   edition: int | None = None) -> tuple[Image.Image, Layout]:
    """The social/story picture and its layout (text boxes, barcode, compartments)."""
    if size not in SIZES:
        raise InputError(f"unknown size '{size}'; choose social (1080x1350) or story (1080x1920)")
    t = template if isinstance(template, dict) else load_template(template)
    fig, accs = _prepare(figure, accessories, text)
    out_w, out_h = SIZES[size]
    W, H = t["page"]["width"], t["page"]["height"]
    side = t["side_panel"]["width"]
    view_w = W - side * (1.0 - t["side_panel"]["view_width"])
    scale = min(out_w * 0.86 / view_w, out_h * 0.86 / H)

    # 1. The flat package on a transparent canvas at the output scale.
    pkg = Canvas(W, H, scale)
    layout = Layout(size=(out_w, out_h), scale=scale)
    _draw_package(pkg, t, fig, accs, text, edition, layout, grow=0.0)
    package = pkg.to_image()  # RGBA

    # 2. A side panel turns away from the viewer: draw it in perspective next to the front.
    dx = 0
    if side > 0:
        package, dx = side_in_perspective(package, int(round(side * scale)),
                                          t["side_panel"]["view_width"])
    # 3. The studio scene: backdrop gradient, the package's soft shadow, the package.
    pw, ph = package.size
    ox, oy = (out_w - pw) // 2, (out_h - ph) // 2 - int(out_h * 0.01)
    sc = t["scene"]
    ramp = Image.linear_gradient("L").resize((1, out_h), Image.BILINEAR).resize((out_w, out_h))
    out = Image.composite(Image.new("RGB", (out_w, out_h), sc["bottom"]),
                          Image.new("RGB", (out_w, out_h), sc["top"]), ramp)
    shadow = np.zeros((out_h, out_w), np.float32)
    alpha = np.asarray(package.getchannel("A"), np.float32) / 255.0
    sx, sy = ox + int(out_w * 0.012), oy + int(out_w * 0.018)
    shadow[sy:sy + ph, sx:sx + pw] = alpha[:out_h - sy, :out_w - sx]
    soft = (blur(shadow, out_w * 0.03) * 0.55 + blur(shadow, out_w * 0.008) * 0.45) * sc["shadow"]
    out = Image.composite(Image.new("RGB", (out_w, out_h), "black"), out,
                          Image.fromarray(_to_u8(soft), "L"))
    out.paste(package, (ox, oy), package)

    # 4. Move the layout into output pixels.
    shift = (ox + dx, oy)
    for tb in layout.text.values():
        tb.box = _moved(tb.box, shift)
        tb.ink = _moved(tb.ink, shift)
    layout.barcode_box = _moved(layout.barcode_box, shift)
    layout.compartments = [_moved(b, shift) for b in layout.compartments]
    return out, layout


def render_print(figure: Image.Image, accessories: list[Image.Image], text: PackText,
                 template: str | Template = "classic-blister", edition: int | None = None,
                 dpi: int = 300) -> tuple[Image.Image, Layout, Template]:
    """The flat package at `dpi` on a page of trim plus bleed on every side (RGB)."""
    t = template if isinstance(template, dict) else load_template(template)
    fig, accs = _prepare(figure, accessories, text)
    bleed = t["page"]["bleed"]
    scale = dpi / 25.4
    W, H = t["page"]["width"], t["page"]["height"]
    page = Canvas(W + 2 * bleed, H + 2 * bleed, scale, origin=(-bleed, -bleed))
    layout = Layout(size=(page.w, page.h), scale=scale)
    _draw_package(page, t, fig, accs, text, edition, layout, grow=bleed)
    return page.to_image(background=WHITE), layout, t


def _prepare(figure, accessories, text: PackText):
    validate_text(text.name, text.tagline, text.brand)
    if len(accessories) > MAX_ACCESSORIES:
        raise InputError(f"{len(accessories)} accessories given; a tray holds at most {MAX_ACCESSORIES}")
    return _cut(figure, "the figure"), [_cut(a, f"accessory {i + 1}") for i, a in enumerate(accessories)]


def _cut(image: Image.Image, what: str) -> Image.Image:
    """The picture cut off its backdrop and cropped to its ink. When nothing is left (a blank
    cut-out), the whole picture, said in one line naming `what`, as make and pack say it
    (figurine.matte.Matter.cut_or_whole; pack names the file there before it gets here)."""
    rgba = cut_out(image)
    box = rgba.getchannel("A").point(lambda v: 255 if v > 8 else 0).getbbox()
    if box is None:
        print(f"{what}: nothing stands out from the backdrop; packaging the whole picture")
        return opaque(image)
    return rgba.crop(box)


def opaque(image: Image.Image) -> Image.Image:
    """The whole picture as an opaque RGBA (a blank cut-out's alpha dropped)."""
    return image.convert("RGB").convert("RGBA")


def _moved(b, shift):
    return (b[0] + shift[0], b[1] + shift[1], b[2] + shift[0], b[3] + shift[1])


# -- the package, in millimetres ----------------------------------------------------------------
def _draw_package(c: Canvas, t: Template, fig: Image.Image, accs: list[Image.Image],
                  text: PackText, edition: int | None, layout: Layout, grow: float) -> None:
    encl = dict(t["enclosure"])
    tray = t["tray"]
    if not accs and tray["box"][2] > 0:  # no accessories: the figure gets the tray's room too
        encl["box"] = _union(encl["box"], tray["box"]) if tray["kind"] == "bubbles" else encl["box"]

    draw_card(c, t, grow)                                                        # 1
    draw_card_art(c, t)                                                          # 2
    if t["side_panel"]["width"] > 0:
        draw_side_panel(c, t)                                                    # 3
    draw_brand(c, t, text, layout)                                               # 4
    fig_area = _figure_area(encl, tray, bool(accs))
    if encl["kind"] == "bubble":                                                 # 5
        draw_bubble(c, encl["box"], encl["radius"], contents=lambda: place(c, fig, fig_area, "bottom"))
    else:
        draw_window(c, encl, lambda: place(c, fig, fig_area, "bottom"),
                    lambda: draw_tray(c, t, accs, layout) if accs else None)
    if accs and tray["kind"] == "bubbles":                                       # 6
        draw_tray(c, t, accs, layout)
    draw_name_and_tagline(c, t, text, layout)                                    # 7
    for badge in t["badge"]:                                                     # 8
        draw_badge(c, t, badge, edition)
    draw_barcode(c, t["barcode"]["box"], ean13_for(text.name, edition), layout)  # 9


def _union(a, b):
    x0, y0 = min(a[0], b[0]), min(a[1], b[1])
    x1, y1 = max(a[0] + a[2], b[0] + b[2]), max(a[1] + a[3], b[1] + b[3])
    return [x0, y0, x1 - x0, y1 - y0]


def _figure_area(encl, tray, has_accs):
    x, y, w, h = encl["box"]
    p = encl["padding"]
    bottom = y + h - p
    if has_accs and tray["kind"] == "insert" and tray["box"][2] > 0:
        bottom = min(bottom, tray["box"][1] - 1.5)
    return (x + p, y + p, w - 2 * p, bottom - y - p)


# -- text check before any drawing --------------------------------------------------------------
def check_fit(text: PackText, template: str | Template = "classic-blister") -> None:
    """Raise InputError when the text cannot fit the template's boxes (no drawing of the rest)."""
    validate_text(text.name, text.tagline, text.brand)
    t = template if isinstance(template, dict) else load_template(template)
    W, H = t["page"]["width"], t["page"]["height"]
    scale = min(SIZES["social"][0] * 0.86 / W, SIZES["social"][1] * 0.86 / H)
    c = Canvas(W, H, scale)
    layout = Layout(size=(c.w, c.h), scale=scale)
    draw_brand(c, t, text, layout)
    draw_name_and_tagline(c, t, text, layout)
