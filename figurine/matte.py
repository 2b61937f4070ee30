"""Matting: cut a figure or accessory off the plain studio backdrop it was generated on.

    from PIL import Image
    from figurine.matte import cut_out
    rgba = cut_out(Image.open("figure.png"))      # RGBA: figure opaque, backdrop transparent
    rgba.save("figure-matte.png")

No downloaded weights: the generation stage asks for a plain, evenly lit backdrop
(BACKDROP_PROMPT), and this module keys it out.

1. Input with an alpha channel (RGBA, LA, transparent palette) is returned as is.
2. The backdrop is modelled from the image border as a smooth colour field (a quadratic in x and
   y per channel), which follows the soft light falloff of generated studio backdrops.
3. Each pixel's colour distance to the backdrop gives three zones: sure backdrop, sure figure,
   and the edge band between them. Because the key is by colour and not by flood fill from the
   border, backdrop seen through a gap between arm and body is keyed out like any other.
4. Small specks (either way) are dropped with connected components. A backdrop-coloured region
   enclosed by the figure stays a hole when its outline is crisp (a gap between arm and body)
   and is filled when its outline is soft (shading on a grey or white part that passes
   through the backdrop's colour).
5. In the edge band, alpha comes from projecting the pixel's colour onto the line from the
   backdrop colour to the nearby figure colour (I = a*F + (1-a)*B), and the colour itself is
   replaced by the figure colour F ("decontamination"), so no grey halo survives on any
   background the figure is later placed over.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

BACKDROP_RGB = (210, 210, 210)
BACKDROP_PROMPT = "isolated on a plain flat light grey studio backdrop, even soft lighting, no shadows"

# Colour distances (0-255 RGB units) that bound the edge band, before noise is taken into account.
_BAND_LOW = 10.0
_BAND_HIGH = 42.0


def cut_out(image: Image.Image) -> Image.Image:
    """Return an RGBA copy of `image` with its plain backdrop transparent."""
    # 1. An image with an alpha channel is a cut-out already: used as is.
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        return image.convert("RGBA")
    rgb = np.asarray(image.convert("RGB"), np.float32)
    h, w = rgb.shape[:2]
    if h < 8 or w < 8:
        return image.convert("RGBA")

    # 2. Backdrop colour field from the border.
    backdrop, noise = _backdrop_field(rgb)

    # 3. Zones by colour distance.
    diff = rgb - backdrop
    dist = np.sqrt((diff * diff).sum(axis=2))
    low = max(_BAND_LOW, 4.0 * noise)
    high = max(_BAND_HIGH, low + 24.0)
    sure_fg = dist >= high
    sure_bg = dist <= low

    # 4. Drop specks: tiny figure islands in the backdrop and tiny backdrop-coloured pinholes
    #    inside the figure (highlights); the large enclosed gaps between limbs stay open.
    min_area = max(16, int(h * w * 0.0004))
    core = _drop_small(dist > (low + high) / 2.0, min_area)
    core = ~_drop_small(~core, min_area // 4)
    # A backdrop-coloured patch inside the figure is a gap only if its outline is crisp and it
    # is as flat as the backdrop; otherwise it is shading on the figure passing through the
    # backdrop's colour.
    # Closing first fills gaps a few pixels wide (shading contours on a white or grey part),
    # which also cuts them off the outside backdrop.
    import cv2
    k = max(5, (min(h, w) // 150) | 1)
    closed = cv2.morphologyEx(core.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((k, k), np.uint8)) > 0
    core = _fill_soft_holes(closed, dist, low, high)
    sure_fg &= core
    sure_bg &= ~core
    # A strongly coloured edge pixel can be far from the backdrop and still half backdrop:
    # only pixels whose neighbours are all figure count as sure figure.
    sure_fg = _erode(sure_fg, 1 + h // 1024)

    # 5. Alpha and colour in the edge band.
    alpha, colour = _solve_band(rgb, backdrop, dist, sure_fg, sure_bg, core, low, high)
    out = np.concatenate([colour, alpha[..., None] * 255.0], axis=2)
    return Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8), "RGBA")


def _backdrop_field(rgb: np.ndarray) -> tuple[np.ndarray, float]:
    """Fit each channel over the border pixels with a quadratic in (x, y); return the field
    and the residual noise (robust, in 0-255 units)."""
    h, w = rgb.shape[:2]
    b = max(2, int(round(min(h, w) * 0.03)))
    mask = np.zeros((h, w), bool)
    mask[:b], mask[-b:], mask[:, :b], mask[:, -b:] = True, True, True, True
    ys, xs = np.nonzero(mask)
    samples = rgb[ys, xs]
    # Border pixels that belong to the figure (e.g. feet cut by the frame) are outliers:
    # fit, drop the worst, fit again.
    median = np.median(samples, axis=0)
    keep = np.abs(samples - median).max(axis=1) < 40
    if keep.sum() < 0.2 * len(samples):
        keep[:] = True
    xn, yn = xs / w - 0.5, ys / h - 0.5
    basis = np.stack([np.ones_like(xn), xn, yn, xn * yn, xn * xn, yn * yn], axis=1)
    for _ in range(2):
        coef, *_ = np.linalg.lstsq(basis[keep], samples[keep], rcond=None)
        resid = np.abs(basis @ coef - samples).max(axis=1)
        cut = max(6.0, float(np.percentile(resid[keep], 90)) * 2.5)
        keep = keep & (resid < cut)
    noise = float(np.median(resid[keep])) * 1.4826 if keep.any() else 0.0
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    gx, gy = gx / w - 0.5, gy / h - 0.5
    full = np.stack([np.ones_like(gx), gx, gy, gx * gy, gx * gx, gy * gy], axis=2) @ coef
    return full.astype(np.float32), noise


def _erode(mask: np.ndarray, px: int) -> np.ndarray:
    import cv2

    k = np.ones((2 * px + 1, 2 * px + 1), np.uint8)
    return cv2.erode(mask.astype(np.uint8), k) > 0


def _fill_soft_holes(core: np.ndarray, dist: np.ndarray, low: float, high: float) -> np.ndarray:
    """Fill enclosed backdrop-coloured regions unless they look like real gaps: a crisp
    outline and the flat colour of the backdrop itself inside."""
    import cv2

    n, labels, stats, _ = cv2.connectedComponentsWithStats((~core).astype(np.uint8), connectivity=4)
    border = set(np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])).tolist())
    out = core.copy()
    ring_k = np.ones((7, 7), np.uint8)
    H, W = core.shape
    for i in range(1, n):
        if i in border:
            continue
        x, y, w, h = stats[i, :4]
        y0, y1, x0, x1 = max(0, y - 4), min(H, y + h + 4), max(0, x - 4), min(W, x + w + 4)
        comp = labels[y0:y1, x0:x1] == i
        ring = (cv2.dilate(comp.astype(np.uint8), ring_k) > 0) & ~comp
        d = dist[y0:y1, x0:x1]
        crisp = ring.any() and (d[ring] >= high).mean() >= 0.25
        flat = np.median(d[comp]) <= low * 0.5
        if not (crisp and flat):
            out[y0:y1, x0:x1][comp] = True
    return out


def _drop_small(mask: np.ndarray, min_area: int) -> np.ndarray:
    """Mask without its 8-connected components smaller than min_area pixels."""
    import cv2

    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= min_area
    keep[0] = False  # label 0 is the unmasked part
    return keep[labels]


def _solve_band(rgb, backdrop, dist, sure_fg, sure_bg, core, low, high):
    import cv2

    fg = sure_fg.astype(np.float32)
    # Figure colour near each pixel: a normalised blur of the sure-figure colours.
    k = max(3.0, rgb.shape[0] / 256.0)
    weight = cv2.GaussianBlur(fg, (0, 0), k)
    near_fg = cv2.GaussianBlur(rgb * fg[..., None], (0, 0), k) / np.maximum(weight, 1e-4)[..., None]
    has_fg = weight > 1e-3

    # Alpha by projection onto backdrop -> figure colour; a plain distance ramp where the figure
    # colour is unknown or too close to the backdrop to tell apart.
    fb = near_fg - backdrop
    fb2 = (fb * fb).sum(axis=2)
    proj = ((rgb - backdrop) * fb).sum(axis=2) / np.maximum(fb2, 1e-3)
    ramp = np.clip((dist - low) / (high - low), 0, 1)
    alpha = np.where(has_fg & (fb2 > (high * 0.8) ** 2), np.clip(proj, 0, 1), ramp)
    # A real edge is a thin transition next to the backdrop; band pixels with no backdrop within
    # a few pixels are figure parts that merely resemble it (a light grey shirt): keep them.
    reach = 2 * int(max(2, round(rgb.shape[0] / 512.0))) + 1
    near_bg = cv2.dilate(sure_bg.astype(np.uint8), np.ones((reach, reach), np.uint8)) > 0
    interior = ~near_bg & ~sure_bg
    alpha = np.where(sure_fg | interior, 1.0, alpha)
    alpha = np.where(sure_bg, 0.0, alpha)
    # Band pixels far from any kept figure part are specks' edges: drop them.
    near_core = cv2.dilate(core.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    alpha = np.where(near_core, alpha, 0.0).astype(np.float32)

    # Decontaminate: solve F = B + (I - B) / alpha where alpha is large enough to trust, take
    # the nearby figure colour where it is not.
    solved = backdrop + (rgb - backdrop) / np.maximum(alpha, 1e-3)[..., None]
    solved = np.clip(solved, 0, 255)
    trust = np.clip((alpha - 0.35) / 0.4, 0, 1)[..., None]
    band_colour = np.where(has_fg[..., None], solved * trust + near_fg * (1 - trust), solved)
    colour = np.where((sure_fg | interior | (alpha <= 0))[..., None], rgb, band_colour)
    return alpha.astype(np.float32), colour.astype(np.float32)
