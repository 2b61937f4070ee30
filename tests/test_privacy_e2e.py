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
from tests.netcheck import outbound_connections, run_without_network
from tests.photos import make_face_photo
from tests.scan import scan_for_leaks


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    return make_face_photo(tmp_path_factory.mktemp("private") / "selfie.jpg", seed=5)


def make_args(tmp: Path, weights: Path, photo: Path, *extra) -> list:
    return ["make", photo, "--name", "Ada", "--weights", weights, "--config", TINY_CONFIG,
            "-o", tmp / "out" / "fig.png", "--accessory", "mug", *extra]


def make_command(tmp: Path, weights: Path, photo: Path) -> list[str]:
    """The full `figurine make` command line, for wrappers that run it (unshare, strace)."""
    (tmp / "out").mkdir()
    return [sys.executable, "-m", "figurine", *map(str, make_args(tmp, weights, photo))]


def test_make_runs_in_an_empty_network_namespace(tmp_path, tiny_weights, photo):
    cmd = make_command(tmp_path, tiny_weights, photo)
    proc, why = run_without_network(cmd, cwd=tmp_path)
    if proc is None:
        pytest.skip(f"no network namespace on this machine: {why}")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "fig.png").exists()


def test_make_tries_no_outbound_connection_under_strace(tmp_path, tiny_weights, photo):
    cmd = make_command(tmp_path, tiny_weights, photo)
    found, why = outbound_connections(cmd, cwd=tmp_path)
    if found is None:
        pytest.skip(f"strace unavailable: {why}")
    assert found == []
    assert (tmp_path / "out" / "fig.png").exists()


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


def test_no_file_written_anywhere_holds_the_photo_or_its_exif(tmp_path, tiny_weights, photo):
    """Temp folder, home, caches, outputs and run directory: every file the run could touch."""
    home, tmpdir = tmp_path / "home", tmp_path / "tmp"
    for d in (home, tmpdir, tmp_path / "out"):
        d.mkdir()
    env = {"HOME": str(home), "TMPDIR": str(tmpdir), "XDG_CACHE_HOME": str(home / ".cache")}
    proc = run_figurine(*make_args(tmp_path, tiny_weights, photo, "--pdf", tmp_path / "out" / "fig.pdf"),
                        cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(written) >= 8  # package, sidecar, pdf, run.json, pose, figure, mattes...
    assert scan_for_leaks(tmp_path, photo) == []
    with Image.open(tmp_path / "out" / "fig.png") as im:
        assert "exif" not in im.info and len(im.getexif()) == 0
        assert "trainedAlgorithmicMedia" in im.info["XML:com.adobe.xmp"]
        assert im.text["parameters"].startswith("1/12 scale")
        stored = json.loads(im.text["figurine"])
    assert stored["config"]["generation"]["steps"] == 2 and stored["model_hashes"]


def test_from_png_reproduces_the_run(tmp_path, tiny_weights, photo):
    (tmp_path / "out").mkdir()
    first = run_figurine(*make_args(tmp_path, tiny_weights, photo, "--seed", "11", "--tagline", "Pilot"),
                         cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    again = run_figurine("make", "--from", tmp_path / "out" / "fig.png", photo, "--weights", tiny_weights,
                         "-o", tmp_path / "again.png", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    a = np.asarray(Image.open(tmp_path / "out" / "fig.png").convert("RGB"))
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
