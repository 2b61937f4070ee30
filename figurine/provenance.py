"""Mark what figurine makes: A1111 `parameters`, the figurine settings, IPTC XMP, an invisible
watermark and optionally a C2PA manifest; read it all back.

    from figurine.provenance import (a1111_parameters, check_output_format, encode_output,
                                     read_provenance, shareable, xmp_packet)
    fmt = check_output_format("ada.jpg")          # "JPEG"; InputError for .gif etc., before any model
    text = a1111_parameters("action figure of a woman", "blurry", 30, "dpmpp_2m_karras", 5.0,
                            1234, 1024, 1024, "sdxl-base", "31e35c80fc", {"ControlNet": "openpose"})
    data = encode_output(card, "ada.jpg", text, shareable(record), xmp_packet())
    atomic_write("ada.jpg", lambda f: f.write(data))
    settings = read_provenance("ada.jpg")          # for `figurine make --from ada.jpg PHOTO`

Output formats, chosen by the output's extension (OUTPUT_FORMATS); every one carries the same
three things, each where readers of that format look for it:

    what                      PNG                          JPEG                       WebP
    A1111 `parameters`        tEXt "parameters"            EXIF UserComment           EXIF UserComment
    figurine settings (JSON)  tEXt "figurine"              XMP figurine:Settings      XMP figurine:Settings
    IPTC AI label (XMP)       iTXt "XML:com.adobe.xmp"     APP1 XMP                   "XMP " chunk

- `parameters`: the AUTOMATIC1111 infotext, so A1111's "PNG Info" tab, CivitAI and other readers
  show prompt, sampler, steps, CFG, seed, size and model. Layout, as A1111 writes it:
      <prompt>
      Negative prompt: <negative>            (line left out when there is none)
      Steps: 30, Sampler: DPM++ 2M Karras, CFG scale: 5.0, Seed: 1, Size: 1024x1024, ...
  Values containing "," ":" or a newline are JSON-quoted (A1111's own rule). "Model hash" is
  the first 10 hex digits of the checkpoint's sha256, A1111's short hash. In PNG a tEXt chunk
  (iTXt where not latin-1); in JPEG and WebP the EXIF UserComment tag, "UNICODE\\0" + UTF-16
  big-endian in a big-endian EXIF block: byte for byte what A1111 (through piexif) writes there.
- figurine settings: JSON with every setting, the seed, model hashes and energy: the input of
  `--from`. PNG: its own tEXt chunk, ASCII (non-ASCII escaped), as before. JPEG and WebP have no
  free text chunk, so it goes in the XMP packet as the element figurine:Settings (namespace
  FIGURINE_NS), which exiftool and Adobe tools show as "Settings". A JPEG's XMP segment holds at
  most 65 502 bytes; a record that does not fit loses its per-stage energy readings and layout
  first (totals stay), and only if it still does not fit is writing refused (ValueError).
- XMP: Iptc4xmpExt:DigitalSourceType = trainedAlgorithmicMedia (IPTC's term for media made by a
  trained model, read by Google Images, Adobe and social platforms) and xmp:CreatorTool
  "figurine <version>". The PNG key and chunk type are what the XMP specification (part 3)
  prescribes; JPEG and WebP use their standard XMP segment and chunk.
- Pixels: the invisible figurine watermark (figurine/watermark.py) unless watermark=False; it
  is what survives when a platform strips all of the above.
- C2PA (optional, `signing_key=`): a manifest signed with the user's own key
  (figurine/signing.py), embedded last, so its hash covers everything above.

JPEG is written at quality 95 without chroma subsampling (the package's lettering stays sharp),
WebP at quality 90. Nothing else goes in: no EXIF from the source, no ICC profile, no thumbnail.
No personal data goes in beyond what the user typed (name, tagline): `shareable(record)` removes
the photo's path and file name, absolute paths and the salt before a record is written.

Reading (read_metadata, read_provenance) treats every byte as untrusted: the file must be a
regular file of at most MAX_FILE_BYTES, JSON at most MAX_JSON_BYTES and MAX_JSON_DEPTH deep,
XMP at most MAX_XMP_BYTES and without a DTD; no path named inside a file is ever opened.
"""

from __future__ import annotations

import copy
import io
import json
import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from figurine import __version__, limits
from figurine.errors import InputError

log = logging.getLogger(__name__)

# figurine scheduler name -> the sampler name A1111 writes (its k-diffusion/compvis names; the
# "Karras" variant is A1111's legacy combined name, still parsed by A1111 1.9+ and CivitAI).
A1111_SAMPLERS = {name: a1111 for name, (_, _, a1111) in limits.SCHEDULERS.items()}

IPTC_EXT_NS = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
XMP_NS = "http://ns.adobe.com/xap/1.0/"
FIGURINE_NS = "urn:figurine:xmp:1.0/"
DIGITAL_SOURCE_TYPES = "http://cv.iptc.org/newscodes/digitalsourcetype/"
TRAINED_ALGORITHMIC_MEDIA = DIGITAL_SOURCE_TYPES + "trainedAlgorithmicMedia"
XMP_KEY = "XML:com.adobe.xmp"
FIGURINE_KEY = "figurine"
PARAMETERS_KEY = "parameters"

OUTPUT_FORMATS = limits.OUTPUT_FORMATS
MIME_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
JPEG_QUALITY = 95
WEBP_QUALITY = 90
JPEG_XMP_LIMIT = 65502  # bytes of XMP one JPEG APP1 segment can hold (Pillow refuses more)

MAX_FILE_BYTES = 100 << 20  # a figurine package is ~0.5-3 MB
MAX_JSON_BYTES = 1 << 20
MAX_JSON_DEPTH = 32
MAX_XMP_BYTES = 1 << 20
MAX_DECODE_PIXELS = 50_000_000  # read_metadata(pixels=True) decodes no larger picture

EXIF_IFD = 0x8769
USER_COMMENT = 0x9286
SOFTWARE = 0x0131
_UNICODE_PREFIX = b"UNICODE\x00"
_ASCII_PREFIX = b"ASCII\x00\x00\x00"

_XMP_NAMESPACES = {
    "x": "adobe:ns:meta/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "xmp": XMP_NS,
    "dc": "http://purl.org/dc/elements/1.1/",
    "photoshop": "http://ns.adobe.com/photoshop/1.0/",
    "Iptc4xmpExt": IPTC_EXT_NS,
    "figurine": FIGURINE_NS,
}


# --- A1111 infotext ---------------------------------------------------------------------------

def _a1111_quote(value: object) -> str:
    """A1111's rule: JSON-quote a value only if it holds a comma, colon or newline."""
    text = str(value)
    if "," not in text and ":" not in text and "\n" not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def a1111_parameters(prompt: str, negative: str, steps: int, sampler: str, cfg_scale: float,
                     seed: int, width: int, height: int, model_name: str, model_hash: str,
                     extra: dict | None = None) -> str:
    """The `parameters` text exactly as AUTOMATIC1111 lays it out.

    `sampler` is a figurine scheduler name (see A1111_SAMPLERS); an unknown one is written as
    is. `extra` entries follow the standard fields in their order; None values are left out.
    """
    fields: dict[str, object] = {
        "Steps": int(steps),
        "Sampler": A1111_SAMPLERS.get(sampler, sampler),
        "CFG scale": float(cfg_scale),
        "Seed": int(seed),
        "Size": f"{int(width)}x{int(height)}",
        "Model hash": (model_hash or "")[:10] or None,
        "Model": model_name or None,
    }
    for key, value in (extra or {}).items():
        if not key or any(c in key for c in ",:\n"):
            raise ValueError(f"A1111 field name {key!r} may not contain ',', ':' or a newline")
        fields[key] = value
    line = ", ".join(f"{k}: {_a1111_quote(v)}" for k, v in fields.items() if v is not None)
    negative_line = f"\nNegative prompt: {negative}" if negative else ""
    return f"{prompt}{negative_line}\n{line}".strip()


# --- XMP --------------------------------------------------------------------------------------

def xmp_packet(extra: dict | None = None,
               source_type: str = TRAINED_ALGORITHMIC_MEDIA) -> str:
    """An XMP packet declaring AI-generated content and figurine as the creator tool.

    `extra` adds simple properties as {"prefix:Name": value} with prefix xmp, dc, photoshop or
    Iptc4xmpExt (e.g. {"xmp:CreateDate": "2025-01-31T12:00:00Z"}). `source_type` may be another
    IPTC digital source type URI, e.g. DIGITAL_SOURCE_TYPES + "compositeWithTrainedAlgorithmicMedia".
    """
    if not source_type.startswith(DIGITAL_SOURCE_TYPES):
        raise ValueError(f"not an IPTC digital source type: {source_type}")
    props = {
        "xmp:CreatorTool": f"figurine {__version__}",
        "Iptc4xmpExt:DigitalSourceType": source_type,
    }
    for key, value in (extra or {}).items():
        prefix, _, name = key.partition(":")
        if prefix not in ("xmp", "dc", "photoshop", "Iptc4xmpExt") or not name.isidentifier():
            raise ValueError(f"unsupported XMP property {key!r}")
        props[key] = str(value)
    used = ["x", "rdf"] + sorted({k.split(":")[0] for k in props})
    ns = {p: _XMP_NAMESPACES[p] for p in used}
    attrs = "".join(f"\n    xmlns:{p}={quoteattr(uri)}" for p, uri in ns.items() if p not in ("x", "rdf"))
    values = "".join(f"\n    {k}={quoteattr(v)}" for k, v in props.items())
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        f'<x:xmpmeta xmlns:x="{ns["x"]}">\n'
        f' <rdf:RDF xmlns:rdf="{ns["rdf"]}">\n'
        f'  <rdf:Description rdf:about=""{attrs}{values}/>\n'
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="w"?>'
    )


def _with_settings(xmp: str, settings: dict) -> str:
    """A packet made by xmp_packet() with figurine:Settings added (the caller's other
    properties kept)."""
    head, sep, tail = xmp.partition("/>\n </rdf:RDF>")
    if not sep or "<rdf:Description" not in head:
        raise ValueError("the XMP packet must come from xmp_packet()")
    body = escape(json.dumps(settings, ensure_ascii=True, sort_keys=True, separators=(",", ":")))
    if "xmlns:figurine=" not in head:
        about = 'rdf:about=""'
        head = head.replace(about, f"{about}\n    xmlns:figurine={quoteattr(FIGURINE_NS)}", 1)
    return (f"{head}>\n   <figurine:Settings>{body}</figurine:Settings>\n"
            f"  </rdf:Description>\n </rdf:RDF>{tail}")


# --- PNG chunks -------------------------------------------------------------------------------

def png_info(parameters_text: str, figurine_json: dict, xmp: str | None = None):
    """A PngInfo with the `parameters`, `figurine` and XMP chunks, for save_png(pnginfo=...)."""
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text(PARAMETERS_KEY, parameters_text)  # Pillow falls back to iTXt if not latin-1
    info.add_text(FIGURINE_KEY, json.dumps(figurine_json, ensure_ascii=True, sort_keys=True))
    if xmp is not None:
        info.add_itxt(XMP_KEY, xmp, lang="", tkey="", zip=False)
    return info


# --- Output formats ---------------------------------------------------------------------------

def check_output_format(path: str | os.PathLike) -> str:
    """"PNG", "JPEG" or "WEBP" from the output's extension; InputError for any other. Cheap:
    call it while checking the command line, before any model loads."""
    suffix = Path(path).suffix.lower()
    fmt = OUTPUT_FORMATS.get(suffix)
    if fmt is None:
        what = f"'{suffix}'" if suffix else "no extension"
        raise InputError(f"{path}: unknown output format ({what}); "
                         f"name the file .png, .jpg, .jpeg or .webp")
    return fmt


def _format_of(path_or_format: str | os.PathLike) -> str:
    name = str(path_or_format).upper()
    if name in ("PNG", "JPEG", "JPG", "WEBP"):
        return "JPEG" if name == "JPG" else name
    return check_output_format(path_or_format)


def _exif_user_comment(parameters: str) -> bytes:
    """An EXIF block (big-endian, as piexif writes it) with UserComment = parameters in the
    "UNICODE" encoding A1111 uses, and Software = figurine."""
    from PIL import Image

    exif = Image.Exif()
    exif[SOFTWARE] = f"figurine {__version__}"
    exif.get_ifd(EXIF_IFD)[USER_COMMENT] = _UNICODE_PREFIX + parameters.encode("utf-16-be")
    return exif.tobytes()


def _fitted_xmp(xmp: str, record: dict, limit: int | None) -> bytes:
    """The XMP packet with the settings in it; for JPEG trimmed to fit one APP1 segment."""
    packet = _with_settings(xmp, record).encode("utf-8")
    if limit is None or len(packet) <= limit:
        return packet
    slim = copy.deepcopy(record)
    slim.pop("layout", None)
    if isinstance(slim.get("energy"), dict):
        slim["energy"].pop("stages", None)
    packet = _with_settings(xmp, slim).encode("utf-8")
    if len(packet) > limit:
        raise ValueError(f"the settings need {len(packet)} bytes of XMP; a JPEG holds {limit}")
    log.info("settings too large for a JPEG's XMP segment: per-stage energy and layout left out")
    return packet


def encode_output(image, path_or_format: str | os.PathLike, parameters: str, record: dict,
                  xmp: str | None = None, watermark: bool = True, signing_key=None) -> bytes:
    """The finished output file's bytes, in the format the path's extension names (or "PNG",
    "JPEG", "WEBP"), with every piece of provenance that format can carry (see the table above).

    `record` is written as given: pass shareable(record). `xmp` defaults to xmp_packet().
    `signing_key` (a figurine.signing.SigningKey) adds a C2PA manifest signed with it.
    """
    from figurine import watermark as wm

    # 1. Check the inputs.
    fmt = _format_of(path_or_format)
    xmp = xmp_packet() if xmp is None else xmp
    picture = image.copy()
    picture.info = {}  # no EXIF, ICC, comments or text from wherever the pixels came from
    if picture.mode not in ("RGB", "RGBA"):
        picture = picture.convert("RGBA" if "A" in picture.getbands() else "RGB")

    # 2. The watermark, in the pixels every format keeps.
    if watermark:
        if min(picture.size) >= wm.MIN_SIDE:
            picture = wm.embed(picture)
        else:
            log.warning("picture smaller than %d px: no watermark", wm.MIN_SIDE)

    # 3. Encode with the format's metadata.
    out = io.BytesIO()
    if fmt == "PNG":
        picture.save(out, format="PNG", pnginfo=png_info(parameters, record, xmp))
    elif fmt == "JPEG":
        if picture.mode == "RGBA":  # JPEG has no alpha: flatten onto white
            from PIL import Image

            flat = Image.new("RGB", picture.size, (255, 255, 255))
            flat.paste(picture, mask=picture.getchannel("A"))
            picture = flat
        picture.save(out, format="JPEG", quality=JPEG_QUALITY, subsampling=0,
                     exif=_exif_user_comment(parameters), xmp=_fitted_xmp(xmp, record, JPEG_XMP_LIMIT))
    else:
        picture.save(out, format="WEBP", quality=WEBP_QUALITY, exif=_exif_user_comment(parameters),
                     xmp=_fitted_xmp(xmp, record, None))
    data = out.getvalue()

    # 4. The C2PA manifest last: its hash covers the bytes above.
    if signing_key is not None:
        from figurine.signing import sign_c2pa

        data = sign_c2pa(data, fmt, signing_key.key_pem, signing_key.cert_pem)
    return data


# --- Reading ----------------------------------------------------------------------------------

@dataclass
class FileMetadata:
    """What a picture says about itself. Every field comes from an untrusted file."""

    path: Path
    format: str
    size: tuple[int, int]
    parameters: str | None = None  # A1111 infotext
    settings: dict | None = None  # figurine JSON
    settings_error: str | None = None  # why the settings could not be used
    xmp: str | None = None
    xmp_error: str | None = None
    source_type: str | None = None  # IPTC DigitalSourceType URI from the XMP
    creator_tool: str | None = None
    has_c2pa: bool = False  # a C2PA (JUMBF) manifest store seems present
    data: bytes = field(default=b"", repr=False)  # the file's bytes, as read once
    image: object = field(default=None, repr=False)  # decoded PIL image (pixels=True, up to 50 MP)


def read_bytes(path: str | os.PathLike, limit: int = MAX_FILE_BYTES) -> bytes:
    """A regular file's bytes, at most `limit`; InputError for anything else (missing, a
    folder, a FIFO or device, too large). Never blocks on a FIFO."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder, not a picture") from None
    except OSError as e:
        raise InputError(f"{path}: cannot be read ({e.strerror or e.__class__.__name__})") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise InputError(f"{path}: is a folder, not a picture")
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"{path}: is not a regular file")
        if st.st_size > limit:
            raise InputError(f"{path}: is {st.st_size >> 20} MB; figurine reads pictures up to {limit >> 20} MB")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(limit + 1)
    except OSError as e:
        raise InputError(f"{path}: cannot be read ({e.strerror or e.__class__.__name__})") from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise InputError(f"{path}: is larger than {limit >> 20} MB")
    return data


def _depth(value, limit: int) -> int:
    """Nesting depth of parsed JSON, stopping once past `limit`."""
    stack, deepest = [(value, 1)], 0
    while stack:
        item, d = stack.pop()
        deepest = max(deepest, d)
        if deepest > limit:
            return deepest
        if isinstance(item, dict):
            stack += [(v, d + 1) for v in item.values()]
        elif isinstance(item, list):
            stack += [(v, d + 1) for v in item]
    return deepest


def parse_settings(raw: str | bytes) -> tuple[dict | None, str | None]:
    """(settings, None) or (None, why they are damaged); bounded in size and depth."""
    if len(raw) > MAX_JSON_BYTES:
        return None, f"larger than {MAX_JSON_BYTES >> 20} MB"
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None, "not valid JSON"
    except RecursionError:
        return None, f"nested deeper than {MAX_JSON_DEPTH} levels"
    if not isinstance(data, dict):
        return None, "not a JSON object"
    if _depth(data, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        return None, f"nested deeper than {MAX_JSON_DEPTH} levels"
    return data, None


def _user_comment(exif) -> str | None:
    """EXIF UserComment as text: "UNICODE" in the block's byte order (A1111/piexif: big-endian),
    "ASCII", or undefined (read as UTF-8)."""
    raw = exif.get_ifd(EXIF_IFD).get(USER_COMMENT)
    if isinstance(raw, str):
        return raw or None
    if not isinstance(raw, bytes) or len(raw) < 8:
        return None
    prefix, body = raw[:8], raw[8:]
    if prefix == _UNICODE_PREFIX:
        order = "utf-16-le" if getattr(exif, "endian", None) == "<" else "utf-16-be"
        return body.decode(order, errors="replace")
    return body.decode("ascii" if prefix == _ASCII_PREFIX else "utf-8", errors="replace") or None


def parse_xmp(text: str) -> dict:
    """From an XMP packet: {"source_type", "creator_tool", "settings_raw"} (each None when
    absent) or {"error": why}. Bounded; a packet with a DTD is refused, never expanded."""
    import xml.etree.ElementTree as ET

    if len(text) > MAX_XMP_BYTES:
        return {"error": f"larger than {MAX_XMP_BYTES >> 20} MB"}
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        return {"error": "has a DTD (XMP never does); not read"}
    body = text[text.find("<x:xmpmeta"):] if "<x:xmpmeta" in text else text
    body = body.split("<?xpacket end", 1)[0]
    try:
        root = ET.fromstring(body.lstrip("\ufeff"))
    except ET.ParseError:
        return {"error": "not well-formed XML"}

    def find(ns: str, name: str) -> str | None:
        tag = f"{{{ns}}}{name}"
        for el in root.iter():
            if tag in el.attrib:
                return el.attrib[tag]
            if el.tag == tag:
                return (el.text or "").strip() or el.attrib.get(f"{{{_XMP_NAMESPACES['rdf']}}}resource")
        return None

    return {"source_type": find(IPTC_EXT_NS, "DigitalSourceType"),
            "creator_tool": find(XMP_NS, "CreatorTool"),
            "settings_raw": find(FIGURINE_NS, "Settings")}


def _has_c2pa(data: bytes, fmt: str) -> bool:
    """Whether the file seems to hold a C2PA manifest store (its JUMBF box), without parsing it."""
    if fmt == "PNG":
        return b"caBX" in data
    return b"jumb" in data and b"c2pa" in data


def read_metadata(path: str | os.PathLike, pixels: bool = False) -> FileMetadata:
    """Everything figurine can read from a PNG, JPEG or WebP file, checked and bounded.
    InputError when the file is missing, unreadable, not a picture, or another format.
    pixels=True also decodes the picture (for the watermark)."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    data = read_bytes(path)
    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt = im.format
            if fmt not in MIME_TYPES:
                raise InputError(f"{path}: is a {fmt} image; figurine reads PNG, JPEG or WebP")
            info = dict(im.info)
            exif = im.getexif() if fmt != "PNG" else None
            if (pixels and im.width * im.height <= MAX_DECODE_PIXELS) or (fmt == "PNG" and FIGURINE_KEY not in info):
                # figurine writes its chunks before the pixels; other tools may move them
                # after, where Pillow finds them only once the image is decoded.
                im.load()
                info.update(getattr(im, "text", {}) or {})
            meta = FileMetadata(path, fmt, im.size, data=data)
            if pixels and im.width * im.height <= MAX_DECODE_PIXELS:
                meta.image = im.convert("RGBA" if im.mode in ("RGBA", "LA", "PA") else "RGB")
    except InputError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError,
            ValueError, EOFError, IndexError, KeyError, TypeError):
        raise InputError(f"{path}: not a readable PNG, JPEG or WebP picture") from None

    # 1. Settings and parameters where this format keeps them.
    if fmt == "PNG":
        meta.parameters = info.get(PARAMETERS_KEY) if isinstance(info.get(PARAMETERS_KEY), str) else None
        xmp_text = info.get(XMP_KEY)
        raw_settings = info.get(FIGURINE_KEY) if isinstance(info.get(FIGURINE_KEY), str) else None
    else:
        try:
            meta.parameters = _user_comment(exif)
        except Exception:  # a damaged EXIF block is reported as no parameters
            meta.parameters = None
        xmp_raw = info.get("xmp")
        xmp_text = xmp_raw.decode("utf-8", errors="replace") if isinstance(xmp_raw, bytes) else None
        raw_settings = None

    # 2. The XMP packet: the AI label (and, in JPEG/WebP, the settings).
    if isinstance(xmp_text, str):
        meta.xmp = xmp_text
        parsed = parse_xmp(xmp_text)
        meta.xmp_error = parsed.get("error")
        meta.source_type = parsed.get("source_type")
        meta.creator_tool = parsed.get("creator_tool")
        if fmt != "PNG":
            raw_settings = parsed.get("settings_raw")
    if raw_settings is not None:
        meta.settings, meta.settings_error = parse_settings(raw_settings)
    meta.has_c2pa = _has_c2pa(data, fmt)
    return meta


def read_provenance(path: str | os.PathLike) -> dict:
    """The figurine settings stored in a PNG, JPEG or WebP that figurine made; InputError
    otherwise (for `figurine make --from`). Validate the values before using them."""
    meta = read_metadata(path)
    if meta.settings_error:
        raise InputError(f"{meta.path}: its figurine settings are damaged ({meta.settings_error})")
    if meta.settings is None and meta.xmp_error and meta.format != "PNG":
        raise InputError(f"{meta.path}: its XMP packet, which holds the figurine settings, is "
                         f"unreadable ({meta.xmp_error})")
    if meta.settings is None:
        raise InputError(f"{meta.path} has no figurine settings; was it made by figurine?")
    return meta.settings


# --- What may go in a shared file ---------------------------------------------------------------

# request fields that name local files: never in a shared file
_LOCAL_FILES = ("photo", "pose_from", "accessory_images", "output", "pdf", "run_dir")


def _is_local_path(value: str) -> bool:
    return (os.path.isabs(value) or value.startswith("~") or value.startswith("\\\\")
            or (len(value) > 2 and value[1] == ":" and value[2] in "\\/")
            or ".." in Path(value.replace("\\", "/")).parts)


def _bare_name(value: str) -> str:
    """A model setting without its folder when it points outside the weights root."""
    return Path(value.replace("\\", "/")).name if _is_local_path(value) else value


def shareable(record: dict) -> dict:
    """A copy of a run record fit for a file others will see (PNG/JPEG/WebP, JSON sidecar).

    Removed: the photo's path and file name, every other local file path of the request
    (pose reference, own accessory pictures, output, PDF, run directory), the weights root and
    the config files and --set lines applied (config.sources), and the salt of the photo's
    hash (without it the hash cannot be checked against a guessed photo). Model paths outside
    the weights root keep only their file name, as do model_hashes keys. Own accessory
    pictures are named "own image 1", ... in place of their file names. request["withheld"]
    lists which local inputs the run had, so `--from` can ask for them again.
    Everything else (what the user typed, settings, seed, prompts, hashes, energy) stays.
    """
    out = copy.deepcopy(record)
    out.pop("salt", None)

    # 1. The request: no local file names.
    req = out.get("request")
    if isinstance(req, dict):
        before = req.get("withheld") if isinstance(req.get("withheld"), list) else []
        withheld = [k for k in ("photo", "pose_from", "accessory_images") if req.get(k) or k in before]
        for k in _LOCAL_FILES:
            if k in req:
                req[k] = [] if k == "accessory_images" else None
        req["withheld"] = withheld

    # 2. The config: no weights root, no config file paths, model names without folders.
    cfg = out.get("config")
    if isinstance(cfg, dict):
        cfg.pop("weights_root", None)
        cfg.pop("sources", None)
        model = cfg.get("model")
        if isinstance(model, dict):
            for k, v in model.items():
                if isinstance(v, str):
                    model[k] = _bare_name(v)
                elif isinstance(v, list):
                    model[k] = [_bare_name(x) if isinstance(x, str) else x for x in v]
    hashes = out.get("model_hashes")
    if isinstance(hashes, dict):
        out["model_hashes"] = {_bare_name(k): v for k, v in hashes.items()}

    # 3. Own accessory pictures: their file names become "own image N".
    renames: dict[str, str] = {}
    items = out.get("stages", {}).get("accessories", {}).get("items", []) if isinstance(out.get("stages"), dict) else []
    n = 0
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and item.get("own_image"):
            n += 1
            renames[str(item.get("text"))] = item["text"] = f"own image {n}"
    prompts = out.get("prompts", {}).get("accessories") if isinstance(out.get("prompts"), dict) else None
    if isinstance(prompts, dict) and renames:
        out["prompts"]["accessories"] = {renames.get(k, k): v for k, v in prompts.items()}
    return out
