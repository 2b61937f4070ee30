"""Write output files whole or not at all, and never over an existing file without --force.

    from figurine.outputs import OutputBatch, atomic_write, save_png
    save_png(image, "ada.png", force=False, text_chunks={"parameters": text}, xmp=packet)
    atomic_write("ada.pdf", lambda f: f.write(pdf_bytes))

    with OutputBatch(force=args.force) as out:     # several files from one run
        out.save_png(card, "ada.png", text_chunks=chunks, xmp=packet)
        out.write("ada.pdf", lambda f: f.write(pdf_bytes))
    # an exception or Ctrl-C inside the block removes every file the batch had finished

How a file is written (atomic_write):
1. Refuse an existing target unless force: OutputExistsError "ada.png exists; use --force to
   overwrite" (exit 2). A missing folder is an InputError.
2. Write into a hidden temp file in the same folder (".ada.png.<random>.part"), flush, fsync.
3. Move it into place in one step: without force by os.link (fails if the target appeared
   meanwhile, so a file made by someone else is never replaced), with force by os.replace.
   Then fsync the folder so the new name survives a crash.
4. On any exception, KeyboardInterrupt included, the temp file is removed and the target is
   untouched. Readers therefore see the old file or the complete new one, never a part.

Ctrl-C: Python raises KeyboardInterrupt in the main thread, step 4 cleans up, and the CLI exits
130. SIGTERM would normally kill Python without running cleanup, so OutputBatch (in the main
thread) turns SIGTERM into KeyboardInterrupt while it is open. Only SIGKILL or a power cut can
leave a ".*.part" file behind; stale_temp_files() finds those for `figurine doctor`.
"""

from __future__ import annotations

import os
import signal
import tempfile
import threading
from pathlib import Path
from typing import Callable, BinaryIO

from figurine.errors import InputError, OutputExistsError

TEMP_SUFFIX = ".part"


def check_target(path: Path, force: bool) -> None:
    """Refuse an output before any slow work: missing folder, a folder as name, or (without
    force) an existing file."""
    if not path.parent.is_dir():
        raise InputError(f"{path.parent}: output folder does not exist")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not a file name")
    if path.exists() and not force:
        raise OutputExistsError(f"{path} exists; use --force to overwrite")


def _umask_mode() -> int:
    """0o666 minus the process umask: the mode an ordinary open() would give a new file."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # some platforms cannot open folders; the data itself is already synced
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, writer: Callable[[BinaryIO], object],
                 force: bool = False) -> Path:
    """Call writer(binary_file) on a temp file and move it to `path` in one step. Returns path."""
    path = Path(path)
    check_target(path, force)  # 1

    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:  # 2
            writer(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _umask_mode())
        if force:  # 3
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise OutputExistsError(f"{path} exists; use --force to overwrite") from None
            except OSError:
                # Filesystems without hard links: re-check, then replace.
                if path.exists():
                    raise OutputExistsError(f"{path} exists; use --force to overwrite") from None
                os.replace(tmp, path)
            tmp.unlink(missing_ok=True)
        _fsync_folder(path.parent)
    except BaseException:  # 4: KeyboardInterrupt and SystemExit too
        tmp.unlink(missing_ok=True)
        raise
    return path


def save_png(image, path: str | os.PathLike, force: bool = False,
             text_chunks: dict[str, str] | None = None, xmp: str | None = None,
             pnginfo=None) -> Path:
    """Save a Pillow image as PNG atomically, with only the metadata given here.

    Whatever the image carries in `image.info` (EXIF, ICC profile, text from a source file) is
    dropped: the PNG gets the pixels, `text_chunks` (tEXt, or iTXt where not latin-1), the XMP
    packet (iTXt "XML:com.adobe.xmp") and nothing else. `pnginfo` (a ready PngInfo, e.g. from
    provenance.png_info) may be passed instead of text_chunks/xmp.
    """
    from PIL import PngImagePlugin

    if pnginfo is not None and (text_chunks or xmp):
        raise ValueError("give either pnginfo or text_chunks/xmp, not both")
    if pnginfo is None:
        pnginfo = PngImagePlugin.PngInfo()
        for key, value in (text_chunks or {}).items():
            pnginfo.add_text(key, value)
        if xmp is not None:
            pnginfo.add_itxt("XML:com.adobe.xmp", xmp, lang="", tkey="", zip=False)

    clean = image.copy()
    clean.info = {}  # no EXIF, ICC, comments or text from wherever the pixels came from

    def write(f):
        clean.save(f, format="PNG", pnginfo=pnginfo)

    return atomic_write(path, write, force=force)


class OutputBatch:
    """All files of one run: on failure or Ctrl-C, the ones already finished are removed too.

    Only files this batch created are removed; a file it replaced under --force is not
    restored (the replaced content is gone, the new file is complete).
    """

    def __init__(self, force: bool = False):
        self.force = force
        self.created: list[Path] = []
        self.replaced: list[Path] = []
        self._old_sigterm = None

    def write(self, path, writer: Callable[[BinaryIO], object]) -> Path:
        path = Path(path)
        existed = path.exists()
        atomic_write(path, writer, force=self.force)
        (self.replaced if existed else self.created).append(path)
        return path

    def save_png(self, image, path, **kwargs) -> Path:
        path = Path(path)
        existed = path.exists()
        save_png(image, path, force=self.force, **kwargs)
        (self.replaced if existed else self.created).append(path)
        return path

    def check(self, *paths) -> None:
        """Refuse existing targets up front, before any slow work starts."""
        for p in paths:
            check_target(Path(p), self.force)

    def __enter__(self) -> OutputBatch:
        if threading.current_thread() is threading.main_thread():
            self._old_sigterm = signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._old_sigterm is not None:
            signal.signal(signal.SIGTERM, self._old_sigterm)
            self._old_sigterm = None
        if exc_type is not None:
            for p in self.created:
                p.unlink(missing_ok=True)
            self.created.clear()


def _sigterm_as_interrupt(signum, frame):
    raise KeyboardInterrupt("terminated")


def stale_temp_files(folder: str | os.PathLike) -> list[Path]:
    """Temp files left in `folder` by a killed run (SIGKILL, power cut)."""
    return sorted(p for p in Path(folder).glob(f".*{TEMP_SUFFIX}") if p.is_file())
