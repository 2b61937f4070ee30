"""`figurine make` end to end, as a subprocess on tiny random weights (issues 2 and 4).

Each test runs the real command: photo decode, insightface on the synthetic pack, pose render,
the SDXL ControlNet + FaceID pipeline on tiny components, matte, packaging, provenance.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import TINY_CONFIG, one_error_line, run_figurine
from tests.photos import make_face_photo, make_flat_photo


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    return make_face_photo(tmp_path_factory.mktemp("photo") / "selfie.jpg")


def make(tmp: Path, weights: Path, photo: Path | None, *extra, out="fig.png"):
    args = ["make"] + ([photo] if photo else []) + [
        "--weights", weights, "--config", TINY_CONFIG, "-o", tmp / out, *extra]
    return run_figurine(*args, cwd=tmp)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, tiny_weights, photo):
    """One full make with two accessories; several tests read what it wrote."""
    tmp = tmp_path_factory.mktemp("run1")
    proc = make(tmp, tiny_weights, photo, "--name", "Ada Lovelace", "--tagline", "Analytical Engine Pilot",
                "--accessory", "brass gear", "--accessory", "punch cards", "--seed", "7")
    assert proc.returncode == 0, proc.stderr
    return tmp, proc


def test_make_writes_package_sidecar_and_run_dir(first_run):
    tmp, proc = first_run
    out = tmp / "fig.png"
    with Image.open(out) as im:
        assert im.size == (1080, 1350)
        assert "Negative prompt:" in im.text["parameters"] and "Seed: 7" in im.text["parameters"]
        stored = json.loads(im.text["figurine"])
    sidecar = json.loads((tmp / "fig.json").read_text())
    assert sidecar == stored
    assert sidecar["resolved"]["seed"] == 7
    assert sidecar["request"]["name"] == "Ada Lovelace"
    hashes = sidecar["model_hashes"]
    assert any(k.startswith("sdxl-base/unet/") for k in hashes), hashes
    assert all(len(h) == 64 for h in hashes.values())
    for stage in ("identity", "pose", "generation", "vae_decode", "accessories", "packaging"):
        assert sidecar["timings"][stage] >= 0, stage
    assert "Ada" not in sidecar["prompts"]["figure"]  # the box spells the name; SDXL is not asked to
    run = tmp / "fig.run"
    fig = sidecar["stages"]["figure"]
    for name in (fig["pose_image"], fig["files"][0], fig["matte"], "package.png", "run.json"):
        assert (run / name).is_file(), name
    assert fig["files"][0] == f"figure-{fig['key'][:8]}-0.png"  # a stage file's name carries its key
    assert "Energy:" in proc.stdout and "unavailable" in proc.stdout  # no GPU here: said, never 0 J
    assert "window" not in proc.stdout and "warning" not in proc.stderr  # one plain sentence, no noise


def test_two_accessories_fill_two_compartments_with_their_own_mattes(first_run):
    tmp, _ = first_run
    record = json.loads((tmp / "fig.run" / "run.json").read_text())
    items = record["stages"]["accessories"]["items"]
    assert [i["text"] for i in items] == ["brass gear", "punch cards"]
    mattes = [np.asarray(Image.open(tmp / "fig.run" / i["matte"])) for i in items]
    for m in mattes:
        assert m.shape[2] == 4 and m[..., 3].max() == 255  # a cut-out with opaque pixels
    assert not np.array_equal(mattes[0], mattes[1])  # each its own generation
    layout = record["layout"]["compartments"]
    assert len(layout) == 2
    package = np.asarray(Image.open(tmp / "fig.png").convert("RGB")).astype(int)
    for box in layout:
        x0, y0, x1, y1 = (int(v) for v in box)
        region = package[y0:y1, x0:x1]
        assert region.std() > 5, "a compartment is empty"


def test_same_seed_gives_identical_pixels(first_run, tiny_weights, photo, tmp_path):
    tmp, _ = first_run
    proc = make(tmp_path, tiny_weights, photo, "--name", "Ada Lovelace", "--tagline", "Analytical Engine Pilot",
                "--accessory", "brass gear", "--accessory", "punch cards", "--seed", "7")
    assert proc.returncode == 0, proc.stderr
    first, second = (json.loads((t / "fig.run" / "run.json").read_text()) for t in (tmp, tmp_path))
    for a_name, b_name in ((first["stages"]["figure"]["files"][0], second["stages"]["figure"]["files"][0]),
                           ("package.png", "package.png")):
        a = np.asarray(Image.open(tmp / "fig.run" / a_name))
        b = np.asarray(Image.open(tmp_path / "fig.run" / b_name))
        assert np.array_equal(a, b), a_name
    # The photo is known to each run only by a hash salted per run: the same photo in two runs
    # gives two unrelated values (an unsalted hash would match, and identify the photo anywhere).
    keys = [r["stages"]["figure"]["inputs"]["photo"] for r in (first, second)]
    assert first["salt"] != second["salt"] and keys[0] != keys[1] and all(len(k) == 16 for k in keys)


def test_changing_only_the_name_needs_no_weights(first_run, tiny_weights, photo, tmp_path):
    tmp, _ = first_run
    run = tmp_path / "copy.run"
    shutil.copytree(tmp / "fig.run", run)
    gone = tmp_path / "no-weights"  # a weights root that does not exist: any model load would fail
    proc = run_figurine("make", "--run", run, "--name", "Grace Hopper", "--weights", gone,
                        "-o", tmp_path / "grace.png", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "reused: figure, detail, accessories" in proc.stdout
    record = json.loads((run / "run.json").read_text())
    assert record["request"]["name"] == "Grace Hopper"
    assert "generation" not in record["timings"]  # the diffusion pipeline never ran
    before = np.asarray(Image.open(tmp / "fig.png").convert("RGB"))
    after = np.asarray(Image.open(tmp_path / "grace.png").convert("RGB"))
    assert not np.array_equal(before, after)


def test_a_changed_accessory_regenerates_only_that_one(first_run, tiny_weights, tmp_path):
    tmp, _ = first_run
    run = tmp_path / "copy.run"
    shutil.copytree(tmp / "fig.run", run)
    old = json.loads((run / "run.json").read_text())["stages"]["accessories"]["items"]
    kept = (run / old[0]["raw"]).read_bytes()
    proc = run_figurine("make", "--run", run, "--accessory", "brass gear", "--accessory", "tea cup",
                        "--weights", tiny_weights, "-o", tmp_path / "new.png", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "reusing accessories ['brass gear']; generating ['tea cup']" in proc.stdout
    record = json.loads((run / "run.json").read_text())
    assert "figure" in record["reused"]
    items = record["stages"]["accessories"]["items"]
    assert [i["text"] for i in items] == ["brass gear", "tea cup"]
    assert items[0]["raw"] == old[0]["raw"] and (run / items[0]["raw"]).read_bytes() == kept
    assert "generation" not in record["timings"] and record["timings"]["accessories"] > 0


def test_candidates_are_kept_and_scored(tiny_weights, photo, tmp_path):
    proc = make(tmp_path, tiny_weights, photo, "--name", "Ada", "--candidates", "3", "--seed", "3")
    assert proc.returncode == 0, proc.stderr
    fig = json.loads((tmp_path / "fig.run" / "run.json").read_text())["stages"]["figure"]
    assert fig["seeds"] == [3, 4, 5]
    assert len(fig["files"]) == 3 and all((tmp_path / "fig.run" / f).exists() for f in fig["files"])
    assert len(fig["scores"]) == 3
    for i, score in enumerate(fig["scores"]):
        shown = "no face detected" if score is None else f"{score:.4f}"
        assert f"candidate {i} (seed {3 + i}): identity score {shown}" in proc.stdout
    scored = [s for s in fig["scores"] if s is not None]
    if scored:
        assert fig["scores"][fig["best"]] == max(scored)


def test_run_dir_holds_no_photo_bytes_or_exif(first_run, photo):
    from tests.scan import scan_for_leaks

    tmp, _ = first_run
    assert scan_for_leaks(tmp, photo) == []


def test_missing_weights_is_one_line_naming_the_file(tmp_path, photo):
    proc = make(tmp_path, tmp_path / "empty", photo, "--name", "Ada")
    assert proc.returncode == 3
    line = one_error_line(proc)
    assert "figurine weights fetch" in line and str(tmp_path / "empty") in line


def test_unknown_config_key_is_one_line_naming_it(tmp_path, tiny_weights, photo):
    proc = make(tmp_path, tiny_weights, photo, "--name", "Ada", "--set", "generation.stepz=3")
    assert proc.returncode == 2
    assert "generation.stepz" in one_error_line(proc)


def test_photo_without_a_face_is_one_line(tmp_path, tiny_weights):
    wall = make_flat_photo(tmp_path / "wall.jpg")
    proc = make(tmp_path, tiny_weights, wall, "--name", "Ada")
    assert proc.returncode == 2
    assert "no face" in one_error_line(proc)
    assert not (tmp_path / "fig.png").exists()
    assert not (tmp_path / "fig.run").exists()  # no empty run directory left behind (issue 13)


def test_existing_output_is_not_overwritten_without_force(first_run, tiny_weights, photo):
    tmp, _ = first_run
    before = (tmp / "fig.png").read_bytes()
    proc = make(tmp, tiny_weights, photo, "--name", "Ada")
    assert proc.returncode == 2 and "--force" in one_error_line(proc)
    assert (tmp / "fig.png").read_bytes() == before


def test_help_does_not_import_torch():
    import subprocess

    code = ("import sys\nfrom figurine.cli import main\n"
            "for argv in (['--help'], ['make', '--help']):\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
            "print(sorted(m for m in ('torch', 'diffusers', 'transformers', 'insightface') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_pack_run_recomposes_from_the_cache_with_a_new_name_and_template(first_run, tmp_path):
    tmp, _ = first_run
    run = tmp_path / "copy.run"
    shutil.copytree(tmp / "fig.run", run)
    proc = run_figurine("pack", "--run", run, "--name", "Grace Hopper", "--template", "vintage-80s",
                        "-o", tmp_path / "grace.png", cwd=tmp_path, env={"FIGURINE_WEIGHTS": str(tmp_path / "none")})
    assert proc.returncode == 0, proc.stderr
    assert "no model loaded" in proc.stdout
    record = json.loads((run / "run.json").read_text())
    assert record["request"]["name"] == "Grace Hopper" and record["resolved"]["template"] == "vintage-80s"
    assert record["stages"]["figure"] == json.loads((tmp / "fig.run" / "run.json").read_text())["stages"]["figure"]
    with Image.open(tmp_path / "grace.png") as im:
        assert im.size == (1080, 1350)
        assert json.loads(im.text["figurine"])["request"]["name"] == "Grace Hopper"
    assert not any(p.suffix == ".safetensors" for p in run.rglob("*"))


def test_own_accessory_picture_is_cut_out_and_survives_a_rerun(tiny_weights, photo, tmp_path):
    item = Image.new("RGB", (200, 200), (210, 210, 210))
    item.paste((180, 40, 40), (60, 50, 140, 150))  # a red block on the plain grey backdrop
    item.save(tmp_path / "block.png")
    cutout = Image.new("RGBA", (120, 120), (0, 0, 0, 0))
    cutout.paste((30, 90, 200, 255), (20, 30, 100, 90))  # an RGBA cut-out: used as it is
    cutout.save(tmp_path / "cutout.png")
    proc = make(tmp_path, tiny_weights, photo, "--name", "Ada", "--accessory-image", tmp_path / "block.png",
                "--accessory-image", tmp_path / "cutout.png")
    assert proc.returncode == 0, proc.stderr
    run = tmp_path / "fig.run"
    items = json.loads((run / "run.json").read_text())["stages"]["accessories"]["items"]
    assert len(items) == 2 and all(i["own_image"] for i in items)
    alpha = np.asarray(Image.open(run / items[0]["matte"]).getchannel("A"))
    assert alpha[100, 100] == 255 and alpha[5, 5] == 0  # the block kept, its backdrop keyed out
    kept = np.asarray(Image.open(run / items[1]["matte"]))
    assert np.array_equal(kept, np.asarray(cutout))
    again = run_figurine("make", "--run", run, "--name", "Ada L.", "--weights", tiny_weights,
                         "-o", tmp_path / "again.png", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "reused: figure" in again.stdout


def test_a_rerun_after_pack_run_replaces_its_own_package_without_force(first_run, tiny_weights, tmp_path):
    """Issue 13: README order, `pack --run ... -o other.png` then `make --run RUN --name ...`: the
    re-run writes the run's own package again (figurine wrote it), no --force needed; a file
    figurine did not write is still refused."""
    tmp, _ = first_run
    run = tmp_path / "fig.run"
    shutil.copytree(tmp / "fig.run", run)
    shutil.copy(tmp / "fig.png", tmp_path / "fig.png")
    shutil.copy(tmp / "fig.json", tmp_path / "fig.json")
    packed = run_figurine("pack", "--run", run, "--template", "vintage-80s", "-o", tmp_path / "fig-80s.png",
                          cwd=tmp_path)
    assert packed.returncode == 0, packed.stderr
    again = run_figurine("make", "--run", run, "--name", "Ada L.", "--weights", tiny_weights, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert json.loads((tmp_path / "fig.json").read_text())["request"]["name"] == "Ada L."
    (tmp_path / "fig.png").write_bytes(b"someone else's picture")
    refused = run_figurine("make", "--run", run, "--name", "Ada M.", "--weights", tiny_weights, cwd=tmp_path)
    assert refused.returncode == 2 and "--force" in one_error_line(refused)


def test_the_output_format_follows_the_extension(first_run, tiny_weights, tmp_path):
    """Issue 13: `-o x.jpg` writes a JPEG (and `.webp` a WebP) carrying the settings; `-o x.gif`
    is refused before any model loads."""
    tmp, _ = first_run
    run = tmp_path / "fig.run"
    shutil.copytree(tmp / "fig.run", run)
    for name, fmt in (("fig.jpg", "JPEG"), ("fig.webp", "WEBP")):
        proc = run_figurine("pack", "--run", run, "-o", tmp_path / name, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        with Image.open(tmp_path / name) as im:
            assert im.format == fmt
        from figurine.provenance import read_provenance

        assert read_provenance(tmp_path / name)["request"]["name"] == "Ada Lovelace"
    proc = run_figurine("make", run.parent / "none.jpg", "--name", "Ada", "-o", tmp_path / "fig.gif", cwd=tmp_path)
    assert proc.returncode == 2 and "unknown output format" in one_error_line(proc)

