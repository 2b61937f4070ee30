"""What machine and software a figure was measured on, recorded beside every benchmark.

    from figurine import sysinfo
    info = sysinfo.collect(device=meter.device)   # the GPU an EnergyMeter reads (or device_index=0)
    info["gpu_name"], info["power_limit_w"], info["versions"]["torch"]
    info["reasons"]            # {"gpu_name": "NVML init failed: ...", ...} for every gap
    print(sysinfo.format_lines(info))

Each field holds its value or None; for every None, `reasons[field]` says why it could not be
read (pynvml not installed, NVML init failed, not supported by this GPU, package not
installed, ...). Nothing here imports torch or any other heavy package: versions come from
importlib.metadata, and the CUDA version torch was built for from torch/version.py read as
text. GPU facts come from NVML (pynvml, or a stand-in passed as `nvml`), for the GPU found by
the CUDA device's UUID or PCI bus id when `device` (an energy.DeviceIdentity) is given: NVML's
index need not be CUDA's. The clocks are read when collect() runs, usually with the GPU idle:
per-image clocks under load come from EnergyMeter.device_state() (docs/energy.md).
"""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import platform
import sys
from pathlib import Path
from typing import Any

# Distribution names whose versions are recorded; a list means "the first one installed".
PACKAGES: dict[str, list[str]] = {
    "torch": ["torch"],
    "diffusers": ["diffusers"],
    "transformers": ["transformers"],
    "accelerate": ["accelerate"],
    "onnxruntime": ["onnxruntime-gpu", "onnxruntime"],
    "insightface": ["insightface"],
    "nvidia-ml-py": ["nvidia-ml-py"],
    "figurine": ["figurine"],
}

GPU_FIELDS = ("gpu_name", "gpu_pci_bus_id", "driver_version", "cuda_driver_version", "power_limit_w",
              "sm_clock_mhz", "mem_clock_mhz", "max_sm_clock_mhz", "max_mem_clock_mhz")
NVML_CLOCK_SM, NVML_CLOCK_MEM = 1, 2  # pynvml.NVML_CLOCK_SM / NVML_CLOCK_MEM


def collect(device_index: int = 0, nvml: Any = None, device: Any = None) -> dict[str, Any]:
    """Return GPU, driver, clock, version, OS and CPU facts; gaps are None with a reason.

    device: an energy.DeviceIdentity (EnergyMeter.device): its GPU is found by UUID, then PCI bus
    id; without it, NVML index `device_index`. gpu_index is NVML's index, gpu_cuda_index CUDA's.
    """
    info: dict[str, Any] = {"gpu_index": device_index,
                            "gpu_cuda_index": getattr(device, "cuda_index", None), "gpu_matched_by": None}
    reasons: dict[str, str] = {}
    # 1. GPU through NVML.
    info.update(_gpu(device_index, nvml, reasons, device, info))
    # 2. Software versions, without importing anything heavy.
    info["python"] = platform.python_version()
    info["versions"] = {}
    for name, dists in PACKAGES.items():
        info["versions"][name] = _version(dists, reasons, f"versions.{name}")
    info["torch_cuda"] = _torch_cuda(reasons)
    # 3. OS and CPU.
    info["os"] = platform.platform()
    info["cpu_model"] = _cpu_model(reasons)
    info["cpu_count"] = _cpu_count()
    info["reasons"] = reasons
    return info


def format_lines(info: dict[str, Any]) -> str:
    """A few human lines summarising `collect()`'s result."""
    def show(key: str, unit: str = "") -> str:
        value = info.get(key)
        if value is None:
            return f"unavailable ({info['reasons'].get(key, '?')})"
        return f"{value}{unit}"

    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items() if v is not None)
    gpu_reasons = {info["reasons"].get(k) for k in GPU_FIELDS}
    if all(info.get(k) is None for k in GPU_FIELDS) and len(gpu_reasons) == 1:
        gpu = [f"GPU {info['gpu_index']}: unavailable ({gpu_reasons.pop()})"]
    else:
        gpu = [
            f"GPU {info['gpu_index']}: {show('gpu_name')}",
            f"  driver {show('driver_version')}, CUDA driver {show('cuda_driver_version')}, "
            f"power limit {show('power_limit_w', ' W')}",
            f"  clocks when collected (usually idle) SM {show('sm_clock_mhz', ' MHz')}, "
            f"memory {show('mem_clock_mhz', ' MHz')}",
        ]
    return "\n".join(gpu + [
        f"CPU: {show('cpu_model')}; OS: {info['os']}",
        f"python {info['python']}; {versions}; torch built for CUDA {show('torch_cuda')}",
    ])


# ---------------------------------------------------------------------------------------------

def _gpu(device_index: int, nvml: Any, reasons: dict[str, str], device: Any,
         info: dict[str, Any]) -> dict[str, Any]:
    from figurine.energy import find_device

    out: dict[str, Any] = {k: None for k in GPU_FIELDS}

    def all_missing(why: str) -> dict[str, Any]:
        for k in GPU_FIELDS:
            reasons[k] = why
        return out

    if nvml is None:
        try:
            import pynvml as nvml  # nvidia-ml-py
        except ImportError:
            return all_missing("pynvml not installed (pip install nvidia-ml-py)")
    try:
        nvml.nvmlInit()
    except Exception as exc:
        return all_missing(f"NVML init failed: {exc}")
    try:
        handle, ident, why = find_device(nvml, uuid=getattr(device, "uuid", None),
                                         pci_bus_id=getattr(device, "pci_bus_id", None), index=device_index,
                                         cuda_index=getattr(device, "cuda_index", None))
        if why:
            return all_missing(why)
        info["gpu_index"], info["gpu_matched_by"] = ident.nvml_index, ident.matched_by
        out["gpu_pci_bus_id"] = ident.pci_bus_id
        if ident.pci_bus_id is None:
            reasons["gpu_pci_bus_id"] = "NVML could not read it"
        clock_sm = getattr(nvml, "NVML_CLOCK_SM", NVML_CLOCK_SM)
        clock_mem = getattr(nvml, "NVML_CLOCK_MEM", NVML_CLOCK_MEM)
        reads = {
            "gpu_name": lambda: _text(nvml.nvmlDeviceGetName(handle)),
            "driver_version": lambda: _text(nvml.nvmlSystemGetDriverVersion()),
            "cuda_driver_version": lambda: _cuda_version(nvml.nvmlSystemGetCudaDriverVersion()),
            "power_limit_w": lambda: nvml.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000.0,
            "sm_clock_mhz": lambda: int(nvml.nvmlDeviceGetClockInfo(handle, clock_sm)),
            "mem_clock_mhz": lambda: int(nvml.nvmlDeviceGetClockInfo(handle, clock_mem)),
            "max_sm_clock_mhz": lambda: int(nvml.nvmlDeviceGetMaxClockInfo(handle, clock_sm)),
            "max_mem_clock_mhz": lambda: int(nvml.nvmlDeviceGetMaxClockInfo(handle, clock_mem)),
        }
        for key, read in reads.items():
            try:
                out[key] = read()
            except Exception as exc:
                reasons[key] = f"NVML could not read it: {exc}"
        return out
    finally:
        try:
            nvml.nvmlShutdown()
        except Exception:
            pass


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _cuda_version(code: int) -> str:
    """NVML's CUDA driver version integer (12040) as "12.4"."""
    return f"{code // 1000}.{(code % 1000) // 10}"


def _version(dists: list[str], reasons: dict[str, str], key: str) -> str | None:
    for dist in dists:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    reasons[key] = f"not installed ({' or '.join(dists)})"
    return None


def _torch_cuda(reasons: dict[str, str]) -> str | None:
    """The CUDA version torch was built for, read from torch/version.py without importing it."""
    try:
        path = Path(metadata.distribution("torch").locate_file("torch/version.py"))
        tree = ast.parse(path.read_text())
    except metadata.PackageNotFoundError:
        reasons["torch_cuda"] = "torch not installed"
        return None
    except (OSError, SyntaxError) as exc:
        reasons["torch_cuda"] = f"torch/version.py not readable: {exc}"
        return None
    for node in tree.body:
        target = getattr(node, "target", None) or (node.targets[0] if isinstance(node, ast.Assign) else None)
        if isinstance(target, ast.Name) and target.id == "cuda" and node.value is not None:
            value = ast.literal_eval(node.value)
            if value is None:
                reasons["torch_cuda"] = "this torch build has no CUDA (CPU-only or ROCm)"
            return value
    reasons["torch_cuda"] = "torch/version.py has no `cuda` entry"
    return None


def _cpu_model(reasons: dict[str, str]) -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    name = platform.processor()
    if name:
        return name
    reasons["cpu_model"] = "no model name in /proc/cpuinfo and platform.processor() is empty"
    return None


def _cpu_count() -> int | None:
    import os
    return os.cpu_count()


if __name__ == "__main__":  # python -m figurine.sysinfo
    print(format_lines(collect(int(sys.argv[1]) if len(sys.argv) > 1 else 0)))
