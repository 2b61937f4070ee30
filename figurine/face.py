"""The identity stage: insightface's detector and ArcFace model on the photo -> the face to use.

    from pathlib import Path
    from figurine.face import FaceAnalyzer, pick, identity_score
    from figurine.photo import load_photo
    analyzer = FaceAnalyzer(Path("weights/insightface/buffalo_l"))
    face = pick(analyzer.faces(load_photo("me.jpg")), index=-1, label="me.jpg")
    face.embedding                      # (512,) float32, L2-normed: what IP-Adapter FaceID takes
    identity_score(analyzer, generated_image, face.embedding)   # cosine, or None: no face

Only the two files IP-Adapter-FaceID was trained with are loaded, by name, from the pack folder:
det_10g.onnx (SCRFD detector) and w600k_r50.onnx (ArcFace). insightface's own model router reads
them (a 9-output graph becomes its SCRFD, a 112 px square input its ArcFace). We do not go
through `FaceAnalysis`: it opens a session for every *.onnx in the folder (buffalo_l has five,
~280 MB) before filtering, and it downloads the pack when the name is not a folder. Here nothing
is ever downloaded: the folder and both files are checked first, and a missing or corrupt file is
a WeightsError naming it and `figurine weights fetch`.
"""

from __future__ import annotations

import logging
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from figurine.errors import ConfigError, InputError, WeightsError

log = logging.getLogger(__name__)

DET_FILE = "det_10g.onnx"
REC_FILE = "w600k_r50.onnx"
CROP_SIZE = 224  # aligned crop kept on the Face (ArcFace itself sees the 112 px version)
FETCH_HINT = "run `figurine weights fetch`"


@dataclass
class Face:
    embedding: np.ndarray  # (512,) float32, L2-normed ArcFace embedding
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in photo pixels
    kps: np.ndarray  # (5, 2): eyes, nose tip, mouth corners
    det_score: float
    crop: Image.Image  # aligned face, CROP_SIZE square, RGB

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.box
        return max(0.0, x1 - x0) * max(0.0, y1 - y0)


class FaceAnalyzer:
    """Detector + recognition from one insightface pack folder (buffalo_l layout)."""

    def __init__(self, pack_dir: Path, det_size: int = 640, det_thresh: float = 0.5,
                 providers: list[str] | None = None, verify_root: Path | None = None):
        """`verify_root`: the weights root, to hash both files against it before loading them
        (runtime.verify_weights); None loads them after the cheap checks only."""
        # 1. inputs
        if not isinstance(det_size, int) or det_size < 32 or det_size % 32:
            raise ConfigError(f"face.det_size must be a positive multiple of 32, got {det_size!r}")
        if not 0.0 < det_thresh < 1.0:
            raise ConfigError(f"face.det_thresh must be between 0 and 1, got {det_thresh!r}")
        pack_dir = Path(pack_dir)
        det_path, rec_path = pack_dir / DET_FILE, pack_dir / REC_FILE
        if not pack_dir.is_dir():
            raise WeightsError(f"missing insightface pack {pack_dir} (needs {DET_FILE}, {REC_FILE}); {FETCH_HINT}")
        for path in (det_path, rec_path):
            if not path.is_file():
                raise WeightsError(f"missing weights file {path}; {FETCH_HINT}")
        if verify_root is not None:
            from figurine import weights

            weights.verify_files([det_path, rec_path], verify_root)

        # 2. sessions, on the providers onnxruntime actually has
        self.providers = choose_providers(providers)
        self.detector = load_model(det_path, "detection", self.providers)
        self.recogniser = load_model(rec_path, "recognition", self.providers)

        # 3. detector settings (a fixed-size detector graph keeps its own size)
        self.detector.prepare(0, input_size=(det_size, det_size), det_thresh=det_thresh)
        self.recogniser.prepare(0)
        self.pack_dir = pack_dir

    def faces(self, image: Image.Image) -> list[Face]:
        """Every face on `image` (RGB), left to right."""
        from insightface.utils.face_align import norm_crop

        bgr = np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # scikit-image deprecation inside insightface
            boxes, all_kps = self.detector.detect(bgr, max_num=0)
            found = []
            for box, kps in zip(boxes, all_kps if all_kps is not None else [None] * len(boxes)):
                if kps is None:
                    raise WeightsError(f"{self.pack_dir / DET_FILE} gives no facial keypoints; "
                                       f"it is not a buffalo_l detector; {FETCH_HINT}")
                small = norm_crop(bgr, landmark=kps, image_size=self.recogniser.input_size[0])
                large = norm_crop(bgr, landmark=kps, image_size=CROP_SIZE)
                embedding = np.asarray(self.recogniser.get_feat(small), dtype=np.float32).reshape(-1)
                found.append(Face(
                    embedding=embedding / max(float(np.linalg.norm(embedding)), 1e-12),
                    box=tuple(float(v) for v in box[:4]),
                    kps=np.asarray(kps, dtype=np.float32),
                    det_score=float(box[4]),
                    crop=Image.fromarray(np.ascontiguousarray(large[:, :, ::-1]), "RGB"),
                ))
        return sorted(found, key=lambda face: face.box[0])


def choose_providers(wanted: list[str] | None) -> list[str]:
    """The wanted providers onnxruntime offers, in order, always ending with CPU.

    None: CUDA when onnxruntime offers it (onnxruntime-gpu), else CPU.
    """
    import onnxruntime

    available = set(onnxruntime.get_available_providers())
    wanted = wanted or ["CUDAExecutionProvider", "CPUExecutionProvider"]
    chosen = [p for p in wanted if p in available and p != "CPUExecutionProvider"]
    missing = [p for p in wanted if p not in available]
    if missing:
        log.info("onnxruntime lacks %s; insightface runs on %s", ", ".join(missing),
                 ", ".join(chosen + ["CPUExecutionProvider"]))
    return chosen + ["CPUExecutionProvider"]


def load_model(path: Path, task: str, providers: list[str]):
    """One ONNX file through insightface's router; WeightsError when it is unusable."""
    import onnxruntime
    from insightface.model_zoo import model_zoo

    onnxruntime.set_default_logger_severity(3)
    if path.stat().st_size == 0:
        raise WeightsError(f"weights file {path} is empty; delete it and {FETCH_HINT}")
    try:
        model = model_zoo.get_model(str(path), providers=providers)
    except Exception as error:  # onnxruntime/onnx raise many types for a damaged file
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        reason = re.sub(r"^\[ONNXRuntimeError\] : \d+ : ", "", reason).replace(f"Load model from {path} failed:", "")
        raise WeightsError(f"{path} is damaged or not an ONNX model ({reason[:160]}); "
                           f"delete it and {FETCH_HINT}") from None
    if model is None or model.taskname != task:
        kind = "unknown" if model is None else model.taskname
        raise WeightsError(f"{path} is not a face {task} model (insightface sees: {kind}); {FETCH_HINT}")
    return model


def pick(faces: list[Face], index: int = -1, label: str = "the photo") -> Face:
    """The face to use: -1 = the largest (warning when there are several); N = N-th from the left."""
    if not faces:
        raise InputError(f"no face found in {label}; use a photo with one clearly visible face")
    if index == -1:
        largest = max(range(len(faces)), key=lambda i: faces[i].area)
        if len(faces) > 1:
            log.warning("%d faces found in %s; using the largest (face %d from the left, counting from 0); "
                        "choose another with --face N", len(faces), label, largest)
        return faces[largest]
    if not 0 <= index < len(faces):
        found = f"{len(faces)} face" + ("s" if len(faces) > 1 else "")
        raise InputError(f"--face {index} is out of range: {label} has {found} "
                         f"(0 to {len(faces) - 1}, left to right; -1 = the largest)")
    return faces[index]


def identity_scores(analyzer: FaceAnalyzer, image: Image.Image, refs: list[np.ndarray]) -> list[float] | None:
    """Cosine similarity of the largest face on `image` to each reference embedding (one per
    photo); None when there is no face on `image`."""
    faces = analyzer.faces(image)
    if not faces:
        return None
    face = max(faces, key=lambda f: f.area)
    out = []
    for ref in refs:
        ref = np.asarray(ref, dtype=np.float32).reshape(-1)
        out.append(float(face.embedding @ (ref / max(float(np.linalg.norm(ref)), 1e-12))))
    return out


def check_one_person(embeddings: list[np.ndarray], labels: list[str], threshold: float) -> None:
    """Several photos must show one person: every pair's cosine at least `threshold`. Otherwise
    one InputError naming the photo that differs most from the others."""
    if len(embeddings) < 2:
        return
    e = np.stack([np.asarray(x, dtype=np.float32).reshape(-1) for x in embeddings])
    sims = e @ e.T
    low = min((float(sims[i, j]), i, j) for i in range(len(e)) for j in range(i + 1, len(e)))
    if low[0] >= threshold:
        return
    mean_to_others = [(float((sims[i].sum() - sims[i, i]) / (len(e) - 1)), i) for i in range(len(e))]
    odd = min(mean_to_others)[1]
    other = low[2] if odd == low[1] else low[1]
    raise InputError(f"{labels[odd]} shows a different person from {labels[other]} (face similarity "
                     f"{float(sims[odd, other]):.2f}, one person needs at least {threshold:.2f}); use photos of "
                     "one person, or lower face.same_person")


def identity_score(analyzer: FaceAnalyzer, image: Image.Image, ref_embedding: np.ndarray) -> float | None:
    """Cosine similarity of the largest face on `image` to the reference; None when there is no face.

    Callers show None as "no face detected", never as 0.
    """
    faces = analyzer.faces(image)
    if not faces:
        return None
    face = max(faces, key=lambda f: f.area)
    ref = np.asarray(ref_embedding, dtype=np.float32).reshape(-1)
    return float(face.embedding @ (ref / max(float(np.linalg.norm(ref)), 1e-12)))
