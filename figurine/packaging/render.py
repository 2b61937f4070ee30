"""Compose a finished package around a figure: card, bubble or window, tray, type, badges.

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

Drawing order (_draw_package): 1 card and hang tab, 2 card art, 3 side panel, 4 brand,
5 enclosure (bubble or window) with the figure, 6 accessory tray, 7 name and tagline,
8 badges, 9 barcode.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from figurine.errors import InputError
from figurine.matte import cut_out
from figurine.packaging import barcode as ean
from figurine.packaging.draw import (Canvas, Region, _to_u8, band_regions, blur, circle,
                                     euro_slot, hex_color, mix, polygon_cover, rect_cover, rrect,
                                     rrect_cover, starburst, stripes_aa, vertical_gradient)
from figurine.packaging.template import Template, load_template
from figurine.packaging.text import TextStyle, cased, draw_block, fit_block, fit_size, validate_text

SIZES = {"social": (1080, 1350), "story": (1080, 1920)}
MAX_ACCESSORIES = 4
LIGHT = np.array([-0.55, -0.83], np.float32)  # direction towards the light: top left
BLACK, WHITE = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)


@dataclass
class PackText:
    name: str
    tagline: str = ""
    brand: str | None = None  # None: the template's brand line


@dataclass
class TextBox:
    box: tuple[int, int, int, int]   # the template's box, in output pixels (x0, y0, x1, y1)
    ink: tuple[int, int, int, int]   # the drawn text's pixel bbox
    size_px: int
    lines: list[str]


@dataclass
class Layout:
    size: tuple[int, int]
    text: dict[str, TextBox] = field(default_factory=dict)
    barcode: str = ""
    barcode_box: tuple[int, int, int, int] = (0, 0, 0, 0)
    compartments: list[tuple[int, int, int, int]] = field(default_factory=list)
    scale: float = 1.0               # output px per mm of the package


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
        package, dx = _side_in_perspective(package, int(round(side * scale)),
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
    return _crop_to_ink(cut_out(figure)), [_crop_to_ink(cut_out(a)) for a in accessories]


def _crop_to_ink(img: Image.Image) -> Image.Image:
    box = img.getchannel("A").point(lambda v: 255 if v > 8 else 0).getbbox()
    if box is None:
        raise InputError("an image is empty after cutting out its backdrop",
                         hint="use a picture of the figure on a plain backdrop, or an RGBA cut-out")
    return img.crop(box)


def _moved(b, shift):
    return (b[0] + shift[0], b[1] + shift[1], b[2] + shift[0], b[3] + shift[1])


# ==============================================================================================
# The package, in millimetres
# ==============================================================================================
def _draw_package(c: Canvas, t: Template, fig: Image.Image, accs: list[Image.Image],
                  text: PackText, edition: int | None, layout: Layout, grow: float) -> None:
    encl = dict(t["enclosure"])
    tray = t["tray"]
    if not accs and tray["box"][2] > 0:  # no accessories: the figure gets the tray's room too
        encl["box"] = _union(encl["box"], tray["box"]) if tray["kind"] == "bubbles" else encl["box"]

    _card(c, t, grow)                                        # 1
    _card_art(c, t)                                          # 2
    if t["side_panel"]["width"] > 0:
        _side_panel(c, t)                                    # 3
    _brand(c, t, text, layout)                               # 4
    fig_area = _figure_area(encl, tray, bool(accs))
    if encl["kind"] == "bubble":                             # 5
        _bubble(c, encl["box"], encl["radius"], contents=lambda: _place(c, fig, fig_area, "bottom"))
    else:
        _window(c, t, encl, lambda: _place(c, fig, fig_area, "bottom"),
                lambda: _tray(c, t, accs, layout) if accs else None)
    if accs and tray["kind"] == "bubbles":                   # 6
        _tray(c, t, accs, layout)
    _name_and_tagline(c, t, text, layout)                    # 7
    for badge in t["badge"]:                                 # 8
        _badge(c, t, badge, edition)
    _barcode(c, t["barcode"]["box"], ean.ean13_for(text.name, edition), layout)  # 9


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


def _pxbox(c: Canvas, box) -> tuple[int, int, int, int]:
    x0, y0 = c.px(box[0], box[1])
    x1, y1 = c.px(box[0] + box[2], box[1] + box[3])
    return (int(np.floor(x0)), int(np.floor(y0)), int(np.ceil(x1)), int(np.ceil(y1)))


# -- 1. card ------------------------------------------------------------------------------------
def _card(c: Canvas, t: Template, grow: float) -> None:
    """The die-cut card: a rounded body, the hang tab above it, the hang hole through the tab.
    `grow` widens the cut outline (and narrows the hole) into the print bleed."""
    W, H = t["page"]["width"], t["page"]["height"]
    tab = t["hang_tab"]
    th = tab["height"] if tab["width"] > 0 else 0.0
    r = c.region((0, 0, W, H), pad=grow + 1)
    cov = rrect_cover(c, r, (0, th, W, H - th), t["page"]["radius"], grow=grow)
    if th > 0:
        tw = tab["width"]
        tab_box = ((W - tw) / 2, 0, tw, th + 2 * tab["radius"])
        tr = c.region(tab_box, pad=grow + 1)
        s = rrect(tr.X, tr.Y, tab_box, 0.0, top_radius=tab["radius"])
        sub = cov[tr.ys.start - r.ys.start:tr.ys.stop - r.ys.start, tr.xs.start - r.xs.start:tr.xs.stop - r.xs.start]
        np.maximum(sub, c.cover(tr, s, grow=grow), out=sub)
        cx, cy = W / 2, tab["hole_y"] or th / 2
        if tab["hole"] != "none":
            hole = euro_slot(tr.X, tr.Y, cx, cy, tab["hole_width"]) if tab["hole"] == "euro" \
                else circle(tr.X, tr.Y, cx, cy, tab["hole_width"] / 2)
            np.minimum(sub, 1.0 - c.cover(tr, hole, grow=-grow), out=sub)
    card = t["card"]
    stops = [hex_color(card["top"])]
    if card["middle"]:
        stops.append(hex_color(card["middle"]))
    stops.append(hex_color(card["bottom"]))
    c.paint(r, cov, vertical_gradient(r, 0, H, stops))


# -- 2. card art --------------------------------------------------------------------------------
def _card_art(c: Canvas, t: Template) -> None:
    card = t["card"]
    W, H = t["page"]["width"], t["page"]["height"]
    box = card["art_box"] if card["art_box"][2] > 0 else (t["side_panel"]["width"], 0,
                                                          W - t["side_panel"]["width"], H)
    r = c.region(box, pad=4)
    if r is None:
        return
    inside = rect_cover(c, r, box) if card["art_box"][2] > 0 else np.float32(1.0)
    _art(c, r, card["art"], box, card["art_center"], hex_color(card["art_color"]),
         card["art_opacity"], card["art_count"], inside)
    if card["panel_color"] and card["panel_box"][2] > 0:
        pr = c.region(card["panel_box"], pad=1)
        c.paint(pr, rrect_cover(c, pr, card["panel_box"], card["panel_radius"]),
                hex_color(card["panel_color"]), clip=True)
    if card["border_color"] and card["border_width"] > 0:
        i, bw = card["border_inset"], card["border_width"]
        fb = (box[0] + i, max(box[1], t["hang_tab"]["height"]) + i,
              box[2] - 2 * i, H - max(box[1], t["hang_tab"]["height"]) - 2 * i)
        _ring(c, fb, max(1.0, t["page"]["radius"] - i / 2), bw, hex_color(card["border_color"]))


def _ring(c: Canvas, box, radius: float, width: float, color) -> None:
    """A rounded-rectangle line centred on box's edge, evaluated only near that edge."""
    for r in band_regions(c, box, radius, width, width):
        ring = np.abs(rrect(r.X, r.Y, box, radius)) - width / 2
        c.paint(r, c.cover(r, ring), color, clip=True)


def _art(c: Canvas, r: Region, kind: str, box, center, color, opacity, count, mask) -> None:
    """Background motifs, all anti-aliased analytically (see draw.stripes_aa); computed and
    painted band by band (Canvas.chunks)."""
    h = r.shape[0]
    for sub, rows in c.chunks(r, 32):
        m = mask[rows] if np.ndim(mask) == 2 and np.shape(mask)[0] == h else mask
        _art_band(c, sub, kind, box, center, color, opacity, count, m)


def _art_band(c: Canvas, r: Region, kind: str, box, center, color, opacity, count, mask) -> None:
    px = 1.0 / c.scale  # one pixel in mm
    x, y, w, h = box
    cx, cy = center
    if kind == "plain":
        return
    if kind == "rays":
        dx, dy = r.X - cx, r.Y - cy
        rad = np.hypot(dx, dy) + 1e-3
        u = (np.arctan2(dy, dx) / (2 * np.pi)) * count
        a = stripes_aa(u, count / (2 * np.pi) * px / rad) * np.clip(rad / 25.0, 0, 1)
    elif kind == "stripes":
        period = w / max(1, count)
        u = (r.X + r.Y) / period
        a = stripes_aa(u, 1.414 * px / period, 0.5)
    elif kind == "halftone":
        p = w / max(1, count)
        gx = (r.X - x) / p
        gy = (r.Y - y) / p
        ddx = (gx - np.floor(gx) - 0.5) * p
        ddy = (gy - np.floor(gy) - 0.5) * p
        t = np.clip((r.Y - y) / h, 0, 1)
        rr = p * 0.48 * (0.15 + 0.85 * t)
        a = np.clip(0.5 - (np.hypot(ddx, ddy) - rr) * c.scale, 0, 1)
    elif kind == "spotlight":
        rad = np.hypot((r.X - cx) / (w * 0.55), (r.Y - cy) / (h * 0.5))
        a = np.clip(1.0 - rad, 0, 1) ** 1.6
    elif kind == "grid":
        a = _synthwave(c, r, box, center, count, color, opacity, mask)
        return
    else:
        return
    c.paint(r, a * mask, color, opacity=opacity, clip=True)


def _synthwave(c, r, box, center, count, color, opacity, mask) -> None:
    """1980s art: a striped sun on the horizon over a perspective grid floor. Each part is
    computed only in the rows it can reach (r is one band of rows, see _art)."""
    x, y, w, h = box
    cx, hy = center
    px = 1.0 / c.scale
    y0, y1 = float(r.Y[0, 0]), float(r.Y[-1, 0])
    # Sun: a disc above the horizon with horizontal cuts in its lower half.
    sun_r = w * 0.30
    if y1 > hy - sun_r and y0 < hy:
        sr = c.window(r.ys, c.region((cx - sun_r, 0, 2 * sun_r, 1)).xs)
        m = mask[:, sr.xs.start - r.xs.start:sr.xs.stop - r.xs.start] if np.ndim(mask) == 2 else mask
        sun = c.cover(sr, circle(sr.X, sr.Y, cx, hy, sun_r)) * (sr.Y < hy)
        cuts = 1.0 - stripes_aa((hy - sr.Y) / (sun_r * 0.16), px / (sun_r * 0.16), 0.35) * (sr.Y > hy - sun_r * 0.5)
        sun_col = vertical_gradient(sr, hy - sun_r, hy, [(1.0, 0.86, 0.25), (1.0, 0.25, 0.45)])
        c.paint(sr, sun * cuts * m, sun_col, opacity=min(1.0, opacity * 4), clip=True)
    # Floor: lines converging to the horizon, and cross lines closer together far away.
    if y1 > hy + 0.5:
        below = r.Y - hy
        ok = below > 0.5
        depth = np.where(ok, 1.0 / np.maximum(below, 0.5), 0).astype(np.float32)
        cross = stripes_aa(60.0 * depth, 60.0 * depth * depth * px, 0.10)
        spread = h * 0.5 / (w / max(1, count)) / (w / max(1, count) * 0.5)
        u_conv = (r.X - cx) * depth * spread
        conv = stripes_aa(u_conv + 0.5, np.abs(depth * spread) * px * 1.5 + np.abs(u_conv * depth) * px, 0.10)
        fade = np.clip(below / 6.0, 0, 1) * ok
        c.paint(r, np.maximum(cross, conv) * fade * mask, color, opacity=opacity, clip=True)
    # A glow along the horizon.
    if y1 > hy - 15 and y0 < hy + 15:
        glow = np.exp(-np.abs(r.Y - hy) / 3.0)
        c.paint(r, glow * mask, color, opacity=opacity * 0.8, clip=True)


# -- 3. side panel ------------------------------------------------------------------------------
def _side_panel(c: Canvas, t: Template) -> None:
    sp = t["side_panel"]
    H = t["page"]["height"]
    sw = sp["width"]
    r = c.region((0, 0, sw, H), pad=4)
    band = c.cover(r, np.maximum(r.X - sw, -1e3 + 0 * r.Y))
    c.paint(r, band, vertical_gradient(r, 0, H, [hex_color(sp["top"]), hex_color(sp["bottom"])]), clip=True)
    fold = c.cover(r, np.abs(r.X - sw + 1.2) - 0.6 + 0 * r.Y)
    c.paint(r, fold, hex_color(sp["accent"]), clip=True)
    if sp["text"]:
        style = TextStyle(weight=900, width=62.5, italic=False)
        lines, size = fit_block(sp["text"], H * 0.68 * c.scale, (sw - 10) * c.scale, style, 1)
        if size:
            block = draw_block(lines, size, style)
            mask = np.rot90(block.fill).copy()
            x0, y0 = c.px(sw / 2, H * 0.42)
            _paint_mask(c, mask, int(x0 - mask.shape[1] / 2), int(y0 - mask.shape[0] / 2),
                        hex_color(sp["text_color"]))


def _side_in_perspective(package: Image.Image, side_px: int, view_width: float):
    """Turn the side panel (the left strip) away from the viewer: squeeze it into a
    trapezoid, shade it, and put the front beside it. Returns the image and how far the front
    moved right."""
    from PIL import ImageDraw

    w, h = package.size
    new_side = max(2, int(round(side_px * view_width)))
    out = Image.new("RGBA", (w - side_px + new_side, h))
    out.paste(package.crop((side_px, 0, w, h)), (new_side, 0))
    ss = 2  # the trapezoid's outline is drawn at twice the size, then reduced
    strip = package.crop((0, 0, side_px, h)).convert("RGBa")
    inset = h * 0.035  # the far edge looks shorter
    quad = [(0, inset), (new_side, 0), (new_side, h), (0, h - inset)]
    coeffs = _perspective_coeffs(quad, [(0, 0), (side_px, 0), (side_px, h), (0, h)])
    warped = np.asarray(strip.transform((new_side, h), Image.PERSPECTIVE, coeffs, Image.BICUBIC),
                        np.float32) / 255.0
    edge = Image.new("L", (new_side * ss, h * ss))
    ImageDraw.Draw(edge).polygon([(px_ * ss, py_ * ss) for px_, py_ in quad], fill=255)
    edge = np.asarray(edge.reduce(ss), np.float32) / 255.0
    a = np.minimum(warped[..., 3], edge)
    k = np.where(warped[..., 3] > 0, a / np.maximum(warped[..., 3], 1e-6), 0)[..., None]
    shade = np.linspace(0.62, 0.8, new_side, dtype=np.float32)[None, :, None]
    side = np.concatenate([warped[..., :3] * k * shade, a[..., None]], axis=2)
    side_img = Image.fromarray(_to_u8(side), "RGBa").convert("RGBA")
    out.paste(side_img, (0, 0))
    return out, new_side - side_px


def _perspective_coeffs(dst, src):
    """Pillow's PERSPECTIVE coefficients mapping output points `dst` to input points `src`."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(dst, src):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    return np.linalg.solve(np.array(rows, float), np.array(rhs, float)).tolist()


# -- 4. brand -----------------------------------------------------------------------------------
def _brand(c: Canvas, t: Template, text: PackText, layout: Layout) -> None:
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
        _text_in_box(c, "brand", (x + w * 0.06, top, w * 0.88, main_h), cased(brand, "upper"), style, 1,
                     hex_color(b["color"]), layout, min_size=1.5)
    if b["sub"]:
        sub_style = TextStyle(weight=700, width=100, italic=b["italic"])
        _text_in_box(c, "brand_sub", (x + w * 0.1, y + h * 0.72, w * 0.8, h * 0.22), b["sub"], sub_style, 1,
                     hex_color(b["sub_color"]), layout, min_size=1.0)


# -- text boxes ---------------------------------------------------------------------------------
def _text_in_box(c: Canvas, key: str, box, text: str, style: TextStyle, max_lines: int,
                 color, layout: Layout | None, min_size: float, outline=None, extrude=None,
                 shadow=None, vcenter: bool = True) -> None:
    """Fit `text` into box (mm), draw it, and record box and ink in the layout."""
    bx0, by0, bx1, by1 = _pxbox(c, box)
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
            _paint_mask(c, mask, x0, y0, col)
    ink = block.ink()
    ys, xs = np.nonzero(ink > 0.02)
    if layout is not None and len(xs):
        layout.text[key] = TextBox(box=(bx0, by0, bx1, by1),
                                   ink=(x0 + int(xs.min()), y0 + int(ys.min()),
                                        x0 + int(xs.max()) + 1, y0 + int(ys.max()) + 1),
                                   size_px=size, lines=lines)


def _paint_mask(c: Canvas, mask: np.ndarray, x0: int, y0: int, color, opacity: float = 1.0) -> None:
    h, w = mask.shape
    X0, Y0, X1, Y1 = max(0, x0), max(0, y0), min(c.w, x0 + w), min(c.h, y0 + h)
    if X1 <= X0 or Y1 <= Y0:
        return
    r = Region(slice(Y0, Y1), slice(X0, X1), np.zeros((1, X1 - X0)), np.zeros((Y1 - Y0, 1)))
    c.paint(r, mask[Y0 - y0:Y1 - y0, X0 - x0:X1 - x0], color, opacity=opacity, clip=True)


# -- 5. enclosure -------------------------------------------------------------------------------
def _place(c: Canvas, img: Image.Image, area, anchor: str = "center") -> None:
    """Scale an RGBA cut-out to fit `area` (mm), draw its contact shadow, then the image."""
    ax0, ay0, ax1, ay1 = _pxbox(c, area)
    aw, ah = ax1 - ax0, ay1 - ay0
    k = min(aw / img.width, ah / img.height)
    w, h = max(1, int(img.width * k)), max(1, int(img.height * k))
    scaled = img.convert("RGBa").resize((w, h), Image.LANCZOS, reducing_gap=3.0).convert("RGBA")
    x = ax0 + (aw - w) // 2
    y = ay1 - h if anchor == "bottom" else ay0 + (ah - h) // 2
    # Soft shadow on the card behind, offset down-right (light from the top left).
    a = np.asarray(scaled.getchannel("A"), np.float32) / 255.0
    pad = int(4 * c.scale)
    sh = np.zeros((h + 2 * pad, w + 2 * pad), np.float32)
    sh[pad:pad + h, pad:pad + w] = a
    sh = blur(sh, 1.4 * c.scale)
    off = int(round(1.6 * c.scale))
    _paint_mask(c, sh, x - pad + off, y - pad + off, BLACK, opacity=0.42)
    c.paint_image(scaled, (x, y), clip=True)


def _bubble(c: Canvas, box, radius: float, contents=None, flange: float = 2.2) -> None:
    """A clear moulded blister: shadow on the card, contents, then the plastic's light.
    Edge effects are evaluated only in bands along the edge (see draw.band_regions)."""
    x, y, w, h = box
    for r in band_regions(c, box, radius, outer=flange + 9.0, inner=0.5):
        s = rrect(r.X, r.Y, box, radius)
        inside = c.cover(r, s)
        # Shadow the bubble throws on the card, down and right (outside the bubble only).
        s_sh = rrect(r.X, r.Y, (x + 1.0, y + 2.2, w, h), radius)
        shadow = (1.0 / (1.0 + np.exp(np.clip(s_sh / 1.1, -30, 30)))) * (1.0 - inside)
        c.paint(r, shadow, BLACK, opacity=0.45, clip=True)
        # The flat flange glued to the card: a faint sheen and a bright outer edge.
        fl = c.cover(r, s, grow=flange) * (1.0 - inside)
        sheen = 1.0 - (1.0 - 0.16 * fl) * (1.0 - 0.55 * np.exp(-((s - flange + 0.25) / 0.28) ** 2))
        c.paint(r, sheen, WHITE, clip=True)
    if contents:
        contents()
    _plastic(c, box, radius)


def _normals(s: np.ndarray):
    gy, gx = np.gradient(s)
    n = np.hypot(gx, gy) + 1e-6
    return gx / n, gy / n


def _plastic(c: Canvas, box, radius: float) -> None:
    """Light on clear plastic. Near the edge: the curved wall darkens, catches a bright rim
    line on the lit side and a softer one inside on the far side. Across the face: a faint
    haze, vertical specular streaks fading downwards, and a glint in the top-left corner."""
    x, y, w, h = box
    for r in band_regions(c, box, radius, outer=0.5, inner=5.0):
        s = rrect(r.X, r.Y, box, radius)
        inside = c.cover(r, s)
        d = np.maximum(-s, 0)
        nx, ny = _normals(s)
        facing = np.clip(nx * LIGHT[0] + ny * LIGHT[1], 0, 1)
        c.paint(r, inside * np.exp(-d / 1.6), (0.05, 0.08, 0.12), opacity=0.28, clip=True)
        rim = 0.9 * np.exp(-((d - 0.9) / 0.38) ** 2) * (0.25 + 0.75 * facing)
        inner = 0.35 * np.exp(-((d - 2.9) / 0.7) ** 2) * (0.2 + 0.8 * (1.0 - facing))
        c.paint(r, inside * (1.0 - (1.0 - rim) * (1.0 - inner)), WHITE, clip=True)
    r = c.region(box)
    fade = np.clip(1.15 - (r.Y - y) / (h * 0.85), 0, 1)
    streaks = (0.30 * np.exp(-((r.X - (x + w * 0.13)) / (w * 0.045)) ** 2)
               + 0.42 * np.exp(-((r.X - (x + w * 0.215)) / (w * 0.009)) ** 2)
               + 0.20 * np.exp(-((r.X - (x + w * 0.9)) / (w * 0.014)) ** 2))
    light = 1.0 - (1.0 - 0.07) * (1.0 - np.minimum(streaks * fade, 1.0))   # (h, w) by broadcasting
    c.paint(r, light * rrect_cover(c, r, box, radius, grow=-1.5), WHITE, clip=True)
    gb = (x + w * 0.02, y + h * 0.005, w * 0.16, h * 0.09)
    gr = c.region(gb)
    if gr is not None:
        glint = 0.6 * np.exp(-(((gr.X - (x + w * 0.1)) / (w * 0.06)) ** 2 + ((gr.Y - (y + h * 0.05)) / (h * 0.03)) ** 2))
        c.paint(gr, glint * rrect_cover(c, gr, box, radius, grow=-1.0), WHITE, clip=True)


def _window(c: Canvas, t: Template, encl, figure_fn, tray_fn) -> None:
    """A box window: printed inner backing, figure, tray, depth shadow, film, frame."""
    box = encl["box"]
    x, y, w, h = box
    top_r = encl["top_radius"] if encl["top_radius"] >= 0 else None
    rad = encl["radius"]
    r = c.region(box, pad=1)
    win = rrect_cover(c, r, box, rad, top_radius=top_r)
    stops = [hex_color(encl["backing_top"]), hex_color(encl["backing_bottom"])]
    if encl["backing_art"] == "spotlight":  # the common case in one pass: glow mixed into the backing
        cx, cy = x + w / 2, y + h * 0.4
        for sub, rows in c.chunks(r, 32):
            col = vertical_gradient(sub, y, y + h, stops)
            rad_ = np.hypot((sub.X - cx) / (w * 0.55), (sub.Y - cy) / (h * 0.5))
            glow = (0.35 * np.clip(1.0 - rad_, 0, 1) ** 1.6)[..., None]
            c.paint(sub, win[rows], col + (1.0 - col) * glow, clip=True)
    else:
        c.paint(r, win, vertical_gradient(r, y, y + h, stops), clip=True)
        _art(c, r, encl["backing_art"], box, (x + w / 2, y + h * 0.4), WHITE, 0.35, 16, win)
    figure_fn()
    if tray_fn:
        tray_fn()
    # The film across the window: a haze and two broad diagonal glares.
    u = ((r.X - x) + (r.Y - y) * 0.45) / w
    glare = 1.0 - (1.0 - 0.05) * (1.0 - 0.12 * np.exp(-((u - 0.28) / 0.07) ** 2)) \
        * (1.0 - 0.08 * np.exp(-((u - 0.52) / 0.025) ** 2))
    c.paint(r, win * glare, WHITE, clip=True)
    # Depth near the edge: the box front shades the inside (more at the top), the film's cut
    # edge catches the light, and the printed frame surrounds the opening.
    fw = encl["frame_width"] if encl["frame_color"] else 0.0
    for er in band_regions(c, box, max(rad, top_r or 0.0), outer=fw + 1.0, inner=9.0):
        s = rrect(er.X, er.Y, box, rad, top_radius=top_r)
        inside = c.cover(er, s)
        d = np.maximum(-s, 0)
        nx, ny = _normals(s)
        depth = inside * np.exp(-d / 2.2) * (0.55 + 0.45 * np.clip(-ny, 0, 1))
        c.paint(er, depth, BLACK, opacity=0.55, clip=True)
        edge = inside * np.exp(-((d - 0.5) / 0.3) ** 2) * (0.3 + 0.7 * np.clip(nx * LIGHT[0] + ny * LIGHT[1], 0, 1))
        c.paint(er, edge, WHITE, opacity=0.7, clip=True)
        if fw > 0:
            c.paint(er, c.cover(er, np.abs(s - fw / 2) - fw / 2), hex_color(encl["frame_color"]), clip=True)


# -- 6. tray ------------------------------------------------------------------------------------
def _compartments(box, n: int) -> list[tuple[float, float, float, float]]:
    x, y, w, h = box
    gap = 3.0
    cw = min((w - gap * (n - 1)) / n, h * 1.35)
    total = cw * n + gap * (n - 1)
    x0 = x + (w - total) / 2
    return [(x0 + i * (cw + gap), y, cw, h) for i in range(n)]


def _tray(c: Canvas, t: Template, accs: list[Image.Image], layout: Layout) -> None:
    tray = t["tray"]
    comps = _compartments(tray["box"], len(accs))
    col = hex_color(tray["color"])
    if tray["kind"] == "insert":
        # A moulded plastic insert across the tray box, with a well per accessory.
        r = c.region(tray["box"], pad=1)
        s = rrect(r.X, r.Y, tray["box"], 3.0)
        c.paint(r, c.cover(r, s), vertical_gradient(r, tray["box"][1], tray["box"][1] + tray["box"][3],
                                                      [mix(col, WHITE, 0.35), mix(col, BLACK, 0.12)]), clip=True)
        for box, img in zip(comps, accs):
            inset = (box[0] + 1.5, box[1] + 1.5, box[2] - 3, box[3] - 3)
            wr = c.region(inset, pad=1)
            ws = rrect(wr.X, wr.Y, inset, 3.0)
            well = c.cover(wr, ws)
            c.paint(wr, well, mix(col, BLACK, 0.18), clip=True)
            c.paint(wr, well * np.exp(-np.maximum(-ws, 0) / 1.2), BLACK, opacity=0.35, clip=True)
            _place(c, img, (inset[0] + 2, inset[1] + 2, inset[2] - 4, inset[3] - 4))
            layout.compartments.append(_pxbox(c, box))
        return
    # One small blister per accessory on a printed tray panel.
    if tray["color"]:
        pr = c.region(tray["box"], pad=3)
        panel = (tray["box"][0] - 2, tray["box"][1] - 2, tray["box"][2] + 4, tray["box"][3] + 4)
        c.paint(pr, c.cover(pr, rrect(pr.X, pr.Y, panel, 4.0)), col, opacity=0.35, clip=True)
    for box, img in zip(comps, accs):
        area = (box[0] + 2.5, box[1] + 2.5, box[2] - 5, box[3] - 5)
        _bubble(c, box, min(6.0, box[2] / 4), contents=lambda a=area, im=img: _place(c, im, a), flange=1.5)
        layout.compartments.append(_pxbox(c, box))


# -- 7. name and tagline ------------------------------------------------------------------------
def _name_and_tagline(c: Canvas, t: Template, text: PackText, layout: Layout) -> None:
    n = t["name"]
    if n["banner"]:
        bb = n["banner_box"] if n["banner_box"][2] > 0 else _grown(n["box"], 3.0)
        _banner(c, bb, n["banner_shape"], hex_color(n["banner"]), n["banner_radius"],
                hex_color(n["banner_outline"]) if n["banner_outline"] else None)
    style = TextStyle(weight=n["weight"], width=n["width"], italic=n["italic"],
                      outline=n["outline_width"] if n["outline"] else 0.0,
                      extrude=n["extrude"], align=n["align"],
                      shadow=tuple(n["shadow_offset"]) if n["shadow"] else (0.0, 0.0))
    _text_in_box(c, "name", n["box"], cased(text.name, n["case"]), style, n["max_lines"],
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
        _text_in_box(c, "tagline", inner, cased(text.tagline, tg["case"]), tstyle, 1,
                     hex_color(tg["color"]), layout, tg["min_size"])


def _grown(box, k):
    return (box[0] - k, box[1] - k, box[2] + 2 * k, box[3] + 2 * k)


def _banner(c: Canvas, box, shape: str, color, radius: float, outline) -> None:
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


# -- 8. badges ----------------------------------------------------------------------------------
def _badge(c: Canvas, t: Template, b: dict, edition: int | None) -> None:
    texts = t["badge_text"]
    kind = b["kind"]
    if kind == "edition":
        label = (b["text"] or texts["edition"]).format(edition=edition) if edition is not None \
            else texts["edition_none"]
    else:
        label = b["text"] or texts.get(kind, "")
    cx, cy = b["center"]
    bw, bh = b["size"]
    box = (cx - bw / 2, cy - bh / 2, bw, bh)
    r = c.region(box, pad=2.5)
    col = hex_color(b["color"])
    grad = vertical_gradient(r, box[1], box[1] + bh, [mix(col, WHITE, 0.25), col, mix(col, BLACK, 0.15)])
    rot = np.radians(b["rotate"])
    X = (r.X - cx) * np.cos(rot) + (r.Y - cy) * np.sin(rot) + cx
    Y = -(r.X - cx) * np.sin(rot) + (r.Y - cy) * np.cos(rot) + cy
    shape = b["shape"]
    # Coverage of the badge and of its outline, and the box its text is fitted to.
    outline = None
    if shape == "starburst":
        cov = polygon_cover(c, r, starburst(cx, cy, bw / 2, bw / 2 * 0.8, 16, b["rotate"]))
        if b["outline"]:
            outline = polygon_cover(c, r, starburst(cx, cy, bw / 2 + 0.6, bw / 2 * 0.8 + 0.6, 16, b["rotate"]))
        tw, th, shift = bw * 0.56, bh * 0.56, 0.0
    else:
        if shape == "circle":
            s = np.hypot((X - cx) / (bw / 2), (Y - cy) / (bh / 2)) * min(bw, bh) / 2 - min(bw, bh) / 2
            tw, th, shift = bw * 0.66, bh * 0.56, 0.0
        elif shape == "tag":  # a luggage tag: rounded card with a punched hole at the left
            s = np.maximum(rrect(X, Y, box, 1.2), -circle(X, Y, box[0] + bh * 0.3, cy, bh * 0.09))
            tw, th, shift = bw * 0.78 - bh * 0.2, bh * 0.62, bh * 0.1
        else:  # pill or rect
            s = rrect(X, Y, box, bh / 2 if shape == "pill" else 1.2)
            tw, th, shift = bw * (0.8 if shape == "pill" else 0.84), bh * 0.66, 0.0
        cov = c.cover(r, s)
        if b["outline"]:
            outline = c.cover(r, s, grow=0.6)
    tb = (cx - tw / 2 + shift, cy - th / 2, tw, th)
    c.paint(r, _shadow_of(outline if outline is not None else cov), BLACK, opacity=0.25, clip=True)
    if outline is not None:
        c.paint(r, outline, hex_color(b["outline"]), clip=True)
    c.paint(r, cov, grad, clip=True)
    lines = [ln for ln in label.split("\n") if ln.strip()]
    if not lines:
        return
    style = TextStyle(weight=b["weight"], width=b["width"], line_pitch=1.0)
    bx0, by0, bx1, by1 = _pxbox(c, tb)
    best, chosen = 0, lines
    for cand in (lines, [" ".join(lines)]):  # as written, or on one line if that is bigger
        size = fit_size(cand, bx1 - bx0 - 4, by1 - by0 - 4, style, 400)
        if size > best:
            best, chosen = size, cand
    if best < 3:
        return
    block = draw_block(chosen, best, style)
    mask = block.fill
    if b["rotate"]:
        img = Image.fromarray((mask * 255).astype(np.uint8)).rotate(b["rotate"], Image.BICUBIC, expand=True)
        mask = np.asarray(img, np.float32) / 255.0
    mx, my = c.px(cx, cy)
    _paint_mask(c, mask, int(mx - mask.shape[1] / 2), int(my - mask.shape[0] / 2), hex_color(b["text_color"]))


def _shadow_of(cov: np.ndarray) -> np.ndarray:
    sh = np.zeros_like(cov)
    k = max(1, cov.shape[0] // 40)
    sh[k:, k:] = cov[:-k, :-k]
    return blur(sh, k) * (1 - cov)


# -- 9. barcode ---------------------------------------------------------------------------------
def _barcode(c: Canvas, box, code: str, layout: Layout) -> None:
    """EAN-13 with quiet zones on a white label; bars anti-aliased by exact column coverage."""
    if box[2] <= 0:
        return
    x, y, w, h = box
    r = c.region(box, pad=0.5)
    c.paint(r, c.cover(r, rrect(r.X, r.Y, box, 0.8)), WHITE, clip=True)
    bits = np.array(ean.ean13_modules(code), np.float32)
    module = w / 113.0                       # 11 quiet + 95 + 7 quiet modules
    bars_x0 = x + 11 * module
    digit_zone = h * 0.2
    top = y + h * 0.07
    bar_bottom = y + h - digit_zone - h * 0.03
    guard_bottom = bar_bottom + digit_zone * 0.55
    cum = np.concatenate([[0.0], np.cumsum(bits)])
    # Dark length over each pixel's span, in modules, divided by the span.
    px_mm = 1.0 / c.scale
    ul = (r.X[0] - px_mm / 2 - bars_x0) / module
    ur = (r.X[0] + px_mm / 2 - bars_x0) / module
    cover_x = (np.interp(ur, np.arange(96), cum) - np.interp(ul, np.arange(96), cum)) / (ur - ul)
    guards = np.zeros(95, np.float32)
    guards[list(ean.guard_modules())] = 1
    gcum = np.concatenate([[0.0], np.cumsum(bits * guards)])
    gcover_x = (np.interp(ur, np.arange(96), gcum) - np.interp(ul, np.arange(96), gcum)) / (ur - ul)
    vy = np.clip(0.5 - (np.maximum(top - r.Y, r.Y - bar_bottom)) * c.scale, 0, 1)
    gy = np.clip(0.5 - (np.maximum(top - r.Y, r.Y - guard_bottom)) * c.scale, 0, 1)
    cov = np.maximum(cover_x[None, :] * vy, gcover_x[None, :] * gy)
    c.paint(r, cov, BLACK, clip=True)
    # Human-readable digits under the bars: the first in the quiet zone, then two groups of six.
    style = TextStyle(weight=500, width=100)
    size = fit_size(["000000"], module * 38 * c.scale, digit_zone * 0.8 * c.scale, style, 200)
    for text, cx in ((code[0], x + 6 * module),
                     (code[1:7], bars_x0 + 24 * module),
                     (code[7:], bars_x0 + 71 * module)):
        block = draw_block([text], size, style)
        mx, my = c.px(cx, bar_bottom + digit_zone * 0.55)
        _paint_mask(c, block.fill, int(mx - block.shape[1] / 2), int(my - block.shape[0] / 2), BLACK)
    layout.barcode = code
    layout.barcode_box = _pxbox(c, box)


def check_fit(text: PackText, template: str | Template = "classic-blister") -> None:
    """Raise InputError when the text cannot fit the template's boxes (no drawing of the rest)."""
    validate_text(text.name, text.tagline, text.brand)
    t = template if isinstance(template, dict) else load_template(template)
    W, H = t["page"]["width"], t["page"]["height"]
    scale = min(SIZES["social"][0] * 0.86 / W, SIZES["social"][1] * 0.86 / H)
    c = Canvas(W, H, scale)
    layout = Layout(size=(c.w, c.h), scale=scale)
    _brand(c, t, text, layout)
    _name_and_tagline(c, t, text, layout)
