"""Text for the packaging: validation, auto-fitting into a box, and drawing as coverage masks.

    from figurine.packaging.text import validate_text, fit_block
    validate_text("Ada Lovelace", "Analytical Engine Pilot")        # raises InputError if bad
    validate_text("\\u200b")       # InputError: a name of only invisible characters is empty
    block = fit_block("ADA LOVELACE", 600, 120, style)               # biggest size that fits

A fitted block is a picture of the text (fill, outline and extrusion masks) cut tight around
its ink, so placing it inside a box can be checked exactly: the renderer reports the box and
the ink it drew.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from figurine.errors import InputError
from figurine.packaging.fonts import FAMILY, get_font, missing_glyphs

NAME_MAX = 40
TAGLINE_MAX = 60
BRAND_MAX = 30


@dataclass
class TextStyle:
    weight: float = 900.0
    width: float = 100.0
    italic: bool = False
    outline: float = 0.0        # outline width as a fraction of the font size
    extrude: float = 0.0        # 3-D extrusion depth (down-right) as a fraction of the size
    shadow: tuple[float, float] = (0.0, 0.0)  # drop shadow offset as fractions of the size
    line_pitch: float = 0.98    # baseline distance as a fraction of the size
    align: str = "center"


@dataclass
class TextBlock:
    """Masks of fitted text, all the same size; ink fills the picture up to a 2 px margin."""

    lines: list[str]
    size: int
    fill: np.ndarray                # float32 0..1
    outline: np.ndarray | None
    extrude: np.ndarray | None
    shadow: np.ndarray | None

    @property
    def shape(self) -> tuple[int, int]:
        return self.fill.shape

    def ink(self) -> np.ndarray:
        m = self.fill
        for extra in (self.outline, self.extrude, self.shadow):
            if extra is not None:
                m = np.maximum(m, extra)
        return m


def validate_text(name: str, tagline: str = "", brand: str | None = None) -> None:
    """Raise InputError (one line stating the rule) for text no package can show."""
    _check("name", name, NAME_MAX, required=True)
    _check("tagline", tagline or "", TAGLINE_MAX)
    if brand is not None:
        _check("brand", brand, BRAND_MAX)


def _check(what: str, text: str, limit: int, required: bool = False) -> None:
    if not isinstance(text, str):
        raise InputError(f"{what} must be text")
    for ch in text:
        cat = unicodedata.category(ch)
        if cat in ("Cc", "Zl", "Zp") or cat == "Cs":
            raise InputError(f"{what} contains a control character (U+{ord(ch):04X}); use plain text on one line")
    stripped = text.strip()
    if required and not stripped:
        raise InputError(f"{what} is empty; give 1 to {limit} characters")
    if required and all(invisible(ch) or ch.isspace() for ch in stripped):
        codes = " ".join(dict.fromkeys(f"U+{ord(ch):04X}" for ch in stripped if not ch.isspace()))
        raise InputError(f"{what} is empty: it has only invisible characters ({codes}); "
                         f"give 1 to {limit} characters")
    if len(stripped) > limit:
        raise InputError(f"{what} is {len(stripped)} characters long; the limit is {limit}")
    missing = missing_glyphs(stripped)
    if missing:
        shown = " ".join(missing[:5])
        raise InputError(f"{what} has characters the packaging font ({FAMILY}) cannot draw: {shown}",
                         hint="it covers Latin, Greek and Cyrillic scripts")


# Default-ignorable code points that are not in category Cf (format characters: zero-width
# space and joiners, soft hyphen, bidi marks, word joiner, BOM): Unicode's
# DerivedCoreProperties.txt. A name made only of these draws nothing.
_IGNORABLE = ((0x034F, 0x034F), (0x115F, 0x1160), (0x17B4, 0x17B5), (0x180B, 0x180F),
              (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFFA0, 0xFFA0), (0xE0000, 0xE0FFF))


def invisible(ch: str) -> bool:
    """True for a character that draws nothing and takes no room (zero-width, soft hyphen, ...)."""
    if unicodedata.category(ch) == "Cf":
        return True
    code = ord(ch)
    return any(lo <= code <= hi for lo, hi in _IGNORABLE)


def cased(text: str, case: str) -> str:
    text = " ".join(text.split())
    return text.upper() if case == "upper" else text


def _candidates(text: str, max_lines: int) -> list[list[str]]:
    """The text on 1 line, and split at spaces into 2 or 3 balanced lines."""
    out = [[text]]
    words = text.split(" ")
    if max_lines >= 2 and len(words) >= 2:
        best = min(range(1, len(words)),
                   key=lambda i: max(len(" ".join(words[:i])), len(" ".join(words[i:]))))
        out.append([" ".join(words[:best]), " ".join(words[best:])])
    if max_lines >= 3 and len(words) >= 3:
        n = len(text)
        best3, score = None, None
        for i in range(1, len(words) - 1):
            for j in range(i + 1, len(words)):
                parts = [" ".join(words[:i]), " ".join(words[i:j]), " ".join(words[j:])]
                s = max(len(p) for p in parts)
                if score is None or s < score:
                    best3, score = parts, s
        if best3 and score < n:
            out.append(best3)
    return out


def _measure(lines: list[str], size: int, style: TextStyle):
    """Ink extent (left, top, right, bottom) of the lines at `size`, in px from the first
    baseline, plus each line's x shift for alignment."""
    font = get_font(size, style.weight, style.width, style.italic)
    sw = int(round(size * style.outline))
    pitch = size * style.line_pitch
    boxes = [font.getbbox(line, anchor="ls", stroke_width=sw) for line in lines]
    widest = max(b[2] - b[0] for b in boxes)
    shifts = []
    for b in boxes:
        if style.align == "center":
            shifts.append((widest - (b[2] - b[0])) / 2.0 - b[0])
        else:
            shifts.append(-boxes[0][0])
    top = min(b[1] + i * pitch for i, b in enumerate(boxes))
    bottom = max(b[3] + i * pitch for i, b in enumerate(boxes))
    ex = size * style.extrude
    dx = max(ex, size * style.shadow[0])
    dy = max(ex, size * style.shadow[1])
    return (0.0, top, widest + dx, bottom + dy), shifts, font, sw, pitch


def fit_size(text_lines: list[str], w_px: float, h_px: float, style: TextStyle,
             max_size: int) -> int:
    """The largest integer size (px) at which the lines fit w_px x h_px (0 if none)."""
    ref = 100
    (l, t, r, b), *_ = _measure(text_lines, ref, style)
    est = int(ref * min(w_px / max(1e-6, r - l), h_px / max(1e-6, b - t)))
    size = max(1, min(max_size, est + 1))
    while size > 1:
        (l, t, r, b), *_ = _measure(text_lines, size, style)
        if r - l <= w_px and b - t <= h_px:
            return size
        size -= 1
    return 0


def fit_block(text: str, w_px: float, h_px: float, style: TextStyle, max_lines: int = 1,
              max_size: int | None = None) -> tuple[list[str], int]:
    """Choose the line split and size that make the text biggest within w_px x h_px."""
    margin = 4  # the block picture's 2 px border on each side
    w_px, h_px = w_px - margin, h_px - margin
    best: tuple[list[str], int] = ([text], 0)
    for lines in _candidates(text, max_lines):
        size = fit_size(lines, w_px, h_px, style, max_size or int(h_px * 1.5) + 1)
        if size > best[1]:
            best = (lines, size)
    return best


def draw_block(lines: list[str], size: int, style: TextStyle) -> TextBlock:
    """Draw fitted lines as masks cropped to their ink (2 px margin)."""
    (l, t, r, b), shifts, font, sw, pitch = _measure(lines, size, style)
    m = 2
    w, h = int(np.ceil(r - l)) + 2 * m, int(np.ceil(b - t)) + 2 * m
    ox, oy = m - l, m - t

    def picture(stroke: int) -> np.ndarray:
        img = Image.new("L", (w, h))
        d = ImageDraw.Draw(img)
        for i, line in enumerate(lines):
            d.text((ox + shifts[i], oy + i * pitch), line, font=font, fill=255, anchor="ls",
                   stroke_width=stroke, stroke_fill=255)
        return np.asarray(img, np.float32) / 255.0

    fill = picture(0)
    outline = picture(sw) if sw > 0 else None
    body = outline if outline is not None else fill
    extrude = None
    depth = int(round(size * style.extrude))
    if depth > 0:
        extrude = np.zeros_like(body)
        for k in range(1, depth + 1):
            extrude[k:, k:] = np.maximum(extrude[k:, k:], body[:h - k, :w - k])
    shadow = None
    sx, sy = int(round(size * style.shadow[0])), int(round(size * style.shadow[1]))
    if sx or sy:
        shadow = np.zeros_like(body)
        shadow[sy:, sx:] = body[:h - sy, :w - sx]
    return TextBlock(lines, size, fill, outline, extrude, shadow)
