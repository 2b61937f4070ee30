"""What a batch has to do: each checked row is done already, or to be made (again).

    from figurine.batch.plan import make_plan, row_paths
    plan = make_plan(specs, outdir, pdf=False)
    [(p.spec.row_id, p.action) for p in plan]      # ("row-0001", "skip"), ("row-0002", "make"), ...
    row_paths(outdir, "row-0002").package          # OUTDIR/row-0002/package.png

A row's folder, OUTDIR/<row id>/ (figurine/pipeline.py writes the first four as one unit):

    package.png    the box (provenance inside)
    package.json   its settings
    package.pdf    the print PDF (with --pdf)
    run/           the run directory: every stage cached under its key
    row.json       written last, atomically: the row's digest, the sha256 of each output, the result
    attempts.json  one entry per time a worker started the row (which worker, which batch run)

Nothing lost, nothing done twice: a row is skipped only when row.json is readable, its digest is
the row's digest now, and every output it lists is there with that sha256. Anything else (no
row.json: never made, or stopped before it was written; a changed setting, name or photo; an
output removed or edited) makes the row again, through its run directory, so only the stages
whose inputs changed run: a new name re-packs the box without generating anything.

The digest is an HMAC, with a salt of the row's own (kept in row.json), over the row's settings
and the sha256 of each photo: it tells a changed photo without identifying the photo anywhere else
(as the run directory's photo key does).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from figurine.batch.manifest import RowSpec
from figurine.outputs import file_sha256

ROW_JSON = "row.json"
ATTEMPTS_JSON = "attempts.json"
MAX_ROW_JSON_BYTES = 1 << 20


@dataclass(frozen=True)
class RowPaths:
    folder: Path
    package: Path
    sidecar: Path
    pdf: Path
    run_dir: Path
    row_json: Path
    attempts: Path


def row_paths(outdir: Path, row_id: str) -> RowPaths:
    folder = Path(outdir) / row_id
    return RowPaths(folder, folder / "package.png", folder / "package.json", folder / "package.pdf",
                    folder / "run", folder / ROW_JSON, folder / ATTEMPTS_JSON)


@dataclass
class PlannedRow:
    spec: RowSpec
    action: str          # "skip" (done, outputs match) | "make" (new) | "update" (changed or unfinished)
    why: str             # one line for --dry-run
    salt: str
    digest: str
    previous: dict | None = None  # the row.json of a skipped row (its result, for the summary)


def make_plan(specs: list[RowSpec], outdir: Path, pdf: bool) -> list[PlannedRow]:
    return [plan_row(spec, outdir, pdf) for spec in specs]


def plan_row(spec: RowSpec, outdir: Path, pdf: bool) -> PlannedRow:
    paths = row_paths(outdir, spec.row_id)
    old = read_row_json(paths.row_json)
    salt = old.get("salt") if isinstance(old.get("salt"), str) and len(old.get("salt", "")) == 32 else secrets.token_hex(16)
    digest = row_digest(spec, salt, pdf)
    if not old:
        if paths.run_dir.is_dir():
            return PlannedRow(spec, "update", "started before, not finished: made again from its run directory",
                              salt, digest)
        return PlannedRow(spec, "make", "new", salt, digest)
    if old.get("digest") != digest:
        return PlannedRow(spec, "update", "its settings, name or photo changed: only the changed stages run",
                          salt, digest)
    missing = outputs_changed(paths.folder, old.get("files"))
    if missing:
        return PlannedRow(spec, "update", f"{missing} is missing or changed: written again", salt, digest)
    return PlannedRow(spec, "skip", "done: outputs match the row", salt, digest, previous=old)


def row_digest(spec: RowSpec, salt: str, pdf: bool) -> str:
    body = json.dumps({"settings": spec.settings, "photos": spec.photo_digests, "pdf": bool(pdf)},
                      sort_keys=True, default=str).encode()
    return hmac.new(salt.encode(), body, hashlib.sha256).hexdigest()[:32]


def read_row_json(path: Path) -> dict:
    """A row.json, or {} if it is missing, not a regular file, too large or not what we wrote."""
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_ROW_JSON_BYTES:
            return {}
        data = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return {}
    if not isinstance(data, dict) or not isinstance(data.get("digest"), str) or not isinstance(data.get("files"), dict):
        return {}
    return data


def outputs_changed(folder: Path, files: object) -> str | None:
    """The first output row.json lists that is missing or has other content; None when all match."""
    if not isinstance(files, dict) or not files:
        return "its output list"
    for name, sha in files.items():
        path = folder / str(name)
        if not isinstance(name, str) or "/" in name or name.startswith(".") or not isinstance(sha, str):
            return "its output list"
        if path.is_symlink() or not path.is_file() or file_sha256(path) != sha:
            return name
    return None


def format_plan(plan: list[PlannedRow], bad: list, manifest: str, workers: str) -> str:
    """--dry-run's table: one line per row, then the counts."""
    lines = [f"{'line':>5}  {'id':<20} {'action':<7} {'name':<28} photos  note"]
    entries = [(p.spec.line, p.spec.row_id, p.action, p.spec.request["name"], str(len(p.spec.photos)), p.why)
               for p in plan] + [(b.line, b.row_id or "?", "bad", b.name or "", "", b.reason) for b in bad]
    for line, row_id, action, name, photos, note in sorted(entries):
        lines.append(f"{line:>5}  {row_id:<20} {action:<7} {name[:28]:<28} {photos:>6}  {note}")
    todo = sum(1 for p in plan if p.action != "skip")
    lines.append(f"{manifest}: {len(plan) + len(bad)} rows: {todo} to make, {len(plan) - todo} done already, "
                 f"{len(bad)} bad; {workers}")
    return "\n".join(lines)
