"""The photo stage: every bad photo gets one clear line (exit 2) fast; odd but valid ones decode right.

Each fixture is built with Pillow in tmp_path; results are checked on the decoded pixels.
"""

from __future__ import annotations

import io
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

from figurine.errors import InputError
from figurine.photo import ACCEPTED_TEXT, MAX_PIXELS, MIN_SIDE, heif_reader, load_photo
from tests.photos import CAMERA_MAKE, CAMERA_MODEL, make_face_photo, photo_exif

ACCEPTED = f"accepted formats: {ACCEPTED_TEXT}"


def noise_image(size=(400, 300), seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB")


def two_halves(size=(400, 300)) -> Image.Image:
    """Left half red, right half blue: orientation and colour are easy to check."""
    image = Image.new("RGB", size, (220, 30, 30))
    image.paste((30, 30, 220), (size[0] // 2, 0, size[0], size[1]))
    return image


# -- bad photos: (file name, builder, expected message) -------------------------------------


def write(path, data: bytes):
    path.write_bytes(data)


def jpeg_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def heic_bytes(image: Image.Image, **options) -> bytes:
    """The picture as HEIC, encoded by pillow-heif (libheif with x265), as an iPhone would save it."""
    heif_reader()  # registers the HEIF plugin with Pillow (its encoder too)
    buffer = io.BytesIO()
    image.save(buffer, "HEIF", quality=95, **options)
    assert buffer.getvalue()[4:12] == b"ftypheic"
    return buffer.getvalue()


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG signature and IHDR chunk (1-bit greyscale) claiming width x height, then IEND."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def make_bad(name: str, path):
    """Build the bad photo `name` at `path`; return the exact message load_photo must give."""
    label = str(path)
    if name == "missing":
        return f"photo not found: {label}"
    if name == "folder":
        path.mkdir()
        return f"{label} is a folder, not a photo"
    if name == "empty":
        path.write_bytes(b"")
        return f"{label} is empty (0 bytes)"
    if name == "huge-file":
        with open(path, "wb") as handle:  # sparse: no 101 MiB actually written
            handle.truncate(101 * 2**20)
        return f"{label} is 101 MiB; the limit is 100 MiB"
    if name == "text":
        path.write_text("name,tagline\nAda,Analytical Engine Pilot\n" * 20)
        return f"{label} is not an image; {ACCEPTED}"
    if name == "truncated-jpeg":
        data = jpeg_bytes(noise_image())
        path.write_bytes(data[: len(data) // 2])
        return None  # the detail comes from libjpeg; checked by prefix below
    if name == "truncated-png":
        data = png_bytes(noise_image())
        path.write_bytes(data[: len(data) // 2])
        return None
    if name == "ico":
        noise_image((256, 256)).save(path, "ICO")
        return f"{label} is in ICO format, which figurine does not read; {ACCEPTED}"
    if name == "heic-header-only":  # a HEIC signature and nothing libheif can read after it
        path.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(200))
        return DAMAGED
    if name == "truncated-heic":  # the header is whole, the picture data is cut off
        data = heic_bytes(noise_image())
        path.write_bytes(data[: len(data) // 2])
        return DAMAGED
    if name == "too-small":
        Image.new("RGB", (640, 200), "white").save(path, "PNG")
        return f"{label} is 640x200 px; the shorter side must be at least {MIN_SIDE} px"
    if name == "bomb":  # 64 MP of one bit: a 10 KB file that would decode to 190 MB of RGB
        Image.new("1", (8000, 8000)).save(path, "PNG")
        return (f"{label} is 8000x8000 px (64 megapixels), over the {MAX_PIXELS // 10**6}-megapixel limit "
                "(a guard against decompression bombs); downscale it first")
    if name == "huge-bomb":  # past Pillow's own hard limit too; only the header is ever read
        path.write_bytes(png_header_only(20000, 20000))
        return (f"{label} is 400 megapixels, over the {MAX_PIXELS // 10**6}-megapixel limit "
                "(a guard against decompression bombs); downscale it first")
    raise AssertionError(name)


BAD = ["missing", "folder", "empty", "huge-file", "text", "truncated-jpeg", "truncated-png", "ico",
       "heic-header-only", "truncated-heic", "too-small", "bomb", "huge-bomb"]
DAMAGED = "damaged"  # the message starts "PHOTO is truncated or damaged (" and gives libheif's reason


@pytest.mark.parametrize("name", BAD)
def test_bad_photo_is_one_line_input_error_within_2s(tmp_path, name):
    path = tmp_path / f"{name}.img"
    expected = make_bad(name, path)
    started = time.perf_counter()
    with pytest.raises(InputError) as caught:
        load_photo(path)
    elapsed = time.perf_counter() - started
    message = str(caught.value)
    assert caught.value.exit_code == 2
    assert "\n" not in message
    assert elapsed < 2.0, f"{name} took {elapsed:.2f} s"
    if expected is None:
        assert message.startswith(f"{path} is truncated or damaged (")
        assert "truncated" in message.split("(", 1)[1]
    elif expected is DAMAGED:
        assert message.startswith(f"{path} is truncated or damaged (")
        assert message.endswith("); export it again or use another photo")
    else:
        assert message == expected


@pytest.mark.parametrize("name", BAD)
def test_docs_list_every_bad_photo_message(tmp_path, name):
    """docs/bad-input.md shows each message exactly as figurine prints it (PHOTO = the path)."""
    docs = (Path(__file__).resolve().parent.parent / "docs" / "bad-input.md").read_text()
    path = tmp_path / f"{name}.img"
    expected = make_bad(name, path)
    if expected in (None, DAMAGED):
        expected = f"{path} is truncated or damaged ("
    assert expected.replace(str(path), "PHOTO") in docs


def test_min_side_and_pixel_limit_can_be_changed(tmp_path):
    path = tmp_path / "p.png"
    Image.new("RGB", (300, 300), "white").save(path)
    with pytest.raises(InputError, match="at least 512 px"):
        load_photo(path, min_side=512)
    with pytest.raises(InputError, match="over the 0-megapixel limit"):
        load_photo(path, max_pixels=50_000)
    assert load_photo(path).size == (300, 300)


# -- odd but valid photos ---------------------------------------------------------------------


def test_cmyk_jpeg_becomes_the_right_rgb(tmp_path):
    original = two_halves()
    path = tmp_path / "cmyk.jpg"
    original.convert("CMYK").save(path, "JPEG", quality=95)
    assert Image.open(path).mode == "CMYK"
    image = load_photo(path)
    assert image.mode == "RGB" and image.size == original.size
    assert np.abs(np.asarray(image, int) - np.asarray(original, int)).mean() < 6


def test_16bit_greyscale_png_is_scaled_not_clipped(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 400), (300, 1)).astype(np.uint16)
    path = tmp_path / "grey16.png"
    Image.fromarray(ramp).save(path)
    assert Image.open(path).mode.startswith("I")
    pixels = np.asarray(load_photo(path), int)
    assert pixels.shape == (300, 400, 3)
    assert (pixels[..., 0] == pixels[..., 2]).all()
    assert pixels[0, 0, 0] == 0 and pixels[0, -1, 0] == 255
    assert abs(pixels[0, 200, 0] - 128) <= 2  # mid-grey stays mid-grey (clipping would give 255)


def test_greyscale_and_palette_become_rgb(tmp_path):
    grey = tmp_path / "grey.jpg"
    Image.new("L", (300, 300), 77).save(grey)
    assert np.abs(np.asarray(load_photo(grey), int) - 77).max() <= 1
    palette = tmp_path / "palette.png"
    two_halves().convert("P", palette=Image.Palette.ADAPTIVE, colors=4).save(palette)
    pixels = np.asarray(load_photo(palette), int)
    assert pixels[150, 10].tolist() == [220, 30, 30] and pixels[150, 390].tolist() == [30, 30, 220]


def test_alpha_is_composited_on_white(tmp_path):
    rgba = Image.new("RGBA", (300, 300), (0, 0, 0, 0))
    rgba.paste((200, 40, 40, 255), (0, 0, 150, 300))
    path = tmp_path / "alpha.png"
    rgba.save(path)
    pixels = np.asarray(load_photo(path), int)
    assert pixels[10, 10].tolist() == [200, 40, 40]
    assert pixels[10, 290].tolist() == [255, 255, 255]  # transparent, not black

    palette = tmp_path / "palette-transparent.gif"
    Image.new("P", (300, 300), 0).save(palette, transparency=0)
    assert np.asarray(load_photo(palette)).min() == 255


def test_exif_orientation_is_honoured(tmp_path):
    stored = two_halves((400, 300))  # landscape as stored: red left, blue right
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "rotated.jpg"
    stored.save(path, "JPEG", quality=95, exif=exif)
    image = load_photo(path)
    assert image.size == (300, 400)  # portrait after turning upright
    pixels = np.asarray(image, int)
    assert pixels[10, 150, 0] > 150  # stored left (red) is now at the top
    assert pixels[390, 150, 2] > 150  # stored right (blue) is now at the bottom


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_animated_image_gives_its_first_frame(tmp_path, fmt):
    frames = [Image.new("RGB", (300, 300), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / f"anim.{fmt.lower()}"
    frames[0].save(path, fmt, save_all=True, append_images=frames[1:], duration=100, loop=0, lossless=True)
    assert Image.open(path).n_frames == 2
    red, green, blue = np.asarray(load_photo(path), int).mean(axis=(0, 1))
    assert red > 250 and blue < 5


@pytest.mark.parametrize("fmt", ["WEBP", "PNG", "TIFF", "BMP", "AVIF"])
def test_other_accepted_formats_decode(tmp_path, fmt):
    original = two_halves((320, 256))
    path = tmp_path / f"photo.{fmt.lower()}"
    original.save(path, fmt, quality=95)
    image = load_photo(path)
    assert image.size == (320, 256)
    assert np.abs(np.asarray(image, int) - np.asarray(original, int)).mean() < 8


def test_icc_profile_is_applied_and_dropped(tmp_path):
    original = two_halves()
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    path = tmp_path / "profiled.jpg"
    original.save(path, "JPEG", quality=95, icc_profile=srgb)
    image = load_photo(path)
    assert "icc_profile" not in image.info
    assert np.abs(np.asarray(image, int) - np.asarray(original, int)).mean() < 6


def test_metadata_is_dropped(tmp_path):
    path = make_face_photo(tmp_path / "selfie.jpg")
    assert Image.open(path).getexif().get_ifd(0x8825), "fixture should carry GPS"
    assert_metadata_dropped(load_photo(path), CAMERA_MAKE)


def assert_metadata_dropped(image, *secrets: str) -> None:
    """The loaded photo carries no metadata, and none comes back when it is saved."""
    assert image.info == {}
    assert len(image.getexif()) == 0
    for fmt in ("PNG", "JPEG"):
        buffer = io.BytesIO()
        image.save(buffer, fmt)
        for secret in secrets:
            assert secret.encode() not in buffer.getvalue()
        assert len(Image.open(io.BytesIO(buffer.getvalue())).getexif()) == 0


def test_photo_file_is_left_untouched(tmp_path):
    path = make_face_photo(tmp_path / "selfie.jpg")
    before = path.read_bytes(), sorted(p.name for p in tmp_path.iterdir())
    load_photo(path)
    assert (path.read_bytes(), sorted(p.name for p in tmp_path.iterdir())) == before


# -- HEIC/HEIF (iPhone photos) ------------------------------------------------------------------


def test_heic_decodes(tmp_path):
    original = two_halves((320, 256))
    path = tmp_path / "IMG_0001.HEIC"
    path.write_bytes(heic_bytes(original))
    image = load_photo(path)
    assert image.mode == "RGB" and image.size == (320, 256)
    assert np.abs(np.asarray(image, int) - np.asarray(original, int)).mean() < 8


def test_heic_rotated_by_its_exif_orientation_is_turned_upright_once(tmp_path):
    """An iPhone portrait: stored sideways with orientation 6 (pillow-heif writes it as the HEIF
    rotation, as the iPhone does). Same result as the JPEG test above: portrait, red on top."""
    stored = two_halves((400, 300))
    exif = photo_exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "portrait.heic"
    path.write_bytes(heic_bytes(stored, exif=exif.tobytes()))
    image = load_photo(path)
    assert image.size == (300, 400)
    pixels = np.asarray(image, int)
    assert pixels[10, 150, 0] > 150 and pixels[10, 150, 2] < 100  # stored left (red) is now at the top
    assert pixels[390, 150, 2] > 150 and pixels[390, 150, 0] < 100  # stored right (blue) at the bottom


def test_heic_metadata_is_dropped(tmp_path):
    exif = photo_exif()
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/>PrivacyProbeXMP</x:xmpmeta>'
    path = tmp_path / "selfie.heic"
    path.write_bytes(heic_bytes(two_halves(), exif=exif.tobytes(), icc_profile=srgb, xmp=xmp))
    with Image.open(path) as stored:  # the fixture carries what a phone writes
        assert stored.format == "HEIF"
        assert stored.getexif().get(0x010F) == CAMERA_MAKE and stored.getexif().get_ifd(0x8825)
        assert stored.info.get("icc_profile") and b"PrivacyProbeXMP" in stored.info.get("xmp", b"")
    assert_metadata_dropped(load_photo(path), CAMERA_MAKE, CAMERA_MODEL, "PrivacyProbeXMP")


def test_heic_size_limits_are_read_from_the_header(tmp_path):
    small = tmp_path / "small.heic"
    small.write_bytes(heic_bytes(noise_image((640, 200))))
    with pytest.raises(InputError) as caught:
        load_photo(small)
    assert str(caught.value) == f"{small} is 640x200 px; the shorter side must be at least {MIN_SIDE} px"
    big = tmp_path / "big.heic"
    big.write_bytes(heic_bytes(noise_image((600, 600))))
    started = time.perf_counter()
    with pytest.raises(InputError) as caught:
        load_photo(big, max_pixels=300_000)
    assert str(caught.value).startswith(f"{big} is 600x600 px (0 megapixels), over the 0-megapixel limit")
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize("side, size", [(8000, "8000x8000 px (64 megapixels)"), (100000, "10000 megapixels")])
def test_a_heic_claiming_a_huge_size_is_refused_from_its_header(tmp_path, side, size):
    """A decompression bomb in HEIC: a 300x300 picture whose 'ispe' box claims side x side."""
    data = bytearray(heic_bytes(noise_image((300, 300))))
    at = data.find(b"ispe")
    assert struct.unpack(">II", data[at + 8:at + 16]) == (300, 300)
    data[at + 8:at + 16] = struct.pack(">II", side, side)
    path = tmp_path / "bomb.heic"
    path.write_bytes(bytes(data))
    started = time.perf_counter()
    with pytest.raises(InputError) as caught:
        load_photo(path)
    assert time.perf_counter() - started < 2.0
    assert str(caught.value) == (f"{path} is {size}, over the {MAX_PIXELS // 10**6}-megapixel limit "
                                 "(a guard against decompression bombs); downscale it first")

