"""figurine poses: list the built-in poses, or write their OpenPose control images.

    figurine poses
    figurine poses --render previews/ --width 832 --height 1216 --limb-width 24

Sizes and line widths default to the config (generation.width/height, pose.limb_width,
pose.point_radius), so the previews match what `figurine make` feeds the ControlNet.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from figurine.commands._common import LazyHelp, add_config_args, config_from_args, pose_choices
from figurine.errors import InputError, OutputExistsError


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("poses", help="list the built-in poses or render their control images",
                       description="List the built-in poses, or write each one's OpenPose "
                                   "control image as DIR/<name>.png.")
    p.add_argument("--render", metavar="DIR", help="write DIR/<pose>.png for every preset")
    p.add_argument("--pose", action="append", default=[], metavar="NAME",
                   help=LazyHelp(lambda: f"only this preset (repeatable): {', '.join(pose_choices())}"))
    p.add_argument("--width", type=int, help="image width (default: generation.width)")
    p.add_argument("--height", type=int, help="image height (default: generation.height)")
    p.add_argument("--limb-width", type=float, help="limb thickness in px at 1024 px (default: pose.limb_width)")
    p.add_argument("--point-radius", type=float, help="joint dot radius in px at 1024 px (default: pose.point_radius)")
    p.add_argument("--force", action="store_true", help="overwrite existing images")
    add_config_args(p)
    return p


def run(args) -> int:
    from figurine.pose import list_presets, load_preset, render_pose

    presets = list_presets()
    if args.pose:
        known = {p.name for p in presets}
        for name in args.pose:
            if name not in known:
                load_preset(name)  # raises the InputError that lists the available poses
        presets = [p for p in presets if p.name in args.pose]

    # 1. Without --render: the list.
    if not args.render:
        width = max(len(p.name) for p in presets)
        for p in presets:
            print(f"{p.name:<{width}}  {p.description}")
        return 0

    # 2. With --render: settings from the config, flags win.
    cfg = config_from_args(args)
    w = args.width or cfg.generation.width
    h = args.height or cfg.generation.height
    limb = args.limb_width if args.limb_width is not None else cfg.pose.limb_width
    radius = args.point_radius if args.point_radius is not None else cfg.pose.point_radius
    if not (8 <= w <= 8192 and 8 <= h <= 8192):
        raise InputError(f"--width and --height must be between 8 and 8192, got {w}x{h}")
    out = Path(args.render)
    if out.exists() and not out.is_dir():
        raise InputError(f"--render needs a directory, and {out} is a file")
    targets = [(p, out / f"{p.name}.png") for p in presets]
    existing = [str(t) for _, t in targets if t.exists()]
    if existing and not args.force:
        raise OutputExistsError(f"{existing[0]} exists", hint="add --force to overwrite")
    out.mkdir(parents=True, exist_ok=True)
    for preset, target in targets:
        render_pose(load_preset(preset.name), w, h, limb_width=limb, point_radius=radius).save(target)
        print(target)
    return 0
