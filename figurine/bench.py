"""figurine bench: the same photos through several configurations, measured side by side.

    figurine bench --config configs/bench-30step.toml --config configs/bench-4step.toml \\
        --photos photos/ --runs 3 --warmup 1 --out bench-out/ --random-weights

    from figurine.bench import BenchOptions, run_bench
    report = run_bench(BenchOptions(configs=[Path("configs/tiny.toml")], photos=Path("photos"),
                                    out=Path("bench-out"), runs=1, warmup=0, weights=Path("w")))

Each --config is ONE configuration to compare, laid over figurine's defaults (unlike `make`, where
several --config files layer into one); --set overrides apply to every configuration. For each
configuration the models load once, `warmup` images run unmeasured, then `runs` images per photo
are measured. Every image goes through the stages `figurine make` runs - identity, pose,
generation, VAE decode, identity score, accessories, matte, packaging - and each stage gets:

- latency: wall time between two `torch.cuda.synchronize()` calls (the GPU's queue is empty at
  both ends);
- energy: an EnergyMeter window (NVML total-energy counter; gross and net of idle);
- peak VRAM: `torch.cuda.max_memory_allocated()` after `reset_peak_memory_stats()`.
Per image also: the identity score (ArcFace cosine of the figure's face against the photo's; None
when no face is found on the figure) and the pose error (keypoints read off the figure with the
OpenPose body annotator against the preset's; only with annotator weights).

--random-weights builds full-size SDXL + ControlNet + FaceID from configs/arch with random weights
(figurine.random_weights) and first measures, for the same photos, seeds and settings, one bare
diffusers pipeline call per image (StableDiffusionXLControlNetPipeline, diffusers' defaults) on the
same modules; then figurine's Generator takes the modules over and the figurine images run. The
ratio is figurine's (generation + VAE decode) over the bare call.

Outputs in --out: bench.json (everything, raw), bench.csv (one row per measured image), bench.md
(tables), bench.png (energy per image against identity score, one point per configuration).
Nothing unavailable is written as 0: it is null (JSON), empty (CSV, reason in `notes`) or says
"unavailable" and why (markdown, plot).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import logging
import statistics
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from figurine.config import Config, load_config, read_toml
from figurine.errors import InputError, OutputExistsError

log = logging.getLogger(__name__)

STAGES = ("identity", "pose", "generation", "vae_decode", "identity_score", "accessories", "matte", "packaging")
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
OUTPUTS = ("bench.json", "bench.csv", "bench.md", "bench.png")
DEFAULT_ACCESSORIES = ("a coffee mug", "a laptop")
BENCH_NAME, BENCH_TAGLINE = "Bench Mark", "Benchmark Pilot"
NO_CUDA = "unavailable: no CUDA"
NO_FACE = "no face detected"
GIB = 2**30


@dataclass
class BenchOptions:
    configs: list[Path]
    photos: Path
    out: Path
    runs: int = 3
    warmup: int = 1
    random_weights: bool = False
    weights: Path | None = None
    overrides: list[str] = field(default_factory=list)
    accessories: list[str] = field(default_factory=lambda: list(DEFAULT_ACCESSORIES))
    arch: Path | None = None  # None: configs/arch (full size)
    bare: bool = True  # with random_weights: measure the bare diffusers call too
    force: bool = False
    command: list[str] = field(default_factory=list)


@dataclass
class Plan:
    """Everything checked before any model loads."""

    configs: list[tuple[str, Path, Config, str]]  # name, file, resolved config, the file's text
    photos: list[tuple[str, object]]  # name, PIL image


# ---------------------------------------------------------------------------------------------
# 1. Inputs


def check(opts: BenchOptions) -> Plan:
    """Every argument, config file and photo, before anything heavy is imported."""
    from figurine.photo import load_photo

    if not opts.configs:
        raise InputError("give at least one --config FILE (each one is a configuration to compare)")
    if opts.runs < 1:
        raise InputError(f"--runs must be at least 1, got {opts.runs}")
    if opts.warmup < 0:
        raise InputError(f"--warmup must be 0 or more, got {opts.warmup}")
    configs, names = [], set()
    for path in opts.configs:
        path = Path(path)
        text = path.read_text() if path.is_file() else None
        if text is None:
            read_toml(path)  # raises the one-line "config file not found"
        cfg = load_config([path], opts.overrides, opts.weights)
        name = path.stem
        while name in names:
            name += "'"
        names.add(name)
        configs.append((name, path, cfg, text))
    photos_dir = Path(opts.photos)
    if photos_dir.is_file():
        files = [photos_dir]
    elif photos_dir.is_dir():
        files = sorted(p for p in photos_dir.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES and p.is_file())
        if not files:
            raise InputError(f"no photos in {photos_dir} (looked for {', '.join(PHOTO_SUFFIXES)} files)")
    else:
        raise InputError(f"--photos {photos_dir}: no such folder")
    photos = [(p.name, load_photo(p)) for p in files]
    if opts.out.exists() and not opts.out.is_dir():
        raise InputError(f"--out {opts.out} exists and is not a folder")
    existing = [opts.out / f for f in OUTPUTS if (opts.out / f).exists()]
    if existing and not opts.force:
        raise OutputExistsError(f"{existing[0]} exists; use --force to overwrite the bench outputs")
    for text in opts.accessories:
        if not text.strip():
            raise InputError("an --accessory needs a description")
    return Plan(configs, photos)


# ---------------------------------------------------------------------------------------------
# 2. Measuring


class Clock:
    """Stage windows: synchronised latency, an energy window, and the stage's peak VRAM."""

    def __init__(self, meter, cuda: bool):
        self.meter, self.cuda = meter, cuda

    def _sync(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize()

    @contextmanager
    def stage(self, name: str, into: dict):
        import torch

        self._sync()
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
        with self.meter.window(name) as w:
            t0 = time.perf_counter()
            yield
            self._sync()
            seconds = time.perf_counter() - t0
        into[name] = {"seconds": seconds, "energy": w.result.to_dict(),
                      "peak_vram_bytes": torch.cuda.max_memory_allocated() if self.cuda else None}


def _peak(stages: dict) -> int | None:
    values = [s["peak_vram_bytes"] for s in stages.values() if s.get("peak_vram_bytes") is not None]
    return max(values) if values else None


class ConfigRun:
    """One configuration: its models, loaded once, and the images measured on them."""

    def __init__(self, name: str, cfg: Config, opts: BenchOptions):
        import torch

        from figurine import prompt
        from figurine.energy import EnergyMeter
        from figurine.generate import choose_runtime

        self.name, self.cfg, self.opts = name, cfg, opts
        self.runtime = choose_runtime(cfg)
        self.cuda = self.runtime.device == "cuda"
        sync = torch.cuda.synchronize if self.cuda else None
        self.meter = EnergyMeter.from_config(cfg.energy, sync=sync)
        self.clock = Clock(self.meter, self.cuda)
        self.notes = list(self.runtime.notes)
        self.prompts = prompt.build_prompts(
            BENCH_NAME, tagline=BENCH_TAGLINE, outfit=cfg.prompt.outfit, accessories=opts.accessories,
            style=cfg.prompt.style, extra=cfg.prompt.extra, negative=cfg.prompt.negative)
        self.analyzer, self.analyzer_reason = self._analyzer()
        self.annotators, self.pose_reason = self._annotators()
        self.pipe = None
        self.gen = None

    # -- loading ------------------------------------------------------------------------------
    def _analyzer(self):
        from figurine.face import FaceAnalyzer

        pack = self.cfg.path("model.insightface")
        if self.opts.random_weights and (pack is None or not pack.is_dir()):
            return None, f"unavailable: no insightface pack at {pack} (random weights: a random face embedding is used)"
        providers = (["CUDAExecutionProvider", "CPUExecutionProvider"] if self.cuda else ["CPUExecutionProvider"])
        return FaceAnalyzer(pack, det_size=self.cfg.face.det_size, det_thresh=self.cfg.face.det_thresh,
                            providers=providers), None

    def _annotators(self):
        from figurine.pose import BODY_WEIGHTS

        folder = self.cfg.path("model.annotators")
        if folder is None or not (folder / BODY_WEIGHTS).is_file():
            return None, f"unavailable: no annotator weights ({folder / BODY_WEIGHTS if folder else 'model.annotators unset'})"
        return folder, None

    def load(self) -> dict:
        """Load (or build) the models; returns load facts for the report."""
        from figurine.generate import Generator

        t0 = time.perf_counter()
        if self.opts.random_weights:
            from figurine import random_weights

            arch = self.opts.arch or random_weights.ARCH_DIR
            if not self.cuda and Path(arch).resolve() == random_weights.ARCH_DIR.resolve():
                note = "full-size random weights on the CPU: expect many minutes per image"
                log.warning(note)
                self.notes.append(note)
            self.pipe = random_weights.build_pipeline(self.cfg, self.runtime, arch_dir=arch,
                                                      seed=max(self.cfg.generation.seed, 0))
            self.pipe.set_progress_bar_config(disable=True)
            self.build_seconds = time.perf_counter() - t0
        else:
            self.gen = Generator(self.cfg, self.runtime)
        return {"load_seconds": time.perf_counter() - t0}

    def take_over(self) -> float:
        """With random weights: figurine's Generator takes the bare pipeline's modules over."""
        from figurine.generate import Generator

        t0 = time.perf_counter()
        self.gen = Generator.from_components(self.cfg, self.pipe, self.runtime)
        return time.perf_counter() - t0

    # -- one image ----------------------------------------------------------------------------
    def face(self, photo, photo_index: int):
        """The reference face embedding (and the Face, when insightface is available)."""
        import numpy as np

        from figurine.face import pick

        if self.analyzer is None:
            rng = np.random.default_rng(photo_index)
            emb = rng.standard_normal(512).astype(np.float32)
            return None, emb / np.linalg.norm(emb)
        face = pick(self.analyzer.faces(photo), self.cfg.face.index, label="the bench photo")
        return face, face.embedding

    def control_image(self):
        from figurine.pose import load_preset, render_pose

        g, p = self.cfg.generation, self.cfg.pose
        return render_pose(load_preset(p.preset), g.width, g.height, p.limb_width, p.point_radius)

    def image(self, photo_name: str, photo, photo_index: int, run: int, seed: int) -> dict:
        """Every stage of one figurine image, measured; then the evaluation (not timed)."""
        from figurine.face import identity_score
        from figurine.pipeline import accessory_seed
        from figurine.packaging.render import PackText, render_package

        stages: dict = {}
        clk, gen, cfg = self.clock, self.gen, self.cfg
        with self.meter.window("image") as whole:
            t0 = time.perf_counter()
            with clk.stage("identity", stages):
                face, embedding = self.face(photo, photo_index)
            with clk.stage("pose", stages):
                control = self.control_image()
            with clk.stage("generation", stages):
                latents = gen.figure(self.prompts.figure, self.prompts.figure_negative, control, embedding, seed=seed)
            with clk.stage("vae_decode", stages):
                figure = gen.decode(latents)[0]
            score = None
            if self.analyzer is not None:
                with clk.stage("identity_score", stages):
                    score = identity_score(self.analyzer, figure, embedding)
            items = []
            if self.opts.accessories:
                a = cfg.accessories
                with clk.stage("accessories", stages):
                    batch = max(1, a.batch)
                    texts = list(self.opts.accessories)
                    for start in range(0, len(texts), batch):
                        jobs = [(*self.prompts.accessory(t), accessory_seed(seed, t)) for t in texts[start:start + batch]]
                        items += gen.decode(gen.accessories(jobs, a.width, a.height, a.steps, a.guidance))
            with clk.stage("matte", stages):
                from figurine.matte import Matter

                matter = Matter(cfg.matte.method, cfg.path("matte.model"))
                figure_matte = matter.cut_or_whole(figure, "the figure")[0]
                item_mattes = [matter.cut_or_whole(im, f"accessory {i}")[0] for i, im in enumerate(items)]
            with clk.stage("packaging", stages):
                render_package(figure_matte, item_mattes, PackText(BENCH_NAME, BENCH_TAGLINE),
                               template=cfg.packaging.template, size=cfg.packaging.size)
            clk._sync()
            seconds = time.perf_counter() - t0
        row = {"config": self.name, "photo": photo_name, "run": run, "seed": seed, "seconds": seconds,
               "energy": whole.result.to_dict(), "peak_vram_bytes": _peak(stages), "stages": stages,
               "identity_score": score, "reasons": {}}
        if not self.cuda:
            row["reasons"]["peak_vram"] = NO_CUDA
        if self.analyzer is None:
            row["reasons"]["identity_score"] = self.analyzer_reason
        elif score is None:
            row["reasons"]["identity_score"] = NO_FACE
        row["pose_error"], why = self.pose_error(figure)
        if why:
            row["reasons"]["pose_error"] = why
        return row

    def pose_error(self, figure) -> tuple[float | None, str | None]:
        """Mean keypoint distance, figure vs preset, as a fraction of the preset figure's height."""
        import math

        from figurine.errors import InputError as NoPerson
        from figurine.pose import load_preset, pose_from_image, pose_to_pixels

        if self.annotators is None:
            return None, self.pose_reason
        w, h = figure.size
        try:
            found = pose_from_image(figure, self.annotators)
        except NoPerson:
            return None, "no person detected on the figure"
        want = pose_to_pixels(load_preset(self.cfg.pose.preset), w, h)
        got = [None if p is None else (p[0] * w, p[1] * h) for p in found.keypoints]
        pairs = [(a, b) for a, b in zip(want, got) if a is not None and b is not None]
        if not pairs:
            return None, "no keypoint found on the figure matches the preset's"
        ys = [p[1] for p in want if p is not None]
        height = max(max(ys) - min(ys), 1.0)
        return sum(math.dist(a, b) for a, b in pairs) / len(pairs) / height, None

    def bare(self, photo_name: str, embedding, control, run: int, seed: int) -> dict:
        """The same figure as one bare diffusers call (denoise + decode) on the same modules."""
        import torch

        g = self.cfg.generation
        emb = torch.as_tensor(embedding, dtype=torch.float32).reshape(1, 1, 1, 512)
        emb = torch.cat([torch.zeros_like(emb), emb]) if g.guidance > 1 else emb
        emb = emb.to(device=self.runtime.device, dtype=self.runtime.dtype)
        stages: dict = {}
        with self.clock.stage("bare_diffusers", stages):
            self.pipe(prompt=self.prompts.figure, negative_prompt=self.prompts.figure_negative, image=control,
                      ip_adapter_image_embeds=[emb], num_inference_steps=g.steps, guidance_scale=g.guidance,
                      width=g.width, height=g.height, generator=torch.Generator("cpu").manual_seed(seed))
        s = stages["bare_diffusers"]
        return {"photo": photo_name, "run": run, "seed": seed, "seconds": s["seconds"], "energy": s["energy"],
                "peak_vram_bytes": s["peak_vram_bytes"]}


def bench_config(name: str, file: Path, cfg: Config, text: str, plan: Plan, opts: BenchOptions) -> dict:
    """Load one configuration, warm up, measure; everything raw."""
    run = ConfigRun(name, cfg, opts)
    print(f"[{name}] loading ({'random full-size weights' if opts.random_weights else cfg.weights_root})",
          flush=True)
    facts = run.load()
    seeds = [max(cfg.generation.seed, 0) + r for r in range(opts.runs)]
    schedule = [(i, pname, photo, r, seed) for i, (pname, photo) in enumerate(plan.photos)
                for r, seed in enumerate(seeds)]
    warm = [(r % len(plan.photos), r) for r in range(opts.warmup)]  # (photo index, warm-up run)
    result: dict = {"name": name, "file": str(file), "toml": text, "resolved_toml": to_toml(cfg.to_dict()),
                    "runtime": {"device": run.runtime.device, "dtype": str(run.runtime.dtype).replace("torch.", ""),
                                "memory": run.runtime.memory},
                    "random_weights": opts.random_weights, **facts}
    # Bare diffusers first (random weights): the modules are still exactly as diffusers made them.
    if opts.random_weights and opts.bare:
        control = run.control_image()
        embeds = [run.face(photo, i)[1] for i, (_, photo) in enumerate(plan.photos)]
        for i, r in warm:
            run.bare(plan.photos[i][0], embeds[i], control, -1 - r, seeds[0])
        result["bare"] = [run.bare(pname, embeds[i], control, r, seed) for i, pname, _, r, seed in schedule]
        print(f"[{name}] bare diffusers: {len(result['bare'])} images measured", flush=True)
        result["take_over_seconds"] = run.take_over()
    elif opts.random_weights:
        result["take_over_seconds"] = run.take_over()
    result["compile_seconds"] = getattr(run.gen, "compile_seconds", None)
    result["fused_layers"] = getattr(run.gen, "fused_layers", None)
    # Warm-up (kept in the JSON: with torch.compile the first image carries the compile time).
    result["warmup"] = []
    for i, r in warm:
        pname, photo = plan.photos[i]
        result["warmup"].append(run.image(pname, photo, i, -1 - r, seeds[0]))
    result["images"] = []
    for i, pname, photo, r, seed in schedule:
        row = run.image(pname, photo, i, r, seed)
        result["images"].append(row)
        print(f"[{name}] {pname} run {r}: {row['seconds']:.2f} s", flush=True)
    result["notes"] = run.notes + [n for n in (run.analyzer_reason, run.pose_reason) if n]
    result["energy_idle_watts"] = run.meter.idle_watts
    result["summary"] = summarise(result)
    run.meter.close()
    del run
    _free_memory()
    return result


def _free_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# ---------------------------------------------------------------------------------------------
# 3. Summaries


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _first_reason(rows, *keys) -> str | None:
    for row in rows:
        d = row
        for k in keys[:-1]:
            d = d.get(k, {})
        if keys[-1] in d:
            return d[keys[-1]]
    return None


def summarise(result: dict) -> dict:
    """Medians over the measured images of one configuration; reasons where a figure is missing."""
    rows = result["images"]
    s: dict = {"images": len(rows), "reasons": {}}
    s["seconds_median"] = _median(r["seconds"] for r in rows)
    s["seconds_min"] = min(r["seconds"] for r in rows)
    for key in ("gpu_joules_gross", "gpu_joules_net", "cpu_joules"):
        s[f"{key}_median"] = _median(r["energy"][key] for r in rows)
        if s[f"{key}_median"] is None:
            s["reasons"][key] = _first_reason(rows, "energy", "reasons", key) or "unavailable"
    peaks = [r["peak_vram_bytes"] for r in rows if r["peak_vram_bytes"] is not None]
    s["peak_vram_bytes"] = max(peaks) if peaks else None
    if not peaks:
        s["reasons"]["peak_vram"] = NO_CUDA
    scores = [r["identity_score"] for r in rows if r["identity_score"] is not None]
    s["identity_score_median"] = _median(scores)
    s["identity_no_face"] = sum(1 for r in rows if r["identity_score"] is None)
    if not scores:
        s["reasons"]["identity_score"] = _first_reason(rows, "reasons", "identity_score") or NO_FACE
    s["pose_error_median"] = _median(r["pose_error"] for r in rows)
    if s["pose_error_median"] is None:
        s["reasons"]["pose_error"] = _first_reason(rows, "reasons", "pose_error") or "unavailable"
    s["stages"] = {}
    for stage in STAGES:
        got = [r["stages"][stage] for r in rows if stage in r["stages"]]
        if got:
            s["stages"][stage] = {
                "seconds_median": _median(g["seconds"] for g in got),
                "gpu_joules_gross_median": _median(g["energy"]["gpu_joules_gross"] for g in got),
                "peak_vram_bytes": max((g["peak_vram_bytes"] for g in got if g["peak_vram_bytes"] is not None),
                                       default=None)}
    bare = result.get("bare")
    if bare:
        gen_decode = [r["stages"]["generation"]["seconds"] + r["stages"]["vae_decode"]["seconds"] for r in rows]
        b = {"seconds_median": _median(x["seconds"] for x in bare),
             "gpu_joules_gross_median": _median(x["energy"]["gpu_joules_gross"] for x in bare),
             "peak_vram_bytes": max((x["peak_vram_bytes"] for x in bare if x["peak_vram_bytes"] is not None),
                                    default=None),
             "figurine_generation_decode_seconds_median": _median(gen_decode)}
        b["ratio_seconds"] = b["figurine_generation_decode_seconds_median"] / b["seconds_median"]
        gj = [r["stages"]["generation"]["energy"]["gpu_joules_gross"] for r in rows]
        dj = [r["stages"]["vae_decode"]["energy"]["gpu_joules_gross"] for r in rows]
        fj = _median(None if a is None or d is None else a + d for a, d in zip(gj, dj))
        b["ratio_joules"] = (None if fj is None or not b["gpu_joules_gross_median"]
                             else fj / b["gpu_joules_gross_median"])
        s["bare"] = b
    return s


# ---------------------------------------------------------------------------------------------
# 4. Outputs


def to_toml(data: dict) -> str:
    """A config dict (sections of str/int/float/bool/list[str]) as TOML text."""
    def value(v) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return json.dumps(str(v), ensure_ascii=False)

    top = [f"{k} = {value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    parts = ["\n".join(top)] if top else []
    for section, values in data.items():
        if isinstance(values, dict):
            parts.append(f"[{section}]\n" + "\n".join(f"{k} = {value(v)}" for k, v in values.items()))
    return "\n\n".join(parts) + "\n"


def _fmt(v, unit: str = "", digits: int = 3) -> str:
    return f"{v:.{digits}g}{unit}" if isinstance(v, (int, float)) else str(v)


def _gib(v) -> float | None:
    return None if v is None else v / GIB


def _or_reason(value, reasons: dict, key: str, fmt) -> str:
    if value is not None:
        return fmt(value)
    why = reasons.get(key, "unavailable")
    return why if why.startswith(("unavailable", NO_FACE, "no ")) else f"unavailable: {why}"


CSV_FIELDS = ["config", "photo", "run", "seed", "seconds", *[f"{s}_s" for s in STAGES],
              "gpu_joules_gross", "gpu_joules_net", "cpu_joules", "peak_vram_gib", "identity_score",
              "pose_error", "bare_seconds", "bare_gpu_joules_gross", "bare_peak_vram_gib", "notes"]


def write_csv(report: dict, path: Path) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    for c in report["configs"]:
        bare = {(b["photo"], b["run"]): b for b in c.get("bare") or []}
        for r in c["images"]:
            e = r["energy"]
            notes = dict(r["reasons"])
            for k in ("gpu_joules_gross", "cpu_joules"):
                if e[k] is None:
                    notes[k] = e["reasons"].get(k, "unavailable")
            b = bare.get((r["photo"], r["run"]))
            row = {"config": c["name"], "photo": r["photo"], "run": r["run"], "seed": r["seed"],
                   "seconds": f"{r['seconds']:.4f}", "gpu_joules_gross": e["gpu_joules_gross"],
                   "gpu_joules_net": e["gpu_joules_net"], "cpu_joules": e["cpu_joules"],
                   "peak_vram_gib": _gib(r["peak_vram_bytes"]), "identity_score": r["identity_score"],
                   "pose_error": r["pose_error"],
                   "bare_seconds": b and round(b["seconds"], 4),
                   "bare_gpu_joules_gross": b and b["energy"]["gpu_joules_gross"],
                   "bare_peak_vram_gib": b and _gib(b["peak_vram_bytes"]),
                   "notes": "; ".join(f"{k}: {v}" for k, v in notes.items())}
            for s in STAGES:
                row[f"{s}_s"] = f"{r['stages'][s]['seconds']:.4f}" if s in r["stages"] else None
            w.writerow({k: "" if v is None else v for k, v in row.items()})
    path.write_text(buf.getvalue())


def _weights_line(o: dict) -> str:
    if o["random_weights"]:
        return f"random, architecture from {o['arch'] or 'configs/arch (full-size SDXL + ControlNet + FaceID)'}"
    return f"from {o['weights'] or 'the default weights root'}"


def markdown(report: dict) -> str:
    """bench.md: a summary table (a row per configuration), then each configuration's stages."""
    info = report["sysinfo"]
    gpu = info.get("gpu_name") or "no GPU ({})".format(info["reasons"].get("gpu_name", "unavailable"))
    lines = [f"# figurine bench, {report['created'][:10]}", "",
             f"- GPU: {gpu}; driver {info.get('driver_version')}, power limit {info.get('power_limit_w')} W",
             f"- CPU: {info.get('cpu_model')}; python {info.get('python')}; "
             + ", ".join(f"{k} {v}" for k, v in info["versions"].items() if v),
             f"- weights: {_weights_line(report['options'])}",
             f"- command: `{' '.join(report['command'])}`",
             f"- {report['options']['runs']} measured image(s) per photo and configuration, "
             f"{report['options']['warmup']} warm-up image(s); medians over the measured images", "",
             "| config | images | s/image | J/image (GPU) | peak VRAM | identity score | pose error |",
             "|---|---|---|---|---|---|---|"]
    for c in report["configs"]:
        s, why = c["summary"], c["summary"]["reasons"]
        ident = _or_reason(s["identity_score_median"], why, "identity_score", lambda v: f"{v:.3f}")
        if s["identity_score_median"] is not None and s["identity_no_face"]:
            ident += f" ({s['identity_no_face']} with no face detected)"
        lines.append("| " + " | ".join([
            c["name"], str(s["images"]), f"{s['seconds_median']:.3f} s",
            _or_reason(s["gpu_joules_gross_median"], why, "gpu_joules_gross", lambda v: f"{v:.0f} J"),
            _or_reason(_gib(s["peak_vram_bytes"]), why, "peak_vram", lambda v: f"{v:.2f} GiB"),
            ident, _or_reason(s["pose_error_median"], why, "pose_error", lambda v: f"{v:.3f}"),
        ]).replace("\n", " ") + " |")
    for c in report["configs"]:
        s = c["summary"]
        lines += ["", f"## {c['name']} ({c['file']})", "",
                  f"runtime: {c['runtime']['device']}, {c['runtime']['dtype']}, memory policy {c['runtime']['memory']}; "
                  f"load {c['load_seconds']:.1f} s" + (f"; torch.compile wrap {c['compile_seconds']:.1f} s "
                  "(the compile itself runs in the first image: see warm-up in bench.json)"
                  if c.get("compile_seconds") else ""), "",
                  "| stage | s (median) | J GPU (median) | peak VRAM |", "|---|---|---|---|"]
        for stage, st in s["stages"].items():
            lines.append(f"| {stage} | {st['seconds_median']:.4f} | "
                         + (f"{st['gpu_joules_gross_median']:.1f}" if st["gpu_joules_gross_median"] is not None
                            else "unavailable") + " | "
                         + (f"{_gib(st['peak_vram_bytes']):.2f} GiB" if st["peak_vram_bytes"] is not None else NO_CUDA)
                         + " |")
        b = s.get("bare")
        if b:
            lines += ["", "| same work | s (median) | J GPU (median) | peak VRAM |", "|---|---|---|---|",
                      f"| bare diffusers call (denoise + decode) | {b['seconds_median']:.4f} | "
                      + _fmt(b["gpu_joules_gross_median"] if b["gpu_joules_gross_median"] is not None else "unavailable")
                      + " | " + (f"{_gib(b['peak_vram_bytes']):.2f} GiB" if b["peak_vram_bytes"] is not None else NO_CUDA) + " |",
                      f"| figurine generation + VAE decode | {b['figurine_generation_decode_seconds_median']:.4f} | | |",
                      "", f"figurine / bare diffusers: {b['ratio_seconds']:.3f}x the time"
                      + (f", {b['ratio_joules']:.3f}x the energy" if b["ratio_joules"] is not None else
                         " (energy ratio unavailable)") + " (below 1: figurine is faster)"]
        if c.get("notes"):
            lines += [""] + [f"- note: {n}" for n in c["notes"]]
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> None:
    """Energy (or, when unavailable, latency) per image against identity score, a point per config."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    configs = report["configs"]
    energy = all(c["summary"]["gpu_joules_gross_median"] is not None for c in configs)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    if energy:
        xs = [c["summary"]["gpu_joules_gross_median"] for c in configs]
        ax.set_xlabel("GPU energy per image, J (median)")
        title = "figurine bench: energy per image vs identity score"
    else:
        xs = [c["summary"]["seconds_median"] for c in configs]
        why = next((c["summary"]["reasons"].get("gpu_joules_gross") for c in configs
                    if c["summary"]["gpu_joules_gross_median"] is None), "unavailable")
        ax.set_xlabel("seconds per image (median) - energy unavailable")
        title = f"latency per image vs identity score (energy unavailable:\n{why[:90]})"
    scores = [c["summary"]["identity_score_median"] for c in configs]
    known = [s for s in scores if s is not None]
    floor = (min(known) - 0.1) if known else 0.0
    for c, x, y in zip(configs, xs, scores):
        if y is None:
            ax.scatter([x], [floor], marker="x", color="grey")
            ax.annotate(f"{c['name']}: no identity score\n({c['summary']['reasons'].get('identity_score', NO_FACE)[:70]})",
                        (x, floor), textcoords="offset points", xytext=(6, 6), fontsize=7, color="grey")
        else:
            ax.scatter([x], [y])
            ax.annotate(c["name"], (x, y), textcoords="offset points", xytext=(6, 6), fontsize=8)
    ax.set_ylabel("identity score (ArcFace cosine, median)")
    if not known:
        ax.set_yticks([])
        ax.set_ylabel("identity score: none (see labels)")
    ax.set_title(title, fontsize=9)
    ax.margins(0.25)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


def write_outputs(report: dict, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    write_csv(report, out / "bench.csv")
    (out / "bench.md").write_text(markdown(report))
    plot(report, out / "bench.png")
    return [out / f for f in OUTPUTS]


# ---------------------------------------------------------------------------------------------
# 5. The whole bench


def run_bench(opts: BenchOptions) -> dict:
    """Check everything, bench each configuration in turn, write the four outputs."""
    from figurine import __version__, sysinfo

    plan = check(opts)
    report = {
        "format": "figurine-bench/1",
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": opts.command,
        "options": {"configs": [str(p) for p in opts.configs], "photos": str(opts.photos), "runs": opts.runs,
                    "warmup": opts.warmup, "random_weights": opts.random_weights,
                    "weights": str(opts.weights) if opts.weights else None, "overrides": opts.overrides,
                    "accessories": opts.accessories, "arch": str(opts.arch) if opts.arch else None,
                    "bare": opts.bare},
        "photos": [name for name, _ in plan.photos],
        "sysinfo": sysinfo.collect(),
        "versions": {"figurine": __version__},
        "configs": [],
    }
    report["versions"].update(report["sysinfo"]["versions"])
    for name, file, cfg, text in plan.configs:
        report["configs"].append(bench_config(name, file, cfg, text, plan, opts))
    write_outputs(report, opts.out)
    return report

