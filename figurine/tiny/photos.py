"""Photo-like test pictures, drawn with Pillow and numpy (no real person anywhere).

    from figurine.tiny.photos import make_face_photo
    path = make_face_photo("selfie.jpg")                   # one face, JPEG with EXIF + GPS

Every picture is a JPEG carrying camera EXIF and a GPS position (CAMERA_MAKE, GPS_LATITUDE...),
so privacy tests can look for those in anything figurine writes.

Where the faces go: the tiny insightface pack (figurine/tiny/insightface.py) finds a face where a
box holds detail: a large box left of centre (centre at 25 % / 45 % of a square photo, 35 % wide)
and a smaller one right of centre (75 % / 45 %, 25 % wide). The pictures put their faces there;
the background is a smooth gradient with mild sensor-like noise, which holds no face.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

CAMERA_MAKE = "FigurineTestCam"
CAMERA_MODEL = "PrivacyProbe 1"
GPS_LATITUDE = (51.0, 28.0, 38.0)  # N
GPS_LONGITUDE = (0.0, 0.0, 5.0)  # W

LEFT_FACE = (0.25, 0.45, 0.35)  # centre x, centre y, width; fractions of a square photo
RIGHT_FACE = (0.75, 0.45, 0.25)


def photo_exif() -> Image.Exif:
    """Camera EXIF with a GPS block, as a phone would write it."""
    exif = Image.Exif()
    exif[0x010F] = CAMERA_MAKE  # Make
    exif[0x0110] = CAMERA_MODEL  # Model
    exif[0x0132] = "2024:05:01 12:00:00"  # DateTime
    exif[0x8825] = {  # GPSInfo
        1: "N",
        2: GPS_LATITUDE,
        3: "W",
        4: GPS_LONGITUDE,
    }
    return exif


def background(size: tuple[int, int], seed: int) -> Image.Image:
    """A smooth two-colour gradient with a little noise: a wall, not a face."""
    rng = np.random.default_rng(seed)
    width, height = size
    top, bottom = rng.integers(90, 220, size=(2, 3))
    t = np.linspace(0.0, 1.0, height)[:, None, None]
    pixels = top * (1 - t) + bottom * t + np.zeros((1, width, 1))
    pixels += rng.normal(0.0, 1.5, pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def draw_face(image: Image.Image, centre: tuple[float, float], width: float, seed: int) -> None:
    """A cartoon face: skin with texture, hair, eyes, nose and mouth, colours from `seed`."""
    rng = np.random.default_rng(seed + 1000)
    cx, cy = centre
    w, h = width, width * 1.25
    skin = tuple(int(v) for v in rng.integers(120, 235, 3))
    hair = tuple(int(v) for v in rng.integers(10, 110, 3))
    eyes = tuple(int(v) for v in rng.integers(20, 160, 3))
    box = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)

    # 1. head and hair, with skin texture inside the head only
    layer = Image.new("RGB", image.size, skin)
    noise = rng.normal(0.0, 14.0, (image.size[1], image.size[0], 1))
    layer = Image.fromarray(np.clip(np.asarray(layer) + noise, 0, 255).astype(np.uint8), "RGB")
    mask = Image.new("L", image.size, 0)
    ImageDraw.Draw(mask).ellipse(box, fill=255)
    image.paste(layer, (0, 0), mask.filter(ImageFilter.GaussianBlur(1)))
    draw = ImageDraw.Draw(image)
    draw.chord((box[0] - w * 0.05, box[1] - h * 0.08, box[2] + w * 0.05, cy), 180, 360, fill=hair)

    # 2. eyes, nose, mouth at the usual proportions
    for side in (-1, 1):
        ex, ey = cx + side * w * 0.18, cy - h * 0.02
        draw.ellipse((ex - w * 0.09, ey - h * 0.04, ex + w * 0.09, ey + h * 0.04), fill=(245, 245, 240))
        draw.ellipse((ex - w * 0.04, ey - h * 0.035, ex + w * 0.04, ey + h * 0.035), fill=eyes)
        draw.line((ex - w * 0.1, ey - h * 0.09, ex + w * 0.1, ey - h * 0.1), fill=hair, width=max(2, int(w * 0.03)))
    draw.line((cx, cy + h * 0.02, cx - w * 0.04, cy + h * 0.16), fill=(90, 60, 50), width=max(2, int(w * 0.02)))
    draw.arc((cx - w * 0.2, cy + h * 0.12, cx + w * 0.2, cy + h * 0.3), 20, 160, fill=(150, 40, 50),
             width=max(2, int(w * 0.03)))


def save_jpeg(image: Image.Image, path: Path) -> Path:
    path = Path(path)
    image.save(path, "JPEG", quality=92, exif=photo_exif())
    return path


def make_face_photo(path: Path, size: tuple[int, int] = (512, 512), seed: int = 0) -> Path:
    """One face left of centre; `seed` changes colours and texture (a different person)."""
    image = background(size, seed)
    cx, cy, w = LEFT_FACE
    draw_face(image, (cx * size[0], cy * size[1]), w * 0.85 * size[0], seed)
    return save_jpeg(image, path)


def make_two_face_photo(path: Path, size: tuple[int, int] = (512, 512), seed: int = 0) -> Path:
    """A large face left of centre and a smaller, different one right of centre."""
    image = background(size, seed)
    for i, (cx, cy, w) in enumerate((LEFT_FACE, RIGHT_FACE)):
        draw_face(image, (cx * size[0], cy * size[1]), w * 0.85 * size[0], seed + 7 * i)
    return save_jpeg(image, path)


def make_flat_photo(path: Path, size: tuple[int, int] = (512, 512), colour=(205, 198, 184)) -> Path:
    """A photo of a blank wall: one colour, no face."""
    return save_jpeg(Image.new("RGB", size, colour), path)
