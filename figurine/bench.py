"""figurine bench: the same photos through several configurations, measured side by side.

    figurine bench --config configs/bench-30step.toml --config configs/bench-4step.toml \\
        --photos photos/ --runs 3 --rounds 2 --warmup 1 --out bench-out/
    figurine bench --config bench-30step --random-weights --out bench-out/   # nothing to download

    from figurine.bench import BenchOptions, run_bench
    report = run_bench(BenchOptions(configs=[Path("tiny")], photos=Path("photos"),
                                    out=Path("bench-out"), runs=1, rounds=1, warmup=0, weights=Path("w")))

A benchmark image IS a `figurine make` call: each image is one `FigurinePipeline.__call__` on one
photo, with a fresh run directory (nothing reused) and the package written to a temporary folder,
so identity, pose, generation, VAE decode, scoring, accessories, cut-outs, packaging and writing
the outputs are measured exactly as `make` runs them. The pipeline's stage hook gives each
stage's time and energy window (synchronised with the GPU at both ends) and its peak VRAM
(`torch.cuda.max_memory_allocated`, reset when the stage starts).

Each --config is ONE configuration to compare, laid over figurine's defaults (unlike `make`, where
several --config files layer into one; a shipped config may be named, `--config tiny`); --set
overrides apply to every configuration. Per configuration:

1. load: the models once, in their own energy window (reported apart). With --random-weights the
   full-size SDXL + ControlNet + FaceID is built from configs/arch with random weights
   (figurine.random_weights) and handed to the pipeline (`Generator.from_components`); without
   an insightface pack the pipeline gets an analyser on the synthetic test pack
   (figurine.tiny.insightface) and the photo is the drawn test face (figurine.tiny.photos): the
   identity stage's time, the identity score and the face width are then not representative.
2. warm-up: `warmup` bare-diffusers images, then `warmup` figurine images, not measured.
3. baseline "before": the GPU's idle power, settle then measure (energy.settle_seconds,
   energy.baseline_seconds), by the meter's measure_baseline, the method `make` uses. Inside the
   pipeline calls the baseline is off (energy.measure_idle = false for the calls only): it is
   measured here, around the measured images, not twice inside every image.
4. measured rounds: `rounds` times a block of bare-diffusers images (with --random-weights), then
   a block of figurine images. A block is `runs` images of each photo inside ONE energy window;
   per-image energy is the blocks' energy divided by the images in them, as the ML.ENERGY
   benchmark measures diffusion models. Blocks alternate so that the GPU warming up does not
   favour one side; every image also has its own nested window, with the GPU's temperature and
   SM/memory clocks at its start and end. --cooldown S waits S seconds before each block.
5. baseline "after"; net energy ("above measured baseline") is computed once, on the totals.
6. evaluation, not timed: each figure's identity score (the pipeline's), the width in pixels of
   the face detected on the generated figure (figurine.face), the pose error (keypoints read off
   the figure against the preset's; only with annotator weights), and how far the bare call's
   picture is from figurine's for the same seed (it does the same work, so it should be close).

Headline figures per configuration: s/package, J/package (the whole call), J/figure (generation +
VAE decode, per figure: the pipeline's own record["energy"]["figure"] windows), load apart, peak
VRAM, identity score, face width. The bare call (StableDiffusionXLControlNetPipeline on the same
modules, same prompts, control image, face embedding, seed and settings, decoded by diffusers) is
compared with figurine's generation + decode.

Outputs in --out: bench.json (everything, raw: exact configs, command, device identity from
meter.describe() without the GPU's UUID, baseline method, window resolution), bench.csv (one row
per measured image), bench.md (tables), bench.png (energy per package against identity score).
Nothing unavailable is written as 0: it is null with its reason (JSON), an empty cell with
"unavailable: <reason>" in `notes` (CSV), or "unavailable: <reason>" (markdown, plot).
"""

from __future__ import annotations

import contextlib
import copy
import csv
import datetime as dt
import io
import json
import logging
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from figurine.config import Config
from figurine.errors import InputError, OutputExistsError

log = logging.getLogger(__name__)

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
OUTPUTS = ("bench.json", "bench.csv", "bench.md", "bench.png")
DEFAULT_ACCESSORIES = ("a coffee mug", "a laptop")
BENCH_NAME, BENCH_TAGLINE = "Bench Mark", "Benchmark Pilot"
TEST_FACE = "drawn-test-face.jpg"
FIGURE_STAGES = ("generation", "vae_decode")  # J/figure, as the pipeline's energy record counts it
OUTSIDE = "outside stages"  # a call's time outside every stage window: inputs, run directory, outputs
NO_CUDA = "unavailable: no CUDA (peak VRAM is torch.cuda.max_memory_allocated)"
NO_FACE = "no face detected on the figure"
SYNTHETIC_NOTE = ("identity: no insightface pack, so the pipeline's analyser runs on the synthetic "
                  "test pack (figurine.tiny.insightface) and the photo is the drawn test face: the "
                  "identity stage's time, the identity score and the face width are not representative")
CALL_SETTINGS = {"energy.measure_idle": "false inside each pipeline call: bench measures the baselines "
                 "(same method, energy.settle_seconds and energy.baseline_seconds) before and after the "
                 "measured rounds, not twice inside every image"}
GIB = 2**30


@dataclass
class BenchOptions:
    configs: list[Path]
    out: Path
    photos: Path | None = None
    runs: int = 3      # images of each photo in one block (one energy window)
    rounds: int = 2    # how many times the bare and figurine blocks alternate
    warmup: int = 1    # unmeasured images of each kind first
    cooldown: float = 0.0  # idle seconds before each measured block
    random_weights: bool = False
    weights: Path | None = None
    overrides: list[str] = field(default_factory=list)
    accessories: list[str] = field(default_factory=lambda: list(DEFAULT_ACCESSORIES))
    arch: Path | None = None  # None: configs/arch (full size)
    bare: bool = True  # with random_weights: measure the bare diffusers call too
    force: bool = False
    verbose: bool = False  # show what each pipeline call prints
    command: list[str] = field(default_factory=list)


@dataclass
class Setup:
    """One configuration, checked: its name, file, resolved settings and the file's own text."""

    name: str
    file: Path
    cfg: Config
    text: str
    synthetic: bool  # no insightface pack (random weights only): the synthetic test pack is used


@dataclass
class Plan:
    """Everything checked before any model loads."""

    configs: list[Setup]
    photos: list[tuple[str, bytes]]  # name, the file's bytes (the pipeline decodes them)
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# 1. Inputs


def check(opts: BenchOptions, tmp: Path) -> Plan:
    """Every argument, config file and photo, before any model loads: the pipeline's own
    check_inputs runs on each configuration with each photo."""
    from figurine.config import load_config, read_toml
    from figurine.data import config_file
    from figurine.photo import read_bytes
    from figurine.pipeline import FigurinePipeline

    # 1. Numbers and texts.
    if not opts.configs:
        raise InputError("give at least one --config FILE (each one is a configuration to compare)")
    for what, value, low in (("--runs", opts.runs, 1), ("--rounds", opts.rounds, 1), ("--warmup", opts.warmup, 0)):
        if value < low:
            raise InputError(f"{what} must be at least {low}, got {value}")
    if not 0 <= opts.cooldown <= 3600:
        raise InputError(f"--cooldown must be 0 to 3600 seconds, got {opts.cooldown:g}")
    for text in opts.accessories:
        if not text.strip():
            raise InputError("an --accessory needs a description")
    # 2. Configurations: each file over the defaults, on its own.
    configs, names = [], set()
    for given in opts.configs:
        path = config_file(given)
        if not path.is_file():
            read_toml(path)  # raises the one-line "config file not found"
        cfg = load_config([path], opts.overrides, opts.weights)
        pack = cfg.path("model.insightface")
        name = path.stem
        while name in names:
            name += "'"
        names.add(name)
        configs.append(Setup(name, path, cfg, path.read_text(), opts.random_weights and not (pack and pack.is_dir())))
    # 3. Photos: the user's, or the drawn test face when the synthetic face pack is in use.
    notes = []
    if any(s.synthetic for s in configs):
        from figurine.tiny.photos import make_face_photo

        files = [make_face_photo(tmp / TEST_FACE)]
        notes.append(SYNTHETIC_NOTE + (f"; --photos {opts.photos} not used (the synthetic pack finds only "
                                       "the drawn face)" if opts.photos else ""))
    elif opts.photos is None:
        raise InputError("--photos DIR is required (with --random-weights and no insightface pack, "
                         "a drawn test face is used instead)")
    elif Path(opts.photos).is_file():
        files = [Path(opts.photos)]
    elif Path(opts.photos).is_dir():
        files = sorted(p for p in Path(opts.photos).iterdir() if p.suffix.lower() in PHOTO_SUFFIXES and p.is_file())
        if not files:
            raise InputError(f"no photos in {opts.photos} (looked for {', '.join(PHOTO_SUFFIXES)} files)")
    else:
        raise InputError(f"--photos {opts.photos}: no such folder")
    photos = [(p.name, read_bytes(p, str(p))) for p in files]
    # 4. The outputs.
    if opts.out.exists() and not opts.out.is_dir():
        raise InputError(f"--out {opts.out} exists and is not a folder")
    existing = [opts.out / f for f in OUTPUTS if (opts.out / f).exists()]
    if existing and not opts.force:
        raise OutputExistsError(f"{existing[0]} exists; use --force to overwrite the bench outputs")
    # 5. Each request as the pipeline sees it (names, texts, accessories against accessories.max,
    #    template, photo decoding), with no model loaded.
    for setup in configs:
        for photo in photos:
            FigurinePipeline(setup.cfg).check_inputs(bench_request(photo, opts.accessories, 0, tmp / "check"))
    return Plan(configs, photos, notes)


def bench_request(photo: tuple[str, bytes], accessories: list[str], seed: int, stem: Path):
    """The Request of one benchmark image: what `figurine make` gets, with a fresh run directory."""
    from figurine.request import Photo, Request

    return Request(photos=[Photo(*photo)], name=BENCH_NAME, tagline=BENCH_TAGLINE, accessories=list(accessories),
                   seed=seed, output=stem.with_suffix(".png"), run_dir=stem.with_suffix(".run"), force=True)


# ---------------------------------------------------------------------------------------------
# 2. Measuring


class StageRecorder:
    """The pipeline hook: each stage's time and energy window, and its peak VRAM."""

    def __init__(self, cuda: bool):
        self.cuda = cuda
        self.stages: dict = {}

    def take(self) -> dict:
        stages, self.stages = self.stages, {}
        return stages

    def __call__(self, stage: str, event: str, info: dict) -> None:
        import torch

        if event == "started":
            if self.cuda:
                torch.cuda.reset_peak_memory_stats()
            return
        s = self.stages.setdefault(stage, {"seconds": 0.0, "calls": 0, "readings": [], "peak_vram_bytes": None})
        s["seconds"] += info["seconds"]
        s["calls"] += 1
        s["readings"].append(info["energy"])
        if self.cuda:
            s["peak_vram_bytes"] = max(s["peak_vram_bytes"] or 0, torch.cuda.max_memory_allocated())


@dataclass
class BenchImage:
    """One measured image (a pipeline call, or a bare diffusers call) before it is reported."""

    kind: str  # "figurine" or "bare"
    round: int  # -1: warm-up
    photo: str
    run: int
    seed: int
    reading: object  # its own energy window
    state_start: dict
    stages: dict = field(default_factory=dict)
    peak_vram_bytes: int | None = None
    result: object = None  # figurine: the pipeline's Result
    picture: object = None  # bare: the decoded picture (compared with figurine's)


class ConfigBench:
    """One configuration: its pipeline, loaded once, its meter, and the images measured on them."""

    def __init__(self, setup: Setup, opts: BenchOptions, plan: Plan, tmp: Path):
        from figurine.pipeline import FigurinePipeline

        self.setup, self.cfg, self.opts, self.plan, self.tmp = setup, setup.cfg, opts, plan, tmp
        # The pipeline's settings: the config, with the baselines left to the bench (CALL_SETTINGS).
        self.call_cfg = copy.deepcopy(setup.cfg)
        self.call_cfg.energy.measure_idle = False
        # The meter make's pipeline builds for this config (the GPU the models run on), with the
        # config's own baseline setting.
        self.meter = FigurinePipeline(setup.cfg).new_meter()
        self.cuda = False  # known once the models are placed (load)
        self.recorder = StageRecorder(self.cuda)
        self.pipe = None
        self.notes: list[str] = list(plan.notes) if setup.synthetic else []
        self.count = 0

    # -- loading ------------------------------------------------------------------------------
    def load(self) -> dict:
        """The models, in their own window: built with random weights, or the pipeline's own loading."""
        from figurine.pipeline import FigurinePipeline

        cfg = self.call_cfg
        with self.meter.window("load") as w:
            generator = analyzer = None
            if self.opts.random_weights:
                from figurine import random_weights
                from figurine.generate import Generator, choose_runtime

                runtime = choose_runtime(cfg)
                arch = self.opts.arch or random_weights.ARCH_DIR
                if runtime.device == "cpu" and Path(arch).resolve() == random_weights.ARCH_DIR.resolve():
                    self.notes.append("full-size random weights on the CPU: expect many minutes per image")
                    log.warning(self.notes[-1])
                pipe = random_weights.build_pipeline(cfg, runtime, arch_dir=arch, seed=max(cfg.generation.seed, 0))
                generator = Generator.from_components(cfg, pipe, runtime)
            if self.setup.synthetic:
                from figurine.face import FaceAnalyzer
                from figurine.tiny.insightface import write_pack

                pack = write_pack(self.tmp / f"insightface-{self.setup.name}")
                analyzer = FaceAnalyzer(pack, det_size=cfg.face.det_size, det_thresh=cfg.face.det_thresh)
            self.pipe = FigurinePipeline(cfg, generator=generator, analyzer=analyzer, hooks=[self.recorder])
            gen = self.pipe.generator()
            self.pipe.analyzer()
            self.pipe.matter()
        self.notes += gen.runtime.notes
        self.cuda = self.recorder.cuda = gen.runtime.device == "cuda"
        return {"seconds": w.result.seconds, "energy": w.result.to_dict(),
                "compile_seconds": getattr(gen, "compile_seconds", None),
                "fused_layers": getattr(gen, "fused_layers", None)}

    # -- one image ----------------------------------------------------------------------------
    def _stem(self, kind: str) -> Path:
        self.count += 1
        return self.tmp / f"{self.setup.name}-{kind}-{self.count}"

    def _reset_vram(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.reset_peak_memory_stats()

    def _sync(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize()

    def figurine(self, photo: tuple[str, bytes], rnd: int, run: int, seed: int) -> BenchImage:
        """One `figurine make` call on the photo, in its own window."""
        req = bench_request(photo, self.opts.accessories, seed, self._stem("figurine"))
        self.recorder.take()
        state = self.meter.device_state()
        with self.meter.window("package") as w, self._quiet():
            result = self.pipe(req)
        stages = self.recorder.take()
        peaks = [s["peak_vram_bytes"] for s in stages.values() if s["peak_vram_bytes"] is not None]
        return BenchImage("figurine", rnd, photo[0], run, seed, w.result, state, stages,
                          max(peaks) if peaks else None, result=result)

    def bare_inputs(self, photo: tuple[str, bytes]) -> dict:
        """What figurine's figure stage feeds the diffusion pipeline for this photo, from the
        same functions: prompts, the pose's control image, the face embedding."""
        from figurine import prompt
        from figurine.face import pick
        from figurine.pipeline import mean_embedding
        from figurine.pose import load_preset, render_pose

        cfg, g, p = self.call_cfg, self.call_cfg.generation, self.call_cfg.prompt
        plan = self.pipe.check_inputs(bench_request(photo, self.opts.accessories, 0, self._stem("inputs")))
        face = pick(self.pipe.analyzer().faces(plan.photos[0]), plan.face_index, label=photo[0])
        prompts = prompt.build_prompts(BENCH_NAME, tagline=BENCH_TAGLINE, outfit=p.outfit,
                                       accessories=self.opts.accessories, style=p.style, extra=p.extra,
                                       negative=p.negative)
        control = render_pose(load_preset(plan.pose), g.width, g.height, cfg.pose.limb_width, cfg.pose.point_radius)
        return {"prompt": prompts.figure, "negative": prompts.figure_negative, "control": control,
                "embedding": mean_embedding([face.embedding])}

    def bare(self, photo_name: str, inputs: dict, rnd: int, run: int, seed: int) -> BenchImage:
        """The same figure as one bare diffusers call (denoise + decode) on the same modules."""
        import torch

        g, gen = self.call_cfg.generation, self.pipe.generator()
        emb = torch.as_tensor(inputs["embedding"], dtype=torch.float32).reshape(1, 1, 1, 512)
        emb = torch.cat([torch.zeros_like(emb), emb]) if g.guidance > 1 else emb
        emb = emb.to(device=gen.runtime.device, dtype=gen.runtime.dtype)
        gen.pipe.set_ip_adapter_scale(g.ip_adapter_scale)
        self._reset_vram()
        state = self.meter.device_state()
        with self.meter.window("bare") as w:
            picture = gen.pipe(
                prompt=inputs["prompt"], negative_prompt=inputs["negative"], image=inputs["control"],
                ip_adapter_image_embeds=[emb], controlnet_conditioning_scale=g.controlnet_scale,
                num_inference_steps=g.steps, guidance_scale=g.guidance, width=g.width, height=g.height,
                generator=torch.Generator("cpu").manual_seed(seed)).images[0]
        peak = torch.cuda.max_memory_allocated() if self.cuda else None
        return BenchImage("bare", rnd, photo_name, run, seed, w.result, state, peak_vram_bytes=peak, picture=picture)

    def _quiet(self):
        """A pipeline call prints its candidates' scores; the bench prints its own lines."""
        return contextlib.nullcontext() if self.opts.verbose else contextlib.redirect_stdout(io.StringIO())

    # -- blocks -------------------------------------------------------------------------------
    def block(self, kind: str, rnd: int, make) -> tuple[dict, list[BenchImage]]:
        """`runs` images of every photo inside one energy window (after the cooldown)."""
        if self.opts.cooldown:
            self._sync()
            time.sleep(self.opts.cooldown)
        state = self.meter.device_state()
        jobs = [(photo, run) for run in range(self.opts.runs) for photo in self.plan.photos]
        with self.meter.window(kind, images=len(jobs)) as w:
            images = [make(photo, run) for photo, run in jobs]
        return {"kind": kind, "round": rnd, "images": len(jobs), "cooldown_s": self.opts.cooldown,
                "gpu_state_start": state, "_reading": w.result}, images


def bench_config(setup: Setup, plan: Plan, opts: BenchOptions, tmp: Path) -> dict:
    """Load one configuration, warm up, measure alternating blocks between two baselines."""
    cb = ConfigBench(setup, opts, plan, tmp)
    e, g = setup.cfg.energy, setup.cfg.generation
    base = max(g.seed, 0)
    weights = "random full-size weights" if opts.random_weights else "the weights root"
    print(f"[{setup.name}] loading ({weights})", flush=True)
    try:
        load = cb.load()
        bare = opts.random_weights and opts.bare
        inputs = {name: cb.bare_inputs((name, data)) for name, data in plan.photos} if bare else {}

        def one_figurine(rnd):
            return lambda photo, run: cb.figurine(photo, rnd, run, base + run)

        def one_bare(rnd):
            return lambda photo, run: cb.bare(photo[0], inputs[photo[0]], rnd, run, base + run)

        # Warm-up: bare, then figurine (each kept in the JSON: torch.compile compiles in the first).
        warm = []
        for make in ([one_bare(-1)] if bare else []) + [one_figurine(-1)]:
            for i in range(opts.warmup):
                photo = plan.photos[i % len(plan.photos)]
                warm.append(make(photo, 0))
        # Measured rounds between the two baselines.
        cb.meter.measure_baseline(e.settle_seconds, e.baseline_seconds, label="before")
        blocks, images = [], []
        for rnd in range(opts.rounds):
            for kind, make in ([("bare", one_bare(rnd))] if bare else []) + [("figurine", one_figurine(rnd))]:
                block, made = cb.block(kind, rnd, make)
                blocks.append(block)
                images += made
                print(f"[{setup.name}] round {rnd + 1}/{opts.rounds}, {kind}: {block['images']} image(s) in "
                      f"{block['_reading'].seconds:.2f} s", flush=True)
        cb.meter.measure_baseline(e.settle_seconds, e.baseline_seconds, label="after")
        return report_config(cb, load, warm, blocks, images)
    finally:
        cb.meter.close()
        del cb
        _free_memory()


def _free_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# ---------------------------------------------------------------------------------------------
# 3. Evaluation (not timed) and the report of one configuration


def evaluate(cb: ConfigBench, image: BenchImage, bare: BenchImage | None) -> dict:
    """Identity score (the pipeline's), face width on the figure, pose error, bare vs figurine."""
    import numpy as np

    from figurine.rundir import RunDir

    fig = image.result.record["stages"]["figure"]
    picture = RunDir(image.result.run_dir).open_image(fig["files"][fig["best"]], "the figure", rgba=False)
    out: dict = {"identity_score": fig["scores"][fig["best"]], "reasons": {}}
    if out["identity_score"] is None:
        out["reasons"]["identity_score"] = NO_FACE
    faces = cb.pipe.analyzer().faces(picture)
    if faces:
        x0, _, x1, _ = max(faces, key=lambda f: f.area).box
        out["face_width_px"] = round(x1 - x0, 1)
    else:
        out["face_width_px"] = None
        out["reasons"]["face_width_px"] = NO_FACE
    out["pose_error"], why = pose_error(cb.cfg, picture)
    if why:
        out["reasons"]["pose_error"] = why
    if bare is not None:
        a = np.asarray(picture.convert("RGB"), dtype=np.float32)
        b = np.asarray(bare.picture.convert("RGB"), dtype=np.float32)
        out["bare_pixel_difference"] = float(np.abs(a - b).mean()) if a.shape == b.shape else None
        if a.shape != b.shape:
            out["reasons"]["bare_pixel_difference"] = f"sizes differ: {a.shape} vs {b.shape}"
    return out


def pose_error(cfg: Config, figure) -> tuple[float | None, str | None]:
    """Mean keypoint distance, figure vs preset, as a fraction of the preset figure's height."""
    import math

    from figurine.errors import InputError as NoPerson
    from figurine.pose import BODY_WEIGHTS, load_preset, pose_from_image, pose_to_pixels

    folder = cfg.path("model.annotators")
    if folder is None or not (folder / BODY_WEIGHTS).is_file():
        where = folder / BODY_WEIGHTS if folder else "model.annotators unset"
        return None, f"unavailable: no annotator weights ({where})"
    w, h = figure.size
    try:
        found = pose_from_image(figure, folder)
    except NoPerson:
        return None, "no person detected on the figure"
    want = pose_to_pixels(load_preset(cfg.pose.preset), w, h)
    got = [None if p is None else (p[0] * w, p[1] * h) for p in found.keypoints]
    pairs = [(a, b) for a, b in zip(want, got) if a is not None and b is not None]
    if not pairs:
        return None, "no keypoint found on the figure matches the preset's"
    ys = [p[1] for p in want if p is not None]
    height = max(max(ys) - min(ys), 1.0)
    return sum(math.dist(a, b) for a, b in pairs) / len(pairs) / height, None


def image_row(cb: ConfigBench, image: BenchImage, evaluation: dict | None) -> dict:
    """One image as bench.json keeps it; energies recomputed on the final baseline."""
    m = cb.meter
    row = {"kind": image.kind, "round": image.round, "photo": image.photo, "run": image.run, "seed": image.seed,
           "seconds": image.reading.seconds, "energy": m.combine(image.kind, [image.reading]).to_dict(),
           "gpu_state_start": image.state_start, "gpu_state_end": image.reading.gpu_state,
           "peak_vram_bytes": image.peak_vram_bytes, "reasons": {}}
    if image.peak_vram_bytes is None:
        row["reasons"]["peak_vram"] = NO_CUDA
    if image.state_start is not None and image.reading.gpu_state is None:
        row["reasons"]["gpu_state_end"] = m.gpu_reason or "no GPU"
    if image.kind == "figurine":
        stages = {name: {"seconds": s["seconds"], "calls": s["calls"], "peak_vram_bytes": s["peak_vram_bytes"],
                         "energy": m.combine(name, s["readings"]).to_dict()} for name, s in image.stages.items()}
        row["stages"] = stages
        row["outside_stages_seconds"] = max(0.0, image.reading.seconds - sum(s["seconds"] for s in stages.values()))
        candidates = image.result.record["resolved"]["candidates"]
        row["figure"] = m.combine("figure", figure_readings([image]), images=candidates).to_dict()
        row["candidates"] = candidates
        row.update({k: v for k, v in (evaluation or {}).items() if k != "reasons"})
        row["reasons"].update((evaluation or {}).get("reasons", {}))
    return row


def figure_readings(images: list[BenchImage]) -> list:
    return [r for im in images for stage in FIGURE_STAGES for r in im.stages.get(stage, {}).get("readings", [])]


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def report_config(cb: ConfigBench, load: dict, warm: list[BenchImage], blocks: list[dict],
                  images: list[BenchImage]) -> dict:
    """Everything raw for one configuration, then its summary."""
    setup, m = cb.setup, cb.meter
    gen = cb.pipe.generator()
    figs = [im for im in images if im.kind == "figurine"]
    bares = {(im.round, im.photo, im.run): im for im in images if im.kind == "bare"}
    rows = [image_row(cb, im, evaluate(cb, im, bares.get((im.round, im.photo, im.run)))) for im in figs]
    resolved = setup.cfg.to_dict()
    resolved.pop("weights_root", None)  # an absolute path: not in a file meant to be shared
    resolved.pop("sources", None)
    result = {
        "name": setup.name, "file": str(setup.file), "toml": setup.text, "resolved_toml": to_toml(resolved),
        "call_settings": CALL_SETTINGS,
        "runtime": {"device": gen.runtime.device, "dtype": str(gen.runtime.dtype).replace("torch.", ""),
                    "memory": gen.runtime.memory},
        "random_weights": cb.opts.random_weights, "synthetic_face_pack": setup.synthetic,
        "load": load,
        "warmup": [image_row(cb, im, None) for im in warm],
        "blocks": [{**{k: v for k, v in b.items() if k != "_reading"}, "energy": b["_reading"].to_dict()}
                   for b in blocks],
        "images": rows,
        "bare": [image_row(cb, im, None) for im in images if im.kind == "bare"],
        "meter": m.describe(),  # device identity (no UUID), source, resolution, baselines
        "notes": cb.notes + [n for n in {r["reasons"].get("pose_error") for r in rows} if n],
    }
    result["summary"] = summarise(cb, result, blocks, figs)
    return result


def summarise(cb: ConfigBench, result: dict, blocks: list[dict], figs: list[BenchImage]) -> dict:
    """Per image over all measured images: each block one window, the windows added, divided by
    the images in them (ML.ENERGY's method); net once on the totals."""
    m, rows = cb.meter, result["images"]
    n = len(rows)
    candidates = sum(r["candidates"] for r in rows)
    s: dict = {"images": n, "figures": candidates, "windows": sum(1 for b in blocks if b["kind"] == "figurine")}
    s["package"] = m.combine("package", [b["_reading"] for b in blocks if b["kind"] == "figurine"], images=n).to_dict()
    s["figure"] = m.combine("figure", figure_readings(figs), images=candidates).to_dict()
    s["seconds_per_package"] = s["package"]["per_image"]["seconds"]
    s["seconds_median"] = _median(r["seconds"] for r in rows)
    s["stages"] = {}
    names = list(dict.fromkeys(name for r in rows for name in r["stages"]))
    for name in names:
        got = [im.stages[name] for im in figs if name in im.stages]
        s["stages"][name] = {
            "seconds_per_image": sum(g["seconds"] for g in got) / n,
            "seconds_median": _median(g["seconds"] for g in got),
            "energy": m.combine(name, [r for g in got for r in g["readings"]], images=n).to_dict(),
            "peak_vram_bytes": max((g["peak_vram_bytes"] for g in got if g["peak_vram_bytes"] is not None),
                                   default=None)}
    s["outside_stages_seconds_per_image"] = sum(r["outside_stages_seconds"] for r in rows) / n
    peaks = [r["peak_vram_bytes"] for r in rows if r["peak_vram_bytes"] is not None]
    s["peak_vram_bytes"] = max(peaks) if peaks else None
    s["reasons"] = {} if peaks else {"peak_vram": NO_CUDA}
    for key in ("identity_score", "face_width_px", "pose_error"):
        s[f"{key}_median"] = _median(r[key] for r in rows)
        if s[f"{key}_median"] is None:
            s["reasons"][key] = next((r["reasons"][key] for r in rows if key in r["reasons"]), "unavailable")
    s["identity_no_face"] = sum(1 for r in rows if r["identity_score"] is None)
    bare = [b for b in blocks if b["kind"] == "bare"]
    if bare:
        nb = sum(b["images"] for b in bare)
        b = {"images": nb, "per_image": m.combine("bare", [x["_reading"] for x in bare], images=nb).to_dict(),
             "peak_vram_bytes": max((x["peak_vram_bytes"] for x in result["bare"]
                                     if x["peak_vram_bytes"] is not None), default=None),
             "pixel_difference_max": max((r.get("bare_pixel_difference") for r in rows
                                          if r.get("bare_pixel_difference") is not None), default=None)}
        bs, fs = b["per_image"]["per_image"]["seconds"], s["figure"]["per_image"]["seconds"]
        b["ratio_seconds"] = fs / bs if bs else None
        bj, fj = b["per_image"]["per_image"]["gpu_joules_gross"], s["figure"]["per_image"]["gpu_joules_gross"]
        b["ratio_joules"] = fj / bj if bj and fj is not None else None
        if b["ratio_joules"] is None:
            b["reasons"] = {"ratio_joules": "unavailable: " + (
                s["figure"]["reasons"].get("gpu_joules_gross") if fj is None else
                b["per_image"]["reasons"].get("gpu_joules_gross", "no bare energy"))}
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


def unavailable(why: str | None) -> str:
    why = why or "no reason recorded"
    return why if why.startswith("unavailable") else f"unavailable: {why}"


def joules(reading: dict | None, key: str = "gpu_joules_gross", per_image: bool = True) -> str:
    """A reading's energy (per image) as "412 J", or "unavailable: <reason>"; never a bare 0."""
    if reading is None:
        return unavailable("not measured")
    v = (reading.get("per_image") or {}).get(key) if per_image else reading.get(key)
    return f"{v:.4g} J" if v is not None else unavailable(reading["reasons"].get(key))


def _or(value, why: str | None, fmt) -> str:
    return fmt(value) if value is not None else unavailable(why)


def _gib(v) -> float | None:
    return None if v is None else v / GIB


def _state(state: dict | None, key: str) -> str:
    if not state:
        return "unavailable: not read"
    return str(state[key]) if state.get(key) is not None else unavailable(state.get("reasons", {}).get(key))


STAGE_COLUMNS = ("identity", "pose", "generation", "vae_decode", "identity_score", "accessories", "matte", "packaging")
CSV_FIELDS = ["config", "kind", "round", "photo", "run", "seed", "seconds", *[f"{s}_s" for s in STAGE_COLUMNS],
              "outside_stages_s", "gpu_joules_gross", "gpu_joules_net", "cpu_joules", "figure_seconds",
              "figure_gpu_joules_gross", "peak_vram_gib", "temperature_start_c", "temperature_end_c",
              "sm_clock_mhz", "mem_clock_mhz", "identity_score", "face_width_px", "pose_error",
              "bare_pixel_difference", "notes"]


def csv_text(report: dict) -> str:
    """bench.csv: one row per measured image (bare and figurine, in the order they ran); an unavailable
    value is an empty cell and "field: unavailable: <reason>" in notes."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    for c in report["configs"]:
        rows = sorted(c["bare"] + c["images"], key=lambda r: (r["round"], r["kind"] != "bare", r["run"], r["photo"]))
        for r in rows:
            e, start, end = r["energy"], r["gpu_state_start"] or {}, r["gpu_state_end"] or {}
            fig = r.get("figure") or {}
            row = {"config": c["name"], "kind": r["kind"], "round": r["round"], "photo": r["photo"], "run": r["run"],
                   "seed": r["seed"], "seconds": f"{r['seconds']:.4f}", "gpu_joules_gross": e["gpu_joules_gross"],
                   "gpu_joules_net": e["gpu_joules_net"], "cpu_joules": e["cpu_joules"],
                   "figure_seconds": fig.get("seconds"), "figure_gpu_joules_gross": fig.get("gpu_joules_gross"),
                   "peak_vram_gib": _gib(r["peak_vram_bytes"]), "temperature_start_c": start.get("temperature_c"),
                   "temperature_end_c": end.get("temperature_c"), "sm_clock_mhz": end.get("sm_clock_mhz"),
                   "mem_clock_mhz": end.get("mem_clock_mhz"), "identity_score": r.get("identity_score"),
                   "face_width_px": r.get("face_width_px"), "pose_error": r.get("pose_error"),
                   "bare_pixel_difference": r.get("bare_pixel_difference"),
                   "outside_stages_s": r.get("outside_stages_seconds")}
            for s in STAGE_COLUMNS:
                row[f"{s}_s"] = r["stages"][s]["seconds"] if s in r.get("stages", {}) else None
            notes = {k: unavailable(v) for k, v in r["reasons"].items()}
            for k in ("gpu_joules_gross", "gpu_joules_net", "cpu_joules"):
                if e[k] is None:
                    notes[k] = unavailable(e["reasons"].get(k))
            if fig and fig.get("gpu_joules_gross") is None:
                notes["figure_gpu_joules_gross"] = unavailable(fig["reasons"].get("gpu_joules_gross"))
            for key, state, field_ in (("temperature_start_c", start, "temperature_c"),
                                       ("temperature_end_c", end, "temperature_c"), ("clocks", end, "sm_clock_mhz")):
                if state.get(field_) is None:
                    why = (state.get("reasons") or {}).get(field_) or r["reasons"].get("gpu_state_end")
                    notes[key] = unavailable(why)
            w.writerow({k: "" if v is None else v for k, v in row.items()} | {
                "notes": "; ".join(f"{k}: {v}" for k, v in notes.items())})
    return buf.getvalue()


def _weights_line(o: dict) -> str:
    if o["random_weights"]:
        return f"random, architecture from {o['arch'] or 'configs/arch (full-size SDXL + ControlNet + FaceID)'}"
    return f"from {o['weights'] or 'the default weights root'}"


def markdown(report: dict) -> str:
    """bench.md: the method, a summary row per configuration, then each configuration's tables."""
    info, o = report["sysinfo"], report["options"]
    gpu = info.get("gpu_name") or unavailable(info["reasons"].get("gpu_name"))
    lines = [f"# figurine bench, {report['created'][:10]}", "",
             f"- GPU: {gpu}; driver {info.get('driver_version')}, power limit {info.get('power_limit_w')} W",
             f"- CPU: {info.get('cpu_model')}; python {info.get('python')}; "
             + ", ".join(f"{k} {v}" for k, v in info["versions"].items() if v),
             f"- weights: {_weights_line(o)}",
             f"- command: `{' '.join(report['command'])}`",
             f"- method: {report['method']['per_image']}",
             f"- baseline: {report['method']['baseline']}",
             f"- window resolution: {report['method']['window_resolution']}", "",
             "| config | images | s/package | J/package (GPU) | J/figure (GPU) | J/package above baseline "
             "| load | peak VRAM | identity score | face width | pose error |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in report["configs"]:
        s, why = c["summary"], c["summary"]["reasons"]
        ident = _or(s["identity_score_median"], why.get("identity_score"), lambda v: f"{v:.3f}")
        if s["identity_score_median"] is not None and s["identity_no_face"]:
            ident += f" ({s['identity_no_face']} with no face detected)"
        lines.append("| " + " | ".join([
            c["name"], str(s["images"]), f"{s['seconds_per_package']:.3f} s", joules(s["package"]),
            joules(s["figure"]), joules(s["package"], "gpu_joules_net"),
            f"{c['load']['seconds']:.1f} s, {joules(c['load']['energy'], per_image=False)}",
            _or(_gib(s["peak_vram_bytes"]), why.get("peak_vram"), lambda v: f"{v:.2f} GiB"), ident,
            _or(s["face_width_px_median"], why.get("face_width_px"), lambda v: f"{v:.0f} px"),
            _or(s["pose_error_median"], why.get("pose_error"), lambda v: f"{v:.3f}"),
        ]).replace("\n", " ") + " |")
    for c in report["configs"]:
        lines += config_markdown(c)
    return "\n".join(lines) + "\n"


def config_markdown(c: dict) -> list[str]:
    s, rt, load = c["summary"], c["runtime"], c["load"]
    lines = ["", f"## {c['name']} ({c['file']})", "",
             f"runtime: {rt['device']}, {rt['dtype']}, memory policy {rt['memory']}; load {load['seconds']:.1f} s "
             f"({joules(load['energy'], per_image=False)}, reported apart)"
             + (f"; torch.compile wrap {load['compile_seconds']:.1f} s (the compile itself runs in the first "
                "warm-up image: see warmup in bench.json)" if load.get("compile_seconds") else ""), "",
             f"Per image: {s['images']} package(s) ({s['figures']} figure(s)) in {s['windows']} window(s).", "",
             "| part | s/image | J/image GPU | J/image above baseline | peak VRAM |", "|---|---|---|---|---|"]

    def vram(v):
        return f"{_gib(v):.2f} GiB" if v is not None else NO_CUDA

    lines.append(f"| package (the whole call) | {s['seconds_per_package']:.4f} | {joules(s['package'])} | "
                 f"{joules(s['package'], 'gpu_joules_net')} | {vram(s['peak_vram_bytes'])} |")
    lines.append(f"| figure (generation + VAE decode, per figure) | {s['figure']['per_image']['seconds']:.4f} | "
                 f"{joules(s['figure'])} | {joules(s['figure'], 'gpu_joules_net')} | |")
    for name, st in s["stages"].items():
        lines.append(f"| {name} | {st['seconds_per_image']:.4f} | {joules(st['energy'])} | "
                     f"{joules(st['energy'], 'gpu_joules_net')} | {vram(st['peak_vram_bytes'])} |")
    lines.append(f"| {OUTSIDE} (inputs, run directory, outputs) | {s['outside_stages_seconds_per_image']:.4f} | | | |")
    b = s.get("bare")
    if b:
        ratio = (f"{b['ratio_seconds']:.3f}x the time" if b["ratio_seconds"] is not None
                 else "time ratio unavailable: the bare calls took no measurable time")
        energy = (f", {b['ratio_joules']:.3f}x the energy" if b["ratio_joules"] is not None
                  else f" ({b['reasons']['ratio_joules']} for the energy ratio)")
        diff = b["pixel_difference_max"]
        lines += ["", "| same work | s/image | J/image GPU | peak VRAM |", "|---|---|---|---|",
                  f"| bare diffusers call (denoise + decode) | {b['per_image']['per_image']['seconds']:.4f} | "
                  f"{joules(b['per_image'])} | {vram(b['peak_vram_bytes'])} |",
                  f"| figurine generation + VAE decode | {s['figure']['per_image']['seconds']:.4f} | "
                  f"{joules(s['figure'])} | |", "",
                  f"figurine / bare diffusers: {ratio}{energy} (below 1: figurine is faster). Largest mean "
                  "pixel difference between the two pictures of one seed: "
                  + (f"{diff:.2f} of 255." if diff is not None else unavailable(next(
                      (r["reasons"]["bare_pixel_difference"] for r in c["images"]
                       if "bare_pixel_difference" in r["reasons"]), "no pair measured")) + ".")]
    lines += ["", "| block | round | images | s | J GPU | temperature at start |", "|---|---|---|---|---|---|"]
    for blk in c["blocks"]:
        lines.append(f"| {blk['kind']} | {blk['round'] + 1} | {blk['images']} | {blk['energy']['seconds']:.3f} | "
                     f"{joules(blk['energy'], per_image=False)} | {_state(blk['gpu_state_start'], 'temperature_c')} |")
    lines += ["", "| image | round | photo | run | s | temperature start / end (C) | SM / memory clock (MHz) "
              "| identity score | face width |", "|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(c["bare"] + c["images"], key=lambda r: (r["round"], r["kind"] != "bare", r["run"], r["photo"])):
        end = r["gpu_state_end"]
        temps = (f"{_state(r['gpu_state_start'], 'temperature_c')} / {_state(end, 'temperature_c')}"
                 if end else unavailable(r["reasons"].get("gpu_state_end")))
        clocks = (f"{_state(end, 'sm_clock_mhz')} / {_state(end, 'mem_clock_mhz')}" if end
                  else unavailable(r["reasons"].get("gpu_state_end")))
        ident = (_or(r.get("identity_score"), r["reasons"].get("identity_score"), lambda v: f"{v:.3f}")
                 if r["kind"] == "figurine" else "")
        width = (_or(r.get("face_width_px"), r["reasons"].get("face_width_px"), lambda v: f"{v:.0f} px")
                 if r["kind"] == "figurine" else "")
        lines.append(f"| {r['kind']} | {r['round'] + 1} | {r['photo']} | {r['run']} | {r['seconds']:.3f} | {temps} | "
                     f"{clocks} | {ident} | {width} |")
    if c.get("notes"):
        lines += [""] + [f"- note: {n}" for n in c["notes"]]
    return lines


def plot(report: dict, path: Path) -> None:
    """Energy (or, when unavailable, time) per package against identity score, a point per config."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    configs = report["configs"]
    per = [c["summary"]["package"]["per_image"]["gpu_joules_gross"] for c in configs]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    if all(v is not None for v in per):
        xs = per
        ax.set_xlabel("GPU energy per package, J")
        title = "figurine bench: energy per package vs identity score"
    else:
        xs = [c["summary"]["seconds_per_package"] for c in configs]
        why = next(c["summary"]["package"]["reasons"].get("gpu_joules_gross")
                   for c, v in zip(configs, per) if v is None)
        ax.set_xlabel("seconds per package (energy unavailable)")
        title = f"time per package vs identity score\n(energy {unavailable(why)[:110]})"
    scores = [c["summary"]["identity_score_median"] for c in configs]
    known = [v for v in scores if v is not None]
    floor = (min(known) - 0.1) if known else 0.0
    for c, x, y in zip(configs, xs, scores):
        width = c["summary"]["face_width_px_median"]
        label = c["name"] + (f" (face {width:.0f} px)" if width is not None else "")
        if y is None:
            ax.scatter([x], [floor], marker="x", color="grey")
            why = unavailable(c["summary"]["reasons"].get("identity_score"))
            ax.annotate(f"{label}: identity score {why[:70]}", (x, floor), textcoords="offset points",
                        xytext=(6, 6), fontsize=7, color="grey")
        else:
            ax.scatter([x], [y])
            ax.annotate(label, (x, y), textcoords="offset points", xytext=(6, 6), fontsize=8)
    ax.set_ylabel("identity score (ArcFace cosine, median)")
    if not known:
        ax.set_yticks([])
        ax.set_ylabel("identity score unavailable (see labels)")
    ax.set_title(title, fontsize=9)
    ax.margins(0.25)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


def write_outputs(report: dict, out: Path) -> list[Path]:
    """The four files, each written whole (figurine.outputs.atomic_write)."""
    from figurine.outputs import atomic_write

    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report, indent=2, default=str) + "\n"
    atomic_write(out / "bench.json", lambda f: f.write(text.encode()), force=True)
    table = csv_text(report)
    atomic_write(out / "bench.csv", lambda f: f.write(table.encode()), force=True)
    md = markdown(report)
    atomic_write(out / "bench.md", lambda f: f.write(md.encode()), force=True)
    png = io.BytesIO()
    plot(report, png)
    atomic_write(out / "bench.png", lambda f: f.write(png.getvalue()), force=True)
    return [out / f for f in OUTPUTS]


# ---------------------------------------------------------------------------------------------
# 5. The whole bench

METHOD = {
    "per_image": ("each block of images is one energy window; per-image figures are the blocks' "
                  "windows added up and divided by the images in them (ML.ENERGY benchmark); "
                  "J/package is the whole `figurine make` call, J/figure its generation + VAE decode "
                  "windows per figure"),
    "alternation": "rounds of a bare-diffusers block then a figurine block, after a warm-up of each",
    "latency": "wall time between torch.cuda.synchronize() at both ends of each window",
    "vram": "torch.cuda.max_memory_allocated(), reset when each stage starts",
    "identity_score": "ArcFace cosine of the figure's face against the photo's (the pipeline's score)",
    "face_width": "width in pixels of the largest face figurine.face detects on the generated figure",
}


def run_bench(opts: BenchOptions) -> dict:
    """Check everything, bench each configuration in turn, write the four outputs."""
    from figurine import __version__, sysinfo

    with tempfile.TemporaryDirectory(prefix="figurine-bench-") as tmp_name:
        tmp = Path(tmp_name)
        plan = check(opts, tmp)
        report = {
            "format": "figurine-bench/2",
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "command": opts.command,
            "options": {"configs": [str(p) for p in opts.configs], "photos": str(opts.photos) if opts.photos else None,
                        "runs": opts.runs, "rounds": opts.rounds, "warmup": opts.warmup, "cooldown_s": opts.cooldown,
                        "random_weights": opts.random_weights, "weights": str(opts.weights) if opts.weights else None,
                        "overrides": opts.overrides, "accessories": opts.accessories,
                        "arch": str(opts.arch) if opts.arch else None, "bare": opts.random_weights and opts.bare},
            "photos": [name for name, _ in plan.photos],
            "configs": [],
        }
        for setup in plan.configs:
            report["configs"].append(bench_config(setup, plan, opts, tmp))
    meter = report["configs"][0]["meter"]
    gpu = meter["gpu"]
    report["device"] = gpu["device"]  # name, PCI bus id, NVML and CUDA index; never the UUID
    report["method"] = {
        **METHOD,
        "baseline": (f"{meter['baseline']['method']}: energy.settle_seconds then energy.baseline_seconds "
                     "of idle, by EnergyMeter.measure_baseline, before and after the measured rounds"),
        "net": meter["net"] + " (\"above measured baseline\")",
        "window_resolution": (gpu["resolution"] if gpu["source"] else
                              f"no GPU figure ({gpu['reason']}); GPU windows under {gpu['resolution_s']:g} s "
                              "would report none"),
        "window_resolution_s": gpu["resolution_s"],
        "energy_source": gpu["source"],
    }
    report["sysinfo"] = sysinfo.collect(device=_device(gpu["device"]))
    report["versions"] = {"figurine": __version__, **report["sysinfo"]["versions"]}
    write_outputs(report, opts.out)
    return report


def _device(device: dict | None):
    """The metered GPU's identity (by PCI bus id) for sysinfo, or None."""
    if not device or not device.get("pci_bus_id"):
        return None
    from figurine.energy import DeviceIdentity

    return DeviceIdentity(**device)
