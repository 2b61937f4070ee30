"""figurine's pipeline: a photo in, a boxed action figure out. Also the public Python API.

    from figurine import FigurinePipeline, Request
    pipe = FigurinePipeline.from_config(["configs/tiny.toml"], weights="/tmp/tiny-weights")
    result = pipe(Request(name="Ada", photos=["me.jpg"], accessories=["tea cup"], output="ada.png"))
    result.package, result.figure, result.accessories      # PIL images
    result.scores, result.energy_line, result.record       # identity scores, energy, run.json
    again = pipe.rerun("ada.run", name="Ada L.", template="vintage-80s")   # no model loads

Built once from a config, the pipeline holds its components (face analyser, diffusion pipeline,
cut-out model) and loads each the first time a stage needs it; the web UI and batch workers keep
one pipeline between requests. Components may also be passed in, diffusers-style:
`FigurinePipeline(cfg, generator=Generator.from_components(cfg, pipe))` runs random weights.

A call is `finish(prepare(request))`:
prepare (the GPU's part)
  1. check_inputs: every name, text, file and output, before any model loads
  2. the run directory and its previous record: a re-run reuses every stage whose key matches
  3. prompts
  4. figure: identity (the face embedding of each photo), pose (control image), then
     `candidates` figures, each decoded and scored for likeness; cached under one key
  5. accessories: each its own text-only generation; cached one by one
finish (the CPU's part; figurine batch overlaps it with the next row's prepare)
  6. cut-outs of the best figure and of each accessory (keyed by the picture and matte settings)
  7. package: the box drawn around them
  8. outputs: package picture (provenance inside), JSON sidecar, optional print PDF, the run
     directory's copy and run.json, written as one unit (figurine.outputs.OutputSet)

Every stage runs inside a stage window: timed, metered (figurine.energy) and reported to the
hooks, `hook(stage, event, info)` with event "started" / "done" / "failed" (the web UI's
progress bar, figurine bench's latency and VRAM). An unexpected error inside a stage becomes
one line naming the stage and the likely setting; the traceback goes to RUN_DIR/error.log.
`rerun(run_dir, photos=None, **changes)` is the one re-run path: make --run, pack --run, the
web UI's Re-pack and figurine batch all use it.
"""

from __future__ import annotations

import hashlib
import hmac
import io
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
from figurine.request import Photo, Request
from figurine.rundir import ERROR_LOG, RunDir

log = logging.getLogger(__name__)

Hook = Callable[[str, str, dict], None]  # (stage, "started" | "done" | "failed", info)
EMBEDDING_FILE = "face-embedding.npy"
MAX_OWN_OUTPUTS = 48
# Stages that run a model: an unexpected error there is a GenerationError (exit 4).
MODEL_STAGES = {"load", "identity", "pose", "generation", "vae_decode", "identity_score", "detail", "accessories",
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
    photos: list = field(default_factory=list)        # decoded PIL images
    photo_bytes: list = field(default_factory=list)   # their bytes: hashed for the cache, never written
    pose_ref: object = None                           # decoded pose reference photo
    own_items: list = field(default_factory=list)     # the user's own accessory pictures
    replaceable: set = field(default_factory=set)     # sha256 of outputs a re-run may replace


@dataclass
class Job:
    """One request between prepare and finish: its plan, run directory, record and meters."""

    plan: Plan
    run: RunDir
    old: dict                # the run directory's previous record
    record: dict             # this run's record, filled stage by stage
    prompts: object = None
    embedding: object = None   # the photos' mean ArcFace embedding (computed once, never written)
    faces: list = field(default_factory=list)  # each photo's Face (embedding, box, aligned crop)
    timings: dict = field(default_factory=dict)
    reused: list = field(default_factory=list)
    meter: object = None
    labels: dict = field(default_factory=dict)  # stage key -> the user's own file name, for messages (never stored)


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
                 hooks: list[Hook] | tuple = (), signing_key=None):
        self.cfg = cfg
        self.hooks = list(hooks)
        self.signing_key = signing_key  # figurine.signing.SigningKey: a C2PA manifest in every picture
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
            self._analyzer = FaceAnalyzer(
                self.cfg.path("model.insightface"), det_size=f.det_size, det_thresh=f.det_thresh, providers=providers,
                verify_root=self.cfg.weights_root if self.cfg.runtime.verify_weights else None)
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
        from figurine.outputs import OutputSet, check_distinct
        from figurine.packaging import open_picture
        from figurine.photo import decode_photo, load_photo, read_bytes

        cfg, g = self.cfg, self.cfg.generation
        template, size, pose = check_request(cfg, req)
        output = req.output or Path(f"{limits.slug(req.name)}.png")
        run_dir = req.run_dir or limits.run_dir_for(output)
        provenance.check_output_format(output)
        if req.pdf is not None and req.pdf.suffix.lower() != ".pdf":
            raise InputError(f"{req.pdf}: the print PDF's name must end in .pdf")
        outputs = [output, limits.sidecar_for(output), req.pdf]
        check_distinct(outputs + [run_dir])
        if run_dir.exists() and (run_dir.is_symlink() or not run_dir.is_dir()):
            raise InputError(f"{run_dir}: the run directory exists and is not a folder")
        replaceable = set(RunDir(run_dir).load().get("outputs", [])) if replace_own and run_dir.is_dir() else set()
        OutputSet(force=req.force, replaceable=replaceable).check(*outputs)
        photo_bytes = [p.data if isinstance(p, Photo) else read_bytes(p, str(p)) for p in req.photos]
        seed = g.seed if req.seed is None else req.seed
        if seed < 0:
            seed = secrets.randbelow(2**31)
        return Plan(
            request=req, seed=seed, candidates=req.candidates or g.candidates, pose=pose,
            face_index=cfg.face.index if req.face_index is None else req.face_index,
            template=template, size=size, output=output, run_dir=run_dir, replaceable=replaceable,
            photos=[decode_photo(data, photo_label(p)) for data, p in zip(photo_bytes, req.photos)],
            photo_bytes=photo_bytes,
            pose_ref=load_photo(req.pose_from) if req.pose_from else None,
            own_items=[open_picture(p, "accessory image") for p in req.accessory_images],
        )

    # -- the run -----------------------------------------------------------------------------
    def __call__(self, req: Request, replace_own: bool = False) -> Result:
        return self.finish(self.prepare(req, replace_own))

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

    def prepare(self, req: Request, replace_own: bool = False) -> Job:
        """Steps 1-5: inputs, run directory, prompts, figure, accessories (the GPU's part)."""
        from figurine import prompt

        cfg = self.cfg
        # 1. Inputs.
        plan = self.check_inputs(req, replace_own)
        # 2. The run directory and what it already holds (a new one that stays empty is removed).
        run = RunDir(plan.run_dir)
        created = not plan.run_dir.exists()
        run.create()
        try:
            old = run.load()
            job = Job(plan, run, old, {"salt": old.get("salt") or secrets.token_hex(16), "stages": {},
                                       "outputs": old.get("outputs", [])})
            job.meter = self.new_meter()
            # 3. Prompts (the name is never in them: the box spells it).
            job.prompts = prompt.build_prompts(
                req.name, tagline=req.tagline, outfit=req.outfit or cfg.prompt.outfit,
                accessories=req.accessories, style=cfg.prompt.style, extra=cfg.prompt.extra,
                negative=cfg.prompt.negative)
            log.info("figure prompt: %s", job.prompts.figure)
            log.info("negative prompt: %s", job.prompts.figure_negative)
            # 4. Figure: identity, pose, candidates; saved at once, so an interrupt keeps it.
            job.record["stages"]["figure"] = self._figure(job)
            job.record["stages"]["detail"] = self._detail(job, job.record["stages"]["figure"])
            run.commit({**old, **job.record, "stages": {**old.get("stages", {}), **job.record["stages"]}})
            # 5. Accessories.
            job.record["stages"]["accessories"] = {"items": self._accessories(job)}
            return job
        except BaseException:
            if created and plan.run_dir.is_dir() and not any(plan.run_dir.iterdir()):
                plan.run_dir.rmdir()
            raise

    def finish(self, job: Job) -> Result:
        """Steps 6-8: cut-outs, package, outputs (the CPU's part)."""
        cfg, plan, run, record = self.cfg, job.plan, job.run, job.record
        fig, items = record["stages"]["figure"], record["stages"]["accessories"]["items"]
        # 6. Cut-outs.
        self._cut_outs(job, fig, items)
        figure = run.open_image(fig["matte"], "the figure's cut-out")
        accessories = [run.open_image(i["matte"], "an accessory's cut-out") for i in items]
        # 7. Package.
        from figurine.packaging import PackText, render_package

        with self._stage(job, "packaging"):
            package, layout = render_package(figure, accessories, PackText(plan.request.name, plan.request.tagline),
                                             template=plan.template, size=plan.size, edition=plan.request.edition)
        # 8. Outputs, as one unit.
        gen = self._generator
        self._baseline(job, "after")
        energy = energy_record(job.meter, plan.candidates)
        total = job.meter.total(exclude=("load",))
        record.update({
            "figurine": __import__("figurine").__version__,
            "request": plan.request.shareable(),
            "resolved": {"seed": plan.seed, "candidates": plan.candidates, "pose": plan.pose,
                         "face_index": plan.face_index, "template": plan.template, "size": plan.size},
            "prompts": {"figure": job.prompts.figure, "negative": job.prompts.figure_negative,
                        "accessories": {i["text"]: i.get("prompt") for i in items}},
            "config": cfg.to_dict(),
            "model_hashes": job.old.get("model_hashes", {}) if gen is None else model_hashes(cfg, gen.files),
            "runtime": job.old.get("runtime") if gen is None else {
                "device": gen.runtime.device, "dtype": str(gen.runtime.dtype).replace("torch.", ""),
                "memory": gen.runtime.memory},
            "timings": job.timings,
            "reused": job.reused,
            "energy": energy,
            "layout": layout_record(layout),
        })
        self._write_outputs(job, package, figure, accessories)
        job.meter.close()
        return Result(plan.output, plan.run_dir, record, job.reused, energy_line(job.meter, total),
                      package=package, figure=figure, accessories=accessories)

    # -- stages --------------------------------------------------------------------------------
    def _stage(self, job: Job, name: str):
        return _StageWindow(self, job, name)

    def _figure(self, job: Job) -> dict:
        """Step 4: reuse the stored figure if its key matches, else identity, pose, candidates."""
        plan, req, g, salt = job.plan, job.plan.request, self.cfg.generation, job.record["salt"]
        before = job.old.get("stages", {}).get("figure", {}).get("inputs", {})
        photo_key = salted_hash(salt, b"".join(plan.photo_bytes)) if plan.photo_bytes else before.get("photo")
        # A pose taken from a reference photo stays that pose on a re-run, unless --pose is given.
        if req.pose_from is not None:
            pose_key = salted_hash(salt, req.pose_from.read_bytes())
        elif req.pose is None and before.get("pose_from_photo"):
            pose_key = before.get("pose")
        else:
            pose_key = plan.pose
        inputs = {"photo": photo_key, "face_index": plan.face_index, "pose": pose_key,
                  "prompt": job.prompts.figure, "negative": job.prompts.figure_negative, "seed": plan.seed,
                  "candidates": plan.candidates,
                  "generation": {k: v for k, v in asdict(g).items() if k not in ("seed", "candidates")},
                  "pose_style": asdict(self.cfg.pose), "model": asdict(self.cfg.model),
                  "dtype": self.cfg.runtime.dtype}
        key = digest(inputs)
        reused = job.run.reusable(job.old, "figure", key)
        if reused is not None:
            job.reused.append("figure")
            print(f"reusing the figure from {plan.run_dir} (its inputs did not change)")
            return reused
        if not plan.photos:
            raise NeedsInputError("the figure must be generated again (its settings changed) and that needs "
                                  "the photo: give PHOTO as well as --run")
        if pose_key != plan.pose and plan.pose_ref is None:
            raise NeedsInputError("the figure must be generated again and its pose came from a reference photo: "
                                  "give --pose-from REF again (or --pose NAME)")
        fig = self._make_figures(job, key)
        fig["inputs"] = {"photo": photo_key, "pose": pose_key, "pose_from_photo": plan.pose_ref is not None}
        return fig

    def _make_figures(self, job: Job, key: str) -> dict:
        from figurine.face import identity_scores
        from figurine.pose import head_box, load_preset, pose_from_image, render_pose

        cfg, g, plan, run, prompts = self.cfg, self.cfg.generation, job.plan, job.run, job.prompts
        faces = self._identity(job)
        crops = [f.crop for f in faces]  # FaceID Plus V2's CLIP input (ignored by plain FaceID)
        # Pose.
        with self._stage(job, "pose"):
            pose = (pose_from_image(plan.pose_ref, cfg.path("model.annotators")) if plan.pose_ref is not None
                    else load_preset(plan.pose))
            control = render_pose(pose, g.width, g.height, cfg.pose.limb_width, cfg.pose.point_radius)
        pose_image = run.save_image(control, f"pose-{key[:8]}.png")
        # Figures, each decoded and scored (after the GPU's baseline power, where it can be read).
        gen = self._load_generator(job)
        self._baseline(job, "before")
        files, scores, seeds, photo_scores = [], [], [], []
        for i in range(plan.candidates):
            s = plan.seed + i
            with self._stage(job, "generation"):
                latents = gen.figure(prompts.figure, prompts.figure_negative, control, job.embedding, seed=s,
                                     face_crop=crops)
            with self._stage(job, "vae_decode"):
                image = gen.decode(latents)[0]
            with self._stage(job, "identity_score"):  # against every photo: their mean is the score
                per_photo = identity_scores(self.analyzer(), image, [f.embedding for f in faces])
            files.append(run.save_image(image, f"figure-{key[:8]}-{i}.png"))
            score = None if per_photo is None else round(float(sum(per_photo) / len(per_photo)), 4)
            scores.append(score)
            photo_scores.append(None if per_photo is None else [round(x, 4) for x in per_photo])
            seeds.append(s)
            shown = "no face detected" if score is None else f"{score:.4f}"
            print(f"candidate {i} (seed {s}): identity score {shown}")
        scored = [(sc, i) for i, sc in enumerate(scores) if sc is not None]
        best = max(scored)[1] if scored else 0
        if plan.candidates > 1:
            print(f"packaging candidate {best}" + ("" if scored else " (no face detected on any candidate)"))
        face = faces[0]
        head = head_box(pose, g.width, g.height)
        return {"key": key, "files": files, "scores": scores, "photo_scores": photo_scores, "seeds": seeds, "best": best,
                "pose_image": pose_image, "head_box": None if head is None else [round(v, 1) for v in head],
                "face": {"box": [round(float(v), 1) for v in face.box], "det_score": round(float(face.det_score), 4),
                         "photos": len(faces)}}

    def _identity(self, job: Job) -> list:
        """The face on each photo (several photos of one person: their mean embedding), once per job."""
        from figurine.face import check_one_person, pick

        if job.faces:
            return job.faces
        plan = job.plan
        if not plan.photos:
            raise NeedsInputError("this change needs the face again (the detail pass or the figure must run "
                                  "again): give PHOTO as well as --run")
        with self._stage(job, "identity"):
            labels = [photo_label(p) for p in plan.request.photos]
            job.faces = [pick(self.analyzer().faces(image), plan.face_index, label=label)
                         for image, label in zip(plan.photos, labels)]
            check_one_person([f.embedding for f in job.faces], labels, self.cfg.face.same_person)
            job.embedding = mean_embedding([f.embedding for f in job.faces])
        return job.faces

    def _detail(self, job: Job, fig: dict) -> dict | None:
        """Step 4b: the best figure's face re-denoised at SDXL resolution (figurine.generate's
        detail pass), kept only when its identity score is at least the original's. Its own
        cached stage: a new strength re-runs this, not the figure."""
        from figurine.face import identity_scores
        from figurine.generate import detail_square

        d = self.cfg.detail
        if not d.enabled:
            return None
        best = fig["best"]
        key = digest({"figure": fig["key"], "best": best, "detail": asdict(d), "model": asdict(self.cfg.model),
                      "dtype": self.cfg.runtime.dtype, "guidance": self.cfg.generation.guidance,
                      "steps": self.cfg.generation.steps})
        old = job.old.get("stages", {}).get("detail")
        if isinstance(old, dict) and old.get("key") == key and job.run.has(old.get("file") or ""):
            job.reused.append("detail")
            return old
        faces = self._identity(job)
        source = job.run.open_image(fig["files"][best], "the figure", rgba=False).convert("RGB")
        found = self.analyzer().faces(source)
        if found:
            box, how = max(found, key=lambda f: f.area).box, "insightface"
        elif fig.get("head_box"):
            box, how = fig["head_box"], "pose head joints"
        else:
            print("detail pass skipped: no face on the figure and no head in the pose")
            return None
        gen = self._load_generator(job)
        with self._stage(job, "detail"):
            image = gen.detail(source, box, job.prompts.figure, job.prompts.figure_negative, job.embedding,
                               d.strength, seed=fig["seeds"][best], size=d.size, face_crop=[f.crop for f in faces],
                               margin=d.margin)
        with self._stage(job, "identity_score"):
            after = identity_scores(self.analyzer(), image, [f.embedding for f in faces])
        after = None if after is None else round(float(sum(after) / len(after)), 4)
        before = fig["scores"][best]
        kept = after is not None and (before is None or after >= before)
        shown = lambda v: "no face detected" if v is None else f"{v:.4f}"  # noqa: E731
        print(f"detail pass: identity score {shown(before)} -> {shown(after)}; "
              f"{'kept the detailed face' if kept else 'kept the figure as generated'}")
        left, top, side = detail_square(box, source.size, d.margin)
        return {"key": key, "file": job.run.save_image(image, f"figure-{fig['key'][:8]}-{best}-detail-{key[:8]}.png"),
                "score_before": before, "score_after": after, "kept": kept, "face_found_by": how,
                "box": [round(float(v), 1) for v in box], "square": [left, top, side]}

    def _accessories(self, job: Job) -> list[dict]:
        """Step 5: each accessory reused by its key or generated; own pictures carried along."""
        plan, req, a = job.plan, job.plan.request, self.cfg.accessories
        stored = job.old.get("stages", {}).get("accessories", {}).get("items", [])
        previous = {i["key"]: i for i in stored if isinstance(i, dict) and "key" in i and not i.get("own_image")}
        items, todo = [], []
        for text in req.accessories:
            p, n = job.prompts.accessory(text)
            seed = accessory_seed(plan.seed, text)
            key = digest({"text": text, "prompt": p, "negative": n, "seed": seed, "cfg": asdict(a),
                          "model": asdict(self.cfg.model), "dtype": self.cfg.runtime.dtype})
            prev = previous.get(key)
            if prev and job.run.has(prev.get("raw") or ""):
                items.append(prev)
            else:
                item = {"key": key, "text": text, "prompt": p, "seed": seed, "raw": f"accessory-{key[:8]}.png"}
                items.append(item)
                todo.append(item)
        if req.accessories and not todo:
            job.reused.append("accessories")
            print(f"reusing the accessories from {plan.run_dir} (their inputs did not change)")
        elif todo:
            kept = [i["text"] for i in items if i not in todo]
            if kept:
                print(f"reusing accessories {kept}; generating {[i['text'] for i in todo]}")
            self._make_accessories(job, todo, negative=job.prompts.accessory(todo[0]["text"])[1])
        # The user's own pictures: kept as given (cut out in finish), or from the run when none are given.
        if plan.own_items:
            for i, (picture, path) in enumerate(zip(plan.own_items, req.accessory_images)):
                buf = io.BytesIO()
                picture.save(buf, format="PNG")
                key = digest({"own": i, "pixels": hashlib.sha256(buf.getvalue()).hexdigest()})
                job.labels[key] = str(path)
                items.append({"key": key, "text": f"own image {i + 1}", "own_image": True,
                              "raw": job.run.save_bytes(buf.getvalue(), f"accessory-own-{key[:8]}.png")})
        else:
            items += [i for i in stored if isinstance(i, dict) and i.get("own_image") and job.run.has(i.get("raw") or "")]
        return items

    def _make_accessories(self, job: Job, todo: list[dict], negative: str) -> None:
        a = self.cfg.accessories
        gen = self._load_generator(job)
        batch = max(1, a.batch)
        for start in range(0, len(todo), batch):
            chunk = todo[start:start + batch]
            with self._stage(job, "accessories"):
                latents = gen.accessories([(i["prompt"], negative, i["seed"]) for i in chunk],
                                          a.width, a.height, a.steps, a.guidance)
                images = gen.decode(latents)
            for item, image in zip(chunk, images):
                job.run.save_image(image, item["raw"])

    def _cut_outs(self, job: Job, fig: dict, items: list[dict]) -> None:
        """Step 6: the best figure and every accessory cut out, each reused when its picture and
        the matte settings are unchanged."""
        settings = asdict(self.cfg.matte)
        detail = job.record["stages"].get("detail")
        figure_source = detail["file"] if detail and detail.get("kept") else fig["files"][fig["best"]]
        for entry, source, what in [(fig, figure_source, "the figure")] + [
                (i, i["raw"], job.labels.get(i["key"], i["text"]) if i.get("own_image") else f"accessory '{i['text']}'")
                for i in items]:
            key = digest({"picture": entry["key"], "source": source, "matte": settings})
            if entry.get("matte_key") == key and job.run.has(entry.get("matte") or ""):
                continue
            picture = job.run.open_image(source, what, rgba=False)  # an own cut-out keeps its alpha
            with self._stage(job, "matte"):
                cutout, entry["matte_method"] = self.matter().cut_or_whole(picture, what)
            entry["matte"] = job.run.save_image(cutout, source.replace(".png", f"-{key[:8]}-matte.png"))
            entry["matte_key"] = key

    def new_meter(self):
        """An energy meter on the GPU the models run on (found by the CUDA device's UUID / PCI
        bus id, not NVML's index), or on none when the config runs on the CPU."""
        from figurine.energy import EnergyMeter

        if self.cfg.runtime.device == "cpu":
            return EnergyMeter.from_config(self.cfg.energy, sync=None,
                                           no_gpu="figurine runs on the CPU here (runtime.device = \"cpu\")")
        return EnergyMeter.from_config(self.cfg.energy, device=None)

    def _baseline(self, job: Job, label: str) -> None:
        """The GPU's idle power, measured the same way in make and bench (docs/energy.md):
        before the first generation and again after the run; net energy uses their mean."""
        e = self.cfg.energy
        if not e.measure_idle or not job.meter.gpu_available:
            return
        if label == "after" and not any(b.label == "before" for b in job.meter.baselines):
            return  # nothing ran on the GPU in this call (a re-pack)
        job.meter.measure_baseline(e.settle_seconds, e.baseline_seconds, label=label)

    def _load_generator(self, job: Job):
        if self._generator is None:
            with self._stage(job, "load"):
                self.generator()
        return self._generator

    # -- 8. outputs ----------------------------------------------------------------------------
    def _write_outputs(self, job: Job, package, figure, accessories) -> None:
        """Package picture (provenance inside), sidecar, PDF, run-directory copy and run.json."""
        from figurine import limits, packaging, provenance
        from figurine.outputs import OutputSet

        plan, record, run, g = job.plan, job.record, job.run, self.cfg.generation
        req = plan.request
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
        data = provenance.encode_output(package, plan.output, parameters, shared, provenance.xmp_packet(),
                                        signing_key=self.signing_key)
        sidecar = json.dumps(shared, indent=2, sort_keys=True).encode()
        pdf = None
        if req.pdf:
            buf = io.BytesIO()
            packaging.export_pdf(figure, accessories, packaging.PackText(req.name, req.tagline), plan.template,
                                 buf, edition=req.edition)
            pdf = buf.getvalue()
        copy_name = "package" + plan.output.suffix.lower()
        record["package"] = copy_name
        # The files this run wrote (sha256, newest first): a re-run may replace them without --force.
        written = [hashlib.sha256(v).hexdigest() for v in (data, sidecar, pdf) if v is not None]
        record["outputs"] = list(dict.fromkeys(written + list(record.get("outputs", []))))[:MAX_OWN_OUTPUTS]
        with OutputSet(force=req.force, replaceable=plan.replaceable) as out:
            out.add(plan.output, lambda f: f.write(data))
            out.add(limits.sidecar_for(plan.output), lambda f: f.write(sidecar))
            if pdf is not None:
                out.add(req.pdf, lambda f: f.write(pdf))
            out.commit()
        run.save_bytes(data, copy_name)
        if req.store_embedding and job.embedding is not None:
            import numpy as np

            buf = io.BytesIO()
            np.save(buf, job.embedding)
            run.save_bytes(buf.getvalue(), EMBEDDING_FILE)
            record["stored_embedding"] = EMBEDDING_FILE
        run.commit(record)


class _StageWindow:
    """Times and meters one stage and tells the hooks; an unexpected error becomes one line."""

    def __init__(self, pipe: FigurinePipeline, job: Job, name: str):
        self.pipe, self.job, self.name = pipe, job, name

    def __enter__(self):
        for hook in self.pipe.hooks:
            hook(self.name, "started", {})
        self.t0 = time.perf_counter()
        self.window = self.job.meter.window(self.name)
        self.window.__enter__()
        return self

    def __exit__(self, exc_type, exc, tb):
        self.window.__exit__(exc_type, exc, tb)
        seconds = time.perf_counter() - self.t0
        timings = self.job.timings
        timings[self.name] = round(timings.get(self.name, 0.0) + seconds, 4)
        info = {"seconds": seconds, "energy": self.window.result}
        for hook in self.pipe.hooks:
            hook(self.name, "done" if exc is None else "failed", info)
        if isinstance(exc, Exception) and not isinstance(exc, FigurineError):
            raise stage_failure(self.name, exc, self.job.run.path, self.pipe.cfg) from exc
        return False


def check_request(cfg: Config, req: Request) -> tuple[str, str, str]:
    """A request's names and texts against what exists and what fits, opening no file:
    (template, size, pose) resolved. check_inputs and figurine batch's row checks both use it."""
    from figurine import limits
    from figurine.packaging import list_templates, validate_text
    from figurine.pose import list_presets

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
    return template, size, pose


def energy_record(meter, candidates: int) -> dict:
    """The run's energy as run.json keeps it: every stage window, the total without loading,
    loading apart, and per figure (generation + VAE decode, divided by the candidates made)."""
    figure = [r for r in meter.readings if r.stage in ("generation", "vae_decode")]
    load = [r for r in meter.readings if r.stage == "load"]
    return {"stages": [r.to_dict() for r in meter.readings],
            "total": meter.total(exclude=("load",)).to_dict(),
            "load": meter.combine("load", load).to_dict() if load else None,
            "figure": meter.combine("figure", figure, images=candidates).to_dict() if figure else None,
            "method": meter.describe(include_device=False)}


def energy_line(meter, total) -> str:
    """One plain sentence for the terminal (loading the models reported apart)."""
    line = total.format_line()
    load = [r for r in meter.readings if r.stage == "load"]
    if load:
        j = meter.combine("load", load).gpu_joules_gross
        line += f" Loading the models took {load[0].seconds:.1f} s" + (f" and {j:.0f} J (not included)." if j else
                                                                      " (not included).")
    return line


def photo_label(photo) -> str:
    return photo.name if isinstance(photo, Photo) else str(photo)


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
