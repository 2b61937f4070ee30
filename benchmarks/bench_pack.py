#!/usr/bin/env python3
"""Render time of the packaging stage: the 1080x1350 social PNG and the 300 DPI print PDF.

    python3 benchmarks/bench_pack.py            # median of 7 runs per template
    python3 benchmarks/bench_pack.py --runs 15 --template classic-blister

Inputs: the example figure drawn by scripts/draw_example_figure.py, already cut out (RGBA, as
`figurine make` hands it over; matting is timed on its own line), and three accessories.
Targets (issue 3): PNG within 0.3 s and PDF within 2 s on a 2-core machine, checked against
the median; the fastest run is printed beside it (the figure with the least interference). "render" is the
picture in memory; "+encode" adds writing the PNG (zlib level 6, what `figurine pack` writes);
the PDF time includes its JPEG encoding and writing it to memory. The load average is printed
because other work on the machine slows every figure down.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from figurine.matte import cut_out  # noqa: E402
from figurine.packaging import PackText, export_pdf, list_templates, render_image  # noqa: E402


def _draw_module():
    spec = importlib.util.spec_from_file_location("draw_example_figure",
                                                  ROOT / "scripts" / "draw_example_figure.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class Timing(float):
    """The median of the runs (compared with the targets), carrying the fastest run too."""
    best: float

    def __str__(self) -> str:
        return f"{float(self):.3f} s (best {self.best:.3f})"


def _median(fn, runs: int) -> Timing:
    fn()  # warm up: font loading, first allocations
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    out = Timing(statistics.median(times))
    out.best = min(times)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--template", action="append", default=None)
    args = ap.parse_args()

    draw = _draw_module()
    raw_figure = draw.figure()
    accessories = [cut_out(draw.accessory(k)) for k in ("mug", "laptop", "cat")]
    text = PackText("Ada Lovelace", "Analytical Engine Pilot")

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"runs: median of {args.runs} after one warm-up; figure {raw_figure.width}x{raw_figure.height}, "
          f"3 accessories")
    matte_s = _median(lambda: cut_out(raw_figure), args.runs)
    print(f"matte (cut_out, {raw_figure.width}x{raw_figure.height} RGB): {matte_s}")
    figure = cut_out(raw_figure)

    worst_png = worst_pdf = 0.0
    for name in args.template or list_templates():
        def png():
            return render_image(figure, accessories, text, name, "social", edition=42)

        def png_encoded():
            png().save(io.BytesIO(), "PNG")

        def pdf():
            export_pdf(figure, accessories, text, name, io.BytesIO(), edition=42)

        p, pe, d = _median(png, args.runs), _median(png_encoded, args.runs), _median(pdf, args.runs)
        worst_png, worst_pdf = max(worst_png, p), max(worst_pdf, d)
        print(f"{name:18s} social 1080x1350 render {p}, with PNG encode {pe};  print PDF 300 DPI {d}")
    print(f"worst median: social render {worst_png:.3f} s (target 0.3 s) {'OK' if worst_png <= 0.3 else 'OVER'}; "
          f"PDF {worst_pdf:.3f} s (target 2 s) {'OK' if worst_pdf <= 2.0 else 'OVER'}")
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
