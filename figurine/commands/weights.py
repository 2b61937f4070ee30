"""figurine weights list | fetch | verify: the model files, their licences and their integrity.

    figurine weights list                  # present/missing, sizes, licences (NON-COMMERCIAL flagged)
    figurine weights fetch [--optional]    # download what is missing (the only networked command)
    figurine weights verify                # sha256 of every byte of every file in the model folders
                                           # (links, FIFOs, pickles reported unopened); exit 3 on a problem
    figurine weights list --weights /data/figurine-weights

The weights root is --weights DIR, else $FIGURINE_WEIGHTS, else ./weights.
"""

from __future__ import annotations

import sys

from figurine.commands._common import add_config_args, config_from_args
from figurine.errors import WeightsError


def add_parser(sub):
    p = sub.add_parser("weights", help="list, fetch and verify the model files",
                       description="List, fetch and verify the model weights in the weights root.")
    actions = p.add_subparsers(dest="weights_action", metavar="ACTION")
    ls = actions.add_parser("list", help="show every file: present/missing, size, licence")
    fe = actions.add_parser("fetch", help="download missing files from Hugging Face (pinned, sha256-checked)")
    fe.add_argument("--optional", action="store_true",
                    help="also fetch optional files (the OpenPose annotator for --pose-from)")
    fe.add_argument("--force", action="store_true", help="download again even if present")
    ve = actions.add_parser("verify", help="hash every file in the model folders and check it against the "
                                           "manifest and the hashes recorded at fetch time")
    for q in (ls, fe, ve):
        add_config_args(q)
    return p


def run(args) -> int:
    action = getattr(args, "weights_action", None)
    if action is None:
        print("usage: figurine weights {list,fetch,verify} [--weights DIR]", file=sys.stderr)
        return 2
    root = config_from_args(args).weights_root
    return {"list": _list, "fetch": _fetch, "verify": _verify}[action](root, args)


def _list(root, args) -> int:
    from figurine import weights

    rows = weights.status(root)
    table = [("PATH", "STATE", "SIZE", "LICENCE", "USE")]
    for s in rows:
        e = s.entry
        state = s.state + (" (optional)" if e.optional and s.state == "missing" else "")
        size = weights.format_size(s.size if s.size is not None else e.size)
        use = "NON-COMMERCIAL" if e.non_commercial else "commercial ok"
        table.append((e.path, state, size, e.licence, use))
    widths = [max(len(r[i]) for r in table) for i in range(4)]
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[4])
    missing = [s for s in rows if not s.ok and not s.entry.optional]
    nc = sorted({s.entry.group or s.entry.path for s in rows if s.entry.non_commercial})
    print(f"\nweights root: {root}")
    print(f"{sum(s.ok for s in rows)} of {len(rows)} files present"
          + (f"; {len(missing)} required missing or wrong size: run `figurine weights fetch`" if missing else ""))
    if nc:
        print("NON-COMMERCIAL: " + ", ".join(nc) + " are licensed for non-commercial research only;"
              " do not use figurine's output commercially with them.")
    return 0


def _fetch(root, args) -> int:
    from figurine import weights

    written = weights.fetch(root, only_missing=not args.force, include_optional=args.optional)
    if written:
        print(f"fetched {len(written)} file(s) into {root}")
    return 0


def _verify(root, args) -> int:
    from figurine import weights

    problems = weights.verify(root)
    for p in problems:
        print(("warning: " if not p.fatal else "problem: ") + p.message)
    fatal = [p for p in problems if p.fatal]
    if fatal:
        raise WeightsError(f"{len(fatal)} weights problem(s) in {root}", hint="run `figurine weights fetch`")
    print(f"weights ok in {root}")
    return 0
