"""What goes on a package and where it landed: the text to print, and the layout the drawing
reports back (text boxes and ink, barcode, compartments) in output pixels.

    from figurine.packaging.layout import Layout, PackText
    text = PackText("Ada Lovelace", "Analytical Engine Pilot")     # brand=None: the template's
    layout = Layout(size=(1080, 1350))
    layout.text                          # {} until a drawer records "name", "tagline", "brand"

Every drawer (card.py, lettering.py, tray.py, barcode.py, ...) writes into one Layout while it
draws; render.py then moves the boxes from package pixels to picture pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PackText:
    name: str
    tagline: str = ""
    brand: str | None = None  # None: the template's brand line


@dataclass
class TextBox:
    box: tuple[int, int, int, int]   # the template's box, in output pixels (x0, y0, x1, y1)
    ink: tuple[int, int, int, int]   # the drawn text's pixel bbox
    size_px: int
    lines: list[str]


@dataclass
class Layout:
    size: tuple[int, int]
    text: dict[str, TextBox] = field(default_factory=dict)
    barcode: str = ""
    barcode_box: tuple[int, int, int, int] = (0, 0, 0, 0)
    compartments: list[tuple[int, int, int, int]] = field(default_factory=list)
    scale: float = 1.0               # output px per mm of the package
