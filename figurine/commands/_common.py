"""Options shared by the commands: --config, --set, --weights, --verbose; and the help texts
that list the names a user can pass (templates, poses; sizes are argparse choices from
figurine.limits.SIZES).

    p.add_argument("--template", help=template_help())   # "... classic-blister, collector-window, ..."
    p.add_argument("--pose", help=pose_help(default="pose.preset in the config"))

The name lists are read when the help is shown, not when the parser is built: every command
builds every parser, and listing the user's folder then would print its warnings (a badly named
file, a link out of the folder) on each run. Reading them imports nothing heavy (figurine.data
lists file names; no template or pose file is opened), so `figurine make --help` stays fast.
"""

from __future__ import annotations

import argparse
from typing import Callable


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


def template_choices() -> list[str]:
    """Template names: the shipped ones and the user's own (figurine/data.py)."""
    from figurine.data import named_files

    return list(named_files("packaging"))


def pose_choices() -> list[str]:
    """Pose preset names: the shipped ones and the user's own (figurine/data.py)."""
    from figurine.data import named_files

    return list(named_files("poses"))


class LazyHelp(str):
    """A help text whose name list is made when argparse shows it (argparse formats a help
    text with `help % params` and checks it with `.strip()`: both build the full text)."""

    def __new__(cls, make: Callable[[], str]):
        self = super().__new__(cls, "(names listed by --help)")
        self._make = make
        return self

    def __str__(self) -> str:
        return self._make()

    def __mod__(self, params):
        return self._make() % params

    def strip(self, chars=None) -> str:
        return self._make().strip(chars)


def template_help(default: str | None = "classic-blister", paths: bool = True) -> str:
    """--template's help: the template names (`paths`: "or a .toml path", for pack)."""
    def make() -> str:
        names = ", ".join(template_choices()) + (", or a .toml path" if paths else "")
        tail = f" (default: {default})" if default else ""
        return f"packaging template: {names}{tail}"
    return LazyHelp(make)


def pose_help(default: str | None = None) -> str:
    """--pose's help: the pose names (with `figurine poses` for what each one looks like)."""
    def make() -> str:
        tail = f"; default: {default}" if default else ""
        return f"pose preset: {', '.join(pose_choices())} (`figurine poses` describes them{tail})"
    return LazyHelp(make)
