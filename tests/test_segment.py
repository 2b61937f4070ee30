"""The learned cut-out (figurine/segment.py, Matter in figurine/matte.py) on tiny BiRefNet stand-ins.

scripts/tiny_birefnet.py writes ONNX graphs with the pinned export's input and output (names,
dtype, NCHW layout, 1024x1024) whose fixed layers compute a mask from the pixels, so the real
loading, pre-processing, onnxruntime session, sigmoid, resizing and edge refinement run here:
- cue "texture" (what the tiny weights tree installs) finds textured or shaded things whatever
  their colour; its edges are about one 8 px cell too wide;
- cue "colour" finds strongly coloured things with exact soft edges (for the edge-colour test).
What these graphs decide is a property of their chosen weights. So the grey-suit and silver tests
show that whatever the model keeps, the cut-out keeps (where the colour key, judging by colour
alone, loses those parts); they say nothing about how well the real BiRefNet sees grey cloth.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from PIL import Image, ImageDraw

from figurine import weights
from figurine.errors import ConfigError, WeightsError
from figurine.matte import Matter
from figurine.segment import DEFAULT_SIZE, INPUT_NAME, MEAN, MODEL_FILE, OUTPUT_NAME, STD, Segmenter
from tests.matte_pictures import SPECKS, grey_suit, silver_flask
from tests.test_matte import GREY, RED, _scene

ROOT = Path(__file__).resolve().parent.parent


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    tiny = _script("tiny_birefnet")
    folder = tmp_path_factory.mktemp("birefnet")
    return {
        "float32": tiny.write_model(folder / "fp32" / "model.onnx"),
        "float16": tiny.write_model(folder / "fp16" / "model.onnx", dtype="float16"),
        "colour": tiny.write_model(folder / "colour" / "model.onnx", cue="colour"),
    }


@pytest.fixture(scope="module", params=["float32", "float16"])
def learned(request, models) -> Matter:
    return Matter("birefnet", models[request.param])


@pytest.fixture(scope="module")
def colour_key() -> Matter:
    return Matter("colour-key")


@pytest.fixture(scope="module")
def suit():
    return grey_suit()


@pytest.fixture(scope="module")
def flask():
    return silver_flask()


def _alpha(rgba: Image.Image) -> np.ndarray:
    return np.asarray(rgba.getchannel("A"))


def _inside(mask: np.ndarray, px: int = 2) -> np.ndarray:
    return cv2.erode(mask.astype(np.uint8), np.ones((2 * px + 1, 2 * px + 1), np.uint8)) > 0


def _far_outside(mask: np.ndarray, px: int = 12) -> np.ndarray:
    return cv2.dilate(mask.astype(np.uint8), np.ones((2 * px + 1, 2 * px + 1), np.uint8)) == 0


def _graph(path: Path, inputs, outputs, nodes, initializers=()) -> Path:
    model = helper.make_model(helper.make_graph(nodes, "probe", inputs, outputs, initializer=list(initializers)),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


# --------------------------------------------------------------------------------- the pictures

def test_grey_suit_is_kept_by_the_learned_cut_out_and_lost_by_the_colour_key(suit, learned, colour_key):
    cloth, backdrop = _inside(suit.grey), _far_outside(suit.figure)
    rgba, used = learned.cut_out(suit.image)
    keyed, key_used = colour_key.cut_out(suit.image)
    assert (used, key_used) == ("birefnet", "colour-key")
    a, k = _alpha(rgba), _alpha(keyed)
    assert (a[cloth] == 255).mean() > 0.98, "the suit the model keeps must stay opaque"
    assert (k[cloth] == 255).mean() < 0.5, "the colour key cannot tell light grey cloth from the backdrop"
    for alpha in (a, k):  # both: the backdrop goes, the coloured parts stay, the specks go
        assert (alpha[backdrop] == 0).mean() > 0.99
        assert alpha[60, 160] == 255 and alpha[150, 160] == 255     # face, tie
        for x, y in SPECKS:
            assert alpha[y:y + 3, x:x + 3].max() == 0


def test_silver_accessory_is_kept_by_the_learned_cut_out_and_cut_by_the_colour_key(flask, learned, colour_key):
    metal, backdrop = _inside(flask.grey), _far_outside(flask.figure)
    rgba, used = learned.cut_out(flask.image)
    keyed, _ = colour_key.cut_out(flask.image)
    a, k = _alpha(rgba), _alpha(keyed)
    assert used == "birefnet"
    assert (a[metal] == 255).mean() > 0.98
    assert (k[metal] == 255).mean() < 0.8, "where the shading passes through the backdrop's grey, the key cuts"
    assert (a[backdrop] == 0).mean() > 0.99 and (k[backdrop] == 0).mean() > 0.99


def test_float16_and_float32_models_give_the_same_cut_out(models, suit):
    a32 = _alpha(Matter("birefnet", models["float32"]).cut_out(suit.image)[0]).astype(int)
    a16 = _alpha(Matter("birefnet", models["float16"]).cut_out(suit.image)[0]).astype(int)
    assert np.abs(a32 - a16).mean() < 1.0 and (np.abs(a32 - a16) > 8).mean() < 0.005


def test_learned_edges_are_soft_and_carry_no_backdrop_colour(models):
    """The red scene of test_matte.py through the 'colour' graph: partial alpha at the edge, and
    those edge pixels have the figure's colour (decontaminated), not the grey backdrop's."""
    rgba, used = Matter("birefnet", models["colour"]).cut_out(_scene())
    arr = np.asarray(rgba).astype(np.float32)
    a = arr[..., 3] / 255.0
    assert used == "birefnet" and a[200, 160] == 1.0 and a[5, 5] == 0.0 and a[190, 90] == 0.0
    edge = (a > 0.15) & (a < 0.85)
    assert edge.sum() > 100, "the edge should be soft, not cut hard"
    rgb = arr[..., :3][edge]
    to_red = np.linalg.norm(rgb - np.array(RED, np.float32), axis=1)
    to_grey = np.linalg.norm(rgb - np.array(GREY, np.float32), axis=1)
    assert (to_red < to_grey).mean() > 0.97
    over_black = arr[..., :3] * a[..., None]
    assert over_black[edge].mean(axis=1).max() <= np.mean(RED) + 12


def test_alpha_spans_transparent_to_opaque_on_every_picture(models, suit, flask):
    matter = Matter("birefnet", models["float32"])
    for picture in (suit.image, flask.image, _scene(), _scene((97, 61))):
        rgba, _ = matter.cut_out(picture)
        a = _alpha(rgba)
        assert rgba.mode == "RGBA" and rgba.size == picture.size
        assert a.min() == 0 and a.max() == 255
    tiny, used = matter.cut_out(Image.new("RGB", (6, 5), (200, 30, 40)))   # too small for a backdrop model
    assert used == "birefnet" and tiny.mode == "RGBA" and tiny.size == (6, 5)


# --------------------------------------------------------------------------------- pre/post-processing

def test_the_model_sees_normalised_rgb_and_its_logits_pass_through_a_sigmoid(tmp_path):
    """A probe graph returns one input channel as its logits: the alpha is then exactly
    sigmoid((value / 255 - mean) / std) of that channel, at the picture's own (non-square) size,
    left and right where they were."""
    size = 64
    picture = Image.new("RGB", (90, 50), (200, 120, 40))
    ImageDraw.Draw(picture).rectangle([45, 0, 89, 49], fill=(20, 230, 250))
    for channel in (0, 2):
        path = _graph(
            tmp_path / f"probe{channel}.onnx",
            [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [1, 3, size, size])],
            [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [1, 1, size, size])],
            [helper.make_node("Slice", [INPUT_NAME, "start", "end", "axis"], [OUTPUT_NAME])],
            [onnx.numpy_helper.from_array(np.array([channel]), "start"),
             onnx.numpy_helper.from_array(np.array([channel + 1]), "end"),
             onnx.numpy_helper.from_array(np.array([1]), "axis")],
        )
        seg = Segmenter(path)
        assert seg.size == size
        alpha = seg.alpha(picture)
        assert alpha.shape == (50, 90) and alpha.dtype == np.float32
        for x, rgb in ((10, (200, 120, 40)), (80, (20, 230, 250))):
            expected = 1 / (1 + np.exp(-((rgb[channel] / 255 - MEAN[channel]) / STD[channel])))
            assert alpha[25, x] == pytest.approx(expected, abs=1e-3), (channel, x)


def test_a_dynamic_input_size_runs_at_1024(tmp_path):
    path = _graph(
        tmp_path / "dynamic.onnx",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", 1, "height", "width"])],
        [helper.make_node("ReduceMean", [INPUT_NAME], [OUTPUT_NAME], axes=[1], keepdims=1)],
    )
    seg = Segmenter(path)
    assert seg.size == DEFAULT_SIZE == 1024
    assert seg.prepare(Image.new("RGB", (30, 20))).shape == (1, 3, 1024, 1024)
    assert seg.alpha(Image.new("RGB", (30, 20), (255, 255, 255))).shape == (20, 30)


# --------------------------------------------------------------------------------- choosing and loading

def test_auto_uses_the_model_when_present_and_the_colour_key_when_not(models, tmp_path, suit):
    assert Matter("auto", models["float32"]).method == "birefnet"
    missing = Matter("auto", tmp_path / "birefnet-lite" / "model.onnx")
    assert missing.method == "colour-key" and missing.segmenter is None
    assert missing.cut_out(suit.image)[1] == "colour-key"
    assert Matter("auto", None).method == "colour-key"
    assert Matter("colour-key", models["float32"]).segmenter is None   # the model is not even loaded


def test_picture_with_its_own_alpha_is_used_as_is(models):
    img = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    ImageDraw.Draw(img).ellipse([10, 10, 50, 50], fill=(200, 200, 200, 255))
    out, used = Matter("birefnet", models["float32"]).cut_out(img)
    assert used == "input-alpha" and out.tobytes() == img.tobytes()


def test_unknown_method_is_a_config_error():
    with pytest.raises(ConfigError, match="matte.method must be one of auto, colour-key, birefnet"):
        Matter("grabcut")


def _wrong_signature(path: Path) -> Path:
    """insightface's recognition model layout: a 112 px input and a 512-vector output."""
    return _graph(path, [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, 112, 112])],
                  [helper.make_tensor_value_info("683", TensorProto.FLOAT, [1, 512])],
                  [helper.make_node("Flatten", ["input.1"], ["flat"]),
                   helper.make_node("Slice", ["flat", "s", "e", "ax"], ["683"])],
                  [onnx.numpy_helper.from_array(np.array([0]), "s"),
                   onnx.numpy_helper.from_array(np.array([512]), "e"),
                   onnx.numpy_helper.from_array(np.array([1]), "ax")])


def _two_channel_output(path: Path) -> Path:
    return _graph(path, [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [1, 3, 64, 64])],
                  [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [1, 2, 64, 64])],
                  [helper.make_node("Slice", [INPUT_NAME, "s", "e", "ax"], [OUTPUT_NAME])],
                  [onnx.numpy_helper.from_array(np.array([0]), "s"),
                   onnx.numpy_helper.from_array(np.array([2]), "e"),
                   onnx.numpy_helper.from_array(np.array([1]), "ax")])


@pytest.mark.parametrize("name, make, message", [
    ("model.onnx", None, "missing weights file"),
    ("model.pth", lambda p: p.write_bytes(b"\x80\x04pickle"), "is not an .onnx file"),
    ("model.safetensors", lambda p: p.write_bytes(b"{}"), "is not an .onnx file"),
    ("model.onnx", lambda p: p.write_bytes(b""), "is empty"),
    ("model.onnx", lambda p: p.write_bytes(b"<html>404 not found</html>" * 40), "damaged or not an ONNX model"),
    ("model.onnx", _wrong_signature, "does not have BiRefNet's inputs and outputs"),
    ("model.onnx", _two_channel_output, "does not have BiRefNet's inputs and outputs"),
])
def test_an_unusable_model_file_is_one_weights_error_naming_it(tmp_path, name, make, message):
    path = tmp_path / "birefnet-lite" / name
    path.parent.mkdir()
    if make:
        make(path)
    for method in ("birefnet", "auto"):  # a file that is there but unusable is never skipped silently
        if method == "auto" and make is None:
            continue
        with pytest.raises(WeightsError) as error:
            Matter(method, path)
        text = str(error.value)
        assert message in text and str(path) in text and "\n" not in text, text


def test_birefnet_without_a_model_setting_is_an_error():
    with pytest.raises(WeightsError, match="matte.model"):
        Matter("birefnet", None)


# --------------------------------------------------------------------------------- manifest and tiny tree

def test_the_tiny_graph_has_the_pinned_exports_signature(models):
    for dtype, elem in (("float32", TensorProto.FLOAT), ("float16", TensorProto.FLOAT16)):
        graph = onnx.load(models[dtype]).graph
        (inp,), (out,) = graph.input, graph.output
        dims = lambda v: [d.dim_value for d in v.type.tensor_type.shape.dim]  # noqa: E731
        assert (inp.name, inp.type.tensor_type.elem_type, dims(inp)) == (INPUT_NAME, elem, [1, 3, 1024, 1024])
        assert (out.name, out.type.tensor_type.elem_type, dims(out)) == (OUTPUT_NAME, elem, [1, 1, 1024, 1024])
        seg = Segmenter(models[dtype])
        assert seg.size == 1024 and seg.dtype == (np.float16 if dtype == "float16" else np.float32)
        assert seg.providers[-1] == "CPUExecutionProvider"


def test_manifest_pins_the_model_as_an_optional_mit_file():
    (entry,) = [e for e in weights.load_manifest() if e.path == MODEL_FILE]
    assert entry.optional and entry.commercial_use and entry.licence == "MIT"
    assert entry.remote.endswith(".onnx") and entry.sha256 and entry.revision and entry.size


def test_the_tiny_weights_tree_has_the_model_at_the_real_path(tiny_weights, suit):
    matter = Matter("auto", tiny_weights / MODEL_FILE)
    rgba, used = matter.cut_out(suit.image)
    assert used == "birefnet" and (_alpha(rgba)[_inside(suit.grey)] == 255).mean() > 0.98
