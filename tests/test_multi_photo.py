"""Issue 15 item 1: several photos of one person, end to end on the tiny weights.

The tiny insightface pack's ArcFace stand-in gives the same drawn face at three photo sizes a
cosine of about 0.99, and two differently drawn faces about 0.25: well apart around the default
face.same_person = 0.4, as real photos of one person (0.5-0.8) and of two (below 0.3) are.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import TINY_CONFIG, one_error_line, run_figurine
from tests.photos import make_face_photo


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_three_photos_of_one_person_are_combined_and_recorded(tiny_weights, tmp_path, dtype):
    photos = [make_face_photo(tmp_path / f"me-{s}.jpg", size=(s, s), seed=0) for s in (512, 640, 768)]
    proc = run_figurine("make", *photos, "--name", "Ada", "--weights", tiny_weights, "--config", TINY_CONFIG,
                        "--set", f"runtime.dtype={dtype}", "-o", tmp_path / "ada.png", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    record = json.loads((tmp_path / "ada.json").read_text())
    fig = record["stages"]["figure"]
    assert record["request"]["photos"] == 3 and fig["face"]["photos"] == 3
    scores = fig["photo_scores"][0]
    if scores is not None:  # a face found on the (noise) figure: scored against each photo, mean packaged
        assert len(scores) == 3 and fig["scores"][0] == pytest.approx(sum(scores) / 3, abs=1e-3)
    for p in photos:  # the photos are counted, never named
        assert p.name not in (tmp_path / "ada.json").read_text()


def test_photos_of_two_people_are_refused_naming_the_odd_one(tiny_weights, tmp_path):
    me = [make_face_photo(tmp_path / f"me-{s}.jpg", size=(s, s), seed=0) for s in (512, 640)]
    other = make_face_photo(tmp_path / "someone-else.jpg", seed=1)
    proc = run_figurine("make", *me, other, "--name", "Ada", "--weights", tiny_weights, "--config", TINY_CONFIG,
                        "-o", tmp_path / "ada.png", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    error = one_error_line(proc)
    assert f"{other} shows a different person" in error and "face.same_person" in error
    assert not (tmp_path / "ada.png").exists() and not (tmp_path / "ada.run").exists()
