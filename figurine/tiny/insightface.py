"""A synthetic insightface buffalo_l pack for tests: small ONNX graphs that respond to the image.

    from pathlib import Path
    from figurine.tiny.insightface import write_pack
    write_pack(Path("weights/insightface/buffalo_l"))   # det_10g.onnx + w600k_r50.onnx, ~1.3 MB

    python -m figurine.tiny.insightface DIR             # the same from the shell
    python scripts/tiny_insightface.py DIR              # the same, from a clone

insightface's own loader accepts the pack: a graph with 9 outputs is routed to its SCRFD detector
(strides 8/16/32, 2 anchors per cell, with keypoints), a square 112 px input to its ArcFace
recognition model. The numbers are made up, but they come from the pixels, so tests stay honest:

detector (det_10g.onnx), 1x3x640x640 input normalised by insightface to (pixel - 127.5) / 128:
  1. grey = channel mean, pooled 4x4 to a 160x160 map;
  2. detail = |Laplacian| of that map, zero where the letterbox padding (black) is near;
  3. two face slots on the stride-32 grid: LEFT, a large box left of centre, and RIGHT, a
     smaller box right of centre. Each scores sigmoid(GAIN * (mean detail in its box - THRESHOLD)).
  So a flat colour or smooth gradient (a blank wall) has no face; a picture with texture or
  shapes in one box has one face; with texture in both boxes it has two, of different sizes.
  Every other anchor scores 0. Boxes and the 5 keypoints (the ArcFace template placed in the
  box) are fixed, in the 640x640 detector frame; insightface scales them back to the photo.

recognition (w600k_r50.onnx), 1x3x112x112 aligned crop normalised to (pixel - 127.5) / 127.5:
  8x8 average pool -> flatten (588) -> cos(fixed random projection + phase), seed 112 -> 512:
  random Fourier features, so the cosine of two embeddings approximates a Gaussian kernel of the
  pooled crops. Identical crops give identical embeddings, a re-encoded JPEG nearly so, another
  face a clearly lower score.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # onnx is imported where a graph is built, not with the module
    import onnx

DET_FILE = "det_10g.onnx"
REC_FILE = "w600k_r50.onnx"

DET_SIZE = 640
STRIDES = (8, 16, 32)
ANCHORS = 2
POOL = 4  # the detail map is DET_SIZE / POOL = 160 px square
GAIN = 80.0
THRESHOLD = 0.05  # mean |Laplacian| (normalised units) for score 0.5; faces ~0.12+, walls <0.01

# Face slots: (anchor index, box x0, y0, x1, y1) in the 640x640 detector frame. The box
# centres sit on stride-32 anchor centres, so the decoded box is exactly this box.
LEFT = (0, 48, 176, 272, 400)  # 224 px square, centre (160, 288)
RIGHT = (1, 400, 208, 560, 368)  # 160 px square, centre (480, 288)
SLOTS = (LEFT, RIGHT)

# insightface's ArcFace template: eye, eye, nose, mouth corner, mouth corner in a 112 px crop.
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)

# Recognition: squared distance between 8x8-pooled crops of the test faces is 20..120, a JPEG
# re-encode of the same crop ~0.02; width^2 = 20 puts other faces at cosine 0.05..0.6.
RBF_WIDTH = float(np.sqrt(20.0))

OPSET = 13
IR_VERSION = 8  # old enough for every onnxruntime insightface supports


def write_pack(directory: Path) -> Path:
    """Write det_10g.onnx and w600k_r50.onnx into `directory` (created); return it."""
    import onnx

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    onnx.save(detector_model(), directory / DET_FILE)
    onnx.save(recognition_model(), directory / REC_FILE)
    return directory


# ---------------------------------------------------------------------------------------------
# detector


def slot_targets(slot: tuple[int, int, int, int, int], stride: int = 32) -> tuple[int, np.ndarray, np.ndarray]:
    """Anchor row, box distances and keypoint offsets (in stride units) for one face slot."""
    anchor, x0, y0, x1, y1 = slot
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    assert cx % stride == 0 and cy % stride == 0, "slot centres must sit on anchor centres"
    cells = DET_SIZE // stride
    row = (int(cy // stride) * cells + int(cx // stride)) * ANCHORS + anchor
    distances = np.array([cx - x0, cy - y0, x1 - cx, y1 - cy], dtype=np.float32) / stride
    kps = ARCFACE_TEMPLATE / 112.0 * np.array([x1 - x0, y1 - y0], dtype=np.float32) + [x0, y0]
    kps_offsets = (kps - [cx, cy]).astype(np.float32).reshape(-1) / stride
    return row, distances, kps_offsets


def detector_model() -> onnx.ModelProto:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    n32 = (DET_SIZE // 32) ** 2 * ANCHORS
    inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []

    def const(name: str, value) -> str:
        if name not in {init.name for init in inits}:
            inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(op: str, inputs: list[str], output: str, **attrs) -> str:
        nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    # 1. grey, pooled 4x4 -> [1, 1, 160, 160]
    grey = node("ReduceMean", ["input.1"], "grey", axes=[1], keepdims=1)
    small = node("AveragePool", [grey], "small", kernel_shape=[POOL, POOL], strides=[POOL, POOL])

    # 2. |Laplacian|, masked away from letterbox padding (pixel 0 -> -0.996)
    laplace = np.array([[0, -1, 0], [-1, 4, -1], [0, -1, 0]], dtype=np.float32).reshape(1, 1, 3, 3)
    lap = node("Conv", [small, const("laplace", laplace)], "lap", pads=[1, 1, 1, 1])
    lap_abs = node("Abs", [lap], "lap_abs")
    valid = node("Cast", [node("Greater", [small, const("pad_level", np.float32(-0.98))], "is_image")],
                 "valid", to=TensorProto.FLOAT)
    invalid = node("Sub", [const("one", np.float32(1.0)), valid], "invalid")
    near_pad = node("MaxPool", [invalid], "near_pad", kernel_shape=[7, 7], pads=[3, 3, 3, 3])
    keep = node("Sub", ["one", near_pad], "keep")
    detail = node("Mul", [lap_abs, keep], "detail")

    # 3. one score per face slot, placed on its stride-32 anchor row
    scores32 = None
    bbox32 = np.ones((n32, 4), dtype=np.float32)
    kps32 = np.zeros((n32, 10), dtype=np.float32)
    for i, slot in enumerate(SLOTS):
        _, x0, y0, x1, y1 = slot
        row, distances, kps_offsets = slot_targets(slot)
        box = node("Slice", [detail, const(f"start{i}", np.array([y0 // POOL, x0 // POOL])),
                             const(f"end{i}", np.array([y1 // POOL, x1 // POOL])),
                             const(f"axes{i}", np.array([2, 3]))], f"box{i}")
        mean = node("ReduceMean", [box], f"mean{i}", axes=[1, 2, 3], keepdims=0)  # [1]
        logit = node("Mul", [node("Sub", [mean, const("threshold", np.float32(THRESHOLD))], f"excess{i}"),
                             const("gain", np.float32(GAIN))], f"logit{i}")
        score = node("Sigmoid", [logit], f"score{i}")
        onehot = np.zeros((n32, 1), dtype=np.float32)
        onehot[row] = 1.0
        placed = node("Mul", [const(f"onehot{i}", onehot), score], f"placed{i}")
        scores32 = placed if scores32 is None else node("Add", [scores32, placed], f"scores_sum{i}")
        bbox32[row] = distances
        kps32[row] = kps_offsets
    nodes.append(helper.make_node("Identity", [scores32], ["score_32"], name="score_32"))
    nodes.append(helper.make_node("Identity", [const("bbox32", bbox32)], ["bbox_32"], name="bbox_32"))
    nodes.append(helper.make_node("Identity", [const("kps32", kps32)], ["kps_32"], name="kps_32"))

    # 4. strides 8 and 16: no face there (zeros, made at run time to keep the file small)
    for stride in (8, 16):
        n = (DET_SIZE // stride) ** 2 * ANCHORS
        for kind, width in (("score", 1), ("bbox", 4), ("kps", 10)):
            shape = const(f"shape_{kind}_{stride}", np.array([n, width], dtype=np.int64))
            nodes.append(helper.make_node("ConstantOfShape", [shape], [f"{kind}_{stride}"], name=f"{kind}_{stride}",
                                          value=numpy_helper.from_array(np.zeros(1, np.float32))))

    outputs = [
        helper.make_tensor_value_info(f"{kind}_{stride}", TensorProto.FLOAT, [(DET_SIZE // stride) ** 2 * ANCHORS, width])
        for kind, width in (("score", 1), ("bbox", 4), ("kps", 10))
        for stride in STRIDES
    ]
    graph = helper.make_graph(
        nodes, "tiny_scrfd",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, DET_SIZE, DET_SIZE])],
        outputs, initializer=inits,
    )
    return finish(graph)


# ---------------------------------------------------------------------------------------------
# recognition


def recognition_model(seed: int = 112, width: float = RBF_WIDTH) -> onnx.ModelProto:
    """Random Fourier features of the 8x8-pooled crop: cosine ~ exp(-|a - b|^2 / (2 width^2))."""
    from onnx import TensorProto, helper, numpy_helper

    features = 3 * (112 // 8) ** 2
    rng = np.random.default_rng(seed)
    projection = (rng.standard_normal((features, 512)) / width).astype(np.float32)
    phase = rng.uniform(0.0, 2 * np.pi, (1, 512)).astype(np.float32)
    nodes = [
        helper.make_node("AveragePool", ["input.1"], ["pooled"], name="pooled", kernel_shape=[8, 8], strides=[8, 8]),
        helper.make_node("Flatten", ["pooled"], ["flat"], name="flat", axis=1),
        helper.make_node("MatMul", ["flat", "projection"], ["projected"], name="projected"),
        helper.make_node("Add", ["projected", "phase"], ["shifted"], name="shifted"),
        helper.make_node("Cos", ["shifted"], ["683"], name="embed"),
    ]
    graph = helper.make_graph(
        nodes, "tiny_arcface",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, 112, 112])],
        [helper.make_tensor_value_info("683", TensorProto.FLOAT, [1, 512])],
        initializer=[numpy_helper.from_array(projection, "projection"), numpy_helper.from_array(phase, "phase")],
    )
    return finish(graph)


def finish(graph: onnx.GraphProto) -> onnx.ModelProto:
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="figurine-tiny")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        sys.exit("usage: python -m figurine.tiny.insightface DIR")
    print(write_pack(Path(argv[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
