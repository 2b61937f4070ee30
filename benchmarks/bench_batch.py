"""figurine batch's throughput on this machine: rows per hour with 1 and 2 Ray workers, against
calling the pipeline directly, and Ray's own cost per row.

    python benchmarks/bench_batch.py --weights /tmp/tw --rows 6 > benchmarks/batch.txt

Measured, each on the same ROWS rows (drawn faces, one accessory each, the tiny config):
1. direct, before and after the Ray runs: one FigurinePipeline in this process, rows one after
   another (`pipe(request)`), with as many torch threads as a 1-worker Ray run gives its worker;
   the first row (which loads the models) is timed apart. Steady seconds per row = the mean of the
   rest.
2. Ray, W = 1 and 2 workers: the batch runner as `figurine batch` uses it (local Ray, one actor per
   worker, prepare and finish of two rows overlapped). Reported: Ray's start, the time to the first
   row (includes the models' load in each worker), the steady interval between rows finishing
   (rows after the first per worker), end-to-end rows per hour, and the worker's own work per row.
3. Ray's cost per row alone: a row's task round trip with photo bytes of the size used here
   through the object store to an actor that does nothing with them (mean of 20).

Overhead per row = Ray's steady interval with 1 worker - direct steady seconds per row (negative
when overlapping finish with the next prepare gains more than Ray costs). On a machine shared
with other work these two drift by several times between passes (load average printed); the
round trip (3) is Ray's own cost per row without that noise. The README's formula for
N GPUs uses the steady seconds per row.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def make_rows(folder: Path, count: int, weights: Path, config: Path):
    from figurine.batch.manifest import check_rows, read_manifest
    from figurine.tiny.photos import make_face_photo

    lines = ["photo,name,accessories,seed"]
    for i in range(count):
        make_face_photo(folder / f"p{i}.jpg", seed=i)
        lines.append(f"p{i}.jpg,Person {i},mug,{i}")
    (folder / "rows.csv").write_text("\n".join(lines) + "\n")
    good, bad = check_rows(read_manifest(folder / "rows.csv"), folder, [str(config)], [], str(weights))
    assert not bad, bad
    return good


def direct(cfg, specs, out: Path, threads: int) -> dict:
    import torch

    from figurine.pipeline import FigurinePipeline
    from figurine.request import Request

    torch.set_num_threads(threads)
    pipe = FigurinePipeline(cfg)
    times = []
    for spec in specs:
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # the pipeline's "candidate 0 ..." lines
            pipe(Request(photos=spec.photos, output=out / f"{spec.row_id}.png", **spec.request))
        times.append(time.perf_counter() - t0)
    return {"first": times[0], "steady": statistics.mean(times[1:]), "all": times}


def with_ray(cfg, specs, out: Path, workers: int) -> dict:
    from figurine.batch.plan import make_plan
    from figurine.batch.runner import Runner, RunOptions

    out.mkdir()
    planned = make_plan(specs, out, pdf=False)
    t0 = time.perf_counter()
    done, work = [], []
    with Runner(out, cfg, RunOptions(workers=workers), rows=len(planned)) as runner:
        started = time.perf_counter() - t0
        for _, result in runner.run(planned):
            assert result["status"] == "made", result
            done.append(time.perf_counter() - t0)
            work.append(result["seconds"])
        stats = runner.worker_stats()
    total = time.perf_counter() - t0
    steady = (done[-1] - done[workers - 1]) / (len(done) - workers) if len(done) > workers else None
    return {"start": started, "first": done[0], "steady": steady, "total": total,
            "per_hour": len(done) / total * 3600, "work": statistics.mean(work[workers:] or work),
            "prepare_share": [round(w["prepare_s"] / w["wall_s"], 3) for w in stats if w.get("wall_s")],
            "threads": [w.get("torch_threads") for w in stats]}


def round_trip(sizes: list[int], calls: int = 20) -> dict:
    """A row-sized task through Ray to an actor that returns at once: Ray's own cost per row, for
    each photo size (below 100 KiB Ray sends the bytes inside the task; above, via the object store)."""
    from figurine.batch.runner import RAY_ENV, SYSTEM_CONFIG, _memory_folder, _object_store

    os.environ.update(RAY_ENV)
    os.environ.setdefault("RAY_AUTH_TOKEN", os.urandom(16).hex())
    import ray

    private = Path(tempfile.mkdtemp(prefix="figurine-batch-", dir=_memory_folder()))
    (private / "spill").mkdir()
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=str(private / "ray"), log_to_driver=False,
             object_spilling_directory=str(private / "spill"), _system_config=SYSTEM_CONFIG,
             logging_level="warning", **_object_store(private))
    try:
        @ray.remote(max_concurrency=2, max_task_retries=2, max_restarts=-1)
        class Echo:
            def run(self, task):
                return {"row_id": task["row_id"], "size": sum(len(p) for p in task["photos"])}

        actor = Echo.remote()
        ray.get(actor.run.remote({"row_id": "warm", "photos": [b""]}))
        out = {}
        for size in sizes:
            data = os.urandom(size)
            times = []
            for i in range(calls):
                t0 = time.perf_counter()
                ray.get(actor.run.remote({"row_id": f"r{i}", "photos": [data]}))
                times.append(time.perf_counter() - t0)
            out[size] = {"mean_ms": statistics.mean(times) * 1000, "median_ms": statistics.median(times) * 1000}
        return out
    finally:
        ray.shutdown()
        import shutil

        shutil.rmtree(private, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", type=Path, required=True, help="tiny weights (scripts/make_tiny_weights.py DIR)")
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "tiny.toml")
    ap.add_argument("--rows", type=int, default=6)
    args = ap.parse_args()
    from figurine import privacy
    from figurine.config import load_config

    privacy.go_offline()
    cfg = load_config([str(args.config)], [], str(args.weights))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        specs = make_rows(tmp, args.rows, args.weights, args.config)
        photo_size = max(p.stat().st_size for s in specs for p in s.photos)
        print(f"figurine batch benchmark: {args.rows} rows, {args.config.name}, one accessory per row, "
              f"photos {photo_size / 1024:.0f} KiB; {os.cpu_count()} CPU cores, {platform.machine()}, "
              f"Python {platform.python_version()}")
        print(f"load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        # Direct before and after the Ray runs (the machine's load drifts: both are shown), with
        # as many torch threads as a 1-worker Ray run gives its worker (all the cores).
        threads = os.cpu_count() or 1
        directs, results = [], {}
        for when in ("before", "after"):
            if when == "after":
                for workers in (1, 2):
                    r = with_ray(cfg, specs, tmp / f"ray{workers}", workers)
                    results[workers] = r
                    steady = f"{r['steady']:.2f} s between rows" if r["steady"] else "n/a"
                    print(f"ray, {workers} worker(s): Ray started in {r['start']:.1f} s, first row after "
                          f"{r['first']:.1f} s, then {steady}; {args.rows} rows in {r['total']:.1f} s = "
                          f"{r['per_hour']:.0f} rows per hour end to end; a row's own work {r['work']:.2f} s; "
                          f"GPU-part share of worker time {r['prepare_share']}; torch threads per worker "
                          f"{r['threads']}")
            out = tmp / f"direct-{when}"
            out.mkdir()
            d = direct(cfg, specs, out, threads)
            directs.append(d)
            print(f"direct pipeline ({when} the Ray runs), {threads} torch thread(s), rows one after another: "
                  f"first row {d['first']:.1f} s (loads the models), then {d['steady']:.2f} s per row "
                  f"= {3600 / d['steady']:.0f} rows per hour")
        d = {"steady": statistics.mean(x["steady"] for x in directs)}
        for size, rt in round_trip([photo_size, 4 * 2**20]).items():
            print(f"ray round trip of one row's task with {size / 1024:.0f} KiB of photo bytes to an idle actor: "
                  f"{rt['mean_ms']:.1f} ms mean, {rt['median_ms']:.1f} ms median")
        if results[1]["steady"]:
            print(f"overhead per row, ray 1 worker steady interval - direct (mean of both): "
                  f"{results[1]['steady'] - d['steady']:+.2f} s "
                  f"({(results[1]['steady'] - d['steady']) / d['steady']:+.0%})")
        print(f"load average at end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
