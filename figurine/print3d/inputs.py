"""Inputs: the figure to print, from a `figurine make` run directory or from a picture.

    from pathlib import Path
    from figurine.print3d.inputs import from_picture, from_run
    src = from_run(Path("ada.run"))                 # the packaged figure's cut-out and the name
    src = from_picture(Path("figure.png"), "Ada")   # a cut-out, or a figure on a plain backdrop
    print(src.name, src.image.size, src.cache)      # cache: ada.run/print3d, or None

A run directory is untrusted input (it may come from someone else): run.json must be a JSON
object whose stages.figure names its mattes as plain file names inside the run directory; the
chosen one (stages.figure.best, an index) must be a regular file there, not a link; the name
must be a string. Anything else is one InputError line. The picture itself is opened with the
packaging's size limits; a picture without alpha is cut off its backdrop by figurine/matte.py.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from figurine.errors import InputError

RUN_JSON = "run.json"
CACHE_FOLDER = "print3d"
MAX_RUN_JSON = 16 << 20


@dataclass
class Source:
    image: object  # PIL RGBA cut-out
    name: str  # the figure's name ("" when unknown)
    digest: str  # sha256 of the picture's pixels and size: the cache key's input
    cache: Path | None  # the run's print3d/ folder, None for a loose picture
    label: str  # where it came from, for messages ("ada.run: figure-0-matte.png")


def from_run(run_dir: Path) -> Source:
    """The best figure candidate's matte and the name from a make run directory."""
    from figurine.packaging import open_picture

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: not a folder (give the run directory `figurine make` wrote, e.g. ada.run)")
    path = run_dir / RUN_JSON
    if not path.is_file():
        raise InputError(f"{run_dir}: no {RUN_JSON}; not a figurine run directory")
    if path.stat().st_size > MAX_RUN_JSON:
        raise InputError(f"{path}: too large to be a figurine run record")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: not a readable figurine run ({e.__class__.__name__})") from None
    figure = record.get("stages", {}).get("figure") if isinstance(record, dict) and isinstance(record.get("stages"), dict) else None
    if not isinstance(figure, dict):
        raise InputError(f"{path}: the run has no figure stage (did `figurine make` finish?)")
    mattes, best = figure.get("mattes"), figure.get("best", 0)
    if not isinstance(mattes, list) or not mattes or not all(isinstance(m, str) for m in mattes):
        raise InputError(f"{path}: stages.figure.mattes must be a list of file names")
    if not isinstance(best, int) or isinstance(best, bool) or not 0 <= best < len(mattes):
        raise InputError(f"{path}: stages.figure.best must be an index into the mattes")
    matte = inside(run_dir, mattes[best])
    request = record.get("request")
    name = request.get("name", "") if isinstance(request, dict) else ""
    if not isinstance(name, str):
        raise InputError(f"{path}: request.name must be a string")

    image = open_picture(matte, "figure matte").convert("RGBA")
    cache = run_dir / CACHE_FOLDER
    if cache.is_symlink() or (cache.exists() and not cache.is_dir()):
        raise InputError(f"{cache}: exists and is not a folder; cannot keep the print cache there")
    return Source(image, name.strip(), pixel_digest(image), cache, f"{run_dir}: {matte.name}")


def inside(folder: Path, name: str) -> Path:
    """`name` as a regular file directly inside `folder`: no paths, no '..', no links."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name or Path(name).name != name:
        raise InputError(f"{folder / RUN_JSON}: '{name}' is not a plain file name inside the run directory")
    path = folder / name
    if path.is_symlink():
        raise InputError(f"{path}: is a link; figurine reads only files inside the run directory")
    if not path.is_file():
        raise InputError(f"{path} is missing; the run directory is incomplete (run figurine make again)")
    if path.resolve().parent != folder.resolve():
        raise InputError(f"{path}: not inside the run directory")
    return path


def from_picture(picture, name: str = "") -> Source:
    """A figure picture (path or PIL image): RGBA kept as is, otherwise keyed off its backdrop."""
    from figurine.matte import cut_out
    from figurine.packaging import open_picture

    image = cut_out(open_picture(picture, "figure")).convert("RGBA")
    label = str(picture) if isinstance(picture, (str, Path)) else "figure picture"
    return Source(image, (name or "").strip(), pixel_digest(image), None, label)


def pixel_digest(image) -> str:
    h = hashlib.sha256(f"{image.width}x{image.height}".encode())
    h.update(image.tobytes())
    return h.hexdigest()[:16]
