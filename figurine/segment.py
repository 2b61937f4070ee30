"""Learned cut-out: BiRefNet salient-object segmentation, run through onnxruntime.

    from pathlib import Path
    from PIL import Image
    from figurine.segment import Segmenter
    seg = Segmenter(Path("weights/birefnet-lite/model.onnx"))   # WeightsError if missing or unusable
    alpha = seg.alpha(Image.open("figure.png"))                 # (H, W) float32 in [0, 1]

The model is BiRefNet_lite (Swin-T backbone, MIT licence) as exported to ONNX by BiRefNet's own
script (cpp/py/pth2onnx.py, torch.onnx.export at opset 17, no dynamic axes); configs/weights.toml
pins the file. Its one input and one output:

    input_image   float[1, 3, 1024, 1024]  RGB / 255, then (x - mean) / std with ImageNet's
                                           mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225)
    output_image  float[1, 1, 1024, 1024]  logits; sigmoid gives the foreground probability

(BiRefNet's inference code: torchvision Resize((1024, 1024)), ToTensor, Normalize; then
`model(x)[-1].sigmoid()`.) figurine/matte.py turns the probability into the cut-out.

Loading checks, each failure one WeightsError line naming the file:
1. the path ends in .onnx and is a regular, non-empty file (nothing is ever downloaded here);
2. onnxruntime opens it, on CUDA when onnxruntime-gpu offers it, else on the CPU;
3. the graph has the export's signature: one input `input_image` of rank 4 with 3 channels and a
   square spatial size (a dynamic size runs at 1024), float32 or float16, and an output
   `output_image` of rank 4 with 1 channel.
Running, alpha():
1. the picture as RGB, resized to the input size (bilinear, antialiased, as torchvision);
2. scaled to [0, 1], normalised, NCHW, in the input's dtype;
3. run; the output must be (1, 1, h, w) and finite; sigmoid;
4. resized back to the picture's size (bilinear).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
from PIL import Image

from figurine.errors import WeightsError

log = logging.getLogger(__name__)

MODEL_FILE = "birefnet-lite/model.onnx"  # under the weights root; see configs/weights.toml
INPUT_NAME = "input_image"
OUTPUT_NAME = "output_image"
DEFAULT_SIZE = 1024  # BiRefNet's training and export size; used when the input size is dynamic
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}
FETCH_HINT = "run `figurine weights fetch --optional`, or set matte.method = \"colour-key\""


class Segmenter:
    """One BiRefNet ONNX session, loaded once; alpha(image) per picture."""

    def __init__(self, path: Path | str, providers: list[str] | None = None):
        import onnxruntime

        # 1. a local .onnx file
        path = Path(path)
        if path.suffix.lower() != ".onnx":
            raise WeightsError(f"{path} is not an .onnx file; the learned cut-out loads only ONNX models")
        if not path.is_file():
            raise WeightsError(f"missing weights file {path}; {FETCH_HINT}")
        if path.stat().st_size == 0:
            raise WeightsError(f"weights file {path} is empty; delete it and {FETCH_HINT}")
        self.path = path

        # 2. a session on the best provider onnxruntime has
        onnxruntime.set_default_logger_severity(3)
        self.providers = choose_providers(providers)
        try:
            self.session = onnxruntime.InferenceSession(str(path), providers=self.providers)
        except Exception as error:  # onnxruntime raises several types for a damaged file
            raise WeightsError(f"{path} is damaged or not an ONNX model ({_reason(error, path)}); "
                               f"delete it and {FETCH_HINT}") from None

        # 3. BiRefNet's signature
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        self.size, self.dtype = _check_signature(path, inputs, outputs)

    def alpha(self, image: Image.Image) -> np.ndarray:
        """Foreground probability per pixel: (H, W) float32 in [0, 1], at the picture's size."""
        w, h = image.size
        # 1-2. resized, normalised, NCHW
        x = self.prepare(image)
        # 3. run, sigmoid
        out = self.session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
        if out.ndim != 4 or out.shape[:2] != (1, 1) or min(out.shape[2:]) < 1:
            raise WeightsError(f"{self.path} returned {OUTPUT_NAME} of shape {tuple(out.shape)}, "
                               "not (1, 1, H, W); it is not a BiRefNet export")
        logits = out[0, 0].astype(np.float32)
        if not np.isfinite(logits).all():
            raise WeightsError(f"{self.path} returned non-finite values; it is damaged, delete it and {FETCH_HINT}")
        prob = 1.0 / (1.0 + np.exp(-np.clip(logits, -60.0, 60.0)))
        # 4. back to the picture's size
        if prob.shape != (h, w):
            prob = np.asarray(Image.fromarray(prob, "F").resize((w, h), Image.BILINEAR))
        return np.clip(prob, 0.0, 1.0).astype(np.float32)

    def prepare(self, image: Image.Image) -> np.ndarray:
        """The model's input for `image`: (1, 3, S, S), RGB / 255 normalised with ImageNet mean/std."""
        rgb = image.convert("RGB").resize((self.size, self.size), Image.BILINEAR)
        x = (np.asarray(rgb, np.float32) / 255.0 - MEAN) / STD
        return np.ascontiguousarray(x.transpose(2, 0, 1)[None]).astype(self.dtype)


def choose_providers(wanted: list[str] | None = None) -> list[str]:
    """CUDA when onnxruntime offers it (onnxruntime-gpu), always ending with CPU."""
    import onnxruntime

    available = set(onnxruntime.get_available_providers())
    wanted = wanted or ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return [p for p in wanted if p in available and p != "CPUExecutionProvider"] + ["CPUExecutionProvider"]


def _check_signature(path: Path, inputs, outputs) -> tuple[int, type]:
    """(input size, input dtype) of a graph with BiRefNet's export signature; WeightsError if not."""
    def shape_text(arg) -> str:
        return "[" + ", ".join(str(d) if d is not None else "?" for d in arg.shape) + "]"

    expected = f"{INPUT_NAME} [1, 3, S, S] -> {OUTPUT_NAME} [1, 1, S, S]"
    found = (", ".join(f"{a.name} {shape_text(a)}" for a in inputs) + " -> "
             + ", ".join(f"{a.name} {shape_text(a)}" for a in outputs))
    mismatch = WeightsError(f"{path} does not have BiRefNet's inputs and outputs (expected {expected}, "
                            f"found {found}); {FETCH_HINT}")
    if len(inputs) != 1 or inputs[0].name != INPUT_NAME or OUTPUT_NAME not in [o.name for o in outputs]:
        raise mismatch
    arg = inputs[0]
    out = next(o for o in outputs if o.name == OUTPUT_NAME)
    if len(arg.shape) != 4 or len(out.shape) != 4:
        raise mismatch
    batch, channels, height, width = (d if isinstance(d, int) else None for d in arg.shape)
    out_channels = out.shape[1] if isinstance(out.shape[1], int) else None
    if batch not in (1, None) or channels != 3 or out_channels not in (1, None):
        raise mismatch
    if height is not None and width is not None and height != width:
        raise mismatch
    size = height or width or DEFAULT_SIZE
    if arg.type not in DTYPES:
        raise WeightsError(f"{path}: {INPUT_NAME} is {arg.type}, not float32 or float16; {FETCH_HINT}")
    return size, DTYPES[arg.type]


def _reason(error: Exception, path: Path) -> str:
    text = str(error).strip()
    reason = text.splitlines()[0] if text else type(error).__name__
    reason = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", reason)
    return reason.replace(f"Load model from {path} failed:", "").strip()[:160]
