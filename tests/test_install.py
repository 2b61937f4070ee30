"""figurine from a built wheel: installed into a fresh virtual environment, run outside the clone.

The wheel is built from a copy of what the build needs (pyproject.toml, README.md, figurine/,
configs/) with this machine's setuptools (`pip wheel --no-build-isolation --no-index`: nothing is
downloaded), then installed by pip into a new venv made `--without-pip`. That venv sees the
already installed dependencies (torch, diffusers, ...) through one .pth file naming the test
interpreter's site-packages: a .pth line adds a folder to sys.path without running the .pth
files inside it, so the clone's editable install there stays invisible, and `--ignore-installed`
keeps pip from touching it. Every command then runs from a temporary folder outside the clone,
without PYTHONPATH: the installed package must find its own configs, templates, poses, manifest,
tiny-weights builder and drawn test face.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
BUILD_INPUTS = ("pyproject.toml", "README.md", "figurine", "configs")


def _clean_env(home: Path) -> dict:
    """The environment a user's shell would give: no PYTHONPATH, an empty config and cache home."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "FIGURINE_WEIGHTS", "FIGURINE_HOME", "VIRTUAL_ENV")}
    env.update(XDG_CONFIG_HOME=str(home / "config"), XDG_CACHE_HOME=str(home / "cache"),
               PYTHONUNBUFFERED="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    return env


def _run(cmd, cwd: Path, env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(wheel, venv python, venv bin, work folder, env): the wheel built, installed, ready to run."""
    tmp = tmp_path_factory.mktemp("install")
    env = _clean_env(tmp)
    # 1. A copy of the build inputs, so the build writes nothing into the clone.
    src = tmp / "src"
    src.mkdir()
    for name in BUILD_INPUTS:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, src / name)
    # 2. The wheel, with the installed setuptools and nothing from the network.
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
          src, "-w", tmp / "dist"], cwd=tmp, env=env)
    wheel = next((tmp / "dist").glob("figurine-*.whl"))
    # 3. A fresh venv that reuses the installed dependencies through one .pth line per folder.
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp, env=env)
    python = venv / "bin" / "python"
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     cwd=tmp, env=env).stdout.strip())
    deps = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (site / "_figurine_test_deps.pth").write_text("".join(f"{d}\n" for d in deps))
    # 4. pip installs the wheel into that venv (never uninstalling the clone's editable install).
    _run([python, "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed", "--no-compile",
          wheel], cwd=tmp, env=env)
    work = tmp / "elsewhere"
    work.mkdir()
    return wheel, python, venv / "bin", work, env


def test_wheel_holds_every_module_and_config_file(installed):
    wheel = installed[0]
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "figurine").rglob("*.py")
               if "__pycache__" not in p.parts}
    configs = {"figurine/" + p.relative_to(ROOT).as_posix() for p in (ROOT / "configs").rglob("*")
               if p.is_file() and p.suffix in (".toml", ".json")}
    assert modules - names == set(), "add the missing subpackage to [tool.setuptools] packages"
    assert configs - names == set()
    assert any(n.endswith("entry_points.txt") for n in names)


def test_installed_figurine_runs_from_its_own_copy(installed):
    _, python, _, work, env = installed
    proc = _run([python, "-c", "import figurine, figurine.data as d; "
                 "print(figurine.__file__); print(d.config_dir()); print(d.source_checkout())"], work, env)
    module, configs, checkout = proc.stdout.splitlines()
    venv = python.parent.parent
    assert Path(module).is_relative_to(venv) and Path(configs).is_relative_to(venv), proc.stdout
    assert Path(configs, "default.toml").is_file() and checkout == "None"


def test_help_and_poses_work_from_any_folder(installed):
    _, _, bin_dir, work, env = installed
    assert "make" in _run([bin_dir / "figurine", "--help"], work, env).stdout
    listed = [line.split()[0] for line in _run([bin_dir / "figurine", "poses"], work, env).stdout.splitlines()]
    assert listed == sorted(p.stem for p in (ROOT / "configs" / "poses").glob("*.json"))


def test_pack_boxes_a_figure_drawn_by_the_installed_package(installed):
    _, python, bin_dir, work, env = installed
    _run([python, "-m", "figurine.example", "figure.png"], work, env)
    _run([bin_dir / "figurine", "pack", "figure.png", "--name", "Ada Lovelace", "--template", "vintage-80s",
          "-o", "ada.png", "--pdf", "ada.pdf"], work, env)
    with Image.open(work / "ada.png") as im:
        assert im.size == (1080, 1350)
    assert (work / "ada.pdf").read_bytes().startswith(b"%PDF")


def test_tiny_make_with_weights_and_photo_from_the_installed_package(installed):
    _, python, bin_dir, work, env = installed
    _run([python, "-m", "figurine.tiny.weights", "tiny-weights"], work, env)
    _run([python, "-c", "from figurine.tiny.photos import make_face_photo; make_face_photo('selfie.jpg')"],
         work, env)
    proc = _run([bin_dir / "figurine", "make", "selfie.jpg", "--name", "Ada", "--weights", "tiny-weights",
                 "--config", "tiny", "-o", "made.png"], work, env, timeout=300)
    with Image.open(work / "made.png") as im:
        assert im.size == (1080, 1350) and "figurine" in im.text, proc.stdout
    assert (work / "made.run" / "run.json").is_file()
