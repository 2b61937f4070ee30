"""Inputs: the figure to print, from a `figurine make` run directory or from a picture.

    from pathlib import Path
    from figurine.print3d.inputs import from_picture, from_run
    src = from_run(Path("ada.run"))                 # the packaged figure's cut-out and the name
    src = from_picture(Path("figure.png"), "Ada")   # a cut-out, or a figure on a plain backdrop
    print(src.name, src.image.size, src.cache)      # cache: ada.run/print3d, or None

A run directory is untrusted input (it may come from someone else): it is read through
figurine.rundir.RunDir (bounded run.json, plain file names inside the folder, regular files
only, no links followed); stages.figure.matte is the packaged figure's cut-out; the name must be
a string. Anything else is one InputError line. The picture itself is opened with the
packaging's size limits; a picture without alpha is cut off its backdrop by figurine/matte.py.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from figurine.errors import InputError

RUN_JSON = "run.json"
CACHE_FOLDER = "print3d"


@dataclass
class Source:
    image: object  # PIL RGBA cut-out
    name: str  # the figure's name ("" when unknown)
    digest: str  # sha256 of the picture's pixels and size: the cache key's input
    cache: Path | None  # the run's print3d/ folder, None for a loose picture
    label: str  # where it came from, for messages ("ada.run: figure-0-matte.png")


def from_run(run_dir: Path) -> Source:
    """The packaged figure's cut-out and the name from a make run directory."""
    from figurine.rundir import RunDir

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: not a folder (give the run directory `figurine make` wrote, e.g. ada.run)")
    run = RunDir(run_dir)
    if not run.has(RUN_JSON):
        raise InputError(f"{run_dir}: no {RUN_JSON}; not a figurine run directory")
    record = run.load()  # bounded and type-checked: names inside the folder only
    figure = record.get("stages", {}).get("figure")
    if not figure or not figure.get("matte"):
        raise InputError(f"{run.record_path}: the run has no cut-out figure (did `figurine make` finish?)")
    image = run.open_image(figure["matte"], "the figure's cut-out")
    name = record.get("request", {}).get("name", "")
    if not isinstance(name, str):
        raise InputError(f"{run.record_path}: request.name must be a string")
    cache = run_dir / CACHE_FOLDER
    if cache.is_symlink() or (cache.exists() and not cache.is_dir()):
        raise InputError(f"{cache}: exists and is not a folder; cannot keep the print cache there")
    return Source(image, name.strip(), pixel_digest(image), cache, f"{run_dir}: {figure['matte']}")


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
