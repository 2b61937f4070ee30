#!/usr/bin/env python3
"""Time of the cut-out on a 1024x1024 picture: the colour key, and the learned path on a model file.

    python3 benchmarks/bench_matte.py                       # tiny stand-in graph (scripts/tiny_birefnet.py)
    python3 benchmarks/bench_matte.py --model weights/birefnet-lite/model.onnx   # the real BiRefNet_lite

The picture is the example figure of scripts/draw_example_figure.py at 1024x1024. The learned
path is split into its parts: pre-processing (resize to the model's input, normalise), the
onnxruntime session (what the real model's 224 MB of weights cost; the tiny graph's number here
is only the floor), the sigmoid and resize back, and figurine's edge refinement. Medians of
--runs after one warm-up; the load average is printed because other work slows every figure.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from figurine.matte import Matter, cut_out  # noqa: E402
from figurine.segment import INPUT_NAME, OUTPUT_NAME  # noqa: E402


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _median(fn, runs: int) -> str:
    fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return f"{statistics.median(times):.3f} s (best {min(times):.3f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--model", type=Path, default=None, help="a BiRefNet .onnx (default: the tiny stand-in)")
    args = ap.parse_args()

    picture = _script("draw_example_figure").figure(1024, 1024)
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or _script("tiny_birefnet").write_model(Path(tmp) / "model.onnx")
        t0 = time.perf_counter()
        matter = Matter("birefnet", model)
        load_s = time.perf_counter() - t0
        seg = matter.segmenter
        x = seg.prepare(picture)
        print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
              f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
        print(f"model: {'tiny stand-in' if args.model is None else model} "
              f"({model.stat().st_size / 1e6:.1f} MB), providers {seg.providers}, input {x.shape} {x.dtype}")
        print(f"picture: {picture.width}x{picture.height} RGB; median of {args.runs} runs after one warm-up")
        print(f"load (session): {load_s:.3f} s, once")
        print(f"colour key (cut_out): {_median(lambda: cut_out(picture), args.runs)}")
        print(f"learned, whole (Matter.cut_out): {_median(lambda: matter.cut_out(picture), args.runs)}")
        print(f"  pre-processing: {_median(lambda: seg.prepare(picture), args.runs)}")
        print(f"  session.run: {_median(lambda: seg.session.run([OUTPUT_NAME], {INPUT_NAME: x}), args.runs)}")
        print(f"  alpha (pre + run + sigmoid + resize): {_median(lambda: seg.alpha(picture), args.runs)}")


if __name__ == "__main__":
    main()
