"""A batch manifest: one row per figure, read from CSV or JSON Lines and checked before any model loads.

    from figurine.batch.manifest import read_manifest, check_rows
    rows = read_manifest("team.csv")                     # Row(line, values), in file order
    good, bad = check_rows(rows, cfg, overrides=[], weights=None)
    for problem in bad:
        print(problem.line_text())                       # "team.csv line 4: photo not found: x.jpg"

The columns (CSV header, JSON Lines keys), every one but photo and name optional:

    id           the row's folder under OUTDIR (letters, digits, . _ -); default row-0001, row-0002...
                 in file order: give ids if you will insert or reorder rows later
    photo        one or more photo paths of the same person (CSV: separated by ';'; JSON: a list)
    name         the name on the box
    tagline      profession or tagline
    outfit       what the figure wears (default: from the tagline)
    accessories  CSV: 'punch cards;brass gear'; JSON: a list of texts
    pose, template, size, seed, candidates, edition    as `figurine make` takes them
    set          per-row settings, CSV: 'prompt.style=vinyl toy;pose.limb_width=20'; JSON: a table
                 {"prompt.style": "vinyl toy"} or a list of 'key=value' lines

Relative photo paths resolve against the manifest's own folder. Blank lines are skipped, and so
are lines whose first cell starts with '#' (comments). Line numbers are the file's own (a CSV
field may span lines: its row is numbered by the line it starts on).

Per-row settings (`set`) may change only what the pipeline reads per figure: the prompt, pose,
accessories, packaging and energy sections and face.index. Settings the workers' loaded models
use (model.*, runtime.*, generation.*, the face detector's, matte.*) hold for the whole batch:
give them with --set / --config on the command line. ROW_SECTIONS and ROW_KEYS say exactly which.

Checks per row (check_rows), each a one-line reason naming the row's line: the columns' types
and ranges (figurine.request), every per-row setting (figurine.config: known key, type, range),
template, size and pose exist, the name and tagline fit the template (packaging.validate_text),
the accessory count and texts, every photo readable and within the limits (figurine.photo:
decoded once, in memory, and dropped; only a digest is kept to tell a changed photo on resume),
unique ids.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from figurine.errors import FigurineError, InputError

COLUMNS = ("id", "photo", "name", "tagline", "outfit", "accessories", "pose", "template", "size", "seed",
           "candidates", "edition", "set")
REQUIRED = ("photo", "name")
MAX_MANIFEST_BYTES = 32 * 2**20
MAX_ROWS = 100_000
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# Per-row settings: whole sections, or single keys of the others (see the module text).
ROW_SECTIONS = ("prompt", "pose", "accessories", "packaging", "energy")
ROW_KEYS = {"face": ("index",)}


@dataclass
class Row:
    """One manifest row as read: its line number and its values (strings from CSV, JSON values)."""

    line: int
    number: int          # 1-based position among the rows (the default id)
    values: dict


@dataclass
class Problem:
    """A row that cannot be made, and why (one line)."""

    line: int
    reason: str
    row_id: str | None = None
    name: str | None = None

    def line_text(self, manifest: str = "") -> str:
        where = f"{manifest} line {self.line}" if manifest else f"line {self.line}"
        return f"{where}: {self.reason}"


@dataclass
class RowSpec:
    """A checked row: everything a worker needs except the photo bytes (read again at dispatch)."""

    line: int
    row_id: str
    request: dict              # Request fields (no paths, no output): name, tagline, accessories...
    photos: list[Path]         # absolute paths, read again when the row is sent to a worker
    photo_digests: list[str]   # sha256 of each photo's bytes: in memory only, never written
    sets: list[str]            # the row's own key=value settings
    cfg: object = None         # the row's Config (batch settings + its own)
    settings: dict = field(default_factory=dict)  # what decides the row's outputs (for its digest)


# -- reading --------------------------------------------------------------------------------------

def read_manifest(path: str | Path) -> list[Row]:
    """Rows of a CSV (.csv) or JSON Lines (.jsonl, .ndjson) manifest; InputError if unreadable."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"manifest not found: {path}")
    size = path.stat().st_size
    if size > MAX_MANIFEST_BYTES:
        raise InputError(f"{path} is {size / 2**20:.0f} MiB; a manifest may be at most {MAX_MANIFEST_BYTES // 2**20} MiB")
    try:
        text = path.read_bytes().decode("utf-8-sig")  # a spreadsheet's byte-order mark is fine
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); save it as UTF-8") from None
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror or e}") from None
    suffix = path.suffix.lower()
    if suffix == ".csv":
        rows = _read_csv(text, path)
    elif suffix in (".jsonl", ".ndjson"):
        rows = _read_jsonl(text, path)
    else:
        raise InputError(f"{path}: a manifest is .csv or .jsonl (JSON Lines), not '{suffix or 'no extension'}'")
    if not rows:
        raise InputError(f"{path} has no rows")
    if len(rows) > MAX_ROWS:
        raise InputError(f"{path} has {len(rows)} rows; at most {MAX_ROWS}")
    return rows


def _read_csv(text: str, path: Path) -> list[Row]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header, start, rows = None, 1, []
    try:
        for record in reader:
            line, start = start, reader.line_num + 1
            if not any(cell.strip() for cell in record) or record[0].lstrip().startswith("#"):
                continue
            if header is None:
                header = [cell.strip().lower() for cell in record]
                _check_header(header, path, line)
                continue
            if len(record) > len(header):
                rows.append(Row(line, len(rows) + 1, {"_error": f"{len(record)} cells but the header names "
                                                                f"{len(header)} columns"}))
                continue
            rows.append(Row(line, len(rows) + 1, {k: v for k, v in zip(header, record) if v.strip() != ""}))
    except csv.Error as e:
        raise InputError(f"{path} line {reader.line_num}: not valid CSV ({e})") from None
    if header is None:
        raise InputError(f"{path} has no header line (photo,name,...)")
    return rows


def _check_header(header: list[str], path: Path, line: int) -> None:
    if len(header) == 1 and ";" in header[0]:
        raise InputError(f"{path} line {line}: the columns seem to be separated by ';'; "
                         "figurine batch reads comma-separated CSV (';' separates photos and accessories)")
    unknown = [h for h in header if h not in COLUMNS]
    if unknown:
        raise InputError(f"{path} line {line}: unknown column(s) {', '.join(repr(u) for u in unknown)}; "
                         f"the columns are {', '.join(COLUMNS)}")
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise InputError(f"{path} line {line}: the header has no {' or '.join(missing)} column")
    duplicated = sorted({h for h in header if header.count(h) > 1})
    if duplicated:
        raise InputError(f"{path} line {line}: column(s) named twice: {', '.join(duplicated)}")


def _read_jsonl(text: str, path: Path) -> list[Row]:
    rows = []
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        try:
            values = json.loads(raw)
        except json.JSONDecodeError as e:
            rows.append(Row(line, len(rows) + 1, {"_error": f"not valid JSON ({e.msg} at column {e.colno})"}))
            continue
        if not isinstance(values, dict):
            rows.append(Row(line, len(rows) + 1, {"_error": "a row must be a JSON object {\"photo\": ..., \"name\": ...}"}))
            continue
        unknown = [k for k in values if k not in COLUMNS]
        if unknown:
            values = {"_error": f"unknown key(s) {', '.join(repr(str(u)[:40]) for u in unknown)}; "
                                f"the keys are {', '.join(COLUMNS)}"}
        rows.append(Row(line, len(rows) + 1, {k: v for k, v in values.items() if v is not None}))
    return rows


# -- checking -------------------------------------------------------------------------------------

def check_rows(rows: list[Row], base_dir: Path, files=(), overrides=(), weights=None
               ) -> tuple[list[RowSpec], list[Problem]]:
    """Every row checked (see the module text): the good ones as RowSpecs, the others as Problems.
    `files`, `overrides`, `weights`: the batch's --config, --set and --weights."""
    good, bad = [], []
    configs: dict[tuple, object] = {}
    for row in rows:
        try:
            good.append(check_row(row, base_dir, files, overrides, weights, configs))
        except FigurineError as e:
            bad.append(Problem(row.line, _one_line(e), _row_id_or_none(row), _text_or_none(row.values.get("name"))))
    # Ids must be unique: both rows of a clash are bad (neither would know its folder).
    seen: dict[str, list[RowSpec]] = {}
    for spec in good:
        seen.setdefault(spec.row_id.lower(), []).append(spec)
    for same in seen.values():
        if len(same) > 1:
            for spec in same:
                others = ", ".join(str(s.line) for s in same if s is not spec)
                bad.append(Problem(spec.line, f"id '{spec.row_id}' is also used on line {others}", spec.row_id,
                                   spec.request["name"]))
                good.remove(spec)
    bad.sort(key=lambda p: p.line)
    return good, bad


def check_row(row: Row, base_dir: Path, files=(), overrides=(), weights=None, configs=None) -> RowSpec:
    """One row, checked in the order a user would fix it; InputError/ConfigError with one line."""
    from figurine.config import load_config, parse_override
    from figurine.photo import decode_photo, read_bytes
    from figurine.pipeline import check_request
    from figurine.request import Request

    v = row.values
    if "_error" in v:
        raise InputError(v["_error"])
    # 1. The columns' shapes.
    row_id = _row_id(v.get("id"), row.number)
    photos = _list(v.get("photo"), "photo")
    if not photos:
        raise InputError("no photo given (the photo column)")
    if "name" not in v:
        raise InputError("no name given (the name column)")
    accessories = _list(v.get("accessories"), "accessories")
    sets = _sets(v.get("set"))
    fields = {k: v[k] for k in ("name", "tagline", "outfit", "pose", "template", "size") if k in v}
    for key in ("seed", "candidates", "edition"):
        if key in v:
            fields[key] = _int(v[key], key)
    # 2. Per-row settings: only what the pipeline reads per figure; then types and ranges.
    for line in sets:
        section, key = next((s, k) for s, keys in parse_override(line).items() for k in keys)
        if section not in ROW_SECTIONS and key not in ROW_KEYS.get(section, ()):
            raise InputError(f"setting {section}.{key} holds for the whole batch (the workers' loaded models use it): "
                             f"give it as --set {section}.{key}=... on the command line, not in the set column")
    configs = {} if configs is None else configs  # rows with the same settings share one Config
    if tuple(sets) not in configs:
        configs[tuple(sets)] = load_config(files, list(overrides) + sets, weights)
    cfg = configs[tuple(sets)]
    # 3. The request's own checks (types, ranges, text lengths), with the row's photos as paths.
    paths = [_resolve(p, base_dir) for p in photos]
    request = Request(photos=paths, accessories=accessories, **fields)
    # 4. Names and texts against what exists and what fits: the pipeline's own check.
    template, size, pose = check_request(cfg, request)
    # 5. Photos: read, decoded with the limits, then dropped; a digest tells a changed photo later.
    digests = []
    for i, path in enumerate(paths):
        label = f"{photos[i]}"
        data = read_bytes(path, label)
        decode_photo(data, label)
        digests.append(hashlib.sha256(data).hexdigest())
    stored = {k: getattr(request, k) for k in ("name", "tagline", "outfit", "accessories", "pose", "seed",
                                               "candidates", "template", "size", "edition")}
    settings = {"request": stored, "resolved": {"template": template, "size": size, "pose": pose},
                "config": _picture_settings(cfg)}
    return RowSpec(row.line, row_id, stored, paths, digests, sets, cfg, settings)


def _picture_settings(cfg) -> dict:
    """The settings that decide a row's pictures (for its digest): not where the weights are, not
    speed switches, not the energy figures' grid intensity."""
    d = cfg.to_dict()
    for key in ("weights_root", "sources", "energy"):
        d.pop(key, None)
    d["runtime"] = {k: d["runtime"][k] for k in ("dtype", "vae_fp32")}
    return d


def _one_line(error: FigurineError) -> str:
    return " ".join(str(error).split())[:400]


def _text_or_none(value) -> str | None:
    return value if isinstance(value, str) else None


def _row_id_or_none(row: Row) -> str | None:
    try:
        return _row_id(row.values.get("id"), row.number)
    except InputError:
        return None


def _row_id(value, number: int) -> str:
    if value is None:
        return f"row-{number:04d}"
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value.strip()):
        raise InputError(f"id {str(value)[:70]!r} is not a folder name (1 to 64 letters, digits, '.', '_', '-', "
                         "starting with a letter or digit)")
    return value.strip()


def _list(value, what: str) -> list[str]:
    """'a;b' (CSV) or ["a", "b"] (JSON) or "a" -> ["a", "b"] / ["a"]."""
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(";") if part.strip()] if what == "photo" else \
            [part.strip() for part in value.split(";")] if value.strip() else []
    if isinstance(value, list) and all(isinstance(x, str) for x in value):
        return [x.strip() for x in value]
    raise InputError(f"{what} must be text or a list of texts, got {type(value).__name__}")


def _sets(value) -> list[str]:
    """The set column: 'k=v;k=v', ["k=v", ...] or {"k": v} -> ["k=v", ...]."""
    if value is None:
        return []
    if isinstance(value, dict):
        out = []
        for k, v in value.items():
            if isinstance(v, (dict, list)) or v is None:
                raise InputError(f"set {k}: the value must be text, a number or true/false")
            out.append(f"{k}={json.dumps(v)}")  # a TOML value: JSON's strings, numbers and booleans read the same
        return out
    lines = _list(value, "set")
    for line in lines:
        if "=" not in line:
            raise InputError(f"set: '{line[:60]}' is not key=value")
    return [line for line in lines if line]


def _int(value, what: str) -> int:
    if isinstance(value, bool):
        raise InputError(f"{what} must be a whole number, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d{1,12}\s*", value):
        return int(value)
    raise InputError(f"{what} must be a whole number, got {str(value)[:40]!r}")


def _resolve(photo: str, base_dir: Path) -> Path:
    p = Path(photo).expanduser()
    return p if p.is_absolute() else base_dir / p
