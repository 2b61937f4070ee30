"""figurine print3d: a printable 3D model (coloured 3MF, optional STL) of a figure, with a preview.

    figurine print3d --run ada.run -o ada.3mf --stl ada.stl --height-mm 120
    figurine print3d --figure figure.png --name "Ada" -o ada.3mf
    figurine print3d --run ada.run -o ada.3mf --base-text "ADA L." --force   # re-meshes, reuses depth

1. Check the arguments and outputs (never overwrite without --force) before loading anything.
2. figurine.print3d.make_print (from a run) or print_picture (from a picture) does the work.
3. Print what it did: which relief (depth model or weight-free), what was reused from the run's
   cache, thickened parts, the model's measurements, the files, the slicer's estimate.
"""

from __future__ import annotations

from pathlib import Path

from figurine.commands._common import add_config_args, config_from_args
from figurine.errors import InputError


def add_parser(sub):
    p = sub.add_parser("print3d", help="make a printable 3D model (3MF/STL) of a figure",
                       description="Make a printable model of the packaged figure: one closed body on a base "
                                   "plate with the name engraved, coloured 3MF (and STL), a preview picture, "
                                   "checked by PrusaSlicer when it is installed.")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--run", type=Path, metavar="RUN_DIR", help="a `figurine make` run directory (e.g. ada.run)")
    src.add_argument("--figure", type=Path, metavar="PICTURE",
                     help="a figure picture instead: an RGBA cut-out or a figure on a plain backdrop")
    p.add_argument("--name", default=None, help="name for --figure (engraved on the base unless --base-text)")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.3mf", help="the 3MF to write")
    p.add_argument("--stl", type=Path, default=None, metavar="OUT.stl", help="also write a geometry-only STL")
    p.add_argument("--gcode", type=Path, default=None, metavar="OUT.gcode", help="keep the slicer's G-code")
    p.add_argument("--height-mm", type=float, default=100.0, help="height of the whole model in mm (default 100)")
    p.add_argument("--base-text", default=None, help="text on the base's front edge (default: the name; '' for none)")
    p.add_argument("--min-wall-mm", type=float, default=1.6,
                   help="thinnest wall to allow; thinner limbs are thickened (default 1.6, for FDM)")
    p.add_argument("--colours", type=int, default=4, help="colours in the 3MF, 1-8 (default 4)")
    p.add_argument("--relief", choices=("auto", "depth", "outline"), default="auto",
                   help="depth model or weight-free relief (default auto: the depth model when its weights are there)")
    p.add_argument("--no-slice", action="store_true", help="do not slice with PrusaSlicer")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    add_config_args(p)
    return p


def run(args) -> int:
    import logging

    if not args.run and not args.figure:
        raise InputError("nothing to print", hint="give --run RUN_DIR or --figure PICTURE")
    if args.run and args.name:
        raise InputError("--name is for --figure; a run's name comes from the run (use --base-text to change the text)")
    if args.verbose:
        logging.getLogger("figurine").setLevel(logging.INFO)
    cfg = config_from_args(args)

    from figurine.print3d import PrintOptions, make_print, print_picture

    options = PrintOptions(output=args.output, stl=args.stl, gcode=args.gcode, height_mm=args.height_mm,
                           base_text=args.base_text, min_wall_mm=args.min_wall_mm, colours=args.colours,
                           relief=args.relief, slice=not args.no_slice, force=args.force)

    def progress(stage: str, message: str) -> None:
        if args.verbose:
            logging.getLogger("figurine").info("%s %s", stage, message)

    if args.run:
        result = make_print(args.run, options, cfg, progress)
    else:
        result = print_picture(args.figure, args.name or "", options, cfg, progress)
    for line in result.lines():
        print(line)
    return 0
