"""figurine's pipeline: a photo in, a boxed action figure out. Also the public Python API.

    from figurine import FigurinePipeline, Request
    pipe = FigurinePipeline.from_config(["configs/tiny.toml"], weights="/tmp/tiny-weights")
    result = pipe(Request(name="Ada", photos=["me.jpg"], accessories=["tea cup"], output="ada.png"))
    result.package, result.figure, result.accessories      # PIL images
    result.scores, result.energy_line, result.record       # identity scores, energy, run.json
    again = pipe.rerun("ada.run", name="Ada L.", template="vintage-80s")   # no model loads

Built once from a config, the pipeline holds its components (face analyser, diffusion pipeline,
cut-out model) and loads each lazily, the first time a stage needs it; the web UI and batch
workers keep one pipeline between requests. Components may also be passed in (diffusers-style):
`FigurinePipeline(cfg, generator=Generator.from_components(cfg, pipe))` benchmarks random weights.

A call runs, in order:
1. check_inputs: every name, text, file and output, before any model loads
2. the run directory: the previous record (a re-run reuses what did not change)
3. prompts
4. figure: identity (face embedding), pose (control image), `candidates` figures, each decoded,
   scored for likeness and cut out; cached under a key of all their inputs
5. accessories: each its own text-only generation, cut out; cached one by one
6. package: the box drawn around the best figure and the accessories
7. outputs: package picture (with provenance), JSON sidecar, optional print PDF, the run
   directory's copy and run.json, written as one unit (figurine.outputs.OutputSet)

Every stage runs inside `_stage(name)`: timed, metered (figurine.energy) and reported to the
hooks, `hook(stage, event, info)` with event "started" / "done" / "failed" (the web UI's
progress bar, figurine bench's VRAM and latency). An unexpected error inside a stage becomes one
line naming the stage and the likely setting; the traceback goes to RUN_DIR/error.log.
`rerun(run_dir, photos=None, **changes)` is the one re-run path: make --run, pack --run and the
web UI's Re-pack all call it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from figurine.config import Config
from figurine.errors import FigurineError, InputError, NeedsInputError
from figurine.request import Request
from figurine.rundir import ERROR_LOG, RunDir

log = logging.getLogger(__name__)

Hook = Callable[[str, str, dict], None]  # (stage, "started" | "done" | "failed", info)
EMBEDDING_FILE = "face-embedding.npy"
MAX_OWN_OUTPUTS = 48
# Stages that run a model: an unexpected error there is a GenerationError (exit 4).
MODEL_STAGES = {"load", "identity", "pose", "generation", "vae_decode", "identity_score", "accessories",
                "matte"}


@dataclass
class Plan:
    """A request with every default resolved and every input checked and loaded."""

    request: Request
    seed: int
    candidates: int
    pose: str
    face_index: int
    template: str
    size: str
    output: Path
    run_dir: Path
    photos: list = field(default_factory=list)       # decoded PIL images (the photo bytes: hashed only)
    pose_ref: object = None                          # decoded pose reference photo
    own_items: list = field(default_factory=list)    # the user's own accessory pictures
    replaceable: set = field(default_factory=set)    # sha256 of outputs a re-run may replace


@dataclass
class Result:
    output: Path
    run_dir: Path
    record: dict            # what run.json holds
    reused: list[str]
    energy_line: str
    package: object = None  # PIL images
    figure: object = None
    accessories: list = field(default_factory=list)

    @property
    def scores(self) -> list:
        return self.record["stages"]["figure"]["scores"]


def accessory_seed(seed: int, text: str) -> int:
    """An accessory's seed depends on its own text, not its position: reordering keeps results."""
    return (seed + zlib.crc32(text.encode())) % 2**32


def digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def salted_hash(salt: str, data: bytes) -> str:
    """Tells whether a file changed between runs without identifying it anywhere else."""
    return hmac.new(salt.encode(), data, hashlib.sha256).hexdigest()[:16]


class FigurinePipeline:
    def __init__(self, cfg: Config, *, generator=None, analyzer=None, matter=None,
                 hooks: list[Hook] | tuple = ()):
        self.cfg = cfg
        self.hooks = list(hooks)
        self._generator, self._analyzer, self._matter = generator, analyzer, matter

    @classmethod
    def from_config(cls, files=(), overrides=(), weights=None, **kwargs) -> "FigurinePipeline":
        from figurine.config import load_config

        return cls(load_config(files, overrides, weights), **kwargs)

    @classmethod
    def for_run(cls, run_dir, files=(), overrides=(), weights=None, **kwargs) -> "FigurinePipeline":
        """A pipeline with the settings a run was made with (then files and overrides on top)."""
        from figurine.config import load_config

        stored = RunDir(run_dir).load().get("config")
        return cls(load_config(files, overrides, weights, stored=stored), **kwargs)

    # -- components, loaded when a stage first needs them -------------------------------------
    def analyzer(self):
        if self._analyzer is None:
            from figurine.face import FaceAnalyzer

            providers = (["CUDAExecutionProvider", "CPUExecutionProvider"]
                         if self.cfg.runtime.device != "cpu" else ["CPUExecutionProvider"])
            f = self.cfg.face
            self._analyzer = FaceAnalyzer(self.cfg.path("model.insightface"), det_size=f.det_size,
                                          det_thresh=f.det_thresh, providers=providers)
        return self._analyzer

    def generator(self):
        if self._generator is None:
            from figurine.generate import Generator

            self._generator = Generator(self.cfg)
            for note in self._generator.runtime.notes:
                log.info(note)
        return self._generator

    def matter(self):
        if self._matter is None:
            from figurine.matte import Matter

            providers = ["CPUExecutionProvider"] if self.cfg.runtime.device == "cpu" else None
            self._matter = Matter(self.cfg.matte.method, self.cfg.path("matte.model"), providers=providers)
        return self._matter

    # -- 1. inputs ---------------------------------------------------------------------------
    def check_inputs(self, req: Request, replace_own: bool = False) -> Plan:
        """Everything a user can get wrong, checked before any model loads: one line if wrong.
        `replace_own` (re-runs): outputs this run directory wrote before may be replaced."""
        from figurine import limits, provenance
        from figurine.outputs import check_distinct
        from figurine.packaging import list_templates, open_picture, validate_text
        from figurine.photo import load_photo
        from figurine.pose import list_presets

        cfg, g = self.cfg, self.cfg.generation
        template = req.template or cfg.packaging.template
        size = req.size or cfg.packaging.size
        pose = req.pose or cfg.pose.preset
        if template not in list_templates():
            raise InputError(f"unknown template '{template}'; choose from {', '.join(list_templates())}")
        if size not in limits.SIZES:
            raise InputError(f"unknown size '{size}'; choose from {', '.join(limits.SIZES)}")
        if req.pose_from is None and pose not in [p.name for p in list_presets()]:
            raise InputError(f"unknown pose '{pose}'; choose from {', '.join(p.name for p in list_presets())}")
        validate_text(req.name, req.tagline, template=template)
        count = len(req.accessories) + len(req.accessory_images)
        if count > cfg.accessories.max:
            raise InputError(f"{count} accessories asked for; at most {cfg.accessories.max} fit "
                             "(set accessories.max to change the limit)")
        for text in req.accessories:
            if not text.strip():
                raise InputError("an accessory needs a description, e.g. --accessory \"brass gear\"")
        output = req.output or Path(f"{limits.slug(req.name)}.png")
        run_dir = req.run_dir or limits.run_dir_for(output)
        provenance.check_output_format(output)
        if req.pdf is not None and req.pdf.suffix.lower() != ".pdf":
            raise InputError(f"{req.pdf}: the print PDF's name must end in .pdf")
        outputs = [output, limits.sidecar_for(output), req.pdf]
        check_distinct(outputs + [run_dir])
        from figurine.outputs import OutputSet

        replaceable = set(RunDir(run_dir).load().get("outputs", [])) if replace_own and run_dir.is_dir() else set()
        OutputSet(force=req.force, replaceable=replaceable).check(*outputs)
        if run_dir.exists() and (run_dir.is_symlink() or not run_dir.is_dir()):
            raise InputError(f"{run_dir}: the run directory exists and is not a folder")
        seed = g.seed if req.seed is None else req.seed
        if seed < 0:
            seed = secrets.randbelow(2**31)
        return Plan(
            request=req, seed=seed, candidates=req.candidates or g.candidates, pose=pose,
            face_index=cfg.face.index if req.face_index is None else req.face_index,
            template=template, size=size, output=output, run_dir=run_dir, replaceable=replaceable,
            photos=[load_photo(p) for p in req.photos],
            pose_ref=load_photo(req.pose_from) if req.pose_from else None,
            own_items=[open_picture(p, "accessory image") for p in req.accessory_images],
        )

    # -- the run -----------------------------------------------------------------------------
    def __call__(self, req: Request, replace_own: bool = False) -> Result:
        # 1. Inputs.
        plan = self.check_inputs(req, replace_own)
        # 2. The run directory and what it already holds (a new one that stays empty is removed).
        run = RunDir(plan.run_dir)
        created = not plan.run_dir.exists()
        run.create()
        try:
            return self._run_stages(plan, run)
        except BaseException:
            if created and plan.run_dir.is_dir() and not any(plan.run_dir.iterdir()):
                plan.run_dir.rmdir()
            raise

    def _run_stages(self, plan: Plan, run: RunDir) -> Result:
        from figurine import prompt
        from figurine.energy import EnergyMeter

        cfg, req = self.cfg, plan.request
        old = run.load()
        salt = old.get("salt") or secrets.token_hex(16)
        self._run, self._timings, self._reused = run, {}, []
        self._meter = EnergyMeter.from_config(cfg.energy, sync="torch")
        # 3. Prompts (the name is never in them: the box spells it).
        prompts = prompt.build_prompts(
            req.name, tagline=req.tagline, outfit=req.outfit or cfg.prompt.outfit, accessories=req.accessories,
            style=cfg.prompt.style, extra=cfg.prompt.extra, negative=cfg.prompt.negative)
        log.info("figure prompt: %s", prompts.figure)
        log.info("negative prompt: %s", prompts.figure_negative)
        model_key = {"model": asdict(cfg.model), "runtime": {"dtype": cfg.runtime.dtype},
                     "matte": asdict(cfg.matte)}
        record: dict = {"salt": salt, "stages": {}, "outputs": old.get("outputs", [])}
        # 4. Figure: identity, pose, candidates.
        fig = self._figure_stage(plan, prompts, old, salt, model_key)
        embedding = fig.pop("_embedding", None)
        record["stages"]["figure"] = fig
        run.commit({**old, **record, "stages": {**old.get("stages", {}), "figure": fig}})
        # 5. Accessories.
        items = self._accessory_stage(plan, prompts, old, model_key)
        record["stages"]["accessories"] = {"items": items}
        # 6. Package.
        figure = run.open_image(fig["mattes"][fig["best"]], "the figure's cut-out")
        accessories = [run.open_image(i["matte"], "an accessory's cut-out") for i in items]
        package, layout = self._package_stage(plan, figure, accessories)
        gen = self._generator
        record.update({
            "figurine": __import__("figurine").__version__,
            "request": req.shareable(),
            "resolved": {"seed": plan.seed, "candidates": plan.candidates, "pose": plan.pose,
                         "face_index": plan.face_index, "template": plan.template, "size": plan.size},
            "prompts": {"figure": prompts.figure, "negative": prompts.figure_negative,
                        "accessories": {i["text"]: i.get("prompt") for i in items}},
            "config": cfg.to_dict(),
            "model_hashes": old.get("model_hashes", {}) if gen is None else model_hashes(cfg, gen.files),
            "runtime": old.get("runtime") if gen is None else {
                "device": gen.runtime.device, "dtype": str(gen.runtime.dtype).replace("torch.", ""),
                "memory": gen.runtime.memory},
            "timings": self._timings,
            "reused": self._reused,
            "energy": {"stages": [r.to_dict() for r in self._meter.readings],
                       "total": self._meter.total(exclude=("load",)).to_dict()},
            "layout": layout_record(layout),
        })
        # 7. Outputs, as one unit.
        self._write_outputs(plan, record, package, figure, accessories, embedding)
        energy_line = self._meter.total(exclude=("load",)).format_line()
        self._meter.close()
        return Result(plan.output, plan.run_dir, record, self._reused, energy_line,
                      package=package, figure=figure, accessories=accessories)

    def rerun(self, run_dir, photos=None, output=None, pdf=None, force: bool = False, **changes) -> Result:
        """The run in `run_dir` again with `changes` (name=, template=, seed=, accessories=...):
        only stages whose inputs changed run. A changed figure needs the photos again."""
        run_dir = Path(run_dir)
        old = RunDir(run_dir).load()
        if not old.get("stages", {}).get("figure"):
            raise InputError(f"{run_dir} is not a figurine run directory (no run.json with a figure)")
        stored = dict(old.get("request", {}))
        stored.setdefault("seed", old.get("resolved", {}).get("seed"))
        req = Request.from_stored(stored, photos=photos or [], run_dir=run_dir, force=force, pdf=pdf,
                                  output=output or run_dir.with_suffix(".png"), **changes)
        return self(req, replace_own=True)

    # -- stages --------------------------------------------------------------------------------
    def _stage(self, name: str):
        return _StageWindow(self, name)

    def _figure_stage(self, plan: Plan, prompts, old: dict, salt: str, model_key: dict) -> dict:
        req, g = plan.request, self.cfg.generation
        before = old.get("stages", {}).get("figure", {}).get("inputs", {})
        photo_key = (salted_hash(salt, b"".join(p.read_bytes() for p in req.photos)) if req.photos
                     else before.get("photo"))
        # A pose taken from a reference photo stays that pose on a re-run, unless --pose is given.
        if req.pose_from is not None:
            pose_key = salted_hash(salt, req.pose_from.read_bytes())
        elif req.pose is None and before.get("pose_from_photo"):
            pose_key = before.get("pose")
        else:
            pose_key = plan.pose
        inputs = {"photo": photo_key, "face_index": plan.face_index, "pose": pose_key, "prompt": prompts.figure,
                  "negative": prompts.figure_negative, "seed": plan.seed, "candidates": plan.candidates,
                  "generation": {k: v for k, v in asdict(g).items() if k not in ("seed", "candidates")},
                  "pose_style": asdict(self.cfg.pose), **model_key}
        key = digest(inputs)
        reused = self._run.reusable(old, "figure", key)
        if reused is not None:
            self._reused.append("figure")
            print(f"reusing the figure from {plan.run_dir} (its inputs did not change)")
            return reused
        if not plan.photos:
            raise NeedsInputError("the figure must be generated again (its settings changed) and that needs "
                                  "the photo: give PHOTO as well as --run")
        if pose_key != plan.pose and plan.pose_ref is None:
            raise NeedsInputError("the figure must be generated again and its pose came from a reference photo: "
                                  "give --pose-from REF again (or --pose NAME)")
        fig = self._make_figures(plan, prompts, key, photo_key)
        fig["inputs"].update(pose=pose_key, pose_from_photo=plan.pose_ref is not None)
        return fig

    def _make_figures(self, plan: Plan, prompts, key: str, photo_key: str) -> dict:
        from figurine.face import identity_score, pick
        from figurine.pose import load_preset, pose_from_image, render_pose

        cfg, g, run = self.cfg, self.cfg.generation, self._run
        # Identity: the face on each photo (several photos of one person: their mean embedding).
        with self._stage("identity"):
            faces = [pick(self.analyzer().faces(p), plan.face_index, label=str(path))
                     for p, path in zip(plan.photos, plan.request.photos)]
            embedding = mean_embedding([f.embedding for f in faces])
        # Pose.
        with self._stage("pose"):
            pose = (pose_from_image(plan.pose_ref, cfg.path("model.annotators")) if plan.pose_ref is not None
                    else load_preset(plan.pose))
            control = render_pose(pose, g.width, g.height, cfg.pose.limb_width, cfg.pose.point_radius)
        pose_image = run.save_image(control, f"pose-{key[:8]}.png")
        # Figures, each decoded, scored and cut out.
        gen = self._load_generator()
        files, mattes, scores, seeds, methods = [], [], [], [], []
        for i in range(plan.candidates):
            s = plan.seed + i
            with self._stage("generation"):
                latents = gen.figure(prompts.figure, prompts.figure_negative, control, embedding, seed=s)
            with self._stage("vae_decode"):
                image = gen.decode(latents)[0]
            with self._stage("identity_score"):
                score = identity_score(self.analyzer(), image, embedding)
            with self._stage("matte"):
                cutout, method = self._cut(image, f"figure candidate {i}")
            files.append(run.save_image(image, f"figure-{key[:8]}-{i}.png"))
            mattes.append(run.save_image(cutout, f"figure-{key[:8]}-{i}-matte.png"))
            score = None if score is None else round(float(score), 4)
            scores.append(score)
            seeds.append(s)
            methods.append(method)
            shown = "no face detected" if score is None else f"{score:.4f}"
            print(f"candidate {i} (seed {s}): identity score {shown}")
        scored = [(sc, i) for i, sc in enumerate(scores) if sc is not None]
        best = max(scored)[1] if scored else 0
        if plan.candidates > 1:
            print(f"packaging candidate {best}" + ("" if scored else " (no face detected on any candidate)"))
        face = faces[0]
        return {"key": key, "files": files, "mattes": mattes, "scores": scores, "seeds": seeds, "best": best,
                "matte_methods": methods, "pose_image": pose_image, "inputs": {"photo": photo_key},
                "face": {"box": [round(float(v), 1) for v in face.box], "det_score": round(float(face.det_score), 4),
                         "photos": len(faces)},
                "_embedding": embedding}

    def _accessory_stage(self, plan: Plan, prompts, old: dict, model_key: dict) -> list[dict]:
        req, a = plan.request, self.cfg.accessories
        previous = {i["key"]: i for i in old.get("stages", {}).get("accessories", {}).get("items", [])
                    if isinstance(i, dict) and "key" in i}
        items, todo = [], []
        for text in req.accessories:
            p, n = prompts.accessory(text)
            seed = accessory_seed(plan.seed, text)
            key = digest({"text": text, "prompt": p, "negative": n, "seed": seed, "cfg": asdict(a), **model_key})
            prev = previous.get(key)
            if prev and self._run.has(prev.get("raw") or "") and self._run.has(prev["matte"]):
                items.append(prev)
            else:
                item = {"key": key, "text": text, "prompt": p, "seed": seed,
                        "raw": f"accessory-{key[:8]}.png", "matte": f"accessory-{key[:8]}-matte.png"}
                items.append(item)
                todo.append(item)
        if req.accessories and not todo:
            self._reused.append("accessories")
            print(f"reusing the accessories from {plan.run_dir} (their inputs did not change)")
        elif todo:
            kept = [i["text"] for i in items if i not in todo]
            if kept:
                print(f"reusing accessories {kept}; generating {[i['text'] for i in todo]}")
            self._make_accessories(todo, negative=prompts.accessory(todo[0]["text"])[1])
        # The user's own pictures: cut out now, or kept from the run when none are given again.
        if plan.own_items:
            for i, (path, picture) in enumerate(zip(req.accessory_images, plan.own_items)):
                with self._stage("matte"):
                    cutout, method = self._cut(picture, path.name)
                key = digest({"own": i, "pixels": hashlib.sha256(cutout.tobytes()).hexdigest()})
                items.append({"key": key, "text": f"own image {i + 1}", "own_image": True, "matte_method": method,
                              "matte": self._run.save_image(cutout, f"accessory-own-{key[:8]}-matte.png")})
        else:
            items += [i for i in old.get("stages", {}).get("accessories", {}).get("items", [])
                      if isinstance(i, dict) and i.get("own_image") and self._run.has(i["matte"])]
        return items

    def _make_accessories(self, todo: list[dict], negative: str) -> None:
        a = self.cfg.accessories
        gen = self._load_generator()
        batch = max(1, a.batch)
        for start in range(0, len(todo), batch):
            chunk = todo[start:start + batch]
            with self._stage("accessories"):
                latents = gen.accessories([(i["prompt"], negative, i["seed"]) for i in chunk],
                                          a.width, a.height, a.steps, a.guidance)
                images = gen.decode(latents)
            for item, image in zip(chunk, images):
                self._run.save_image(image, item["raw"])
                with self._stage("matte"):
                    cutout, item["matte_method"] = self._cut(image, f"accessory '{item['text']}'")
                self._run.save_image(cutout, item["matte"])

    def _package_stage(self, plan: Plan, figure, accessories):
        from figurine.packaging import PackText, render_package

        with self._stage("packaging"):
            return render_package(figure, accessories, PackText(plan.request.name, plan.request.tagline),
                                  template=plan.template, size=plan.size, edition=plan.request.edition)

    def _load_generator(self):
        if self._generator is None:
            with self._stage("load"):
                self.generator()
        return self._generator

    def _cut(self, image, what: str):
        return self.matter().cut_or_whole(image, what)

    # -- 7. outputs ----------------------------------------------------------------------------
    def _write_outputs(self, plan: Plan, record: dict, package, figure, accessories, embedding) -> None:
        """Package picture (provenance inside), sidecar, PDF, run-directory copy and run.json."""
        from figurine import limits, packaging, provenance
        from figurine.outputs import OutputSet

        req, g, run = plan.request, self.cfg.generation, self._run
        shared = provenance.shareable(record)
        hashes = record.get("model_hashes") or {}
        unet = next((h for f, h in sorted(hashes.items()) if "unet" in f or f.endswith(".safetensors")), "")
        parameters = provenance.a1111_parameters(
            prompt=record["prompts"]["figure"], negative=record["prompts"]["negative"], steps=g.steps,
            sampler=g.scheduler, cfg_scale=g.guidance, seed=plan.seed, width=g.width, height=g.height,
            model_name=Path(self.cfg.model.base).name, model_hash=unet[:10],
            extra={"ControlNet": Path(self.cfg.model.controlnet).name,
                   "IP-Adapter": Path(self.cfg.model.ip_adapter).name,
                   "IP-Adapter scale": g.ip_adapter_scale, "ControlNet scale": g.controlnet_scale,
                   "Pose": plan.pose, "Template": plan.template})
        data = provenance.encode_output(package, plan.output, parameters, shared, provenance.xmp_packet())
        sidecar = json.dumps(shared, indent=2, sort_keys=True).encode()
        pdf = None
        if req.pdf:
            import io

            buf = io.BytesIO()
            packaging.export_pdf(figure, accessories, packaging.PackText(req.name, req.tagline), plan.template,
                                 buf, edition=req.edition)
            pdf = buf.getvalue()
        copy_name = "package" + plan.output.suffix.lower()
        record["package"] = copy_name
        # The files this run wrote (sha256, newest first): a re-run may replace them without --force.
        before = list(record.get("outputs", []))
        written = [hashlib.sha256(v).hexdigest() for v in (data, sidecar, pdf) if v is not None]
        record["outputs"] = list(dict.fromkeys(written + before))[:MAX_OWN_OUTPUTS]
        with OutputSet(force=req.force, replaceable=plan.replaceable) as out:
            out.add(plan.output, lambda f: f.write(data))
            out.add(limits.sidecar_for(plan.output), lambda f: f.write(sidecar))
            if pdf is not None:
                out.add(req.pdf, lambda f: f.write(pdf))
            out.commit()
        run.save_bytes(data, copy_name)
        if req.store_embedding and embedding is not None:
            import io

            import numpy as np

            buf = io.BytesIO()
            np.save(buf, embedding)
            run.save_bytes(buf.getvalue(), EMBEDDING_FILE)
            record["stored_embedding"] = EMBEDDING_FILE
        run.commit(record)


class _StageWindow:
    """Times and meters one stage and tells the hooks; an unexpected error becomes one line."""

    def __init__(self, pipe: FigurinePipeline, name: str):
        self.pipe, self.name = pipe, name

    def __enter__(self):
        for hook in self.pipe.hooks:
            hook(self.name, "started", {})
        self.t0 = time.perf_counter()
        self.window = self.pipe._meter.window(self.name)
        self.window.__enter__()
        return self

    def __exit__(self, exc_type, exc, tb):
        self.window.__exit__(exc_type, exc, tb)
        seconds = time.perf_counter() - self.t0
        timings = self.pipe._timings
        timings[self.name] = round(timings.get(self.name, 0.0) + seconds, 4)
        info = {"seconds": seconds, "energy": self.window.result}
        for hook in self.pipe.hooks:
            hook(self.name, "done" if exc is None else "failed", info)
        if isinstance(exc, Exception) and not isinstance(exc, FigurineError):
            raise stage_failure(self.name, exc, self.pipe._run.path, self.pipe.cfg) from exc
        return False


def mean_embedding(embeddings: list):
    """Several photos of one person: the mean of their normed ArcFace embeddings, normed again."""
    import numpy as np

    mean = np.mean(np.stack([np.asarray(e, dtype=np.float32) for e in embeddings]), axis=0)
    return mean / max(float(np.linalg.norm(mean)), 1e-12)


# What an unexpected error in a model call most likely comes from, by its message.
_LIKELY_SETTING = [
    (("must have the same dtype", "expected scalar type", "Half", "BFloat16", "dtype"),
     "runtime.dtype (try --set runtime.dtype=float32)"),
    (("out of memory", "CUDA error", "CUBLAS", "cuDNN"), "runtime.memory, or smaller generation.width/height"),
    (("same device", "device-side", "meta tensor"), "runtime.device / runtime.memory"),
    (("size mismatch", "shape", "mat1 and mat2", "must match the size", "incorrect config", "expects"),
     "generation.width/height or a model file that does not fit (model.* paths; figurine weights verify)"),
]


def stage_failure(stage: str, exc: BaseException, run_dir: Path, cfg: Config) -> FigurineError:
    """An unexpected error inside a stage -> one line naming the stage and the likely setting.

    The full traceback goes to RUN_DIR/error.log, and to the terminal with -v.
    """
    import traceback

    from figurine.errors import GenerationError, StageError

    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    log_path = Path(run_dir) / ERROR_LOG
    try:
        RunDir(run_dir).save_bytes(f"figurine {__import__('figurine').__version__}, stage {stage}\n{text}".encode(),
                                   ERROR_LOG)
        where = f"full traceback in {log_path}"
    except (OSError, FigurineError):
        where = "run with -v for the traceback"
    log.info("traceback of the %s stage:\n%s", stage, text)
    message = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    likely = next((hint for keys, hint in _LIKELY_SETTING if any(k in str(exc) for k in keys)),
                  f"runtime.dtype={cfg.runtime.dtype} or the model files (figurine weights verify)")
    cls = GenerationError if stage in MODEL_STAGES else StageError
    return cls(f"the {stage} stage failed: {type(exc).__name__}: {message}",
               hint=f"likely setting: {likely}; {where}")


def layout_record(layout) -> dict:
    """Where the package put things, in output pixels (tests and the web UI read it)."""
    return {"compartments": [list(b) for b in layout.compartments], "barcode": layout.barcode,
            "text": {k: {"box": list(v.box), "ink": list(v.ink)} for k, v in layout.text.items()}}


def model_hashes(cfg: Config, paths: list[Path]) -> dict[str, str]:
    """sha256 of every model weight file this run loaded, relative to the weights root."""
    from figurine.weights import file_hashes

    files = []
    for p in paths:
        files += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix in (".safetensors", ".onnx")) if p.is_dir() else [p]
    insight = cfg.path("model.insightface")
    if insight and insight.is_dir():
        files += sorted(insight.glob("*.onnx"))
    hashes = file_hashes(files, cfg.weights_root)
    root = cfg.weights_root

    def rel(f) -> str:
        try:
            return os.path.relpath(f, root)
        except ValueError:
            return str(f)

    return {rel(f): h for f, h in hashes.items()}
