"""Relief: the figure's outline at print scale (thin limbs thickened) and its thickness front and back.

    from PIL import Image
    from figurine.print3d.relief import outline_at_scale, thickness
    rgba = Image.open("ada.run/figure-0-matte.png")
    shape = outline_at_scale(rgba, figure_height_mm=94.0, min_wall_mm=1.6)
    print(shape.rows, shape.cols, shape.step_mm, shape.thickened)   # which parts were widened
    front, back = thickness(shape, disparity=None, min_wall_mm=1.6)  # mm, one value per grid cell

Everything here is a raster on a square grid of `step_mm` cells (0.2 mm for figures up to 160 mm),
row 0 at the top of the figure, so morphology happens at print scale:

1. Mask: alpha >= 128; the largest connected piece is the figure, other pieces cannot be fused to
   the base and are dropped (and counted). Cropped to the figure and resampled to the grid.
2. Feet: every column that has figure in the bottom 4 % of the height is filled down to the bottom
   row, so the figure meets the base plate along a flat footprint, not on a few pixel tips.
   A limb narrower than a grid cell is kept by drawing the picture's medial axis (skeleton) in.
3. Thin parts: a part is thinner than the minimum wall where a disc of that diameter does not fit
   (morphological opening). Along the medial axis (skeleton) of those parts a disc of the minimum
   diameter is drawn (dilation), so every limb becomes at least that wide. Each widened part is
   reported with where it is and how wide it was; holes smaller than a wall are filled.
4. Thickness: a weight-free "inflation" gives every part a rounded cross-section: at distance d
   from the edge of a part whose half-width is w (the distance at its nearest skeleton point),
   the surface rises sqrt(w^2 - (w - d)^2), flattened to 75 % and capped, on top of a rim of at
   least the minimum wall. With a depth map (disparity: larger is nearer), the front blends half
   of that with the depth's own relief (its overall tilt removed), faded in from the edge.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from figurine.errors import InputError

ALPHA_SOLID = 128
MAX_GRID_ROWS = 800  # the grid gets coarser than 0.2 mm only for figures over 160 mm
MIN_STEP_MM = 0.2
FOOT_BAND = 0.04  # bottom share of the height whose columns are filled down to the base
PILLOW_RATIO = 0.75  # rounded cross-section, slightly flattened front to back
CAP_RATIO = 0.12  # half-thickness at most this share of the figure's height
SMOOTH_MM = 0.8


@dataclass
class Outline:
    """The figure's silhouette on the print grid (row 0 = top), and what was changed to print it."""

    mask: np.ndarray  # bool (rows, cols)
    step_mm: float
    source_box: tuple[int, int, int, int]  # x0, y0, x1, y1 of the figure in the source picture
    picture_cols: tuple[int, int]  # first grid column and number of columns the picture spans
    thickened: list[dict] = field(default_factory=list)  # widened parts: x_mm, z_mm, was_mm, length_mm
    dropped_pieces: int = 0
    filled_holes: int = 0

    @property
    def rows(self) -> int:
        return self.mask.shape[0]

    @property
    def cols(self) -> int:
        return self.mask.shape[1]

    @property
    def height_mm(self) -> float:
        return self.rows * self.step_mm

    @property
    def width_mm(self) -> float:
        return self.cols * self.step_mm


def solid_mask(rgba) -> np.ndarray:
    """Alpha >= 128 as a bool array; InputError when nothing is opaque."""
    alpha = np.asarray(rgba.getchannel("A")) if rgba.mode == "RGBA" else None
    if alpha is None:
        raise InputError("the figure picture has no alpha channel (expected a cut-out)")
    mask = alpha >= ALPHA_SOLID
    if mask.sum() < 16:
        raise InputError("the figure picture is empty: no opaque pixels to make a model from")
    return mask


def outline_at_scale(rgba, figure_height_mm: float, min_wall_mm: float) -> Outline:
    """Steps 1-3 of the module docstring."""
    import cv2

    # 1. The largest piece, cropped, on the print grid.
    mask = solid_mask(rgba)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    big_area = stats[biggest, cv2.CC_STAT_AREA]
    dropped = sum(1 for i in range(1, count) if i != biggest and stats[i, cv2.CC_STAT_AREA] >= 0.002 * big_area)
    mask = labels == biggest
    ys, xs = np.nonzero(mask)
    x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
    crop = mask[y0:y1, x0:x1].astype(np.float32)
    step = max(MIN_STEP_MM, figure_height_mm / MAX_GRID_ROWS)
    rows = max(8, int(round(figure_height_mm / step)))
    step = figure_height_mm / rows  # exact height
    cols = max(1, int(round(crop.shape[1] * rows / crop.shape[0])))
    if rows < crop.shape[0]:
        from skimage.morphology import skeletonize

        grid = cv2.resize(crop, (cols, rows), interpolation=cv2.INTER_AREA) >= 0.5
        # A limb narrower than a grid cell would vanish in the averaging; its medial axis keeps it.
        axis = skeletonize(crop > 0.5).astype(np.float32)
        grid |= cv2.resize(axis, (cols, rows), interpolation=cv2.INTER_AREA) > 0
    else:
        grid = cv2.resize(crop, (cols, rows), interpolation=cv2.INTER_LINEAR) >= 0.5
    # Margin for the dilation below; trimmed again at the end (never above the top or below the feet).
    pad = int(np.ceil(min_wall_mm / step)) + 2
    grid = np.pad(grid, ((0, 0), (pad, pad)))

    # 2. Feet down to the base.
    band = max(1, int(round(rows * FOOT_BAND)))
    for c in np.nonzero(grid[rows - band:].any(axis=0))[0]:
        top = rows - band + int(np.argmax(grid[rows - band:, c]))
        grid[top:, c] = True

    # 3. Thin parts widened along their medial axis; holes too small to print filled.
    thick, thickened = widen_thin_parts(grid, step, min_wall_mm)
    thick, filled = fill_small_holes(thick, (2 * min_wall_mm / step) ** 2)
    keep_cols = np.nonzero(thick.any(axis=0))[0]
    thick = thick[:, keep_cols.min():keep_cols.max() + 1]
    centre = thick.shape[1] * step / 2
    for part in thickened:  # x: mm right of the figure's centre line, as seen from the front
        part["x_mm"] = round(float(part["x_mm"] - keep_cols.min() * step - centre), 1)
    return Outline(thick, step, (x0, y0, x1, y1), (pad - int(keep_cols.min()), cols), thickened, dropped, filled)


def widen_thin_parts(mask: np.ndarray, step: float, min_wall_mm: float) -> tuple[np.ndarray, list[dict]]:
    """Draw a disc of the minimum wall's diameter along the skeleton wherever the mask is thinner."""
    import cv2
    from scipy import ndimage
    from skimage.morphology import skeletonize

    r = min_wall_mm / 2 / step  # disc radius in cells
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * int(np.ceil(r)) + 1,) * 2)
    u8 = mask.astype(np.uint8)
    opened = cv2.morphologyEx(u8, cv2.MORPH_OPEN, disc).astype(bool)
    thin = mask & ~opened
    skeleton = skeletonize(mask)
    seeds = (skeleton & thin).astype(np.uint8)
    wide = mask | cv2.dilate(seeds, disc).astype(bool)
    added = wide & ~mask

    # Which parts changed, for the report: each widened limb (its old pixels and the added ones)
    # at least one wall long; smaller pieces are rounded corners.
    dist = ndimage.distance_transform_edt(mask) * step
    region = (added | thin).astype(np.uint8)
    count, labels, stats, centroids = cv2.connectedComponentsWithStats(region, connectivity=8)
    parts = []
    for i in range(1, count):
        length = max(stats[i, cv2.CC_STAT_WIDTH], stats[i, cv2.CC_STAT_HEIGHT]) * step
        axis = (labels == i) & seeds.astype(bool)
        if length < 2 * min_wall_mm or not axis.any() or not (added & (labels == i)).any():
            continue
        cx, cy = centroids[i]
        parts.append({"x_mm": float(cx * step), "z_mm": round(float((mask.shape[0] - cy) * step), 1),
                      # The distance to the nearest outside cell overshoots a width by one cell.
                      "was_mm": round(max(2 * float(np.median(dist[axis])) - step, step), 2),
                      "length_mm": round(float(length), 1)})
    return wide, parts


def fill_small_holes(mask: np.ndarray, max_area_cells: float) -> tuple[np.ndarray, int]:
    """Fill enclosed background pieces smaller than max_area_cells (a nozzle cannot draw them)."""
    import cv2

    inv = (~mask).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(inv, connectivity=4)
    out = mask.copy()
    filled = 0
    h, w = mask.shape
    for i in range(1, count):
        x, y, bw, bh, area = stats[i]
        touches_edge = x == 0 or y == 0 or x + bw == w or y + bh == h
        if not touches_edge and area < max_area_cells:
            out[labels == i] = True
            filled += 1
    return out, filled


def thickness(shape: Outline, disparity: np.ndarray | None, min_wall_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Half-thickness in front of and behind the figure's mid-plane, in mm, per grid cell (step 4).

    `disparity` is the depth model's output over the whole picture (larger = nearer)."""
    import cv2
    from scipy import ndimage
    from skimage.morphology import skeletonize

    mask, step = shape.mask, shape.step_mm
    rim = max(min_wall_mm, 2.0) / 2
    dist = ndimage.distance_transform_edt(mask) * step
    skeleton = skeletonize(mask)
    _, (iy, ix) = ndimage.distance_transform_edt(~skeleton, return_indices=True)
    half_width = dist[iy, ix]  # each cell takes the half-width of its nearest medial-axis point
    d = np.minimum(dist, half_width)
    pillow = np.sqrt(np.clip(half_width ** 2 - (half_width - d) ** 2, 0, None)) * PILLOW_RATIO
    pillow = np.minimum(pillow, CAP_RATIO * shape.height_mm)
    sigma = SMOOTH_MM / step
    pillow = cv2.GaussianBlur(pillow.astype(np.float32), (0, 0), sigma) * mask

    back = rim + pillow
    front = rim + pillow
    if disparity is not None:
        relief = depth_relief(disparity, shape)  # 0..1 inside the outline
        fade = np.clip(dist / 3.0, 0, 1)  # from the rim's edge over 3 mm
        amplitude = max(float(pillow.max()), rim)
        detail = cv2.GaussianBlur((relief * fade).astype(np.float32), (0, 0), sigma)
        front = rim + 0.5 * pillow + amplitude * detail * mask
    return front.astype(np.float32), back.astype(np.float32)


def depth_relief(disparity: np.ndarray, shape: Outline) -> np.ndarray:
    """The picture's depth map on the print grid, its best-fit plane (camera tilt) removed, scaled
    to 0..1 over the figure by its 2nd and 98th percentiles; zeros where it is flat."""
    import cv2

    x0, y0, x1, y1 = shape.source_box
    col0, ncols = shape.picture_cols
    crop = np.nan_to_num(disparity[y0:y1, x0:x1].astype(np.float32))
    small = cv2.resize(crop, (ncols, shape.rows), interpolation=cv2.INTER_AREA)
    disp = np.zeros(shape.mask.shape, np.float32)
    lo_c, hi_c = max(0, col0), min(shape.cols, col0 + ncols)
    disp[:, lo_c:hi_c] = small[:, lo_c - col0:hi_c - col0]
    mask = shape.mask
    ys, xs = np.nonzero(mask)
    values = disp[ys, xs].astype(np.float64)
    design = np.column_stack([xs, ys, np.ones_like(xs)]).astype(np.float64)
    coef, *_ = np.linalg.lstsq(design, values, rcond=None)
    values = values - design @ coef
    lo, hi = np.percentile(values, [2, 98])
    out = np.zeros(mask.shape, np.float32)
    if not np.isfinite(hi - lo) or hi - lo <= 1e-6 * max(1.0, abs(float(coef[2]))):
        return out
    out[ys, xs] = np.clip((values - lo) / (hi - lo), 0, 1)
    return out
