"""One module per CLI command. Each has `add_parser(subparsers)` and `run(args) -> int`.

Command modules import only the standard library at top level (plus figurine.errors and
figurine.config); heavy libraries (torch, diffusers, insightface) are imported inside `run`,
so `figurine --help` stays fast.
"""

COMMANDS = ["demo", "make", "batch", "pack", "print3d", "poses", "weights", "doctor", "bench", "serve", "inspect", "keys"]
