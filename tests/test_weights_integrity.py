"""Weights integrity (issue 12, findings 5-7): damaged, pickled, looping and non-file weights.

Each test damages a copy of the tiny weights tree the way the finding describes and runs the real
code on it: `figurine make` / `figurine weights verify` as subprocesses for what a user sees (one
line, the documented exit code, nothing written), the Generator and FaceAnalyzer in-process for
the float32 run and the parts the CLI reaches only through the pipeline.

Damage is made with the real formats: a NaN tensor is written back with safetensors (the header
stays valid, so only the finite check can catch it); flipped bytes go into a tensor's data, past
the header (so check_safetensors passes and only a full hash catches them).
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import struct
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from figurine import weights
from figurine.errors import GenerationError, WeightsError
from tests.conftest import ROOT, TINY_CONFIG, one_error_line, run_figurine
from tests.photos import make_face_photo

UNET = "sdxl-base/unet/diffusion_pytorch_model.fp16.safetensors"
CONTROLNET = "controlnet-openpose-sdxl/diffusion_pytorch_model.safetensors"
VAE = "sdxl-vae-fp16-fix/diffusion_pytorch_model.safetensors"
NAN_TENSOR = "mid_block.resnets.0.conv1.weight"  # deep in the UNet: every output pixel depends on it
DOCS = (ROOT / "docs" / "bad-input.md").read_text()


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    return make_face_photo(tmp_path_factory.mktemp("photo") / "selfie.jpg")


def tree_copy(tiny_weights: Path, dest: Path, record: bool = True) -> Path:
    """A private copy of the tiny tree; `record`: its hashes recorded, as fetch records its files."""
    shutil.copytree(tiny_weights, dest, ignore=shutil.ignore_patterns(".figurine-*"))
    if record:
        weights.record_hashes(dest, source="figurine tiny test weights")
    return dest


def set_nan(path: Path, name: str) -> None:
    """Rewrite one tensor of a safetensors file as all-NaN, header and metadata kept valid."""
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    tensors = load_file(str(path))
    tensors[name] = torch.full_like(tensors[name], float("nan"))
    save_file(tensors, str(path), metadata=meta)
    weights.check_safetensors(path)


def flip_data_bytes(path: Path, tensor: str, count: int = 4) -> None:
    """Invert `count` bytes in the middle of `tensor`'s data (past the header; size unchanged)."""
    data = bytearray(path.read_bytes())
    n = struct.unpack("<Q", data[:8])[0]
    begin, end = json.loads(data[8:8 + n])[tensor]["data_offsets"]
    at = 8 + n + (begin + end) // 2
    data[at:at + count] = bytes(b ^ 0xFF for b in data[at:at + count])
    path.write_bytes(bytes(data))
    weights.check_safetensors(path)  # the header check cannot see it


def make(tmp: Path, root: Path, photo: Path, *extra, timeout: float = 300):
    return run_figurine("make", photo, "--name", "Ada", "--weights", root, "--config", TINY_CONFIG,
                        "-o", tmp / "fig.png", *extra, cwd=tmp, timeout=timeout)


def error_message(proc) -> str:
    return one_error_line(proc).removeprefix("figurine: error: ")


def nothing_written(tmp: Path) -> None:
    assert not (tmp / "fig.png").exists() and not (tmp / "fig.json").exists()
    assert not list(tmp.glob("fig.run/figure-*.png")), list(tmp.glob("fig.run/*"))


def documented(message: str, root: Path) -> bool:
    """docs/bad-input.md shows the message with WEIGHTS for the weights root."""
    return message.replace(str(root), "WEIGHTS") in DOCS


# ------------------------------------------------------------------------ finite first step

def test_a_nan_unet_weight_stops_make_at_the_first_step(tmp_path, tiny_weights, photo):
    """Finding 7: an all-NaN tensor loads silently and made a black figure. float16 (tiny.toml)."""
    root = tree_copy(tiny_weights, tmp_path / "w", record=False)
    set_nan(root / UNET, NAN_TENSOR)
    proc = make(tmp_path, root, photo)
    assert proc.returncode == 4, proc.stderr
    message = error_message(proc)
    assert message.startswith("the UNet/ControlNet produced NaN at the first denoising step of the figure: ")
    assert f"'{NAN_TENSOR}' is NaN/inf in {root / UNET}" in message  # the file, not just the folder
    assert message.endswith("(a damaged weights file? run `figurine weights verify`)")
    nothing_written(tmp_path)
    assert "UNet/ControlNet produced NaN at the first denoising step" in DOCS


@pytest.fixture(scope="module")
def nan_generator(tmp_path_factory, tiny_weights):
    """A float32 Generator on a tree whose UNet and VAE each carry one all-NaN tensor."""
    from figurine.config import load_config
    from figurine.generate import Generator

    root = tree_copy(tiny_weights, tmp_path_factory.mktemp("nan32") / "w", record=False)
    set_nan(root / UNET, NAN_TENSOR)
    vae_tensor = "decoder.conv_in.weight"
    set_nan(root / VAE, vae_tensor)
    cfg = load_config([TINY_CONFIG], ["runtime.dtype=float32"], weights=root)
    return Generator(cfg), root, vae_tensor


def test_figure_and_accessories_stop_on_nan_in_float32(nan_generator):
    gen, root, _ = nan_generator
    g = gen.cfg.generation
    control = Image.new("RGB", (g.width, g.height))
    with pytest.raises(GenerationError) as err:
        gen.figure("a figure", "", control, torch.randn(512), seed=1)
    assert f"'{NAN_TENSOR}' is NaN/inf in {root / UNET}" in err.value.message
    assert err.value.exit_code == 4
    with pytest.raises(GenerationError) as err:
        gen.accessories([("a brass gear", "", 1)], width=64, height=64, steps=2, guidance=5.0)
    assert err.value.message.startswith("the UNet produced NaN at the first denoising step of the accessories: ")
    assert f"in {root / UNET}" in err.value.message


def test_a_nan_vae_weight_is_an_error_not_a_black_picture(nan_generator):
    gen, root, vae_tensor = nan_generator
    latents = torch.randn(1, gen.pipe.vae.config.latent_channels, 8, 8)  # finite: only the VAE can NaN
    with pytest.raises(GenerationError) as err:
        gen.decode(latents)
    assert err.value.message == f"the VAE decoded NaN/inf: VAE weight '{vae_tensor}' is NaN/inf in {root / VAE}"


def test_a_nan_in_a_style_lora_names_the_lora_file(tmp_path, tiny_weights):
    """A style LoRA (loaded with use_safetensors=True) with one NaN tensor: the message names
    the LoRA's file, not the UNet's, though the tensor lives in the UNet."""
    from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    from figurine.config import load_config
    from figurine.generate import Generator

    root = tree_copy(tiny_weights, tmp_path / "w", record=False)
    unet = UNet2DConditionModel.from_pretrained(root / "sdxl-base" / "unet", variant="fp16")
    unet.add_adapter(LoraConfig(r=2, lora_alpha=2, target_modules=["to_q", "to_k", "to_v"],
                                init_lora_weights="gaussian"))
    StableDiffusionXLPipeline.save_lora_weights(root / "loras", unet_lora_layers=get_peft_model_state_dict(unet),
                                                weight_name="style.safetensors")
    lora = root / "loras" / "style.safetensors"
    set_nan(lora, sorted(load_file(str(lora)))[0])
    gen = Generator(load_config([TINY_CONFIG], ['model.loras=["loras/style.safetensors"]', "runtime.dtype=float32"],
                                weights=root))
    assert gen.adapter_names == ["faceid_0", "style_0"]
    with pytest.raises(GenerationError) as err:
        gen.figure("a figure", "", Image.new("RGB", (64, 64)), torch.randn(512), seed=1)
    assert re.search(rf"UNet weight '[\w.]+\.lora_[AB]\.style_0\.weight' is NaN/inf in {re.escape(str(lora))}$",
                     err.value.message), err.value.message


# ------------------------------------------------------------------------ full hashes

def test_flipped_data_bytes_are_found_by_verify_and_refused_by_make(tmp_path, tiny_weights, photo):
    """Finding 7: flipped bytes in a tensor's data pass the header check and load silently."""
    root = tree_copy(tiny_weights, tmp_path / "w")
    r = run_figurine("weights", "verify", "--weights", root, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr  # the recorded tree itself verifies
    assert "not the manifest's" in r.stdout  # and says its hashes are local, not the manifest's
    tensor = next(iter(load_file(str(root / CONTROLNET))))
    flip_data_bytes(root / CONTROLNET, tensor)

    r = run_figurine("weights", "verify", "--weights", root, cwd=tmp_path)
    assert r.returncode == 3
    bad = [line for line in r.stdout.splitlines() if line.startswith("problem:")]
    assert len(bad) == 1 and bad[0].startswith(f"problem: altered: {root / CONTROLNET} has sha256 "), r.stdout
    assert error_message(r) == f"1 weights problem(s) in {root} (run `figurine weights fetch`)"

    proc = make(tmp_path, root, photo, "--set", "runtime.verify_weights=true")
    assert proc.returncode == 3, proc.stderr
    message = error_message(proc)
    assert message.startswith(f"altered weights file {root / CONTROLNET}: sha256 ")
    assert message.endswith("(delete it and run `figurine weights fetch`)")
    assert documented(message.split(": sha256 ")[0], root)
    nothing_written(tmp_path)


def test_verify_on_an_intact_tree_loads_and_feeds_provenance(tmp_path, tiny_weights):
    """No false alarm: the recorded tree loads with verify on, and the hashes it computed are the
    ones provenance then records (from the run cache, for the bytes on disk)."""
    from figurine.config import load_config
    from figurine.generate import Generator

    root = tree_copy(tiny_weights, tmp_path / "w")
    (root / weights.HASH_CACHE).unlink()
    Generator(load_config([TINY_CONFIG], ["runtime.verify_weights=true"], weights=root))
    cache = json.loads((root / weights.HASH_CACHE).read_text())
    for rel in (UNET, CONTROLNET, "sdxl-base/text_encoder/config.json"):
        on_disk = weights.sha256_file(root / rel)
        assert cache[str((root / rel).resolve())]["sha256"] == on_disk, rel
        assert weights.file_hashes([root / rel], root) == {str(root / rel): on_disk}


def test_face_models_are_hashed_before_onnxruntime_opens_them(tmp_path, tiny_weights):
    from figurine.face import FaceAnalyzer

    root = tree_copy(tiny_weights, tmp_path / "w")
    pack = root / "insightface" / "buffalo_l"
    FaceAnalyzer(pack, verify_root=root)  # intact: loads
    data = bytearray((pack / "det_10g.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (pack / "det_10g.onnx").write_bytes(bytes(data))
    FaceAnalyzer(pack)  # without verify the damaged detector loads: the finding
    with pytest.raises(WeightsError, match=rf"^altered weights file {pack / 'det_10g.onnx'}: sha256 "):
        FaceAnalyzer(pack, verify_root=root)


def test_verify_files_refuses_an_unrecorded_tree_against_the_manifest(tmp_path, tiny_weights):
    """Without records the tiny files are checked against the manifest's pins, and differ."""
    root = tree_copy(tiny_weights, tmp_path / "w", record=False)
    config = root / "sdxl-vae-fp16-fix" / "config.json"
    with pytest.raises(WeightsError) as err:
        weights.verify_files([root / "sdxl-vae-fp16-fix"], root)
    assert err.value.message == f"altered weights file {config}: {config.stat().st_size} bytes, expected 631"
    # A tampered records file is read as untrusted: a malformed entry is ignored, not trusted.
    (root / weights.VERIFIED).write_text(json.dumps({"sdxl-vae-fp16-fix/config.json": {"sha256": "x", "size": "y"}}))
    with pytest.raises(WeightsError, match="expected 631"):
        weights.verify_files([root / "sdxl-vae-fp16-fix"], root)


# ------------------------------------------------------------------------ no pickles

class _Gadget:
    """Runs code when unpickled: proof that nothing unpickled it."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_pickled_bin_where_a_safetensors_is_expected_is_refused(tmp_path, tiny_weights, photo):
    """Finding 7: diffusers fell back to a .bin when the safetensors file was missing."""
    root = tree_copy(tiny_weights, tmp_path / "w", record=False)
    st = root / UNET
    marker = tmp_path / "unpickled"
    torch.save({**load_file(str(st)), "payload": _Gadget(marker)}, st.with_suffix(".bin"))
    st.unlink()
    proc = make(tmp_path, root, photo)
    assert proc.returncode == 3, proc.stderr
    message = error_message(proc)
    pickled = st.with_suffix(".bin")
    assert message == (f"{pickled} is a pickled checkpoint; figurine never loads pickles (delete it: "
                       "`figurine weights fetch` converts upstream pickles to safetensors)")
    assert documented(message, root)
    assert not marker.exists()
    nothing_written(tmp_path)


@pytest.mark.parametrize("key, name", [("model.loras", "style.ckpt"), ("model.ip_adapter", "faceid.bin"),
                                       ("model.loras", "style.lora")])
def test_a_model_file_the_config_names_must_be_safetensors(tmp_path, tiny_weights, key, name):
    from figurine.config import load_config
    from figurine.generate import Generator

    root = tree_copy(tiny_weights, tmp_path / "w", record=False)
    (root / name).write_bytes(b"not loaded")
    value = f'["{name}"]' if key == "model.loras" else name
    cfg = load_config([TINY_CONFIG], [f"{key}={value}"], weights=root)
    with pytest.raises(WeightsError) as err:
        Generator(cfg)
    if name.endswith(".lora"):
        assert err.value.message == (f"model.loras entry {root / name} is not a .safetensors file; "
                                     "figurine loads model weights only from safetensors")
    else:
        assert err.value.message.startswith(f"{root / name} is a pickled checkpoint; figurine never loads pickles")


def _pickle_loaders(path: Path) -> list[str]:
    """Calls and imports in one module that can unpickle: torch.load, torch.jit.load, pickle /
    dill / joblib / cloudpickle, numpy.load(allow_pickle=True)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
            if any(n and n.split(".")[0] in ("pickle", "dill", "joblib", "cloudpickle", "_pickle") for n in names):
                found.append(f"{path.name}:{node.lineno}: import")
        elif isinstance(node, ast.Call):
            name = ast.unparse(node.func)
            unsafe_np = name.endswith("load") and any(
                k.arg == "allow_pickle" and not (isinstance(k.value, ast.Constant) and k.value.value is False)
                for k in node.keywords)
            if name in ("torch.load", "torch.jit.load") or name.startswith("pickle.") or unsafe_np:
                weights_only = any(k.arg == "weights_only" and isinstance(k.value, ast.Constant)
                                   and k.value.value is True for k in node.keywords)
                found.append(f"{path.name}:{node.lineno}: {name}" + (" weights_only" if weights_only else ""))
    return found


def test_no_pickle_loader_outside_the_fetch_conversion(tmp_path):
    """The only unpickling call in figurine is convert_pickle's torch.load(weights_only=True)."""
    found = [hit for path in sorted((ROOT / "figurine").rglob("*.py")) for hit in _pickle_loaders(path)]
    assert len(found) == 1, found
    assert found[0].startswith("weights.py:") and found[0].endswith("torch.load weights_only"), found
    probe = tmp_path / "probe.py"  # the check can see them
    probe.write_text("import torch, pickle\nimport numpy as np\ntorch.load('x')\nnp.load('y', allow_pickle=True)\n")
    assert len(_pickle_loaders(probe)) == 3
    # Every diffusers load in the generation stage asks for safetensors only.
    loads = [node for node in ast.walk(ast.parse((ROOT / "figurine" / "generate.py").read_text()))
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
             and node.func.attr in ("from_pretrained", "load_ip_adapter", "load_lora_weights")]
    assert len(loads) == 6  # ControlNet, VAE, CLIP image encoder (Plus V2), base, FaceID adapter, LoRAs
    for node in loads:
        assert any(k.arg == "use_safetensors" and getattr(k.value, "value", None) is True for k in node.keywords), \
            ast.unparse(node.func)


# ------------------------------------------------------------------------ FIFOs, devices, loops

def test_a_fifo_named_safetensors_does_not_hang_make(tmp_path, tiny_weights, photo):
    """Finding 6: `make` opened the FIFO and waited for a writer forever."""
    root = tree_copy(tiny_weights, tmp_path / "w", record=False)
    fifo = root / "sdxl-base" / "unet" / "extra.safetensors"
    os.mkfifo(fifo)
    proc = make(tmp_path, root, photo, timeout=120)  # subprocess.TimeoutExpired fails the test
    assert proc.returncode == 3, proc.stderr
    message = error_message(proc)
    assert message == (f"{fifo} is a FIFO, not a regular file; figurine opens only regular files from the "
                       "weights folder (delete it)")
    assert documented(message, root)
    nothing_written(tmp_path)
    # The other readers do not block on it either.
    for call in (lambda: weights.sha256_file(fifo), lambda: weights.check_safetensors(fifo),
                 lambda: weights.file_hashes([fifo.parent], root)):
        with pytest.raises(WeightsError, match="is a FIFO, not a regular file"):
            call()
    problems = weights.verify(root)
    assert [p.kind for p in problems if p.path == fifo] == ["not-a-file"]


def test_a_device_in_the_tree_is_refused_unopened(tmp_path, tiny_weights):
    root = tree_copy(tiny_weights, tmp_path / "w", record=False)
    link = root / "sdxl-base" / "unet" / "zero.safetensors"
    link.symlink_to("/dev/zero")  # a link out of the tree
    with pytest.raises(WeightsError, match=rf"^{link} links out of the weights folder \(to /dev/zero\)"):
        weights.check_tree([root / "sdxl-base"], root)
    link.unlink()
    with pytest.raises(WeightsError, match=r"^/dev/zero is a character device, not a regular file"):
        weights.check_tree(["/dev/zero"], root)  # a path the config names itself
    with pytest.raises(WeightsError, match=r"is a character device"):
        weights.sha256_file("/dev/zero")  # never reads endless bytes


def test_a_symlink_loop_is_one_line_not_a_traceback(tmp_path, tiny_weights, photo):
    """Finding 5: ELOOP from a link loop in the weights tree ended in a traceback."""
    root = tree_copy(tiny_weights, tmp_path / "w", record=False)
    unet = root / "sdxl-base" / "unet"
    (unet / "a.safetensors").symlink_to("b.safetensors")
    (unet / "b.safetensors").symlink_to("a.safetensors")
    proc = make(tmp_path, root, photo)
    assert proc.returncode == 3, proc.stderr
    message = error_message(proc)
    assert message == f"{unet / 'a.safetensors'} is a symbolic link loop; fix or delete the link"
    assert documented(message, root)
    for p in ("a.safetensors", "b.safetensors"):
        (unet / p).unlink()
    # A link back up the tree is a loop too (walking it would never end), found at the link.
    (unet / "up").symlink_to("../..")
    with pytest.raises(WeightsError, match=rf"^{unet / 'up'} is a symbolic link loop \(it leads back to {root}\)"):
        weights.check_tree([root / "sdxl-base"], root)
    problems = {p.path: p.kind for p in weights.verify(root) if p.fatal}
    assert problems.get(unet / "up") == "loop"


def test_links_that_stay_inside_are_followed(tmp_path, tiny_weights):
    """Allowed: a link inside the root to a regular file inside it; the root itself, or a model
    folder the config names, as a link to another disk (the big files elsewhere)."""
    elsewhere = tree_copy(tiny_weights, tmp_path / "disk" / "w", record=False)
    root = tmp_path / "w"
    root.mkdir()
    (root / "sdxl-base").symlink_to(elsewhere / "sdxl-base")  # a model folder on another disk
    files = weights.check_tree([root / "sdxl-base"], root)
    assert root / UNET in files
    unet = elsewhere / "sdxl-base" / "unet"
    moved = unet / "blob.safetensors"
    (unet / Path(UNET).name).rename(moved)
    (unet / Path(UNET).name).symlink_to("blob.safetensors")  # a link to a file inside the folder
    assert root / UNET in weights.check_tree([root / "sdxl-base"], root)
    linked_root = tmp_path / "root-link"
    linked_root.symlink_to(elsewhere)  # the root itself as a link
    assert linked_root / UNET in weights.check_tree([linked_root / "sdxl-base"], linked_root)


# ------------------------------------------------------------------------ docs

def test_docs_have_a_weights_section_with_every_new_message():
    section = DOCS.split("## Weights integrity", 1)[1]
    for text in ("is a FIFO, not a regular file", "is a symbolic link loop", "links out of the weights folder",
                 "is a pickled checkpoint; figurine never loads pickles", "altered weights file",
                 "is not a .safetensors file", "produced NaN at the first denoising step", "the VAE decoded NaN/inf",
                 "runtime.verify_weights"):
        assert text in section, text
