"""The command line itself: quiet on a closed pipe, names listed in --help without importing
torch, argparse mistakes as one line, and `pack` / `make` packaging a blank cut-out whole with
one line naming the file. Every test runs the real `python -m figurine` as a subprocess.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from figurine.data import named_files
from figurine.limits import SIZES
from tests.conftest import ROOT, TINY_CONFIG, run_figurine
from tests.photos import make_face_photo

FIGURINE = [sys.executable, "-m", "figurine"]
POSES = list(named_files("poses"))
TEMPLATES = list(named_files("packaging"))
EMPTY_LINE = "{}: nothing stands out from the backdrop; packaging the whole picture"


# -- a closed pipe -------------------------------------------------------------------------------
def _into_closed_pipe(*args) -> subprocess.CompletedProcess:
    """Run figurine with stdout on a pipe whose reading end is closed before it starts: every
    write fails (deterministically, unlike racing `head`)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(FIGURINE + list(args), stdout=write_end, stderr=subprocess.PIPE,
                              text=True, timeout=120, cwd=ROOT)
    finally:
        os.close(write_end)
    return proc


@pytest.mark.parametrize("args", [["poses"], ["make", "--help"], ["--version"]], ids=" ".join)
def test_a_closed_pipe_ends_quietly(args):
    proc = _into_closed_pipe(*args)
    assert proc.stderr == ""  # no BrokenPipeError traceback, no "Exception ignored" at exit
    # 141 = 128 + SIGPIPE, as `ls | head` reports; argparse's --help/--version swallow the error (0).
    assert proc.returncode == (141 if args == ["poses"] else 0)


def test_poses_into_head_prints_two_lines_and_no_traceback():
    """The issue's own reproduction, through a shell pipeline."""
    script = f"{sys.executable} -m figurine poses | head -2; echo \"status ${{PIPESTATUS[0]}}\" >&2"
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT)
    lines = proc.stdout.splitlines()
    assert [line.split()[0] for line in lines] == POSES[:2]
    assert "Traceback" not in proc.stderr and "Error" not in proc.stderr
    assert proc.stderr.strip() in ("status 0", "status 141")  # 0 when head read it all first


# -- names in --help ---------------------------------------------------------------------------
HEAVY = ("torch", "diffusers", "transformers", "insightface", "onnxruntime")


def _help(*argv) -> tuple[str, list[str]]:
    """A command's --help text, and which heavy modules printing it imported."""
    code = ("import sys\nfrom figurine.cli import main\n"
            f"try:\n    main({list(argv) + ['--help']!r})\nexcept SystemExit:\n    pass\n"
            f"print('HEAVY', sorted(m for m in {HEAVY!r} if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "100"})
    assert proc.returncode == 0, proc.stderr
    text, _, heavy = proc.stdout.rpartition("HEAVY ")
    return " ".join(text.split()), ast.literal_eval(heavy)


def test_pack_help_lists_the_templates_without_heavy_imports():
    text, heavy = _help("pack")
    assert heavy == []
    assert f"--template TEMPLATE packaging template: {', '.join(TEMPLATES)}, or a .toml path" in text
    assert "{" + ",".join(SIZES) + "}" in text


def test_poses_help_lists_the_poses():
    text, heavy = _help("poses")
    assert heavy == []
    assert f"only this preset (repeatable): {', '.join(POSES)}" in text


def test_make_help_lists_templates_poses_and_sizes_without_heavy_imports():
    """Needs make.py to use _common.template_help() and pose_help() (the lead's file)."""
    text, heavy = _help("make")
    assert heavy == []
    assert ", ".join(TEMPLATES) in text
    assert ", ".join(POSES) in text
    assert "{" + ",".join(SIZES) + "}" in text


def test_a_users_own_template_and_pose_are_listed_too(tmp_path):
    home = tmp_path / "home"
    (home / "packaging").mkdir(parents=True)
    (home / "poses").mkdir()
    (home / "packaging" / "my-box.toml").write_text((ROOT / "configs/packaging/vintage-80s.toml").read_text())
    (home / "poses" / "my-pose.json").write_text((ROOT / "configs/poses/hero.json").read_text())
    proc = run_figurine("pack", "--help", env={"FIGURINE_HOME": str(home), "COLUMNS": "200"})
    assert "fashion-doll, my-box, vintage-80s, or a .toml path" in " ".join(proc.stdout.split())
    proc = run_figurine("poses", "--help", env={"FIGURINE_HOME": str(home), "COLUMNS": "200"})
    assert "my-pose" in proc.stdout


def test_the_name_lists_are_made_only_when_help_is_shown(tmp_path):
    """Every command builds every parser: listing the user's folder then would repeat its
    warnings on each run. A badly named template warns only where templates are listed."""
    home = tmp_path / "home"
    (home / "packaging").mkdir(parents=True)
    (home / "packaging" / "bad name!.toml").write_text("")
    env = {"FIGURINE_HOME": str(home)}
    quiet = run_figurine("poses", env=env)
    assert quiet.returncode == 0 and quiet.stderr == ""
    listed = run_figurine("pack", "--help", env=env)
    assert listed.returncode == 0 and "skipping" in listed.stderr and "bad name!.toml" in listed.stderr


def test_help_wraps_without_breaking_names_at_hyphens():
    proc = run_figurine("poses", "--help", env={"COLUMNS": "60"})
    assert proc.returncode == 0
    assert not any(line.rstrip().endswith("-") for line in proc.stdout.splitlines()
                   if not line.lstrip().startswith("-"))


# -- argparse mistakes -------------------------------------------------------------------------
@pytest.mark.parametrize("args, line", [
    (["make", "--size", "big"],
     "argument --size: invalid choice: 'big' (choose from 'social', 'story') (see figurine make --help)"),
    (["pack", "--edition", "x"], "argument --edition: invalid int value: 'x' (see figurine pack --help)"),
    (["poses", "--bogus"], "unrecognized arguments: --bogus (see figurine --help)"),
])
def test_an_argparse_mistake_is_one_line(args, line):
    proc = run_figurine(*args)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr == f"figurine: error: {line}\n"


# -- a blank cut-out: packaged whole, the file named -----------------------------------------------
@pytest.fixture
def blank_pictures(tmp_path):
    Image.new("RGB", (200, 300), (210, 210, 210)).save(tmp_path / "blank.png")   # only backdrop
    Image.new("RGBA", (120, 120), (30, 90, 200, 0)).save(tmp_path / "clear.png")  # fully transparent
    return tmp_path


def test_pack_packages_a_blank_figure_whole_and_names_it(blank_pictures):
    tmp = blank_pictures
    proc = run_figurine("pack", "blank.png", "--name", "Ada", "--accessory-image", "clear.png",
                        "-o", "out.png", "--pdf", "out.pdf", cwd=tmp)
    assert proc.returncode == 0, proc.stderr
    said = proc.stdout.splitlines()
    assert said == [EMPTY_LINE.format("blank.png"), EMPTY_LINE.format("clear.png"), "out.png", "out.pdf"]
    with Image.open(tmp / "out.png") as im:
        # The whole grey picture stands in the bubble: many backdrop-grey pixels in the package.
        pixels = np.asarray(im.convert("RGB"), int)
    grey = int((np.abs(pixels - 210).max(axis=2) <= 3).sum())
    assert grey > 20_000  # a packaged figure shows a few hundred such pixels; the whole picture ~180 000


def test_pack_packages_a_transparent_cut_out_whole(blank_pictures):
    proc = run_figurine("pack", "clear.png", "--name", "Ada", "-o", "out.png", cwd=blank_pictures)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [EMPTY_LINE.format("clear.png"), "out.png"]


def test_make_packages_a_blank_accessory_picture_whole_and_names_it(blank_pictures, tiny_weights):
    tmp = blank_pictures
    make_face_photo(tmp / "selfie.jpg")
    proc = run_figurine("make", "selfie.jpg", "--name", "Ada", "--weights", tiny_weights, "--config", TINY_CONFIG,
                        "--accessory-image", "blank.png", "-o", "fig.png", cwd=tmp)
    assert proc.returncode == 0, proc.stderr
    assert EMPTY_LINE.format("blank.png") in proc.stdout.splitlines()
    assert (tmp / "fig.png").is_file()
