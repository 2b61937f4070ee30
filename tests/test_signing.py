"""C2PA signing with a local key (figurine/signing.py), checked by c2pa-python's own validator:
signed files read back valid (and untrusted: self-signed), one changed byte makes them invalid,
figurine's other metadata survives signing, and bad keys are one-line errors."""

import datetime
import io
import os
import stat

import c2pa
import pytest
from cryptography import x509
from PIL import Image

from figurine.errors import InputError, OutputExistsError
from figurine.provenance import encode_output, read_metadata, read_provenance, xmp_packet
from figurine.signing import (CERT_FILE, KEY_FILE, TRAINED_ALGORITHMIC_MEDIA, create_key, load_key,
                              read_c2pa, sign_c2pa)

RECORD = {"seed": 7, "request": {"name": "Ada"}}


@pytest.fixture(scope="module")
def key(tmp_path_factory):
    folder = tmp_path_factory.mktemp("home") / "figurine-key"
    create_key(folder, name="Test Signer")
    return load_key(folder)


@pytest.fixture(scope="module")
def picture():
    im = Image.new("RGB", (320, 320), (200, 40, 40))
    im.paste((20, 60, 200), (80, 80, 240, 240))
    return im


def test_key_files_are_private_and_the_certificate_names_the_signer(key, tmp_path):
    key_path, cert_path = create_key(tmp_path / "k", name="Ada Lovelace", days=30)
    assert stat.S_IMODE(os.stat(tmp_path / "k").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(key_path).st_mode) == 0o600
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    assert cert.subject == cert.issuer  # self-signed
    assert cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "Ada Lovelace"
    days = (cert.not_valid_after_utc - datetime.datetime.now(datetime.timezone.utc)).days
    assert 28 <= days <= 30
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    with pytest.raises(OutputExistsError, match="exists; use --force"):
        create_key(tmp_path / "k")
    old = key_path.read_bytes()
    create_key(tmp_path / "k", force=True)
    assert key_path.read_bytes() != old


@pytest.mark.parametrize("fmt, name", [("PNG", "a.png"), ("JPEG", "a.jpg"), ("WEBP", "a.webp")])
def test_signed_file_reads_back_valid_and_untrusted(key, picture, fmt, name, tmp_path):
    data = encode_output(picture, name, "a figure\nSteps: 4", RECORD, xmp_packet(), signing_key=key)
    report = read_c2pa(data, fmt)
    assert report.state == "valid", report
    assert report.signer == "Test Signer"
    assert report.source_types == [TRAINED_ALGORITHMIC_MEDIA]
    assert report.generator.startswith("figurine ")
    assert report.untrusted and report.failures == ["signingCredential.untrusted"]
    # the manifest sits beside figurine's own metadata; both read back
    (tmp_path / name).write_bytes(data)
    assert read_provenance(tmp_path / name) == RECORD
    meta = read_metadata(tmp_path / name)
    assert meta.has_c2pa and meta.parameters == "a figure\nSteps: 4"
    # and c2pa-python's own reader, as any other verifier would call it, agrees
    reader = c2pa.Reader(f"image/{fmt.lower()}", io.BytesIO(data))
    assert reader.get_validation_state() == "Valid"


def _pixel_byte(data: bytes, fmt: str) -> int:
    """An offset inside the compressed pixels (hashed by the manifest, outside its own box)."""
    if fmt == "PNG":
        return data.index(b"IDAT") + 40
    if fmt == "JPEG":
        return data.rindex(b"\xff\xda") + 200  # inside the entropy-coded scan
    return data.index(b"VP8 ") + 60


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_one_changed_byte_makes_the_manifest_invalid(key, picture, fmt):
    data = bytearray(encode_output(picture, fmt, "p", RECORD, watermark=False, signing_key=key))
    assert read_c2pa(bytes(data), fmt).state == "valid"
    data[_pixel_byte(bytes(data), fmt)] ^= 0x01
    report = read_c2pa(bytes(data), fmt)
    assert report.state == "invalid"
    assert "assertion.dataHash.mismatch" in report.failures


def test_unsigned_files_have_no_manifest(picture):
    data = encode_output(picture, "PNG", "p", RECORD, watermark=False)
    assert read_c2pa(data, "PNG") is None


def test_sign_c2pa_takes_plain_pem_bytes(key, picture):
    data = encode_output(picture, "JPEG", "p", RECORD, watermark=False)
    signed = sign_c2pa(data, "JPEG", key.key_pem, key.cert_pem,
                       assertions=[{"label": "org.example.note", "data": {"note": "hello"}}])
    assert read_c2pa(signed, "JPEG").state == "valid"
    with pytest.raises(ValueError, match="PNG, JPEG and WEBP"):
        sign_c2pa(data, "GIF", key.key_pem, key.cert_pem)


def test_bad_key_folders_are_one_line_errors(key, tmp_path):
    with pytest.raises(InputError, match="no such key folder"):
        load_key(tmp_path / "missing")
    # a certificate that belongs to another key
    create_key(tmp_path / "a")
    create_key(tmp_path / "b")
    (tmp_path / "a" / CERT_FILE).write_bytes((tmp_path / "b" / CERT_FILE).read_bytes())
    with pytest.raises(InputError, match="the certificate is not the key's own"):
        load_key(tmp_path / "a")
    (tmp_path / "b" / KEY_FILE).write_text("not a key")
    with pytest.raises(InputError, match="not an unencrypted PEM private key"):
        load_key(tmp_path / "b")
    with pytest.raises(InputError, match="1 to 64 printable characters"):
        create_key(tmp_path / "c", name="evil\x1b[31m")


def test_make_sign_embeds_a_valid_manifest_and_inspect_reports_it(tiny_weights, tmp_path):
    """`figurine make --sign KEY_DIR` end to end: the package carries a C2PA manifest that reads
    back valid (and untrusted: self-signed); a bad key folder stops before any model loads."""
    import json

    from tests.conftest import TINY_CONFIG, run_figurine
    from tests.photos import make_face_photo

    photo = make_face_photo(tmp_path / "me.jpg")
    made = run_figurine("keys", "create", tmp_path / "key", "--name", "Test Signer", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    proc = run_figurine("make", photo, "--name", "Ada", "--sign", tmp_path / "key", "--weights", tiny_weights,
                        "--config", TINY_CONFIG, "-o", tmp_path / "ada.png", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = run_figurine("inspect", tmp_path / "ada.png", "--json", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    c2pa_report = json.loads(report.stdout)["c2pa"]
    assert c2pa_report["state"] == "valid" and c2pa_report["signer"] == "Test Signer", c2pa_report
    bad = run_figurine("make", photo, "--name", "Ada", "--sign", tmp_path / "nokey", "--weights", tmp_path / "none",
                       "-o", tmp_path / "b.png", cwd=tmp_path)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and not (tmp_path / "b.png").exists()
