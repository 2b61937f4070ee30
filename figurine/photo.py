"""The photo stage: decode the user's photo with limits, upright, RGB, with no metadata left.

    from figurine.photo import load_photo
    image = load_photo("selfie.jpg")   # PIL RGB image; EXIF orientation applied, EXIF/ICC/GPS gone

Runs before any model loads and fails fast (well under 2 s) with one InputError line (exit 2)
on anything unusable: a missing, empty, oversized, truncated or damaged file, something that is
not an image, a format figurine does not read, a photo smaller than MIN_SIDE on its shorter
side, or more than MAX_PIXELS pixels (a decompression-bomb guard: the size is read from the
header, before any pixel is decoded).

Accepted: JPEG (also MPO), PNG, WebP, GIF, TIFF, BMP, AVIF, and HEIC/HEIF (the iPhone's default,
read by pillow-heif with libheif; its primary image, as phones show it). Converted correctly:
CMYK (through its ICC profile when it has one), 16-bit and 32-bit greyscale (scaled, not
clipped), greyscale, palette, alpha (composited on white), EXIF-rotated photos (turned upright),
animated GIF/WebP (first frame), 10-bit HEIC (to 8 bits). Colour-managed photos (Display P3,
Adobe RGB) are converted to sRGB.

Orientation: a JPEG's EXIF orientation tag is applied. A HEIC photo stores its rotation in the
container (irot/imir, which iPhones write together with the EXIF tag); libheif applies it while
decoding and pillow-heif resets the EXIF tag to 1, as the HEIF standard says the EXIF tag is
informational, so the photo is turned upright exactly once. The same size limits apply to HEIC
(read from its header) and the same rebuild from pixels drops its EXIF, XMP and ICC profile.

The photo is read into memory once and never written anywhere; the returned image is a fresh
one built from the pixels alone, so no EXIF, GPS, ICC profile, XMP or comment travels on.
"""

from __future__ import annotations

import functools
import io
import logging
import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from figurine.errors import InputError

log = logging.getLogger(__name__)

# Pillow decoders ever tried on a photo (JPEG's also opens MPO, the multi-picture JPEG variant;
# HEIF is pillow-heif's, registered on first use: heif_reader()).
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "TIFF", "BMP", "AVIF", "HEIF")
ACCEPTED_TEXT = "JPEG, PNG, WebP, GIF, TIFF, BMP, AVIF, HEIC/HEIF"
MIN_SIDE = 256  # px, shorter side: smaller photos hold too few pixels for a usable face
MAX_PIXELS = 50_000_000  # 50 megapixels: every phone's default photo fits, bombs do not
MAX_FILE_BYTES = 100 * 1024 * 1024  # 100 MiB

HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1")
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError)
# libheif's other failures as pillow-heif raises them (a security limit it hits: MemoryError).
HEIF_ERRORS = (RuntimeError, MemoryError)


def load_photo(path: str | Path, *, min_side: int = MIN_SIDE, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode `path` into an upright RGB image without metadata, or raise InputError."""
    label = str(path)
    data = read_bytes(Path(path), label)  # 1. the file, checked and read once
    return decode_photo(data, label, min_side=min_side, max_pixels=max_pixels)


def decode_photo(data: bytes, label: str, *, min_side: int = MIN_SIDE, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Steps 2-7 of load_photo on bytes already in memory (a batch row's photo)."""
    if not data:
        raise InputError(f"{label} is empty (0 bytes)")
    if len(data) > MAX_FILE_BYTES:
        raise InputError(f"{label} is {len(data) / 2**20:.0f} MiB; the limit is {MAX_FILE_BYTES // 2**20} MiB")
    image = open_image(data, label)  # 2. header only: format and size
    check_size(image, label, min_side, max_pixels)  # 3. limits before decoding
    decode_first_frame(image, label)  # 4. pixels (first frame of an animation)
    image = upright(image, label)  # 5. EXIF orientation
    rgb = to_rgb(image, label)  # 6. colour: 16-bit, alpha, CMYK, ICC -> 8-bit sRGB
    return Image.fromarray(np.array(rgb, dtype=np.uint8), "RGB")  # 7. pixels only, no metadata


def read_bytes(path: Path, label: str) -> bytes:
    if not path.exists():
        raise InputError(f"photo not found: {label}")
    if path.is_dir():
        raise InputError(f"{label} is a folder, not a photo")
    try:
        size = path.stat().st_size
        if size == 0:
            raise InputError(f"{label} is empty (0 bytes)")
        if size > MAX_FILE_BYTES:
            raise InputError(f"{label} is {size / 2**20:.0f} MiB; the limit is {MAX_FILE_BYTES // 2**20} MiB")
        return path.read_bytes()
    except OSError as error:
        raise InputError(f"cannot read {label}: {error.strerror or error}") from None


@functools.cache
def heif_reader() -> bool:
    """Register pillow-heif's HEIC/HEIF decoder with Pillow (once); False when it is not installed.

    Only the primary image is decoded: no thumbnails, depth maps or auxiliary images. libheif's
    own security limits stay on."""
    try:
        import pillow_heif
    except ImportError:
        return False
    pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)
    return True


def is_heif(data: bytes) -> bool:
    return data[4:8] == b"ftyp" and data[8:12] in HEIF_BRANDS


def open_image(data: bytes, label: str) -> Image.Image:
    """Parse the header with the accepted decoders only; name the problem when that fails."""
    formats = ACCEPTED_FORMATS if heif_reader() else tuple(f for f in ACCEPTED_FORMATS if f != "HEIF")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # check_size says it better
            return Image.open(io.BytesIO(data), formats=formats)
    except Image.DecompressionBombError as error:  # over twice Pillow's own limit
        raise bomb_error(label, pixels=pixels_from_pillow(error)) from None
    except UnidentifiedImageError:
        raise unreadable_format(data, label) from None
    except DECODE_ERRORS as error:
        raise damaged(label, error) from None
    except HEIF_ERRORS as error:
        if not is_heif(data):
            raise
        raise damaged(label, error) from None


def unreadable_format(data: bytes, label: str) -> InputError:
    """Either a real image in a format figurine does not read, or not an image at all."""
    if is_heif(data):
        if not heif_reader():
            return InputError(f"{label} is in HEIC/HEIF format, and the HEIC reader is not installed",
                              hint="pip install pillow-heif, or export the photo as JPEG")
        # pillow-heif refused it at the header: ask libheif itself for the reason.
        import pillow_heif

        try:
            pillow_heif.open_heif(io.BytesIO(data))
        except (*DECODE_ERRORS, *HEIF_ERRORS) as error:  # libheif's reason
            return damaged(label, error)
        return InputError(f"{label} is a HEIC/HEIF file figurine cannot decode; export it as JPEG")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            other = Image.open(io.BytesIO(data)).format  # identify only; nothing is decoded
    except Exception:  # any failure here just means "not an image we recognise"
        other = None
    if other:
        return InputError(f"{label} is in {other} format, which figurine does not read; "
                          f"accepted formats: {ACCEPTED_TEXT}")
    return InputError(f"{label} is not an image; accepted formats: {ACCEPTED_TEXT}")


def check_size(image: Image.Image, label: str, min_side: int, max_pixels: int) -> None:
    width, height = image.size
    if width * height > max_pixels:
        raise bomb_error(label, width, height, max_pixels=max_pixels)
    if min(width, height) < min_side:
        raise InputError(f"{label} is {width}x{height} px; the shorter side must be at least {min_side} px")


def decode_first_frame(image: Image.Image, label: str) -> None:
    """The first frame of an animation; for HEIC the primary image (the one opened)."""
    try:
        if image.format != "HEIF":
            image.seek(0)
        image.load()
    except DECODE_ERRORS as error:
        raise damaged(label, error) from None
    except HEIF_ERRORS as error:
        if image.format != "HEIF":
            raise
        raise damaged(label, error) from None


def upright(image: Image.Image, label: str) -> Image.Image:
    """Apply the EXIF orientation; a broken EXIF block is ignored rather than fatal."""
    try:
        return ImageOps.exif_transpose(image)
    except DECODE_ERRORS as error:
        log.warning("%s: EXIF orientation unreadable (%s); using the photo as stored", label, error)
        return image


def to_rgb(image: Image.Image, label: str) -> Image.Image:
    icc = image.info.get("icc_profile")
    if image.mode in SIXTEEN_BIT_MODES or image.mode == "F":
        image = wide_grey_to_8bit(image)
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (image.mode == "P" and "transparency" in image.info):
        image = on_white(image)
    if icc and image.mode in ("RGB", "CMYK"):
        image = to_srgb(image, icc, label)
    try:
        return image.convert("RGB")
    except ValueError:
        raise InputError(f"{label} uses colour mode {image.mode}, which figurine cannot convert to RGB") from None


def wide_grey_to_8bit(image: Image.Image) -> Image.Image:
    """16-bit (or 32-bit int / float) greyscale to 8 bits by scaling, not clipping."""
    values = np.asarray(image, dtype=np.float64)
    if image.mode == "F":
        top = 1.0 if values.max(initial=0.0) <= 1.0 else 255.0
    else:
        top = 255.0 if values.max(initial=0) <= 255 else 65535.0
    scaled = np.clip(values / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return Image.fromarray(scaled, "L")


def on_white(image: Image.Image) -> Image.Image:
    rgba = image.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def to_srgb(image: Image.Image, icc: bytes, label: str) -> Image.Image:
    """Convert through the embedded ICC profile; fall back to plain conversion if it is broken."""
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        return ImageCms.profileToProfile(image, source, ImageCms.createProfile("sRGB"), outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as error:
        log.warning("%s: embedded colour profile unusable (%s); converting without it", label, error)
        return image


def damaged(label: str, error: BaseException) -> InputError:
    detail = str(error).splitlines()[0] if str(error) else type(error).__name__
    return InputError(f"{label} is truncated or damaged ({detail}); export it again or use another photo")


def bomb_error(label: str, width: int | None = None, height: int | None = None, *,
               pixels: int | None = None, max_pixels: int = MAX_PIXELS) -> InputError:
    if width and height:
        pixels = width * height
        size = f"{width}x{height} px ({pixels / 1e6:.0f} megapixels)"
    else:
        size = f"{pixels / 1e6:.0f} megapixels" if pixels else "too many pixels"
    return InputError(f"{label} is {size}, over the {max_pixels / 1e6:.0f}-megapixel limit "
                      "(a guard against decompression bombs); downscale it first")


def pixels_from_pillow(error: BaseException) -> int | None:
    match = re.search(r"\((\d+) pixels\)", str(error))
    return int(match.group(1)) if match else None
