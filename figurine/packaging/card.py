"""The card: the die-cut body with its hang tab and hole, the printed card art, and the side
panel of a window box (flat, and turned away from the viewer in the social picture).

    from figurine.packaging.card import draw_card, draw_card_art
    from figurine.packaging.draw import Canvas
    from figurine.packaging.template import load_template
    t = load_template("classic-blister")
    c = Canvas(t["page"]["width"], t["page"]["height"], scale=4.0)   # 4 px per mm
    draw_card(c, t, grow=0.0)       # 1. card, hang tab, euro slot
    draw_card_art(c, t)             # 2. sunburst, printed panel, border line
    c.to_image().save("card.png")   # RGBA: transparent around the die-cut outline

Drawing order within the package (render.py): 1 card, 2 card art, 3 side panel. The art and
the side panel paint only inside the card (clip), so they never cross the cut outline.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from figurine.packaging.art import draw_art
from figurine.packaging.draw import (Canvas, _to_u8, band_regions, circle, euro_slot, hex_color,
                                     rect_cover, rrect, rrect_cover, vertical_gradient)
from figurine.packaging.template import Template
from figurine.packaging.text import TextStyle, draw_block, fit_block


# -- 1. card and hang tab -----------------------------------------------------------------------
def draw_card(c: Canvas, t: Template, grow: float) -> None:
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
def draw_card_art(c: Canvas, t: Template) -> None:
    """The printed art inside the card (or inside its art box), an optional printed panel, and
    an optional border line following the card's outline."""
    card = t["card"]
    W, H = t["page"]["width"], t["page"]["height"]
    box = card["art_box"] if card["art_box"][2] > 0 else (t["side_panel"]["width"], 0,
                                                          W - t["side_panel"]["width"], H)
    r = c.region(box, pad=4)
    if r is None:
        return
    inside = rect_cover(c, r, box) if card["art_box"][2] > 0 else np.float32(1.0)
    draw_art(c, r, card["art"], box, card["art_center"], hex_color(card["art_color"]),
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


# -- 3. side panel ------------------------------------------------------------------------------
def draw_side_panel(c: Canvas, t: Template) -> None:
    """A window box's side panel (the left strip of the card): its own gradient, a fold line
    and its text running up the panel."""
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
            c.paint_mask(mask, int(x0 - mask.shape[1] / 2), int(y0 - mask.shape[0] / 2),
                         hex_color(sp["text_color"]))


def side_in_perspective(package: Image.Image, side_px: int, view_width: float):
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
