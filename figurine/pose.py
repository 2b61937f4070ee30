"""Pose stage: OpenPose-18 keypoints -> the ControlNet control image.

    from figurine.pose import head_box, load_preset, render_pose
    pose = load_preset("hero")
    render_pose(pose, 832, 1216, limb_width=24).save("hero.png")
    head_box(pose, 832, 1216)          # where the face lands: the detail pass's fallback box

A pose is 18 body keypoints in the COCO order OpenPose uses (nose, neck, right arm, left arm,
right leg, left leg, eyes, ears), each an (x, y) pair normalised to [0, 1] over a frame of
width/height ratio `aspect`, or None where the point is hidden. "Right" is the person's right,
which is the image's left for a figure facing the camera.

Built-in presets live in configs/poses/<name>.json:

    {"name": "hero", "description": "...", "aspect": 0.6842,    # 832 / 1216: framed for SDXL's portrait bucket
     "keypoints": {"nose": [0.5, 0.14], "neck": [0.5, 0.23], ..., "r_ear": null}}

Your own presets go in ~/.config/figurine/poses/<name>.json (or $FIGURINE_HOME/poses/; see
figurine/data.py): listed and loaded by name with the built-in ones and checked by the same code.
A built-in name wins a clash. "name", where a file has it, must be the file's name.

Rendering draws the colour scheme the OpenPose ControlNets were trained on (the 17 limbs and 18
joint colours of controlnet_aux's `draw_bodypose`: limbs at 60 % of their colour, joints at full
colour, on black). The figure is fitted into the canvas with its proportions kept, so a portrait
canvas gets a taller figure, never a stretched one. Limb width is a setting in pixels at a
1024 x 1024 canvas and scales with the canvas area (SDXL's sizes all hold about 1024^2 pixels).

`pose_from_image` reads a pose off a reference photo with controlnet_aux's OpenPose body
estimator and the CMU body weights, loaded only from <annotators>/body_pose_model.safetensors
(`figurine weights fetch` converts the published .pth; nothing pickled is loaded here).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

from figurine.data import config_dir, named_files
from figurine.errors import InputError, WeightsError

log = logging.getLogger(__name__)

POSES_DIR = config_dir() / "poses"
BODY_WEIGHTS = "body_pose_model.safetensors"

KEYPOINT_NAMES = (
    "nose", "neck",
    "r_shoulder", "r_elbow", "r_wrist",
    "l_shoulder", "l_elbow", "l_wrist",
    "r_hip", "r_knee", "r_ankle",
    "l_hip", "l_knee", "l_ankle",
    "r_eye", "l_eye", "r_ear", "l_ear",
)  # fmt: skip

# The 17 limbs controlnet_aux draws, as 0-based keypoint index pairs, in drawing order.
LIMBS = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
    (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)  # fmt: skip

# One colour per keypoint; limb i uses COLORS[i] at LIMB_SHADE of its strength.
COLORS = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)  # fmt: skip
LIMB_SHADE = 0.6
LIMB_COLORS = tuple(tuple(int(c * LIMB_SHADE) for c in COLORS[i]) for i in range(len(LIMBS)))

# Fitting: room kept around the keypoints, as fractions of the figure's height. The nose is
# not the top of the head and the ankles are not the soles, so top and bottom get a bit more.
MARGIN_SIDE = 0.08
MARGIN_TOP = 0.14
MARGIN_BOTTOM = 0.10

Point = tuple[float, float]


@dataclass(frozen=True)
class Pose:
    """18 keypoints (x, y in [0, 1] over a frame of width/height `aspect`, or None)."""

    name: str
    keypoints: tuple[Point | None, ...]
    description: str = ""
    aspect: float = 1.0

    def point(self, name: str) -> Point | None:
        return self.keypoints[KEYPOINT_NAMES.index(name)]

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "aspect": self.aspect,
            "keypoints": {
                n: (None if p is None else [round(p[0], 4), round(p[1], 4)])
                for n, p in zip(KEYPOINT_NAMES, self.keypoints)
            },
        }


@dataclass(frozen=True)
class PosePreset:
    name: str
    description: str
    path: Path


# ---------------------------------------------------------------------------------------------
# Presets


def list_presets(directory: Path | None = None) -> list[PosePreset]:
    """The built-in poses and the user's own, sorted by name (`directory`: that folder only)."""
    presets = []
    for name, path in named_files("poses", directory).items():
        raw = _read_json(path)
        presets.append(PosePreset(name, str(raw.get("description", "")), path))
    return presets


def load_preset(name: str, directory: Path | None = None) -> Pose:
    """A pose by name (built-in or the user's own); an unknown name is an InputError listing the known ones."""
    known = named_files("poses", directory)
    if name not in known:
        raise InputError(f"unknown pose '{name}' (available: {', '.join(known) or 'none'})")
    path = known[name]
    raw = _read_json(path)
    if raw.get("name", name) != name:
        raise InputError(f"{path}: 'name' is {raw['name']!r}, but the file is {name}.json")
    return pose_from_dict(raw, name=name, origin=str(path))


def pose_from_dict(data: dict, name: str = "custom", origin: str = "pose") -> Pose:
    """Check and convert the JSON form ({"keypoints": {name: [x, y] | null}, ...})."""
    points = data.get("keypoints")
    if not isinstance(points, dict):
        raise InputError(f"{origin}: 'keypoints' must map the 18 OpenPose names to [x, y] or null")
    unknown = sorted(set(points) - set(KEYPOINT_NAMES))
    missing = [n for n in KEYPOINT_NAMES if n not in points]
    if unknown or missing:
        raise InputError(f"{origin}: unknown keypoints {unknown}, missing keypoints {missing}")
    keypoints = []
    for n in KEYPOINT_NAMES:
        p = points[n]
        if p is None:
            keypoints.append(None)
            continue
        ok = isinstance(p, list) and len(p) == 2 and all(isinstance(v, (int, float)) for v in p)
        if not ok or not all(0.0 <= v <= 1.0 for v in p):
            raise InputError(f"{origin}: keypoint '{n}' must be [x, y] within 0..1 or null, got {p!r}")
        keypoints.append((float(p[0]), float(p[1])))
    if sum(p is not None for p in keypoints) < 2:
        raise InputError(f"{origin}: a pose needs at least two visible keypoints")
    aspect = data.get("aspect", 1.0)
    if not isinstance(aspect, (int, float)) or not 0.1 <= aspect <= 10:
        raise InputError(f"{origin}: 'aspect' must be a width/height ratio, got {aspect!r}")
    return Pose(str(data.get("name", name)), tuple(keypoints), str(data.get("description", "")), float(aspect))


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: not a readable pose file ({e})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: a pose file holds one JSON object")
    return data


# ---------------------------------------------------------------------------------------------
# Rendering


def pose_to_pixels(pose: Pose, width: int, height: int) -> list[Point | None]:
    """Where each keypoint lands on a width x height canvas: fitted, centred, aspect kept.

    1. Put the points in frame units (x times the frame's aspect, so both axes share a unit).
    2. Take their bounding box and add margins relative to the figure's height.
    3. Scale that box uniformly to fit the canvas and centre it.
    """
    pts = [None if p is None else (p[0] * pose.aspect, p[1]) for p in pose.keypoints]
    seen = [p for p in pts if p is not None]
    x0, x1 = min(p[0] for p in seen), max(p[0] for p in seen)
    y0, y1 = min(p[1] for p in seen), max(p[1] for p in seen)
    size = max(y1 - y0, x1 - x0, 1e-6)
    x0, x1 = x0 - MARGIN_SIDE * size, x1 + MARGIN_SIDE * size
    y0, y1 = y0 - MARGIN_TOP * size, y1 + MARGIN_BOTTOM * size
    scale = min(width / (x1 - x0), height / (y1 - y0))
    ox = (width - (x1 - x0) * scale) / 2 - x0 * scale
    oy = (height - (y1 - y0) * scale) / 2 - y0 * scale
    return [None if p is None else (p[0] * scale + ox, p[1] * scale + oy) for p in pts]


def head_box(pose: Pose, width: int, height: int) -> tuple[float, float, float, float] | None:
    """Where the face will be on a width x height figure of this pose: (x0, y0, x1, y1) pixels,
    from the head joints as `render_pose` places them; None without a visible eye or nose.

    For the face detail pass when insightface finds no face on the figure. The box is square in
    width to the face's width (the ears' span; else 2.3 x the eyes' span, the presets' ratio;
    else 0.9 x nose to neck) and 1.3 times as tall, from above the brow to below the chin.
    """
    px = dict(zip(KEYPOINT_NAMES, pose_to_pixels(pose, width, height)))
    face = [px[n] for n in ("nose", "r_eye", "l_eye") if px[n] is not None]
    if not face:
        return None
    if px["r_ear"] is not None and px["l_ear"] is not None:
        size = math.dist(px["r_ear"], px["l_ear"])
    elif px["r_eye"] is not None and px["l_eye"] is not None:
        size = 2.3 * math.dist(px["r_eye"], px["l_eye"])
    elif px["nose"] is not None and px["neck"] is not None:
        size = 0.9 * math.dist(px["nose"], px["neck"])
    else:
        return None
    size = max(size, 1.0)
    cx = sum(p[0] for p in face) / len(face)
    eyes = [px[n] for n in ("r_eye", "l_eye") if px[n] is not None] or face
    cy = sum(p[1] for p in eyes) / len(eyes)
    return (cx - size / 2, cy - 0.55 * size, cx + size / 2, cy + 0.75 * size)


def line_scale(width: int, height: int) -> float:
    """Factor from 'pixels at 1024 x 1024' to this canvas (by area, like SDXL's buckets)."""
    return math.sqrt(width * height) / 1024.0


def render_pose(pose: Pose, width: int, height: int, limb_width: float = 12, point_radius: float = 8):
    """The OpenPose control image (PIL RGB, black background) at width x height.

    limb_width is the full thickness of a limb and point_radius the joint dot radius, both in
    pixels at 1024 x 1024; they scale with the canvas. xinsir's SDXL OpenPose ControlNet was
    trained on thick limbs (about 24 px thick, 12 px dots at 1024 px).
    """
    from PIL import Image, ImageDraw

    if width < 8 or height < 8:
        raise InputError(f"pose image size must be at least 8x8, got {width}x{height}")
    if limb_width <= 0 or point_radius < 0:
        raise InputError(f"limb width must be > 0 and point radius >= 0, got {limb_width}, {point_radius}")
    k = line_scale(width, height)
    half = max(0.5, limb_width * k / 2)
    radius = point_radius * k
    pts = pose_to_pixels(pose, width, height)

    image = Image.new("RGB", (width, height), (0, 0, 0))
    draw = ImageDraw.Draw(image)
    # 1. Limbs: filled ellipses from joint to joint, in controlnet_aux's order (later on top).
    for (a, b), color in zip(LIMBS, LIMB_COLORS):
        if pts[a] is None or pts[b] is None:
            continue
        draw.polygon(_limb_polygon(pts[a], pts[b], half), fill=color)
    # 2. Joints: full-colour dots over the limbs.
    if radius > 0:
        for p, color in zip(pts, COLORS):
            if p is not None:
                x, y = p
                draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=color)
    return image


def _limb_polygon(a: Point, b: Point, half_width: float, steps: int = 36) -> list[Point]:
    """An ellipse whose long axis joins a and b, as a polygon (what cv2.ellipse2Poly makes)."""
    cx, cy = (a[0] + b[0]) / 2, (a[1] + b[1]) / 2
    length = math.hypot(b[0] - a[0], b[1] - a[1]) / 2
    angle = math.atan2(b[1] - a[1], b[0] - a[0])
    ca, sa = math.cos(angle), math.sin(angle)
    poly = []
    for i in range(steps):
        t = 2 * math.pi * i / steps
        u, v = length * math.cos(t), half_width * math.sin(t)
        poly.append((cx + u * ca - v * sa, cy + u * sa + v * ca))
    return poly


# ---------------------------------------------------------------------------------------------
# Pose from a reference photo


def pose_from_image(image, annotators_dir: str | Path, max_side: int = 512) -> Pose:
    """The most complete body in a reference photo, read with controlnet_aux's estimator.

    1. Check the converted CMU body weights exist (else WeightsError naming the file).
    2. Load them into controlnet_aux's body network (safetensors only, never a pickle).
    3. Run its estimator on the photo, scaled so the long side is at most max_side.
    4. Keep the person with the most keypoints; none found is an InputError.
    """
    path = Path(annotators_dir) / BODY_WEIGHTS
    if not path.is_file():
        raise WeightsError(f"missing pose annotator weights: {path}", hint="run `figurine weights fetch`")

    import numpy as np
    from PIL import Image

    estimator = _load_body_estimator(path)

    if not isinstance(image, Image.Image):
        image = Image.fromarray(np.asarray(image))
    image = image.convert("RGB")
    w, h = image.size
    if min(w, h) < 32:
        raise InputError(f"the pose reference is too small ({w}x{h}); use a photo of a whole person")
    if max(w, h) > max_side:
        f = max_side / max(w, h)
        image = image.resize((max(1, round(w * f)), max(1, round(h * f))), Image.Resampling.LANCZOS)
    bgr = np.ascontiguousarray(np.asarray(image)[:, :, ::-1])
    H, W = bgr.shape[:2]

    import torch

    with torch.no_grad():
        candidate, subset = estimator(bgr)
    people = estimator.format_body_result(candidate, subset)
    if not people:
        raise InputError("no person found in the pose reference photo", hint="use a photo showing one whole body")
    best = max(people, key=lambda p: (p.total_parts, p.total_score))
    keypoints = tuple(
        None if k is None else (min(max(k.x / W, 0.0), 1.0), min(max(k.y / H, 0.0), 1.0))
        for k in best.keypoints
    )
    pose = Pose("from-photo", keypoints, "pose read from a reference photo", aspect=W / H)
    if pose.point("r_ankle") is None and pose.point("l_ankle") is None:
        log.warning("the pose reference shows no feet: the figure may come out cropped")
    return pose


def _load_body_estimator(path: Path):
    """controlnet_aux's Body estimator with weights from a safetensors file."""
    import warnings

    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsError(f"{path}: not a readable safetensors file ({e})", hint="run `figurine weights fetch`") from None
    with warnings.catch_warnings():  # controlnet_aux's package import warns about optional extras
        warnings.simplefilter("ignore")
        from controlnet_aux.open_pose.body import Body
        from controlnet_aux.open_pose.model import bodypose_model
    net = bodypose_model()
    net.load_state_dict(body_state_dict(state, net.state_dict().keys(), path))
    net.eval()
    body = Body.__new__(Body)  # Body.__init__ would torch.load a pickle; set its network directly
    body.model = net
    return body


def body_state_dict(state: dict, model_keys, origin: Path | str = "body weights") -> dict:
    """Map the published checkpoint's names ('conv1_1.weight') onto the network's
    ('model0.conv1_1.weight'); a state dict already in the network's names passes through."""
    model_keys = list(model_keys)
    if set(state) == set(model_keys):
        return state
    mapped = {}
    for key in model_keys:
        short = key.split(".", 1)[1]
        if short not in state:
            raise WeightsError(
                f"{origin}: not the OpenPose body model (no '{short}')", hint="run `figurine weights fetch`"
            )
        mapped[key] = state[short]
    return mapped
