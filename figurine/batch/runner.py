"""The batch's engine: Ray, on this machine or on the user's own cluster.

    from figurine.batch.runner import Runner, RunOptions
    with Runner(outdir, cfg, RunOptions(workers=2)) as runner:      # local Ray: 2 workers
        for row, result in runner.run(planned):                     # results as rows finish
            print(row.spec.row_id, result["status"])
        print(runner.worker_stats())

1. Privacy first (RAY_ENV, before Ray is imported; SYSTEM_CONFIG for a local instance): no usage
   statistics, no dashboard unless asked (then on 127.0.0.1), no metrics collection, token
   authentication with a random token held in this process's environment (never written), and
   every file Ray writes (session logs, sockets, any spilled object) inside a private folder
   (mode 0700, in /dev/shm when it is there, i.e. in memory) that is deleted at the end. Object
   spilling is off and at most DEPTH rows per worker are in flight, so photos stay in memory.
2. Workers: one actor per GPU (Ray gives each its own GPU), one on a machine without a GPU or
   with runtime.device = cpu; `workers` overrides. Each keeps its FigurinePipeline loaded
   (figurine.batch.worker). On a cluster (`address`) the same, over the cluster's GPUs.
3. Rows: one actor task each, DEPTH in flight per worker (so row k's finish overlaps row k+1's
   prepare inside the worker). The photos are read here and travel as bytes, as the task's
   argument, through Ray's object store; a photo that changed since the check fails its row.
4. Fault tolerance is Ray's own: actors restart when their process dies (max_restarts=-1: a
   worker holds no state a restart loses) and a task whose worker died is retried on the
   restarted worker, up to `retries` times (max_task_retries); then the row is reported failed.
   A figurine error inside a row (a photo with no face, say) is the row's result, not retried.
5. Ctrl-C (or SIGTERM): stop dispatching, shut Ray down (workers stop where they are: a row
   whose row.json was not written is made again by the next run), report rows as interrupted.
"""

from __future__ import annotations

import collections
import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from figurine.errors import ConfigError, FigurineError, InputError

DEPTH = 2  # rows in flight per worker: one preparing on the GPU, one finishing on the CPU
# Environment for Ray, set before it is imported (its child processes inherit it).
RAY_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",          # no usage statistics (Ray's documented opt-out)
    "RAY_AUTH_MODE": "token",                 # every Ray RPC needs the token (set below, never written)
}
# System settings of a local Ray instance (a cluster's own are set by `ray start`, see the README).
SYSTEM_CONFIG = {
    "automatic_object_spilling_enabled": False,  # photos are never spilled out of the object store
    "enable_metrics_collection": False,          # no metrics agent exporting anything
}


@dataclass
class RunOptions:
    workers: int | None = None    # None: one per GPU (one without a GPU)
    address: str | None = None    # None: a local Ray instance; else join this cluster
    retries: int = 2
    pdf: bool = False
    dashboard: bool = False       # Ray's dashboard, on 127.0.0.1 only
    verbose: bool = False


class Runner:
    def __init__(self, outdir: Path, cfg, options: RunOptions, rows: int | None = None):
        if options.workers is not None and not 1 <= options.workers <= 1024:
            raise InputError(f"--workers must be 1 to 1024, got {options.workers}")
        if not 0 <= options.retries <= 100:
            raise InputError(f"--retries must be 0 to 100, got {options.retries}")
        self.outdir, self.cfg, self.options = Path(outdir).resolve(), cfg, options
        self.run_token = secrets.token_hex(8)
        self.marker = f".batch-{self.run_token}"
        self.private = None
        self.actors = []
        self.workers_info = []
        self.started = False
        self.rows = rows

    # -- 1, 2: Ray and the workers ---------------------------------------------------------------
    def __enter__(self) -> "Runner":
        try:
            self.start(self.rows)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, rows: int | None = None) -> None:
        """Ray, then the workers (never more than `rows`: an idle worker only costs memory)."""
        os.environ.update(RAY_ENV)
        os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))  # a cluster's: the user's own
        try:
            import ray
        except ImportError:
            raise ConfigError("figurine batch needs Ray: pip install 'figurine[cluster]'") from None
        from figurine.outputs import atomic_write

        atomic_write(self.outdir / self.marker, lambda f: f.write(b"figurine batch\n"), force=True)
        common = dict(log_to_driver=self.options.verbose, logging_level="info" if self.options.verbose else "warning",
                      namespace="figurine-batch")
        if self.options.address:
            try:
                ray.init(address=self.options.address, **common)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise InputError(f"cannot join the Ray cluster at {self.options.address}: "
                                 f"{' '.join(str(e).split())[:200]}") from None
        else:
            # Named after this process, so whoever started the batch can tell its folder from others'.
            self.private = Path(tempfile.mkdtemp(prefix=f"figurine-batch-{os.getpid()}-", dir=_memory_folder()))
            os.chmod(self.private, 0o700)
            (self.private / "spill").mkdir()
            ray.init(num_cpus=max(os.cpu_count() or 1, self.options.workers or 1),
                     include_dashboard=self.options.dashboard, dashboard_host="127.0.0.1",
                     _temp_dir=str(self.private / "ray"), object_spilling_directory=str(self.private / "spill"),
                     _system_config=SYSTEM_CONFIG, **_object_store(self.private), **common)
        self.started = True
        self._start_workers(ray, rows)

    def _start_workers(self, ray, rows: int | None) -> None:
        from figurine.batch.worker import FigureWorker

        gpus = int(ray.cluster_resources().get("GPU", 0)) if self.cfg.runtime.device != "cpu" else 0
        count = self.options.workers or max(gpus, 1)
        count = min(count, rows) if rows else count
        # CPU cores per worker (Ray sets OMP_NUM_THREADS from it): this machine's shared out; on a
        # cluster one per GPU worker (machines differ: more could leave a worker unplaceable).
        cores = max(1, int(ray.cluster_resources().get("CPU", 1)) // count)
        if gpus:
            resources = {"num_gpus": min(1.0, gpus / count), "num_cpus": 1 if self.options.address else cores}
        else:
            resources = {"num_gpus": 0, "num_cpus": cores}
        cls = ray.remote(FigureWorker).options(max_restarts=-1, max_task_retries=self.options.retries,
                                               max_concurrency=DEPTH, **resources)
        self.actors = [cls.remote(self.cfg, i + 1, str(self.outdir), self.run_token, self.marker)
                       for i in range(count)]
        self.resources = resources

    def describe(self) -> str:
        where = f"the Ray cluster at {self.options.address}" if self.options.address else "a local Ray instance"
        per = "1 GPU each" if self.resources.get("num_gpus") else f"{self.resources['num_cpus']} CPU core(s) each"
        return f"{len(self.actors)} worker(s) on {where} ({per})"

    def stop(self) -> None:
        if self.started:
            import ray

            ray.shutdown()
            self.started = False
        (self.outdir / self.marker).unlink(missing_ok=True)
        if self.private is not None:
            shutil.rmtree(self.private, ignore_errors=True)
            self.private = None

    # -- 3, 4: rows --------------------------------------------------------------------------------
    def run(self, planned: list):
        """Yield (planned row, result dict) as rows finish; results of failed rows too."""
        import ray
        from ray.exceptions import RayActorError, RayError, RayTaskError

        queue = collections.deque(planned)
        inflight: dict = {}
        load = [0] * len(self.actors)
        early: list = []  # rows that failed before reaching a worker (a photo changed meanwhile)

        def submit(i: int) -> None:
            while queue and load[i] < DEPTH:
                row = queue.popleft()
                try:
                    task = self._task(row)
                except InputError as e:
                    early.append((row, _failed(row, str(e))))
                    continue
                inflight[self.actors[i].run.remote(task)] = (row, i)
                load[i] += 1

        self.interrupted_rows = []
        try:
            for i in range(len(self.actors)):
                submit(i)
            while inflight or early:
                while early:
                    yield early.pop(0)
                if not inflight:
                    break
                ready, _ = ray.wait(list(inflight), num_returns=1, timeout=1.0)
                for ref in ready:
                    row, i = inflight.pop(ref)
                    load[i] -= 1
                    try:
                        result = ray.get(ref)
                    except RayActorError as e:
                        result = _failed(row, _death_line(e, self.options.retries))
                    except RayTaskError as e:
                        result = _failed(row, _one_line(getattr(e, "cause", None) or e))
                    except RayError as e:
                        result = _failed(row, _one_line(e))
                    result["attempts"] = self.attempts(row.spec.row_id)
                    yield row, result
                    submit(i)
        except BaseException:
            self.interrupted_rows = [row for row, _ in inflight.values()] + list(queue)
            raise

    def _task(self, row) -> dict:
        """What a worker needs for a row; the photos as bytes, checked against the check's digest."""
        import hashlib

        from figurine.photo import read_bytes
        from figurine.request import Photo

        spec = row.spec
        photos = []
        for i, (path, digest) in enumerate(zip(spec.photos, spec.photo_digests)):
            data = read_bytes(path, str(path))
            if hashlib.sha256(data).hexdigest() != digest:
                raise InputError(f"photo {path.name} changed since the batch was checked; run the batch again")
            photos.append(Photo(f"{spec.row_id} photo {i + 1}", data))
        return {"row_id": spec.row_id, "request": spec.request, "photos": photos, "cfg": spec.cfg,
                "pdf": self.options.pdf, "salt": row.salt, "digest": row.digest}

    def attempts(self, row_id: str) -> int:
        """How many times a worker started this row in this batch run (attempts.json)."""
        from figurine.batch.plan import row_paths
        from figurine.batch.worker import _read_attempts

        return sum(1 for e in _read_attempts(row_paths(self.outdir, row_id).attempts) if e.get("run") == self.run_token)

    def worker_stats(self, timeout: float = 30.0) -> list[dict]:
        """Each worker's rows, GPU busy share and energy (None for a worker that cannot answer)."""
        import ray

        out = []
        for actor in self.actors:
            try:
                out.append(ray.get(actor.stats.remote(), timeout=timeout))
            except Exception as e:  # a dead or unreachable worker
                out.append({"label": "?", "error": _one_line(e)})
        return out


def _memory_folder() -> str | None:
    """/dev/shm (memory) when it is a writable folder here, else the system temp folder."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK) else None


def _object_store(private: Path) -> dict:
    """Ray's object store (the photos in transit) in memory: in the private folder when that is in
    /dev/shm, sized to fit there (Ray's default, 30% of RAM, or half of /dev/shm's free space).
    Elsewhere Ray chooses (/dev/shm when large enough, else a memory-mapped file in its temp folder,
    which is inside the private folder too)."""
    if not str(private).startswith("/dev/shm/"):
        return {}
    free = shutil.disk_usage(private).free // 2
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        ram = free
    size = min(int(ram * 0.3), free)
    if size < 256 * 2**20:
        return {}  # too little shared memory: let Ray choose (see the README)
    return {"_plasma_directory": str(private), "object_store_memory": size}


def _failed(row, error: str) -> dict:
    return {"row_id": row.spec.row_id, "status": "failed", "error": error[:400], "seconds": None,
            "identity_score": None, "energy": None, "worker": "", "node": "", "gpu": ""}


def _death_line(error: BaseException, retries: int) -> str:
    first = _one_line(error)
    return (f"its worker died {retries + 1} time(s) (killed, out of memory or machine lost); "
            f"not retried after {retries} retries: {first[:200]}")


def _one_line(error: BaseException) -> str:
    if isinstance(error, FigurineError):
        return " ".join(str(error).split())[:400]
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}"[:400]
