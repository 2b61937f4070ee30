"""The run directory: figurine's cache and unit of work, one folder per figure.

    from figurine.rundir import RunDir
    run = RunDir("ada.run")
    record = run.load()                       # {} for a new run; validated, bounded
    stage = run.reusable("figure", key)       # the stored stage if its key matches and its files exist
    name = run.save_image(image, "figure-1a2b3c4d-0.png")
    run.commit(record)                        # run.json, atomically

What it holds: the pose image, every raw figure and accessory picture, their cut-outs, the
package, run.json (the record: request, resolved settings, stage keys, scores, timings, energy)
and, after an unexpected error, error.log.

Rules, because a run directory may have been copied, shared or tampered with:
1. Files are addressed by plain names inside the folder (letters, digits, '.', '_', '-'): no
   path, no '..', no symlink followed, nothing but a regular file read.
2. run.json is read with bounds (size, nesting) and every field used is type-checked; a bad one
   is one InputError line naming the file.
3. A stage file's name carries its key (figure-<key>-0.png), so a file is never rewritten with
   other content under a name that run.json already describes. The new file is written first,
   then run.json is replaced in one step: an interrupted re-run leaves the old, consistent
   record (plus an unreferenced file that the next commit removes).
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

from figurine.errors import InputError

RUN_JSON = "run.json"
ERROR_LOG = "error.log"
MAX_RECORD_BYTES = 8 << 20
MAX_RECORD_DEPTH = 32
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# Files figurine writes into a run directory; only these are ever cleaned up.
_OWN_FILES = re.compile(r"(figure|accessory|pose|package)-[A-Za-z0-9._-]*\.(png|jpg|jpeg|webp)|package\.(png|jpg|jpeg|webp)")


def check_name(name: object, what: str = "a run file") -> str:
    """A plain file name inside the run directory, or InputError."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
        raise InputError(f"{what} has a name that is not a plain file name inside the run directory: {str(name)[:80]!r}")
    return name


class RunDir:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.record_path = self.path / RUN_JSON

    # -- files ------------------------------------------------------------------------------
    def file(self, name: str) -> Path:
        return self.path / check_name(name)

    def has(self, name: str) -> bool:
        """The name is a regular file here (a symlink, folder, FIFO or device is not)."""
        try:
            return stat.S_ISREG(os.lstat(self.file(name)).st_mode)
        except OSError:
            return False

    def open_image(self, name: str, what: str, rgba: bool = True):
        """A stored picture (as RGBA, or in its own mode); one line when it is missing or not a picture."""
        from PIL import Image, UnidentifiedImageError

        if not self.has(name):
            raise InputError(f"{self.path / name} is missing or not a regular file; the run directory is "
                             "incomplete (run figurine make again without --run)")
        try:
            with Image.open(self.file(name)) as im:
                if im.width * im.height > 64_000_000:
                    raise InputError(f"{self.path / name}: {what} is too large ({im.width}x{im.height})")
                return im.convert("RGBA") if rgba else im.copy()
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
            raise InputError(f"{self.path / name}: {what} is not a readable picture ({type(e).__name__})") from None

    def save_image(self, image, name: str) -> str:
        from figurine.outputs import atomic_write

        atomic_write(self.file(name), lambda f: image.save(f, format="PNG"), force=True)
        return name

    def save_bytes(self, data: bytes, name: str) -> str:
        from figurine.outputs import atomic_write

        atomic_write(self.file(name), lambda f: f.write(data), force=True)
        return name

    # -- the record -------------------------------------------------------------------------
    def create(self) -> None:
        if self.path.exists() and (self.path.is_symlink() or not self.path.is_dir()):
            raise InputError(f"{self.path}: the run directory exists and is not a folder")
        if not self.path.parent.is_dir():
            raise InputError(f"{self.path.parent}: folder does not exist")
        self.path.mkdir(exist_ok=True)

    def load(self) -> dict:
        """run.json, validated; {} when there is none."""
        if not self.record_path.exists() and not self.record_path.is_symlink():
            return {}
        if not self.has(RUN_JSON):
            raise InputError(f"{self.record_path}: not a regular file")
        raw = self.record_path.read_bytes() if self.record_path.stat().st_size <= MAX_RECORD_BYTES else None
        if raw is None:
            raise InputError(f"{self.record_path}: larger than {MAX_RECORD_BYTES >> 20} MB; not a figurine run")
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise InputError(f"{self.record_path}: not a readable figurine run ({type(e).__name__})") from None
        except RecursionError:
            raise InputError(f"{self.record_path}: nested too deeply; not a figurine run") from None
        if not isinstance(data, dict):
            raise InputError(f"{self.record_path}: not a figurine run (not a JSON object)")
        if _depth(data) > MAX_RECORD_DEPTH:
            raise InputError(f"{self.record_path}: nested too deeply; not a figurine run")
        check_record(data, self.record_path)
        return data

    def commit(self, record: dict) -> None:
        """Replace run.json in one step, then remove stage files no record refers to."""
        body = json.dumps(record, indent=2, sort_keys=True).encode()
        self.save_bytes(body, RUN_JSON)
        self._clean(referenced(record))

    def _clean(self, keep: set[str]) -> None:
        for entry in os.scandir(self.path):
            if entry.is_file(follow_symlinks=False) and _OWN_FILES.fullmatch(entry.name) and entry.name not in keep:
                try:
                    os.unlink(entry.path)
                except OSError:
                    pass

    def reusable(self, record: dict, stage: str, key: str) -> dict | None:
        """The stored stage if its key matches and every file it names is here."""
        old = record.get("stages", {}).get(stage)
        if isinstance(old, dict) and old.get("key") == key and all(self.has(f) for f in stage_files(old)):
            return old
        return None


def stage_files(stage: dict) -> list[str]:
    """The files a stored figure stage needs to be reused (its cut-out is made again if missing)."""
    return list(stage.get("files", [])) + ([stage["pose_image"]] if stage.get("pose_image") else [])


def referenced(record: dict) -> set[str]:
    stages = record.get("stages", {})
    fig = stages.get("figure", {})
    names = set(stage_files(fig)) | ({fig["matte"]} if fig.get("matte") else set())
    detail = stages.get("detail")
    if isinstance(detail, dict) and detail.get("file"):
        names.add(detail["file"])
    for item in stages.get("accessories", {}).get("items", []):
        names.update(n for n in (item.get("raw"), item.get("matte")) if n)
    if record.get("package"):
        names.add(record["package"])
    return names


def _depth(value, limit: int = MAX_RECORD_DEPTH) -> int:
    stack, deepest = [(value, 1)], 0
    while stack and deepest <= limit:
        item, d = stack.pop()
        deepest = max(deepest, d)
        if isinstance(item, dict):
            stack += [(v, d + 1) for v in item.values()]
        elif isinstance(item, list):
            stack += [(v, d + 1) for v in item]
    return deepest


def _bad(path: Path, what: str) -> InputError:
    return InputError(f"{path}: {what}; not a figurine run figurine can use (make it again without --run)")


def check_record(data: dict, path: Path) -> None:
    """The fields figurine reads back, type-checked (names inside the folder, numbers in range)."""
    stages = data.get("stages", {})
    if not isinstance(stages, dict):
        raise _bad(path, "'stages' is not a table")
    fig = stages.get("figure")
    if fig is not None:
        if not isinstance(fig, dict):
            raise _bad(path, "'stages.figure' is not a table")
        files = fig.get("files")
        if not (isinstance(files, list) and len(files) >= 1):
            raise _bad(path, "the figure stage lists no figures")
        for name in files + [fig[k] for k in ("pose_image", "matte") if fig.get(k) is not None]:
            check_name(name, f"{path}: a figure file")
        best = fig.get("best")
        if isinstance(best, bool) or not isinstance(best, int) or not 0 <= best < len(files):
            raise _bad(path, f"'best' is not a figure index (got {str(best)[:20]})")
        scores = fig.get("scores", [])
        if not isinstance(scores, list) or not all(s is None or isinstance(s, (int, float)) for s in scores):
            raise _bad(path, "the identity scores are not numbers")
        if not isinstance(fig.get("key", ""), str):
            raise _bad(path, "the figure key is not text")
    detail = stages.get("detail")
    if detail is not None:
        if not isinstance(detail, dict) or not isinstance(detail.get("key", ""), str):
            raise _bad(path, "'stages.detail' is not a table")
        check_name(detail.get("file"), f"{path}: the detail pass's picture")
    acc = stages.get("accessories")
    if acc is not None:
        items = acc.get("items") if isinstance(acc, dict) else None
        if not isinstance(items, list):
            raise _bad(path, "'stages.accessories.items' is not a list")
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("text", ""), str):
                raise _bad(path, "an accessory entry is not a table with a text")
            for k in ("raw", "matte"):
                if item.get(k) is not None:
                    check_name(item[k], f"{path}: an accessory picture")
            if not isinstance(item.get("key", ""), str):
                raise _bad(path, "an accessory key is not text")
    outputs = data.get("outputs", [])
    if not isinstance(outputs, list) or not all(isinstance(h, str) and re.fullmatch(r"[0-9a-f]{64}", h) for h in outputs):
        raise _bad(path, "'outputs' is not a list of sha256 digests")
    for key in ("salt",):
        if key in data and not isinstance(data[key], str):
            raise _bad(path, f"'{key}' is not text")
    if "request" in data and not isinstance(data["request"], dict):
        raise _bad(path, "'request' is not a table")
    if "config" in data and not isinstance(data["config"], dict):
        raise _bad(path, "'config' is not a table")
