"""The `figurine` command line.

    figurine make selfie.jpg --name "Ada Lovelace" -o ada.png
    figurine --help

Builds the argument parser from figurine/commands/*, runs the chosen command, and turns
FigurineError into one line on stderr and the error's exit code. Ctrl-C exits 130.

A closed pipe (`figurine poses | head -2`: head exits after two lines) ends the command quietly
with exit code 141, what the shell reports for a program that SIGPIPE stopped (128 + 13), as
`ls | head` or `yes | head` do: no traceback, nothing more is written. Python ignores SIGPIPE, so
the write raises BrokenPipeError instead; main() catches it, points stdout at /dev/null (so
the interpreter's last flush at exit cannot fail again) and returns 141. Under
`set -o pipefail` the pipeline then fails as it would with those commands.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from figurine import __version__
from figurine.commands import COMMANDS
from figurine.errors import FigurineError


class _Formatter(argparse.HelpFormatter):
    """argparse's help layout, without breaking lines at hyphens (names like arms-crossed)."""

    def _split_lines(self, text, width):
        import textwrap

        return textwrap.wrap(self._whitespace_matcher.sub(" ", text).strip(), width, break_on_hyphens=False)


class _Parser(argparse.ArgumentParser):
    """figurine's parser (and, by argparse's default, each subcommand's): a command-line mistake
    is one line, `figurine: error: <argparse's message> (see <command> --help)`, exit 2, like
    every other user error; no usage block."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"figurine: error: {' '.join(message.split())} (see {self.prog} --help)\n")

    def _check_help(self, action):
        """Newer Pythons (3.14) format each help text when it is added; a LazyHelp lists its names
        only when the help is shown (figurine/commands/_common.py), so it is not checked early."""
        from figurine.commands._common import LazyHelp

        check = getattr(super(), "_check_help", None)
        if check is not None and not isinstance(action.help, LazyHelp):
            check(action)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
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


EXIT_BROKEN_PIPE = 128 + 13  # 141: the shell's code for a program stopped by SIGPIPE


def main(argv: list[str] | None = None) -> int:
    try:
        code = _main(argv)
        sys.stdout.flush()  # a buffered last line meets the closed pipe here, not at exit
        return code
    except BrokenPipeError:
        return _closed_pipe()
    except SystemExit as e:  # --help and --version print too: argparse exits through here
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            return _closed_pipe()
        raise e


def _closed_pipe() -> int:
    """The reader of stdout went away: stop quietly (see the module text)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_BROKEN_PIPE


def _main(argv: list[str] | None) -> int:
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
