"""Model weights: the manifest, and fetch / status / verify / require against a weights root.

    from pathlib import Path
    from figurine import weights
    root = Path("weights")
    for s in weights.status(root):
        print(s.entry.path, s.state, s.entry.licence)
    weights.require([root / "sdxl-base", root / "controlnet-openpose-sdxl"])  # WeightsError if missing
    weights.check_safetensors(root / "sdxl-vae-fp16-fix/diffusion_pytorch_model.safetensors")
    problems = weights.verify(root)            # [] when every present file has its pinned sha256
    files = weights.check_tree([root / "sdxl-base"], root)   # regular files only, no loops, no pickles
    weights.verify_files(files, root)          # WeightsError naming the first file whose bytes differ
    weights.fetch(root)                        # the only networked code in figurine

configs/weights.toml lists every file the default config needs: Hugging Face repo, pinned
revision, remote file name, local path under the weights root, size, sha256, licence and
whether that licence allows commercial use. An empty sha256, size or revision means the value
could not be established when the manifest was written; fetch then says it cannot verify that
file, and records the hash it got (trust on first use) so `verify` notices later changes.

Pickles are never loaded at run time. The two pickled files upstream (IP-Adapter FaceID .bin,
OpenPose .pth) are converted once, at fetch time, with `torch.load(weights_only=True)`, which
refuses any object that is not a tensor or a plain container; the pickle is then deleted. The
source's sha256 is checked before conversion; the converted file's sha256 goes into
<root>/.figurine-verified.json so `verify` can check it later.

What the loaders may open (`check_tree`, before every load): regular files only. A FIFO, socket
or device in the weights tree is refused without being opened (it would hang or feed a loader
endless bytes), as are symbolic link loops and pickled checkpoints (.bin/.pt/.pth/.ckpt/.pkl).
Links: the weights root and each model path the config names may themselves be links to
anywhere (keep the big files on another disk); a link inside a model folder must lead to a
regular file or folder inside the weights root or inside that model folder's real location.

Integrity has three depths. `check_safetensors` reads the header only (every load). `verify`
(the `figurine weights verify` command) and `verify_files` (every load with
runtime.verify_weights = true) hash every byte and compare with the expected sha256: the one
recorded for the file in <root>/.figurine-verified.json if there is one (fetch records converted
and unpinned files; `record_hashes` records a tree built locally, such as the tiny test weights),
else the manifest's. `file_hashes`, for provenance, caches sha256 by (size, mtime_ns, ctime_ns,
inode, device): a file whose bytes were changed is hashed again even when its mtime was put back
(os.utime cannot set ctime), so provenance records the bytes that were loaded.

Steps of `fetch`, per missing file:
  1. download the pinned revision into <root>/.figurine-incoming/ with huggingface_hub;
  2. check size and sha256 (a mismatch deletes the download and raises WeightsError);
  3. convert a pickle to safetensors, or move the file to its place (atomic rename).
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import stat
import struct
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from figurine.data import MANIFEST as MANIFEST_NAME, config_dir
from figurine.errors import WeightsError

MANIFEST = config_dir() / MANIFEST_NAME
HASH_CACHE = ".figurine-hashes.json"  # sha256 by (path, size, mtime, ctime, inode, device): runs do not re-hash
VERIFIED = ".figurine-verified.json"  # hashes recorded at fetch time for converted/unpinned files
INCOMING = ".figurine-incoming"  # fetch's staging folder, removed when fetch ends
CONVERTERS = ("", "pt2safetensors")
FETCH_HINT = "run `figurine weights fetch`"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")  # never loaded after fetch
_CHUNK = 8 << 20
log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# The manifest


@dataclass(frozen=True)
class Entry:
    """One file of the manifest. `size`/`sha256` describe the remote file (before conversion)."""

    path: str  # local path under the weights root (after conversion, if any)
    repo: str
    revision: str  # commit hash; "" = unknown, fetch falls back to "main" and says so
    remote: str  # file name inside the repo
    size: int | None  # bytes of the remote file; None = unknown
    sha256: str  # of the remote file; "" = unknown
    licence: str
    commercial_use: bool
    optional: bool = False
    convert: str = ""  # "" or "pt2safetensors"
    group: str = ""  # the model this file belongs to, for listings
    note: str = ""  # where the pinned values come from, or anything a user should know

    @property
    def non_commercial(self) -> bool:
        return not self.commercial_use


def load_manifest(path: Path | str | None = None) -> list[Entry]:
    """Read and check configs/weights.toml (or `path`). Malformed entries raise WeightsError."""
    path = Path(path) if path else MANIFEST
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise WeightsError(f"weights manifest not found: {path}") from None
    except tomllib.TOMLDecodeError as e:
        raise WeightsError(f"{path}: not valid TOML ({e})") from None
    entries = [_entry(raw, i, path) for i, raw in enumerate(data.get("file", []))]
    seen: set[str] = set()
    for e in entries:
        if e.path in seen:
            raise WeightsError(f"{path}: local path '{e.path}' is listed twice")
        seen.add(e.path)
    return entries


def _entry(raw: dict, index: int, origin: Path) -> Entry:
    where = f"{origin}: [[file]] #{index + 1}"
    required = ("path", "repo", "revision", "remote", "size", "sha256", "licence", "commercial_use")
    missing = [k for k in required if k not in raw]
    if missing:
        raise WeightsError(f"{where} lacks {', '.join(missing)}")
    known = set(required) | {"optional", "convert", "group", "note"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise WeightsError(f"{where} has unknown keys {', '.join(unknown)}")
    size = raw["size"]
    if size == "":
        size = None
    elif not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise WeightsError(f"{where}: size must be a positive integer or \"\", got {size!r}")
    sha = str(raw["sha256"]).lower()
    if sha and (len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha)):
        raise WeightsError(f"{where}: sha256 must be 64 hex digits or \"\", got {raw['sha256']!r}")
    rev = str(raw["revision"])
    if rev and (len(rev) != 40 or any(c not in "0123456789abcdef" for c in rev)):
        raise WeightsError(f"{where}: revision must be a 40-digit commit hash or \"\", got {rev!r}")
    if not str(raw["licence"]).strip():
        raise WeightsError(f"{where}: licence must not be empty")
    if raw.get("convert", "") not in CONVERTERS:
        raise WeightsError(f"{where}: convert must be one of {CONVERTERS}, got {raw.get('convert')!r}")
    if not isinstance(raw["commercial_use"], bool):
        raise WeightsError(f"{where}: commercial_use must be true or false")
    return Entry(
        path=str(raw["path"]), repo=str(raw["repo"]), revision=rev, remote=str(raw["remote"]),
        size=size, sha256=sha, licence=str(raw["licence"]), commercial_use=raw["commercial_use"],
        optional=bool(raw.get("optional", False)), convert=str(raw.get("convert", "")),
        group=str(raw.get("group", "")), note=str(raw.get("note", "")),
    )


# ---------------------------------------------------------------------------------------------
# Status, require


@dataclass
class FileStatus:
    entry: Entry
    path: Path  # absolute location under the weights root
    state: str  # "present" | "missing" | "size-mismatch"
    size: int | None  # bytes on disk, None when missing

    @property
    def ok(self) -> bool:
        return self.state == "present"


def status(weights_root: Path | str, entries: list[Entry] | None = None) -> list[FileStatus]:
    """Present / missing / size-mismatch for every manifest file, without hashing anything."""
    root = Path(weights_root)
    entries = load_manifest() if entries is None else entries
    records = _records(root)
    out = []
    for e in entries:
        p = root / e.path
        if not p.is_file():
            out.append(FileStatus(e, p, "missing", None))
            continue
        size = p.stat().st_size
        expected = _expected_local(e, records)[1]
        state = "present" if expected is None or size == expected else "size-mismatch"
        out.append(FileStatus(e, p, state, size))
    return out


def require(paths: Iterable[Path | str]) -> None:
    """Raise WeightsError naming the first path that does not exist (file or folder)."""
    for p in paths:
        if p is not None and not Path(p).exists():
            raise WeightsError(f"missing weights file {p}; {FETCH_HINT}")


# ---------------------------------------------------------------------------------------------
# The tree: what the loaders may open


_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a character device",
          stat.S_IFBLK: "a block device"}


def check_tree(paths: Iterable[Path | str], weights_root: Path | str | None = None) -> list[Path]:
    """Every file the loaders may open under `paths` (folders are walked, files taken as they
    are), checked with lstat/stat only, nothing opened. Returns the regular files, sorted per
    path, as paths under `paths` (not resolved). WeightsError names the first that is missing,
    a FIFO/socket/device, a link loop, a link out of the weights root, or a pickle.

    Names starting with "." are skipped: no loader opens them.
    """
    files, problems = _walk(paths, weights_root)
    if problems:
        raise WeightsError(problems[0].message)
    return files


def require_safetensors(path: Path | str, what: str) -> None:
    """A model file the config names (LoRA, adapter, single-file base) must be a .safetensors file:
    diffusers would torch.load anything else."""
    path = Path(path)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise WeightsError(_pickle_message(path))
    if path.suffix != ".safetensors":
        raise WeightsError(f"{what} {path} is not a .safetensors file; figurine loads model weights "
                           "only from safetensors")


def _pickle_message(path: Path) -> str:
    return (f"{path} is a pickled checkpoint; figurine never loads pickles (delete it: "
            f"`figurine weights fetch` converts upstream pickles to safetensors)")


def _walk(paths: Iterable[Path | str], weights_root: Path | str | None) -> tuple[list[Path], list["Problem"]]:
    """check_tree's walk: the regular files and every problem found (walking on past them)."""
    root_real = Path(os.path.realpath(weights_root)) if weights_root else None
    files: list[Path] = []
    problems: list[Problem] = []
    for top in map(Path, paths):
        real, st, problem = _follow(top)
        if problem:
            problems.append(problem)
            continue
        if stat.S_ISDIR(st.st_mode):
            # The configured folder may be a link to anywhere; links inside it stay in these areas.
            areas = [a for a in (root_real, real) if a is not None]
            _walk_dir(top, areas, {real}, files, problems)
        elif stat.S_ISREG(st.st_mode):
            if top.suffix.lower() in PICKLE_SUFFIXES:
                problems.append(Problem(top, "pickle", _pickle_message(top)))
            else:
                files.append(top)
        else:
            problems.append(_not_regular(top, st))
    return files, problems


def _follow(path: Path) -> tuple[Path | None, os.stat_result | None, "Problem | None"]:
    """(real path, its stat) of `path`, following links; or a Problem (missing, loop)."""
    try:
        os.lstat(path)
        real = Path(os.path.realpath(path, strict=True))
        return real, os.stat(real), None
    except FileNotFoundError:
        return None, None, Problem(path, "missing", f"missing weights file {path}; {FETCH_HINT}")
    except OSError as e:
        if e.errno == errno.ELOOP:
            return None, None, Problem(path, "loop", f"{path} is a symbolic link loop; fix or delete the link")
        return None, None, Problem(path, "unreadable", f"cannot read weights path {path}: {e.strerror}")


def _not_regular(path: Path, st: os.stat_result) -> "Problem":
    kind = _KINDS.get(stat.S_IFMT(st.st_mode), "not a regular file")
    return Problem(path, "not-a-file", f"{path} is {kind}, not a regular file; figurine opens only "
                                       "regular files from the weights folder (delete it)")


def _walk_dir(folder: Path, areas: list[Path], ancestors: set[Path], files: list[Path],
              problems: list["Problem"]) -> None:
    """Walk one folder (ancestors: the real folders above it, to stop at links back up)."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as e:
        problems.append(Problem(folder, "unreadable", f"cannot read weights folder {folder}: {e.strerror}"))
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        path = Path(entry.path)
        target, st, problem = _follow(path)
        if problem:
            problems.append(problem)
            continue
        if entry.is_symlink() and not any(target == a or target.is_relative_to(a) for a in areas):
            problems.append(Problem(path, "link-out", f"{path} links out of the weights folder (to {target}); "
                                                      "figurine follows links only within it"))
            continue
        if stat.S_ISDIR(st.st_mode):
            if any(a == target or a.is_relative_to(target) for a in ancestors):  # back up: endless
                problems.append(Problem(path, "loop", f"{path} is a symbolic link loop (it leads back to "
                                                      f"{target}); fix or delete the link"))
                continue
            _walk_dir(path, areas, ancestors | {target}, files, problems)
        elif not stat.S_ISREG(st.st_mode):
            problems.append(_not_regular(path, st))
        elif path.suffix.lower() in PICKLE_SUFFIXES:
            problems.append(Problem(path, "pickle", _pickle_message(path)))
        else:
            files.append(path)


def _open_regular(path: Path | str):
    """Open a weights file for reading, refusing anything but a regular file without blocking:
    O_NONBLOCK makes opening a FIFO return at once, fstat then says what it is."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise WeightsError(f"missing weights file {path}; {FETCH_HINT}") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise WeightsError(f"{path} is a symbolic link loop; fix or delete the link") from None
        raise WeightsError(f"cannot read weights file {path}: {e.strerror}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise WeightsError(_not_regular(path, st).message)
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


# ---------------------------------------------------------------------------------------------
# Integrity: safetensors headers, sha256, verify


def check_safetensors(path: Path | str) -> None:
    """Read only the header; raise WeightsError naming a truncated or corrupt file.

    Layout: 8-byte little-endian header length N, N bytes of JSON, then the tensor data. Checked:
    the file is long enough for both, the JSON parses, every tensor's data_offsets lie inside
    the data section and match its dtype and shape; then safetensors.safe_open opens it.
    """
    path = Path(path)
    hint = "delete it and run `figurine weights fetch`, or `figurine weights verify`"
    try:
        with _open_regular(path) as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(8)
            if len(head) < 8:
                raise WeightsError(f"truncated weights file {path}: {size} bytes, no header", hint=hint)
            (n,) = struct.unpack("<Q", head)
            if n > size - 8:
                raise WeightsError(
                    f"truncated weights file {path}: header says {n} bytes but the file has {size}",
                    hint=hint)
            header = json.loads(f.read(n))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise WeightsError(f"corrupt weights file {path}: its header is not valid JSON", hint=hint) from None
    if not isinstance(header, dict):
        raise WeightsError(f"corrupt weights file {path}: its header is not a JSON object", hint=hint)
    data_size = size - 8 - n
    for name, info in header.items():
        if name == "__metadata__":
            continue
        _check_tensor_entry(path, name, info, data_size, hint)
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as f:
            f.keys()
    except Exception as e:  # the library's own checks, for anything the above missed
        raise WeightsError(f"corrupt weights file {path}: {e}", hint=hint) from None


_DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2,
                "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}


def _check_tensor_entry(path: Path, name: str, info: object, data_size: int, hint: str) -> None:
    try:
        begin, end = info["data_offsets"]  # type: ignore[index]
        shape, dtype = info["shape"], info["dtype"]  # type: ignore[index]
    except (TypeError, KeyError, ValueError):
        raise WeightsError(f"corrupt weights file {path}: bad header entry for '{name}'", hint=hint) from None
    if end > data_size:
        raise WeightsError(
            f"truncated weights file {path}: tensor '{name}' ends at byte {end} of the data "
            f"but only {data_size} bytes are there", hint=hint)
    count = 1
    for d in shape:
        count *= d
    width = _DTYPE_BYTES.get(dtype)
    if begin < 0 or end < begin or (width and end - begin != count * width):
        raise WeightsError(f"corrupt weights file {path}: tensor '{name}' has inconsistent offsets",
                           hint=hint)


def find_tensor(path: Path | str, name: str) -> Path | None:
    """The safetensors file (`path` itself, or one directly in the folder `path`) whose header
    lists tensor `name`; None when none does. Reads headers only."""
    path = Path(path)
    candidates = [path] if path.is_file() else sorted(path.glob("*.safetensors")) if path.is_dir() else []
    for f in candidates:
        try:
            with _open_regular(f) as fh:
                (n,) = struct.unpack("<Q", fh.read(8))
                if n > 256 << 20:
                    continue
                header = json.loads(fh.read(n))
        except (WeightsError, OSError, ValueError, struct.error, RecursionError):
            continue
        if isinstance(header, dict) and name in header:
            return f
    return None


def sha256_file(path: Path | str) -> str:
    """sha256 of every byte of a regular file (WeightsError for anything else: no FIFO is read)."""
    return _hash_open(path)[0]


def _hash_open(path: Path | str) -> tuple[str, tuple]:
    """(sha256, stat key) of one regular file, the key taken from the descriptor that was read."""
    h = hashlib.sha256()
    with _open_regular(path) as f:
        st = os.fstat(f.fileno())
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest(), _stat_key(st)


def _stat_key(st: os.stat_result) -> list:
    """What identifies one version of a file's bytes without reading them. mtime can be put back
    (os.utime, tar, cp -p); ctime cannot, and it changes with every write: with size, inode and
    device a changed file never matches its old entry."""
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def file_hashes(paths: Iterable[Path | str], weights_root: Path | str | None = None) -> dict[str, str]:
    """sha256 of each file (folders are expanded to the files inside them), keyed by path.

    With a weights root the hashes are cached in <root>/.figurine-hashes.json, keyed by the
    absolute path and (size, mtime_ns, ctime_ns, inode, device): a file that was not touched is
    not read again; a file whose bytes changed is hashed again even if its mtime was restored
    (writing changes ctime, which no user call can set back), so what provenance records is the
    bytes on disk. Without a root nothing is cached (every file is read), so callers should pass
    cfg.weights_root.
    """
    cache_file = Path(weights_root) / HASH_CACHE if weights_root else None
    cache = _read_json(cache_file) if cache_file else {}
    out: dict[str, str] = {}
    changed = False
    for f in _expand(paths):
        try:
            st = f.stat()
        except OSError as e:
            raise WeightsError(f"cannot read weights file {f}: {e.strerror}") from None
        key = str(f.resolve())
        hit = cache.get(key)
        if (isinstance(hit, dict) and hit.get("key") == _stat_key(st)
                and isinstance(hit.get("sha256"), str)):
            out[str(f)] = hit["sha256"]
            continue
        digest, stat_key = _hash_open(f)
        cache[key] = {"key": stat_key, "sha256": digest}
        out[str(f)] = digest
        changed = True
    if cache_file and changed and cache_file.parent.is_dir():
        _write_json(cache_file, cache, quiet=True)  # a read-only weights folder just means no cache
    return out


def _expand(paths: Iterable[Path | str], weights_root: Path | str | None = None) -> list[Path]:
    """Files and folders -> the regular files check_tree allows (WeightsError otherwise)."""
    return check_tree(paths, weights_root)


@dataclass
class Problem:
    path: Path
    kind: str  # missing | size-mismatch | altered | corrupt | loop | link-out | not-a-file | pickle |
    #            unreadable | unverifiable | local
    message: str

    @property
    def fatal(self) -> bool:
        """A file without a known hash, or hashes recorded locally, are reported but not errors."""
        return self.kind not in ("unverifiable", "local")

    def __str__(self) -> str:
        return self.message


def verify(weights_root: Path | str, entries: list[Entry] | None = None) -> list[Problem]:
    """Hash every byte of every file in the manifest's folders and compare; list the problems.

    The folders the manifest's files (and any recorded files) live in are walked like
    check_tree: links, FIFOs, devices and pickles are problems and are not opened. Each regular
    file is then checked against its expected size and sha256: the hash recorded for it in
    <root>/.figurine-verified.json when there is one (fetch records converted and unpinned
    files; record_hashes a tree built locally), else the manifest's. A file nothing is known
    about is listed as unverifiable (not fatal); a missing optional file is not a problem.
    Hashes are always computed afresh; the run cache is updated with them.
    """
    root = Path(weights_root)
    entries = load_manifest() if entries is None else entries
    by_path = {e.path: e for e in entries}
    records = _records(root)
    # Top folders named by the manifest and the records (untrusted: plain names only).
    tops = sorted({t for t in (Path(rel).parts[0] for rel in [*by_path, *records] if rel)
                   if t not in (".", "..") and "/" not in t and not t.startswith(".")})
    found, problems = _walk([root / t for t in tops if os.path.lexists(root / t)], root)
    unsafe = {p.path for p in problems}
    present = {f.relative_to(root).as_posix(): f for f in found}
    for e in entries:
        p = root / e.path
        if e.path not in present and p not in unsafe and not e.optional:
            problems.append(Problem(p, "missing", f"missing: {p}"))
    fresh: dict[str, tuple[str, list]] = {}
    local: set[str] = set()
    for rel in [e.path for e in entries if e.path in present] + sorted(set(present) - set(by_path)):
        p, e = present[rel], by_path.get(rel)
        want_sha, want_size = _expected(rel, e, records)
        if e is not None and rel in records and e.sha256 and not e.convert and want_sha != e.sha256:
            local.add(str(records[rel].get("source") or "unknown source"))
        size = p.stat().st_size
        if want_size is not None and size != want_size:
            why = "truncated?" if size < want_size else "a different file?"
            problems.append(Problem(p, "size-mismatch",
                                    f"size mismatch: {p} has {size} bytes, expected {want_size} ({why})"))
            continue
        if p.suffix == ".safetensors":
            try:
                check_safetensors(p)
            except WeightsError as err:
                problems.append(Problem(p, "corrupt", err.message))
                continue
        digest, key = _hash_open(p)
        fresh[str(p)] = (digest, key)
        if not want_sha:
            why = "no sha256 is known for it" if e else "it is not in the manifest and no hash is recorded for it"
            problems.append(Problem(p, "unverifiable", f"cannot verify {p}: {why} (sha256 {digest})"))
        elif digest != want_sha:
            problems.append(Problem(p, "altered", f"altered: {p} has sha256 {digest}, expected {want_sha}"))
    if local:
        problems.append(Problem(root / VERIFIED, "local",
                                f"some files are checked against hashes recorded in {root / VERIFIED} "
                                f"({', '.join(sorted(local))}), not the manifest's: they are not the files "
                                "`figurine weights fetch` downloads"))
    _remember_hashes(root, fresh)
    return problems


def verify_files(paths: Iterable[Path | str], weights_root: Path | str,
                 entries: list[Entry] | None = None) -> dict[str, str]:
    """Before loading: hash every byte of every file the loaders will open under `paths`.

    The walk is check_tree's (regular files only). Each file's sha256 is compared with the one
    `verify` expects; the first that differs raises WeightsError naming it, before any loader has
    read it. Files nothing is known about (your own LoRAs) get one warning. The fresh hashes go
    into the run cache, so provenance does not read the files again. Returns {path: sha256}.
    """
    root = Path(weights_root)
    files = check_tree(paths, root)
    entries = load_manifest() if entries is None else entries
    by_path = {e.path: e for e in entries}
    records = _records(root)
    fresh: dict[str, tuple[str, list]] = {}
    unknown: list[Path] = []
    try:
        for f in files:
            rel = _relative(f, root)
            want_sha, want_size = _expected(rel, by_path.get(rel), records) if rel else ("", None)
            size = f.stat().st_size
            if want_size is not None and size != want_size:
                raise WeightsError(f"altered weights file {f}: {size} bytes, expected {want_size}",
                                   hint=f"delete it and {FETCH_HINT}")
            digest, key = _hash_open(f)
            fresh[str(f)] = (digest, key)
            if not want_sha:
                unknown.append(f)
            elif digest != want_sha:
                raise WeightsError(f"altered weights file {f}: sha256 {digest}, expected {want_sha}",
                                   hint=f"delete it and {FETCH_HINT}")
    finally:
        _remember_hashes(root, fresh)
    if unknown:
        names = ", ".join(str(f) for f in unknown[:3]) + (f" and {len(unknown) - 3} more" if len(unknown) > 3 else "")
        log.warning("cannot verify %d weights file(s), no sha256 is known for them: %s", len(unknown), names)
    return {k: v[0] for k, v in fresh.items()}


def record_hashes(weights_root: Path | str, paths: Iterable[Path | str] | None = None,
                  source: str = "recorded locally") -> int:
    """Record the sha256 and size of every file under `paths` (default: every folder of the root)
    in <root>/.figurine-verified.json, so `verify` and verify_files check them from now on.

    For a tree figurine did not fetch (the tiny test weights, your own LoRAs): trust on first
    use, like fetch does for files whose manifest hash is unknown. Returns how many were recorded.
    """
    root = Path(weights_root)
    if paths is None:
        paths = [root / name for name in sorted(os.listdir(root)) if not name.startswith(".")
                 and os.path.isdir(root / name)]
    records = _read_json(root / VERIFIED)
    files = check_tree(paths, root)
    fresh = {}
    for f in files:
        rel = _relative(f, root)
        if rel is None:
            raise WeightsError(f"cannot record {f}: it is not inside the weights root {root}")
        digest, key = _hash_open(f)
        fresh[str(f)] = (digest, key)
        records[rel] = {"sha256": digest, "size": key[0], "source": source, "recorded": _now()}
    _write_json(root / VERIFIED, records)
    _remember_hashes(root, fresh)
    return len(files)


def _relative(path: Path, root: Path) -> str | None:
    """`path` as a manifest path under `root` ("a/b.json"), without resolving links; None outside."""
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    return None if rel == ".." or rel.startswith("../") or os.path.isabs(rel) else Path(rel).as_posix()


def _records(root: Path) -> dict[str, dict]:
    """<root>/.figurine-verified.json, read as untrusted: entries without a well-formed sha256
    and size are dropped (and so checked against the manifest)."""
    out = {}
    for rel, rec in _read_json(root / VERIFIED).items():
        if not isinstance(rec, dict):
            continue
        sha, size = rec.get("sha256"), rec.get("size")
        if (isinstance(sha, str) and len(sha) == 64 and all(c in "0123456789abcdef" for c in sha)
                and (size is None or (isinstance(size, int) and not isinstance(size, bool) and size >= 0))):
            out[rel] = rec
    return out


def _expected(rel: str, e: Entry | None, records: dict) -> tuple[str, int | None]:
    """(sha256, size) the file at manifest path `rel` should have; ("", None) when nothing is known.

    A recorded hash comes first (fetch records converted and unpinned files, record_hashes a
    locally built tree); then the manifest's, for a file stored as downloaded.
    """
    rec = records.get(rel)
    if rec:
        return rec["sha256"], rec.get("size")
    if e is None:
        return "", None
    if e.convert:
        return "", None
    return e.sha256, e.size


def _expected_local(e: Entry, records: dict) -> tuple[str, int | None]:
    """(sha256, size) the manifest file `e` should have on disk; ("", None) when nothing is known."""
    return _expected(e.path, e, records)


def _remember_hashes(root: Path, digests: dict[str, tuple[str, list]]) -> None:
    """Put fresh (sha256, stat key) pairs into the run cache, so file_hashes need not read again."""
    if not digests or not root.is_dir():
        return
    cache = _read_json(root / HASH_CACHE)
    for path, (digest, stat_key) in digests.items():
        cache[str(Path(path).resolve())] = {"key": stat_key, "sha256": digest}
    _write_json(root / HASH_CACHE, cache, quiet=True)


# ---------------------------------------------------------------------------------------------
# Fetch (the only networked code) and conversion


def fetch(
    weights_root: Path | str,
    only_missing: bool = True,
    include_optional: bool = False,
    entries: list[Entry] | None = None,
    endpoint: str | None = None,
    log: Callable[[str], None] = print,
) -> list[Path]:
    """Download, check and place every missing manifest file; returns the paths written.

    `endpoint` overrides the hub address (default: $HF_ENDPOINT or https://huggingface.co).
    A file whose sha256 does not match is deleted and WeightsError names it.
    """
    root = Path(weights_root)
    entries = load_manifest() if entries is None else entries
    todo = [s.entry for s in status(root, entries)
            if (include_optional or not s.entry.optional) and (not only_missing or not s.ok)]
    if not todo:
        log("all weights files are present")
        return []
    hub = _hub()
    root.mkdir(parents=True, exist_ok=True)
    staging = root / INCOMING
    written = []
    try:
        for i, e in enumerate(todo, 1):
            log(f"[{i}/{len(todo)}] {e.repo} {e.remote} -> {e.path}"
                + (" (NON-COMMERCIAL licence)" if e.non_commercial else ""))
            written.append(_fetch_one(root, staging, e, hub, endpoint, log))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return written


def _hub():
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    try:
        import huggingface_hub
        from huggingface_hub import constants
    except ImportError:
        raise WeightsError("huggingface_hub is not installed", hint="pip install huggingface_hub") from None
    if constants.is_offline_mode():
        raise WeightsError("cannot fetch: offline mode is on (HF_HUB_OFFLINE)",
                           hint="unset HF_HUB_OFFLINE for `figurine weights fetch`")
    return huggingface_hub


def _fetch_one(root: Path, staging: Path, e: Entry, hub, endpoint: str | None, log) -> Path:
    # 1. download the pinned revision into the staging folder
    revision = e.revision or "main"
    if not e.revision:
        log(f"  warning: no pinned revision for {e.path}; taking the repo's current 'main'")
    tmp_dir = staging / hashlib.sha256(e.path.encode()).hexdigest()[:16]
    shutil.rmtree(tmp_dir, ignore_errors=True)
    try:
        got = Path(hub.hf_hub_download(e.repo, e.remote, revision=revision, local_dir=tmp_dir,
                                       endpoint=endpoint))
    except Exception as err:  # network, 404, auth: one line naming the file
        raise WeightsError(f"could not download {e.repo}/{e.remote} for {e.path}: "
                           f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}") from None
    # 2. check size and sha256 against the manifest
    digest = _check_download(got, e, log)
    # 3. convert, or move into place
    dest = root / e.path
    dest.parent.mkdir(parents=True, exist_ok=True)
    records = _read_json(root / VERIFIED)
    if e.convert == "pt2safetensors":
        convert_pickle(got, dest, source_sha256=digest)
        got.unlink(missing_ok=True)
        records[e.path] = {"sha256": sha256_file(dest), "size": dest.stat().st_size,
                           "source": f"{e.repo}@{revision}/{e.remote}", "source_sha256": digest,
                           "source_pinned": bool(e.sha256), "recorded": _now()}
    else:
        os.replace(got, dest)
        if not e.sha256:
            records[e.path] = {"sha256": digest, "size": dest.stat().st_size,
                               "source": f"{e.repo}@{revision}/{e.remote}", "source_pinned": False,
                               "recorded": _now()}
    if e.path in records:
        _write_json(root / VERIFIED, records)
    local_sha = records[e.path]["sha256"] if e.path in records else digest
    _remember_hashes(root, {str(dest): (local_sha, _stat_key(dest.stat()))})
    log(f"  ok {dest}")
    return dest


def _check_download(got: Path, e: Entry, log) -> str:
    size = got.stat().st_size
    if e.size is not None and size != e.size:
        got.unlink(missing_ok=True)
        raise WeightsError(f"download of {e.path} has {size} bytes, expected {e.size}; deleted it",
                           hint="run `figurine weights fetch` again")
    digest = sha256_file(got)
    if not e.sha256:
        log(f"  warning: cannot verify {e.path}: the manifest has no sha256 for it "
            f"(got sha256 {digest}; recorded for later `figurine weights verify`)")
    elif digest != e.sha256:
        got.unlink(missing_ok=True)
        raise WeightsError(f"sha256 mismatch for {e.path}: got {digest}, expected {e.sha256}; "
                           "deleted the download", hint="run `figurine weights fetch` again")
    return digest


def convert_pickle(src: Path | str, dest: Path | str, source_sha256: str = "") -> Path:
    """Pickled PyTorch state dict (.bin/.pth) -> safetensors, loading with weights_only=True.

    Nested dicts are flattened with dots, so FaceID's {"image_proj": {...}, "ip_adapter": {...}}
    becomes the flat "image_proj.*" / "ip_adapter.*" keys diffusers expects. Anything that is not
    a tensor (or a dict of them) is refused. The file is written atomically.
    """
    import torch
    from safetensors.torch import save_file

    src, dest = Path(src), Path(dest)
    try:
        obj = torch.load(src, map_location="cpu", weights_only=True)
    except Exception as err:
        raise WeightsError(f"refused to load {src.name}: not a plain tensor checkpoint "
                           f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})") from None
    flat: dict = {}
    _flatten(obj, "", flat, src)
    if not flat:
        raise WeightsError(f"{src.name} holds no tensors")
    tensors = {k: v.detach().contiguous().clone() for k, v in flat.items()}
    meta = {"format": "pt", "converted_from": src.name}
    if source_sha256:
        meta["source_sha256"] = source_sha256
    tmp = dest.with_name(dest.name + ".part")
    try:
        save_file(tensors, str(tmp), metadata=meta)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _flatten(obj, prefix: str, out: dict, src: Path) -> None:
    import torch

    if isinstance(obj, torch.Tensor):
        out[prefix] = obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _flatten(v, f"{prefix}.{k}" if prefix else str(k), out, src)
    else:
        raise WeightsError(f"refused to convert {src.name}: '{prefix or '<root>'}' is a "
                           f"{type(obj).__name__}, not a tensor")


# ---------------------------------------------------------------------------------------------
# Small helpers


def format_size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return {}


def _write_json(path: Path, data: dict, quiet: bool = False) -> None:
    tmp = path.with_name(path.name + ".part")
    try:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        if not quiet:
            raise


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
