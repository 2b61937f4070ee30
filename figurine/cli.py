"""The `figurine` command line.

    figurine make selfie.jpg --name "Ada Lovelace" -o ada.png
    figurine --help

Builds the argument parser from figurine/commands/*, runs the chosen command, and turns
FigurineError into one line on stderr and the error's exit code. Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from figurine import __version__
from figurine.commands import COMMANDS
from figurine.errors import FigurineError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="figurine",
        description="Turn a selfie into a boxed action figure, entirely on your own GPU.",
    )
    parser.add_argument("--version", action="version", version=f"figurine {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"figurine.commands.{name}")
        p = module.add_parser(sub)
        p.set_defaults(_run=module.run)
    return parser


class _OneLine(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        level = "warning" if record.levelno >= logging.WARNING else "info"
        return f"figurine: {level}: {record.getMessage()}"


def setup_logging() -> None:
    """figurine's own warnings (and --verbose info) as one line each on stderr."""
    logger = logging.getLogger("figurine")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_OneLine())
        logger.addHandler(handler)
        logger.setLevel(logging.WARNING)
        logger.propagate = False


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    networked = args.command == "weights" and getattr(args, "weights_action", None) == "fetch"
    try:
        if networked:
            return int(args._run(args) or 0)
        # Every other command runs offline: hub/telemetry switches off, outbound sockets refused.
        from figurine import privacy

        privacy.go_offline()
        with privacy.install_network_guard():
            return int(args._run(args) or 0)
    except FigurineError as e:
        print(f"figurine: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("figurine: interrupted", file=sys.stderr)
        return 130
