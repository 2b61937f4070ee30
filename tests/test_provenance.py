"""Provenance chunks (figurine/provenance.py) read back by real readers: Pillow, an XML parser,
and A1111's own infotext pattern."""

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image

from figurine.errors import InputError
from figurine.outputs import save_png
from figurine.provenance import (
    TRAINED_ALGORITHMIC_MEDIA, a1111_parameters, png_info, read_provenance, xmp_packet,
)
from tests.photos import GPS_LATITUDE, make_face_photo
from tests.scan import scan_for_leaks

# AUTOMATIC1111's infotext field pattern (modules/infotext_utils.py), used here as the reader.
A1111_FIELD = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')

SETTINGS = {
    "seed": 1234,
    "generation": {"steps": 30, "guidance": 5.0, "scheduler": "dpmpp_2m_karras"},
    "request": {"name": "Zoë Ångström", "tagline": "Analytical Engine Pilot"},
    "models": {"base": "31e35c80fc4829d14f90153f4c74cd59c90b779f6afe05a74cd6ffb8d1ee2ea6"},
    "energy": {"gpu_joules": 4210.5, "wh": 1.17},
}


def parse_a1111(text: str) -> tuple[str, str, dict]:
    """Prompt, negative prompt and fields, split the way A1111's PNG Info tab does."""
    *lines, last = text.strip().split("\n")
    prompt, negative, in_negative = [], [], False
    for line in lines:
        if line.startswith("Negative prompt:"):
            in_negative, line = True, line[len("Negative prompt:"):].strip()
        (negative if in_negative else prompt).append(line)
    fields = {k: (json.loads(v) if v.startswith('"') else v) for k, v in A1111_FIELD.findall(last)}
    return "\n".join(prompt), "\n".join(negative), fields


def png_chunks(path: Path) -> list[tuple[bytes, bytes]]:
    """(type, data) of every chunk, read straight from the file."""
    raw = path.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, pos = [], 8
    while pos < len(raw):
        length = int.from_bytes(raw[pos:pos + 4], "big")
        chunks.append((raw[pos + 4:pos + 8], raw[pos + 8:pos + 8 + length]))
        pos += 12 + length
    return chunks


def make_output(path: Path, params: str, settings=SETTINGS) -> Path:
    card = Image.new("RGB", (64, 48), (20, 90, 200))
    return save_png(card, path, pnginfo=png_info(params, settings, xmp_packet()))


def test_a1111_fields_read_back_by_the_a1111_pattern():
    text = a1111_parameters(
        "1/12 scale action figure of Zoë, articulated joints", "blurry, text", 30,
        "dpmpp_2m_karras", 5, 1234, 1024, 1024, "sdxl-base", "31e35c80fc4829d14f90",
        {"ControlNet": "openpose, weight 0.9", "IP-Adapter": "faceid-sdxl"})
    assert text.splitlines()[-1].startswith(
        "Steps: 30, Sampler: DPM++ 2M Karras, CFG scale: 5.0, Seed: 1234, Size: 1024x1024, "
        "Model hash: 31e35c80fc, Model: sdxl-base, ")
    prompt, negative, fields = parse_a1111(text)
    assert prompt == "1/12 scale action figure of Zoë, articulated joints"
    assert negative == "blurry, text"
    assert fields["ControlNet"] == "openpose, weight 0.9"  # quoted because of the comma
    assert fields["IP-Adapter"] == "faceid-sdxl"
    assert len(fields) == 9


@pytest.mark.parametrize("ours, a1111", [
    ("dpmpp_2m_karras", "DPM++ 2M Karras"), ("dpmpp_2m", "DPM++ 2M"), ("euler", "Euler"),
    ("euler_a", "Euler a"), ("ddim", "DDIM"), ("unipc", "UniPC"), ("lcm", "LCM")])
def test_every_scheduler_gets_its_a1111_sampler_name(ours, a1111):
    _, _, fields = parse_a1111(a1111_parameters("p", "", 4, ours, 1.5, 0, 64, 64, "m", "h"))
    assert fields["Sampler"] == a1111


def test_no_negative_prompt_means_no_negative_line():
    text = a1111_parameters("a figure", "", 4, "euler", 2.0, 7, 512, 768, "m", "0123456789ab")
    assert "Negative prompt" not in text
    assert text.splitlines()[1].startswith("Steps: 4, Sampler: Euler, CFG scale: 2.0, Seed: 7, Size: 512x768")


def test_png_carries_parameters_json_and_xmp_and_no_exif(tmp_path):
    params = a1111_parameters("figure of Zoë", "blurry", 30, "euler_a", 5.0, 1234, 64, 48, "sdxl", "abc")
    out = make_output(tmp_path / "OUT.png", params)
    with Image.open(out) as im:
        assert im.text["parameters"] == params
        assert json.loads(im.text["figurine"]) == SETTINGS
        assert len(im.getexif()) == 0
        xmp_text = im.info["XML:com.adobe.xmp"]
        xmp = im.getxmp() if _has_defusedxml() else None
    # the XMP parses as XML and declares AI-made content
    desc = ET.fromstring(xmp_text.split("?>", 1)[1].rsplit("<?xpacket", 1)[0]).find(
        ".//{http://www.w3.org/1999/02/22-rdf-syntax-ns#}Description")
    assert desc.get("{http://iptc.org/std/Iptc4xmpExt/2008-02-29/}DigitalSourceType") == TRAINED_ALGORITHMIC_MEDIA
    assert desc.get("{http://ns.adobe.com/xap/1.0/}CreatorTool").startswith("figurine ")
    if xmp is not None:  # Pillow's own XMP reader (needs defusedxml)
        assert xmp["xmpmeta"]["RDF"]["Description"]["DigitalSourceType"].endswith("/trainedAlgorithmicMedia")
    kinds = [kind for kind, _ in png_chunks(out)]
    assert b"eXIf" not in kinds and b"iCCP" not in kinds
    itxt = [data for kind, data in png_chunks(out) if kind == b"iTXt"]
    assert any(d.startswith(b"XML:com.adobe.xmp\x00\x00\x00") for d in itxt)  # iTXt, uncompressed


def _has_defusedxml() -> bool:
    try:
        import defusedxml  # noqa: F401
        return True
    except ImportError:
        return False


def test_saving_a_picture_that_had_gps_exif_drops_all_of_it(tmp_path):
    photo = make_face_photo(tmp_path / "selfie.jpg")
    with Image.open(photo) as im:
        assert im.getexif().get_ifd(0x8825)[2] == GPS_LATITUDE  # the source really has GPS
        out_dir = tmp_path / "out"
        out_dir.mkdir()
        save_png(im, out_dir / "OUT.png", text_chunks={"parameters": "x"})
    with Image.open(out_dir / "OUT.png") as back:
        assert len(back.getexif()) == 0
        assert "exif" not in back.info and "icc_profile" not in back.info
    kinds = {kind for kind, _ in png_chunks(out_dir / "OUT.png")}
    assert kinds <= {b"IHDR", b"IDAT", b"IEND", b"tEXt"}
    # no EXIF block, camera text or GPS text anywhere in the output (pixels are PNG-filtered
    # and deflated, so not even the raw pixel rows appear)
    assert scan_for_leaks(out_dir, photo) == []


def test_read_provenance_round_trips(tmp_path):
    out = make_output(tmp_path / "OUT.png", "p\nSteps: 1")
    assert read_provenance(out) == SETTINGS


def test_read_provenance_refuses_pngs_figurine_did_not_make(tmp_path):
    plain = tmp_path / "plain.png"
    Image.new("RGB", (8, 8)).save(plain)
    with pytest.raises(InputError) as e:
        read_provenance(plain)
    assert str(e.value) == f"{plain} has no figurine settings; was it made by figurine?"
    assert e.value.exit_code == 2

    jpeg = tmp_path / "photo.jpg"
    Image.new("RGB", (8, 8)).save(jpeg)
    with pytest.raises(InputError, match="is a JPEG image; --from needs a PNG made by figurine"):
        read_provenance(jpeg)
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not a picture at all")
    with pytest.raises(InputError, match="not a readable PNG"):
        read_provenance(junk)
    with pytest.raises(InputError, match="no such file"):
        read_provenance(tmp_path / "missing.png")


def test_read_provenance_reports_damaged_settings(tmp_path):
    card = Image.new("RGB", (8, 8))
    out = save_png(card, tmp_path / "OUT.png", text_chunks={"figurine": "{not json"})
    with pytest.raises(InputError, match="damaged"):
        read_provenance(out)


def test_xmp_rejects_unknown_properties_and_source_types():
    with pytest.raises(ValueError):
        xmp_packet({"evil:Thing": "x"})
    with pytest.raises(ValueError):
        xmp_packet(source_type="http://example.com/madeup")
    assert "xmp:CreateDate=\"2025-01-31T12:00:00Z\"" in xmp_packet({"xmp:CreateDate": "2025-01-31T12:00:00Z"})
