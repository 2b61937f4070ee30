"""Pose stage: presets, the OpenPose control image, `figurine poses`, pose from a photo."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from figurine.errors import InputError, WeightsError
from figurine.pose import (
    BODY_WEIGHTS,
    COLORS,
    KEYPOINT_NAMES,
    LIMB_COLORS,
    LIMBS,
    body_state_dict,
    list_presets,
    load_preset,
    pose_from_dict,
    pose_from_image,
    pose_to_pixels,
    render_pose,
)
from tests.conftest import ROOT, run_figurine

PRESETS = [p.name for p in list_presets()]
SIZES = [(1024, 1024), (832, 1216)]


def test_the_six_named_presets_exist_with_descriptions():
    for name in ("hero", "wave", "arms-crossed", "salute", "thinking", "action-run"):
        assert name in PRESETS
    assert all(len(p.description) > 20 for p in list_presets())


@pytest.mark.parametrize("name", PRESETS)
def test_preset_is_a_framed_full_body_with_human_proportions(name):
    pose = load_preset(name)
    assert len(pose.keypoints) == 18
    # Framed for the default generation size, SDXL's 832x1216 portrait bucket.
    assert pose.aspect == pytest.approx(832 / 1216, abs=1e-4)
    core = ["nose", "neck", "r_shoulder", "l_shoulder", "r_hip", "l_hip", "r_knee", "l_knee", "r_ankle", "l_ankle"]
    for n in core:
        assert pose.point(n) is not None, f"{name}: {n} hidden"
    # Framed for a toy box: head in the top third, feet low in the frame and inside it.
    assert pose.point("nose")[1] < 1 / 3
    assert max(pose.point("r_ankle")[1], pose.point("l_ankle")[1]) > 0.75
    assert all(0.0 <= v <= 1.0 for p in pose.keypoints if p for v in p)
    # Person's right is the image's left for a figure facing the camera.
    assert pose.point("r_shoulder")[0] < pose.point("l_shoulder")[0]
    # Bones against the torso (neck to mid-hip): a 2D view can shorten a bone, never lengthen it.
    # Distances in frame heights: x is normalised over the frame's width.
    def point(n):
        p = pose.point(n)
        return None if p is None else (p[0] * pose.aspect, p[1])

    hips = np.mean([point("r_hip"), point("l_hip")], axis=0)
    torso = math.dist(point("neck"), hips)
    longest = {"elbow": 0.62, "wrist": 0.55, "knee": 0.85, "ankle": 0.88}  # ~ bone / torso + slack
    parent = {"elbow": "shoulder", "wrist": "elbow", "knee": "hip", "ankle": "knee"}
    for side in "rl":
        for joint, limit in longest.items():
            a, b = point(f"{side}_{parent[joint]}"), point(f"{side}_{joint}")
            if a and b:
                assert 0.25 * torso < math.dist(a, b) < limit * torso, f"{name}: {side}_{joint}"
    head = math.dist(point("nose"), point("neck"))
    assert 0.2 * torso < head < 0.45 * torso


def _colour_near(img: np.ndarray, xy, colour, r: int) -> bool:
    x, y = int(round(xy[0])), int(round(xy[1]))
    win = img[max(0, y - r): y + r + 1, max(0, x - r): x + r + 1]
    return bool(np.all(win == np.array(colour, dtype=np.uint8), axis=-1).any())


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("name", PRESETS)
def test_render_draws_each_limb_in_its_openpose_colour(name, size):
    w, h = size
    pose = load_preset(name)
    img = render_pose(pose, w, h, limb_width=12, point_radius=8)
    assert img.mode == "RGB" and img.size == (w, h)
    a = np.asarray(img)
    assert (a[0, 0] == 0).all() and (a[-1, -1] == 0).all()  # black background
    pts = pose_to_pixels(pose, w, h)
    drawn = 0
    for (i, j), colour in zip(LIMBS, LIMB_COLORS):
        if pts[i] is None or pts[j] is None:
            continue
        # At the midpoint; a limb drawn later may cover that spot (crossed arms), so look a
        # little either side of it along the limb too.
        along = [tuple(p0 + t * (p1 - p0) for p0, p1 in zip(pts[i], pts[j])) for t in (0.5, 0.4, 0.6, 0.3, 0.7)]
        assert any(_colour_near(a, m, colour, r=3) for m in along), f"{name}: {KEYPOINT_NAMES[i]}-{KEYPOINT_NAMES[j]}"
        drawn += 1
    assert drawn >= 13
    # Joint dots at full colour: the neck (drawn early) and an ankle (nothing else covers it).
    assert _colour_near(a, pts[KEYPOINT_NAMES.index("l_ankle")], COLORS[13], r=2)
    # Everything drawn lies inside the canvas with a margin: feet and head are not cropped.
    ys, xs = np.nonzero(a.any(axis=-1))
    assert ys.min() > 0.02 * h and ys.max() < 0.98 * h and xs.min() > 0 and xs.max() < w - 1


def _figure_box(img) -> tuple[int, int]:
    ys, xs = np.nonzero(np.asarray(img).any(axis=-1))
    return xs.max() - xs.min(), ys.max() - ys.min()


@pytest.mark.parametrize("name", ["hero", "power-pose", "action-run"])
def test_non_square_canvas_keeps_the_figure_proportions(name):
    pose = load_preset(name)
    w1, h1 = _figure_box(render_pose(pose, 1024, 1024, limb_width=2, point_radius=0))
    w2, h2 = _figure_box(render_pose(pose, 832, 1216, limb_width=2, point_radius=0))
    w3, h3 = _figure_box(render_pose(pose, 1216, 832, limb_width=2, point_radius=0))
    assert w2 / h2 == pytest.approx(w1 / h1, rel=0.04)
    assert w3 / h3 == pytest.approx(w1 / h1, rel=0.04)
    # Fitted, not shrunk: the figure fills the canvas in at least one direction.
    assert max(w2 / 832, h2 / 1216) > 0.7


def _coloured(img) -> int:
    return int(np.asarray(img).any(axis=-1).sum())


def test_limb_width_sets_the_amount_of_colour_and_scales_with_the_canvas():
    pose = load_preset("hero")
    thin = _coloured(render_pose(pose, 1024, 1024, limb_width=6, point_radius=0))
    thick = _coloured(render_pose(pose, 1024, 1024, limb_width=24, point_radius=0))
    assert thick > 3 * thin
    # The same setting on a half-size canvas covers the same share of it.
    small = _coloured(render_pose(pose, 512, 512, limb_width=24, point_radius=0))
    assert small / 512**2 == pytest.approx(thick / 1024**2, rel=0.1)


def test_unknown_preset_error_lists_the_available_ones():
    with pytest.raises(InputError) as e:
        load_preset("moonwalk")
    assert "moonwalk" in str(e.value)
    for name in PRESETS:
        assert name in str(e.value)


def test_bad_render_settings_are_input_errors():
    with pytest.raises(InputError):
        render_pose(load_preset("hero"), 1024, 1024, limb_width=0)


def test_cli_lists_presets():
    r = run_figurine("poses")
    assert r.returncode == 0, r.stderr
    lines = [l for l in r.stdout.splitlines() if l.strip()]
    assert len(lines) >= 6
    names = {l.split()[0] for l in lines}
    assert {"hero", "wave", "arms-crossed", "salute", "thinking", "action-run"} <= names


def test_cli_renders_every_preset_and_refuses_to_overwrite(tmp_path):
    out = tmp_path / "poses"
    r = run_figurine("poses", "--render", out, "--width", 96, "--height", 144, "--limb-width", 24)
    assert r.returncode == 0, r.stderr
    files = sorted(out.glob("*.png"))
    assert [f.stem for f in files] == sorted(PRESETS)
    for f in files:
        with Image.open(f) as im:
            assert im.size == (96, 144) and im.mode == "RGB"
            assert np.asarray(im).any()
    again = run_figurine("poses", "--render", out)
    assert again.returncode == 2
    assert again.stderr.count("\n") == 1 and "--force" in again.stderr and "Traceback" not in again.stderr
    bad = run_figurine("poses", "--pose", "moonwalk")
    assert bad.returncode == 2 and "hero" in bad.stderr and "Traceback" not in bad.stderr


# Pose from a reference photo -------------------------------------------------------------------


def _photo() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray((rng.random((240, 160, 3)) * 255).astype(np.uint8))


def test_pose_from_image_without_weights_names_the_file_and_the_fix(tmp_path):
    with pytest.raises(WeightsError) as e:
        pose_from_image(_photo(), tmp_path / "annotators")
    assert BODY_WEIGHTS in str(e.value) and "figurine weights fetch" in str(e.value)


def test_pose_from_image_refuses_a_file_that_is_not_the_body_model(tmp_path):
    from safetensors.torch import save_file
    import torch

    (tmp_path / BODY_WEIGHTS).write_bytes(b"not a safetensors file")
    with pytest.raises(WeightsError):
        pose_from_image(_photo(), tmp_path)
    save_file({"conv1_1.weight": torch.zeros(1)}, str(tmp_path / BODY_WEIGHTS))
    with pytest.raises(WeightsError) as e:
        pose_from_image(_photo(), tmp_path)
    assert "OpenPose body model" in str(e.value)


def test_checkpoint_names_map_onto_the_network():
    import torch
    from controlnet_aux.open_pose.model import bodypose_model

    net = bodypose_model()
    keys = list(net.state_dict())
    published = {k.split(".", 1)[1]: torch.full((1,), float(i)) for i, k in enumerate(keys)}
    mapped = body_state_dict(published, keys)
    assert list(mapped) == keys
    assert all(mapped[k].item() == i for i, k in enumerate(keys))
    assert body_state_dict(mapped, keys) is mapped


def test_pose_from_image_runs_the_real_estimator_on_random_weights(tmp_path):
    """The tiny tree's random annotator loads through the real path and finds nobody."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from tiny_annotators import write_annotators
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    path = write_annotators(tmp_path / "annotators")
    assert path.name == BODY_WEIGHTS
    with pytest.raises(InputError) as e:
        pose_from_image(_photo(), tmp_path / "annotators")
    assert "no person" in str(e.value)


@pytest.mark.parametrize("name", PRESETS)
def test_head_box_surrounds_the_face_joints(name):
    """The detail pass's fallback face box: around the eyes and nose, as wide as the ears' span,
    taller than wide, inside the canvas."""
    from figurine.pose import head_box

    pose = load_preset(name)
    box = head_box(pose, 832, 1216)
    pts = dict(zip(KEYPOINT_NAMES, pose_to_pixels(pose, 832, 1216)))
    x0, y0, x1, y1 = box
    for n in ("nose", "r_eye", "l_eye"):
        assert x0 < pts[n][0] < x1 and y0 < pts[n][1] < y1, n
    if pts["r_ear"] and pts["l_ear"]:
        assert x1 - x0 == pytest.approx(math.dist(pts["r_ear"], pts["l_ear"]))
    assert y1 - y0 == pytest.approx(1.3 * (x1 - x0)) and 0 <= y0 and x0 >= 0 and x1 <= 832
    headless = pose_from_dict({"keypoints": {n: (None if n in ("nose", "r_eye", "l_eye") else
                                                 [0.5, 0.2 + 0.04 * i])
                                             for i, n in enumerate(KEYPOINT_NAMES)}})
    assert head_box(headless, 832, 1216) is None
