"""Find any trace of the user's photo in the files a run wrote (test helper for privacy tests).

    from tests.scan import scan_for_leaks
    leaks = scan_for_leaks(run_folder, photo_path)
    assert leaks == [], leaks          # e.g. ["cache/x.npy: the photo's decoded pixels (BGR)"]

What counts as a trace, each checked byte for byte in every file under `root`:
1. the photo file itself, whole;
2. any part of its compressed data: 16 windows of 64 bytes sampled evenly from the entropy-coded
   JPEG scan (or PNG IDAT, or the file's middle for other formats). Headers are not sampled,
   since two JPEGs from the same encoder share them;
3. its EXIF block (as stored after "Exif\\0\\0"), and the camera make/model text if 8+ chars;
4. its GPS position as text: each coordinate in decimal degrees with 6+ significant digits
   (51.4772, -0.00138889) and as degrees/minutes/seconds (51°28'38);
5. its decoded pixels, in RGB and BGR order (what Pillow and OpenCV hold in memory), as 16
   windows of 21 pixels from textured rows, before and after EXIF rotation: catches a cached
   numpy array or raw dump that the compressed-byte check would miss.
A re-encoded picture of the face (the generated figure) is not a trace in this sense.

Files meant for sharing (the output picture, its JSON sidecar) must hold even less. With
shared=True the scan also looks for, each as UTF-8, UTF-16 big-endian (EXIF UserComment) and
JSON-escaped text:
6. the photo's path, its file name, and the folder it lies in;
7. the user's home folder;
8. every string in `secrets`: e.g. the run's salt, the weights root, config file paths.
    leaks = scan_for_leaks(shared_folder, photo_path, shared=True, secrets=[salt, str(weights)])
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

WINDOW = 64
PIXEL_WINDOW = 63  # 21 whole pixels
SAMPLES = 16
CHUNK = 8 << 20


@dataclass
class Needle:
    what: str
    data: bytes


def _spread(data: bytes, count: int = SAMPLES, size: int = WINDOW) -> list[bytes]:
    if len(data) <= size:
        return [data] if data else []
    step = (len(data) - size) / max(count - 1, 1)
    return [data[int(i * step): int(i * step) + size] for i in range(count)]


def _compressed_region(raw: bytes) -> bytes:
    """The part of the file that is unique to this photo: JPEG scan data, PNG IDAT, or middle."""
    if raw[:2] == b"\xff\xd8":
        sos = raw.find(b"\xff\xda")
        if sos > 0:
            header_len = int.from_bytes(raw[sos + 2: sos + 4], "big")
            end = raw.rfind(b"\xff\xd9")
            return raw[sos + 2 + header_len: end if end > sos else len(raw)]
    if raw[:8] == b"\x89PNG\r\n\x1a\n":
        idat, pos = bytearray(), 8
        while pos + 8 <= len(raw):
            length = int.from_bytes(raw[pos: pos + 4], "big")
            if raw[pos + 4: pos + 8] == b"IDAT":
                idat += raw[pos + 8: pos + 8 + length]
            pos += 12 + length
        if idat:
            return bytes(idat)
    return raw[len(raw) // 10: len(raw) - len(raw) // 10]


def _decimal_texts(value: float, digits: int = 6) -> set[str]:
    """The value as text with at least `digits` significant digits and 4+ decimals, no sign,
    both rounded and truncated (a program may print either)."""
    value = abs(value)
    decimals = 4
    while decimals < 12 and len(f"{value:.{decimals}f}".lstrip("0.").replace(".", "")) < digits:
        decimals += 1
    rounded = f"{value:.{decimals}f}"
    truncated = f"{value:.{decimals + 6}f}"[: len(rounded)]
    return {rounded, truncated}


def _gps_texts(gps: dict) -> list[tuple[str, str]]:
    out = []
    for ref_tag, tag, label in ((1, 2, "latitude"), (3, 4, "longitude")):
        dms = gps.get(tag)
        if not dms or len(dms) != 3:
            continue
        d, m, s = (float(x) for x in dms)
        decimal = d + m / 60 + s / 3600
        out += [(f"GPS {label} as decimal text", t) for t in sorted(_decimal_texts(decimal))]
        sec = f"{s:.0f}" if s == int(s) else f"{s:.2f}"
        out.append((f"GPS {label} as degrees/minutes/seconds", f"{d:.0f}°{m:.0f}'{sec}"))
    return out


def _pixel_windows(image: Image.Image) -> list[bytes]:
    """Windows of raw pixel bytes from rows with plenty of variety (not flat background)."""
    rgb = image.convert("RGB")
    width, height = rgb.size
    raw = rgb.tobytes()
    row_len = width * 3
    picks = []
    for i in range(SAMPLES * 32):
        y = (i * 7919) % height
        x = ((i * 104729) % max(width - PIXEL_WINDOW // 3, 1)) * 3
        window = raw[y * row_len + x: y * row_len + x + PIXEL_WINDOW]
        if len(window) == PIXEL_WINDOW and len(set(window)) >= 16:
            picks.append(window)
        if len(picks) == SAMPLES:
            break
    return picks


def photo_needles(photo_path: Path) -> list[Needle]:
    """Everything scan_for_leaks looks for, derived from the photo."""
    raw = Path(photo_path).read_bytes()
    needles = [Needle("the whole photo file", raw)]
    needles += [Needle("the photo's compressed bytes", w) for w in _spread(_compressed_region(raw))]
    with Image.open(io.BytesIO(raw)) as im:
        exif_raw = im.info.get("exif")
        exif = im.getexif()
        im.load()
        frames = [("", im.copy())]
    upright = ImageOps.exif_transpose(frames[0][1])
    if upright.size != frames[0][1].size or upright.tobytes() != frames[0][1].tobytes():
        frames.append((", EXIF-rotated", upright))
    if exif_raw:
        block = exif_raw[6:] if exif_raw.startswith(b"Exif\x00\x00") else exif_raw
        needles.append(Needle("the photo's EXIF block", block))
    for tag, label in ((0x010F, "camera make"), (0x0110, "camera model")):
        text = str(exif.get(tag, "")).strip("\x00 ")
        if len(text) >= 8:
            needles.append(Needle(f"the photo's EXIF {label}", text.encode()))
    gps = exif.get_ifd(0x8825) if exif else {}
    needles += [Needle(what, text.encode()) for what, text in _gps_texts(gps)]
    for suffix, frame in frames:
        for w in _pixel_windows(frame):
            needles.append(Needle(f"the photo's decoded pixels (RGB{suffix})", w))
            bgr = bytes(b for i in range(0, PIXEL_WINDOW, 3) for b in reversed(w[i: i + 3]))
            needles.append(Needle(f"the photo's decoded pixels (BGR{suffix})", bgr))
    return needles


def _text_forms(text: str) -> list[bytes]:
    """How a string may be stored: UTF-8, UTF-16 big-endian (EXIF UserComment), JSON-escaped."""
    forms = {text.encode(), text.encode("utf-16-be"), json.dumps(text)[1:-1].encode()}
    return sorted(forms)


def shared_needles(photo_path: Path, secrets=()) -> list[Needle]:
    """What must not appear in a shared file beyond the photo's own bytes (see 6-8 above)."""
    photo = Path(photo_path).resolve()
    texts = [("the photo's path", str(photo)), ("the photo's file name", photo.name),
             ("the photo's folder", str(photo.parent))]
    home = str(Path.home())
    if len(home) >= 5:
        texts.append(("the home folder", home))
    texts += [(f"a secret ({s[:8]}…)", s) for s in secrets if s]
    return [Needle(what, form) for what, text in texts for form in _text_forms(text)]


def _file_hits(path: Path, needles: list[Needle]) -> set[str]:
    overlap = max(len(n.data) for n in needles) - 1
    hits, tail = set(), b""
    with open(path, "rb") as f:
        while True:
            block = f.read(CHUNK)
            if not block:
                break
            buf = tail + block
            for n in needles:
                if n.what not in hits and n.data in buf:
                    hits.add(n.what)
            tail = buf[-overlap:] if overlap else b""
    return hits


def scan_for_leaks(root: Path, photo_path: Path, skip: tuple[Path, ...] = (), shared: bool = False,
                   secrets=()) -> list[str]:
    """['relative/path: <what was found>', ...] for every file under root holding a trace.

    The photo itself is skipped if it lies under root, as are paths in `skip`. shared=True
    also looks for paths, file names and `secrets` (6-8 above).
    """
    root = Path(root)
    needles = photo_needles(Path(photo_path))
    if shared:
        needles += shared_needles(Path(photo_path), secrets)
    skipped = {Path(photo_path).resolve(), *(Path(p).resolve() for p in skip)}
    found = []
    for folder, _dirs, files in os.walk(root):
        for name in sorted(files):
            path = Path(folder) / name
            if path.resolve() in skipped or not path.is_file():
                continue
            for what in sorted(_file_hits(path, needles)):
                found.append(f"{path.relative_to(root)}: {what}")
    return found
