"""figurine batch end to end (issue 16): a real local Ray with 2 workers on the tiny weights.

One batch run is shared by most tests (module fixtures, in order): a 6-row manifest with one bad
row, made with --skip-bad in an empty network namespace (loopback only) when this machine allows
one, while the test SIGKILLs a worker in the middle of a row. Then the same command again (nothing
to make), then again with one row's name changed (only that row re-packed).
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import TINY_CONFIG, run_figurine
from tests.netcheck import _LO_UP, _unshare_prefix
from tests.photos import make_face_photo
from tests.scan import scan_for_leaks

pytest.importorskip("ray", reason="figurine batch needs the cluster extra (ray)")

BAD_LINE = 5  # the manifest's line with the bad row (header is line 1)
MANIFEST = """photo,name,tagline,accessories,seed,set
ada.jpg,Ada Lovelace,Analytical Engine Pilot,punch cards,1,
bob.jpg,Bob,,,2,prompt.style=vinyl toy
# a comment line: skipped, but it keeps its line number
ada.jpg,Carl,,,3,generation.steps=9
bob.jpg;ada.jpg,Dora,Chef,,4,
ada.jpg,Eve,,,5,pose.limb_width=20
bob.jpg,Fred,,,6,
"""
# Line 5 (Carl) is bad: generation.steps is a batch-wide setting (the workers' loaded models use it).


def batch_args(folder: Path, weights: Path, *extra) -> list:
    return ["batch", folder / "team.csv", "-o", folder / "out", "--weights", weights, "--config", TINY_CONFIG,
            "--workers", "2", "--no-progress", *extra]


def read_rows(out: Path) -> dict[str, dict]:
    with open(out / "batch.csv", newline="") as f:
        return {r["id"]: r for r in csv.DictReader(f)}


def attempts(out: Path, row_id: str) -> list[dict]:
    path = out / row_id / "attempts.json"
    return json.loads(path.read_text()) if path.exists() else []


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("batch")
    make_face_photo(folder / "ada.jpg", seed=3)
    make_face_photo(folder / "bob.jpg", seed=8)
    (folder / "team.csv").write_text(MANIFEST)
    return folder


class Killer(threading.Thread):
    """SIGKILLs the worker process of the first row it sees in progress (attempts.json names its pid)."""

    def __init__(self, out: Path, proc: subprocess.Popen):
        super().__init__(daemon=True)
        self.out, self.proc = out, proc
        self.killed: tuple[str, int] | None = None
        # Entries of earlier batch runs (stopped by Ctrl-C) name processes that are gone.
        self.old_runs = {e["run"] for p in out.glob("*/attempts.json") for e in json.loads(p.read_text())}

    def run(self):
        while self.proc.poll() is None and self.killed is None:
            for path in sorted(self.out.glob("*/attempts.json")):
                try:
                    entries = json.loads(path.read_text())
                except (OSError, ValueError):
                    continue  # being replaced this instant
                running = [e for e in entries if e.get("status") == "running" and e["run"] not in self.old_runs]
                if running and not (path.parent / "row.json").exists():
                    os.kill(running[0]["pid"], signal.SIGKILL)
                    self.killed = (path.parent.name, running[0]["pid"])
                    return
            time.sleep(0.05)


def batch_env(folder: Path) -> dict:
    """HOME and TMPDIR inside the test folder: the privacy test checks nothing lands there."""
    home, tmp = folder / "home", folder / "tmp"
    home.mkdir(exist_ok=True), tmp.mkdir(exist_ok=True)
    return {**os.environ, "PYTHONUNBUFFERED": "1", "HOME": str(home), "TMPDIR": str(tmp),
            "XDG_CACHE_HOME": str(home / ".cache")}


@pytest.fixture(scope="module")
def interrupted(folder, tiny_weights):
    """The batch stopped with Ctrl-C (SIGINT) as soon as a worker has started a row."""
    cmd = [sys.executable, "-m", "figurine", *map(str, batch_args(folder, tiny_weights, "--skip-bad"))]
    proc = subprocess.Popen(cmd, cwd=folder, env=batch_env(folder), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not list((folder / "out").glob("*/attempts.json")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the batch ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    return {"rc": proc.returncode, "stdout": out, "stderr": err, "rows": read_rows(folder / "out")}


@pytest.fixture(scope="module")
def made(folder, tiny_weights, interrupted):
    """The batch again with --skip-bad (without network where allowed), one worker killed mid-row."""
    prefix, why = _unshare_prefix()
    cmd = [sys.executable, "-m", "figurine", *map(str, batch_args(folder, tiny_weights, "--skip-bad"))]
    if prefix:
        cmd = prefix + ["sh", "-c", _LO_UP, "sh", *cmd]
    proc = subprocess.Popen(cmd, cwd=folder, env=batch_env(folder), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    killer = Killer(folder / "out", proc)
    killer.start()
    out, err = proc.communicate(timeout=900)
    killer.join(timeout=5)
    return {"rc": proc.returncode, "stdout": out, "stderr": err, "killed": killer.killed,
            "unshared": prefix is not None, "why_not_unshared": why,
            # This batch's own private folder (named after its process: other tests run batches too).
            "private_left": set(Path("/dev/shm").glob(f"figurine-batch-{proc.pid}-*"))}


def this_run(entries: list[dict]) -> list[dict]:
    """attempts.json entries of the last batch run (the interrupted run's are older)."""
    return [e for e in entries if e["run"] == entries[-1]["run"]] if entries else []


def test_ctrl_c_stops_cleanly_and_the_next_run_resumes(folder, interrupted, made):
    assert interrupted["rc"] == 130, interrupted["stderr"][-3000:]
    assert "interrupted; run the same command again to resume" in interrupted["stderr"]
    assert "Traceback" not in interrupted["stderr"]
    out = folder / "out"
    statuses = {i: r["status"] for i, r in interrupted["rows"].items()}
    assert "interrupted" in statuses.values() and set(statuses.values()) <= {"interrupted", "made", "bad"}
    # The next run (the `made` fixture) made every row the interrupted one had not: none twice.
    assert made["rc"] == 0, made["stderr"][-3000:]
    for row_id, status in statuses.items():
        if status == "bad":
            continue
        made_by = [e for e in attempts(out, row_id) if e["status"] == "made"]
        assert len(made_by) == 1, (row_id, attempts(out, row_id))
        first_run = [e for e in attempts(out, row_id) if e["run"] != attempts(out, row_id)[-1]["run"]]
        if status == "interrupted":
            assert all(e["status"] == "stopped" for e in first_run)
    assert not [p for p in out.rglob(".*.part")]  # no half-written file anywhere


def test_skip_bad_makes_the_five_good_rows_and_reports_the_bad_line(folder, made):
    assert made["rc"] == 0, made["stderr"][-3000:]
    out = folder / "out"
    rows = read_rows(out)
    assert sorted(r["status"] for r in rows.values()) == ["bad"] + ["made"] * 5
    bad = next(r for r in rows.values() if r["status"] == "bad")
    assert bad["line"] == str(BAD_LINE) and bad["name"] == "Carl" and "generation.steps" in bad["error"]
    assert f"team.csv line {BAD_LINE}: setting generation.steps holds for the whole batch" in made["stderr"]
    for row_id, r in rows.items():
        if r["status"] == "made":
            assert (out / row_id / "package.png").is_file() and (out / row_id / "package.json").is_file()
            assert (out / row_id / "run" / "run.json").is_file()
            assert -1 <= float(r["identity_score"]) <= 1 and r["worker"].startswith("worker ")
    assert not (out / bad["id"]).exists()
    # The per-row settings reached the pipeline.
    bob = json.loads((out / "row-0002" / "run" / "run.json").read_text())
    assert bob["config"]["prompt"]["style"] == "vinyl toy" and "vinyl toy" in bob["prompts"]["figure"]
    dora = json.loads((out / "row-0004" / "run" / "run.json").read_text())
    assert dora["request"]["photos"] == 2 and dora["stages"]["figure"]["face"]["photos"] == 2
    totals = json.loads((out / "batch.json").read_text())["totals"]
    assert totals["made"] == 5 and totals["bad"] == 1 and totals["images_per_hour"] > 0
    assert totals["gpu_busy_share"] is None and totals["gpu_busy_note"].startswith("unavailable: ")


def test_without_skip_bad_nothing_runs_and_the_exit_code_is_2(folder, tiny_weights, tmp_path):
    (tmp_path / "team.csv").write_text(MANIFEST)
    for name in ("ada.jpg", "bob.jpg"):
        (tmp_path / name).write_bytes((folder / name).read_bytes())
    proc = run_figurine(*batch_args(tmp_path, tiny_weights), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert f"line {BAD_LINE}:" in proc.stderr and "--skip-bad" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()
    dry = run_figurine(*batch_args(tmp_path, tiny_weights, "--dry-run", "--skip-bad"), cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "5 to make, 0 done already, 1 bad" in dry.stdout and not (tmp_path / "out").exists()


def test_a_worker_killed_mid_row_has_its_row_retried_and_every_row_made_once(folder, made):
    assert made["killed"], "no worker was caught in the middle of a row"
    killed_row, pid = made["killed"]
    out = folder / "out"
    rows = read_rows(out)
    assert rows[killed_row]["status"] == "made" and rows[killed_row]["retries"] == "1"
    entries = this_run(attempts(out, killed_row))
    assert [e["status"] for e in entries] == ["running", "made"]  # the killed start, then the retry
    assert entries[0]["pid"] == pid and entries[1]["pid"] != pid
    for row_id, r in rows.items():
        if r["status"] != "made":
            continue
        made_by = [e for e in attempts(out, row_id) if e["status"] == "made"]
        assert len(made_by) == 1, (row_id, attempts(out, row_id))  # made exactly once
        # Rows in flight on the killed worker (at most one more) were retried too; none twice.
        assert r["retries"] in ("0", "1") and len(this_run(attempts(out, row_id))) == 1 + int(r["retries"])
    assert sum(int(r["retries"]) for r in rows.values() if r["retries"]) <= 2


def test_the_batch_completes_without_network(made, folder):
    if not made["unshared"]:
        pytest.skip(f"no network namespace on this machine: {made['why_not_unshared']}")
    assert made["rc"] == 0, made["stderr"][-3000:]
    workers = json.loads((folder / "out" / "batch.json").read_text())["workers"]
    assert workers and all(w.get("network_attempts") == [] for w in workers)


def test_nothing_but_the_row_outputs_is_written_and_no_file_holds_a_photo(folder, made):
    assert made["rc"] == 0, made["stderr"][-3000:]
    assert [p for p in (folder / "home").rglob("*") if p.is_file()] == []
    assert [p for p in (folder / "tmp").rglob("*") if p.is_file()] == []
    assert made["private_left"] == set()  # Ray's private session folder is gone
    assert sorted(p.name for p in folder.iterdir()) == ["ada.jpg", "bob.jpg", "home", "out", "team.csv", "tmp"]
    assert not list((folder / "out").glob(".batch-*"))
    photos = (folder / "ada.jpg", folder / "bob.jpg")
    for photo in photos:
        assert scan_for_leaks(folder, photo, skip=photos) == []


@pytest.fixture(scope="module")
def rerun(folder, tiny_weights, made):
    out = folder / "out"
    before = {p: p.stat().st_mtime_ns for p in out.glob("*/row.json")}
    tries = {p: p.read_bytes() for p in out.glob("*/attempts.json")}
    start = time.monotonic()
    proc = run_figurine(*batch_args(folder, tiny_weights, "--skip-bad"), cwd=folder)
    return proc, time.monotonic() - start, before, tries


def test_a_rerun_of_a_finished_batch_generates_nothing(folder, rerun):
    proc, seconds, before, tries = rerun
    assert proc.returncode == 0, proc.stderr
    assert "0 made, 5 done earlier, 0 failed, 1 bad" in proc.stdout
    out = folder / "out"
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/row.json")} == before
    summary = json.loads((out / "batch.json").read_text())
    assert summary["workers_described"] == "no worker needed" and summary["workers"] == []
    assert {p: p.read_bytes() for p in out.glob("*/attempts.json")} == tries  # no worker started a row
    print(f"re-run of the finished batch: {seconds:.1f} s")


def test_a_changed_name_repacks_only_that_row(folder, tiny_weights, rerun):
    out = folder / "out"
    before = {p.parent.name: p.read_bytes() for p in out.glob("*/row.json")}
    old_package = (out / "row-0001" / "package.png").read_bytes()
    (folder / "team.csv").write_text(MANIFEST.replace("Ada Lovelace", "Ada King"))
    proc = run_figurine(*batch_args(folder, tiny_weights, "--skip-bad"), cwd=folder)
    assert proc.returncode == 0, proc.stderr
    rows = read_rows(out)
    assert rows["row-0001"]["status"] == "made" and rows["row-0001"]["name"] == "Ada King"
    assert sorted(r["status"] for i, r in rows.items() if i != "row-0001") == ["bad"] + ["done earlier"] * 4
    assert set(rows["row-0001"]["reused"].split()) == {"figure", "detail", "accessories"}
    record = json.loads((out / "row-0001" / "run" / "run.json").read_text())
    assert record["request"]["name"] == "Ada King"
    assert not {"generation", "accessories", "identity"} & set(record["timings"])  # nothing generated
    assert (out / "row-0001" / "package.png").read_bytes() != old_package
    after = {p.parent.name: p.read_bytes() for p in out.glob("*/row.json")}
    assert {k for k in after if after[k] != before.get(k)} == {"row-0001"}


def test_manifest_rows_are_checked_with_their_line_numbers(tmp_path):
    """JSON Lines with lists and a settings table; each kind of bad row named by its own line."""
    from figurine.batch.manifest import check_rows, read_manifest
    from figurine.errors import InputError

    make_face_photo(tmp_path / "me.jpg", seed=2)
    (tmp_path / "tiny.jpg").write_bytes(b"not a photo")
    lines = [
        '{"id": "a", "photo": ["me.jpg", "me.jpg"], "name": "Ada", "accessories": ["mug", "pen"], '
        '"set": {"prompt.style": "vinyl toy", "pose.limb_width": 20}, "seed": 4}',
        '# a comment',
        '{"id": "b", "photo": "me.jpg", "name": "Bob", "template": "no-such-template"}',
        '{"id": "a", "photo": "me.jpg", "name": "Ada again"}',
        '{"photo": "tiny.jpg", "name": "Cy"}',
        '{"photo": "me.jpg", "name": "Dee", "set": "runtime.dtype=float32"}',
        '{"photo": "me.jpg", "name": "Eve", "seed": "soon"}',
        '{"photo": "me.jpg", "name": "Fay", "accessories": "a;b;c;d;e"}',
        '{"photo": "me.jpg", "name": "' + "G" * 60 + '"}',
        '["not", "an", "object"]',
        '{"photo": "me.jpg", "name": "Hal", "colour": "red"}',
    ]
    (tmp_path / "team.jsonl").write_text("\n".join(lines) + "\n")
    good, bad = check_rows(read_manifest(tmp_path / "team.jsonl"), tmp_path, [str(TINY_CONFIG)], [],
                           str(tmp_path))  # no model loads: the weights are never looked at
    assert good == []  # the first row's id "a" is used again on line 4: both are bad
    reasons = {p.line: p.reason for p in bad}
    assert sorted(reasons) == [1, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    assert "also used on line 4" in reasons[1] and "also used on line 1" in reasons[4]
    assert "unknown template 'no-such-template'" in reasons[3]
    assert "tiny.jpg" in reasons[5]
    assert "runtime.dtype holds for the whole batch" in reasons[6]
    assert "seed must be a whole number" in reasons[7]
    assert "5 accessories" in reasons[8]
    assert "the limit is 40" in reasons[9]
    assert "JSON object" in reasons[10] and "'colour'" in reasons[11]
    # A manifest whose columns are separated by ';' is refused as a whole, with the reason.
    (tmp_path / "semi.csv").write_text("photo;name\nme.jpg;Ada\n")
    with pytest.raises(InputError, match="separated by ';'"):
        read_manifest(tmp_path / "semi.csv")


def test_gpu_busy_share_is_nvmls_mean_utilisation_or_says_why_not():
    """NVML cannot exist without an NVIDIA GPU: a stand-in gives the utilisation readings."""
    from types import SimpleNamespace

    from figurine.batch.summary import Summary
    from figurine.batch.worker import GpuBusy

    class NVML:
        def __init__(self, readings):
            self.readings = list(readings)

        def nvmlDeviceGetUtilizationRates(self, handle):
            assert handle == "gpu0"
            if not self.readings:
                raise RuntimeError("Not Supported")
            return SimpleNamespace(gpu=self.readings.pop(0), memory=0)

    busy = GpuBusy(NVML([100, 100, 50, 0]), "gpu0", poll=0.01)
    assert [busy.sample() for _ in range(5)] == [True, True, True, True, False]
    assert busy.share() == 0.625 and "Not Supported" in busy.reason
    threaded = GpuBusy(NVML([80] * 1000), "gpu0", poll=0.005).start()
    time.sleep(0.2)
    threaded.stop()
    assert threaded.share() == 0.8 and len(threaded.samples) >= 3
    none = GpuBusy(None, None, reason="NVIDIA GPU not found, NVML could not start: no driver").start()
    assert none.share() is None and none.reason.startswith("NVIDIA GPU not found")
    # The batch's totals: the workers' mean where measured, else "unavailable: <why>".
    workers = [{"rows": 3, "gpu_busy": 0.9, "energy": {"gpu_joules_gross": 300.0}},
               {"rows": 2, "gpu_busy": 0.7, "energy": {"gpu_joules_gross": 200.0}}]
    summary = Summary()
    for i in range(5):
        summary.add(i + 2, f"r{i}", "x", "made", {"energy": {"gpu_joules_gross": 150.0}})
    totals = summary.totals(3600.0, workers)
    assert totals["gpu_busy_share"] == 0.8 and totals["images_per_hour"] == 5
    assert totals["energy_per_image_j"] == 100.0 and totals["row_energy_j"] == 750.0  # rows overlap: upper bound
    cpu = summary.totals(10.0, [{"rows": 5, "gpu_busy": None, "gpu_busy_reason": none.reason}])
    assert cpu["gpu_busy_share"] is None and cpu["gpu_busy_note"] == "unavailable: " + none.reason
