"""figurine bench (placeholder until its stage lands)."""

from figurine.errors import FigurineError


def add_parser(sub):
    return sub.add_parser("bench", help="(not yet available)")


def run(args) -> int:
    raise FigurineError("figurine bench is not available yet")
