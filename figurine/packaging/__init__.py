"""figurine's packaging stage: a finished toy package drawn around a figure image.

    from PIL import Image
    from figurine.packaging import PackText, render_image, export_pdf, list_templates
    fig = Image.open("figure.png")                          # RGBA cut-out, or on a plain backdrop
    text = PackText("Ada Lovelace", "Analytical Engine Pilot")
    render_image(fig, [], text, "classic-blister").save("ada.png")    # 1080x1350 RGB
    export_pdf(fig, [], text, "classic-blister", "ada.pdf")           # 300 DPI, 3 mm bleed
    list_templates()   # ['classic-blister', 'collector-window', 'fashion-doll', 'vintage-80s']

render_package gives the picture with its Layout (where the text, compartments and barcode
landed); render_print the flat 300 DPI page; check_fit / validate_text refuse text before
any drawing.

Modules, by what they draw: card.py (card, hang tab, card art, side panel), art.py (card art
motifs), enclosure.py (bubble or window, with the figure), tray.py (accessory compartments),
lettering.py (brand, name, tagline), badges.py, barcode.py (EAN-13, encoded and drawn).
render.py puts them together in drawing order; layout.py holds the text to print and the
layout drawn; draw.py the anti-aliased canvas and shapes; text.py text validation and
fitting; fonts.py the bundled font; template.py the TOML templates; pdf.py the print PDF.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from figurine.errors import InputError
from figurine.packaging.render import (MAX_ACCESSORIES, SIZES, Layout, PackText, TextBox, check_fit,
                                       render_package, render_print)
from figurine.packaging.template import Template, list_templates, load_template
from figurine.packaging.text import validate_text as _validate_text

__all__ = ["PackText", "Layout", "TextBox", "Template", "SIZES", "MAX_ACCESSORIES", "render_image",
           "render_package", "render_print", "check_fit", "export_pdf", "list_templates",
           "load_template", "validate_text", "open_picture"]


def render_image(figure: Image.Image, accessories: list[Image.Image], text: PackText,
                 template: str | Template = "classic-blister", size: str = "social",
                 edition: int | None = None) -> Image.Image:
    """The package on a studio backdrop: RGB, 1080x1350 (social) or 1080x1920 (story)."""
    return render_package(figure, accessories, text, template, size, edition)[0]


def export_pdf(figure: Image.Image, accessories: list[Image.Image], text: PackText,
               template: str, path, edition: int | None = None, dpi: int = 300) -> Layout:
    """Write the print PDF (trim + 3 mm bleed, crop marks) to `path`; return the page layout."""
    from figurine.packaging.pdf import write_print_pdf

    page, layout, t = render_print(figure, accessories, text, template, edition, dpi)
    write_print_pdf(page, path, (t["page"]["width"], t["page"]["height"]), t["page"]["bleed"],
                    title=text.name)
    return layout


def validate_text(name: str, tagline: str = "", template: str | None = None,
                  brand: str | None = None) -> None:
    """Raise InputError for text no package can show; with `template`, also for text that
    cannot fit that template's boxes at a readable size."""
    _validate_text(name, tagline, brand)
    if template is not None:
        check_fit(PackText(name, tagline, brand), template)


def open_picture(source, what: str):
    """A figure or accessory picture as given (alpha kept: an RGBA cut-out is used as is);
    a PIL image passes through. One-line InputError for a missing, unreadable or huge file."""
    from PIL import UnidentifiedImageError

    if isinstance(source, Image.Image):
        return source
    path = Path(source)
    if not path.is_file():
        raise InputError(f"{path}: {what} not found")
    try:
        with Image.open(path) as im:
            if im.width * im.height > 64_000_000:
                raise InputError(f"{path}: {im.width}x{im.height} is too large (at most 64 megapixels)")
            im.load()
            return im.copy()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
        raise InputError(f"{path}: not a readable image ({e.__class__.__name__})") from e
