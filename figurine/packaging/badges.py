"""Badges: the round, starburst, pill, tag or rectangular stickers on the card (scale, age,
AI-generated notice, edition number, free text), each with its text fitted inside.

    from figurine.packaging.badges import draw_badge
    from figurine.packaging.draw import Canvas
    from figurine.packaging.template import load_template
    t = load_template("vintage-80s")
    c = Canvas(t["page"]["width"], t["page"]["height"], scale=4.0)
    c.paint(c.full(), 1.0, (0.1, 0.1, 0.3))             # something to stick them on
    for badge in t["badge"]:
        draw_badge(c, t, badge, edition=85)             # the edition badge reads "No. 85"
    c.to_image().save("badges.png")

A badge's label is its own `text`, or the template's [badge_text] for its kind. The shape and
its outline are signed distance fields in the badge's own rotated frame (a starburst is a
polygon); a soft shadow goes under it, then the outline, the shape, and the label.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from figurine.packaging.draw import (BLACK, WHITE, Canvas, blur, circle, hex_color, mix,
                                     polygon_cover, rrect, starburst, vertical_gradient)
from figurine.packaging.template import Template, edition_label
from figurine.packaging.text import TextStyle, draw_block, fit_size


def draw_badge(c: Canvas, t: Template, b: dict, edition: int | None) -> None:
    texts = t["badge_text"]
    kind = b["kind"]
    if kind == "edition":
        label = edition_label(b["text"] or texts["edition"], edition, t.get("path", "template")) if edition is not None \
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
    bx0, by0, bx1, by1 = c.pixel_box(tb)
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
    c.paint_mask(mask, int(mx - mask.shape[1] / 2), int(my - mask.shape[0] / 2), hex_color(b["text_color"]))


def _shadow_of(cov: np.ndarray) -> np.ndarray:
    sh = np.zeros_like(cov)
    k = max(1, cov.shape[0] // 40)
    sh[k:, k:] = cov[:-k, :-k]
    return blur(sh, k) * (1 - cov)
