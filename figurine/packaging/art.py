"""Background motifs printed on the card and inside a window box: sunburst rays, diagonal
stripes, halftone dots, a spotlight glow, and the 1980s sun over a perspective grid.

    from figurine.packaging.art import draw_art
    from figurine.packaging.draw import Canvas
    c = Canvas(170, 285, scale=4.0)
    r = c.region((0, 0, 170, 285))
    c.paint(r, 1.0, (0.8, 0.1, 0.1))                                  # the card to print on
    draw_art(c, r, "rays", (0, 0, 170, 285), (85, 125), (1.0, 0.8, 0.3), 0.16, 22, 1.0)
    c.to_image().save("rays.png")

Each motif is anti-aliased analytically (draw.stripes_aa: a stripe's coverage from its distance
in pixels), so it stays smooth at 1080 px and at 300 DPI alike; it is painted inside what is
already drawn (clip), through `mask`, band by band of 32 rows (Canvas.chunks).
"""

from __future__ import annotations

import numpy as np

from figurine.packaging.draw import Canvas, Region, circle, stripes_aa, vertical_gradient


def draw_art(c: Canvas, r: Region, kind: str, box, center, color, opacity, count, mask) -> None:
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
    computed only in the rows it can reach (r is one band of rows, see draw_art)."""
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
