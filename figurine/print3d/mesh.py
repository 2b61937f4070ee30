"""Mesh: the relief as one closed solid, fused to a base plate with the name engraved, painted.

    from PIL import Image
    from figurine.print3d import mesh, relief
    rgba = Image.open("ada.run/figure-0-matte.png").convert("RGBA")
    lay = mesh.layout(100.0)                                   # base and figure heights for 100 mm
    shape = relief.outline_at_scale(rgba, lay.figure_mm, min_wall_mm=1.6)
    front, back = relief.thickness(shape, None, 1.6)
    model = mesh.build(shape, front, back, rgba, lay, text="Ada", colours=4)
    print(model.info["height_mm"], len(model.faces), model.palette)

All solid modelling is done by manifold3d, whose booleans always return a closed, consistently
wound 2-manifold. Coordinates are millimetres: Z up, the figure faces -Y (towards the viewer),
the bottom of the base is at z = 0.

1. Layout: the base plate is 6 % of the height (3-8 mm); the figure sinks 0.94 mm into it, so
   figure + base - overlap is exactly the requested height.
2. Figure: the outline's contours (marching squares on the print grid) become a CrossSection,
   extruded, refined to edges of at most 0.5 mm and warped so that each point of the front and
   back faces moves to the relief's thickness there (bilinear on the grid). Points only move
   front-to-back, so the solid cannot intersect itself. Rotated upright.
3. Base: a rounded rectangle under the whole figure, deep enough to stand (at least 35 % of the
   height) with a strip in front for the name.
4. Name: outlines of the package's typeface (Noto Sans Display, via matplotlib's TextPath),
   emboldened, engraved 0.8 mm into the top of the base along its front edge, reading from the
   front; shrunk to fit, and the base widened if even 3 mm letters do not fit.
5. Union figure + base, minus the name; one body is checked for.
6. Paint: the figure's colours reduced to `colours` (median cut); each figure triangle takes the
   colour under its centre, the base the darkest, the engraved name the lightest colour.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from figurine.errors import InputError

EDGE_MM = 0.5  # longest triangle edge on the figure's faces
ENGRAVE_MM = 0.8
MIN_LETTER_MM = 3.0
MAX_TEXT_CHARS = 40


@dataclass
class Layout:
    height_mm: float  # the whole model, base included
    base_mm: float
    embed_mm: float  # how far the figure sinks into the base

    @property
    def figure_mm(self) -> float:
        return self.height_mm - self.base_mm + self.embed_mm


def layout(height_mm: float) -> Layout:
    base = float(np.clip(0.06 * height_mm, 3.0, 8.0))
    # Sunk a little under 1 mm, by an amount that is no round number: the base's top plane then
    # never passes exactly through a row of the figure's vertices (those sit on a 0.2 mm grid),
    # which would leave zero-area slivers in the union.
    return Layout(height_mm, base, min(0.937, base / 3.1))


@dataclass
class Model:
    """A printable model: one closed triangle mesh with a colour per triangle."""

    vertices: np.ndarray  # float64 (N, 3), mm
    faces: np.ndarray  # int64 (M, 3), counter-clockwise seen from outside
    colour: np.ndarray  # uint8 (M,), index into palette
    palette: list[tuple[int, int, int]]
    names: list[str]  # one per palette entry ("figure 1", "base", ...)
    info: dict = field(default_factory=dict)


def check_text(text: str) -> str:
    """The base text: printable, at most 40 characters, every glyph in the typeface."""
    from figurine.packaging.fonts import missing_glyphs

    text = " ".join(text.split())
    if len(text) > MAX_TEXT_CHARS:
        raise InputError(f"base text is {len(text)} characters; at most {MAX_TEXT_CHARS} fit on the base")
    if any(not ch.isprintable() for ch in text):
        raise InputError("base text has control characters")
    missing = missing_glyphs(text) if text else []
    if missing:
        raise InputError(f"base text: the typeface has no glyph for {' '.join(missing)}")
    return text


def build(shape, front: np.ndarray, back: np.ndarray, rgba, lay: Layout, text: str = "",
          colours: int = 4) -> Model:
    """Steps 1-6 of the module docstring."""
    import manifold3d as m3d

    # 2. The figure, upright, its feet `embed` below the base's top.
    figure = figure_solid(shape, front, back).translate((0.0, 0.0, lay.base_mm - lay.embed_mm)).as_original()
    box = [float(v) for v in figure.bounding_box()]
    fmin, fmax = box[:3], box[3:]

    # 3 and 4. Base plate sized to the figure and the name.
    margin = max(3.0, 0.04 * lay.height_mm)
    letters = float(np.clip(0.06 * lay.height_mm, MIN_LETTER_MM, 12.0))
    glyphs = text_outline(text) if text else None
    width = fmax[0] - fmin[0] + 2 * margin
    if glyphs is not None:
        natural = glyphs.bounds()  # (xmin, ymin, xmax, ymax) at cap height 1
        text_w = float(natural[2] - natural[0])
        letters = float(np.clip((width - 2 * margin) / text_w, MIN_LETTER_MM, letters))
        width = max(width, letters * text_w + 2 * margin)
    strip = 1.8 * letters if glyphs is not None else 0.0
    depth = max(fmax[1] - fmin[1] + 2 * margin + strip, 0.35 * lay.height_mm)
    y_back = fmax[1] + margin
    y_front = y_back - depth
    x_mid = (fmin[0] + fmax[0]) / 2
    corner = min(4.0, 0.2 * depth, 0.2 * width)
    plate = m3d.CrossSection.square((width - 2 * corner, depth - 2 * corner)).offset(corner, m3d.JoinType.Round)
    plate = plate.translate((x_mid - width / 2 + corner, y_front + corner))
    engraving = None
    if glyphs is not None:
        g = glyphs.scale((letters, letters))
        gb = g.bounds()
        strip_mid = y_front + max(strip, letters * 1.4) / 2 + margin * 0.25
        g = g.translate((x_mid - (gb[0] + gb[2]) / 2, strip_mid - letters / 2))
        engrave = min(ENGRAVE_MM, lay.base_mm / 3)
        engraving = m3d.Manifold.extrude(g, engrave + 1.0).translate((0, 0, lay.base_mm - engrave)).as_original()

    # 5. One body, simplified where flat to within 0.01 mm. Should the base's top pass exactly
    # through vertices of the figure anyway (zero-area slivers), it is raised by a few microns.
    for nudge in (0.0, 0.0113, 0.0231):
        base = m3d.Manifold.extrude(plate, lay.base_mm + nudge).as_original()
        body = m3d.Manifold.batch_boolean([figure, base], m3d.OpType.Add)
        if engraving is not None:
            body = body - engraving
        if body.status() != m3d.Error.NoError or body.is_empty():
            raise RuntimeError(f"mesh boolean failed: {body.status()}")
        body = body.simplify(0.01)
        out = body.to_mesh()
        vertices = np.asarray(out.vert_properties[:, :3], np.float64)
        faces = np.asarray(out.tri_verts, np.int64)
        tri = vertices[faces]
        if np.linalg.norm(tri - np.roll(tri, 1, axis=1), axis=2).min() > 1e-5:
            break
    pieces = body.decompose()
    if len(pieces) != 1:  # cannot happen with the figure sunk into the base; kept as a guard
        raise RuntimeError(f"the model fell apart into {len(pieces)} pieces")

    # 6. Colours.
    owner = np.zeros(len(faces), np.int64)
    runs = np.asarray(out.run_index, np.int64) // 3
    for i, oid in enumerate(out.run_original_id):
        owner[runs[i]:runs[i + 1]] = oid
    palette, cells = figure_palette(rgba, shape, colours)
    dark = int(np.argmin([sum(c) for c in palette]))
    light = int(np.argmax([sum(c) for c in palette]))
    colour = np.full(len(faces), dark, np.uint8)
    on_figure = owner == figure.original_id()
    centres = vertices[faces[on_figure]].mean(axis=1)
    r = np.clip(np.round(shape.rows - 0.5 - (centres[:, 2] - (lay.base_mm - lay.embed_mm)) / shape.step_mm), 0, shape.rows - 1)
    c = np.clip(np.round((centres[:, 0] + shape.width_mm / 2) / shape.step_mm - 0.5), 0, shape.cols - 1)
    colour[on_figure] = cells[r.astype(int), c.astype(int)]
    if engraving is not None:
        colour[owner == engraving.original_id()] = light
    names = [f"figure colour {i + 1}" for i in range(len(palette))]

    bounds = np.concatenate([vertices.min(axis=0), vertices.max(axis=0)])
    info = {
        "height_mm": round(float(bounds[5] - bounds[2]), 3),
        "size_mm": [round(float(v), 2) for v in bounds[3:] - bounds[:3]],
        "base": {"width_mm": round(width, 2), "depth_mm": round(depth, 2), "thickness_mm": round(lay.base_mm, 2),
                 "footprint": [round(x_mid - width / 2, 3), round(y_front, 3), round(x_mid + width / 2, 3), round(y_back, 3)],
                 "corner_mm": round(corner, 2)},
        "text": {"text": text, "letter_mm": round(letters, 2) if glyphs is not None else None,
                 "engraved_mm": round(min(ENGRAVE_MM, lay.base_mm / 3), 2) if glyphs is not None else None},
        "volume_cm3": round(body.volume() / 1000, 3),
        "triangles": int(len(faces)),
        "colour_roles": {"base": dark, "text": light if glyphs is not None else None},
    }
    return Model(vertices, faces, colour, palette, names, info)


def figure_solid(shape, front: np.ndarray, back: np.ndarray):
    """Step 2: the warped extrusion, upright, x centred, feet at z = 0, front towards -Y."""
    import manifold3d as m3d
    from scipy import ndimage
    from skimage import measure

    padded = np.pad(shape.mask.astype(np.float32), 1)
    step, rows, half_w = shape.step_mm, shape.rows, shape.width_mm / 2
    contours = []
    for c in measure.find_contours(padded, 0.5):
        if len(c) < 4:
            continue
        r, col = c[:, 0] - 1, c[:, 1] - 1
        contours.append(np.column_stack([(col + 0.5) * step - half_w, (rows - 0.5 - r) * step]))
    section = m3d.CrossSection(contours, m3d.FillRule.EvenOdd).simplify(step * 0.25)
    if section.is_empty():
        raise InputError("the figure's outline is empty at this size")
    solid = m3d.Manifold.extrude(section, 2.0).refine_to_length(EDGE_MM)

    def warp(p: np.ndarray) -> np.ndarray:
        rr = rows - 0.5 - p[:, 1] / step
        cc = (p[:, 0] + half_w) / step - 0.5
        f = ndimage.map_coordinates(front, [rr, cc], order=1, mode="nearest")
        b = ndimage.map_coordinates(back, [rr, cc], order=1, mode="nearest")
        q = p.copy()
        q[:, 2] = -b + (f + b) * (p[:, 2] / 2.0)
        return q

    return solid.warp_batch(warp).rotate((90.0, 0.0, 0.0))  # (x, z_img, depth) -> (x, -depth, z_img)


def text_outline(text: str):
    """The text's glyph outlines in the package typeface as a CrossSection, cap height 1."""
    import manifold3d as m3d
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextPath

    from figurine.packaging.fonts import font_file

    prop = FontProperties(fname=str(font_file()))
    cap = TextPath((0, 0), "H", size=100, prop=prop).get_extents().height / 100
    path = TextPath((0, 0), text, size=1.0 / cap, prop=prop)
    polys = [np.asarray(p, np.float64) for p in path.to_polygons(closed_only=True) if len(p) >= 3]
    if not polys:
        return None
    return m3d.CrossSection(polys, m3d.FillRule.EvenOdd).offset(0.05, m3d.JoinType.Round)


def figure_palette(rgba, shape, colours: int) -> tuple[list[tuple[int, int, int]], np.ndarray]:
    """The figure's colours reduced to `colours` and a palette index per grid cell (cells outside
    the original outline take the nearest inside colour)."""
    import cv2
    from PIL import Image
    from scipy import ndimage

    x0, y0, x1, y1 = shape.source_box
    arr = np.asarray(rgba.convert("RGBA"), np.float32)[y0:y1, x0:x1]
    alpha = arr[..., 3:] / 255.0
    premult = np.concatenate([arr[..., :3] * alpha, alpha], axis=-1)
    col0, ncols = shape.picture_cols
    small = cv2.resize(premult, (ncols, shape.rows), interpolation=cv2.INTER_AREA)
    inside = small[..., 3] > 0.5
    if not inside.any():
        inside[:] = True
    rgb = np.where(inside[..., None], small[..., :3] / np.maximum(small[..., 3:], 1e-6), 0)
    # On the print grid (the outline was padded, widened and trimmed); every cell takes the
    # colour of the nearest cell inside the picture's own outline.
    grid = np.zeros((shape.rows, shape.cols, 3), np.float32)
    known = np.zeros((shape.rows, shape.cols), bool)
    lo, hi = max(0, col0), min(shape.cols, col0 + ncols)
    grid[:, lo:hi] = rgb[:, lo - col0:hi - col0]
    known[:, lo:hi] = inside[:, lo - col0:hi - col0]
    _, (iy, ix) = ndimage.distance_transform_edt(~known, return_indices=True)
    grid = grid[iy, ix]
    pixels = np.clip(grid[shape.mask], 0, 255).astype(np.uint8)
    colours = max(1, min(int(colours), 8))
    strip = Image.fromarray(pixels.reshape(1, -1, 3), "RGB")
    quant = strip.quantize(colors=colours, method=Image.Quantize.MEDIANCUT)
    pal = np.asarray(quant.getpalette()[:3 * colours], np.int64).reshape(-1, 3)
    used = sorted(set(np.asarray(quant).ravel().tolist()))
    palette = [tuple(int(v) for v in pal[i]) for i in used]
    flat = grid.reshape(-1, 3)
    d = ((flat[:, None, :] - np.asarray(palette, np.float32)[None]) ** 2).sum(-1)
    cells = np.argmin(d, axis=1).reshape(shape.rows, shape.cols)
    # Majority vote over about 1.2 mm: specks smaller than a nozzle's line become their surroundings.
    k = max(3, int(round(1.2 / shape.step_mm)) | 1)
    votes = np.stack([cv2.blur((cells == i).astype(np.float32), (k, k)) for i in range(len(palette))])
    return palette, np.argmax(votes, axis=0).astype(np.uint8)


def check_printable(model: Model, height_mm: float, min_wall_mm: float) -> dict:
    """Measure what "printable by construction" promises, with trimesh as an independent reader:
    one closed, consistently wound body with positive volume, the requested height (within
    0.5 mm), a flat bottom, and the centre of mass over the base. RuntimeError if any fails
    (that would be a bug here, not a user mistake)."""
    import trimesh

    tm = trimesh.Trimesh(model.vertices, model.faces, process=True)
    bodies = len(tm.split(only_watertight=False))
    com = tm.center_mass if tm.is_volume else tm.centroid
    x0, y0, x1, y1 = model.info["base"]["footprint"]
    r = model.info["base"]["corner_mm"]
    cx, cy = float(np.clip(com[0], x0 + r, x1 - r)), float(np.clip(com[1], y0 + r, y1 - r))
    over_base = bool(x0 <= com[0] <= x1 and y0 <= com[1] <= y1 and np.hypot(com[0] - cx, com[1] - cy) <= r)
    bottom = tm.faces[np.all(np.abs(tm.vertices[tm.faces][:, :, 2] - tm.bounds[0][2]) < 1e-6, axis=1)]
    bottom_area = float(trimesh.triangles.area(tm.vertices[bottom]).sum()) if len(bottom) else 0.0
    base_area = (x1 - x0) * (y1 - y0) - (4 - np.pi) * r * r
    checks = {
        "watertight": bool(tm.is_watertight), "winding_consistent": bool(tm.is_winding_consistent),
        "bodies": bodies, "volume_mm3": round(float(tm.volume), 1),
        "height_mm": round(float(tm.extents[2]), 3), "height_error_mm": round(abs(float(tm.extents[2]) - height_mm), 3),
        "flat_bottom": bool(abs(bottom_area - base_area) < 0.01 * base_area),
        "centre_of_mass": [round(float(v), 2) for v in com], "centre_of_mass_over_base": over_base,
        "min_wall_mm": min_wall_mm,
    }
    failed = [k for k, ok in (("watertight", checks["watertight"]), ("winding", checks["winding_consistent"]),
                              ("one body", bodies == 1), ("volume", checks["volume_mm3"] > 0),
                              ("height", checks["height_error_mm"] <= 0.5), ("flat bottom", checks["flat_bottom"]),
                              ("balance", over_base)) if not ok]
    if failed:
        raise RuntimeError(f"the model failed its printability checks: {', '.join(failed)} ({checks})")
    return checks
