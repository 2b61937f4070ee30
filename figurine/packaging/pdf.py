"""A one-page print PDF: the 300 DPI artwork, trim and bleed boxes, and crop marks.

    from figurine.packaging.pdf import write_print_pdf
    write_print_pdf(page_image, "pack.pdf", trim_mm=(170, 285), bleed_mm=3.0, title="Ada")

Written by hand (about 60 lines of PDF syntax) rather than through a PDF library: the page is
one image plus a few vector lines, and this keeps the file byte-for-byte reproducible (no
timestamps, no random IDs).

- MediaBox = BleedBox = trim + bleed on every side; TrimBox = the finished size.
- The artwork is embedded as a JPEG (quality 95, no chroma subsampling).
- Crop marks are thin registration-black lines that continue each trim edge into the bleed,
  drawn over a white hairline so they show on dark art; the cut removes them.
"""

from __future__ import annotations

import io

from PIL import Image

PT_PER_MM = 72.0 / 25.4


def write_print_pdf(page: Image.Image, out, trim_mm: tuple[float, float], bleed_mm: float,
                    title: str = "figurine package") -> None:
    """Write `page` (RGB, trim + 2 x bleed at any DPI) as a print PDF to a path or binary file."""
    tw, th = trim_mm
    W, H = (tw + 2 * bleed_mm) * PT_PER_MM, (th + 2 * bleed_mm) * PT_PER_MM
    b = bleed_mm * PT_PER_MM

    jpeg = io.BytesIO()
    page.convert("RGB").save(jpeg, "JPEG", quality=95, subsampling=0, optimize=False)
    jpeg_bytes = jpeg.getvalue()

    content = f"q {W:.4f} 0 0 {H:.4f} 0 0 cm /Im0 Do Q\n" + _crop_marks(W, H, b)
    content_bytes = content.encode("ascii")
    safe_title = "".join(ch if 32 <= ord(ch) < 127 and ch not in "()\\" else "?" for ch in title)

    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        (f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {W:.4f} {H:.4f}] "
         f"/BleedBox [0 0 {W:.4f} {H:.4f}] /TrimBox [{b:.4f} {b:.4f} {W - b:.4f} {H - b:.4f}] "
         f"/Resources << /XObject << /Im0 4 0 R >> >> /Contents 5 0 R >>").encode("ascii"),
        (f"<< /Type /XObject /Subtype /Image /Width {page.width} /Height {page.height} "
         f"/ColorSpace /DeviceRGB /BitsPerComponent 8 /Filter /DCTDecode "
         f"/Length {len(jpeg_bytes)} >>\nstream\n").encode("ascii") + jpeg_bytes + b"\nendstream",
        f"<< /Length {len(content_bytes)} >>\nstream\n".encode("ascii") + content_bytes + b"endstream",
        f"<< /Title ({safe_title}) /Producer (figurine) >>".encode("ascii"),
    ]
    buf = io.BytesIO()
    buf.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, obj in enumerate(objects, start=1):
        offsets.append(buf.tell())
        buf.write(f"{i} 0 obj\n".encode("ascii") + obj + b"\nendobj\n")
    xref = buf.tell()
    buf.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode("ascii"))
    for off in offsets:
        buf.write(f"{off:010d} 00000 n \n".encode("ascii"))
    buf.write(f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Info 6 0 R >>\n"
              f"startxref\n{xref}\n%%EOF\n".encode("ascii"))
    if hasattr(out, "write"):
        out.write(buf.getvalue())
    else:
        with open(out, "wb") as f:
            f.write(buf.getvalue())


def _crop_marks(W: float, H: float, b: float) -> str:
    """Eight short lines continuing the trim edges into the bleed, 1 mm clear of the corner."""
    gap = 1.0 * PT_PER_MM
    lines = []
    for x in (b, W - b):
        lines.append((x, 0, x, b - gap))
        lines.append((x, H - b + gap, x, H))
    for y in (b, H - b):
        lines.append((0, y, b - gap, y))
        lines.append((W - b + gap, y, W, y))
    path = "".join(f"{x0:.3f} {y0:.3f} m {x1:.3f} {y1:.3f} l " for x0, y0, x1, y1 in lines)
    return (f"q 1 1 1 RG 1.2 w {path}S Q\n"   # white under-stroke
            f"q 0 0 0 RG 0.3 w {path}S Q\n")  # registration-black hairline
