"""Fonts for the packaging: Noto Sans Display from the `fontpkg-noto-sans-display` package.

    from figurine.packaging.fonts import get_font, missing_glyphs
    font = get_font(96, weight=900, width=62.5)        # ExtraCondensed Black, 96 px
    missing_glyphs("Zoë 山")                            # -> ['山']

The font ships with figurine's dependencies (SIL Open Font License 1.1), never from the system,
so a package renders the same on every machine. It is a variable font with a weight axis
(100-900) and a width axis (62.5-100); templates pick both, plus italic. It covers Latin
(with extended and Vietnamese), Greek and Cyrillic.
"""

from __future__ import annotations

import functools
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from figurine.errors import ConfigError

FAMILY = "Noto Sans Display"
LICENSE = "SIL Open Font License 1.1"


@functools.cache
def font_file(italic: bool = False) -> Path:
    """Path of the variable font file inside the installed font package."""
    try:
        import fontpkg_noto_sans_display as pkg
    except ImportError as e:  # a broken install, not a user mistake we can fix here
        raise ConfigError(
            "the font package 'fontpkg-noto-sans-display' is not installed",
            hint="pip install fontpkg-noto-sans-display",
        ) from e
    name = "NotoSansDisplay-Italic[wdth,wght].ttf" if italic else "NotoSansDisplay[wdth,wght].ttf"
    path = Path(pkg.ROOT) / "files" / name
    if not path.is_file():
        raise ConfigError(f"font file missing from its package: {path}")
    return path


@functools.lru_cache(maxsize=256)
def get_font(size_px: int, weight: float = 400, width: float = 100,
             italic: bool = False) -> ImageFont.FreeTypeFont:
    """The font at an integer pixel size with its variation axes set (cached)."""
    font = ImageFont.truetype(str(font_file(italic)), max(1, int(size_px)))
    # Axis order in this font: Weight, Width.
    font.set_variation_by_axes([float(weight), float(width)])
    return font


def _glyph_picture(ch: str) -> bytes:
    img = Image.new("L", (96, 96))
    ImageDraw.Draw(img).text((20, 20), ch, font=get_font(48), fill=255)
    return img.tobytes()


@functools.lru_cache(maxsize=4096)
def _has_glyph(ch: str) -> bool:
    # A character the font lacks is drawn as glyph 0 (.notdef), the same picture as a
    # noncharacter such as U+FFFF.
    return _glyph_picture(ch) != _glyph_picture("\uffff")


def missing_glyphs(text: str) -> list[str]:
    """Characters of `text` the font cannot draw (it would show an empty box instead)."""
    out: list[str] = []
    for ch in text:
        if ch.isspace() or ch in out:
            continue
        if not _has_glyph(ch):
            out.append(ch)
    return out
