"""`figurine make`: every stage, in order, with a run directory that caches each result.

    from figurine.config import load_config
    from figurine.make import Request, make
    cfg = load_config(["configs/tiny.toml"], weights="/tmp/tiny-weights")
    result = make(Request(photo=Path("me.jpg"), name="Ada", output=Path("ada.png")), cfg)

Stages: photo -> identity -> pose -> prompt -> figure candidates -> accessories -> matte ->
package -> provenance. The run directory (default: next to the output, OUT.run/) keeps the pose
image, every raw figure and accessory, their mattes, the package and run.json. Each stage has a
key made from its inputs; a later `make --run DIR` regenerates only the stages whose key changed
and says which it reuses. The photo and the face embedding are never written (the embedding
only with --store-embedding); run.json holds a salted hash of the photo, not the photo.
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
from figurine.errors import FigurineError, InputError

log = logging.getLogger(__name__)

RUN_JSON = "run.json"
ERROR_LOG = "error.log"
EMBEDDING_FILE = "face-embedding.npy"


@dataclass
class Request:
    """What the user asked for; everything else comes from the Config."""

    photo: Path | None
    name: str
    output: Path
    tagline: str = ""
    outfit: str = ""
    accessories: list[str] = field(default_factory=list)
    accessory_images: list[Path] = field(default_factory=list)
    pose: str | None = None  # preset name; None: config's pose.preset
    pose_from: Path | None = None  # reference photo to take the pose from
    face_index: int | None = None  # None: config's face.index
    seed: int | None = None  # None: config's generation.seed
    candidates: int | None = None
    template: str | None = None
    size: str | None = None
    pdf: Path | None = None
    run_dir: Path | None = None
    force: bool = False
    store_embedding: bool = False
    edition: int | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: (str(v) if isinstance(v, Path) else [str(x) for x in v] if k == "accessory_images" else v)
                for k, v in d.items()}


@dataclass
class Result:
    output: Path
    run_dir: Path
    record: dict  # what run.json holds
    reused: list[str]
    energy_line: str


ProgressFn = Callable[[str, str], None]  # (stage, message)


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def accessory_seed(seed: int, text: str) -> int:
    """An accessory's seed depends on its own text, not its position: reordering keeps results."""
    return (seed + zlib.crc32(text.encode())) % 2**32


def slug(name: str) -> str:
    """A file name from a person's name: 'Ada Lovelace' -> 'ada-lovelace'."""
    import re

    return re.sub(r"[^\w-]+", "-", name.strip().lower()).strip("-") or "figure"


def default_run_dir(output: Path) -> Path:
    return output.with_name(output.stem + ".run")


def load_record(run_dir: Path) -> dict:
    path = run_dir / RUN_JSON
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: not a readable figurine run ({e})") from None


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
        log_path.write_text(f"figurine {__import__('figurine').__version__}, stage {stage}\n{text}")
        where = f"full traceback in {log_path}"
    except OSError:
        where = "run with -v for the traceback"
    log.info("traceback of the %s stage:\n%s", stage, text)
    message = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    likely = next((hint for keys, hint in _LIKELY_SETTING if any(k in str(exc) for k in keys)),
                  f"runtime.dtype={cfg.runtime.dtype} or the model files (figurine weights verify)")
    cls = GenerationError if stage in MODEL_STAGES else StageError
    return cls(f"the {stage} stage failed: {type(exc).__name__}: {message}",
               hint=f"likely setting: {likely}; {where}")


# Stages that run a model: an unexpected error there is a GenerationError (exit 4).
MODEL_STAGES = {"load", "identity", "pose", "generation", "vae_decode", "identity_score", "accessories"}


class ModelCache:
    """Loaded models kept between make() calls in one process (the web UI): one of each kind,
    replaced when the settings they were loaded with change."""

    def __init__(self):
        self._gen: tuple[str, object] | None = None
        self._face: tuple[str, object] | None = None

    def generator(self, cfg: Config):
        from figurine.generate import Generator

        key = _digest({"model": asdict(cfg.model), "runtime": asdict(cfg.runtime), "root": str(cfg.weights_root),
                       "scheduler": cfg.generation.scheduler, "lora_scale": cfg.generation.lora_scale})
        if self._gen is None or self._gen[0] != key:
            self._gen = None  # let the old pipeline go before the new one loads
            self._gen = (key, Generator(cfg))
        self._gen[1].cfg = cfg  # steps, guidance, sizes are read per call
        return self._gen[1]

    def analyzer(self, cfg: Config, providers: list[str]):
        from figurine.face import FaceAnalyzer

        key = _digest({"pack": str(cfg.path("model.insightface")), "face": asdict(cfg.face), "p": providers})
        if self._face is None or self._face[0] != key:
            self._face = (key, FaceAnalyzer(cfg.path("model.insightface"), det_size=cfg.face.det_size,
                                            det_thresh=cfg.face.det_thresh, providers=providers))
        return self._face[1]


class Stages:
    """Runs the stages for one request, reusing what the run directory already holds."""

    def __init__(self, request: Request, cfg: Config, progress: ProgressFn | None = None,
                 models: ModelCache | None = None):
        self.req, self.cfg = request, cfg
        self.models = models or ModelCache()
        self.progress = progress or (lambda stage, msg: None)
        self.run_dir = request.run_dir or default_run_dir(request.output)
        self.old = load_record(self.run_dir)
        self.reused: list[str] = []
        self.timings: dict[str, float] = {}
        self._gen = None
        self._analyzer = None
        from figurine.energy import EnergyMeter

        # GPU sync joins the meter once torch is loaded (a re-pack never imports torch).
        self.meter = EnergyMeter.from_config(cfg.energy, sync=None)

    # -- helpers --------------------------------------------------------------------------
    def stage(self, name: str):
        """Times and meters one stage; both land in run.json."""
        stages = self

        class _Window:
            def __enter__(self):
                stages.progress(name, "started")
                self.t0 = time.perf_counter()
                self.w = stages.meter.window(name)
                self.w.__enter__()
                return self

            def __exit__(self, exc_type, exc, tb):
                self.w.__exit__(exc_type, exc, tb)
                stages.timings[name] = round(time.perf_counter() - self.t0, 4)
                stages.progress(name, "done" if exc is None else "failed")
                if isinstance(exc, Exception) and not isinstance(exc, FigurineError):
                    raise stage_failure(name, exc, stages.run_dir, stages.cfg) from exc
                return False

        return _Window()

    def generator(self):
        if self._gen is None:
            with self.stage("load"):
                self._gen = self.models.generator(self.cfg)
            if self._gen.runtime.device == "cuda":
                import torch

                self.meter.sync = torch.cuda.synchronize
            for note in self._gen.runtime.notes:
                log.warning(note)
        return self._gen

    def analyzer(self):
        if self._analyzer is None:
            providers = (["CUDAExecutionProvider", "CPUExecutionProvider"]
                         if self.cfg.runtime.device != "cpu" else ["CPUExecutionProvider"])
            self._analyzer = self.models.analyzer(self.cfg, providers)
        return self._analyzer

    def path(self, name: str) -> Path:
        return self.run_dir / name

    def save_image(self, image, name: str) -> str:
        from figurine.outputs import atomic_write

        atomic_write(self.path(name), lambda f: image.save(f, format="PNG"), force=True)
        return name

    def reuse(self, stage: str, key: str) -> dict | None:
        """The previous run's record of a stage, if its key matches and its files are all there."""
        old = self.old.get("stages", {}).get(stage)
        if old and old.get("key") == key and all(self.path(f).exists() for f in old.get("files", [])):
            self.reused.append(stage)
            log.warning("reusing %s from %s (its inputs did not change)", stage, self.run_dir)
            return old
        return None


def make(request: Request, cfg: Config, progress: ProgressFn | None = None,
         models: ModelCache | None = None) -> Result:
    """Run every stage for one request; see the module docstring. Pass a ModelCache to keep the
    models loaded between calls."""
    import numpy as np

    from figurine import prompt
    from figurine.packaging import open_picture
    from figurine.photo import load_photo

    req = request
    g = cfg.generation
    seed = g.seed if req.seed is None else req.seed
    if seed < 0:
        seed = secrets.randbelow(2**31)
    candidates = req.candidates or g.candidates
    pose_name = req.pose or cfg.pose.preset
    face_index = cfg.face.index if req.face_index is None else req.face_index
    template = req.template or cfg.packaging.template
    size = req.size or cfg.packaging.size

    # 1. Check every input before any model loads.
    check_box_request(req, template)
    if len(req.accessories) + len(req.accessory_images) > cfg.accessories.max:
        raise InputError(
            f"{len(req.accessories) + len(req.accessory_images)} accessories asked for; at most "
            f"{cfg.accessories.max} fit (set accessories.max to change the limit)"
        )
    photo = load_photo(req.photo) if req.photo else None
    pose_ref = load_photo(req.pose_from) if req.pose_from else None
    own_items = [open_picture(p, "accessory image") for p in req.accessory_images]  # alpha kept

    st = Stages(req, cfg, progress, models)
    st.run_dir.mkdir(parents=True, exist_ok=True)
    salt = st.old.get("salt") or secrets.token_hex(16)
    prompts = prompt.build_prompts(
        req.name, tagline=req.tagline, outfit=req.outfit or cfg.prompt.outfit,
        accessories=req.accessories, style=cfg.prompt.style, extra=cfg.prompt.extra,
        negative=cfg.prompt.negative,
    )
    if log.isEnabledFor(logging.INFO):
        log.info("figure prompt: %s", prompts.figure)
        log.info("negative prompt: %s", prompts.figure_negative)
    model_key = {"model": asdict(cfg.model), "runtime": {"dtype": cfg.runtime.dtype}}
    record: dict = {"salt": salt, "stages": {}}

    # 2. Identity + pose + figure candidates: one stage for the cache, keyed by all their inputs.
    photo_key = (hmac_digest(salt, req.photo) if req.photo else
                 st.old.get("stages", {}).get("figure", {}).get("inputs", {}).get("photo"))
    pose_key = hmac_digest(salt, req.pose_from) if req.pose_from else pose_name
    figure_inputs = {
        "photo": photo_key, "face_index": face_index, "pose": pose_key, "prompt": prompts.figure,
        "negative": prompts.figure_negative, "seed": seed, "candidates": candidates,
        "generation": {k: v for k, v in asdict(g).items() if k not in ("seed", "candidates")},
        "pose_style": asdict(cfg.pose), **model_key,
    }
    fig_key = _digest(figure_inputs)
    fig = st.reuse("figure", fig_key)
    if fig is None:
        fig = make_figures(st, photo, pose_ref, pose_name, face_index, prompts, seed, candidates, figure_inputs)
    fig["key"] = fig_key
    record["stages"]["figure"] = fig
    best = fig["best"]

    # 3. Accessories: each its own generation (batched), each cached by its own key.
    acc_cfg = asdict(cfg.accessories)
    old_items = {a["key"]: a for a in st.old.get("stages", {}).get("accessories", {}).get("items", []) if "key" in a}
    items, todo = [], []
    for text in req.accessories:
        p, n = prompts.accessory(text)
        a_seed = accessory_seed(seed, text)
        key = _digest({"text": text, "prompt": p, "negative": n, "seed": a_seed, "cfg": acc_cfg, **model_key})
        prev = old_items.get(key)
        if prev and st.path(prev["raw"]).exists() and st.path(prev["matte"]).exists():
            items.append(prev)
        else:
            item = {"key": key, "text": text, "prompt": p, "seed": a_seed,
                    "raw": f"accessory-{key[:8]}.png", "matte": f"accessory-{key[:8]}-matte.png"}
            items.append(item)
            todo.append(item)
    if req.accessories and not todo:
        st.reused.append("accessories")
        log.warning("reusing accessories from %s (their inputs did not change)", st.run_dir)
    elif todo:
        reused = [i["text"] for i in items if i not in todo]
        if reused:
            log.warning("reusing accessories %s; generating %s", reused, [i["text"] for i in todo])
        make_accessories(st, todo, negative=prompts.accessory(todo[0]["text"])[1])
    for path, picture in zip(req.accessory_images, own_items):
        i = len(items)
        with st.stage("matte"):
            cutout = cut(picture, str(path))
        items.append({"text": path.name, "own_image": True,
                      "matte": st.save_image(cutout, f"accessory-own-{i}-matte.png")})
    record["stages"]["accessories"] = {"items": items}

    # 4. Package and outputs.
    figure_matte = load_rgba(st.path(fig["mattes"][best]))
    accessory_mattes = [load_rgba(st.path(i["matte"])) for i in items]
    package, text = render_box(st, record, req, figure_matte, accessory_mattes, template, size)
    record.update({
        "figurine": __import__("figurine").__version__,
        "request": req.to_dict(),
        "resolved": {"seed": seed, "candidates": candidates, "pose": pose_name, "face_index": face_index,
                     "template": template, "size": size},
        "prompts": {"figure": prompts.figure, "negative": prompts.figure_negative,
                    "accessories": {i["text"]: i.get("prompt") for i in items}},
        "config": cfg.to_dict(),
        "model_hashes": st.old.get("model_hashes", {}) if st._gen is None else model_hashes(cfg, st._gen.files),
        "runtime": st.old.get("runtime") if st._gen is None else {
            "device": st._gen.runtime.device, "dtype": str(st._gen.runtime.dtype).replace("torch.", ""),
            "memory": st._gen.runtime.memory},
        "timings": st.timings,
        "reused": st.reused,
        "energy": energy_record(st.meter),
    })
    embedding = fig.pop("_embedding", None)
    if req.store_embedding and embedding is not None:
        np.save(st.path(EMBEDDING_FILE), embedding)
        record["stored_embedding"] = EMBEDDING_FILE
    write_outputs(record, package, figure_matte, accessory_mattes, text, req, st)
    energy_line = st.meter.total().format_line()
    return Result(req.output, st.run_dir, record, st.reused, energy_line)


def repack(run_dir: Path, cfg: Config, output: Path, name: str | None = None, tagline: str | None = None,
           template: str | None = None, size: str | None = None, pdf: Path | None = None,
           edition: int | None = None, force: bool = False) -> Result:
    """Recompose a run's package from its cached mattes: new text, template or size, no model."""
    record = load_record(run_dir)
    if not record.get("stages", {}).get("figure"):
        raise InputError(f"{run_dir} is not a figurine run directory (no run.json with a figure)")
    stored = record["request"]
    res = dict(record["resolved"])
    req = Request(photo=None, name=name or stored["name"], output=output, run_dir=run_dir, force=force,
                  tagline=stored.get("tagline", "") if tagline is None else tagline,
                  pdf=pdf, edition=stored.get("edition") if edition is None else edition,
                  accessories=stored.get("accessories", []), template=template or res["template"],
                  size=size or res["size"])
    check_box_request(req, req.template)
    st = Stages(req, cfg)
    fig, items = record["stages"]["figure"], record["stages"]["accessories"]["items"]
    for f in [fig["mattes"][fig["best"]]] + [i["matte"] for i in items]:
        if not st.path(f).exists():
            raise InputError(f"{st.path(f)} is missing; the run directory is incomplete (run figurine make again)")
    figure = load_rgba(st.path(fig["mattes"][fig["best"]]))
    accessories = [load_rgba(st.path(i["matte"])) for i in items]
    package, text = render_box(st, record, req, figure, accessories, req.template, req.size)
    res.update(template=req.template, size=req.size)
    request = {**stored, "name": req.name, "tagline": req.tagline, "template": req.template, "size": req.size,
               "output": str(output), "pdf": str(pdf) if pdf else None, "edition": req.edition}
    record.update(request=request, resolved=res, timings=st.timings, reused=["figure", "accessories"],
                  energy=energy_record(st.meter))
    write_outputs(record, package, figure, accessories, text, req, st)
    return Result(output, run_dir, record, ["figure", "accessories"], st.meter.total().format_line())


def check_box_request(req: Request, template: str) -> None:
    """Text, template and output files, checked before any work: one clear line if wrong."""
    from figurine.outputs import check_target
    from figurine.packaging.template import list_templates
    from figurine.packaging.text import validate_text

    validate_text(req.name, req.tagline)
    if template not in list_templates():
        raise InputError(f"unknown template '{template}'; choose from {', '.join(list_templates())}")
    for out in (req.output, req.pdf, sidecar_path(req.output)):
        if out is not None:
            check_target(out, req.force)


def render_box(st: Stages, record: dict, req: Request, figure, accessories, template: str, size: str):
    """Draw the package (timed and metered as the packaging stage); its layout goes in the record."""
    from figurine.packaging.render import PackText, render_package

    text = PackText(req.name, req.tagline)
    with st.stage("packaging"):
        package, layout = render_package(figure, accessories, text, template=template, size=size,
                                         edition=req.edition)
    record["layout"] = layout_record(layout)
    return package, text


def energy_record(meter) -> dict:
    return {"stages": [r.to_dict() for r in meter.readings], "total": meter.total().to_dict()}


def layout_record(layout) -> dict:
    """Where the package put things, in output pixels (tests and the web UI read it)."""
    return {"compartments": [list(b) for b in layout.compartments], "barcode": layout.barcode,
            "text": {k: {"box": list(v.box), "ink": list(v.ink)} for k, v in layout.text.items()}}


def sidecar_path(output: Path) -> Path:
    return output.with_suffix(".json")


def write_outputs(record: dict, package, figure, accessories, text, req: Request, st: Stages) -> None:
    """OUT.png with provenance chunks (copied to RUN_DIR/package.png), OUT.json, the optional
    print PDF, then run.json."""
    from figurine import packaging, provenance
    from figurine.outputs import atomic_write, save_png

    g, res = st.cfg.generation, record["resolved"]
    hashes = record.get("model_hashes") or {}
    unet = next((h for f, h in sorted(hashes.items()) if "unet" in f or f.endswith(".safetensors")), "")
    parameters = provenance.a1111_parameters(
        prompt=record["prompts"]["figure"], negative=record["prompts"]["negative"], steps=g.steps,
        sampler=g.scheduler, cfg_scale=g.guidance, seed=res["seed"], width=g.width, height=g.height,
        model_name=Path(st.cfg.model.base).name, model_hash=unet[:10],
        extra={"ControlNet": Path(st.cfg.model.controlnet).name, "IP-Adapter": Path(st.cfg.model.ip_adapter).name,
               "IP-Adapter scale": g.ip_adapter_scale, "ControlNet scale": g.controlnet_scale,
               "Pose": res["pose"], "Template": res["template"]},
    )
    save_png(package, req.output, force=req.force,
             pnginfo=provenance.png_info(parameters, record, provenance.xmp_packet()))
    data = req.output.read_bytes()  # the run directory keeps the same file: encoded once
    atomic_write(st.path("package.png"), lambda f: f.write(data), force=True)
    body = json.dumps(record, indent=2, sort_keys=True).encode()
    atomic_write(sidecar_path(req.output), lambda f: f.write(body), force=req.force)
    if req.pdf:
        packaging.export_pdf(figure, accessories, text, res["template"], req.pdf, edition=req.edition)
    atomic_write(st.path(RUN_JSON), lambda f: f.write(body), force=True)


def hmac_digest(salt: str, path: Path) -> str:
    """A salted hash of a file: tells whether the photo changed without identifying it elsewhere."""
    return hmac.new(salt.encode(), Path(path).read_bytes(), hashlib.sha256).hexdigest()[:16]


def cut(image, what: str):
    """The matte of a generated picture; the whole picture (with a warning) if nothing stands out."""
    import numpy as np

    from figurine import matte

    rgba = matte.cut_out(image)
    if (np.asarray(rgba.getchannel("A")) >= 128).mean() < 0.002:
        log.warning("%s: nothing stands out from the backdrop; packaging the whole picture", what)
        rgba = image.convert("RGBA")
    return rgba


def load_rgba(path: Path):
    from PIL import Image

    with Image.open(path) as im:
        return im.convert("RGBA")


def make_figures(st: Stages, photo, pose_ref, pose_name, face_index, prompts, seed, candidates, inputs) -> dict:
    """Identity, pose, then `candidates` figures with consecutive seeds, scored for likeness."""
    from figurine.face import identity_score, pick
    from figurine.pose import load_preset, pose_from_image, render_pose

    cfg, g = st.cfg, st.cfg.generation
    if photo is None:
        raise InputError(
            "the figure must be generated again (its settings changed) and that needs the photo: "
            "give PHOTO as well as --run"
        )
    # Identity.
    with st.stage("identity"):
        faces = st.analyzer().faces(photo)
        face = pick(faces, face_index, label=str(st.req.photo))
    # Pose.
    with st.stage("pose"):
        pose = pose_from_image(pose_ref, cfg.path("model.annotators")) if pose_ref is not None else load_preset(pose_name)
        control = render_pose(pose, g.width, g.height, cfg.pose.limb_width, cfg.pose.point_radius)
    st.save_image(control, "pose.png")
    # Figures, each decoded and scored.
    gen = st.generator()
    files, mattes, scores, seeds = [], [], [], []
    for i in range(candidates):
        s = seed + i
        with st.stage("generation"):
            latents = gen.figure(prompts.figure, prompts.figure_negative, control, face.embedding, seed=s)
        with st.stage("vae_decode"):
            image = gen.decode(latents)[0]
        with st.stage("identity_score"):
            score = identity_score(st.analyzer(), image, face.embedding)
        with st.stage("matte"):
            cutout = cut(image, f"figure candidate {i}")
        files.append(st.save_image(image, f"figure-{i}.png"))
        mattes.append(st.save_image(cutout, f"figure-{i}-matte.png"))
        score = None if score is None else round(float(score), 4)
        scores.append(score)
        seeds.append(s)
        shown = "no face detected" if score is None else f"{score:.4f}"
        print(f"candidate {i} (seed {s}): identity score {shown}")
    scored = [(sc, i) for i, sc in enumerate(scores) if sc is not None]
    best = max(scored)[1] if scored else 0
    if candidates > 1:
        print(f"packaging candidate {best}" + ("" if scored else " (no face detected on any candidate)"))
    return {"files": files, "mattes": mattes, "scores": scores, "seeds": seeds, "best": best,
            "pose_image": "pose.png", "inputs": {"photo": inputs["photo"]},
            "face": {"box": [round(float(v), 1) for v in face.box], "det_score": round(float(face.det_score), 4),
                     "faces_found": len(faces)},
            "_embedding": face.embedding}


def make_accessories(st: Stages, todo: list[dict], negative: str) -> None:
    """Generate the accessories that changed, `accessories.batch` at a time, then matte them."""
    a = st.cfg.accessories
    gen = st.generator()
    for start in range(0, len(todo), max(1, a.batch)):
        chunk = todo[start:start + max(1, a.batch)]
        with st.stage("accessories"):
            latents = gen.accessories([(i["prompt"], negative, i["seed"]) for i in chunk],
                                      a.width, a.height, a.steps, a.guidance)
            images = gen.decode(latents)
        for item, image in zip(chunk, images):
            st.save_image(image, item["raw"])
            with st.stage("matte"):
                st.save_image(cut(image, f"accessory '{item['text']}'"), item["matte"])


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
