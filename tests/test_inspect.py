"""`figurine inspect` and `figurine keys create` as a user runs them (real subprocess): what they
report for figurine's PNG, JPEG and WebP, for a copy a platform stripped and re-encoded, for
signed and tampered files, and for hostile or unreadable files (one line, exit 2, or a report
with the file's text escaped). Nothing is fetched: a file pointing at a remote manifest on a
loopback server gets no request."""

import http.server
import io
import json
import os
import threading

import c2pa
import pytest
from PIL import Image, PngImagePlugin

from figurine.outputs import save_png
from figurine.provenance import a1111_parameters, encode_output, xmp_packet
from figurine.signing import load_key, manifest_definition
from tests.conftest import ROOT, run_figurine
from tests.photos import make_face_photo

ENV = {"PYTHONPATH": str(ROOT)}
DOCS = (ROOT / "docs" / "bad-input.md").read_text()
RECORD = {"figurine": "0.1.0", "seed": 1234, "resolved": {"seed": 1234, "pose": "hero", "template": "vintage-80s",
                                                           "size": "social"},
          "config": {"generation": {"steps": 30, "scheduler": "euler_a", "guidance": 5.0},
                     "model": {"base": "sdxl-base"}}}
PARAMS = a1111_parameters("figure of Ada", "blurry", 30, "euler_a", 5.0, 1234, 1024, 1024, "sdxl-base", "0123456789")


def inspect(*args):
    return run_figurine("inspect", *args, env=ENV, timeout=120)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inspect")
    photo = Image.open(make_face_photo(folder / "photo.jpg", size=(1080, 1350))).convert("RGB")
    out = {"photo": folder / "photo.jpg"}
    for ext in ("png", "jpg", "webp"):
        out[ext] = folder / f"ada.{ext}"
        out[ext].write_bytes(encode_output(photo, out[ext], PARAMS, RECORD, xmp_packet()))
    # what a platform does: drop every piece of metadata and re-encode at quality 80
    with Image.open(out["png"]) as im:
        im.convert("RGB").save(folder / "shared.jpg", "JPEG", quality=80)
    out["shared"] = folder / "shared.jpg"
    r = run_figurine("keys", "create", folder / "key", "--name", "Test Signer", env=ENV)
    assert r.returncode == 0, r.stderr
    out["key"] = folder / "key"
    out["signed"] = folder / "signed.jpg"
    out["signed"].write_bytes(encode_output(photo, "x.jpg", PARAMS, RECORD, signing_key=load_key(folder / "key")))
    return out


@pytest.mark.parametrize("kind, fmt", [("png", "PNG"), ("jpg", "JPEG"), ("webp", "WEBP")])
def test_reports_label_watermark_and_settings_of_each_format(files, kind, fmt):
    r = inspect(files[kind])
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"{files[kind]}: {fmt}, 1080x1350"
    assert lines[1] == ("  AI label (XMP):   trainedAlgorithmicMedia (IPTC digital source type): made by a "
                        "generative AI model; creator tool figurine 0.1.0")
    assert lines[2].startswith("  watermark:        found (64 of 64 bits match the figurine mark")
    assert lines[3] == "  C2PA manifest:    none"
    assert lines[4] == ("  figurine settings: figurine 0.1.0, seed 1234, pose hero, template vintage-80s, size social, "
                        "steps 30, scheduler euler_a, guidance 5.0, model sdxl-base")
    assert lines[5:] == ["  parameters (A1111):"] + [f"    {x}" for x in PARAMS.splitlines()]
    assert r.stderr == ""


def test_stripped_and_reencoded_copy_still_shows_the_watermark(files):
    r = inspect(files["shared"])
    assert r.returncode == 0, r.stderr
    assert "  AI label (XMP):   none (no XMP packet)" in r.stdout
    assert "  watermark:        found (" in r.stdout
    assert "  figurine settings: none (no figurine settings)" in r.stdout
    assert "  parameters (A1111): none" in r.stdout


def test_an_ordinary_photo_reports_nothing_found(files):
    r = inspect(files["photo"], "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["format"] == "JPEG" and report["label"] is None
    assert report["watermark"]["checked"] and not report["watermark"]["found"]
    assert report["watermark"]["matched_bits"] < 48
    assert report["c2pa"] is None and report["settings"] is None and report["parameters"] is None


def test_signed_file_is_valid_and_its_signer_shown_as_unverified(files):
    r = inspect(files["signed"])
    assert r.returncode == 0, r.stderr
    assert ('  C2PA manifest:    valid (the file is unchanged since it was signed); signed by "Test Signer", '
            'issuer "self-signed with figurine"; signer on no trust list (self-signed or unknown: the name '
            'is unverified); source type trainedAlgorithmicMedia') in r.stdout.splitlines()


def test_tampered_signed_file_is_invalid(files, tmp_path):
    data = bytearray(files["signed"].read_bytes())
    data[data.rindex(b"\xff\xda") + 300] ^= 0x04  # a byte of the compressed pixels
    bad = tmp_path / "tampered.jpg"
    bad.write_bytes(bytes(data))
    r = inspect(bad, "--json")
    assert r.returncode == 0, r.stderr
    c = json.loads(r.stdout)["c2pa"]
    assert c["state"] == "invalid" and c["signer"] == "Test Signer"
    assert "assertion.dataHash.mismatch" in c["failures"]
    r = inspect(bad)
    assert "C2PA manifest:    invalid (the file was changed after signing" in r.stdout


def test_remote_manifest_is_never_fetched(files, tmp_path):
    hits = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        key = load_key(files["key"])
        src = io.BytesIO()
        Image.new("RGB", (300, 300), (10, 200, 30)).save(src, "JPEG")
        src.seek(0)
        signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, key.cert_pem, key.key_pem, None))
        dest = io.BytesIO()
        url = f"http://127.0.0.1:{server.server_address[1]}/manifest.c2pa"
        with c2pa.Builder(manifest_definition()) as builder:
            builder.set_no_embed()
            builder.set_remote_url(url)
            builder.sign(signer, "image/jpeg", src, dest)
        (tmp_path / "remote.jpg").write_bytes(dest.getvalue())
        r = inspect(tmp_path / "remote.jpg")
    finally:
        server.shutdown()
    assert r.returncode == 0, r.stderr
    assert "C2PA manifest:    kept on a server, not fetched (inspect works offline)" in r.stdout
    assert url in r.stdout
    assert hits == []


def test_hostile_text_is_escaped_and_bad_json_reported(tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "evil \x1b[2J\x1b]0;pwned\x07 prompt\u202eroc.exe\nSteps: 1")
    info.add_text("figurine", "[" * 50000 + "]" * 50000)
    info.add_itxt("XML:com.adobe.xmp", '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
                  'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
                  'xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
                  'Iptc4xmpExt:DigitalSourceType="x\u202ered"/></rdf:RDF></x:xmpmeta>', zip=False)
    path = tmp_path / "evil.png"
    save_png(Image.new("RGB", (300, 300), (1, 2, 3)), path, pnginfo=info)
    r = inspect(path)
    assert r.returncode == 0, r.stderr
    assert "\x1b" not in r.stdout and "\x07" not in r.stdout and "\u202e" not in r.stdout
    assert "evil \\x1b[2J\\x1b]0;pwned\\x07 prompt\\u202eroc.exe" in r.stdout
    assert "x\\u202ered (IPTC digital source type)" in r.stdout
    assert "  figurine settings: damaged (nested deeper than 32 levels)" in r.stdout


@pytest.mark.parametrize("kind", ["missing", "folder", "fifo", "junk", "gif"])
def test_unreadable_files_are_one_line_and_exit_2(tmp_path, kind):
    path = tmp_path / f"x.{'gif' if kind == 'gif' else 'png'}"
    expected = {"missing": "no such file", "folder": "is a folder, not a picture",
                "fifo": "is not a regular file", "junk": "not a readable PNG, JPEG or WebP picture",
                "gif": "is a GIF image; figurine reads PNG, JPEG or WebP"}[kind]
    if kind == "folder":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "junk":
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(300))
    elif kind == "gif":
        Image.new("RGB", (8, 8)).save(path)
    r = inspect(path)
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr == f"figurine: error: {path}: {expected}\n"
    assert f"`FILE: {expected}`" in DOCS  # docs/bad-input.md shows the exact message


def test_keys_create_refuses_to_replace_a_key(files):
    r = run_figurine("keys", "create", files["key"], env=ENV)
    assert r.returncode == 2
    assert r.stderr.startswith("figurine: error: ")
    assert "figurine-signing-key.pem exists; use --force" in r.stderr
    assert len(r.stderr.splitlines()) == 1
    message = r.stderr.removeprefix("figurine: error: ").strip().replace(str(files["key"]), "DIR")
    assert f"`{message}`" in DOCS
