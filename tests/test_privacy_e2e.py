"""Issue 5 end to end: the whole `figurine make` offline, the photo never written, outputs marked,
bad text refused, damaged weights named, Ctrl-C leaving nothing half-written, --from reproducing.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import TINY_CONFIG, run_figurine
from tests.netcheck import run_offline_traced
from tests.photos import make_face_photo
from tests.scan import scan_for_leaks


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    return make_face_photo(tmp_path_factory.mktemp("private") / "selfie.jpg", seed=5)


def make_args(tmp: Path, weights: Path, photo: Path, *extra) -> list:
    return ["make", photo, "--name", "Ada", "--weights", weights, "--config", TINY_CONFIG,
            "-o", tmp / "out" / "fig.png", "--accessory", "mug", *extra]


@pytest.fixture(scope="module")
def offline_run(tmp_path_factory, tiny_weights, photo) -> dict:
    """One `figurine make` (an accessory, a PDF, a seed and tagline to reproduce) with HOME and
    TMPDIR inside its folder, run in an empty network namespace and under strace where this
    machine allows each: the tests below check that one run for each promise."""
    folder = tmp_path_factory.mktemp("offline")
    home, tmpdir = folder / "home", folder / "tmp"
    for d in (home, tmpdir, folder / "out"):
        d.mkdir()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HOME": str(home), "TMPDIR": str(tmpdir),
           "XDG_CACHE_HOME": str(home / ".cache")}
    args = make_args(folder, tiny_weights, photo, "--pdf", folder / "out" / "fig.pdf", "--seed", "11",
                     "--tagline", "Pilot")
    run = run_offline_traced([sys.executable, "-m", "figurine", *map(str, args)], cwd=folder, env=env)
    return {**run, "folder": folder}


def test_make_runs_in_an_empty_network_namespace(offline_run):
    if not offline_run["unshared"]:
        pytest.skip(f"no network namespace on this machine: {offline_run['why_not_unshared']}")
    assert offline_run["proc"].returncode == 0, offline_run["proc"].stderr
    assert (offline_run["folder"] / "out" / "fig.png").exists()


def test_make_tries_no_outbound_connection_under_strace(offline_run):
    if offline_run["outbound"] is None:
        pytest.skip(f"strace unavailable: {offline_run['why_no_strace']}")
    assert offline_run["proc"].returncode == 0, offline_run["proc"].stderr
    assert offline_run["outbound"] == []
    assert (offline_run["folder"] / "out" / "fig.png").exists()


def test_make_in_process_under_the_guard_makes_zero_attempts(tmp_path, tiny_weights, photo):
    from figurine import privacy
    from figurine.config import load_config
    from figurine.pipeline import FigurinePipeline
    from figurine.request import Request

    privacy.go_offline()
    with privacy.install_network_guard() as guard:
        cfg = load_config([TINY_CONFIG], weights=tiny_weights)
        FigurinePipeline(cfg)(Request(photos=[photo], name="Ada", output=tmp_path / "fig.png"))
        assert guard.attempts == []
    assert (tmp_path / "fig.png").exists()


def test_no_file_written_anywhere_holds_the_photo_or_its_exif(offline_run, photo):
    """Temp folder, home, caches, outputs and run directory: every file the run could touch."""
    folder = offline_run["folder"]
    assert offline_run["proc"].returncode == 0, offline_run["proc"].stderr
    written = [p for p in folder.rglob("*") if p.is_file()]
    assert len(written) >= 8  # package, sidecar, pdf, run.json, pose, figure, mattes...
    assert scan_for_leaks(folder, photo) == []
    with Image.open(folder / "out" / "fig.png") as im:
        assert "exif" not in im.info and len(im.getexif()) == 0
        assert "trainedAlgorithmicMedia" in im.info["XML:com.adobe.xmp"]
        assert im.text["parameters"].startswith("1/12 scale")
        stored = json.loads(im.text["figurine"])
    assert stored["config"]["generation"]["steps"] == 2 and stored["model_hashes"]


def test_from_png_reproduces_the_run(tmp_path, tiny_weights, photo, offline_run):
    first = offline_run["folder"] / "out" / "fig.png"
    assert offline_run["proc"].returncode == 0, offline_run["proc"].stderr
    again = run_figurine("make", "--from", first, photo, "--weights", tiny_weights,
                         "-o", tmp_path / "again.png", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    a = np.asarray(Image.open(first).convert("RGB"))
    b = np.asarray(Image.open(tmp_path / "again.png").convert("RGB"))
    assert np.array_equal(a, b)
    record = json.loads(Image.open(tmp_path / "again.png").text["figurine"])
    assert record["resolved"]["seed"] == 11 and record["request"]["tagline"] == "Pilot"


@pytest.mark.parametrize("name, fragment", [
    ("", "name is empty"),
    ("   ", "name is empty"),
    ("Ada\x07Lovelace", "control character"),
    ("A" * 41, "the limit is 40"),
    ("名前", "cannot draw"),
])
def test_bad_names_are_one_line_exit_2_before_any_model_loads(tmp_path, photo, name, fragment):
    start = time.monotonic()
    proc = run_figurine("make", photo, "--name", name, "--weights", tmp_path / "no-weights",
                        "-o", tmp_path / "fig.png", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and fragment in lines[0] and "Traceback" not in proc.stderr
    assert time.monotonic() - start < 10
    assert not (tmp_path / "fig.png").exists()


def test_a_truncated_weights_file_is_named_at_load(tmp_path, tiny_weights, photo):
    weights = tmp_path / "w"
    shutil.copytree(tiny_weights, weights)
    unet = weights / "sdxl-base" / "unet" / "diffusion_pytorch_model.fp16.safetensors"
    data = unet.read_bytes()
    unet.write_bytes(data[: len(data) // 2])
    proc = run_figurine("make", photo, "--name", "Ada", "--weights", weights, "--config", TINY_CONFIG,
                        "-o", tmp_path / "fig.png", cwd=tmp_path)
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "diffusion_pytorch_model.fp16.safetensors" in proc.stderr and "truncated" in proc.stderr


def test_ctrl_c_leaves_no_partial_files(tmp_path, tiny_weights, photo):
    out = tmp_path / "out"
    out.mkdir()
    args = [sys.executable, "-m", "figurine", *map(str, make_args(tmp_path, tiny_weights, photo))]
    proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run_dir = out / "fig.run"
    deadline = time.monotonic() + 120
    while not any(run_dir.glob("pose-*.png")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "make finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert not (out / "fig.png").exists() and not (out / "fig.json").exists()
    leftovers = [p for p in out.rglob(".*") if p.is_file()]
    assert leftovers == []
    assert os.listdir(out) == ["fig.run"]  # only finished stage files, in the run directory
