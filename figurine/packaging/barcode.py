"""EAN-13 barcodes, encoded and drawn here (the encoding is about 40 lines, no dependency needed).

    from figurine.packaging.barcode import draw_barcode, ean13_for, ean13_modules
    from figurine.packaging.draw import Canvas
    from figurine.packaging.layout import Layout
    code = ean13_for("Ada Lovelace", 42)     # '2026835213581': 13 digits, valid check digit
    bars = ean13_modules(code)               # 95 booleans, True = dark module
    c = Canvas(40, 17, scale=12.0)
    c.paint(c.full(), 1.0, (0.8, 0.1, 0.1))                       # the card it is printed on
    layout = Layout(size=(c.w, c.h), scale=12.0)
    draw_barcode(c, (0, 0, 40, 17), code, layout)                 # label, bars, digits
    c.to_image().save("barcode.png")                              # scans as `code`

Numbers start with 2 (GS1 prefixes 200-299 are for restricted, in-store circulation), so a
made-up package can never carry the number of a real product. The other digits come from a
hash of the name and edition: the same package always gets the same barcode.

Drawn on a white label with the quiet zones the standard asks for (11 modules left, 7 right);
each pixel column's darkness is the exact share of its span that falls on a bar, so the bars
stay crisp and scannable at any scale; the guard bars reach down between the digit groups.
"""

from __future__ import annotations

import hashlib

import numpy as np

from figurine.packaging.draw import BLACK, WHITE, Canvas, rrect
from figurine.packaging.layout import Layout
from figurine.packaging.text import TextStyle, draw_block, fit_size

# Left-hand odd (L) and even (G) parity patterns and right-hand (R) patterns, 7 modules each.
_L = ["0001101", "0011001", "0010011", "0111101", "0100011",
      "0110001", "0101111", "0111011", "0110111", "0001011"]
_G = ["0100111", "0110011", "0011011", "0100001", "0011101",
      "0111001", "0000101", "0010001", "0001001", "0010111"]
_R = ["1110010", "1100110", "1101100", "1000010", "1011100",
      "1001110", "1010000", "1000100", "1001000", "1110100"]
# The first digit is not drawn; it chooses L/G parity for the six left-hand digits.
_PARITY = ["LLLLLL", "LLGLGG", "LLGGLG", "LLGGGL", "LGLLGG",
           "LGGLLG", "LGGGLL", "LGLGLG", "LGLGGL", "LGGLGL"]


def check_digit(digits12: str) -> int:
    """GS1 check digit: weights 1,3,1,3,... from the left over the first 12 digits."""
    if len(digits12) != 12 or not digits12.isdigit():
        raise ValueError(f"need 12 digits, got {digits12!r}")
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(digits12))
    return (10 - total % 10) % 10


def ean13_for(name: str, edition: int | None) -> str:
    """A deterministic, valid EAN-13 number in the restricted-circulation range (prefix 2)."""
    digest = hashlib.sha256(f"{name}\x00{edition}".encode()).hexdigest()
    body = "2" + "0" + str(int(digest, 16))[-10:].rjust(10, "0")
    return body + str(check_digit(body))


def ean13_modules(code: str) -> list[bool]:
    """The 95 modules of an EAN-13 symbol (guards included), True for a dark bar."""
    if len(code) != 13 or not code.isdigit() or check_digit(code[:12]) != int(code[12]):
        raise ValueError(f"not a valid EAN-13: {code!r}")
    parity = _PARITY[int(code[0])]
    bits = "101"
    for p, d in zip(parity, code[1:7]):
        bits += (_L if p == "L" else _G)[int(d)]
    bits += "01010"
    for d in code[7:]:
        bits += _R[int(d)]
    bits += "101"
    return [b == "1" for b in bits]


def guard_modules() -> set[int]:
    """Indices of the guard bars, which extend below the others on a printed symbol."""
    return {0, 1, 2, 45, 46, 47, 48, 49, 92, 93, 94}


def draw_barcode(c: Canvas, box, code: str, layout: Layout) -> None:
    """EAN-13 with quiet zones on a white label; bars anti-aliased by exact column coverage."""
    if box[2] <= 0:
        return
    x, y, w, h = box
    r = c.region(box, pad=0.5)
    c.paint(r, c.cover(r, rrect(r.X, r.Y, box, 0.8)), WHITE, clip=True)
    bits = np.array(ean13_modules(code), np.float32)
    module = w / 113.0                       # 11 quiet + 95 + 7 quiet modules
    bars_x0 = x + 11 * module
    digit_zone = h * 0.2
    top = y + h * 0.07
    bar_bottom = y + h - digit_zone - h * 0.03
    guard_bottom = bar_bottom + digit_zone * 0.55
    cum = np.concatenate([[0.0], np.cumsum(bits)])
    # Dark length over each pixel's span, in modules, divided by the span.
    px_mm = 1.0 / c.scale
    ul = (r.X[0] - px_mm / 2 - bars_x0) / module
    ur = (r.X[0] + px_mm / 2 - bars_x0) / module
    cover_x = (np.interp(ur, np.arange(96), cum) - np.interp(ul, np.arange(96), cum)) / (ur - ul)
    guards = np.zeros(95, np.float32)
    guards[list(guard_modules())] = 1
    gcum = np.concatenate([[0.0], np.cumsum(bits * guards)])
    gcover_x = (np.interp(ur, np.arange(96), gcum) - np.interp(ul, np.arange(96), gcum)) / (ur - ul)
    vy = np.clip(0.5 - (np.maximum(top - r.Y, r.Y - bar_bottom)) * c.scale, 0, 1)
    gy = np.clip(0.5 - (np.maximum(top - r.Y, r.Y - guard_bottom)) * c.scale, 0, 1)
    cov = np.maximum(cover_x[None, :] * vy, gcover_x[None, :] * gy)
    c.paint(r, cov, BLACK, clip=True)
    # Human-readable digits under the bars: the first in the quiet zone, then two groups of six.
    style = TextStyle(weight=500, width=100)
    size = fit_size(["000000"], module * 38 * c.scale, digit_zone * 0.8 * c.scale, style, 200)
    for text, cx in ((code[0], x + 6 * module),
                     (code[1:7], bars_x0 + 24 * module),
                     (code[7:], bars_x0 + 71 * module)):
        block = draw_block([text], size, style)
        mx, my = c.px(cx, bar_bottom + digit_zone * 0.55)
        c.paint_mask(block.fill, int(mx - block.shape[1] / 2), int(my - block.shape[0] / 2), BLACK)
    layout.barcode = code
    layout.barcode_box = c.pixel_box(box)
