"""The enclosure: the clear moulded bubble of a blister card, or the film window of a box, with
the figure placed inside; `place` also sets each accessory into its tray compartment.

    from PIL import Image
    from figurine.packaging.card import draw_card
    from figurine.packaging.draw import Canvas
    from figurine.packaging.enclosure import draw_bubble, place
    from figurine.packaging.template import load_template
    t = load_template("classic-blister")
    c = Canvas(t["page"]["width"], t["page"]["height"], scale=4.0)
    draw_card(c, t, grow=0.0)
    figure = Image.open("figure.png").convert("RGBA")          # an RGBA cut-out
    box = t["enclosure"]["box"]                                 # x, y, w, h in mm
    draw_bubble(c, box, t["enclosure"]["radius"],
                contents=lambda: place(c, figure, (box[0] + 6, box[1] + 6, box[2] - 12, box[3] - 12), "bottom"))
    c.to_image().save("bubble.png")

Order of painting, for both kinds: what lies behind the plastic (the bubble's shadow on the
card, or the window's printed backing), then the contents (figure, and a window's tray), then
the light on the plastic or film. The light comes from the top left (LIGHT). Edge effects are
evaluated only in bands along the edge (draw.band_regions), the rest of the face in one pass.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from figurine.packaging.art import draw_art
from figurine.packaging.draw import (BLACK, WHITE, Canvas, band_regions, blur, hex_color, rrect,
                                     rrect_cover, vertical_gradient)

LIGHT = np.array([-0.55, -0.83], np.float32)  # direction towards the light: top left


def place(c: Canvas, img: Image.Image, area, anchor: str = "center") -> tuple[int, int, int, int]:
    """Scale an RGBA cut-out to fit `area` (mm), draw its contact shadow, then the image.

    The cut-out keeps its proportions and is made as large as `area` allows, so a standing
    figure (taller than wide, as SDXL's portrait bucket makes it) takes the area's full height:
    the window's height decides its size, never the canvas it was generated on. Returns where
    it went: x, y, width, height in canvas pixels.
    """
    ax0, ay0, ax1, ay1 = c.pixel_box(area)
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
    c.paint_mask(sh, x - pad + off, y - pad + off, BLACK, opacity=0.42)
    c.paint_image(scaled, (x, y), clip=True)
    return x, y, w, h


def draw_bubble(c: Canvas, box, radius: float, contents=None, flange: float = 2.2) -> None:
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


def draw_window(c: Canvas, encl: dict, figure_fn, tray_fn) -> None:
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
        draw_art(c, r, encl["backing_art"], box, (x + w / 2, y + h * 0.4), WHITE, 0.35, 16, win)
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
