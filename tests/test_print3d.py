"""figurine print3d: printable models from the example figure and from a tiny-weights make run.

Every model made here is read back by independent readers (trimesh for the 3MF and STL, lib3mf
for the 3MF's colours, PrusaSlicer's --info) and sliced by the real PrusaSlicer (Debian's
prusa-slicer, installed by scripts/install_slicer.sh) into G-code, from the 3MF and the STL.
The depth model is the real transformers loading code on a tiny random Depth Anything V2
(scripts/tiny_depth.py), in float32 and float16.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from tests.conftest import ROOT, TINY_CONFIG, one_error_line, run_figurine

EXAMPLE = ROOT / "docs" / "examples" / "figure.png"
PROFILE = ROOT / "configs" / "print3d" / "prusaslicer.ini"


# ------------------------------------------------------------------------------ helpers

def load_body(path: Path):
    """The file as trimesh loads it (vertices merged), one mesh."""
    import trimesh

    mesh = trimesh.load(str(path), force="mesh")
    mesh.merge_vertices()
    return mesh


def assert_printable(path: Path, height_mm: float):
    mesh = load_body(path)
    assert mesh.is_watertight, path
    assert mesh.is_winding_consistent, path
    assert len(mesh.split(only_watertight=False)) == 1, f"{path}: more than one body"
    assert mesh.volume > 0, path
    assert abs(mesh.extents[2] - height_mm) <= 0.5, (path, mesh.extents)
    assert abs(mesh.bounds[0][2]) < 1e-6, "the model does not stand on z = 0"
    return mesh


def slicer_info(path: Path) -> dict:
    out = subprocess.run(["prusa-slicer", "--info", str(path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-500:]
    return {k.strip(): v.strip() for k, _, v in (ln.partition("=") for ln in out.stdout.splitlines()) if v}


def assert_sliced(gcode: Path):
    text = gcode.read_text(errors="replace")
    assert "; estimated printing time (normal mode) = " in text
    assert text.count(";LAYER_CHANGE") >= 20, "too few layers for a model of this height"


def slice_stl(stl: Path, tmp: Path) -> Path:
    from figurine.print3d.slicer import slice_model

    out = slice_model(stl, gcode=tmp / (stl.stem + "-stl.gcode"))
    assert out.seconds > 0 and out.filament_g > 0
    return out.gcode


def only_error_line(proc) -> str:
    """The shared one-error-line check, and nothing else printed: print3d's errors stand alone."""
    assert proc.returncode != 0, proc.stdout
    line = one_error_line(proc)
    assert [ln for ln in proc.stderr.splitlines() if ln.strip()] == [line], proc.stderr
    return line


# ------------------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def no_weights(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("no-weights")


@pytest.fixture(scope="module")
def depth_weights(tmp_path_factory) -> Path:
    """A weights root holding only the tiny Depth Anything V2 (the script a user would run)."""
    root = tmp_path_factory.mktemp("depth-weights")
    subprocess.run([sys.executable, str(ROOT / "scripts" / "tiny_depth.py"), str(root / "depth-anything-v2-small")],
                   check=True, capture_output=True, text=True)
    return root


@pytest.fixture(scope="module")
def make_run(tiny_weights, tmp_path_factory) -> Path:
    """A real `figurine make` run directory on the tiny weights, made with `--print3d` (the
    model right after the package: test_make_print3d_writes_the_model_after_the_package)."""
    from tests.photos import make_face_photo

    tmp = tmp_path_factory.mktemp("make")
    photo = make_face_photo(tmp / "selfie.jpg")
    proc = run_figurine("make", photo, "--name", "Ada", "--weights", tiny_weights, "--config", TINY_CONFIG,
                        "-o", tmp / "ada.png", "--print3d", tmp / "ada.3mf")
    assert proc.returncode == 0, proc.stderr
    (tmp / "make.out").write_text(proc.stdout)
    return tmp / "ada.run"


def test_make_print3d_writes_the_model_after_the_package(make_run):
    import trimesh

    tmp = make_run.parent
    out = (tmp / "make.out").read_text()
    assert out.index("wrote ") < out.index("relief: weight-free")  # the package first, then the model
    mesh = trimesh.load(tmp / "ada.3mf", force="mesh")
    assert mesh.is_watertight and mesh.volume > 0
    assert (tmp / "ada-preview.png").is_file()


def copy_run(run: Path, dest: Path) -> Path:
    shutil.copytree(run, dest)
    return dest


@pytest.fixture(scope="module")
def example(tmp_path_factory, no_weights):
    """The README's example figure, 60 mm, with STL and G-code."""
    tmp = tmp_path_factory.mktemp("example")
    proc = run_figurine("print3d", "--figure", EXAMPLE, "--name", "Ada Lovelace", "-o", tmp / "ada.3mf",
                        "--stl", tmp / "ada.stl", "--gcode", tmp / "ada.gcode", "--height-mm", 60,
                        "--weights", no_weights)
    assert proc.returncode == 0, proc.stderr
    return tmp, proc


@pytest.fixture(scope="module")
def outline_run(make_run, tmp_path_factory, no_weights):
    tmp = tmp_path_factory.mktemp("outline")
    run = copy_run(make_run, tmp / "ada.run")
    proc = run_figurine("print3d", "--run", run, "-o", tmp / "ada.3mf", "--stl", tmp / "ada.stl",
                        "--gcode", tmp / "ada.gcode", "--height-mm", 30, "--weights", no_weights)
    assert proc.returncode == 0, proc.stderr
    return tmp, run, proc


@pytest.fixture(scope="module")
def depth_runs(make_run, tmp_path_factory, depth_weights):
    """`print3d --run` with the tiny depth model, once per dtype asked for."""
    made = {}

    def get(dtype: str):
        if dtype not in made:
            tmp = tmp_path_factory.mktemp(f"depth-{dtype}")
            run = copy_run(make_run, tmp / "ada.run")
            proc = run_figurine("print3d", "--run", run, "-o", tmp / "ada.3mf", "--stl", tmp / "ada.stl",
                                "--gcode", tmp / "ada.gcode", "--height-mm", 30, "--weights", depth_weights,
                                "--set", f"runtime.dtype={dtype}", "--set", "runtime.device=cpu")
            assert proc.returncode == 0, proc.stderr
            made[dtype] = (tmp, run, proc)
        return made[dtype]

    return get


def test_tiny_depth_model_has_the_real_layout_and_processor_file(depth_weights):
    """The tiny model's files are the pinned ones by name, and its processor file is the
    published one byte for byte (the sha256 in configs/weights.toml)."""
    import hashlib

    from figurine import weights

    pinned = {e.path: e for e in weights.load_manifest() if e.group == "depth-anything-v2-small"}
    assert sorted(pinned) == sorted(str(p.relative_to(depth_weights)) for p in depth_weights.rglob("*") if p.is_file())
    processor = depth_weights / "depth-anything-v2-small" / "preprocessor_config.json"
    assert hashlib.sha256(processor.read_bytes()).hexdigest() == pinned[
        "depth-anything-v2-small/preprocessor_config.json"].sha256
    assert all(e.optional and e.licence == "Apache-2.0" and e.revision for e in pinned.values())


# ------------------------------------------------------------------------------ the example figure

def test_example_figure_is_one_closed_body_at_the_requested_height(example):
    tmp, proc = example
    assert "relief: weight-free" in proc.stdout
    for name in ("ada.3mf", "ada.stl"):
        assert_printable(tmp / name, 60.0)
        info = slicer_info(tmp / name)
        assert info["manifold"] == "yes" and info["number_of_parts"] == "1", info
        assert abs(float(info["size_z"]) - 60.0) <= 0.5
    # PrusaSlicer sliced the 3MF (the command) and slices the STL.
    assert_sliced(tmp / "ada.gcode")
    assert_sliced(slice_stl(tmp / "ada.stl", tmp))
    assert "sliced with PrusaSlicer" in proc.stdout and "g of filament" in proc.stdout


def test_example_3mf_carries_the_figures_colours(example):
    from figurine.print3d.export import read_3mf

    tmp, _ = example
    back = read_3mf(tmp / "ada.3mf")
    assert back.unit == "MilliMeter" and back.metadata["Title"] == "Ada Lovelace"
    assert "weight-free" in back.metadata["Description"]
    palette = {tuple(c) for c in back.colours.tolist()}
    assert len(palette) == 4  # --colours default
    centres = back.vertices[back.faces].mean(axis=1)
    normals = np.cross(*(back.vertices[back.faces][:, i] - back.vertices[back.faces][:, 0] for i in (1, 2)))
    # The base's underside has one colour: the darkest of the palette.
    under = back.colours[(centres[:, 2] < 1e-6)]
    assert len({tuple(c) for c in under.tolist()}) == 1
    assert sum(under[0]) == min(sum(c) for c in palette)
    # The example figure wears a red shirt: the front of the torso (40-60 % up, facing -Y) is red.
    z = centres[:, 2]
    torso = (z > 0.45 * 60) & (z < 0.6 * 60) & (np.abs(centres[:, 0]) < 4) & (normals[:, 1] < 0)
    reds = back.colours[torso].astype(int)
    assert len(reds) and np.median(reds[:, 0] - reds[:, 2]) > 60, reds[:5]


def test_example_preview_shows_the_model(example):
    tmp, proc = example
    preview = tmp / "ada-preview.png"
    assert str(preview) in proc.stdout
    with Image.open(preview) as im:
        assert im.size == (800, 800)
        px = np.asarray(im.convert("RGB"), np.int32)
    backdrop = px[:, :1]  # the left edge: the backdrop's gradient, row by row
    drawn = np.abs(px - backdrop).sum(axis=2) > 40
    assert 0.05 < drawn.mean() < 0.7  # the model fills part of the picture
    assert len(np.unique(px[drawn].reshape(-1, 3) // 32, axis=0)) > 4  # shaded colours, not a silhouette


# ------------------------------------------------------------------------------ a make run

def test_run_without_depth_weights_uses_the_weight_free_relief(outline_run):
    tmp, run, proc = outline_run
    assert "no depth weights" in proc.stdout and "relief: weight-free" in proc.stdout
    record = json.loads((run / "print3d" / "record.json").read_text())
    assert record["relief"] == "outline" and record["depth"] == {"method": "outline"}
    assert record["checks"]["centre_of_mass_over_base"] and record["checks"]["flat_bottom"]
    for name in ("ada.3mf", "ada.stl"):
        assert_printable(tmp / name, 30.0)
    assert_sliced(tmp / "ada.gcode")
    assert_sliced(slice_stl(tmp / "ada.stl", tmp))
    assert not (run / "print3d" / "depth.npy").exists()


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_run_with_tiny_depth_weights_uses_the_model(depth_runs, outline_run, dtype):
    tmp, run, proc = depth_runs(dtype)
    assert f"relief: depth from Depth Anything V2 Small ({dtype} on cpu)" in proc.stdout
    record = json.loads((run / "print3d" / "record.json").read_text())
    assert record["relief"] == "depth-anything-v2-small" and record["depth"]["dtype"] == dtype
    depth = np.load(run / "print3d" / "depth.npy")
    assert depth.dtype == np.float32 and np.isfinite(depth).all() and depth.std() > 0
    for name in ("ada.3mf", "ada.stl"):
        assert_printable(tmp / name, 30.0)
    assert_sliced(tmp / "ada.gcode")
    assert_sliced(slice_stl(tmp / "ada.stl", tmp))
    # The depth changed the shape: same outline and height, another front surface.
    outline_record = json.loads((outline_run[1] / "print3d" / "record.json").read_text())
    assert record["model"]["volume_cm3"] != outline_record["model"]["volume_cm3"]


def test_new_height_and_text_remesh_without_rerunning_depth(depth_runs, depth_weights, tmp_path):
    run = copy_run(depth_runs("float32")[1], tmp_path / "ada.run")  # the run and its print3d/ cache
    stages = run / "print3d" / "stages.json"
    before = json.loads(stages.read_text())
    depth_mtime = (run / "print3d" / "depth.npy").stat().st_mtime_ns
    proc = run_figurine("print3d", "--run", run, "-o", tmp_path / "ada.3mf", "--height-mm", 35,
                        "--base-text", "ADA L.", "--weights", depth_weights, "--set", "runtime.dtype=float32",
                        "--set", "runtime.device=cpu")
    assert proc.returncode == 0, proc.stderr
    assert "reused: depth" in proc.stdout and "reused: mesh" not in proc.stdout
    after = json.loads(stages.read_text())
    assert after["depth"]["key"] == before["depth"]["key"] and after["mesh"]["key"] != before["mesh"]["key"]
    assert (run / "print3d" / "depth.npy").stat().st_mtime_ns == depth_mtime
    record = json.loads((run / "print3d" / "record.json").read_text())
    assert record["reused"] == ["depth"] and record["options"]["base_text"] == "ADA L."
    assert_printable(tmp_path / "ada.3mf", 35.0)
    assert "sliced with PrusaSlicer" in proc.stdout


def test_same_options_reuse_the_mesh_and_a_damaged_cache_is_rebuilt(make_run, tmp_path, no_weights):
    from figurine.config import load_config
    from figurine.print3d import PrintOptions, make_print

    run = copy_run(make_run, tmp_path / "ada.run")
    cfg = load_config(weights=no_weights)

    def again(name: str):
        out = tmp_path / name
        return make_print(run, PrintOptions(output=out, gcode=out.with_suffix(".gcode"), height_mm=30.0), cfg), out

    first, out = again("a.3mf")
    assert_sliced(out.with_suffix(".gcode"))
    second, out = again("b.3mf")
    assert first.reused == [] and second.reused == ["mesh"]
    assert "reused: mesh (its inputs did not change)" in second.lines()
    assert_printable(out, 30.0)
    assert_sliced(out.with_suffix(".gcode"))
    (run / "print3d" / "mesh.npz").write_bytes(b"not a mesh")
    third, out = again("c.3mf")
    assert third.reused == []
    assert_printable(out, 30.0)
    assert_sliced(out.with_suffix(".gcode"))


# ------------------------------------------------------------------------------ thin limbs

def stick_figure(path: Path) -> Path:
    """A figure holding a staff straight up: 3 px wide, far thinner than a printable wall."""
    img = Image.new("RGBA", (400, 800), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    d.ellipse((150, 150, 250, 250), fill=(230, 190, 160, 255))  # head
    d.rectangle((130, 250, 270, 520), fill=(40, 80, 200, 255))  # body
    d.rectangle((140, 520, 190, 800), fill=(30, 30, 60, 255))  # legs
    d.rectangle((210, 520, 260, 800), fill=(30, 30, 60, 255))
    d.rectangle((60, 300, 130, 330), fill=(40, 80, 200, 255))  # arm to the staff
    d.rectangle((60, 0, 62, 330), fill=(240, 200, 40, 255))  # the staff, 3 px
    img.save(path)
    return path


def test_thin_limb_is_thickened_to_the_minimum_wall(tmp_path, no_weights):
    from figurine.config import load_config
    from figurine.print3d import PrintOptions, print_picture

    picture = stick_figure(tmp_path / "stick.png")
    result = print_picture(picture, "Stick", PrintOptions(output=tmp_path / "stick.3mf", stl=tmp_path / "stick.stl",
                                                          gcode=tmp_path / "stick.gcode", height_mm=40.0),
                           cfg=load_config(weights=no_weights))
    parts = result.record["outline"]["thickened"]
    assert parts and any(p["was_mm"] < 0.5 and p["length_mm"] > 10 for p in parts), parts
    assert any(ln.startswith("thickened ") for ln in result.lines())
    mesh = assert_printable(tmp_path / "stick.3mf", 40.0)
    # 3 mm below the top only the staff is cut: its cross-section is at least the minimum wall.
    section = mesh.section(plane_origin=[0, 0, 37.0], plane_normal=[0, 0, 1])
    assert section is not None
    loops = section.discrete
    assert len(loops) == 1, f"{len(loops)} outlines at that height"
    w, d = np.ptp(loops[0][:, :2], axis=0)
    assert min(w, d) >= 1.6 - 0.05, (w, d)
    assert_sliced(tmp_path / "stick.gcode")
    assert_sliced(slice_stl(tmp_path / "stick.stl", tmp_path))


# ------------------------------------------------------------------------------ bad input

def test_a_folder_without_run_json_is_one_line(tmp_path):
    err = only_error_line(run_figurine("print3d", "--run", tmp_path, "-o", tmp_path / "x.3mf"))
    assert "no run.json" in err


def bad_run(tmp_path: Path, make_run: Path, change) -> Path:
    run = copy_run(make_run, tmp_path / "bad.run")
    record = json.loads((run / "run.json").read_text())
    change(run, record)
    (run / "run.json").write_text(json.dumps(record))
    return run


def _missing(run, record):
    (run / record["stages"]["figure"]["matte"]).unlink()


def _outside(run, record):
    record["stages"]["figure"]["matte"] = "../../../etc/passwd"


def _absolute(run, record):
    record["stages"]["figure"]["matte"] = str(run / record["stages"]["figure"]["matte"])


def _link(run, record):
    (run / "link.png").symlink_to(run / record["stages"]["figure"]["matte"])
    record["stages"]["figure"]["matte"] = "link.png"


def _types(run, record):
    record["stages"]["figure"]["best"] = "0"


@pytest.mark.parametrize("change, words", [
    (_missing, "is missing"), (_outside, "not a plain file name"), (_absolute, "not a plain file name"),
    (_link, "not a regular file"), (_types, "'best' is not a figure index"),
])
def test_an_untrusted_run_json_is_refused_in_one_line(tmp_path, make_run, change, words):
    run = bad_run(tmp_path, make_run, change)
    err = only_error_line(run_figurine("print3d", "--run", run, "-o", tmp_path / "x.3mf"))
    assert words in err
    assert not (tmp_path / "x.3mf").exists()


@pytest.mark.parametrize("height", ["5", "1000", "nan"])
def test_a_bad_height_is_one_line(tmp_path, height):
    err = only_error_line(run_figurine("print3d", "--figure", EXAMPLE, "-o", tmp_path / "x.3mf", "--height-mm", height))
    assert "--height-mm must be between" in err


def test_an_existing_output_needs_force(tmp_path):
    out = tmp_path / "x.3mf"
    out.write_bytes(b"mine")
    err = only_error_line(run_figurine("print3d", "--figure", EXAMPLE, "-o", out))
    assert "exists; use --force" in err and out.read_bytes() == b"mine"


def test_print3d_help_does_not_load_mesh_or_model_libraries():
    code = ("import sys\nfrom figurine.cli import main\n"
            "try:\n    main(['print3d', '--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'transformers', 'trimesh', 'manifold3d', 'lib3mf', 'skimage') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert "--height-mm" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout
