"""Atomic output files (figurine/outputs.py): no overwrite without --force, no partial files."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from PIL import Image

from figurine.errors import InputError, OutputExistsError
from figurine.outputs import OutputSet, atomic_write, check_target, save_png, stale_temp_files

REPO = Path(__file__).resolve().parents[1]


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_existing_file_is_kept_without_force(tmp_path):
    out = tmp_path / "OUT.png"
    out.write_bytes(b"old")
    with pytest.raises(OutputExistsError) as e:
        atomic_write(out, lambda f: f.write(b"new"))
    assert str(e.value) == f"{out} exists; use --force to overwrite"
    assert e.value.exit_code == 2
    assert out.read_bytes() == b"old"
    assert names(tmp_path) == ["OUT.png"]


def test_force_overwrites_and_new_files_get_normal_permissions(tmp_path):
    out = tmp_path / "OUT.png"
    out.write_bytes(b"old")
    atomic_write(out, lambda f: f.write(b"new"), force=True)
    assert out.read_bytes() == b"new"
    fresh = atomic_write(tmp_path / "fresh.bin", lambda f: f.write(b"x"))
    mask = os.umask(0)
    os.umask(mask)
    assert fresh.stat().st_mode & 0o777 == 0o666 & ~mask
    assert names(tmp_path) == ["OUT.png", "fresh.bin"]


@pytest.mark.parametrize("error", [ValueError("disk on fire"), KeyboardInterrupt()])
@pytest.mark.parametrize("existing", [True, False])
def test_failure_mid_write_leaves_no_temp_file_and_no_change(tmp_path, error, existing):
    out = tmp_path / "OUT.png"
    if existing:
        out.write_bytes(b"old")

    def writer(f):
        f.write(b"half a picture" * 1000)
        raise error

    with pytest.raises(type(error)):
        atomic_write(out, writer, force=True)
    assert names(tmp_path) == (["OUT.png"] if existing else [])
    if existing:
        assert out.read_bytes() == b"old"


def test_missing_folder_is_one_clear_error(tmp_path):
    with pytest.raises(InputError, match="output folder does not exist"):
        atomic_write(tmp_path / "nope" / "OUT.png", lambda f: f.write(b"x"))


def test_save_png_writes_a_png_that_decodes(tmp_path):
    img = Image.new("RGB", (32, 16), (200, 30, 40))
    path = save_png(img, tmp_path / "card.png", text_chunks={"parameters": "hello"})
    with Image.open(path) as back:
        assert back.format == "PNG" and back.size == (32, 16)
        assert back.getpixel((5, 5)) == (200, 30, 40)
        assert back.text["parameters"] == "hello"
    with pytest.raises(OutputExistsError):
        save_png(img, path)


def test_set_leaves_nothing_new_when_the_run_fails_before_commit(tmp_path):
    keep = tmp_path / "old.pdf"
    keep.write_bytes(b"from yesterday")
    with pytest.raises(RuntimeError):
        with OutputSet(force=True) as out:
            out.add(tmp_path / "ada.png", lambda f: f.write(b"png"))
            out.add(keep, lambda f: f.write(b"today"))
            raise RuntimeError("packaging failed")
    assert names(tmp_path) == ["old.pdf"]
    assert keep.read_bytes() == b"from yesterday"  # not replaced: the set never committed


def test_set_commit_moves_all_or_restores_what_it_replaced(tmp_path):
    keep = tmp_path / "ada.pdf"
    keep.write_bytes(b"from yesterday")
    with OutputSet(force=True) as out:
        out.add(tmp_path / "ada.png", lambda f: f.write(b"png"))
        out.add(keep, lambda f: f.write(b"today"))
        (tmp_path / "ada.png").write_bytes(b"someone else")  # appears between write and commit
        out.force = False
        with pytest.raises(OutputExistsError):
            out.commit()
    assert keep.read_bytes() == b"from yesterday" and (tmp_path / "ada.png").read_bytes() == b"someone else"
    assert sorted(names(tmp_path)) == ["ada.pdf", "ada.png"]
    with OutputSet(force=True) as out:
        out.add(tmp_path / "ada.png", lambda f: f.write(b"png"))
        out.add(keep, lambda f: f.write(b"today"))
        out.commit()
    assert (tmp_path / "ada.png").read_bytes() == b"png" and keep.read_bytes() == b"today"
    assert sorted(names(tmp_path)) == ["ada.pdf", "ada.png"]


def test_set_check_refuses_existing_and_colliding_targets_up_front(tmp_path):
    (tmp_path / "ada.pdf").write_bytes(b"x")
    with OutputSet() as out:
        with pytest.raises(OutputExistsError, match="ada.pdf exists; use --force"):
            out.check(tmp_path / "ada.png", tmp_path / "ada.pdf")
        with pytest.raises(InputError, match="would be the same file"):
            out.check(tmp_path / "ada.png", tmp_path / "." / "ada.png")


def test_set_replaces_a_file_it_wrote_before_without_force(tmp_path):
    import hashlib

    mine = tmp_path / "ada.png"
    mine.write_bytes(b"the last run's package")
    theirs = tmp_path / "other.png"
    theirs.write_bytes(b"not ours")
    digest = hashlib.sha256(b"the last run's package").hexdigest()
    with OutputSet(replaceable={digest}) as out:
        out.check(mine)
        with pytest.raises(OutputExistsError):
            out.check(theirs)


@pytest.mark.parametrize("kind", ["symlink", "fifo", "folder"])
def test_targets_that_are_not_regular_files_are_refused_even_with_force(tmp_path, kind):
    target = tmp_path / "out.pdf"
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    if kind == "symlink":
        target.symlink_to(victim)
    elif kind == "fifo":
        os.mkfifo(target)
    else:
        target.mkdir()
    with pytest.raises(InputError):
        atomic_write(target, lambda f: f.write(b"x"), force=True)
    assert victim.read_bytes() == b"precious"


def test_a_device_is_never_replaced(tmp_path):
    with pytest.raises(InputError, match="not a regular file"):
        check_target(Path("/dev/null"), force=True)
    assert Path("/dev/null").is_char_device()


SLOW_WRITER = """
import sys, time
from figurine.outputs import OutputSet
folder = sys.argv[1]
with OutputSet() as out:
    out.add(folder + "/first.png", lambda f: f.write(b"done"))
    def slow(f):
        f.write(b"partial" * 1000)
        f.flush()
        open(folder + "/../started", "w").close()
        time.sleep(30)
    out.add(folder + "/second.pdf", slow)
    out.commit()
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_interrupting_a_real_process_leaves_no_files(tmp_path, sig):
    """Ctrl-C and SIGTERM: everything cleaned up at once. SIGKILL (no cleanup can run): only the
    hidden .part temp files stay, which `figurine doctor` lists; never a file under an output's
    name, whole or half (issue 12: kills mid-write)."""
    folder = tmp_path / "out"
    folder.mkdir()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-c", SLOW_WRITER, str(folder)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not (tmp_path / "started").exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert any(n.endswith(".part") for n in names(folder))  # mid-write: the temp file exists
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode != 0
    assert [n for n in names(folder) if not n.startswith(".")] == []  # no first.png, no second.pdf
    if sig == signal.SIGKILL:
        assert len(stale_temp_files(folder)) == 2
    else:
        assert "KeyboardInterrupt" in err
        assert names(folder) == [] and stale_temp_files(folder) == []
