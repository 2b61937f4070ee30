"""Issue 15 end to end: the face detail pass, FaceID Plus V2, the learned cut-out and the portrait
bucket, each through the real `figurine make` on the tiny weights, in float16 and float32.

(The mechanisms alone, against the documented recipes: tests/test_likeness.py and
tests/test_segment.py; several photos of one person: tests/test_multi_photo.py.)
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from tests.conftest import TINY_CONFIG, run_figurine
from tests.photos import make_face_photo


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    return make_face_photo(tmp_path_factory.mktemp("likeness-photo") / "me.jpg")


@pytest.fixture(scope="module", params=["float16", "float32"])
def made(request, tmp_path_factory, tiny_weights, photo):
    """One make per dtype with the defaults of the tiny config: portrait, detail pass on, auto cut-out."""
    tmp = tmp_path_factory.mktemp(f"likeness-{request.param}")
    proc = run_figurine("make", photo, "--name", "Ada", "--weights", tiny_weights, "--config", TINY_CONFIG,
                        "--set", f"runtime.dtype={request.param}", "-o", tmp / "ada.png", cwd=tmp)
    assert proc.returncode == 0, proc.stderr
    return request.param, tmp, proc, json.loads((tmp / "ada.run" / "run.json").read_text())


def test_detail_pass_scores_both_and_changes_nothing_outside_its_square(made):
    _, tmp, proc, record = made
    detail, fig = record["stages"]["detail"], record["stages"]["figure"]
    assert "detail pass: identity score" in proc.stdout
    assert set(detail) >= {"score_before", "score_after", "kept", "square", "face_found_by"}
    assert detail["score_before"] == fig["scores"][fig["best"]]
    raw = np.asarray(Image.open(tmp / "ada.run" / fig["files"][fig["best"]]).convert("RGB")).astype(int)
    new = np.asarray(Image.open(tmp / "ada.run" / detail["file"]).convert("RGB")).astype(int)
    left, top, side = detail["square"]
    outside = np.ones(raw.shape[:2], bool)
    outside[top:top + side, left:left + side] = False
    assert np.array_equal(raw[outside], new[outside]), "the detail pass changed pixels outside its square"
    assert not np.array_equal(raw, new), "the detail pass changed nothing"
    sidecar = json.loads((tmp / "ada.json").read_text())
    assert sidecar["stages"]["detail"]["score_after"] == detail["score_after"]  # both scores in the JSON


def test_a_new_detail_strength_reruns_the_detail_pass_not_the_figure(made, tiny_weights, photo, tmp_path):
    dtype, tmp, _, record = made
    run = tmp_path / "ada.run"
    shutil.copytree(tmp / "ada.run", run)
    proc = run_figurine("make", "--run", run, photo, "--set", "detail.strength=0.8", "--weights", tiny_weights,
                        "-o", tmp_path / "again.png", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    again = json.loads((run / "run.json").read_text())
    assert "figure" in again["reused"] and "generation" not in again["timings"]
    assert again["timings"]["detail"] > 0 and again["stages"]["detail"]["key"] != record["stages"]["detail"]["key"]
    # Without the photo the face embedding is not there (it is never stored): one line, exit 2.
    bare = run_figurine("make", "--run", run, "--set", "detail.strength=0.5", "--weights", tiny_weights,
                        "-o", tmp_path / "x.png", cwd=tmp_path)
    assert bare.returncode == 2 and "give PHOTO as well as --run" in bare.stderr


def test_the_learned_cut_out_is_used_and_recorded(made, tiny_weights, photo, tmp_path):
    _, _, _, record = made
    assert record["stages"]["figure"]["matte_method"] == "birefnet"  # the tiny tree has the model file
    proc = run_figurine("make", photo, "--name", "Ada", "--weights", tiny_weights, "--config", TINY_CONFIG,
                        "--set", "matte.method=colour-key", "--set", "detail.enabled=false", "-o", tmp_path / "k.png",
                        cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    keyed = json.loads((tmp_path / "k.json").read_text())
    assert keyed["stages"]["figure"]["matte_method"] in ("colour-key", "whole picture")
    assert keyed["stages"]["detail"] is None


def test_figures_are_made_in_a_portrait_bucket(made):
    _, tmp, _, record = made
    g = record["config"]["generation"]
    assert g["height"] > g["width"]
    with Image.open(tmp / "ada.run" / record["stages"]["figure"]["files"][0]) as im:
        assert im.size == (g["width"], g["height"])


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_faceid_plus_v2_makes_a_figure(tiny_weights, photo, tmp_path, dtype):
    proc = run_figurine("make", photo, "--name", "Ada", "--weights", tiny_weights, "--config", TINY_CONFIG,
                        "--set", "model.identity=faceid-plusv2", "--set", f"runtime.dtype={dtype}",
                        "-o", tmp_path / "ada.png", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    record = json.loads((tmp_path / "ada.json").read_text())
    assert record["config"]["model"]["identity"] == "faceid-plusv2"
    assert any("plusv2" in k for k in record["model_hashes"]), record["model_hashes"]
    assert "detail pass: identity score" in proc.stdout  # the detail pass runs with Plus V2 too
