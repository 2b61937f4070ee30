"""EAN-13 barcodes, encoded and drawn here (about 40 lines, no dependency needed).

    from figurine.packaging.barcode import ean13_for, ean13_modules
    code = ean13_for("Ada Lovelace", 42)     # e.g. '2049377125818': 13 digits, valid check digit
    bars = ean13_modules(code)               # 95 booleans, True = dark module

Numbers start with 2 (GS1 prefixes 200-299 are for restricted, in-store circulation), so a
made-up package can never carry the number of a real product. The other digits come from a
hash of the name and edition: the same package always gets the same barcode.
"""

from __future__ import annotations

import hashlib

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
