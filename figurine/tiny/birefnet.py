"""A tiny stand-in for BiRefNet's ONNX export: the same input and output, a few fixed layers.

    from pathlib import Path
    from figurine.tiny.birefnet import write_model
    write_model(Path("weights/birefnet-lite/model.onnx"))            # float32, like the pinned file
    write_model(Path("/tmp/model-fp16.onnx"), dtype="float16")       # float16 weights and I/O
    write_model(Path("/tmp/colour.onnx"), cue="colour")              # tight mask of coloured parts

    python -m figurine.tiny.birefnet FILE [--float16] [--cue colour]  # the same from the shell
    python scripts/tiny_birefnet.py FILE [--float16] [--cue colour]   # the same, from a clone

The pinned export (configs/weights.toml: BiRefNet_lite as exported by BiRefNet's own
cpp/py/pth2onnx.py, torch.onnx.export at opset 17 without dynamic axes) has exactly one input and
one output, and so does this graph:

    input_image   float[1, 3, 1024, 1024]  RGB / 255, normalised with ImageNet mean and std
    output_image  float[1, 1, 1024, 1024]  logits: sigmoid gives the foreground probability

figurine's loader (figurine/segment.py) checks those names, ranks, channel counts and sizes, and
runs every picture through the same pre- and post-processing as for the real model. Nothing here
is learned: the layers have chosen weights and compute a mask from the pixels, so the alpha the
tests see follows the picture. Both cues first undo the normalisation (x * std + mean).

cue "texture" (the default; what figurine/tiny/weights.py installs), a crude "something is
here" map that does not depend on the object's colour differing from the backdrop's:
  1. colour: |R - G| + |G - B|, ~0 on any grey (backdrop, grey suit, silver);
     detail: on a 4x4-pooled copy, |RGB - its 5x5 local mean| summed over channels: texture,
     shading and outlines; ~0 on a flat or evenly lit backdrop;
  2. energy = COLOUR_WEIGHT * colour + detail, averaged over 8x8-pixel cells (a 128x128 map);
  3. per cell p = sigmoid(GAIN * (energy - THRESHOLD));
  4. a morphological closing of p (two 3x3 dilations, then two erosions, as MaxPool) joins the
     cells of one object across smooth patches a cell or two wide;
  5. back to 1024x1024 (linear Resize); logits = SHARPNESS * (p - 0.5).
  So a figure in a textured grey suit, or brushed silver, is "here" and the flat grey backdrop is
  not. Its edges are only as good as its 8-pixel cells (at 1024 px): about a cell too wide.

cue "colour", a per-pixel mask with exact, soft edges for strongly coloured objects:
  logits = COLOUR_GAIN * (|R - G| + |G - B| - COLOUR_MID): half-covered edge pixels of a saturated
  red (|R - G| + |G - B| ~ 0.66) come out near 0.5, grey comes out 0.

What a cue decides is a property of these chosen weights, not evidence about BiRefNet's quality.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # onnx is imported where the graph is built, not with the module
    import onnx

INPUT_NAME = "input_image"
OUTPUT_NAME = "output_image"
SIZE = 1024  # the pinned export's fixed input size
MEAN = (0.485, 0.456, 0.406)  # ImageNet, as in BiRefNet's own inference code
STD = (0.229, 0.224, 0.225)
CUES = ("texture", "colour")

# texture cue
CELL = 8  # pixels per cell of the energy map (1024 / 8 = 128 cells a side)
DETAIL_POOL = 4  # detail is measured on a 256x256 average of the input ...
DETAIL_KERNEL = 5  # ... against its 5x5 local mean (20 px at the input size)
COLOUR_WEIGHT = 0.5
THRESHOLD = 0.02  # mean energy per cell for p = 0.5: studio noise ~0.01, fabric or brushed metal ~0.03
GAIN = 400.0
CLOSING = 2  # dilations, then as many erosions, each 3x3 cells
SHARPNESS = 12.0  # logits in [-6, 6]: sigmoid gives 0.0025 .. 0.9975

# colour cue
COLOUR_MID = 0.33
COLOUR_GAIN = 12.0

OPSET = 17  # as the pinned export
IR_VERSION = 8


def write_model(path: Path, dtype: str = "float32", cue: str = "texture") -> Path:
    """Write the graph to `path` (folders created); float32 or float16 weights and I/O."""
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model(dtype, cue), path)
    return path


def model(dtype: str = "float32", cue: str = "texture") -> onnx.ModelProto:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    if dtype not in ("float32", "float16"):
        raise ValueError(f"dtype must be float32 or float16, got {dtype!r}")
    if cue not in CUES:
        raise ValueError(f"cue must be one of {CUES}, got {cue!r}")
    np_type = np.float16 if dtype == "float16" else np.float32
    onnx_type = TensorProto.FLOAT16 if dtype == "float16" else TensorProto.FLOAT
    inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []

    def const(name: str, value, kind=None) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=kind or np_type), name))
        return name

    def node(op: str, inputs: list[str], output: str, **attrs) -> str:
        nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    # RGB in [0, 1], and its colourfulness |R - G| + |G - B| (a 1x1 convolution)
    std = const("std", np.array(STD).reshape(1, 3, 1, 1))
    mean = const("mean", np.array(MEAN).reshape(1, 3, 1, 1))
    rgb = node("Add", [node("Mul", [INPUT_NAME, std], "scaled"), mean], "rgb")
    chroma_w = np.array([[1, -1, 0], [0, 1, -1]]).reshape(2, 3, 1, 1)
    chroma = node("Abs", [node("Conv", [rgb, const("chroma_w", chroma_w)], "chroma_signed")], "chroma")
    axis = const("channel_axis", np.array([1]), np.int64)
    colour = node("ReduceSum", [chroma, axis], "colour", keepdims=1)

    if cue == "colour":
        centred = node("Sub", [colour, const("colour_mid", COLOUR_MID)], "colour_centred")
        logits = [centred, const("colour_gain", COLOUR_GAIN)]
    else:
        # 1. detail on a coarser copy
        coarse = node("AveragePool", [rgb], "coarse", kernel_shape=[DETAIL_POOL] * 2, strides=[DETAIL_POOL] * 2)
        half = DETAIL_KERNEL // 2
        local = node("AveragePool", [coarse], "local_mean", kernel_shape=[DETAIL_KERNEL] * 2, pads=[half] * 4,
                     count_include_pad=0)
        detail_all = node("Abs", [node("Sub", [coarse, local], "detail_signed")], "detail_abs")
        detail = node("ReduceSum", [detail_all, axis], "detail", keepdims=1)
        # 2. energy per cell
        cell = CELL // DETAIL_POOL
        colour_cells = node("AveragePool", [colour], "colour_cells", kernel_shape=[CELL, CELL], strides=[CELL, CELL])
        detail_cells = node("AveragePool", [detail], "detail_cells", kernel_shape=[cell, cell], strides=[cell, cell])
        energy = node("Add", [node("Mul", [colour_cells, const("colour_weight", COLOUR_WEIGHT)], "colour_weighted"),
                              detail_cells], "energy")
        # 3. probability per cell
        p = node("Sigmoid", [node("Mul", [node("Sub", [energy, const("threshold", THRESHOLD)], "excess"),
                                          const("gain", GAIN)], "cell_logit")], "p")
        # 4. closing: dilate, then erode (erosion = -maxpool(-x))
        x = p
        for i in range(CLOSING):
            x = node("MaxPool", [x], f"dilate{i}", kernel_shape=[3, 3], pads=[1, 1, 1, 1])
        x = node("Neg", [x], "inverted")
        for i in range(CLOSING):
            x = node("MaxPool", [x], f"erode{i}", kernel_shape=[3, 3], pads=[1, 1, 1, 1])
        closed = node("Neg", [x], "closed")
        # 5. logits at full size
        sizes = const("sizes", np.array([1, 1, SIZE, SIZE]), np.int64)
        full = node("Resize", [closed, "", "", sizes], "full", mode="linear",
                    coordinate_transformation_mode="half_pixel")
        logits = [node("Sub", [full, const("half", 0.5)], "centred"), const("sharpness", SHARPNESS)]
    nodes.append(helper.make_node("Mul", logits, [OUTPUT_NAME], name=OUTPUT_NAME))

    graph = helper.make_graph(
        nodes, f"tiny_birefnet_{cue}",
        [helper.make_tensor_value_info(INPUT_NAME, onnx_type, [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info(OUTPUT_NAME, onnx_type, [1, 1, SIZE, SIZE])],
        initializer=inits,
    )
    out = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="figurine-tiny")
    out.ir_version = IR_VERSION
    onnx.checker.check_model(out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--float16", action="store_true", help="float16 weights, input and output")
    parser.add_argument("--cue", choices=CUES, default="texture")
    args = parser.parse_args(argv)
    print(write_model(args.file, "float16" if args.float16 else "float32", args.cue))
    return 0


if __name__ == "__main__":
    sys.exit(main())
