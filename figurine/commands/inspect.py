"""figurine inspect: what a picture says about where it came from.

    figurine inspect ada.jpg
    figurine inspect --json shared-copy.webp

For a PNG, JPEG or WebP file, reports:
- AI label: the IPTC digital source type in the file's XMP (trainedAlgorithmicMedia for
  everything figurine makes) and the creator tool;
- watermark: whether the invisible figurine mark is in the pixels (found / not found, with how
  many of its 64 bits match and the chance of that on an unmarked picture). This is the one that
  survives a platform stripping the metadata and re-encoding the picture;
- C2PA manifest: valid / invalid / trusted, who signed it, its digital source type and the
  validation codes that failed (needs the `c2pa` extra; without it, only whether one is there);
- settings: a summary of the figurine settings (seed, pose, template, steps, model) and the
  A1111 `parameters` text (prompt, negative prompt, sampler line).

Every byte of the file is untrusted: it is read once (regular files up to 100 MB), JSON and XMP
are size- and depth-bounded, no path or URL named in the file is opened or fetched, and text
from the file is printed with control characters escaped (no terminal escape sequences).

Exit codes: 0 when it reports (whatever it found, including "nothing"); 2 when FILE is missing,
not a regular file, unreadable, too large, or not a PNG, JPEG or WebP picture (one line on
stderr); 1 only for a bug.
"""

from __future__ import annotations

import argparse
import json
import unicodedata

SUMMARY_LIMIT = 200  # characters of any one value from the file
TEXT_LIMIT = 2000  # characters of the parameters text


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("inspect", help="show a picture's AI label, watermark, C2PA manifest and settings",
                       description="Show what a picture says about where it came from: its AI "
                                   "label, the invisible watermark, its C2PA manifest and its settings.",
                       epilog="Exit codes: 0 reported; 2 FILE missing, unreadable or not PNG/JPEG/WebP.")
    p.add_argument("file", metavar="FILE", help="a PNG, JPEG or WebP picture")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    return p


def clean(value, limit: int = SUMMARY_LIMIT) -> str:
    """Text from an untrusted file, safe to print: control and format characters (ANSI escapes,
    bidi overrides, NUL) shown as \\x.. / \\u...., cut to `limit` characters."""
    text = str(value)
    cut = len(text) > limit
    text = text[:limit]
    out = []
    for ch in text:
        if ch in "\n\t":
            out.append(ch)
        elif unicodedata.category(ch)[0] == "C" or ch in "\u2028\u2029":
            out.append(ch.encode("unicode_escape").decode("ascii"))
        else:
            out.append(ch)
    return "".join(out) + ("…" if cut else "")


def _scalar(value):
    return value if isinstance(value, (str, int, float, bool)) or value is None else None


def settings_summary(settings: dict) -> dict:
    """A few well-known settings, each only if it is a plain value of the expected place."""
    def get(*keys):
        node = settings
        for k in keys:
            if not isinstance(node, dict):
                return None
            node = node.get(k)
        return _scalar(node)

    summary = {
        "figurine": get("figurine"),
        "seed": get("resolved", "seed"),
        "pose": get("resolved", "pose"),
        "template": get("resolved", "template"),
        "size": get("resolved", "size"),
        "steps": get("config", "generation", "steps"),
        "scheduler": get("config", "generation", "scheduler"),
        "guidance": get("config", "generation", "guidance"),
        "model": get("config", "model", "base"),
        "energy_wh": get("energy", "total", "wh"),
    }
    return {k: v for k, v in summary.items() if v is not None}


def inspect_file(path) -> dict:
    """The report for one file (InputError if it cannot be read as PNG, JPEG or WebP)."""
    from figurine import provenance, signing, watermark

    meta = provenance.read_metadata(path, pixels=True)
    report: dict = {"file": str(meta.path), "format": meta.format, "size": list(meta.size)}

    # 1. The AI label in the XMP.
    label: dict = {"source_type": meta.source_type, "creator_tool": meta.creator_tool}
    if meta.xmp_error:
        label["error"] = meta.xmp_error
    label["ai_generated"] = bool(meta.source_type) and meta.source_type.rstrip("/").endswith(
        ("/trainedAlgorithmicMedia", "/compositeWithTrainedAlgorithmicMedia",
         "/algorithmicMedia", "/compositeSynthetic"))
    report["label"] = label if meta.xmp is not None else None

    # 2. The watermark in the pixels.
    if meta.image is not None:
        found = watermark.detect(meta.image)
    else:
        found = watermark.Detection(False, 0, watermark.N_BITS, 1.0, None, "picture too large to decode")
    report["watermark"] = {"checked": found.size is not None, "found": found.found,
                           "matched_bits": found.matched, "bits": found.bits,
                           "p_chance": found.p_chance, "description": found.describe()}

    # 3. The C2PA manifest.
    if signing.available():
        c2pa = signing.read_c2pa(meta.data, meta.format)
        report["c2pa"] = None if c2pa is None else {
            "state": c2pa.state, "signer": c2pa.signer, "issuer": c2pa.issuer,
            "generator": c2pa.generator, "source_types": c2pa.source_types,
            "untrusted_signer": c2pa.untrusted, "failures": c2pa.failures, "error": c2pa.error}
    else:
        report["c2pa"] = {"state": "not checked", "present": meta.has_c2pa} if meta.has_c2pa else None

    # 4. The settings.
    report["parameters"] = meta.parameters
    if meta.settings_error:
        report["settings"] = {"error": meta.settings_error}
    elif meta.settings is not None:
        report["settings"] = {"summary": settings_summary(meta.settings)}
    else:
        report["settings"] = None
    return report


def _short_type(uri: str) -> str:
    from figurine.provenance import DIGITAL_SOURCE_TYPES

    return uri[len(DIGITAL_SOURCE_TYPES):] if uri.startswith(DIGITAL_SOURCE_TYPES) else uri


def format_report(r: dict) -> list[str]:
    """The report as lines of text, every value from the file cleaned."""
    lines = [f"{clean(r['file'])}: {r['format']}, {r['size'][0]}x{r['size'][1]}"]

    label = r["label"]
    if label is None:
        text = "none (no XMP packet)"
    elif label.get("error"):
        text = f"unreadable XMP ({label['error']})"
    elif label["source_type"]:
        text = f"{clean(_short_type(label['source_type']))} (IPTC digital source type)"
        if label["ai_generated"]:
            text += ": made by a generative AI model"
        if label["creator_tool"]:
            text += f"; creator tool {clean(label['creator_tool'])}"
    else:
        text = "none (the XMP has no digital source type)"
    lines.append(f"  AI label (XMP):   {text}")

    lines.append(f"  watermark:        {r['watermark']['description']}")

    c = r["c2pa"]
    if c is None:
        text = "none"
    elif c["state"] == "not checked":
        text = "present, not checked (install the c2pa extra: pip install 'figurine[c2pa]')"
    elif c["state"] == "remote":
        text = f"kept on a server, not fetched (inspect works offline): {clean(c['error'])}"
    elif c.get("error"):
        text = f"invalid: the manifest cannot be read ({clean(c['error'])})"
    else:
        text = c["state"]
        if c["state"] == "valid":
            text += " (the file is unchanged since it was signed)"
        elif c["state"] == "invalid":
            text += " (the file was changed after signing, or the signature is broken)"
        text += f"; signed by \"{clean(c['signer'] or '(no name)')}\""
        if c.get("issuer"):
            text += f", issuer \"{clean(c['issuer'])}\""
        if c["untrusted_signer"]:
            text += "; signer on no trust list (self-signed or unknown: the name is unverified)"
        if c["source_types"]:
            text += f"; source type {', '.join(clean(_short_type(t)) for t in c['source_types'])}"
        other = [f for f in c["failures"] if f != "signingCredential.untrusted"]
        if other:
            text += f"; failed checks: {', '.join(clean(f) for f in other[:8])}"
    lines.append(f"  C2PA manifest:    {text}")

    s = r["settings"]
    if s is None:
        text = "none (no figurine settings)"
    elif s.get("error"):
        text = f"damaged ({s['error']})"
    else:
        text = ", ".join(f"{k} {clean(v)}" for k, v in s["summary"].items()) or "present"
    lines.append(f"  figurine settings: {text}")

    if r["parameters"]:
        lines.append("  parameters (A1111):")
        lines += [f"    {line}" for line in clean(r["parameters"], TEXT_LIMIT).splitlines()]
    else:
        lines.append("  parameters (A1111): none")
    return lines


def run(args) -> int:
    report = inspect_file(args.file)
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=True))
    else:
        print("\n".join(format_report(report)))
    return 0
