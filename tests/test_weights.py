"""Weights manager: manifest, status/require, integrity checks, pickle conversion, fetch, CLI.

fetch runs end to end against a fake Hugging Face hub on 127.0.0.1 (the real huggingface_hub
client, pointed at it with `endpoint=`), serving the `resolve/<revision>/<file>` endpoint.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from figurine import weights
from figurine.commands.doctor import onnxruntime_conflict
from figurine.errors import WeightsError

ROOT = Path(__file__).resolve().parent.parent
REV = "0123456789abcdef0123456789abcdef01234567"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def entry(path: str, data: bytes | None = None, **kw) -> weights.Entry:
    """A manifest entry; `data` supplies the pinned size and sha256 (None = unknown)."""
    fields = dict(path=path, repo="org/model", revision=REV, remote=Path(path).name,
                  size=len(data) if data is not None else None, sha256=sha(data) if data is not None else "",
                  licence="test licence", commercial_use=True)
    fields.update(kw)
    return weights.Entry(**fields)


def safetensors_bytes(tmp_path: Path, name: str = "t.safetensors") -> bytes:
    p = tmp_path / name
    save_file({"a": np.arange(64, dtype=np.float32), "b": np.ones((4, 4), dtype=np.float16)}, str(p))
    return p.read_bytes()


# --------------------------------------------------------------------------------- manifest

def test_manifest_is_well_formed_and_flags_licences():
    entries = weights.load_manifest()
    by_path = {e.path: e for e in entries}
    # The fixed layout the loader and the tiny-weights script share.
    for p in ["sdxl-base/model_index.json", "sdxl-base/unet/diffusion_pytorch_model.fp16.safetensors",
              "sdxl-base/text_encoder_2/model.fp16.safetensors", "sdxl-base/tokenizer_2/merges.txt",
              "sdxl-vae-fp16-fix/diffusion_pytorch_model.safetensors",
              "controlnet-openpose-sdxl/diffusion_pytorch_model.safetensors",
              "ip-adapter-faceid/ip-adapter-faceid_sdxl.safetensors",
              "insightface/buffalo_l/det_10g.onnx", "insightface/buffalo_l/w600k_r50.onnx",
              "annotators/body_pose_model.safetensors"]:
        assert p in by_path, p
    for e in entries:
        assert e.licence.strip(), e.path
        assert e.size is None or e.size > 0, e.path
        assert e.sha256 == "" or re.fullmatch(r"[0-9a-f]{64}", e.sha256), e.path
        assert e.revision == "" or re.fullmatch(r"[0-9a-f]{40}", e.revision), e.path
        if e.convert:  # pickles upstream, safetensors here
            assert e.path.endswith(".safetensors") and e.remote.endswith((".bin", ".pth")), e.path
        else:
            assert not e.remote.endswith((".bin", ".pth", ".ckpt", ".pt")), f"pickle kept: {e.path}"
    non_commercial = {e.path for e in entries if e.non_commercial}
    assert {"ip-adapter-faceid/ip-adapter-faceid_sdxl.safetensors", "insightface/buffalo_l/w600k_r50.onnx",
            "annotators/body_pose_model.safetensors"} <= non_commercial
    assert not any(p.startswith(("sdxl-base/", "sdxl-vae-fp16-fix/", "controlnet-")) for p in non_commercial)
    assert by_path["annotators/body_pose_model.safetensors"].optional
    # Every file is fetched from a pinned commit, never from whatever "main" is on the day.
    assert all(e.revision for e in entries), [e.path for e in entries if not e.revision]
    # The FaceID adapter file carries its own LoRA (diffusers loads it as faceid_0): h94's separate
    # copy of that LoRA would apply it twice, so it is not a file figurine downloads.
    assert not any(e.remote.endswith("faceid_sdxl_lora.safetensors") for e in entries)


@pytest.mark.parametrize("line, message", [
    ('sha256 = "abc"', "sha256 must be 64 hex digits"),
    ('sha256 = ""\nsize = -5', "size must be a positive integer"),
    ('sha256 = ""\nlicence = " "', "licence must not be empty"),
])
def test_manifest_rejects_a_malformed_entry(tmp_path, line, message):
    base = {"path": "a.bin", "repo": "o/r", "revision": "", "remote": "a", "size": 1, "sha256": "",
            "licence": "MIT", "commercial_use": True}
    key_lines = {k: v for k, v in (ln.split(" = ", 1) for ln in line.splitlines())}
    body = "\n".join(f"{k} = {key_lines.get(k, json.dumps(v) if not isinstance(v, bool) else 'true')}"
                     for k, v in base.items())
    (tmp_path / "m.toml").write_text("[[file]]\n" + body + "\n")
    with pytest.raises(WeightsError, match=message):
        weights.load_manifest(tmp_path / "m.toml")


# --------------------------------------------------------------------------------- status, require

def test_status_and_require_on_a_tree(tmp_path):
    good, short = b"x" * 100, b"y" * 50
    entries = [entry("m/good.json", good), entry("m/short.bin", short), entry("m/absent.json", b"z"),
               entry("m/opt.json", b"o", optional=True)]
    (tmp_path / "m").mkdir()
    (tmp_path / "m/good.json").write_bytes(good)
    (tmp_path / "m/short.bin").write_bytes(short[:20])
    states = {s.entry.path: s.state for s in weights.status(tmp_path, entries)}
    assert states == {"m/good.json": "present", "m/short.bin": "size-mismatch",
                      "m/absent.json": "missing", "m/opt.json": "missing"}

    weights.require([tmp_path / "m/good.json", tmp_path / "m"])
    with pytest.raises(WeightsError) as err:
        weights.require([tmp_path / "m/good.json", tmp_path / "m/absent.json", tmp_path / "other"])
    assert str(err.value) == f"missing weights file {tmp_path / 'm/absent.json'}; run `figurine weights fetch`"
    assert err.value.exit_code == 3


# --------------------------------------------------------------------------------- integrity

def test_check_safetensors_names_truncated_and_corrupt_files(tmp_path):
    data = safetensors_bytes(tmp_path)
    ok = tmp_path / "ok.safetensors"
    ok.write_bytes(data)
    weights.check_safetensors(ok)  # intact: no error

    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[:-40])  # data section shorter than the header says
    with pytest.raises(WeightsError, match=r"truncated weights file .*cut\.safetensors"):
        weights.check_safetensors(cut)

    stub = tmp_path / "stub.safetensors"
    stub.write_bytes(data[:30])  # cut inside the header
    with pytest.raises(WeightsError, match=r"truncated weights file .*stub\.safetensors"):
        weights.check_safetensors(stub)

    n = int.from_bytes(data[:8], "little")
    garbled = tmp_path / "garbled.safetensors"
    garbled.write_bytes(data[:8] + b"\xff" * n + data[8 + n:])
    with pytest.raises(WeightsError, match=r"corrupt weights file .*garbled\.safetensors"):
        weights.check_safetensors(garbled)


def test_verify_names_altered_truncated_and_missing_files(tmp_path):
    st = safetensors_bytes(tmp_path, "src.safetensors")
    cfg, onnx = b'{"a": 1}', bytes(range(256)) * 4
    entries = [entry("m/model.safetensors", st), entry("m/config.json", cfg), entry("m/net.onnx", onnx),
               entry("m/gone.json", b"g"), entry("m/extra.json", b"e", optional=True)]
    m = tmp_path / "w/m"
    m.mkdir(parents=True)
    (m / "model.safetensors").write_bytes(st)
    (m / "config.json").write_bytes(cfg)
    (m / "net.onnx").write_bytes(onnx)
    assert [p.kind for p in weights.verify(tmp_path / "w", entries)] == ["missing"]

    (m / "net.onnx").write_bytes(onnx[:-1] + b"\x00")  # same size, one byte changed
    (m / "model.safetensors").write_bytes(st[:-16])  # truncated
    problems = {p.path.name: p for p in weights.verify(tmp_path / "w", entries)}
    assert set(problems) == {"net.onnx", "model.safetensors", "gone.json"}
    assert problems["net.onnx"].kind == "altered" and "m/net.onnx" in str(problems["net.onnx"])
    assert problems["model.safetensors"].kind == "size-mismatch"
    assert "model.safetensors" in str(problems["model.safetensors"])
    assert all(p.fatal for p in problems.values())


def test_file_hashes_cache_skips_untouched_files(tmp_path):
    f = tmp_path / "w" / "a.safetensors"
    f.parent.mkdir()
    f.write_bytes(b"abc")
    assert weights.file_hashes([f], tmp_path / "w") == {str(f): sha(b"abc")}
    cache_file = tmp_path / "w" / weights.HASH_CACHE
    cache = json.loads(cache_file.read_text())
    key = str(f.resolve())
    # Plant a marker in the cache: an untouched file is answered from it, not re-read.
    cache[key]["sha256"] = "cached"
    cache_file.write_text(json.dumps(cache))
    assert weights.file_hashes([f], tmp_path / "w")[str(f)] == "cached"
    f.write_bytes(b"abcd")  # size and mtime change: hashed again
    assert weights.file_hashes([f], tmp_path / "w")[str(f)] == sha(b"abcd")
    # A folder expands to its files.
    assert set(weights.file_hashes([tmp_path / "w"], None)) == {str(f)}


def test_file_hashes_sees_new_bytes_behind_a_restored_mtime(tmp_path):
    """Same size, same inode, mtime put back with os.utime: the recorded hash is the new bytes'."""
    f = tmp_path / "w" / "unet.safetensors"
    f.parent.mkdir()
    f.write_bytes(b"A" * 4096)
    before = os.stat(f)
    assert weights.file_hashes([f], tmp_path / "w")[str(f)] == sha(b"A" * 4096)
    with open(f, "r+b") as out:  # in place: the inode stays
        out.seek(100)
        out.write(b"B")
    os.utime(f, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(f)
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)
    changed = b"A" * 100 + b"B" + b"A" * 3995
    assert weights.file_hashes([f], tmp_path / "w")[str(f)] == sha(changed)
    # verify_files put its fresh hash into the same cache: provenance then reads nothing again.
    entries = [entry("unet.safetensors", changed)]
    assert weights.verify_files([f], tmp_path / "w", entries) == {str(f): sha(changed)}


# --------------------------------------------------------------------------------- conversion

class _Gadget:
    """Not a tensor: a weights_only load must refuse a pickle holding one."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickle_to_safetensors_flattens_faceid_keys(tmp_path):
    torch = pytest.importorskip("torch")
    sd = {"image_proj": {"proj.0.weight": torch.randn(8, 4), "norm.bias": torch.zeros(4)},
          "ip_adapter": {"1.to_k_ip.weight": torch.randn(3, 5), "1.to_v_ip.weight": torch.randn(3, 5)}}
    src = tmp_path / "ip-adapter-faceid_sdxl.bin"
    torch.save(sd, src)
    out = weights.convert_pickle(src, tmp_path / "ip.safetensors", source_sha256="ab" * 32)
    weights.check_safetensors(out)
    loaded = load_file(str(out))
    assert set(loaded) == {"image_proj.proj.0.weight", "image_proj.norm.bias",
                           "ip_adapter.1.to_k_ip.weight", "ip_adapter.1.to_v_ip.weight"}
    np.testing.assert_array_equal(loaded["ip_adapter.1.to_k_ip.weight"], sd["ip_adapter"]["1.to_k_ip.weight"].numpy())


def test_pickle_with_an_object_is_refused_and_never_runs(tmp_path):
    torch = pytest.importorskip("torch")
    marker = tmp_path / "code-ran"
    src = tmp_path / "evil.pth"
    torch.save({"w": torch.ones(2), "payload": _Gadget(marker)}, src)
    with pytest.raises(WeightsError, match=r"refused to load evil\.pth"):
        weights.convert_pickle(src, tmp_path / "evil.safetensors")
    assert not marker.exists()
    assert not (tmp_path / "evil.safetensors").exists()


# --------------------------------------------------------------------------------- fetch

class FakeHub(http.server.ThreadingHTTPServer):
    """The part of the Hub's HTTP API hf_hub_download uses: HEAD/GET <repo>/resolve/<rev>/<file>."""

    def __init__(self, files: dict[tuple[str, str, str], bytes]):
        self.files, self.requests = files, []
        super().__init__(("127.0.0.1", 0), _HubHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _HubHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _answer(self, body: bool):
        m = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", self.path.split("?")[0])
        data = self.server.files.get(m.groups()) if m else None
        self.server.requests.append((self.command, self.path))
        if data is None:
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("ETag", f'"{sha(data)}"')
        self.send_header("X-Repo-Commit", m.group(2) if len(m.group(2)) == 40 else REV)
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        if body:
            self.wfile.write(data)

    def do_HEAD(self):
        self._answer(body=False)

    def do_GET(self):
        self._answer(body=True)


@pytest.fixture
def hub_online(monkeypatch):
    """fetch is the one networked command: make sure no earlier in-process switch turned it off."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


def test_fetch_end_to_end_against_a_local_hub(tmp_path, hub_online):
    torch = pytest.importorskip("torch")
    bin_path = tmp_path / "src.bin"
    torch.save({"image_proj": {"proj.0.weight": torch.randn(4, 4)}, "ip_adapter": {"1.to_k_ip.weight": torch.ones(2, 2)}},
               bin_path)
    blob_bin, blob_st, blob_cfg = bin_path.read_bytes(), safetensors_bytes(tmp_path), b'{"x": 1}'
    hub = FakeHub({("org/model", REV, "adapter.bin"): blob_bin, ("org/model", REV, "unet/w.safetensors"): blob_st,
                   ("org/model", REV, "config.json"): blob_cfg})
    entries = [
        entry("m/unet/w.safetensors", blob_st, remote="unet/w.safetensors"),
        entry("m/adapter.safetensors", blob_bin, remote="adapter.bin", convert="pt2safetensors",
              commercial_use=False),
        entry("m/config.json", None, remote="config.json"),  # no pinned hash: fetched, not verifiable
        entry("m/extra.json", b"?", remote="extra.json", optional=True),  # optional: not fetched
    ]
    root = tmp_path / "w"
    log: list[str] = []
    try:
        written = weights.fetch(root, entries=entries, endpoint=hub.url, log=log.append)
    finally:
        hub.shutdown()
    assert sorted(p.relative_to(root).as_posix() for p in written) == \
        ["m/adapter.safetensors", "m/config.json", "m/unet/w.safetensors"]
    assert all(f"/resolve/{REV}/" in path for _, path in hub.requests)
    assert (root / "m/unet/w.safetensors").read_bytes() == blob_st
    assert set(load_file(str(root / "m/adapter.safetensors"))) == {"image_proj.proj.0.weight", "ip_adapter.1.to_k_ip.weight"}
    assert not list(root.rglob("*.bin")) and not (root / weights.INCOMING).exists()
    assert any("cannot verify m/config.json" in line for line in log)
    assert any("NON-COMMERCIAL" in line for line in log)

    # The converted and the unpinned file were recorded at fetch time: verify can check them.
    assert weights.verify(root, entries) == []
    with open(root / "m/adapter.safetensors", "r+b") as f:
        f.seek(-1, 2)
        f.write(b"\x01")
    (root / "m/config.json").write_bytes(b'{"x": 2}')
    altered = {p.path.name: p.kind for p in weights.verify(root, entries)}
    assert altered == {"adapter.safetensors": "altered", "config.json": "altered"}

    # Nothing is missing any more: a second fetch downloads nothing.
    assert weights.fetch(root, entries=entries, endpoint="http://127.0.0.1:9", log=log.append) == []


def test_fetch_deletes_a_download_whose_sha256_does_not_match(tmp_path, hub_online):
    hub = FakeHub({("org/model", REV, "config.json"): b'{"tampered": true}'})
    pinned = entry("m/config.json", b'{"tampered": TRUE}', remote="config.json")  # same size, other bytes
    root = tmp_path / "w"
    try:
        with pytest.raises(WeightsError, match=r"sha256 mismatch for m/config\.json"):
            weights.fetch(root, entries=[pinned], endpoint=hub.url, log=lambda s: None)
    finally:
        hub.shutdown()
    assert not (root / "m/config.json").exists()
    assert not (root / weights.INCOMING).exists()


# --------------------------------------------------------------------------------- CLI

def figurine(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "figurine", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})})


def test_weights_list_flags_non_commercial_rows(tmp_path):
    r = figurine("weights", "list", "--weights", str(tmp_path))
    assert r.returncode == 0, r.stderr
    rows = {line.split()[0]: line for line in r.stdout.splitlines() if line and "/" in line.split()[0]}
    for path in ["insightface/buffalo_l/det_10g.onnx", "insightface/buffalo_l/w600k_r50.onnx",
                 "ip-adapter-faceid/ip-adapter-faceid_sdxl.safetensors"]:
        assert rows[path].rstrip().endswith("NON-COMMERCIAL") and "missing" in rows[path], rows[path]
    assert rows["sdxl-base/unet/diffusion_pytorch_model.fp16.safetensors"].rstrip().endswith("commercial ok")
    assert "run `figurine weights fetch`" in r.stdout


def test_weights_verify_exits_nonzero_naming_the_bad_file(tmp_path):
    bad = tmp_path / "sdxl-vae-fp16-fix" / "config.json"
    bad.parent.mkdir()
    bad.write_text("{}")
    r = figurine("weights", "verify", "--weights", str(tmp_path))
    assert r.returncode == 3
    assert f"size mismatch: {bad}" in r.stdout
    assert r.stderr.startswith("figurine: error:") and "Traceback" not in r.stderr


def test_onnxruntime_conflict_detection():
    assert onnxruntime_conflict(["numpy", "onnxruntime"]) is None
    assert onnxruntime_conflict(["onnxruntime-gpu", "torch"]) is None
    warning = onnxruntime_conflict(["onnxruntime", "ONNXRuntime_GPU", "insightface"])
    assert "pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu" in warning


def test_doctor_reports_versions_runtime_and_weights(tmp_path):
    r = figurine("doctor", "--weights", str(tmp_path))
    assert r.returncode in (0, 1), r.stderr
    out = r.stdout
    assert re.search(r"^python\s+3\.\d+", out, re.M)
    assert re.search(r"^onnxruntime\s+providers: .*CPUExecutionProvider", out, re.M)
    assert "required missing" in out  # an empty root lacks everything
    assert "WARNING:" in out and "figurine weights fetch" in out
    assert r.returncode == 1
