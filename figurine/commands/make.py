"""figurine make: a selfie in, a boxed action figure out.

    figurine make selfie.jpg --name "Ada Lovelace" --tagline "Analytical Engine Pilot" \\
        --accessory "punch cards" --pose hero -o ada.png
    figurine make --run ada.run --accessory "brass gear"      # regenerate only what changed
    figurine make --from ada.png selfie.jpg -o again.png       # reproduce a run from its PNG

Parses the command line into a Request and calls figurine.pipeline; nothing else happens here.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from figurine.commands._common import add_config_args, pose_help, template_help
from figurine.errors import InputError

# Request fields the command line can set (None / [] = not given).
FIELDS = ("name", "tagline", "outfit", "accessories", "accessory_images", "pose", "pose_from", "face_index",
          "seed", "candidates", "template", "size", "pdf", "edition")


def add_parser(sub) -> argparse.ArgumentParser:
    from figurine import limits

    p = sub.add_parser("make", help="turn a photo into a boxed action figure",
                       description=__doc__.splitlines()[0])
    p.add_argument("photos", nargs="*", type=Path, metavar="PHOTO",
                   help="the selfie (JPEG, PNG, WebP, HEIC, ...); several photos of the same person are combined")
    p.add_argument("--name", help="the name on the box (1 to 40 characters)")
    p.add_argument("--tagline", help="profession or tagline, printed under the name and used for the outfit")
    p.add_argument("--outfit", help="what the figure wears (default: from the tagline)")
    p.add_argument("--accessory", action="append", dest="accessories", metavar="TEXT",
                   help=f"an accessory, generated on its own and placed in the tray; repeat for more "
                        f"(at most {limits.MAX_ACCESSORY_SLOTS})")
    p.add_argument("--accessory-image", action="append", dest="accessory_images", type=Path, metavar="IMG",
                   help="your own picture of an accessory instead of a generated one; repeat for more")
    p.add_argument("--pose", help=pose_help(default="pose.preset in the config"))
    p.add_argument("--pose-from", type=Path, metavar="REF", help="take the pose from a reference photo")
    p.add_argument("--face", type=int, dest="face_index", metavar="N",
                   help="which face to use when the photo has several: 0 = leftmost (default: largest)")
    p.add_argument("--seed", type=int, help="random seed (same seed, same settings: same pixels); -1 = random")
    p.add_argument("--candidates", type=int, metavar="N",
                   help="generate N figures (seeds S, S+1, ...) and package the best likeness")
    p.add_argument("--template", help=template_help(default="packaging.template in the config", paths=False))
    p.add_argument("--size", choices=list(limits.SIZES), help="social 1080x1350 or story 1080x1920")
    p.add_argument("--edition", type=int, help="edition number printed on the box (0 to 9999)")
    p.add_argument("-o", "--output", type=Path, metavar="OUT.png",
                   help="the packaged picture, .png, .jpg or .webp (default: NAME.png)")
    p.add_argument("--pdf", type=Path, metavar="OUT.pdf", help="also write a print PDF (300 DPI, 3 mm bleed)")
    p.add_argument("--run", "--run-dir", dest="run_dir", type=Path, metavar="RUN_DIR",
                   help="run directory to cache stages in (default: OUT.run next to the output); "
                   "an existing one is reused: only stages whose inputs changed run again")
    p.add_argument("--from", dest="from_png", type=Path, metavar="OUT.png",
                   help="reproduce the run stored in a figurine picture (settings, seed, prompts)")
    p.add_argument("--print3d", type=Path, metavar="OUT.3mf",
                   help="also write a printable 3D model of the figure (see `figurine print3d`; 100 mm tall)")
    p.add_argument("--store-embedding", action="store_true",
                   help="also keep the face embedding in the run directory (off: it is never written)")
    p.add_argument("--force", action="store_true", help="overwrite existing output files")
    add_config_args(p)
    return p


def given(args) -> dict:
    """The request fields this command line sets."""
    return {k: getattr(args, k) for k in FIELDS if getattr(args, k, None) not in (None, [])}


def run(args) -> int:
    from figurine.config import load_config
    from figurine.pipeline import FigurinePipeline
    from figurine.request import Request

    if args.verbose:
        logging.getLogger("figurine").setLevel(logging.INFO)
    fields = given(args)
    print_options = None
    if args.print3d:  # checked before any model loads, like every other output
        from figurine.print3d import PrintOptions, check_options

        print_options = PrintOptions(output=args.print3d, force=args.force)
        check_options(print_options)
    common = dict(photos=args.photos, output=args.output, force=args.force, store_embedding=args.store_embedding)
    if args.from_png:
        # A shared picture: its settings and seed (validated, no paths), the photo again from here.
        from figurine.provenance import read_provenance

        if not args.photos:
            raise InputError("--from needs the photo again: figurine make --from OUT.png PHOTO")
        record = read_provenance(args.from_png)
        stored = dict(record.get("request") or {})
        stored["seed"] = (record.get("resolved") or {}).get("seed", stored.get("seed"))
        pipe = FigurinePipeline(load_config(args.config, args.overrides, args.weights, stored=record.get("config")))
        result = pipe(Request.from_stored(stored, run_dir=args.run_dir, **common, **fields))
    elif args.run_dir and (args.run_dir / "run.json").exists():
        pipe = FigurinePipeline.for_run(args.run_dir, args.config, args.overrides, args.weights)
        result = pipe.rerun(args.run_dir, photos=args.photos, output=args.output, force=args.force, **fields)
    else:
        if not args.photos:
            raise InputError("PHOTO is required (or --run RUN_DIR to re-run a previous make)")
        if args.name is None:
            raise InputError("--name is required (the name printed on the box)")
        pipe = FigurinePipeline(load_config(args.config, args.overrides, args.weights))
        result = pipe(Request(run_dir=args.run_dir, **common, **fields))
    print(f"wrote {result.output} (run directory {result.run_dir})")
    if result.reused:
        print(f"reused: {', '.join(result.reused)}")
    print(result.energy_line)
    if print_options is not None:
        from figurine.print3d import make_print

        for line in make_print(result.run_dir, print_options, pipe.cfg).lines():
            print(line)
    return 0
