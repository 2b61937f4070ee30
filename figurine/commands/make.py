"""figurine make: a selfie in, a boxed action figure out.

    figurine make selfie.jpg --name "Ada Lovelace" --tagline "Analytical Engine Pilot" \\
        --accessory "punch cards" --pose hero -o ada.png
    figurine make --run ada.run --accessory "brass gear"      # regenerate only what changed
    figurine make --from ada.png selfie.jpg -o again.png       # reproduce a run from its PNG
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from figurine.commands._common import add_config_args
from figurine.errors import InputError

# Request fields a re-run (--run) takes from run.json unless given again on the command line.
REPEATABLE = ("name", "tagline", "outfit", "accessories", "accessory_images", "pose", "pose_from",
              "face_index", "seed", "candidates", "template", "size", "pdf", "output", "edition")


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("make", help="turn a photo into a boxed action figure",
                       description=__doc__.splitlines()[0])
    p.add_argument("photo", nargs="?", type=Path, metavar="PHOTO", help="the selfie (JPEG, PNG, WebP, ...)")
    p.add_argument("--name", help="the name on the box (1 to 40 characters)")
    p.add_argument("--tagline", help="profession or tagline, printed under the name and used for the outfit")
    p.add_argument("--outfit", help="what the figure wears (default: from the tagline)")
    p.add_argument("--accessory", action="append", dest="accessories", metavar="TEXT",
                   help="an accessory, generated on its own and placed in the tray; repeat for more")
    p.add_argument("--accessory-image", action="append", dest="accessory_images", type=Path, metavar="IMG",
                   help="your own picture of an accessory instead of a generated one; repeat for more")
    p.add_argument("--pose", help="pose preset (see `figurine poses`)")
    p.add_argument("--pose-from", type=Path, metavar="REF", help="take the pose from a reference photo")
    p.add_argument("--face", type=int, dest="face_index", metavar="N",
                   help="which face to use when the photo has several: 0 = leftmost (default: largest)")
    p.add_argument("--seed", type=int, help="random seed (same seed, same settings: same pixels)")
    p.add_argument("--candidates", type=int, metavar="N",
                   help="generate N figures (seeds S, S+1, ...) and package the best likeness")
    p.add_argument("--template", help="packaging template (see `figurine pack --help`)")
    p.add_argument("--size", choices=["social", "story"], help="social 1080x1350 or story 1080x1920")
    p.add_argument("-o", "--output", type=Path, metavar="OUT.png", help="the packaged picture (default: NAME.png)")
    p.add_argument("--pdf", type=Path, metavar="OUT.pdf", help="also write a print PDF (300 DPI, 3 mm bleed)")
    p.add_argument("--run", "--run-dir", dest="run_dir", type=Path, metavar="RUN_DIR",
                   help="run directory to cache stages in (default: OUT.run next to the output); "
                   "an existing one is reused: only stages whose inputs changed run again")
    p.add_argument("--from", dest="from_png", type=Path, metavar="OUT.png",
                   help="reproduce the run stored in a figurine PNG (settings, seed, prompts)")
    p.add_argument("--store-embedding", action="store_true",
                   help="also keep the face embedding in the run directory (off: it is never written)")
    p.add_argument("--force", action="store_true", help="overwrite existing output files")
    add_config_args(p)
    return p


def build_request(args, previous: dict):
    """Merge: a previous run's request (from --run or --from), then what this command line says."""
    from figurine.make import Request, slug

    values = {k: previous.get(k) for k in REPEATABLE if previous.get(k) not in (None, [], "")}
    for k in REPEATABLE:
        v = getattr(args, k, None)
        if v not in (None, []):
            values[k] = v
    if values.get("name") is None:
        raise InputError("--name is required (the name printed on the box)")
    for k in ("accessory_images",):
        values[k] = [Path(p) for p in values.get(k) or []]
    for k in ("pose_from", "pdf", "output"):
        if values.get(k) is not None:
            values[k] = Path(values[k])
    values.setdefault("accessories", [])
    if args.from_png:
        values.pop("output", None) if not args.output else None
        values.pop("pdf", None) if not args.pdf else None
    output = values.pop("output", None) or Path(f"{slug(values['name'])}.png")
    return Request(photo=args.photo, output=output, run_dir=args.run_dir, force=args.force,
                   store_embedding=args.store_embedding, **values)


def run(args) -> int:
    from figurine.config import load_config
    from figurine.make import load_record

    if args.verbose:
        logging.getLogger("figurine").setLevel(logging.INFO)
    previous, stored_config = {}, None
    if args.from_png:
        from figurine.provenance import read_provenance

        record = read_provenance(args.from_png)
        previous, stored_config = record.get("request", {}), record.get("config")
        previous["seed"] = record.get("resolved", {}).get("seed", previous.get("seed"))
        if args.photo is None:
            raise InputError("--from needs the photo again: figurine make --from OUT.png PHOTO")
    elif args.run_dir and (args.run_dir / "run.json").exists():
        record = load_record(args.run_dir)
        previous, stored_config = record.get("request", {}), record.get("config")
    elif args.photo is None:
        raise InputError("PHOTO is required (or --run RUN_DIR to re-run a previous make)")
    cfg = load_config(args.config, args.overrides, args.weights,
                      stored=None if args.config else stored_config)
    req = build_request(args, previous)
    from figurine.make import make

    result = make(req, cfg)
    print(f"wrote {result.output} (run directory {result.run_dir})")
    if result.reused:
        print(f"reused: {', '.join(result.reused)}")
    print(result.energy_line)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use: figurine make")
