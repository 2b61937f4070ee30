"""Matting: cut a figure or accessory off the plain studio backdrop it was generated on.

    from PIL import Image
    from figurine.matte import Matter, cut_out
    rgba = cut_out(Image.open("figure.png"))      # colour key: figure opaque, backdrop transparent
    matter = Matter("auto", "weights/birefnet-lite/model.onnx")   # loaded once
    rgba, used = matter.cut_out(Image.open("figure.png"))         # used: "birefnet" | "colour-key"
    rgba.save("figure-matte.png")

Two methods, one result (RGBA, the figure's edge colours freed of the backdrop):
- "colour-key" (cut_out, no downloaded weights): the generation stage asks for a plain, evenly
  lit backdrop (BACKDROP_PROMPT), and this module keys it out by colour. It cannot tell a grey,
  white or silver part from the grey backdrop where that part touches it.
- "birefnet": the learned salient-object model of figurine/segment.py (BiRefNet_lite, MIT, an
  optional 224 MB download) decides what is figure, whatever its colour; the colour key's
  backdrop model only takes the backdrop out of the edge colours.
Matter("auto", model) uses the model when its file is there and the colour key otherwise; a file
that is there but unusable is an error, never a silent fallback. `used` says which method cut
each picture ("input-alpha" when the picture had its own alpha and was used as is).

Colour key:
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

Learned (Matter with a model), after the same step 1:
1. The model's foreground probability at the picture's size (figurine/segment.py).
2. Its sigmoid tails become exactly 0 and 1 (below LEARNED_CLEAR, above LEARNED_SOLID), and
   islands of figure smaller than a speck (the colour key's speck size, or 1 % of the largest
   island) are dropped with their soft edge. Alpha is otherwise the model's: colour never removes
   a part the model keeps (that is how the colour key loses grey and silver parts).
3. Edge colours (0 < alpha < 1) are decontaminated as in step 5 above. The colour is solved with
   the coverage the colours show where they can tell figure from backdrop (the nearby figure
   colour is far from the backdrop's), so a backdrop pixel inside the model's soft edge takes
   the figure's colour rather than grey; elsewhere with the model's alpha.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image

from figurine.errors import ConfigError

log = logging.getLogger(__name__)

BACKDROP_RGB = (210, 210, 210)
BACKDROP_PROMPT = "isolated on a plain flat light grey studio backdrop, even soft lighting, no shadows"
METHODS = ("auto", "colour-key", "birefnet")

# Colour distances (0-255 RGB units) that bound the edge band, before noise is taken into account.
_BAND_LOW = 10.0
_BAND_HIGH = 42.0
# The learned alpha's sigmoid tails: below CLEAR is backdrop, above SOLID is figure.
LEARNED_CLEAR = 0.02
LEARNED_SOLID = 0.98


class Matter:
    """The cut-out method, chosen and loaded once: `cut_out(image) -> (rgba, method used)`.

    method "auto": BiRefNet when `model` names an existing file, else the colour key;
    "birefnet": the model is required (WeightsError naming the file when missing or unusable);
    "colour-key": no model is loaded. `model` is the .onnx file's path (for figurine's config,
    matte.model resolved against the weights root). `self.method` is the method in use.
    """

    def __init__(self, method: str = "auto", model: Path | str | None = None,
                 providers: list[str] | None = None):
        from figurine.errors import WeightsError

        if method not in METHODS:
            raise ConfigError(f"matte.method must be one of {', '.join(METHODS)}; got {method!r}")
        self.segmenter = None
        self.method = "colour-key"
        if method == "colour-key":
            return
        if method == "auto" and (model is None or not Path(model).exists()):
            log.info("no cut-out model at %s; using the colour key (`figurine weights fetch --optional` "
                     "fetches BiRefNet)", model if model is not None else "(none set)")
            return
        if model is None:
            raise WeightsError("matte.method = \"birefnet\" needs matte.model, the BiRefNet .onnx file")
        from figurine.segment import Segmenter

        self.segmenter = Segmenter(Path(model), providers)
        self.method = "birefnet"
        log.info("cut-out: BiRefNet from %s on %s", self.segmenter.path.name, self.segmenter.providers[0])

    def cut_out(self, image: Image.Image) -> tuple[Image.Image, str]:
        """The picture as RGBA with its backdrop transparent, and the method that made it."""
        if _has_alpha(image):
            return image.convert("RGBA"), "input-alpha"
        if self.segmenter is None:
            return cut_out(image), "colour-key"
        return _learned_cut_out(image, self.segmenter), "birefnet"


    def cut_or_whole(self, image: Image.Image, what: str) -> tuple[Image.Image, str]:
        """cut_out, but when nothing stands out from the backdrop (under 0.2 % of the picture
        opaque) the whole picture, said in one line naming `what`: generated pictures and the
        user's own are treated the same way everywhere (make, pack, bench)."""
        rgba, method = self.cut_out(image)
        if (np.asarray(rgba.getchannel("A")) >= 128).mean() < EMPTY_FRACTION:
            print(f"{what}: nothing stands out from the backdrop; packaging the whole picture")
            return image.convert("RGB").convert("RGBA"), "whole picture"
        return rgba, method


EMPTY_FRACTION = 0.002


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)


def cut_out(image: Image.Image) -> Image.Image:
    """Return an RGBA copy of `image` with its plain backdrop transparent."""
    # 1. An image with an alpha channel is a cut-out already: used as is.
    if _has_alpha(image):
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


def _learned_cut_out(image: Image.Image, segmenter) -> Image.Image:
    """RGBA from the model's alpha, refined at the edge (see the module docstring)."""
    import cv2

    rgb = np.asarray(image.convert("RGB"), np.float32)
    h, w = rgb.shape[:2]
    # 1. the model's foreground probability
    alpha = segmenter.alpha(image)

    # 2. exact 0 and 1 for the sigmoid's tails; islands of figure smaller than a speck dropped,
    #    with the soft edge around them
    alpha = np.where(alpha < LEARNED_CLEAR, 0.0, np.where(alpha > LEARNED_SOLID, 1.0, alpha))
    kept = _drop_small(alpha >= 0.5, _island_floor(alpha >= 0.5, h * w))
    near_kept = cv2.dilate(kept.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    alpha = np.where(near_kept, alpha, 0.0).astype(np.float32)
    if h < 8 or w < 8:  # too small for a backdrop model: the alpha alone
        out = np.concatenate([rgb, alpha[..., None] * 255.0], axis=2)
        return Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8), "RGBA")

    # 3. edge colours without the backdrop, solved with the coverage the colours show where they
    #    can tell figure from backdrop, with the model's alpha elsewhere; alpha stays the model's
    colour = rgb.copy()
    ys, xs = np.nonzero((alpha > 0) & (alpha < 1))
    if len(ys):
        near_fg, has_fg = _near_figure_colour(rgb, alpha >= 1.0)
        pixel, backdrop, figure = rgb[ys, xs], _backdrop_at(rgb, ys, xs), near_fg[ys, xs]
        proj, telling = _projection(pixel, backdrop, figure, has_fg[ys, xs], _BAND_HIGH)
        coverage = np.where(telling, proj, alpha[ys, xs])
        colour[ys, xs] = _decontaminate(pixel, backdrop, coverage, figure, has_fg[ys, xs])
    out = np.concatenate([colour, alpha[..., None] * 255.0], axis=2)
    return Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8), "RGBA")


def _island_floor(mask: np.ndarray, pixels: int) -> int:
    """Smallest island of figure worth keeping: the colour key's speck size, or 1 % of the
    largest island (a speck of dirt next to a figure; a part of an accessory is bigger)."""
    import cv2

    n, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    largest = int(stats[1:, cv2.CC_STAT_AREA].max()) if n > 1 else 0
    return max(16, int(pixels * 0.0004), largest // 100)


def _backdrop_field(rgb: np.ndarray) -> tuple[np.ndarray, float]:
    """Fit each channel over the border pixels with a quadratic in (x, y); return the field
    and the residual noise (robust, in 0-255 units)."""
    h, w = rgb.shape[:2]
    coef, noise = _backdrop_fit(rgb)
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    gx, gy = gx / w - 0.5, gy / h - 0.5
    full = np.stack([np.ones_like(gx), gx, gy, gx * gy, gx * gx, gy * gy], axis=2) @ coef
    return full.astype(np.float32), noise


def _backdrop_at(rgb: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """The backdrop field of _backdrop_field at the pixels (ys, xs) only: (n, 3) float32."""
    h, w = rgb.shape[:2]
    coef, _ = _backdrop_fit(rgb)
    gx, gy = xs.astype(np.float32) / w - 0.5, ys.astype(np.float32) / h - 0.5
    return (np.stack([np.ones_like(gx), gx, gy, gx * gy, gx * gx, gy * gy], axis=1) @ coef).astype(np.float32)


def _backdrop_fit(rgb: np.ndarray) -> tuple[np.ndarray, float]:
    """The quadratic's (6, 3) coefficients over the border pixels, and the residual noise."""
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
    return coef, noise


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

    near_fg, has_fg = _near_figure_colour(rgb, sure_fg)

    # Alpha by projection onto backdrop -> figure colour; a plain distance ramp where the figure
    # colour is unknown or too close to the backdrop to tell apart.
    proj, telling = _projection(rgb, backdrop, near_fg, has_fg, high)
    ramp = np.clip((dist - low) / (high - low), 0, 1)
    alpha = np.where(telling, proj, ramp)
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

    band_colour = _decontaminate(rgb, backdrop, alpha, near_fg, has_fg)
    colour = np.where((sure_fg | interior | (alpha <= 0))[..., None], rgb, band_colour)
    return alpha.astype(np.float32), colour.astype(np.float32)


def _near_figure_colour(rgb: np.ndarray, sure_fg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Figure colour near each pixel (a normalised blur of the sure-figure colours), and where
    there is any figure near enough to tell."""
    import cv2

    fg = sure_fg.astype(np.float32)
    k = max(3.0, rgb.shape[0] / 256.0)
    weight = cv2.GaussianBlur(fg, (0, 0), k)
    near_fg = cv2.GaussianBlur(rgb * fg[..., None], (0, 0), k) / np.maximum(weight, 1e-4)[..., None]
    return near_fg, weight > 1e-3


def _projection(rgb, backdrop, near_fg, has_fg, high) -> tuple[np.ndarray, np.ndarray]:
    """Alpha from I = a*F + (1-a)*B, projected onto the line from backdrop to figure colour, and
    where that is trustworthy (the figure colour is known and far enough from the backdrop)."""
    fb = near_fg - backdrop
    fb2 = (fb * fb).sum(axis=-1)
    proj = ((rgb - backdrop) * fb).sum(axis=-1) / np.maximum(fb2, 1e-3)
    return np.clip(proj, 0, 1), has_fg & (fb2 > (high * 0.8) ** 2)


def _decontaminate(rgb, backdrop, alpha, near_fg, has_fg) -> np.ndarray:
    """Edge colours without the backdrop: solve F = B + (I - B) / alpha where alpha is large
    enough to trust, take the nearby figure colour where it is not."""
    solved = backdrop + (rgb - backdrop) / np.maximum(alpha, 1e-3)[..., None]
    solved = np.clip(solved, 0, 255)
    trust = np.clip((alpha - 0.35) / 0.4, 0, 1)[..., None]
    return np.where(has_fg[..., None], solved * trust + near_fg * (1 - trust), solved)
