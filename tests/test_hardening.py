"""Issue 12: shared files stay untrusted, writes are atomic, nothing personal in a shared picture.

Each test reproduces one finding of the issue against the real `figurine` command on the tiny
weights: a crafted PNG for `make --from`, a tampered run.json, symlink and device targets,
a disk that refuses writes, SIGTERM and SIGKILL during writing, an interrupted re-run.
"""

from __future__ import annotations

import getpass
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from tests.conftest import TINY_CONFIG, one_error_line, run_figurine
from tests.photos import make_face_photo
from tests.scan import scan_for_leaks


@pytest.fixture(scope="module")
def private(tmp_path_factory) -> Path:
    """A photo whose path says more than it should (a user's private folder, a telling name)."""
    folder = tmp_path_factory.mktemp("home") / "alice" / "Pictures" / "private"
    folder.mkdir(parents=True)
    return make_face_photo(folder / "ex-partner-2024.jpg")


@pytest.fixture(scope="module")
def made(tmp_path_factory, tiny_weights, private):
    """One make with a PDF and an own accessory picture; several tests read what it wrote."""
    out = tmp_path_factory.mktemp("made")
    own = out.parent / "my-secret-gadget.png"
    Image.new("RGB", (300, 300), (200, 40, 40)).save(own)
    proc = run_figurine("make", private, "--name", "Ada", "--accessory", "gear", "--accessory-image", own,
                        "--weights", tiny_weights, "--config", TINY_CONFIG, "-o", out / "ada.png",
                        "--pdf", out / "ada.pdf", cwd=out)
    assert proc.returncode == 0, proc.stderr
    return out, json.loads((out / "ada.run" / "run.json").read_text())


# -- finding 1: nothing personal in what people share --------------------------------------------

def test_shared_outputs_hold_no_path_name_salt_or_user(made, private, tiny_weights):
    out, record = made
    shared = out / "shared"
    shared.mkdir(exist_ok=True)
    for name in ("ada.png", "ada.json", "ada.pdf"):
        shutil.copy(out / name, shared / name)
    secrets = [record["salt"], str(tiny_weights), str(TINY_CONFIG), str(out), "my-secret-gadget",
               getpass.getuser(), socket.gethostname()]
    assert scan_for_leaks(shared, private, shared=True, secrets=[s for s in secrets if len(s) >= 4]) == []
    sidecar = json.loads((out / "ada.json").read_text())
    assert "salt" not in sidecar and "weights_root" not in sidecar["config"]
    assert sidecar["stages"]["figure"]["inputs"]["photo"]  # the salted hash stays; the salt does not


def test_run_json_keeps_no_path_either(made, private):
    out, record = made
    text = (out / "ada.run" / "run.json").read_text()
    for needle in (str(private), private.name, "my-secret-gadget", str(out)):
        assert needle not in text, needle


# -- finding 2: paths read from a shared picture are never used ----------------------------------

def crafted_png(path: Path, record: dict) -> Path:
    info = PngImagePlugin.PngInfo()
    info.add_text("figurine", json.dumps(record))
    Image.new("RGB", (64, 64), (9, 9, 9)).save(path, pnginfo=info)
    return path


def test_from_a_crafted_png_uses_no_path_it_names(made, tmp_path, tiny_weights, private):
    _, record = made
    evil = json.loads(json.dumps(record))
    evil["request"].update(accessory_images=["/etc/hostname"], pose_from="/etc/shadow", photo="/etc/passwd",
                           output=str(tmp_path / "elsewhere.png"), pdf=str(tmp_path / "evil.pdf"),
                           run_dir="/tmp/evil.run")
    evil["config"]["model"] = {"base": "/etc", "controlnet": "/etc", "loras": ["/etc/passwd"]}
    evil["config"]["weights_root"] = "/etc"
    png = crafted_png(tmp_path / "shared.png", evil)
    proc = run_figurine("make", "--from", png, private, "--weights", tiny_weights, "--config", TINY_CONFIG,
                        "-o", tmp_path / "again.png", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    again = json.loads((tmp_path / "again.json").read_text())
    assert [i["text"] for i in again["stages"]["accessories"]["items"]] == ["gear"]  # no /etc/hostname
    assert again["resolved"]["pose"] == record["resolved"]["pose"]                 # not /etc/shadow
    assert not (tmp_path / "elsewhere.png").exists() and not (tmp_path / "evil.pdf").exists()
    assert not Path("/tmp/evil.run").exists()
    assert again["config"]["model"]["base"] == "sdxl-base"                          # the user's own config


@pytest.mark.parametrize("change, fragment", [
    (lambda r: r["config"]["generation"].update(steps=10**9), "'generation.steps' must be between 1 and 500"),
    (lambda r: r["config"]["generation"].update(width=10**6), "'generation.width' must be between 64 and 4096"),
    (lambda r: r["request"].update(candidates=10**6), "candidates must be between 1 and 16"),
    (lambda r: r["resolved"].update(seed="abc"), "seed must be a whole number"),
    (lambda r: r["config"].update(generation="fast"), "'generation' must be a table of settings"),
])
def test_from_a_crafted_png_out_of_bounds_is_one_line(made, tmp_path, tiny_weights, private, change, fragment):
    _, record = made
    evil = json.loads(json.dumps(record))
    change(evil)
    png = crafted_png(tmp_path / "shared.png", evil)
    t0 = time.monotonic()
    proc = run_figurine("make", "--from", png, private, "--weights", tiny_weights, "-o", tmp_path / "x.png",
                        cwd=tmp_path)
    assert proc.returncode == 2 and fragment in one_error_line(proc)
    assert time.monotonic() - t0 < 30  # refused before any model loads
    assert list(tmp_path.iterdir()) == [png]


@pytest.mark.parametrize("raw, fragment", [
    ('{"request": ', "damaged (not valid JSON)"),
    ("[" * 5000 + "]" * 5000, "damaged"),
    ('{"a": ' * 40 + "1" + "}" * 40, "nested deeper"),
])
def test_from_malformed_settings_is_one_line(tmp_path, private, raw, fragment):
    info = PngImagePlugin.PngInfo()
    info.add_text("figurine", raw)
    png = tmp_path / "shared.png"
    Image.new("RGB", (64, 64)).save(png, pnginfo=info)
    proc = run_figurine("make", "--from", png, private, "-o", tmp_path / "x.png", cwd=tmp_path)
    assert proc.returncode == 2 and fragment in one_error_line(proc)


# -- finding 2/5: a tampered run directory ----------------------------------------------------

def tampered(made, tmp_path: Path, change) -> Path:
    out, _ = made
    run = tmp_path / "copy.run"
    shutil.copytree(out / "ada.run", run, symlinks=True)
    record = json.loads((run / "run.json").read_text())
    change(run, record)
    (run / "run.json").write_text(json.dumps(record))
    return run


def _matte_outside(run, record):
    record["stages"]["figure"]["matte"] = "/etc/passwd"


def _matte_up(run, record):
    record["stages"]["accessories"]["items"][0]["matte"] = "../../secret.png"


def _figure_link(run, record):
    fig = record["stages"]["figure"]
    (run / fig["files"][0]).unlink()
    (run / fig["files"][0]).symlink_to("/etc/hostname")  # the cached figure, swapped for a link out


def _best_99(run, record):
    record["stages"]["figure"]["best"] = 99


def _not_a_picture(run, record):
    (run / record["stages"]["figure"]["matte"]).write_bytes(b"not a picture at all")


def _outputs_elsewhere(run, record):
    record["request"]["output"] = "/etc/cron.daily/evil"


@pytest.mark.parametrize("change, fragment", [
    (_matte_outside, "not a plain file name inside the run directory"),
    (_matte_up, "not a plain file name inside the run directory"),
    (_figure_link, "needs the photo"),
    (_best_99, "'best' is not a figure index"),
    (_not_a_picture, "is not a readable picture"),
])
def test_a_tampered_run_directory_is_one_line(made, tmp_path, change, fragment):
    run = tampered(made, tmp_path, change)
    proc = run_figurine("pack", "--run", run, "--name", "Grace", "-o", tmp_path / "g.png", cwd=tmp_path)
    assert proc.returncode == 2 and fragment in one_error_line(proc)
    assert not (tmp_path / "g.png").exists()


def test_a_linked_cut_out_is_made_again_not_followed(made, tmp_path):
    def link(run, record):
        (run / "figure-link-matte.png").symlink_to("/etc/hostname")
        record["stages"]["figure"]["matte"] = "figure-link-matte.png"
    run = tampered(made, tmp_path, link)
    proc = run_figurine("pack", "--run", run, "--name", "Grace", "-o", tmp_path / "g.png", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    matte = json.loads((run / "run.json").read_text())["stages"]["figure"]["matte"]
    assert matte != "figure-link-matte.png" and not (run / matte).is_symlink()


def test_a_stored_output_path_is_never_written(made, tmp_path):
    run = tampered(made, tmp_path, _outputs_elsewhere)
    proc = run_figurine("pack", "--run", run, "--name", "Grace", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "copy.png").exists()  # the run's own name, next to it
    assert not Path("/etc/cron.daily/evil").exists()


# -- finding 3: writes that are safe ----------------------------------------------------------

def test_pdf_on_the_output_or_the_sidecar_is_refused_before_any_model(tmp_path, private):
    """--pdf must end in .pdf and -o in a picture format, so the PDF can never replace the picture
    or its sidecar; two outputs on one path are refused before any model loads."""
    for pdf in ("x.png", "x.json"):
        proc = run_figurine("make", private, "--name", "Ada", "-o", tmp_path / "x.png", "--pdf", tmp_path / pdf,
                            "--weights", tmp_path / "none", cwd=tmp_path)
        assert proc.returncode == 2 and "must end in .pdf" in one_error_line(proc)
    proc = run_figurine("make", private, "--name", "Ada", "-o", tmp_path / "x.png", "--pdf", tmp_path / "x.pdf",
                        "--run", tmp_path / "x.pdf", "--weights", tmp_path / "none", cwd=tmp_path)
    assert proc.returncode == 2 and "would be the same file" in one_error_line(proc)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_output_json_colliding_with_its_sidecar_is_refused_at_once(tmp_path, private):
    proc = run_figurine("make", private, "--name", "Ada", "-o", tmp_path / "x.json", cwd=tmp_path)
    assert proc.returncode == 2 and "unknown output format" in one_error_line(proc)


def test_a_pdf_symlink_is_not_followed(made, tmp_path, private):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / "x.pdf").symlink_to(victim)
    proc = run_figurine("make", private, "--name", "Ada", "-o", tmp_path / "x.png", "--pdf", tmp_path / "x.pdf",
                        "--force", "--weights", tmp_path / "none", cwd=tmp_path)
    assert proc.returncode == 2 and "symbolic link" in one_error_line(proc)
    assert victim.read_text() == "precious"


def test_a_device_is_never_replaced_even_with_force(tmp_path, private):
    proc = run_figurine("make", private, "--name", "Ada", "-o", "/dev/null", "--force", cwd=tmp_path)
    assert proc.returncode == 2 and "unknown output format" in one_error_line(proc)
    proc = run_figurine("make", private, "--name", "Ada", "-o", tmp_path / "x.png", "--pdf", "/dev/null",
                        "--force", cwd=tmp_path)
    assert proc.returncode == 2
    assert Path("/dev/null").is_char_device()


def _limit_file_size(limit: int):
    def preexec():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return preexec


def test_a_disk_that_refuses_writes_is_one_line_and_leaves_nothing_half_written(made, tmp_path, private, tiny_weights):
    """A full disk, stood in for by a file size limit (RLIMIT_FSIZE): the run directory's small
    files fit, the package picture does not."""
    args = [sys.executable, "-m", "figurine", "make", str(private), "--name", "Ada", "--weights", str(tiny_weights),
            "--config", str(TINY_CONFIG), "-o", str(tmp_path / "x.png")]
    proc = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, preexec_fn=_limit_file_size(200_000),
                          env={**os.environ, "PYTHONUNBUFFERED": "1"}, timeout=300)
    assert proc.returncode == 6 and "nothing was left half-written" in one_error_line(proc)
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "x.json").exists()
    assert not [p for p in tmp_path.rglob(".*.part")]


def test_a_folder_without_write_permission_is_one_line(tmp_path, private, tiny_weights):
    """Another user's folder (the run drops to `nobody`, so it holds for root too)."""
    if shutil.which("setpriv") is None:
        pytest.fail("setpriv (util-linux) is needed for this test")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o755)
    for d in [tmp_path, *tmp_path.parents]:  # let `nobody` walk to the folder (pytest's are 0700)
        if d == Path("/"):
            break
        d.chmod(d.stat().st_mode | 0o005)
    args = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable, "-m", "figurine",
            "pack", str(Path(__file__).parent.parent / "docs" / "examples" / "figure.png"), "--name", "Ada",
            "-o", str(locked / "x.png")]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HOME": "/tmp", "PYTHONPATH": str(Path(__file__).parent.parent)})
    assert proc.returncode == 6 and "Permission denied" in one_error_line(proc)


# SIGTERM and SIGKILL during writing: tests/test_outputs.py::test_interrupting_a_real_process_leaves_no_files


# -- finding 4: an interrupted re-run leaves a consistent cache --------------------------------

def test_an_interrupted_rerun_with_a_new_seed_leaves_a_consistent_run(made, tmp_path, tiny_weights, private):
    out, record = made
    run = tmp_path / "ada.run"
    shutil.copytree(out / "ada.run", run)
    old = record["stages"]["figure"]
    before = (run / old["files"][0]).read_bytes()
    args = [sys.executable, "-m", "figurine", "make", "--run", str(run), str(private), "--seed", "99",
            "--weights", str(tiny_weights), "-o", str(tmp_path / "new.png")]
    proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if [p for p in run.glob("figure-*.png") if p.name not in old["files"] and "matte" not in p.name]:
            break  # the new seed's figure is on disk: kill now, whether or not run.json follows
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    now = json.loads((run / "run.json").read_text())
    fig = now["stages"]["figure"]
    assert all((run / f).is_file() for f in fig["files"])
    assert all(f.startswith(f"figure-{fig['key'][:8]}-") for f in fig["files"])  # files match the record's key
    if fig["key"] == old["key"]:
        assert (run / old["files"][0]).read_bytes() == before  # the old figure was never rewritten
    again = run_figurine("make", "--run", run, "--weights", tiny_weights, "-o", tmp_path / "again.png",
                         cwd=tmp_path)
    assert again.returncode == 0, again.stderr
