"""Issue 13: the README's commands run as written, from a fresh copy of the clone.

Every fenced ```sh block of README.md is a command block, and every ```python block an example
to run. A block whose first line is a comment `# needs: ...` (real weights, a GPU, a second
machine) is not run here, and says so; every other block runs, in order, in one folder: a copy of the clone's files (what `git clone` gives). The
quickstart's install line runs too, as written: its virtual environment sees the test run's
installed packages (a .pth file) and pip is told to stay offline through its own environment
settings (PIP_NO_INDEX; PIP_NO_BUILD_ISOLATION=0, pip's spelling for "no build isolation"), so
nothing is downloaded. The venv's bundled setuptools (65 on Python 3.11) is removed first, so the
build uses the test run's newer one: online, pip downloads setuptools>=77 for the build itself. `figurine` commands
then run from that environment, as a user who activated it. Files a block names must exist.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
NEEDS = re.compile(r"^#\s*needs:\s*(.+)$")


def blocks() -> list[tuple[str, str]]:
    """(language, body) of every fenced block, in order."""
    return [(m.group(1), m.group(2)) for m in FENCE.finditer(README.read_text())]


def shell_blocks() -> list[str]:
    return [body for lang, body in blocks() if lang == "sh"]


def runnable(body: str) -> bool:
    first = body.strip().splitlines()[0] if body.strip() else ""
    return not NEEDS.match(first)


def copy_of_clone(dest: Path) -> Path:
    """The files `git clone` would give (tracked, plus new ones not ignored: the work in progress)."""
    names = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, names):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def test_every_block_is_marked_or_runnable_and_names_existing_files():
    sh = shell_blocks()
    assert len(sh) >= 6
    assert runnable(sh[0]) and runnable(sh[1]), "the quickstart (install, demo) must run as written"
    for body in sh:
        if not runnable(body):
            reason = NEEDS.match(body.strip().splitlines()[0]).group(1)
            assert reason.strip(), body
    # Every repository file a runnable block names exists in the clone.
    for body in filter(runnable, sh):
        for token in re.findall(r"(?:docs|configs|scripts|tests|benchmarks)/[\w./-]+", body):
            assert (ROOT / token).exists(), f"README names {token}, which is not in the clone"


def test_the_readme_commands_run_as_written(tmp_path):
    clone = copy_of_clone(tmp_path / "figurine")
    # The quickstart's venv, seeing this test run's installed packages (nothing to download).
    subprocess.run([sys.executable, "-m", "venv", str(clone / ".venv")], check=True)
    site = subprocess.run([str(clone / ".venv" / "bin" / "python"), "-c",
                           "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "test-run-packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    for old in Path(site).glob("*"):
        if old.name.startswith(("setuptools", "_distutils_hack", "distutils-precedence")):
            shutil.rmtree(old) if old.is_dir() else old.unlink()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "XDG_", "FIGURINE_"))}
    env.update(PATH=f"{clone / '.venv' / 'bin'}:{env['PATH']}", VIRTUAL_ENV=str(clone / ".venv"),
               HOME=str(tmp_path / "home"),  # ~/.cache/figurine, ~/.config/figurine: the README's paths
               PIP_NO_INDEX="1", PIP_NO_BUILD_ISOLATION="0", PIP_DISABLE_PIP_VERSION_CHECK="1")
    (tmp_path / "home").mkdir()
    ran = []
    for lang, body in blocks():
        if lang not in ("sh", "python") or not runnable(body):
            continue
        command = ["bash", "-euo", "pipefail", "-c", body] if lang == "sh" else \
            [str(clone / ".venv" / "bin" / "python"), "-c", body]
        proc = subprocess.run(command, cwd=clone, env=env, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, f"README block failed:\n{body}\nstdout:\n{proc.stdout[-2000:]}\nstderr:\n{proc.stderr[-3000:]}"
        assert "Traceback" not in proc.stderr, proc.stderr
        ran.append(body)
    assert (clone / "figurine-demo.png").is_file()  # the quickstart's package
    assert (clone / "api-preview.png").is_file()    # the Python API example ran
    assert len(ran) >= 8


@pytest.mark.parametrize("broken", ["figurine demo --no-such-flag", "figurine pack docs/examples/nothere.png --name X"])
def test_a_broken_command_fails_the_check(tmp_path, broken):
    """The check is not vacuous: a broken README command makes the block fail."""
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", broken.replace("figurine", f"{sys.executable} -m figurine")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
