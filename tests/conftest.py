"""Shared fixtures: one tiny weights tree per test session, and a way to run the real CLI.

The tiny tree is built by the same script a user runs (scripts/make_tiny_weights.py) in a
session temp folder; every end-to-end test runs `figurine` as a subprocess against it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TINY_CONFIG = ROOT / "configs" / "tiny.toml"

# One torch (OpenMP) thread per process, here and in every `figurine` the tests start: the suite
# runs three xdist workers on two cores, and torch's default (a thread per core in each process)
# oversubscribes them; its spinning threads made the suite 50% slower (13:59 -> 9:19 measured on
# the 2-core build machine). Set before anything imports torch; OMP_NUM_THREADS=N overrides it.
os.environ.setdefault("OMP_NUM_THREADS", "1")

# A suite started in the background of a non-interactive shell (`bash .ci/run &`) inherits SIGINT
# ignored, and so would every `figurine` it starts: the Ctrl-C tests would press a key nobody
# hears. They stand for a user at a terminal, so the test processes take SIGINT back (a handler,
# unlike SIG_IGN, is not inherited: the commands they start get the default, as in a terminal).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory, worker_id) -> Path:
    """Built once per test run: under pytest-xdist the workers share one tree (the first builds
    it, the others wait on a lock), in this run's own temporary folder."""
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if worker_id != "master" else base  # pytest-N/, this run's alone
    root = shared / "tiny-weights"
    with FileLock(str(shared / "tiny-weights.lock")):
        if not (root / ".complete").is_file():
            proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_tiny_weights.py"), str(root)],
                                  check=True, capture_output=True, text=True)
            # Issue 13: the script says one line and nothing else (no warnings, no progress bars).
            assert proc.stdout.strip() == f"tiny weights written to {root}" and not proc.stderr.strip(), proc
            (root / ".complete").write_text("built by tests/conftest.py\n")
    return root


def run_figurine(*args, cwd: Path | None = None, env: dict | None = None, timeout: float = 300):
    """`python -m figurine ARGS` as a user would run it; returns the CompletedProcess."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "figurine", *map(str, args)], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def one_error_line(proc) -> str:
    """The one `figurine: error: ...` line a failed command printed, with no traceback."""
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("figurine: error: ")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


@pytest.fixture
def figurine_cli():
    return run_figurine
