"""Model weights: the manifest, and fetch / status / verify / require against a weights root.

    from pathlib import Path
    from figurine import weights
    root = Path("weights")
    for s in weights.status(root):
        print(s.entry.path, s.state, s.entry.licence)
    weights.require([root / "sdxl-base", root / "controlnet-openpose-sdxl"])  # WeightsError if missing
    weights.check_safetensors(root / "sdxl-vae-fp16-fix/diffusion_pytorch_model.safetensors")
    problems = weights.verify(root)            # [] when every present file has its pinned sha256
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

Steps of `fetch`, per missing file:
  1. download the pinned revision into <root>/.figurine-incoming/ with huggingface_hub;
  2. check size and sha256 (a mismatch deletes the download and raises WeightsError);
  3. convert a pickle to safetensors, or move the file to its place (atomic rename).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from figurine.data import MANIFEST as MANIFEST_NAME, config_dir
from figurine.errors import WeightsError

MANIFEST = config_dir() / MANIFEST_NAME
HASH_CACHE = ".figurine-hashes.json"  # sha256 by (path, size, mtime_ns), so runs do not re-hash
VERIFIED = ".figurine-verified.json"  # hashes recorded at fetch time for converted/unpinned files
INCOMING = ".figurine-incoming"  # fetch's staging folder, removed when fetch ends
CONVERTERS = ("", "pt2safetensors")
FETCH_HINT = "run `figurine weights fetch`"
_CHUNK = 8 << 20


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
    records = _read_json(root / VERIFIED)
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
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise WeightsError(f"truncated weights file {path}: {size} bytes, no header", hint=hint)
            (n,) = struct.unpack("<Q", head)
            if n > size - 8:
                raise WeightsError(
                    f"truncated weights file {path}: header says {n} bytes but the file has {size}",
                    hint=hint)
            header = json.loads(f.read(n))
    except FileNotFoundError:
        raise WeightsError(f"missing weights file {path}; {FETCH_HINT}") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
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


def sha256_file(path: Path | str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def file_hashes(paths: Iterable[Path | str], weights_root: Path | str | None = None) -> dict[str, str]:
    """sha256 of each file (folders are expanded to the files inside them), keyed by path.

    With a weights root the hashes are cached in <root>/.figurine-hashes.json, keyed by
    (absolute path, size, mtime_ns): a file that was not touched is not read again. Without
    one nothing is cached (every file is read), so callers should pass cfg.weights_root.
    """
    cache_file = Path(weights_root) / HASH_CACHE if weights_root else None
    cache = _read_json(cache_file) if cache_file else {}
    out: dict[str, str] = {}
    changed = False
    for f in _expand(paths):
        st = f.stat()
        key = str(f.resolve())
        hit = cache.get(key)
        if hit and hit.get("size") == st.st_size and hit.get("mtime_ns") == st.st_mtime_ns:
            out[str(f)] = hit["sha256"]
            continue
        digest = sha256_file(f)
        cache[key] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}
        out[str(f)] = digest
        changed = True
    if cache_file and changed and cache_file.parent.is_dir():
        _write_json(cache_file, cache, quiet=True)  # a read-only weights folder just means no cache
    return out


def _expand(paths: Iterable[Path | str]) -> list[Path]:
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.is_file()
                            and not any(part.startswith(".") for part in f.relative_to(p).parts))
        elif p.is_file():
            files.append(p)
        else:
            raise WeightsError(f"missing weights file {p}; {FETCH_HINT}")
    return files


@dataclass
class Problem:
    path: Path
    kind: str  # "missing" | "size-mismatch" | "altered" | "corrupt" | "unverifiable"
    message: str

    @property
    def fatal(self) -> bool:
        """An unverifiable file (no known hash) is reported, but is not an error."""
        return self.kind != "unverifiable"

    def __str__(self) -> str:
        return self.message


def verify(weights_root: Path | str, entries: list[Entry] | None = None) -> list[Problem]:
    """Hash every present manifest file and compare; list what is missing, altered or corrupt.

    Expected hashes: the manifest's sha256 for files stored as downloaded; for converted files
    (and files whose manifest hash is unknown) the one recorded at fetch time. Missing optional
    files are not problems. Hashes are always computed afresh; the run cache is updated.
    """
    root = Path(weights_root)
    entries = load_manifest() if entries is None else entries
    records = _read_json(root / VERIFIED)
    problems: list[Problem] = []
    fresh: dict[str, str] = {}
    for s in status(root, entries):
        e, p = s.entry, s.path
        if s.state == "missing":
            if not e.optional:
                problems.append(Problem(p, "missing", f"missing: {p}"))
            continue
        want_sha, want_size = _expected_local(e, records)
        if s.state == "size-mismatch":
            why = "truncated?" if s.size < want_size else "a different file?"
            problems.append(Problem(p, "size-mismatch",
                                    f"size mismatch: {p} has {s.size} bytes, expected {want_size} ({why})"))
            continue
        if p.suffix == ".safetensors":
            try:
                check_safetensors(p)
            except WeightsError as err:
                problems.append(Problem(p, "corrupt", err.message))
                continue
        digest = sha256_file(p)
        fresh[str(p)] = digest
        if not want_sha:
            problems.append(Problem(p, "unverifiable",
                                    f"cannot verify {p}: no sha256 is known for it (sha256 {digest})"))
        elif digest != want_sha:
            problems.append(Problem(p, "altered", f"altered: {p} has sha256 {digest}, expected {want_sha}"))
    _remember_hashes(root, fresh)
    return problems


def _expected_local(e: Entry, records: dict) -> tuple[str, int | None]:
    """(sha256, size) the file on disk should have; ("", None) when nothing is known."""
    rec = records.get(e.path)
    if e.convert or not e.sha256:
        if rec:
            return rec.get("sha256", ""), rec.get("size")
        return "", (None if e.convert else e.size)
    return e.sha256, e.size


def _remember_hashes(root: Path, digests: dict[str, str]) -> None:
    if not digests or not root.is_dir():
        return
    cache = _read_json(root / HASH_CACHE)
    for path, digest in digests.items():
        st = Path(path).stat()
        cache[str(Path(path).resolve())] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}
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
    _remember_hashes(root, {str(dest): records[e.path]["sha256"] if e.path in records else digest})
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
