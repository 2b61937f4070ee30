"""A batch worker: one per GPU, keeping its pipeline loaded, making one row per call.

    worker = FigureWorker(cfg, index=1, outdir=Path("out"), run_token="3f2a...", marker=".batch-3f2a")
    result = worker.run({"row_id": "row-0001", "request": {"name": "Ada", ...},
                         "photos": [Photo("row-0001 photo 1", data)], "cfg": cfg, "pdf": False,
                         "salt": "...", "digest": "..."})
    result["status"], result["seconds"], result["identity_score"], result["energy"]
    worker.stats()      # rows, GPU busy share (NVML) or why not, the worker's own energy window

figurine.batch.runner wraps this class with ray.remote (one actor per GPU, max_concurrency=2);
this module imports no Ray and runs without it (the benchmark calls it directly).

Keeping the GPU busy: two rows may be inside `run` at once (Ray's threaded actor). The GPU's part
of a row (pipeline.prepare: identity, pose, figures, accessories) holds `gpu_lock`; the CPU's part
(pipeline.finish: cut-outs, package, outputs) holds `cpu_lock`. So row k's finish overlaps row
k+1's prepare, and no two rows ever use the same stage at once. The components are shared: the
analyzer and generator are used only under gpu_lock, the matter and the packaging only under
cpu_lock; the per-row state lives in the pipeline's Job. A call returns only once the row's
outputs and row.json are written, so a worker that dies (SIGKILL, out of memory, machine lost)
leaves its rows unreturned and Ray retries them on a restarted worker (max_task_retries).

A row's settings may differ from the batch's in the sections the pipeline reads per figure
(figurine.batch.manifest.ROW_SECTIONS): such a row runs in a RowPipeline with its own settings
over the worker's loaded components.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import sys
import threading
import time
from pathlib import Path

from figurine.batch.plan import ATTEMPTS_JSON, row_paths
from figurine.errors import FigurineError
from figurine.pipeline import FigurinePipeline

BUSY_POLL_S = 0.2  # NVML's utilisation is the busy share over its own last sample period (<= 1 s)
MAX_ATTEMPTS_KEPT = 50


class GpuBusy:
    """The GPU's busy share while rows run: NVML's utilisation (the share of its last sample
    period in which a kernel ran) read every `poll` seconds on a thread, averaged.

        busy = GpuBusy(nvml, handle).start()
        ...
        busy.stop(); busy.share()     # 0.93, or None with busy.reason
    """

    def __init__(self, nvml, handle, poll: float = BUSY_POLL_S, reason: str | None = None):
        self.nvml, self.handle, self.poll = nvml, handle, poll
        self.samples: list[float] = []
        self.reason = reason
        self._stop = threading.Event()

    def start(self) -> "GpuBusy":
        if self.nvml is not None:
            threading.Thread(target=self._run, name="gpu-busy", daemon=True).start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.poll) and self.sample():
            pass

    def sample(self) -> bool:
        try:
            self.samples.append(float(self.nvml.nvmlDeviceGetUtilizationRates(self.handle).gpu))
            return True
        except Exception as exc:  # e.g. not supported on this GPU
            self.reason = f"NVML could not read the GPU's utilisation: {exc}"
            return False

    def stop(self) -> None:
        self._stop.set()

    def share(self) -> float | None:
        if not self.samples:
            self.reason = self.reason or "no utilisation sample taken"
            return None
        return round(sum(self.samples) / len(self.samples) / 100.0, 4)


class RowPipeline(FigurinePipeline):
    """A row's own settings over the worker's components (loaded once, by the worker's pipeline)."""

    def __init__(self, cfg, base: FigurinePipeline):
        super().__init__(cfg, hooks=base.hooks)
        self._base = base

    def analyzer(self):
        self._analyzer = self._base.analyzer()
        return self._analyzer

    def generator(self):
        self._generator = self._base.generator()
        return self._generator

    def matter(self):
        self._matter = self._base.matter()
        return self._matter


class FigureWorker:
    def __init__(self, cfg, index: int, outdir: str, run_token: str, marker: str):
        # 1. Offline in this process too (a worker may be a fresh process on another machine).
        from figurine import privacy

        privacy.go_offline()
        self.guard = privacy.install_network_guard(allow_loopback=True)
        # 2. The batch's folder must be the driver's: on a cluster, a folder shared by every machine.
        self.outdir = Path(outdir)
        if not (self.outdir / marker).is_file():
            raise FigurineError(f"this worker cannot see the batch's output folder {outdir}: on a cluster OUTDIR must "
                                "be a shared folder mounted at the same path on every machine")
        self.cfg, self.index, self.run_token = cfg, index, run_token
        self.pipe = FigurinePipeline(cfg)
        self.gpu_lock, self.cpu_lock, self.stats_lock = threading.Lock(), threading.Lock(), threading.Lock()
        self.where = self._where()
        self.rows = 0
        self.prepare_s = 0.0
        self.first_start = self.last_end = None
        self._meter = self._window = None
        self._busy = None          # GpuBusy, from the first row on

    # -- one row -------------------------------------------------------------------------------
    def run(self, task: dict) -> dict:
        from figurine.request import Request

        t0 = time.perf_counter()
        row_id = task["row_id"]
        paths = row_paths(self.outdir, row_id)
        paths.folder.mkdir(exist_ok=True)
        attempt = self._attempt_started(paths.attempts)
        self._start_meters()
        out = {"row_id": row_id, "worker": self.where["label"], "node": self.where["node"], "gpu": self.where["gpu"],
               "attempt": attempt}
        work = None
        try:
            pipe = self.pipe if task["cfg"] == self.cfg else RowPipeline(task["cfg"], self.pipe)
            req = Request(photos=task["photos"], output=paths.package, run_dir=paths.run_dir, force=True,
                          pdf=paths.pdf if task["pdf"] else None, **task["request"])
            with self.gpu_lock:
                g0 = time.perf_counter()
                try:
                    job = pipe.prepare(req, replace_own=True)
                finally:
                    work = time.perf_counter() - g0
                    with self.stats_lock:
                        self.prepare_s += work
            with self.cpu_lock:
                f0 = time.perf_counter()
                try:
                    result = pipe.finish(job)
                finally:
                    work += time.perf_counter() - f0
            if not task["pdf"] and paths.pdf.is_file() and not paths.pdf.is_symlink():
                paths.pdf.unlink()  # asked for before, not now
            files = {p.name: _sha256(p) for p in (paths.package, paths.sidecar, paths.pdf if task["pdf"] else None)
                     if p is not None}
            out.update(status="made", error="", reused=list(result.reused), **_figures(result.record))
        except FigurineError as e:
            out.update(status="failed", error=" ".join(str(e).split())[:400])
            files = None
        except Exception as e:  # a bug: one line here, the traceback in the worker's log
            import traceback

            traceback.print_exc()
            out.update(status="failed", error=f"{type(e).__name__}: {' '.join(str(e).split())[:300]}")
            files = None
        # The row's own work (its prepare and finish, not the wait for the other row's), and in all.
        out["seconds"] = round(work, 3) if work is not None else None
        out["wall_seconds"] = round(time.perf_counter() - t0, 3)
        if files is not None:
            _write_json(paths.row_json, {"row": row_id, "digest": task["digest"], "salt": task["salt"],
                                         "files": files, "result": out, "figurine": _version()})
        self._attempt_ended(paths.attempts, attempt, out["status"])
        with self.stats_lock:
            self.rows += 1
            self.last_end = time.monotonic()
        return out

    # -- where this worker runs, and its GPU's busy share --------------------------------------
    def _where(self) -> dict:
        node, gpu = "local", ""
        try:
            import ray

            ctx = ray.get_runtime_context()
            node = ctx.get_node_id()[:8]
            gpu = ",".join(str(g) for g in ctx.get_accelerator_ids().get("GPU", []))
        except Exception:  # not under Ray (the benchmark's direct calls)
            pass
        device = "CPU"
        if self.cfg.runtime.device != "cpu":
            import torch

            if torch.cuda.is_available():
                device = torch.cuda.get_device_name(0)
        label = f"worker {self.index} (node {node}, {'GPU ' + gpu + ' ' if gpu else ''}{device})"
        return {"label": label, "node": node, "gpu": gpu, "device": device, "pid": os.getpid()}

    def info(self) -> dict:
        return dict(self.where)

    def _start_meters(self) -> None:
        with self.stats_lock:
            if self.first_start is not None:
                return
            self.first_start = time.monotonic()
            from figurine.energy import EnergyMeter

            if self.cfg.runtime.device == "cpu":
                self._meter = EnergyMeter(no_gpu="the worker runs on the CPU (runtime.device = cpu)",
                                          grid_intensity=self.cfg.energy.grid_intensity, measure_idle=False)
            else:
                self._meter = EnergyMeter.for_torch_device(None, grid_intensity=self.cfg.energy.grid_intensity,
                                                           measure_idle=False)
            self._window = self._meter.window("batch")
            self._window.__enter__()
            ok = self._meter.gpu_available
            self._busy = GpuBusy(self._meter.nvml if ok else None, self._meter.handle,
                                 reason=None if ok else self._meter.gpu_reason).start()

    def stats(self) -> dict:
        """This worker's rows and time, its GPU's busy share, and its energy over all its rows
        (one window from its first row's start: rows overlap, so this is the figure per image)."""
        with self.stats_lock:
            wall = (self.last_end or time.monotonic()) - self.first_start if self.first_start else 0.0
            energy = None
            if self._window is not None and self._window.result is None:
                self._window.__exit__(None, None, None)
            if self._window is not None:
                energy = self._window.result.to_dict()
            busy, reason, samples = None, "no row ran", 0
            if self._busy is not None:
                self._busy.stop()
                busy, samples = self._busy.share(), len(self._busy.samples)
                reason = None if busy is not None else self._busy.reason
            torch = sys.modules.get("torch")
            threads = torch.get_num_threads() if torch is not None else None
            return {**self.where, "rows": self.rows, "torch_threads": threads, "wall_s": round(wall, 3),
                    "prepare_s": round(self.prepare_s, 3),
                    "gpu_busy": busy, "gpu_busy_reason": reason, "gpu_busy_samples": samples,
                    "energy": energy, "network_attempts": [a.target() for a in self.guard.attempts]}

    # -- attempts.json: which worker started the row, in which batch run -------------------------
    def _attempt_started(self, path: Path) -> int:
        entries = _read_attempts(path)[-MAX_ATTEMPTS_KEPT:]
        for e in entries:  # an earlier batch run that stopped (Ctrl-C) while a worker had this row
            if e.get("run") != self.run_token and e.get("status") == "running":
                e["status"] = "stopped"
        attempt = 1 + sum(1 for e in entries if e.get("run") == self.run_token)
        entries.append({"run": self.run_token, "attempt": attempt, "worker": self.where["label"],
                        "pid": os.getpid(), "started": _now(), "status": "running"})
        _write_json(path, entries)
        return attempt

    def _attempt_ended(self, path: Path, attempt: int, status: str) -> None:
        entries = _read_attempts(path)
        for e in entries:
            if e.get("run") == self.run_token and e.get("attempt") == attempt:
                e.update(status=status, ended=_now())
        _write_json(path, entries)


def _figures(record: dict) -> dict:
    """Identity score of the packaged figure and the row's energy, from the run's record."""
    fig = record.get("stages", {}).get("figure", {})
    scores, best = fig.get("scores") or [], fig.get("best", 0)
    score = scores[best] if isinstance(best, int) and 0 <= best < len(scores) else None
    total = record.get("energy", {}).get("total", {})
    energy = {k: total.get(k) for k in ("gpu_joules_gross", "wh", "co2e_g", "seconds")}
    reasons = total.get("reasons") or {}
    energy["reason"] = reasons.get("gpu_joules_gross") if energy["gpu_joules_gross"] is None else None
    return {"identity_score": score, "energy": energy}


def _read_attempts(path: Path) -> list:
    try:
        data = json.loads(path.read_bytes()) if path.is_file() and not path.is_symlink() else []
    except (OSError, ValueError):
        return []
    return [e for e in data if isinstance(e, dict)] if isinstance(data, list) else []


def _write_json(path: Path, data) -> None:
    from figurine.outputs import atomic_write

    body = json.dumps(data, indent=2, sort_keys=True, default=str).encode()
    atomic_write(path, lambda f: f.write(body), force=True)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _version() -> str:
    import figurine

    return figurine.__version__


# For figurine.batch.plan: the attempts file's name is part of a row's folder.
__all__ = ["FigureWorker", "RowPipeline", "ATTEMPTS_JSON"]
