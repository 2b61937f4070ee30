"""figurine doctor: is this machine ready to make figures? Versions, GPU, ONNX runtime, weights.

    figurine doctor
    figurine doctor --weights /data/figurine-weights

Prints one line per check and a WARNING line for each thing to fix, with the command that fixes
it. The most common trap: insightface pulls in the CPU `onnxruntime`, and installing
`onnxruntime-gpu` beside it leaves two packages writing the same `onnxruntime` module, so the
GPU providers silently disappear. doctor detects that from the installed distributions.
Exit status 0 when nothing needs fixing, 1 when there is a warning.
"""

from __future__ import annotations

import importlib.metadata as metadata
import platform
import re
from typing import Iterable

from figurine.commands._common import add_config_args, config_from_args

PACKAGES = ["torch", "diffusers", "transformers", "accelerate", "huggingface_hub", "safetensors",
            "insightface", "onnxruntime", "onnxruntime-gpu", "controlnet-aux"]
ORT_GPU_DISTS = ("onnxruntime-gpu", "onnxruntime-directml", "onnxruntime-openvino",
                 "onnxruntime-rocm", "onnxruntime-qnn")


def add_parser(sub):
    p = sub.add_parser("doctor", help="check versions, GPU, ONNX runtime and weights",
                       description="Report what figurine will run on and what needs fixing.")
    add_config_args(p)
    return p


def run(args) -> int:
    cfg = config_from_args(args)
    warnings: list[str] = []
    # 1. Python and package versions (from installed metadata; nothing imported).
    _line("python", f"{platform.python_version()} ({platform.platform()})")
    installed = installed_distributions()
    for name in PACKAGES:
        _line(name, installed.get(_norm(name), "not installed"))
    # 2. torch and CUDA.
    warnings += _torch_report()
    # 3. ONNX runtime: providers, and the dual-install trap.
    warnings += _onnx_report(installed)
    # 4. Weights.
    warnings += _weights_report(cfg.weights_root)
    for w in warnings:
        print(f"WARNING: {w}")
    print("doctor: all good" if not warnings else f"doctor: {len(warnings)} warning(s)")
    return 1 if warnings else 0


def _line(label: str, text: str) -> None:
    print(f"{label:<16}{text}")


def installed_distributions() -> dict[str, str]:
    """{normalised distribution name: version} of everything installed."""
    out = {}
    for d in metadata.distributions():
        name = d.metadata["Name"] if d.metadata else None
        if name:
            out.setdefault(_norm(name), d.version)
    return out


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def onnxruntime_conflict(names: Iterable[str]) -> str | None:
    """A warning (with the fix) when CPU onnxruntime and a GPU build are installed together."""
    have = {_norm(n) for n in names}
    gpu = [d for d in ORT_GPU_DISTS if d in have]
    if "onnxruntime" not in have or not gpu:
        return None
    return (f"both onnxruntime and {', '.join(gpu)} are installed; they overwrite each other's "
            f"module and insightface may silently run on the CPU. Fix: "
            f"pip uninstall -y onnxruntime {' '.join(gpu)} && pip install {gpu[0]}")


def _torch_report() -> list[str]:
    try:
        import torch
    except Exception as e:  # absent or broken: a diagnostic must still finish
        _line("torch", f"cannot import ({type(e).__name__}: {e})")
        return ["torch is not importable: figurine cannot generate"]
    _line("torch CUDA", f"built for {torch.version.cuda or 'CPU only'}")
    if not torch.cuda.is_available():
        _line("CUDA", "not available: figurine runs on the CPU (very slow with real weights)")
        return []
    for i in range(torch.cuda.device_count()):
        name = torch.cuda.get_device_name(i)
        try:
            free, total = torch.cuda.mem_get_info(i)
            mem = f"{free / 2**30:.1f} GiB free of {total / 2**30:.1f} GiB"
        except Exception as e:
            mem = f"free memory unknown ({type(e).__name__})"
        _line(f"GPU {i}", f"{name}, {mem}")
    return []


def _onnx_report(installed: dict[str, str]) -> list[str]:
    warnings = []
    conflict = onnxruntime_conflict(installed)
    if conflict:
        warnings.append(conflict)
    try:
        import onnxruntime

        providers = onnxruntime.get_available_providers()
        _line("onnxruntime", f"providers: {', '.join(providers)}")
    except Exception as e:
        _line("onnxruntime", f"cannot import ({type(e).__name__}: {e})")
        warnings.append("no working onnxruntime: insightface cannot find faces "
                        "(pip install onnxruntime-gpu, or onnxruntime on CPU-only machines)")
    return warnings


def _weights_report(root) -> list[str]:
    from figurine import weights
    from figurine.errors import WeightsError

    try:
        rows = weights.status(root)
    except WeightsError as e:
        return [f"weights manifest: {e}"]
    present = sum(s.ok for s in rows)
    missing = [s for s in rows if not s.ok and not s.entry.optional]
    _line("weights", f"{root}: {present} of {len(rows)} files present"
          + (f", {len(missing)} required missing or wrong size" if missing else ""))
    nc = sorted({s.entry.group for s in rows if s.ok and s.entry.non_commercial})
    if nc:
        _line("licences", f"NON-COMMERCIAL weights present: {', '.join(nc)}")
    if missing:
        return [f"{len(missing)} required weights file(s) missing or wrong size, e.g. {missing[0].path}; "
                "run `figurine weights fetch`"]
    return []
