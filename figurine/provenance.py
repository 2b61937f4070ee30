"""Mark what figurine makes: A1111 `parameters`, a figurine JSON chunk, IPTC XMP; read it back.

    from figurine.provenance import a1111_parameters, xmp_packet, png_info, read_provenance
    from figurine.outputs import save_png
    text = a1111_parameters("action figure of a woman", "blurry", 30, "dpmpp_2m_karras", 5.0,
                            1234, 1024, 1024, "sdxl-base", "31e35c80fc", {"ControlNet": "openpose"})
    info = png_info(text, {"seed": 1234, "generation": {...}, "energy": {...}}, xmp_packet())
    save_png(card, "ada.png", pnginfo=info)
    settings = read_provenance("ada.png")        # for `figurine make --from ada.png PHOTO`

What a figurine PNG carries (and nothing else: save_png drops EXIF, ICC and source text):
- tEXt "parameters": the AUTOMATIC1111 infotext, so A1111's "PNG Info" tab, CivitAI and other
  readers show prompt, sampler, steps, CFG, seed, size and model. Layout, as A1111 writes it:
      <prompt>
      Negative prompt: <negative>            (line left out when there is none)
      Steps: 30, Sampler: DPM++ 2M Karras, CFG scale: 5.0, Seed: 1, Size: 1024x1024, ...
  Values containing "," ":" or a newline are JSON-quoted (A1111's own rule). "Model hash" is
  the first 10 hex digits of the checkpoint's sha256, A1111's short hash.
  (iTXt instead of tEXt only where the text is not latin-1, e.g. a name in another script.)
- tEXt "figurine": JSON with every setting, the seed, model hashes and energy: the input of
  `--from`. ASCII (non-ASCII escaped), so any PNG tool can show it.
- iTXt "XML:com.adobe.xmp": an XMP packet with Iptc4xmpExt:DigitalSourceType =
  http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia (IPTC's term for
  media made by a trained model, read by Google Images, Adobe and social platforms) and
  xmp:CreatorTool "figurine <version>". This key and chunk type are what the XMP specification
  (part 3) prescribes for PNG; Pillow reads it into im.info and im.getxmp().

No personal data goes in here beyond what the user typed (name, tagline): never the photo's
path, file name, EXIF or face embedding.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from xml.sax.saxutils import quoteattr

from figurine import __version__
from figurine.errors import InputError

# figurine scheduler name -> the sampler name A1111 writes (its k-diffusion/compvis names; the
# "Karras" variant is A1111's legacy combined name, still parsed by A1111 1.9+ and CivitAI).
A1111_SAMPLERS = {
    "dpmpp_2m_karras": "DPM++ 2M Karras",
    "dpmpp_2m": "DPM++ 2M",
    "euler": "Euler",
    "euler_a": "Euler a",
    "ddim": "DDIM",
    "unipc": "UniPC",
    "lcm": "LCM",
}

IPTC_EXT_NS = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
DIGITAL_SOURCE_TYPES = "http://cv.iptc.org/newscodes/digitalsourcetype/"
TRAINED_ALGORITHMIC_MEDIA = DIGITAL_SOURCE_TYPES + "trainedAlgorithmicMedia"
XMP_KEY = "XML:com.adobe.xmp"
FIGURINE_KEY = "figurine"
PARAMETERS_KEY = "parameters"

_XMP_NAMESPACES = {
    "x": "adobe:ns:meta/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "xmp": "http://ns.adobe.com/xap/1.0/",
    "dc": "http://purl.org/dc/elements/1.1/",
    "photoshop": "http://ns.adobe.com/photoshop/1.0/",
    "Iptc4xmpExt": IPTC_EXT_NS,
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


def read_provenance(png_path: str | os.PathLike) -> dict:
    """The figurine JSON stored in a PNG that figurine made; InputError otherwise."""
    from PIL import Image, UnidentifiedImageError

    path = Path(png_path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        with Image.open(path) as im:
            fmt = im.format
            text = {k: v for k, v in im.info.items() if isinstance(v, str)}
            if FIGURINE_KEY not in text and fmt == "PNG":
                # figurine writes its chunks before the pixels; other tools may move them
                # after, where Pillow finds them only once the image is decoded.
                im.load()
                text = dict(im.text)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError,
            ValueError) as e:
        raise InputError(f"{path}: not a readable PNG ({e.__class__.__name__})") from None
    if fmt != "PNG":
        raise InputError(f"{path}: is a {fmt} image; --from needs a PNG made by figurine")
    raw = text.get(FIGURINE_KEY)
    if raw is None:
        raise InputError(f"{path} has no figurine settings; was it made by figurine?")
    try:
        data = json.loads(raw)
    except json.JSONDecodeError:
        raise InputError(f"{path}: its figurine settings are damaged (not valid JSON)") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: its figurine settings are damaged (not a JSON object)")
    return data
