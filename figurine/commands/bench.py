"""figurine bench: compare configurations on your own photos and GPU: time, energy, memory, likeness.

    figurine bench --config configs/bench-30step.toml --config configs/bench-4step.toml \\
        --photos photos/ --runs 3 --rounds 2 --warmup 1 --out bench-out/
    figurine bench --config bench-30step --out bench-out/ --random-weights

Each --config is ONE configuration to compare (over figurine's defaults); unlike `figurine make`,
several --config files do not layer. --set applies to every configuration. Every image is a
`figurine make` call. Writes bench.json, bench.csv, bench.md and bench.png into --out. See
figurine/bench.py for what is measured and docs/energy.md for the energy method.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from figurine.errors import InputError


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("bench", help="measure time, energy, VRAM and likeness per configuration",
                       description=__doc__.splitlines()[0])
    p.add_argument("--config", action="append", default=[], type=Path, metavar="FILE", dest="configs",
                   help="one configuration to compare (TOML over the defaults, or a shipped one by name: "
                   "bench-30step, tiny, ...); repeat to compare several (they do NOT layer, unlike `make`)")
    p.add_argument("--photos", type=Path, metavar="DIR",
                   help="folder of photos (.jpg .jpeg .png .webp); with --random-weights and no insightface "
                   "pack, a drawn test face is used instead")
    p.add_argument("--runs", type=int, default=3, metavar="N",
                   help="images of each photo in one measured block, one energy window (3)")
    p.add_argument("--rounds", type=int, default=2, metavar="R",
                   help="measured rounds: a bare-diffusers block then a figurine block, alternating (2)")
    p.add_argument("--warmup", type=int, default=1, metavar="K", help="unmeasured images of each kind first (1)")
    p.add_argument("--cooldown", type=float, default=0.0, metavar="S",
                   help="idle seconds before each measured block, so each starts from a cooler GPU (0)")
    p.add_argument("--out", type=Path, metavar="DIR", help="folder for bench.json/.csv/.md/.png")
    p.add_argument("--random-weights", action="store_true",
                   help="full-size SDXL + ControlNet + FaceID with random weights (no files needed), "
                   "measured beside a bare diffusers call on the same modules")
    p.add_argument("--weights", type=Path, metavar="DIR",
                   help="weights root (default: $FIGURINE_WEIGHTS or ./weights)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override one setting in every configuration, e.g. --set generation.steps=20")
    p.add_argument("--accessory", action="append", dest="accessories", metavar="TEXT",
                   help="accessory generated for every image; repeat (default: two)")
    p.add_argument("--no-accessories", action="store_true", help="skip the accessories stage")
    p.add_argument("--arch", type=Path, metavar="DIR",
                   help="architecture configs for --random-weights (default: configs/arch, full size)")
    p.add_argument("--no-bare", action="store_true", help="with --random-weights: skip the bare diffusers call")
    p.add_argument("--force", action="store_true", help="overwrite bench outputs already in --out")
    p.add_argument("-v", "--verbose", action="store_true", help="print what each figurine call prints")
    return p


def run(args) -> int:
    from figurine.bench import DEFAULT_ACCESSORIES, BenchOptions, run_bench

    if not args.configs:
        raise InputError("--config FILE is required (repeat it to compare configurations)")
    if args.out is None:
        raise InputError("--out DIR is required")
    if args.arch is not None and not args.random_weights:
        raise InputError("--arch only applies with --random-weights")
    if args.verbose:
        logging.getLogger("figurine").setLevel(logging.INFO)
    accessories = [] if args.no_accessories else (args.accessories or list(DEFAULT_ACCESSORIES))
    opts = BenchOptions(
        configs=args.configs, photos=args.photos, out=args.out, runs=args.runs, rounds=args.rounds,
        warmup=args.warmup, cooldown=args.cooldown, random_weights=args.random_weights, weights=args.weights,
        overrides=args.overrides, accessories=accessories, arch=args.arch, bare=not args.no_bare,
        force=args.force, verbose=args.verbose,
        command=["figurine", *sys.argv[1:]] if sys.argv and "figurine" in sys.argv[0] else sys.argv[:],
    )
    report = run_bench(opts)
    from figurine.bench import OUTPUTS, markdown

    summary = markdown(report).split("\n\n## ")[0]
    print(summary.rstrip())
    print(f"wrote {', '.join(str(opts.out / f) for f in OUTPUTS)}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use: figurine bench")
