"""Options shared by the commands that load settings: --config, --set, --weights, --verbose."""

from __future__ import annotations

import argparse


def add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", action="append", default=[], metavar="FILE",
                   help="TOML settings file; repeat to layer several (later wins)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override one setting, e.g. --set generation.steps=20")
    p.add_argument("--weights", metavar="DIR",
                   help="weights root (default: $FIGURINE_WEIGHTS or ./weights)")
    p.add_argument("-v", "--verbose", action="store_true", help="print the prompts and each stage")


def config_from_args(args: argparse.Namespace):
    from figurine.config import load_config

    return load_config(args.config, args.overrides, args.weights)
