"""figurine batch: one figure per manifest row, on every GPU here or on your own Ray cluster.

    figurine batch team.csv -o out/                    # one worker per GPU (one without a GPU)
    figurine batch team.csv -o out/ --dry-run          # check every row and show the plan
    figurine batch team.csv -o out/ --skip-bad         # make the good rows, report the bad ones
    figurine batch team.jsonl -o out/ --address 10.0.0.5:6379   # join your Ray cluster

Every row is checked before any model loads; bad rows are listed with their line numbers and
the batch stops (exit 2) unless --skip-bad. Running the same command again skips the rows whose
outputs exist and match, and makes the others (a changed name re-packs only that row). Ctrl-C
stops; the next run resumes. Results: OUTDIR/batch.csv and OUTDIR/batch.json.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from pathlib import Path

from figurine.commands._common import add_config_args
from figurine.errors import InputError


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("batch", help="make one figure per row of a CSV / JSON Lines manifest, on all GPUs (Ray)",
                       description=__doc__.splitlines()[0])
    p.add_argument("manifest", type=Path, metavar="MANIFEST",
                   help="CSV (header: photo,name and any of id,tagline,outfit,accessories,pose,template,size,"
                        "seed,candidates,edition,set) "
                        "or JSON Lines (.jsonl) with the same keys; relative photo paths are read from its folder")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUTDIR",
                   help="folder for the results: OUTDIR/<row id>/ per row, OUTDIR/batch.csv and batch.json")
    p.add_argument("--skip-bad", action="store_true", help="make the good rows even if some rows are bad")
    p.add_argument("--dry-run", action="store_true", help="check every row and print the plan; make nothing")
    p.add_argument("--pdf", action="store_true", help="also write a print PDF for every row")
    p.add_argument("--workers", type=int, metavar="N",
                   help="number of workers (default: one per GPU, one on a machine without a GPU)")
    p.add_argument("--address", metavar="HOST:PORT",
                   help="join an existing Ray cluster of your own machines (`ray start --head` prints it) "
                        "instead of starting a local one; OUTDIR must then be a folder every machine shares")
    p.add_argument("--retries", type=int, default=2, metavar="N",
                   help="how often a row whose worker died (killed, out of memory, machine lost) is tried again "
                        "on a restarted worker before it is reported failed (default 2)")
    p.add_argument("--dashboard", action="store_true", help="start Ray's dashboard, on 127.0.0.1 only (default: off)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_config_args(p)
    return p


def run(args) -> int:
    from figurine.batch import manifest as mf
    from figurine.batch.plan import format_plan, make_plan
    from figurine.config import load_config

    if args.verbose:
        logging.getLogger("figurine").setLevel(logging.INFO)
    start = time.monotonic()
    # 1. Settings, manifest, every row checked: nothing loads a model before this is done.
    cfg = load_config(args.config, args.overrides, args.weights)
    outdir = args.output
    if outdir.exists() and (outdir.is_symlink() or not outdir.is_dir()):
        raise InputError(f"{outdir}: exists and is not a folder")
    if not outdir.parent.is_dir():
        raise InputError(f"{outdir.parent}: folder does not exist")
    rows = mf.read_manifest(args.manifest)
    good, bad = mf.check_rows(rows, args.manifest.resolve().parent, args.config, args.overrides, args.weights)
    for problem in bad:
        print(f"figurine: bad row: {problem.line_text(args.manifest.name)}", file=sys.stderr)
    # 2. The plan: rows done already are skipped.
    planned = make_plan(good, outdir, args.pdf)
    if args.dry_run:
        where = f"Ray cluster at {args.address}" if args.address else "a local Ray instance"
        workers = f"{args.workers} worker(s)" if args.workers else "one worker per GPU (one without a GPU)"
        print(format_plan(planned, bad, args.manifest.name, f"{workers} on {where}"))
        return 2 if bad and not args.skip_bad else 0
    if bad and not args.skip_bad:
        raise InputError(f"{len(bad)} of {len(rows)} rows cannot be made (listed above); fix them, "
                         "or use --skip-bad to make the others")
    outdir.mkdir(exist_ok=True)
    _drop_stale_temp_files(outdir, planned)
    return _make(args, cfg, outdir, planned, bad, start)


def _drop_stale_temp_files(outdir: Path, planned: list) -> None:
    """Hidden .part files a killed worker or an earlier killed batch left in the row folders (a
    write SIGKILL cut short; never a finished output): garbage, removed before the rows run again
    and once this run's workers have stopped."""
    from figurine.batch.plan import row_paths
    from figurine.outputs import stale_temp_files

    for p in planned:
        folder = row_paths(outdir, p.spec.row_id).folder
        for sub in (folder, folder / "run"):
            if sub.is_dir() and not sub.is_symlink():
                for stale in stale_temp_files(sub):
                    stale.unlink(missing_ok=True)


def _make(args, cfg, outdir: Path, planned: list, bad: list, start: float) -> int:
    from figurine.batch.plan import plan_row
    from figurine.batch.runner import Runner, RunOptions
    from figurine.batch.summary import Progress, Summary

    summary = Summary()
    for problem in bad:
        summary.add(problem.line, problem.row_id, problem.name, "bad", error=problem.reason)
    for p in planned:
        if p.action == "skip":
            summary.add(p.spec.line, p.spec.row_id, p.spec.request["name"], "done earlier", _previous(p.previous))
    todo = [p for p in planned if p.action != "skip"]
    workers, interrupted, described = [], False, "no worker needed"
    if todo:
        options = RunOptions(workers=args.workers, address=args.address, retries=args.retries, pdf=args.pdf,
                             dashboard=args.dashboard, verbose=args.verbose)
        previous_term = signal.signal(signal.SIGTERM, _interrupt)
        progress = None
        try:
            with Runner(outdir, cfg, options, rows=len(todo)) as runner:
                described = runner.describe()
                print(f"figurine batch: {len(todo)} row(s) to make, {len(planned) - len(todo)} done already, "
                      f"{len(bad)} bad; {described}", file=sys.stderr)
                progress = Progress(len(todo), enabled=not args.no_progress)
                try:
                    for row, result in runner.run(todo):
                        entry = summary.add(row.spec.line, row.spec.row_id, row.spec.request["name"],
                                            result["status"], result)
                        note = (f"line {entry['line']} ({entry['id']}): failed: {entry['error']}"
                                if entry["status"] == "failed" else None)
                        progress.done(entry["status"], note)
                    workers = runner.worker_stats()
                except KeyboardInterrupt:
                    interrupted = True
                    for row in runner.interrupted_rows:
                        # A row a worker finished while the batch stopped is made: its row.json matches.
                        again = plan_row(row.spec, outdir, args.pdf)
                        if again.action == "skip":
                            summary.add(row.spec.line, row.spec.row_id, row.spec.request["name"], "made",
                                        _previous(again.previous))
                        else:
                            summary.add(row.spec.line, row.spec.row_id, row.spec.request["name"], "interrupted",
                                        error="stopped by Ctrl-C; run the same command again to make it")
        except KeyboardInterrupt:
            interrupted = True
        finally:
            if progress is not None:
                progress.close()
            signal.signal(signal.SIGTERM, previous_term)
        # Every worker has stopped now: a write a killed worker cut short (its other row's, too) is
        # garbage, whether Ray retried that row or not.
        _drop_stale_temp_files(outdir, todo)
    totals = summary.write(outdir, time.monotonic() - start, workers,
                           extra={"manifest": args.manifest.name, "workers_described": described})
    print(summary.totals_line(totals))
    print(f"results: {outdir / 'batch.csv'} and {outdir / 'batch.json'}")
    if interrupted:
        print("figurine: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    if totals["failed"]:
        print(f"figurine: error: {totals['failed']} row(s) failed (their lines and reasons are in batch.csv)",
              file=sys.stderr)
        return 1
    return 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _previous(row_json: dict | None) -> dict:
    """The stored result of a row made earlier (our own row.json; types checked all the same)."""
    result = (row_json or {}).get("result")
    if not isinstance(result, dict):
        return {}
    keep = {}
    for key in ("seconds", "identity_score"):
        if isinstance(result.get(key), (int, float)) and not isinstance(result.get(key), bool):
            keep[key] = result[key]
    for key in ("worker", "node", "gpu"):
        if isinstance(result.get(key), str):
            keep[key] = result[key][:200]
    energy = result.get("energy")
    if isinstance(energy, dict):
        keep["energy"] = {k: v for k, v in energy.items()
                          if k in ("gpu_joules_gross", "wh", "co2e_g", "reason") and isinstance(v, (int, float, str))}
    return keep
