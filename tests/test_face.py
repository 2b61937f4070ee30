"""The identity stage on a synthetic buffalo_l pack (scripts/tiny_insightface.py), through insightface.

The pack's detector responds to detail in two boxes (a large one left of centre, a small one
right of centre) and its recognition model to the aligned crop, so these tests see real
detections, real alignment and embeddings that follow the face.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from figurine.errors import InputError, WeightsError
from figurine.face import CROP_SIZE, DET_FILE, REC_FILE, FaceAnalyzer, choose_providers, identity_score, pick
from figurine.photo import load_photo
from tests.photos import LEFT_FACE, make_face_photo, make_flat_photo, make_two_face_photo

ROOT = Path(__file__).resolve().parent.parent


def tiny_insightface():
    spec = importlib.util.spec_from_file_location("tiny_insightface", ROOT / "scripts" / "tiny_insightface.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def pack(tmp_path_factory) -> Path:
    return tiny_insightface().write_pack(tmp_path_factory.mktemp("weights") / "insightface" / "buffalo_l")


@pytest.fixture(scope="session")
def analyzer(pack) -> FaceAnalyzer:
    return FaceAnalyzer(pack, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="session")
def photos(tmp_path_factory) -> dict[str, Image.Image]:
    folder = tmp_path_factory.mktemp("photos")
    return {
        "ada": load_photo(make_face_photo(folder / "ada.jpg", seed=0)),
        "grace": load_photo(make_face_photo(folder / "grace.jpg", seed=1)),
        "two": load_photo(make_two_face_photo(folder / "two.jpg", seed=3)),
        "wall": load_photo(make_flat_photo(folder / "wall.jpg")),
    }


def cosine(a, b) -> float:
    return float(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b))


def test_pack_is_small_and_has_the_real_file_names(pack):
    assert sorted(p.name for p in pack.iterdir()) == sorted([DET_FILE, REC_FILE])
    assert sum(p.stat().st_size for p in pack.iterdir()) < 3 * 2**20


def test_one_face_on_a_photo(analyzer, photos, caplog):
    image = photos["ada"]
    faces = analyzer.faces(image)
    assert len(faces) == 1
    face = pick(faces, -1, label="ada.jpg")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert face.embedding.shape == (512,) and face.embedding.dtype == np.float32
    assert abs(np.linalg.norm(face.embedding) - 1.0) < 1e-5
    assert face.det_score > 0.5
    # the box is around the drawn face, the keypoints inside the box, eyes above the mouth
    x0, y0, x1, y1 = face.box
    cx, cy = LEFT_FACE[0] * image.width, LEFT_FACE[1] * image.height
    assert x0 < cx < x1 and y0 < cy < y1
    assert face.kps.shape == (5, 2)
    assert ((face.kps[:, 0] > x0) & (face.kps[:, 0] < x1) & (face.kps[:, 1] > y0) & (face.kps[:, 1] < y1)).all()
    assert face.kps[:2, 1].max() < face.kps[3:, 1].min()
    assert face.crop.mode == "RGB" and face.crop.size == (CROP_SIZE, CROP_SIZE)


def test_blank_wall_has_no_face(analyzer, photos):
    assert analyzer.faces(photos["wall"]) == []
    with pytest.raises(InputError) as caught:
        pick([], -1, label="wall.jpg")
    assert str(caught.value) == "no face found in wall.jpg; use a photo with one clearly visible face"
    assert caught.value.exit_code == 2


def test_two_faces_largest_by_default_and_face_index_chooses(analyzer, photos, caplog):
    faces = analyzer.faces(photos["two"])
    assert len(faces) == 2
    assert faces[0].box[0] < faces[1].box[0]  # left to right
    assert faces[0].area > faces[1].area  # the tiny detector's left face is the large one
    with caplog.at_level(logging.WARNING, logger="figurine.face"):
        chosen = pick(faces, -1, label="two.jpg")
    assert chosen is faces[0]
    assert any("2 faces found in two.jpg" in r.getMessage() for r in caplog.records)
    other = pick(faces, 1, label="two.jpg")
    assert other is faces[1]
    assert cosine(chosen.embedding, other.embedding) < 0.95  # different people
    with pytest.raises(InputError, match=r"--face 2 is out of range: two.jpg has 2 faces \(0 to 1"):
        pick(faces, 2, label="two.jpg")


def test_identity_score(analyzer, photos, tmp_path):
    ada = pick(analyzer.faces(photos["ada"]))
    same = identity_score(analyzer, photos["ada"], ada.embedding)
    other = identity_score(analyzer, photos["grace"], ada.embedding)
    assert same == pytest.approx(1.0, abs=1e-4)
    assert other < 0.9
    # re-encoding the same photo keeps it close; another person stays further away
    buffer = tmp_path / "ada-again.jpg"
    photos["ada"].save(buffer, quality=75)
    again = identity_score(analyzer, load_photo(buffer), ada.embedding)
    assert other < again < 1.0 + 1e-6 and again > 0.95
    assert identity_score(analyzer, photos["wall"], ada.embedding) is None


@pytest.mark.filterwarnings("ignore::FutureWarning")  # scikit-image deprecation inside insightface
def test_insightface_faceanalysis_accepts_the_pack(pack, photos):
    from insightface.app import FaceAnalysis

    app = FaceAnalysis(name=str(pack), allowed_modules=["detection", "recognition"],
                       providers=["CPUExecutionProvider"])
    app.prepare(ctx_id=0, det_size=(640, 640))
    bgr = np.asarray(photos["ada"])[:, :, ::-1].copy()
    faces = app.get(bgr)
    assert len(faces) == 1 and faces[0].normed_embedding.shape == (512,)


def test_missing_pack_names_it_and_the_fetch_command(tmp_path):
    with pytest.raises(WeightsError) as caught:
        FaceAnalyzer(tmp_path / "insightface" / "buffalo_l")
    message = str(caught.value)
    assert str(tmp_path / "insightface" / "buffalo_l") in message and "figurine weights fetch" in message
    assert caught.value.exit_code == 3
    assert not (tmp_path / "insightface").exists()  # nothing created, nothing downloaded


@pytest.mark.parametrize("name", [DET_FILE, REC_FILE])
def test_missing_file_is_named(pack, tmp_path, name):
    copy = Path(shutil.copytree(pack, tmp_path / "buffalo_l"))
    (copy / name).unlink()
    with pytest.raises(WeightsError, match=f"missing weights file {copy / name}; run `figurine weights fetch`"):
        FaceAnalyzer(copy)


@pytest.mark.parametrize("name", [DET_FILE, REC_FILE])
@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_corrupt_file_is_named(pack, tmp_path, name, damage):
    copy = Path(shutil.copytree(pack, tmp_path / "buffalo_l"))
    data = (copy / name).read_bytes()
    broken = {"truncated": data[: len(data) // 2], "garbage": b"not an onnx model\n" * 50, "empty": b""}[damage]
    (copy / name).write_bytes(broken)
    with pytest.raises(WeightsError) as caught:
        FaceAnalyzer(copy)
    message = str(caught.value)
    assert str(copy / name) in message and "figurine weights fetch" in message
    assert "\n" not in message


def test_swapped_files_are_refused(pack, tmp_path):
    copy = tmp_path / "buffalo_l"
    copy.mkdir()
    shutil.copy(pack / DET_FILE, copy / REC_FILE)
    shutil.copy(pack / REC_FILE, copy / DET_FILE)
    with pytest.raises(WeightsError, match="is not a face detection model"):
        FaceAnalyzer(copy)


def test_bad_detector_settings_are_config_errors(pack):
    from figurine.errors import ConfigError

    with pytest.raises(ConfigError, match="det_size"):
        FaceAnalyzer(pack, det_size=100)
    with pytest.raises(ConfigError, match="det_thresh"):
        FaceAnalyzer(pack, det_thresh=0.0)


def test_providers_are_only_ones_onnxruntime_has():
    import onnxruntime

    chosen = choose_providers(["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert chosen[-1] == "CPUExecutionProvider"
    assert set(chosen) <= set(onnxruntime.get_available_providers())
    assert choose_providers(["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
