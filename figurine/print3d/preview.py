"""Preview: a lit three-quarter view of the model as a PNG picture, drawn on the CPU.

    from figurine.print3d.preview import render
    image = render(model, size=800)            # model: a mesh.Model (see mesh.py); PIL RGB image
    image.save("ada-preview.png")

No GPU, no display and no OpenGL: the triangles are drawn with OpenCV, farthest first
(painter's algorithm), which is exact for one closed body seen from outside once the faces
turned away are dropped (back-face culling) and close enough where the figure overlaps itself;
large flat triangles (the base's top) are first split into small ones (trimesh's
subdivide_to_size) so that sorting by their centres stays right next to the engraved name.

1. View: the model turned 35 degrees about its vertical axis and looked at from 22 degrees above
   (orthographic), fitted to the picture with a margin.
2. Shading per triangle: its colour times ambient + diffuse light from the upper left, plus a
   small glossy highlight (Blinn-Phong), like moulded plastic.
3. Drawn at twice the size and reduced (antialiasing) on a soft grey backdrop.
"""

from __future__ import annotations

import numpy as np

YAW_DEG = -35.0
PITCH_DEG = 22.0
SUPERSAMPLE = 2


def _view_matrix(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    yaw, pitch = np.radians(yaw_deg), np.radians(pitch_deg)
    rz = np.array([[np.cos(yaw), -np.sin(yaw), 0], [np.sin(yaw), np.cos(yaw), 0], [0, 0, 1]])
    # Camera looks along +Y (the model's front faces -Y); tilt it to look down a little.
    rx = np.array([[1, 0, 0], [0, np.cos(pitch), -np.sin(pitch)], [0, np.sin(pitch), np.cos(pitch)]])
    return rx @ rz


def render(model, size: int = 800, yaw_deg: float = YAW_DEG, pitch_deg: float = PITCH_DEG):
    """The model's preview picture (PIL RGB, size x size)."""
    import cv2
    from PIL import Image
    from trimesh.remesh import subdivide_to_size

    # 1. View space: x right, y depth (away from the camera), z up.
    verts, faces, colour = model.vertices, model.faces, model.colour
    limit = float(np.ptp(verts, axis=0).max()) / 40
    tri = verts[faces]
    longest = np.linalg.norm(tri - np.roll(tri, 1, axis=1), axis=2).max(axis=1)
    large = longest > limit
    if large.any():  # only those are split (cracks between them and the rest do not show)
        sv, sf, index = subdivide_to_size(verts, faces[large], limit / 2, return_index=True)
        verts = sv
        faces = np.concatenate([faces[~large], sf])
        colour = np.concatenate([colour[~large], colour[large][index]])
    v = verts @ _view_matrix(yaw_deg, pitch_deg).T
    tri = v[faces]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
    facing = normal[:, 1] < 0  # towards the camera (which looks along +y)
    tri, normal, colour = tri[facing], normal[facing], colour[facing]

    # 2. Shading.
    light = np.array([-0.5, -0.6, 0.62])
    light /= np.linalg.norm(light)
    view = np.array([0.0, -1.0, 0.0])
    half = (light + view) / np.linalg.norm(light + view)
    diffuse = np.clip(normal @ light, 0, 1)
    gloss = np.clip(normal @ half, 0, 1) ** 40
    base = np.asarray(model.palette, np.float64)[colour]
    rgb = base * (0.38 + 0.62 * diffuse[:, None]) + 255 * 0.25 * gloss[:, None]
    rgb = np.clip(rgb, 0, 255).astype(np.uint8)

    # 3. Draw, farthest first.
    big = size * SUPERSAMPLE
    lo = v[:, [0, 2]].min(axis=0)
    hi = v[:, [0, 2]].max(axis=0)
    scale = 0.84 * big / float(max(hi - lo))
    centre = (lo + hi) / 2
    px = np.empty((len(tri), 3, 2), np.float64)
    px[..., 0] = (tri[..., 0] - centre[0]) * scale + big / 2
    px[..., 1] = big / 2 - (tri[..., 2] - centre[1]) * scale
    pts = np.round(px * 16).astype(np.int32)  # 4 fractional bits for cv2's subpixel drawing
    canvas = _backdrop(big)
    order = np.argsort(-tri[..., 1].mean(axis=1))
    for i in order:
        cv2.fillConvexPoly(canvas, pts[i], rgb[i].tolist(), lineType=cv2.LINE_8, shift=4)
    small = cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA)
    return Image.fromarray(small, "RGB")


def _backdrop(n: int) -> np.ndarray:
    """A soft vertical grey gradient, lighter at the top."""
    t = np.linspace(0, 1, n, dtype=np.float32)[:, None, None]
    top, bottom = np.array([238, 238, 240], np.float32), np.array([196, 198, 204], np.float32)
    return np.ascontiguousarray(np.broadcast_to(top * (1 - t) + bottom * t, (n, n, 3)).astype(np.uint8))
