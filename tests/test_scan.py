"""The leak scanner (tests/scan.py) itself: it must find planted traces and pass a clean folder,
or the privacy tests that rely on it prove nothing."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from figurine.outputs import save_png
from tests.photos import GPS_LATITUDE, GPS_LONGITUDE, make_face_photo, photo_exif
from tests.scan import scan_for_leaks


@pytest.fixture
def photo(tmp_path) -> Path:
    return make_face_photo(tmp_path / "selfie.jpg", seed=3)


@pytest.fixture
def clean_run(tmp_path) -> Path:
    """What a run may legitimately leave: a generated PNG, a JSON of settings, logs, a JPEG of
    something else made by the same encoder."""
    run = tmp_path / "run"
    run.mkdir()
    other = Image.open(make_face_photo(tmp_path / "someone_else.jpg", seed=11))
    save_png(other, run / "card.png", text_chunks={"parameters": "a figure\nSteps: 30"})
    other.save(run / "preview.jpg", quality=92)  # same encoder, no EXIF
    (run / "settings.json").write_text(json.dumps({"seed": 51, "energy_wh": 0.47722, "lat": 51.4}))
    (run / "log.txt").write_text("loaded models in 2.1 s\n" * 50)
    (run / "random.bin").write_bytes(np.random.default_rng(0).bytes(200_000))
    return run


def test_clean_folder_passes(photo, clean_run):
    assert scan_for_leaks(clean_run, photo) == []


def test_finds_a_full_copy_and_a_fragment(photo, clean_run):
    raw = photo.read_bytes()
    (clean_run / "tmpabc").write_bytes(raw)
    middle = len(raw) // 2
    (clean_run / "cache.bin").write_bytes(b"\0" * 1000 + raw[middle:middle + 4096] + b"\0" * 1000)
    found = scan_for_leaks(clean_run, photo)
    assert "tmpabc: the whole photo file" in found
    assert "cache.bin: the photo's compressed bytes" in found
    assert not any(line.startswith("cache.bin: the whole") for line in found)


def test_finds_a_planted_exif_block_and_gps_text(photo, clean_run):
    # an output saved with the photo's EXIF carried over (the classic leak)
    Image.new("RGB", (32, 32), (9, 9, 9)).save(clean_run / "leaky.png", exif=photo_exif())
    lat = GPS_LATITUDE[0] + GPS_LATITUDE[1] / 60 + GPS_LATITUDE[2] / 3600
    lon = -(GPS_LONGITUDE[0] + GPS_LONGITUDE[1] / 60 + GPS_LONGITUDE[2] / 3600)
    (clean_run / "meta.json").write_text(json.dumps({"where": {"lat": lat, "lon": lon}}))
    (clean_run / "place.txt").write_text("taken at 51°28'38\" N")
    found = scan_for_leaks(clean_run, photo)
    assert "leaky.png: the photo's EXIF block" in found
    assert "leaky.png: the photo's EXIF camera make" in found
    assert "meta.json: GPS latitude as decimal text" in found
    assert "meta.json: GPS longitude as decimal text" in found
    assert "place.txt: GPS latitude as degrees/minutes/seconds" in found


def test_finds_decoded_pixels_in_opencv_order(photo, clean_run):
    rgb = np.asarray(Image.open(photo).convert("RGB"))
    np.save(clean_run / "face_bgr.npy", rgb[:, :, ::-1].copy())
    found = scan_for_leaks(clean_run, photo)
    assert found == ["face_bgr.npy: the photo's decoded pixels (BGR)"]


def test_the_photo_itself_is_not_reported(photo, tmp_path):
    assert scan_for_leaks(tmp_path, photo) == []  # selfie.jpg lives in tmp_path
