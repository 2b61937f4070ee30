#!/usr/bin/env python3
"""What the invisible watermark survives, what it costs, and how often it is seen where it is not.

    python3 benchmarks/watermark_robustness.py                # writes the table to stdout
    python3 benchmarks/watermark_robustness.py --quick        # one template, fewer photos

Pictures: the packages figurine draws (every template, social and story sizes, around the
example figure of scripts/draw_example_figure.py with three accessories) and the drawn test
photos of tests/photos.py (several seeds and sizes: photo-like texture, not a package size).
For each marked picture and each change a sharing platform makes (re-encode, scale, crop,
brightness), it prints how many of the 64 bits figurine.watermark.detect reads back (56 or more:
found). Unmarked pictures (the same ones before marking, plus noise) measure the false-positive
rate. If the invisible-watermark package is installed, its two DWT-DCT methods (dwtDct is what
SDXL's diffusers pipeline uses) are measured on the packages too, for comparison.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from figurine import watermark as wm  # noqa: E402
from figurine.matte import cut_out  # noqa: E402
from figurine.packaging import PackText, list_templates, render_image  # noqa: E402
from tests.photos import make_face_photo  # noqa: E402


def _draw_module():
    spec = importlib.util.spec_from_file_location("draw_example_figure",
                                                  ROOT / "scripts" / "draw_example_figure.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def reencode(im: Image.Image, fmt: str, **kw) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def scaled(im: Image.Image, f: float) -> Image.Image:
    return im.resize((round(im.width * f), round(im.height * f)), Image.Resampling.LANCZOS)


def shifted(im: Image.Image, d: int) -> Image.Image:
    return Image.fromarray(np.clip(np.asarray(im).astype(int) + d, 0, 255).astype(np.uint8))


ATTACKS = {
    "as written": lambda im: im,
    "JPEG q90": lambda im: reencode(im, "JPEG", quality=90),
    "JPEG q80": lambda im: reencode(im, "JPEG", quality=80),
    "JPEG q70": lambda im: reencode(im, "JPEG", quality=70),
    "JPEG q50": lambda im: reencode(im, "JPEG", quality=50),
    "WebP q80": lambda im: reencode(im, "WEBP", quality=80),
    "WebP q60": lambda im: reencode(im, "WEBP", quality=60),
    "half size": lambda im: scaled(im, 0.5),
    "3/4 size": lambda im: scaled(im, 0.75),
    "half size + JPEG q80": lambda im: reencode(scaled(im, 0.5), "JPEG", quality=80),
    "brightness +20": lambda im: shifted(im, 20),
    "crop 10% top-left": lambda im: im.crop((im.width // 10, im.height // 10, im.width, im.height)),
    "crop 2 px left": lambda im: im.crop((2, 0, im.width, im.height)),
}


def pictures(quick: bool) -> tuple[list, list]:
    draw = _draw_module()
    figure = cut_out(draw.figure())
    accessories = [cut_out(draw.accessory(k)) for k in ("mug", "laptop", "cat")]
    text = PackText("Ada Lovelace", "Analytical Engine Pilot")
    templates = list_templates()[:1] if quick else list_templates()
    packages = [(f"{t} {size}", render_image(figure, accessories, text, t, size))
                for t in templates for size in (["social"] if quick else ["social", "story"])]
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"wm-bench-{os.getpid()}"
    tmp.mkdir(exist_ok=True)
    photos = []
    for seed in range(2 if quick else 6):
        for side in (512, 1024):
            p = make_face_photo(tmp / f"p{seed}-{side}.jpg", size=(side, side), seed=seed)
            photos.append((f"photo seed {seed} {side}px", Image.open(p).convert("RGB")))
    return packages, photos


def psnr(a: Image.Image, b: Image.Image) -> float:
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    return 10 * np.log10(255 ** 2 / max(np.mean(d ** 2), 1e-12))


def png_size(im: Image.Image) -> int:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.tell()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    packages, photos = pictures(args.quick)

    # 1. Marked pictures: bits read back after each change.
    print(f"\nbits of {wm.N_BITS} read back (found at >= {wm.MIN_MATCH}); rows: pictures, columns: changes")
    print("picture".ljust(34) + " ".join(f"{a[:9]:>9}" for a in ATTACKS))
    worst = {a: wm.N_BITS for a in ATTACKS}
    found = {a: 0 for a in ATTACKS}
    costs, embed_s, detect_s = [], [], []
    for name, im in packages + photos:
        t0 = time.perf_counter()
        marked = wm.embed(im)
        embed_s.append(time.perf_counter() - t0)
        diff = np.abs(np.asarray(im, int) - np.asarray(marked, int))
        costs.append((name, psnr(im, marked), int(diff.max()), png_size(im), png_size(marked)))
        row = []
        for a, change in ATTACKS.items():
            t0 = time.perf_counter()
            r = wm.detect(change(marked))
            detect_s.append(time.perf_counter() - t0)
            worst[a] = min(worst[a], r.matched)
            found[a] += r.found
            row.append(f"{r.matched:>9}")
        print(name.ljust(34) + " ".join(row), flush=True)
    n = len(packages) + len(photos)
    print("found in".ljust(34) + " ".join(f"{found[a]:>6}/{n:<2}" for a in ATTACKS))
    pk = len(packages)
    print(f"(packages: {pk}, photos: {len(photos)}; the photos are not a figurine output size, so "
          "scaled photos are not scaled back)")

    # 2. Unmarked pictures: false positives.
    rng = np.random.default_rng(0)
    noise = [(f"noise {i}", Image.fromarray(rng.integers(0, 256, (1350, 1080, 3), dtype=np.uint8)))
             for i in range(3 if args.quick else 10)]
    unmarked = packages + photos + noise
    matches = []
    for name, im in unmarked:
        for a in ("as written", "JPEG q80", "half size"):
            matches.append(wm.detect(ATTACKS[a](im)))
    fp = sum(r.found for r in matches)
    m = [r.matched for r in matches]
    print(f"\nunmarked: {len(matches)} readings ({len(unmarked)} pictures x as written, JPEG q80, half size): "
          f"{fp} false positives; bits matching {min(m)}..{max(m)} (threshold {wm.MIN_MATCH}); "
          f"chance per reading by the binomial bound: {wm.p_chance(wm.MIN_MATCH):.1e}")

    # 3. Cost.
    print("\ncost: PSNR dB (min/median), largest pixel change, PNG size without -> with the mark")
    ps = sorted(c[1] for c in costs)
    print(f"  PSNR {ps[0]:.1f} / {ps[len(ps) // 2]:.1f} dB; largest change {max(c[2] for c in costs)} of 255")
    for name, _, _, before, after in costs[:pk]:
        print(f"  {name:<32} PNG {before / 1e3:.0f} kB -> {after / 1e3:.0f} kB")
    print(f"  time: embed {np.median(embed_s):.2f} s, detect {np.median(detect_s):.2f} s (median)")

    # 4. For comparison: invisible-watermark's DWT-DCT methods on the packages.
    try:
        import cv2
        from imwatermark import WatermarkDecoder, WatermarkEncoder
    except ImportError:
        print("\n(invisible-watermark not installed: no comparison)")
        return
    bits = list(wm.BITS[:48])
    print("\ninvisible-watermark 0.2.0 on the packages, 48 bits (SDXL uses dwtDct): bits read back")
    print("method/picture".ljust(34) + " ".join(f"{a[:9]:>9}" for a in list(ATTACKS)[:8]) + "  PSNR  max")
    for method in ("dwtDct", "dwtDctSvd"):
        enc = WatermarkEncoder()
        enc.set_watermark("bits", bits)
        dec = WatermarkDecoder("bits", 48)
        for name, im in packages[:2]:
            out = enc.encode(cv2.cvtColor(np.asarray(im), cv2.COLOR_RGB2BGR), method)
            marked = Image.fromarray(cv2.cvtColor(out, cv2.COLOR_BGR2RGB))
            row = []
            for a in list(ATTACKS)[:8]:
                got = dec.decode(cv2.cvtColor(np.asarray(ATTACKS[a](marked)), cv2.COLOR_RGB2BGR), method)
                row.append(f"{int((np.array(got, int) == np.array(bits)).sum()):>9}")
            diff = np.abs(np.asarray(im, int) - np.asarray(marked, int)).max()
            print(f"{method} {name}".ljust(34) + " ".join(row) + f"  {psnr(im, marked):.1f}  {diff}")


if __name__ == "__main__":
    main()
