"""A printable figure: a watertight, coloured 3D model of the packaged figure, checked by a slicer.

    from pathlib import Path
    from figurine.print3d import PrintOptions, make_print, print_picture
    result = make_print(Path("ada.run"), PrintOptions(output=Path("ada.3mf"), stl=Path("ada.stl")))
    print("\\n".join(result.lines()))          # relief used, model, files, slicer estimate
    result = print_picture(Path("figure.png"), "Ada", PrintOptions(output=Path("x.3mf")))

Stages (one module each), with the run directory's print3d/ folder as their cache:

    inputs ─► depth ─► relief ─► mesh ─► export (3MF, STL) ─► preview ─► slicer
    inputs.py  depth.py  relief.py  mesh.py  export.py          preview.py   slicer.py

1. Check the options and every output path before any work (never overwrite without force).
2. Input: the run's packaged figure (its best candidate's matte) and name, or a loose picture.
3. Depth (a cached stage, key: the picture and the model files): Depth Anything V2 Small when
   its weights are in the weights root, otherwise none: the relief then comes from the
   outline alone (a rounded standee) and the result says so.
4. Mesh (a cached stage, key: the depth key plus height, base text, minimum wall, colours):
   outline at print scale with thin parts widened, relief, one body with the base and the
   name, painted; then measured (mesh.check_printable). Changing only the height or the base
   text re-meshes and reuses the depth map.
5. Files: the 3MF, the optional STL and a preview picture beside the 3MF (OUT-preview.png),
   written together (a failure leaves none of them).
6. Slice the 3MF with PrusaSlicer when it is installed: print time and filament.
7. The record (relief used, measurements, checks, thickened parts, slicer estimate) goes to
   RUN/print3d/record.json; the stage keys to RUN/print3d/stages.json.

make --print3d and the web UI call make_print(run_dir, PrintOptions(...), cfg) once the make
run has finished; the result's record and lines() are what they show.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from figurine.errors import InputError

log = logging.getLogger(__name__)

MESH_VERSION = 1  # bump when the geometry code changes what a key produces
DEPTH_VERSION = 1
RELIEFS = ("auto", "depth", "outline")
HEIGHT_RANGE_MM = (20.0, 400.0)
WALL_RANGE_MM = (0.4, 5.0)
MAX_COLOURS = 8
ProgressFn = Callable[[str, str], None]  # (stage, message)


@dataclass
class PrintOptions:
    output: Path  # the .3mf to write
    stl: Path | None = None
    gcode: Path | None = None  # keep the slicer's G-code here (it is otherwise only checked)
    height_mm: float = 100.0  # the whole model, base included
    base_text: str | None = None  # None: the figure's name; "": nothing engraved
    min_wall_mm: float = 1.6
    colours: int = 4
    relief: str = "auto"  # auto (depth when its weights are there) | depth | outline
    slice: bool = True  # slice with PrusaSlicer when it is installed
    force: bool = False

    @property
    def preview(self) -> Path:
        return preview_path(self.output)


@dataclass
class PrintResult:
    output: Path
    stl: Path | None
    preview: Path
    relief: str  # "depth-anything-v2-small" or "outline"
    reused: list[str]
    record: dict
    sliced: object | None = None  # slicer.Sliced
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """What the command prints, one fact a line."""
        r = self.record
        out = list(self.notes)
        if self.relief == "outline":
            out.append("relief: weight-free, from the outline's distance transform (a rounded standee)")
        else:
            d = r["depth"]
            out.append(f"relief: depth from Depth Anything V2 Small ({d['dtype']} on {d['device']})")
        for stage in self.reused:
            out.append(f"reused: {stage} (its inputs did not change)")
        parts = r["outline"]["thickened"]
        if parts:
            where = "; ".join(f"{abs(p['x_mm']):.0f} mm {'right' if p['x_mm'] >= 0 else 'left'} of centre at "
                              f"{p['z_mm']:.0f} mm up, was {p['was_mm']:.1f} mm" for p in parts[:4])
            out.append(f"thickened {len(parts)} part(s) thinner than {r['options']['min_wall_mm']} mm: {where}")
        c, info = r["checks"], r["model"]
        w, d_, h = info["size_mm"]
        out.append(f"model: {h:.1f} mm tall, {w:.1f} x {d_:.1f} mm base, {info['volume_cm3']:.1f} cm3, "
                   f"{info['triangles']} triangles, {c['bodies']} closed body, centre of mass over the base")
        written = [str(self.output) + f" ({len(info['palette'])} colours)"] + ([str(self.stl)] if self.stl else []) + [str(self.preview)]
        out.append("wrote " + ", ".join(written))
        if self.sliced is not None:
            out.append(self.sliced.line())
        elif r.get("slicer", {}).get("skipped"):
            out.append(f"not sliced: {r['slicer']['skipped']}")
        return out


def preview_path(output: Path) -> Path:
    return Path(output).with_name(Path(output).stem + "-preview.png")


def make_print(run_dir: Path, options: PrintOptions, cfg=None, progress: ProgressFn | None = None) -> PrintResult:
    """A `figurine make` run's figure as a printable model; see the module docstring."""
    from figurine.print3d.inputs import from_run

    check_options(options)
    return build_print(from_run(Path(run_dir)), options, cfg, progress)


def print_picture(picture, name: str, options: PrintOptions, cfg=None,
                  progress: ProgressFn | None = None) -> PrintResult:
    """A loose figure picture (a cut-out, or a figure on a plain backdrop) as a printable model."""
    from figurine.print3d.inputs import from_picture

    check_options(options)
    return build_print(from_picture(picture, name), options, cfg, progress)


def require_libraries() -> None:
    """The `print3d` extra's libraries, or one ConfigError line saying how to install them."""
    import importlib.util

    from figurine.errors import ConfigError

    missing = [m for m in ("trimesh", "manifold3d", "lib3mf", "scipy", "skimage") if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(f"figurine print3d needs {', '.join(missing)}", hint="pip install -e '.[print3d]'")


def check_options(o: PrintOptions) -> None:
    """Step 1: values and output paths, one InputError line each."""
    from figurine.outputs import check_target

    require_libraries()
    lo, hi = HEIGHT_RANGE_MM
    if not isinstance(o.height_mm, (int, float)) or not lo <= o.height_mm <= hi:
        raise InputError(f"--height-mm must be between {lo:.0f} and {hi:.0f} mm, got {o.height_mm}")
    lo, hi = WALL_RANGE_MM
    if not isinstance(o.min_wall_mm, (int, float)) or not lo <= o.min_wall_mm <= hi:
        raise InputError(f"--min-wall-mm must be between {lo} and {hi} mm, got {o.min_wall_mm}")
    if not isinstance(o.colours, int) or not 1 <= o.colours <= MAX_COLOURS:
        raise InputError(f"--colours must be 1 to {MAX_COLOURS}, got {o.colours}")
    if o.relief not in RELIEFS:
        raise InputError(f"--relief must be one of {', '.join(RELIEFS)}, got '{o.relief}'")
    for path, ext in ((o.output, ".3mf"), (o.stl, ".stl"), (o.gcode, ".gcode")):
        if path is not None and Path(path).suffix.lower() != ext:
            raise InputError(f"{path}: must end in {ext}")
    paths = [Path(p) for p in (o.output, o.stl, o.gcode, o.preview) if p is not None]
    if len({p.resolve() for p in paths}) != len(paths):
        raise InputError("two outputs have the same file name")
    for p in paths:
        check_target(p, o.force)


def build_print(source, o: PrintOptions, cfg=None, progress: ProgressFn | None = None) -> PrintResult:
    """Steps 2-7 for a loaded source (figurine.print3d.inputs.Source)."""
    from figurine.config import load_config
    from figurine.outputs import OutputSet
    from figurine.print3d import depth, export, mesh, preview, relief, slicer

    cfg = cfg or load_config()
    say = progress or (lambda stage, msg: None)
    text = mesh.check_text(source.name if o.base_text is None else o.base_text)
    cache = StageCache(source.cache)
    timings: dict[str, float] = {}
    reused: list[str] = []
    notes: list[str] = []

    # 3. Depth.
    folder = depth.model_folder(cfg.weights_root)
    have = depth.available(folder)
    if o.relief == "depth" and not have:
        from figurine.errors import WeightsError

        raise WeightsError(f"--relief depth: no depth model in {folder}",
                           hint="figurine weights fetch --optional fetches Depth Anything V2 Small")
    use_depth = o.relief == "depth" or (o.relief == "auto" and have)
    disparity, depth_record = None, {"method": "outline"}
    if use_depth:
        dev, dt = depth.runtime(cfg.runtime.device, cfg.runtime.dtype)
        files = depth.file_hashes(folder, cfg.weights_root)
        key = digest({"picture": source.digest, "model": files, "dtype": dt, "v": DEPTH_VERSION})
        cached = cache.get("depth", key)
        disparity = cache.load_array("depth.npy", (source.image.height, source.image.width)) if cached else None
        if disparity is not None:
            reused.append("depth")
            depth_record = cached
        else:
            say("depth", "started")
            est = depth.estimate(source.image, folder, dev, dt)
            disparity = est.disparity
            timings["depth"] = est.seconds
            depth_record = {"method": depth.METHOD, "key": key, "device": est.device, "dtype": est.dtype,
                            "model_files": files, "files": ["depth.npy", "depth.png"]}
            cache.put("depth", depth_record, {"depth.npy": npy_bytes(disparity), "depth.png": depth_png(disparity)})
            say("depth", "done")
    elif o.relief == "auto":
        notes.append(f"no depth weights in {folder}: using the weight-free relief "
                     "(`figurine weights fetch --optional` adds Depth Anything V2 Small)")

    # 4. Mesh.
    mesh_inputs = {"picture": source.digest, "depth": depth_record.get("key", "outline"), "height": o.height_mm,
                   "text": text, "min_wall": o.min_wall_mm, "colours": o.colours, "v": MESH_VERSION}
    key = digest(mesh_inputs)
    cached = cache.get("mesh", key)
    model = cache.load_model("mesh.npz", cached) if cached else None
    if model is not None:
        try:  # a cached mesh is measured again; anything odd about it and it is rebuilt
            outline_record = checked_outline(cached["outline"])
            checks = mesh.check_printable(model, o.height_mm, o.min_wall_mm)
            reused.append("mesh")
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            log.info("cached mesh not used (%s)", e.__class__.__name__)
            model = None
    if model is None:
        say("mesh", "started")
        t0 = time.perf_counter()
        lay = mesh.layout(o.height_mm)
        shape = relief.outline_at_scale(source.image, lay.figure_mm, o.min_wall_mm)
        front, back = relief.thickness(shape, disparity, o.min_wall_mm)
        model = mesh.build(shape, front, back, source.image, lay, text=text, colours=o.colours)
        checks = mesh.check_printable(model, o.height_mm, o.min_wall_mm)
        outline_record = {"grid_mm": round(shape.step_mm, 4), "thickened": shape.thickened,
                          "loose_pieces_dropped": shape.dropped_pieces, "holes_filled": shape.filled_holes}
        timings["mesh"] = round(time.perf_counter() - t0, 3)
        cache.put("mesh", {"key": key, "outline": outline_record, "checks": checks, "info": model.info,
                           "palette": [list(c) for c in model.palette], "names": model.names, "files": ["mesh.npz"]},
                  {"mesh.npz": model_bytes(model)})
        say("mesh", "done")
    if outline_record["loose_pieces_dropped"]:
        notes.append(f"dropped {outline_record['loose_pieces_dropped']} loose piece(s) that do not touch the figure")

    # 5. Files.
    say("export", "started")
    t0 = time.perf_counter()
    relief_name = depth_record["method"]
    description = (f"relief: {'Depth Anything V2 Small' if relief_name != 'outline' else 'weight-free outline'}; "
                   f"{o.height_mm:g} mm tall")
    picture = preview.render(model)
    with OutputSet(force=o.force) as out:  # the 3MF, STL and preview: all or nothing new
        data = export.three_mf_bytes(model, title=text or source.name or "figure", description=description)
        out.add(o.output, lambda f: f.write(data))
        if o.stl:
            out.add(o.stl, lambda f: f.write(export.stl_bytes(model)))
        out.add(o.preview, lambda f: picture.save(f, format="PNG"))
        out.commit()
    timings["export"] = round(time.perf_counter() - t0, 3)
    say("export", "done")

    # 6. Slice.
    sliced, slicer_record = None, {}
    if not o.slice:
        slicer_record = {"skipped": "slicing turned off"}
    elif slicer.find_slicer() is None:
        slicer_record = {"skipped": "PrusaSlicer is not installed (apt-get install prusa-slicer)"}
    else:
        say("slice", "started")
        t0 = time.perf_counter()
        try:
            sliced = slicer.slice_model(o.output, gcode=o.gcode)
            slicer_record = sliced.to_dict()
            tallest = float(sliced.settings.get("max_print_height") or 0)
            if tallest and o.height_mm > tallest:
                notes.append(f"the model is taller than the slicing profile's build height ({tallest:g} mm): "
                             "check that it fits your printer")
        except slicer.SlicerError as e:
            slicer_record = {"skipped": str(e)}
            log.warning("%s", e)
        timings["slice"] = round(time.perf_counter() - t0, 3)
        say("slice", "done")

    # 7. Record.
    record = {
        "relief": relief_name, "depth": depth_record, "options": {
            "height_mm": o.height_mm, "base_text": text, "min_wall_mm": o.min_wall_mm, "colours": o.colours,
            "relief": o.relief},
        "source": Path(source.label.split(": ", 1)[-1]).name,  # a file name only: records are shared
        "outline": outline_record, "model": {**model.info, "palette": [list(c) for c in model.palette]},
        "checks": checks, "slicer": slicer_record, "reused": reused, "timings": timings,
        "files": {"3mf": Path(o.output).name, "stl": Path(o.stl).name if o.stl else None,
                  "preview": Path(o.preview).name},
    }
    cache.record(record)
    return PrintResult(Path(o.output), Path(o.stl) if o.stl else None, o.preview, relief_name, reused, record,
                       sliced, notes)


def checked_outline(d) -> dict:
    """A cached outline record with the types the summary lines need (it is read back from disk)."""
    num = (int, float)
    ok = (isinstance(d, dict) and isinstance(d.get("thickened"), list) and isinstance(d.get("grid_mm"), num)
          and isinstance(d.get("loose_pieces_dropped"), int) and isinstance(d.get("holes_filled"), int)
          and all(isinstance(p, dict) and all(isinstance(p.get(k), num) for k in ("x_mm", "z_mm", "was_mm", "length_mm"))
                  for p in d["thickened"]))
    if not ok:
        raise ValueError("outline record")
    return d


def digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def npy_bytes(array) -> bytes:
    import numpy as np

    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def depth_png(disparity) -> bytes:
    """The depth map as a 16-bit grey picture, near = light (for people; depth.npy is the data)."""
    import numpy as np
    from PIL import Image

    lo, hi = np.percentile(disparity, [1, 99])
    scaled = np.clip((disparity - lo) / max(hi - lo, 1e-12), 0, 1)
    buf = io.BytesIO()
    Image.fromarray((scaled * 65535).astype(np.uint16)).save(buf, format="PNG")
    return buf.getvalue()


def model_bytes(model) -> bytes:
    import numpy as np

    buf = io.BytesIO()
    np.savez(buf, vertices=model.vertices.astype(np.float64), faces=model.faces.astype(np.int64),
             colour=model.colour.astype(np.uint8))
    return buf.getvalue()


class StageCache:
    """RUN/print3d/: stage files with keys (stages.json) and the last record; a no-op without a
    run directory. Everything read back is checked; anything odd is simply recomputed."""

    def __init__(self, folder: Path | None):
        self.folder = folder
        self.stages: dict = {}
        if folder is None or not (folder / "stages.json").is_file():
            return
        try:
            data = json.loads((folder / "stages.json").read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            data = {}
        self.stages = {k: v for k, v in data.items() if isinstance(v, dict)} if isinstance(data, dict) else {}

    def get(self, stage: str, key: str) -> dict | None:
        entry = self.stages.get(stage)
        if not entry or entry.get("key") != key or self.folder is None:
            return None
        return entry

    def load_array(self, name: str, shape: tuple[int, int]):
        import numpy as np

        path = self.folder / name
        try:
            if path.is_symlink() or not path.is_file():
                return None
            array = np.load(path, allow_pickle=False)
        except Exception:  # a damaged or foreign file: the stage is simply computed again
            return None
        if array.shape != shape or array.dtype != np.float32 or not np.isfinite(array).all():
            return None
        return array

    def load_model(self, name: str, entry: dict):
        import numpy as np

        from figurine.print3d.mesh import Model

        path = self.folder / name
        try:
            if path.is_symlink() or not path.is_file():
                return None
            with np.load(path, allow_pickle=False) as z:
                v, f, c = z["vertices"], z["faces"], z["colour"]
            palette = [tuple(int(x) for x in p) for p in entry["palette"]]
            names = [str(n) for n in entry["names"]]
            info = dict(entry["info"])
        except Exception:  # a damaged or foreign file: the stage is simply computed again
            return None
        num = (int, float)
        base = info.get("base", {})
        ok = (v.ndim == 2 and v.shape[1] == 3 and f.ndim == 2 and f.shape[1] == 3 and c.shape == (len(f),)
              and len(f) and f.min() >= 0 and f.max() < len(v) and len(palette) == len(names)
              and int(c.max()) < len(palette) and all(len(p) == 3 and all(0 <= x < 256 for x in p) for p in palette)
              and np.isfinite(v).all() and isinstance(info.get("triangles"), int)
              and isinstance(info.get("volume_cm3"), num) and isinstance(info.get("size_mm"), list)
              and len(info["size_mm"]) == 3 and all(isinstance(x, num) for x in info["size_mm"])
              and isinstance(base, dict) and isinstance(base.get("corner_mm"), num)
              and isinstance(base.get("footprint"), list) and len(base["footprint"]) == 4
              and all(isinstance(x, num) for x in base["footprint"]))
        return Model(v.astype(np.float64), f.astype(np.int64), c.astype(np.uint8), palette, names, info) if ok else None

    def put(self, stage: str, entry: dict, files: dict[str, bytes]) -> None:
        self.stages[stage] = entry
        files = {**files, "stages.json": json.dumps(self.stages, indent=2, sort_keys=True).encode()}
        self._write(files)

    def record(self, record: dict) -> None:
        self._write({"record.json": json.dumps(record, indent=2, sort_keys=True).encode()})

    def _write(self, files: dict[str, bytes]) -> None:
        """Each file atomically; a run folder that cannot be written only loses the cache."""
        if self.folder is None:
            return
        from figurine.outputs import atomic_write

        try:
            self.folder.mkdir(exist_ok=True)
            for name, data in files.items():
                atomic_write(self.folder / name, lambda f, d=data: f.write(d), force=True)
        except OSError as e:
            log.warning("cannot keep the print cache in %s (%s); the next run starts afresh", self.folder, e.strerror or e)
            self.folder = None
