"""Write configs/poses/*.json from joint angles and human proportions.

    python scripts/make_pose_presets.py            # rewrites configs/poses/
    python scripts/make_pose_presets.py OUT_DIR

The JSON files are the source figurine reads; this script is how they were authored, so that
every preset shares one set of bone lengths (in body heights, head top to soles, about 7.5
heads) and a pose is a list of angles rather than 36 hand-typed numbers.

Angles are in degrees from straight down, positive away from the body's midline (90 = out to
the side, 180 = straight up, negative = across the body). A foreshortening factor < 1 shortens
a bone that points towards or away from the camera. "r_" is the person's right, which is the
image's left.

The frame is SDXL's 832 x 1216 portrait bucket, figurine's default generation size
(FRAME_ASPECT = 832 / 1216, stored as each file's "aspect"): x is normalised over the frame's
width, y over its height, so a standing figure fills the frame's height. figurine.pose renders
any preset onto any canvas by fitting its keypoints anew, aspect kept, so the files' frame does
not change the control image; it makes the data read the way the figure is generated.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from figurine.pose import KEYPOINT_NAMES  # noqa: E402

# Proportions, in body heights from the top of the head (y down), x from the midline.
NECK_Y = 0.185
SHOULDER = (0.115, 0.195)
HIP = (0.058, 0.49)
UPPER_ARM, FOREARM = 0.172, 0.150
THIGH, SHIN = 0.235, 0.245
# Head points relative to the neck, head upright and facing the camera.
HEAD = {
    "nose": (0.0, -0.100),
    "r_eye": (-0.019, -0.123), "l_eye": (0.019, -0.123),
    "r_ear": (-0.044, -0.112), "l_ear": (0.044, -0.112),
}  # fmt: skip
FRAME_MARGIN = 0.06  # room left in the frame around the whole body, in frame heights
FRAME_ASPECT = 832 / 1216  # width / height of the frame: SDXL's portrait bucket


def _step(origin, angle, length, side, fore=1.0):
    a = math.radians(angle)
    return (origin[0] + side * math.sin(a) * length * fore, origin[1] + math.cos(a) * length * fore)


def body(
    r_arm=(10, 10), l_arm=(10, 10), r_leg=(4, 2), l_leg=(4, 2),
    r_arm_fore=(1, 1), l_arm_fore=(1, 1), r_leg_fore=(1, 1), l_leg_fore=(1, 1),
    head_tilt=0.0, head_turn=0.0, hide=(), shift=(0.0, 0.0), hip_shift=0.0, torso_width=1.0,
    lean=0.0,
):  # fmt: skip
    """Keypoints in body units. Each limb is (upper angle, lower angle); head_tilt in degrees
    (positive: towards the image's right), head_turn in [-1, 1] (positive: face turns to the
    image's right, moving the nose and eyes that way); torso_width < 1 narrows the shoulders
    and hips of a body turned away from the camera; lean shifts the upper body sideways (body
    heights of shift per body height above the hips, positive: towards the image's right)."""
    p = {"neck": (0.0, NECK_Y)}
    p["r_shoulder"] = (-SHOULDER[0] * torso_width, SHOULDER[1])
    p["l_shoulder"] = (SHOULDER[0] * torso_width, SHOULDER[1])
    p["r_hip"] = (-HIP[0] * torso_width + hip_shift, HIP[1])
    p["l_hip"] = (HIP[0] * torso_width + hip_shift, HIP[1])
    for side, sign, arm, fore in (("r", -1, r_arm, r_arm_fore), ("l", 1, l_arm, l_arm_fore)):
        p[f"{side}_elbow"] = _step(p[f"{side}_shoulder"], arm[0], UPPER_ARM, sign, fore[0])
        p[f"{side}_wrist"] = _step(p[f"{side}_elbow"], arm[1], FOREARM, sign, fore[1])
    for side, sign, leg, fore in (("r", -1, r_leg, r_leg_fore), ("l", 1, l_leg, l_leg_fore)):
        p[f"{side}_knee"] = _step(p[f"{side}_hip"], leg[0], THIGH, sign, fore[0])
        p[f"{side}_ankle"] = _step(p[f"{side}_knee"], leg[1], SHIN, sign, fore[1])
    t = math.radians(head_tilt)
    for name, (dx, dy) in HEAD.items():
        if name in ("nose", "r_eye", "l_eye"):
            dx += head_turn * 0.03
        x, y = dx * math.cos(t) - dy * math.sin(t), dx * math.sin(t) + dy * math.cos(t)
        p[name] = (x, NECK_Y + y)
    upper = ("nose", "neck", "r_eye", "l_eye", "r_ear", "l_ear", "r_shoulder", "l_shoulder",
             "r_elbow", "l_elbow", "r_wrist", "l_wrist")  # fmt: skip
    for name in upper:
        p[name] = (p[name][0] + lean * (HIP[1] - p[name][1]), p[name][1])
    for name in hide:
        p[name] = None
    return {k: (None if v is None else (v[0] + shift[0], v[1] + shift[1])) for k, v in p.items()}


def framed(points, aspect: float = FRAME_ASPECT):
    """Fit the body (head top and soles included) into the frame (width/height `aspect`),
    centred; x normalised over the frame's width, y over its height."""
    seen = [v for v in points.values() if v is not None]
    x0 = min(v[0] for v in seen) - 0.03
    x1 = max(v[0] for v in seen) + 0.03
    y0 = min(min(v[1] for v in seen), 0.0)  # the top of the head is at 0
    y1 = max(max(v[1] for v in seen), 1.0) + 0.01  # the soles
    scale = min((aspect - 2 * FRAME_MARGIN) / (x1 - x0), (1 - 2 * FRAME_MARGIN) / (y1 - y0))
    ox = aspect / 2 - (x0 + x1) / 2 * scale  # in frame heights
    oy = 0.5 - (y0 + y1) / 2 * scale
    return {
        n: None if points[n] is None
        else [round((points[n][0] * scale + ox) / aspect, 4), round(points[n][1] * scale + oy, 4)]
        for n in KEYPOINT_NAMES
    }


PRESETS = {
    "hero": (
        "Classic superhero stance: fists on hips, elbows out, feet planted wide, chin up.",
        body(r_arm=(42, -38), l_arm=(42, -38), r_arm_fore=(0.9, 0.9), l_arm_fore=(0.9, 0.9),
             r_leg=(14, 4), l_leg=(14, 4)),
    ),
    "wave": (
        "Friendly wave: right hand raised beside the head, left arm relaxed, weight on one leg.",
        body(r_arm=(100, 170), l_arm=(12, 6), r_leg=(6, 0), l_leg=(2, 6), head_tilt=-5, hip_shift=0.01),
    ),
    "arms-crossed": (
        "Confident and unimpressed: arms folded across the chest, feet shoulder-width apart.",
        body(r_arm=(-10, -80), l_arm=(-10, -80), r_arm_fore=(0.75, 0.85), l_arm_fore=(0.75, 0.85),
             r_leg=(7, 2), l_leg=(7, 2)),
    ),
    "salute": (
        "Standing to attention with a crisp right-hand salute at the brow, heels together.",
        body(r_arm=(95, -128), l_arm=(6, 2), r_arm_fore=(0.5, 1.0), r_leg=(2, 0), l_leg=(2, 0)),
    ),
    "thinking": (
        "Deep in thought: right hand at the chin, left forearm across the body, head tilted.",
        body(r_arm=(-20, -165), l_arm=(5, -85), r_arm_fore=(0.6, 0.95), l_arm_fore=(0.9, 1.0),
             r_leg=(3, 2), l_leg=(9, 0), head_tilt=-6, head_turn=-0.3, hip_shift=-0.01),
    ),
    "action-run": (
        "Mid-stride sprint in three-quarter view: right knee driving forward, left foot kicked "
        "back, arms pumping.",
        body(r_arm=(-50, 20), l_arm=(-40, -120), r_leg=(70, -5), l_leg=(14, 60),
             l_leg_fore=(1.0, 0.85), torso_width=0.55, head_turn=-0.8, lean=-0.18, hide=("r_ear",)),
    ),
    "peace-sign": (
        "Cheerful peace sign: right hand raised by the face, left hand on the hip.",
        body(r_arm=(35, 160), l_arm=(40, -40), r_arm_fore=(0.85, 0.9), l_arm_fore=(0.9, 0.9),
             r_leg=(5, 1), l_leg=(6, 3), head_tilt=-7),
    ),
    "power-pose": (
        "Victory: both arms raised overhead in a V, feet wide, chest open.",
        body(r_arm=(155, 160), l_arm=(155, 160), r_leg=(13, 4), l_leg=(13, 4)),
    ),
    "flex": (
        "Double biceps flex: upper arms out level with the shoulders, fists up by the ears.",
        body(r_arm=(95, 175), l_arm=(95, 175), r_arm_fore=(1, 0.9), l_arm_fore=(1, 0.9),
             r_leg=(10, 3), l_leg=(10, 3)),
    ),
    "standing": (
        "Neutral display stance: arms slightly away from the body, feet together; the plain boxed figure.",
        body(r_arm=(12, 6), l_arm=(12, 6), r_leg=(3, 1), l_leg=(3, 1)),
    ),
}  # fmt: skip


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, (description, points) in PRESETS.items():
        head = {"name": name, "description": description, "format": "openpose-18",
                "aspect": round(FRAME_ASPECT, 4)}
        lines = [f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in framed(points).items()]
        text = json.dumps(head, indent=1)[:-2] + ',\n "keypoints": {\n' + ",\n".join(lines) + "\n }\n}\n"
        json.loads(text)  # still valid JSON
        (out / f"{name}.json").write_text(text, encoding="utf-8")
        print(out / f"{name}.json")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "configs" / "poses")
