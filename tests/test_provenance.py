"""Provenance (figurine/provenance.py) read back by real readers: Pillow's PNG, JPEG and WebP
decoders, an XML parser, A1111's own infotext pattern and EXIF UserComment layout; untrusted
files refused or bounded; shareable() records and the leak scanner's shared mode."""

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from figurine import watermark
from figurine.errors import InputError
from figurine.outputs import save_png
from figurine.provenance import (
    FIGURINE_NS, JPEG_XMP_LIMIT, TRAINED_ALGORITHMIC_MEDIA, a1111_parameters, check_output_format,
    encode_output, png_info, read_metadata, read_provenance, shareable, xmp_packet,
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

    jpeg = tmp_path / "photo.jpg"  # JPEG and WebP are read too (figurine writes them), but
    Image.new("RGB", (8, 8)).save(jpeg)  # a plain photo has no settings
    with pytest.raises(InputError) as e:
        read_provenance(jpeg)
    assert str(e.value) == f"{jpeg} has no figurine settings; was it made by figurine?"
    gif = tmp_path / "anim.gif"
    Image.new("RGB", (8, 8)).save(gif)
    with pytest.raises(InputError, match="is a GIF image; figurine reads PNG, JPEG or WebP"):
        read_provenance(gif)
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not a picture at all")
    with pytest.raises(InputError, match="not a readable PNG, JPEG or WebP picture"):
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


# --- Output formats: PNG, JPEG, WebP ------------------------------------------------------------

PARAMS = a1111_parameters("1/12 scale action figure of Zoë, articulated joints", "blurry, text", 30,
                          "dpmpp_2m_karras", 5.0, 1234, 1024, 1024, "sdxl-base", "31e35c80fc4829d1",
                          {"ControlNet": "openpose, weight 0.9"})


@pytest.fixture(scope="module")
def package():
    """A package-sized picture with flat areas, edges and texture, like figurine's output."""
    from PIL import ImageDraw

    rng = np.random.default_rng(3)
    img = Image.new("RGB", (1080, 1350), (215, 212, 205))
    d = ImageDraw.Draw(img)
    d.rounded_rectangle([120, 150, 960, 1250], 40, fill=(220, 40, 40))
    d.rectangle([200, 300, 880, 1100], fill=(240, 240, 245))
    d.text((300, 200), "FIGURINE", fill=(255, 255, 255))
    tex = rng.normal(128, 40, (400, 300, 3)).clip(0, 255).astype(np.uint8)
    img.paste(Image.fromarray(tex), (390, 500))
    return img


@pytest.fixture(scope="module")
def outputs(package, tmp_path_factory):
    """The same picture and record written as PNG, JPEG and WebP by encode_output."""
    folder = tmp_path_factory.mktemp("formats")
    files = {}
    for name in ("OUT.png", "OUT.jpg", "OUT.webp"):
        files[name] = folder / name
        files[name].write_bytes(encode_output(package, folder / name, PARAMS, SETTINGS, xmp_packet()))
    return files


@pytest.mark.parametrize("name, fmt", [("a.png", "PNG"), ("a.PNG", "PNG"), ("b.jpg", "JPEG"),
                                       ("b.JPEG", "JPEG"), ("c.webp", "WEBP")])
def test_output_format_comes_from_the_extension(name, fmt):
    assert check_output_format(name) == fmt


@pytest.mark.parametrize("name, shown", [("a.gif", "'.gif'"), ("a.tiff", "'.tiff'"), ("a.jpg.txt", "'.txt'"),
                                         ("noext", "no extension")])
def test_unknown_output_formats_are_refused_with_the_allowed_ones(name, shown):
    with pytest.raises(InputError) as e:
        check_output_format(name)
    assert str(e.value) == f"{name}: unknown output format ({shown}); name the file .png, .jpg, .jpeg or .webp"
    assert e.value.exit_code == 2


@pytest.mark.parametrize("name, fmt", [("OUT.png", "PNG"), ("OUT.jpg", "JPEG"), ("OUT.webp", "WEBP")])
def test_every_format_carries_parameters_settings_label_and_watermark(outputs, package, name, fmt):
    path = outputs[name]
    with Image.open(path) as im:
        assert im.format == fmt and im.size == package.size
        im.load()
        assert "icc_profile" not in im.info
        pillow_xmp = im.getxmp() if _has_defusedxml() else None
        pixels = im.convert("RGB")
    # settings round-trip (what `make --from` reads)
    assert read_provenance(path) == SETTINGS
    meta = read_metadata(path)
    # the A1111 text, split by A1111's own pattern
    assert meta.parameters == PARAMS
    prompt, negative, fields = parse_a1111(meta.parameters)
    assert prompt.startswith("1/12 scale action figure of Zoë") and fields["Seed"] == "1234"
    # the AI label, read by a real XML parser and by Pillow's XMP reader
    assert meta.source_type == TRAINED_ALGORITHMIC_MEDIA
    assert meta.creator_tool.startswith("figurine ")
    if pillow_xmp is not None:
        assert pillow_xmp["xmpmeta"]["RDF"]["Description"]["DigitalSourceType"].endswith("/trainedAlgorithmicMedia")
    # the watermark in the decoded pixels
    assert watermark.detect(pixels).found


@pytest.mark.parametrize("name", ["OUT.jpg", "OUT.webp"])
def test_jpeg_and_webp_keep_parameters_where_a1111_reads_them(outputs, name):
    """EXIF UserComment, "UNICODE" + UTF-16 big-endian in a big-endian EXIF block: what A1111
    writes through piexif and reads back with piexif.helper.UserComment.load."""
    with Image.open(outputs[name]) as im:
        raw_exif = im.info["exif"]
        comment = im.getexif().get_ifd(0x8769)[0x9286]
    tiff = raw_exif[6:] if raw_exif.startswith(b"Exif\x00\x00") else raw_exif
    assert tiff[:4] == b"MM\x00*"
    assert comment[:8] == b"UNICODE\x00"
    assert comment[8:].decode("utf_16_be") == PARAMS


@pytest.mark.parametrize("name", ["OUT.jpg", "OUT.webp"])
def test_jpeg_and_webp_settings_live_in_the_xmp(outputs, name):
    meta = read_metadata(outputs[name])
    root = ET.fromstring(meta.xmp.split("?>", 1)[1].rsplit("<?xpacket", 1)[0])
    settings = root.find(f".//{{{FIGURINE_NS}}}Settings")
    assert json.loads(settings.text) == SETTINGS


def test_png_without_watermark_is_byte_for_byte_what_save_png_writes(package, tmp_path):
    info = png_info(PARAMS, SETTINGS, xmp_packet())
    save_png(package, tmp_path / "old.png", pnginfo=info)
    assert encode_output(package, "x.png", PARAMS, SETTINGS, xmp_packet(), watermark=False) == \
        (tmp_path / "old.png").read_bytes()


def test_jpeg_drops_stage_energy_and_layout_when_the_settings_do_not_fit(package, tmp_path):
    big = {**SETTINGS, "layout": {"filler": "x" * 40000},
           "energy": {"total": {"wh": 1.2}, "stages": [{"stage": "s", "note": "y" * 30000}]}}
    out = tmp_path / "big.jpg"
    out.write_bytes(encode_output(package, out, PARAMS, big, watermark=False))
    back = read_provenance(out)
    assert back["energy"] == {"total": {"wh": 1.2}} and "layout" not in back
    assert back["seed"] == SETTINGS["seed"]
    huge = {**SETTINGS, "prompts": {"figure": "z" * JPEG_XMP_LIMIT}}
    with pytest.raises(ValueError, match="a JPEG holds 65502"):
        encode_output(package, "huge.jpg", PARAMS, huge, watermark=False)
    png = tmp_path / "huge.png"  # PNG has no such limit
    png.write_bytes(encode_output(package, png, PARAMS, huge, watermark=False))
    assert read_provenance(png) == huge


def test_alpha_is_flattened_for_jpeg_and_kept_for_png_and_webp(tmp_path):
    rgba = Image.new("RGBA", (300, 300), (255, 0, 0, 0))
    rgba.paste((0, 0, 255, 255), (100, 100, 200, 200))
    for name, mode in (("a.png", "RGBA"), ("a.webp", "RGBA"), ("a.jpg", "RGB")):
        (tmp_path / name).write_bytes(encode_output(rgba, name, "p", {"seed": 1}))
        with Image.open(tmp_path / name) as im:
            assert im.mode == mode
            if mode == "RGB":
                assert max(abs(a - b) for a, b in zip(im.getpixel((10, 10)), (255, 255, 255))) < 12


# --- Reading untrusted files --------------------------------------------------------------------

def test_settings_nested_too_deep_or_too_large_are_damaged_not_a_crash(tmp_path):
    card = Image.new("RGB", (8, 8))
    cases = {"deep.png": "[" * 100000 + "]" * 100000,
             "deep40.png": '{"a":' * 40 + "1" + "}" * 40,
             "array.png": "[1, 2]"}
    for name, text in cases.items():
        save_png(card, tmp_path / name, text_chunks={"figurine": text})
    with pytest.raises(InputError, match=r"damaged \(nested deeper than 32 levels\)"):
        read_provenance(tmp_path / "deep.png")
    with pytest.raises(InputError, match=r"damaged \(nested deeper than 32 levels\)"):
        read_provenance(tmp_path / "deep40.png")
    with pytest.raises(InputError, match=r"damaged \(not a JSON object\)"):
        read_provenance(tmp_path / "array.png")
    big = tmp_path / "big.webp"  # WebP's XMP chunk has no size limit of its own
    packet = _xmp_with_settings("x" * (1 << 20))
    Image.new("RGB", (8, 8)).save(big, "WEBP", xmp=packet.encode())
    with pytest.raises(InputError, match=r"its XMP packet, which holds the figurine settings, is unreadable "
                                         r"\(larger than 1 MB\)"):
        read_provenance(big)


def _xmp_with_settings(settings_text: str, dtd: str = "") -> str:
    return (f'{dtd}<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            f'<rdf:Description xmlns:figurine="{FIGURINE_NS}"><figurine:Settings>{settings_text}'
            "</figurine:Settings></rdf:Description></rdf:RDF></x:xmpmeta>")


def test_xmp_with_a_dtd_is_never_expanded(tmp_path):
    laughs = ('<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
              '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY s SYSTEM "file:///etc/passwd">]>')
    path = tmp_path / "laughs.jpg"
    Image.new("RGB", (8, 8)).save(path, "JPEG", xmp=_xmp_with_settings("&c;&s;", laughs).encode())
    meta = read_metadata(path)
    assert meta.xmp_error == "has a DTD (XMP never does); not read"
    assert meta.settings is None and meta.source_type is None
    with pytest.raises(InputError, match="unreadable \\(has a DTD"):
        read_provenance(path)


def test_xmp_written_by_other_tools_as_elements_is_read(tmp_path):
    """exiftool and Adobe write properties as elements; the label is found there too."""
    packet = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
              '<rdf:Description rdf:about="" xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/">'
              f"<Iptc4xmpExt:DigitalSourceType>{TRAINED_ALGORITHMIC_MEDIA}</Iptc4xmpExt:DigitalSourceType>"
              "</rdf:Description></rdf:RDF></x:xmpmeta>")
    path = tmp_path / "other.webp"
    Image.new("RGB", (8, 8)).save(path, "WEBP", xmp=packet.encode())
    assert read_metadata(path).source_type == TRAINED_ALGORITHMIC_MEDIA


@pytest.mark.parametrize("kind", ["folder", "fifo", "huge"])
def test_unreadable_paths_are_one_line_errors(tmp_path, kind):
    import os

    path = tmp_path / f"x-{kind}.png"
    if kind == "folder":
        path.mkdir()
        expected = "is a folder, not a picture"
    elif kind == "fifo":
        os.mkfifo(path)  # opening it for reading would block; figurine must not
        expected = "is not a regular file"
    else:
        with open(path, "wb") as f:
            f.truncate(101 << 20)  # sparse: nothing is read
        expected = "is 101 MB; figurine reads pictures up to 100 MB"
    with pytest.raises(InputError) as e:
        read_provenance(path)
    assert str(e.value) == f"{path}: {expected}"


# --- What may be shared --------------------------------------------------------------------------

RUN_RECORD = {
    "figurine": "0.1.0",
    "salt": "8a99897bc2352668c4f4c65028e40b06",
    "request": {"name": "Ada L.", "tagline": "Pilot", "accessories": ["brass gear"],
                "accessory_images": ["/home/alice/Pictures/my-secret-mug.png"],
                "photo": "/home/alice/Pictures/private/ex-partner-2024.jpg",
                "pose_from": "/home/alice/ref/dance.jpg", "output": "/home/alice/out/ada.png",
                "pdf": "/home/alice/out/ada.pdf", "run_dir": "/home/alice/out/ada.run", "seed": 7},
    "resolved": {"seed": 7, "pose": "hero", "template": "classic-blister", "size": "social"},
    "config": {"weights_root": "/home/alice/weights",
               "sources": ["/home/alice/.config/figurine/mine.toml", "--set model.base=/opt/m/x.safetensors"],
               "model": {"base": "/opt/models/juggernaut-xl.safetensors", "controlnet": "controlnet-openpose-sdxl",
                         "loras": ["~/loras/toy-style.safetensors", "styles/plastic.safetensors"],
                         "insightface": "../elsewhere/buffalo_l"},
               "generation": {"steps": 30, "seed": 0}},
    "model_hashes": {"sdxl-base/unet/diffusion_pytorch_model.safetensors": "ab" * 32,
                     "../../opt/models/juggernaut-xl.safetensors": "cd" * 32},
    "stages": {"figure": {"inputs": {"photo": "9f50788caa78f7d1"}, "files": ["figure-0.png"]},
               "accessories": {"items": [{"text": "brass gear", "prompt": "a gear", "matte": "accessory-1-matte.png"},
                                         {"text": "my-secret-mug.png", "own_image": True,
                                          "matte": "accessory-own-1-matte.png"}]}},
    "prompts": {"figure": "figure", "accessories": {"brass gear": "a gear", "my-secret-mug.png": None}},
    "energy": {"total": {"wh": 1.2}},
}


def test_shareable_removes_paths_file_names_and_the_salt():
    before = json.dumps(RUN_RECORD, sort_keys=True)
    out = shareable(RUN_RECORD)
    assert json.dumps(RUN_RECORD, sort_keys=True) == before  # the run's own record is untouched
    text = json.dumps(out)
    for secret in ("/home/alice", "ex-partner", "dance.jpg", "my-secret-mug", "/opt/", "~/", "..",
                   RUN_RECORD["salt"], "mine.toml", "--set"):
        assert secret not in text, secret
    assert "salt" not in out
    req = out["request"]
    assert req["photo"] is None and req["pose_from"] is None and req["accessory_images"] == []
    assert req["output"] is None and req["pdf"] is None and req["run_dir"] is None
    assert req["withheld"] == ["photo", "pose_from", "accessory_images"]
    assert "weights_root" not in out["config"] and "sources" not in out["config"]
    model = out["config"]["model"]
    assert model["base"] == "juggernaut-xl.safetensors"
    assert model["controlnet"] == "controlnet-openpose-sdxl"  # inside the weights root: kept
    assert model["loras"] == ["toy-style.safetensors", "styles/plastic.safetensors"]
    assert model["insightface"] == "buffalo_l"
    assert set(out["model_hashes"]) == {"sdxl-base/unet/diffusion_pytorch_model.safetensors",
                                        "juggernaut-xl.safetensors"}
    items = out["stages"]["accessories"]["items"]
    assert [i["text"] for i in items] == ["brass gear", "own image 1"]
    assert out["prompts"]["accessories"] == {"brass gear": "a gear", "own image 1": None}


def test_shareable_keeps_what_make_from_needs():
    out = shareable(RUN_RECORD)
    assert out["request"]["name"] == "Ada L." and out["request"]["accessories"] == ["brass gear"]
    assert out["request"]["seed"] == 7 and out["resolved"] == RUN_RECORD["resolved"]
    assert out["config"]["generation"] == RUN_RECORD["config"]["generation"]
    assert out["stages"]["figure"]["inputs"]["photo"] == "9f50788caa78f7d1"  # unsalted: uncheckable
    assert out["energy"] == RUN_RECORD["energy"] and out["prompts"]["figure"] == "figure"
    assert shareable(out) == out  # applying it twice changes nothing


def test_leak_scan_in_shared_mode_finds_paths_names_and_salt(tmp_path, package):
    photo = make_face_photo(tmp_path / "ex-partner-2024.jpg")
    record = json.loads(json.dumps(RUN_RECORD).replace("/home/alice/Pictures/private/ex-partner-2024.jpg", str(photo)))
    shared = tmp_path / "shared"
    shared.mkdir()
    for name in ("leaky.jpg", "clean.jpg"):
        rec = record if name == "leaky.jpg" else shareable(record)
        (shared / name).write_bytes(encode_output(package, name, PARAMS, rec, watermark=False))
    found = scan_for_leaks(shared, photo, shared=True, secrets=[RUN_RECORD["salt"], "/home/alice/weights"])
    assert "leaky.jpg: the photo's file name" in found
    assert "leaky.jpg: the photo's path" in found
    assert "leaky.jpg: a secret (8a99897b…)" in found
    assert "leaky.jpg: a secret (/home/al…)" in found
    assert not [f for f in found if f.startswith("clean.jpg")]


def test_docs_list_the_read_back_and_output_format_messages(tmp_path):
    """docs/bad-input.md shows each message exactly as figurine prints it (FILE = the path)."""
    docs = (Path(__file__).resolve().parent.parent / "docs" / "bad-input.md").read_text()
    card = Image.new("RGB", (8, 8))
    cases = {"plain.png": None, "bad.png": "{not json", "deep.png": "[" * 100, "big.png": "1" * ((1 << 20) + 1)}
    messages = []
    for name, text in cases.items():
        save_png(card, tmp_path / name, text_chunks={"figurine": text} if text else None)
        with pytest.raises(InputError) as e:
            read_provenance(tmp_path / name)
        messages.append(str(e.value).replace(str(tmp_path / name), "FILE"))
    with pytest.raises(InputError) as e:
        check_output_format("OUT.gif")
    messages.append(str(e.value))
    for message in messages:
        assert f"`{message}`" in docs, message
