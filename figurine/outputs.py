"""Write output files whole or not at all, and never over an existing file without --force.

    from figurine.outputs import OutputSet, atomic_write, save_png
    save_png(image, "ada.png", force=False, text_chunks={"parameters": text}, xmp=packet)
    atomic_write("ada.pdf", lambda f: f.write(pdf_bytes))

    with OutputSet(force=args.force) as out:        # every file of one run, as one unit
        out.check("ada.png", "ada.json", "ada.pdf")   # before any slow work
        out.add("ada.png", lambda f: f.write(png_bytes))
        out.add("ada.pdf", lambda f: f.write(pdf_bytes))
        out.commit()                                  # all move into place, or none

How a file is written (atomic_write):
1. Refuse an existing target unless force: OutputExistsError "ada.png exists; use --force to
   overwrite" (exit 2). Refuse, even with force, anything that is not a regular file: a
   symlink (its target would be overwritten), a folder, a FIFO, a device (`-o /dev/null`). A
   missing folder is an InputError.
2. Write into a hidden temp file in the same folder (".ada.png.<random>.part"), flush, fsync.
3. Move it into place in one step: without force by os.link (fails if the target appeared
   meanwhile, so a file made by someone else is never replaced), with force by os.replace.
   Then fsync the folder so the new name survives a crash.
4. On any exception, KeyboardInterrupt included, the temp file is removed and the target is
   untouched. Readers therefore see the old file or the complete new one, never a part.

A run's set of files (OutputSet): each file is first written whole to its temp file beside its
target; only when every one is written are they moved into place, an existing target (with
force) first set aside as ".NAME.<random>.old" and restored if a later move fails. After an
error, Ctrl-C or SIGTERM there is the complete new set or nothing new.

Ctrl-C: Python raises KeyboardInterrupt in the main thread, step 4 cleans up, and the CLI exits
130. SIGTERM would normally kill Python without running cleanup, so OutputSet (in the main
thread) turns SIGTERM into KeyboardInterrupt while it is open. Only SIGKILL or a power cut can
leave a ".*.part" file behind (or, between two moves of a set, part of a set);
stale_temp_files() finds the temp files for `figurine doctor`.
"""

from __future__ import annotations

import os
import signal
import stat
import tempfile
import threading
from pathlib import Path
from typing import Callable, BinaryIO

from figurine.errors import InputError, OutputExistsError, WriteError

TEMP_SUFFIX = ".part"


def check_target(path: Path, force: bool) -> None:
    """Refuse an output before any slow work: missing folder, anything but a regular file or a
    new name (folder, symlink, FIFO, device: even with force), or an existing file without force."""
    path = Path(path)
    try:
        if not stat.S_ISDIR(os.stat(path.parent).st_mode):
            raise InputError(f"{path.parent}: output folder does not exist")
    except FileNotFoundError:
        raise InputError(f"{path.parent}: output folder does not exist") from None
    except OSError as e:
        raise InputError(f"{path.parent}: output folder cannot be used ({e.strerror or e})") from None
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as e:
        raise InputError(f"{path}: cannot be checked ({e.strerror or e})") from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{path}: is a folder, not a file name")
    if stat.S_ISLNK(st.st_mode):
        raise InputError(f"{path}: is a symbolic link; figurine writes only regular files (remove the link)")
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{path}: is not a regular file (a device, FIFO or socket); figurine will not replace it")
    if not force:
        raise OutputExistsError(f"{path} exists; use --force to overwrite")


def check_distinct(paths) -> None:
    """Two outputs of one run may not be the same file."""
    seen: dict[str, Path] = {}
    for p in paths:
        if p is None:
            continue
        key = os.path.normcase(os.path.abspath(p))
        if key in seen:
            raise InputError(f"{p}: two outputs of this run would be the same file ({seen[key]} and {p})")
        seen[key] = Path(p)


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

    tmp = _write_temp(path, writer)  # 2
    try:
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
    except OSError as e:  # 4: disk full, no permission, read-only: one line, nothing half-written
        tmp.unlink(missing_ok=True)
        raise write_error(path, e) from None
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


class OutputSet:
    """Every output file of one run, written as one unit (see the module docstring).

    check() refuses bad or colliding targets before slow work; add() writes a file whole to
    its temp file; commit() moves them all into place. Leaving the block without commit(), or
    with an exception, removes the temp files; a failed commit() undoes the moves it made.
    `replaceable`: sha256 digests of files this run wrote before (a re-run's own outputs);
    a target with one of those contents is replaced without force.
    """

    def __init__(self, force: bool = False, replaceable: set[str] | None = None):
        self.force = force
        self.replaceable = set(replaceable or ())
        self.pending: list[tuple[Path, Path]] = []  # (temp file, target)
        self._old_sigterm = None

    def _may_replace(self, path: Path) -> bool:
        if self.force or not self.replaceable:
            return self.force
        try:
            return stat.S_ISREG(os.lstat(path).st_mode) and file_sha256(path) in self.replaceable
        except OSError:
            return False

    def check(self, *paths) -> None:
        paths = [Path(p) for p in paths if p is not None]
        check_distinct(paths)
        for p in paths:
            check_target(p, self._may_replace(p))

    def add(self, path, writer: Callable[[BinaryIO], object]) -> Path:
        path = Path(path)
        check_target(path, self._may_replace(path))
        tmp = _write_temp(path, writer)
        self.pending.append((tmp, path))
        return path

    def commit(self) -> None:
        moved: list[tuple[Path, Path | None]] = []  # (target, its set-aside old file)
        try:
            for tmp, target in self.pending:
                check_target(target, self._may_replace(target))
                old = None
                if os.path.lexists(target):
                    old = target.with_name(f".{target.name}.{os.urandom(4).hex()}.old")
                    os.replace(target, old)
                try:
                    os.link(tmp, target)  # fails if someone made the file meanwhile
                except FileExistsError:
                    raise OutputExistsError(f"{target} appeared while figurine was writing; nothing was replaced") from None
                except OSError:
                    os.replace(tmp, target)  # filesystems without hard links
                moved.append((target, old))
                _fsync_folder(target.parent)
        except BaseException as e:
            for target, old in reversed(moved):
                target.unlink(missing_ok=True)
                if old is not None:
                    os.replace(old, target)
            if isinstance(e, OSError) and not isinstance(e, FileExistsError):
                raise write_error(target, e) from None
            raise
        for target, old in moved:
            if old is not None:
                old.unlink(missing_ok=True)
        self._drop_temps()
        self.pending.clear()

    def _drop_temps(self) -> None:
        for tmp, _ in self.pending:
            tmp.unlink(missing_ok=True)

    def __enter__(self) -> OutputSet:
        if threading.current_thread() is threading.main_thread():
            self._old_sigterm = signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._old_sigterm is not None:
            signal.signal(signal.SIGTERM, self._old_sigterm)
            self._old_sigterm = None
        self._drop_temps()
        self.pending.clear()


def _write_temp(path: Path, writer: Callable[[BinaryIO], object]) -> Path:
    """writer(f) on a new hidden temp file beside `path`, flushed and synced, with the mode an
    ordinary open() would give; on any failure the temp file is removed (OSError -> WriteError)."""
    try:
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    except OSError as e:
        raise write_error(path, e) from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            writer(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _umask_mode())
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise write_error(path, e) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def write_error(path: Path, e: OSError) -> WriteError:
    reason = e.strerror or type(e).__name__
    return WriteError(f"cannot write {path}: {reason}; nothing was left half-written")


def file_sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _sigterm_as_interrupt(signum, frame):
    raise KeyboardInterrupt("terminated")


def stale_temp_files(folder: str | os.PathLike) -> list[Path]:
    """Temp files left in `folder` by a killed run (SIGKILL, power cut)."""
    return sorted(p for p in Path(folder).glob(f".*{TEMP_SUFFIX}") if p.is_file())
