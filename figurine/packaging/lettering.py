"""Lettering: the brand line (on its plate), the name (on its banner), the tagline, each fitted
into its template box at the biggest size that fits (text.py) and recorded in the layout.

    from figurine.packaging.draw import Canvas
    from figurine.packaging.layout import Layout, PackText
    from figurine.packaging.lettering import draw_brand, draw_name_and_tagline
    from figurine.packaging.template import load_template
    t = load_template("vintage-80s")
    c = Canvas(t["page"]["width"], t["page"]["height"], scale=4.0)
    c.paint(c.full(), 1.0, (0.1, 0.1, 0.3))                  # something to print on
    layout = Layout(size=(c.w, c.h), scale=4.0)
    text = PackText("Max Power", "Synthwave Commander")
    draw_brand(c, t, text, layout)
    draw_name_and_tagline(c, t, text, layout)
    layout.text["name"].lines, layout.text["name"].ink       # ['MAX POWER'], its pixel bbox

Text that cannot fit its box at the template's minimum letter size is an InputError naming the
field (render.check_fit runs exactly this drawing on a scratch canvas before any real work).
"""

from __future__ import annotations

import numpy as np

from figurine.errors import InputError
from figurine.packaging.draw import (BLACK, WHITE, Canvas, hex_color, mix, polygon_cover, rrect,
                                     vertical_gradient)
from figurine.packaging.layout import Layout, PackText, TextBox
from figurine.packaging.template import Template
from figurine.packaging.text import TextStyle, cased, draw_block, fit_block


# -- brand --------------------------------------------------------------------------------------
def draw_brand(c: Canvas, t: Template, text: PackText, layout: Layout) -> None:
    """The brand line (PackText.brand, or the template's) and the template's sub-line."""
    b = t["brand"]
    if b["box"][2] <= 0:
        return
    brand = text.brand if text.brand is not None else b["text"]
    x, y, w, h = b["box"]
    if b["plate"]:
        r = c.region(b["box"], pad=1)
        c.paint(r, c.cover(r, rrect(r.X, r.Y, b["box"], b["plate_radius"])), hex_color(b["plate"]))
    style = TextStyle(weight=b["weight"], width=b["width"], italic=b["italic"])
    main_h = h * (0.64 if b["sub"] else 0.8)
    top = y + h * (0.06 if b["sub"] else 0.1)
    if brand.strip():
        text_in_box(c, "brand", (x + w * 0.06, top, w * 0.88, main_h), cased(brand, "upper"), style, 1,
                    hex_color(b["color"]), layout, min_size=1.5)
    if b["sub"]:
        sub_style = TextStyle(weight=700, width=100, italic=b["italic"])
        text_in_box(c, "brand_sub", (x + w * 0.1, y + h * 0.72, w * 0.8, h * 0.22), b["sub"], sub_style, 1,
                    hex_color(b["sub_color"]), layout, min_size=1.0)


# -- name and tagline ---------------------------------------------------------------------------
def draw_name_and_tagline(c: Canvas, t: Template, text: PackText, layout: Layout) -> None:
    """The name on its banner, in the template's case and style, and the tagline under it."""
    n = t["name"]
    if n["banner"]:
        bb = n["banner_box"] if n["banner_box"][2] > 0 else _grown(n["box"], 3.0)
        _banner(c, bb, n["banner_shape"], hex_color(n["banner"]), n["banner_radius"],
                hex_color(n["banner_outline"]) if n["banner_outline"] else None)
    style = TextStyle(weight=n["weight"], width=n["width"], italic=n["italic"],
                      outline=n["outline_width"] if n["outline"] else 0.0,
                      extrude=n["extrude"], align=n["align"],
                      shadow=tuple(n["shadow_offset"]) if n["shadow"] else (0.0, 0.0))
    text_in_box(c, "name", n["box"], cased(text.name, n["case"]), style, n["max_lines"],
                hex_color(n["color"]), layout, n["min_size"],
                outline=hex_color(n["outline"]) if n["outline"] else None,
                extrude=mix(hex_color(n["outline"] or "#000000"), BLACK, 0.35) if n["extrude"] else None,
                shadow=hex_color(n["shadow"]) if n["shadow"] else None)
    tg = t["tagline"]
    if text.tagline.strip():
        if tg["plate"]:
            r = c.region(tg["box"], pad=1)
            c.paint(r, c.cover(r, rrect(r.X, r.Y, tg["box"], tg["plate_radius"])), hex_color(tg["plate"]), clip=True)
        inner = _grown(tg["box"], -1.0) if tg["plate"] else tg["box"]
        tstyle = TextStyle(weight=tg["weight"], width=tg["width"], italic=tg["italic"], align=tg["align"])
        text_in_box(c, "tagline", inner, cased(text.tagline, tg["case"]), tstyle, 1,
                    hex_color(tg["color"]), layout, tg["min_size"])


def _grown(box, k):
    return (box[0] - k, box[1] - k, box[2] + 2 * k, box[3] + 2 * k)


def _banner(c: Canvas, box, shape: str, color, radius: float, outline) -> None:
    """The band behind the name: a rounded rectangle, a slanted bar or a ribbon with notched
    ends, shaded top to bottom, over an optional outline 1 mm wider."""
    x, y, w, h = box
    r = c.region(box, pad=h * 0.4)
    if shape == "rect":
        s = rrect(r.X, r.Y, box, radius)
        cov = c.cover(r, s)
        if outline is not None:
            c.paint(r, c.cover(r, s, grow=1.0), outline, clip=True)
    else:
        k = h * 0.35
        if shape == "slant":
            pts = [(x + k, y), (x + w, y), (x + w - k, y + h), (x, y + h)]
        else:  # ribbon: notched ends
            pts = [(x, y), (x + w, y), (x + w - k, y + h / 2), (x + w, y + h), (x, y + h), (x + k, y + h / 2)]
        if outline is not None:
            g = 1.0
            big = [(px_ + (g if px_ > x + w / 2 else -g), py_ + (g if py_ > y + h / 2 else -g)) for px_, py_ in pts]
            c.paint(r, polygon_cover(c, r, big), outline, clip=True)
        cov = polygon_cover(c, r, pts)
    c.paint(r, cov, vertical_gradient(r, y, y + h, [mix(color, WHITE, 0.18), color, mix(color, BLACK, 0.18)]),
            clip=True)


# -- text in a box -------------------------------------------------------------------------------
def text_in_box(c: Canvas, key: str, box, text: str, style: TextStyle, max_lines: int,
                color, layout: Layout | None, min_size: float, outline=None, extrude=None,
                shadow=None, vcenter: bool = True) -> None:
    """Fit `text` into box (mm), draw it, and record box and ink in the layout."""
    bx0, by0, bx1, by1 = c.pixel_box(box)
    bw, bh = bx1 - bx0, by1 - by0
    lines, size = fit_block(text, bw, bh, style, max_lines)
    if size < min_size * c.scale * 1.3:  # size is the em; min_size is about the cap height
        raise InputError(f"{key} '{text}' is too long to fit its box in this template at a readable size "
                         f"(at least {min_size:g} mm letters); shorten it")
    block = draw_block(lines, size, style)
    bh_, bw_ = block.shape
    x0 = bx0 + (bw - bw_) // 2 if style.align == "center" else bx0
    y0 = by0 + (bh - bh_) // 2 if vcenter else by0
    for mask, col in ((block.shadow, shadow), (block.extrude, extrude), (block.outline, outline),
                      (block.fill, color)):
        if mask is not None and col is not None:
            c.paint_mask(mask, x0, y0, col)
    ink = block.ink()
    ys, xs = np.nonzero(ink > 0.02)
    if layout is not None and len(xs):
        layout.text[key] = TextBox(box=(bx0, by0, bx1, by1),
                                   ink=(x0 + int(xs.min()), y0 + int(ys.min()),
                                        x0 + int(xs.max()) + 1, y0 + int(ys.max()) + 1),
                                   size_px=size, lines=lines)
