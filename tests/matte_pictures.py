"""Drawn test pictures for the cut-out: backdrop-coloured things on the grey studio backdrop.

    from tests.matte_pictures import grey_suit, silver_flask
    picture = grey_suit()
    picture.image            # RGB, as the generator would deliver it
    picture.grey             # bool mask: the parts as grey as the backdrop (cloth, metal)
    picture.figure           # bool mask: every part of the figure or accessory

Drawn 4x larger and reduced (anti-aliased edges), then given a studio light falloff and sensor
noise, like tests/test_matte.py's scene. The grey parts sit within ~10 levels of the backdrop
and touch it along their outline, which is where a colour key cannot tell them apart; like real
cloth and metal they carry texture (a twill weave, brushed streaks) and shading.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

SS = 4
BACKDROP = (206, 206, 206)
SUIT = (198, 199, 203)
SKIN = (226, 182, 150)
TIE = (180, 30, 45)
SHOE = (45, 42, 48)
SPECKS = ((20, 20), (290, 30), (296, 420))  # 3x3 px dirt on the backdrop of the suit picture


@dataclass
class Picture:
    image: Image.Image
    grey: np.ndarray
    figure: np.ndarray


def _finish(arr: np.ndarray, seed: int) -> Image.Image:
    """Reduce the 4x drawing, add a vertical light falloff (+-5 levels) and noise (sigma 1.2)."""
    small = np.asarray(Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8)).reduce(SS), np.float32)
    falloff = np.linspace(-5, 5, small.shape[0], dtype=np.float32)[:, None, None]
    noise = np.random.default_rng(seed).normal(0, 1.2, small.shape).astype(np.float32)
    return Image.fromarray(np.clip(small + falloff + noise + 0.5, 0, 255).astype(np.uint8))


def _reduce_mask(mask: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).reduce(SS)) >= 128


def grey_suit(size: tuple[int, int] = (320, 440)) -> Picture:
    """A standing figure in a light grey twill suit (red tie, skin-coloured head and hands, dark
    shoes), with three specks of dirt on the backdrop."""
    s = SS
    W, H = size[0] * s, size[1] * s
    img = Image.new("RGB", (W, H), BACKDROP)
    cloth = Image.new("L", (W, H), 0)
    whole = Image.new("L", (W, H), 0)
    d, c, f = ImageDraw.Draw(img), ImageDraw.Draw(cloth), ImageDraw.Draw(whole)

    def part(kind: str, xy, fill, is_cloth: bool = False) -> None:
        xy = [(x * s, y * s) for x, y in xy]
        for draw, colour in ((d, fill), (f, 255)) + (((c, 255),) if is_cloth else ()):
            getattr(draw, kind)(xy, fill=colour)

    part("rectangle", [(112, 96), (208, 270)], SUIT, True)                              # jacket
    part("polygon", [(112, 100), (70, 230), (90, 236), (126, 130)], SUIT, True)          # sleeves
    part("polygon", [(208, 100), (250, 230), (230, 236), (194, 130)], SUIT, True)
    part("rectangle", [(118, 270), (156, 400)], SUIT, True)                             # trousers
    part("rectangle", [(164, 270), (202, 400)], SUIT, True)
    part("ellipse", [(130, 20), (190, 96)], SKIN)                                       # head
    part("ellipse", [(74, 228), (92, 248)], SKIN)                                       # hands
    part("ellipse", [(228, 228), (246, 248)], SKIN)
    part("polygon", [(155, 100), (165, 100), (168, 190), (160, 200), (152, 190)], TIE)  # tie
    part("rectangle", [(114, 400), (158, 414)], SHOE)                                   # shoes
    part("rectangle", [(162, 400), (206, 414)], SHOE)

    arr = np.asarray(img, np.float32).copy()
    is_cloth = (np.asarray(cloth) > 0) & (np.abs(arr - SUIT).sum(axis=2) < 1)  # the tie is on top
    yy, xx = np.mgrid[0:H, 0:W]
    twill = 7.0 * np.sin(2 * np.pi * (xx + yy) / (4.0 * s))  # diagonal weave, 4 px period
    arr += np.where(is_cloth, twill, 0.0)[..., None]
    for x, y in SPECKS:
        arr[y * s:(y + 3) * s, x * s:(x + 3) * s] = (60, 60, 60)
    return Picture(_finish(arr, seed=1), _reduce_mask(is_cloth), _reduce_mask(np.asarray(whole) > 0))


def silver_flask(size: tuple[int, int] = (240, 240)) -> Picture:
    """A brushed-silver flask: shaded like a cylinder (darker rims, a bright core and a specular
    stripe), so its grey passes through the backdrop's along its whole height."""
    s = SS
    W, H = size[0] * s, size[1] * s
    shape = Image.new("L", (W, H), 0)
    m = ImageDraw.Draw(shape)
    m.rounded_rectangle([80 * s, 40 * s, 160 * s, 200 * s], radius=30 * s, fill=255)  # body
    m.rectangle([108 * s, 20 * s, 132 * s, 44 * s], fill=255)                         # neck
    mask = np.asarray(shape) > 0
    yy, xx = np.mgrid[0:H, 0:W]
    u = np.clip((xx - 80 * s) / (80 * s), 0, 1)                                        # 0..1 across
    shade = 150 + 90 * np.sin(np.pi * u) ** 0.6 - 40 * u + 25 * np.exp(-((u - 0.35) / 0.05) ** 2)
    brushed = 7.0 * np.sin(2 * np.pi * yy / (6.0 * s)) + 4.0 * np.sin(2 * np.pi * yy / (2.5 * s))
    metal = np.stack([shade + brushed, shade + brushed + 1, shade + brushed + 4], axis=2)
    arr = np.where(mask[..., None], metal, np.array(BACKDROP, np.float32))
    return Picture(_finish(arr, seed=2), _reduce_mask(mask), _reduce_mask(mask))
