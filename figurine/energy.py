"""Energy meter: how many joules a stage of figurine costs, measured the way published GPU-energy
benchmarks measure it (Zeus's ZeusMonitor, the ML.ENERGY benchmark). docs/energy.md explains each
number, its resolution, its limits and its sources.

    import torch
    from figurine.energy import EnergyMeter

    with EnergyMeter.for_torch_device("cuda:0", grid_intensity=480) as meter:
        meter.measure_baseline(settle_s=2, seconds=3)             # "before": idle GPU, stated time
        with meter.window("figure", images=4) as w:               # N images in ONE window
            for seed in range(4):
                pipe(prompt, generator=torch.Generator("cuda").manual_seed(seed))
                state = meter.device_state()                      # temperature, clocks, power limit
        meter.measure_baseline(settle_s=2, seconds=3, label="after")
        print(w.result.per_image["gpu_joules_gross"])             # J per image = window J / 4
        print(meter.total().format_line())
        # Energy: 1650 J on the GPU (1418 J above its measured baseline of 58 W) in 4.0 s, ...

What is measured (each point cites its source in docs/energy.md)
- GPU: NVML's total-energy counter (`nvmlDeviceGetTotalEnergyConsumption`, mJ since the driver
  loaded). A window's gross energy is the counter difference between its two ends; both ends
  first call `sync` (torch.cuda.synchronize) so queued GPU work lands in its own window.
- The right GPU: NVML's index need not match CUDA's (NVML's own documentation says so), so the
  NVML device is found by the torch device's UUID or PCI bus id and recorded (`meter.device`).
- Resolution: the counter moves about every 100 ms. A window shorter than ten updates (1 s) is
  "below counter resolution": its GPU figure is None with that reason, plus a power x time
  estimate in `gpu_joules_estimate`, flagged as such; never a bare 0 J. Sums of windows are
  held to the same bound per window. Per-image energy is measured over N images in one window
  and divided (as the ML.ENERGY diffusion benchmark does).
- Baseline: the GPU's power while idle, measured for a stated time after a settle period, with
  its temperature, before and after the run (`measure_baseline`). Net energy ("above measured
  baseline") is computed once, on totals: gross - baseline W x seconds, never clipped per window.
- No counter (Pascal, many virtual GPUs): NVML's power reading (`nvmlDeviceGetPowerUsage`) is
  polled on a background thread every 0.1 s while a window is open and integrated (trapezoids),
  labelled "power-polled estimate", as Zeus does for GPUs without the counter.
- CPU: Linux RAPL package zones only (/sys/class/powercap/intel-rapl:N whose `name` is package-N);
  never the psys (platform) zone, which already contains the packages, and never subzones (core,
  uncore, dram), which are parts of or beside their package. Root only since Linux 5.10.
- Wh and CO2e come from the GPU's gross energy: wh = J / 3600, co2e_g = kWh x grid intensity.

Nothing unavailable is ever reported as 0: its value is None and `reasons[field]` says why.
Grid intensity default: 480 g CO2e/kWh, the world average life-cycle intensity of electricity in
2023 (Ember, Global Electricity Review 2024); set your own with `--set energy.grid_intensity=...`.

Windows may nest; `total()` adds only the outermost ones. This module imports neither torch nor
pynvml at import time: pynvml is imported when a meter is made, torch only by for_torch_device.
"""

from __future__ import annotations

import math
import re
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from figurine.errors import ConfigError

DEFAULT_GRID_INTENSITY = 480.0  # g CO2e/kWh, world 2023, Ember Global Electricity Review 2024
COUNTER_PERIOD_S = 0.1          # NVML's energy counter moves about every 100 ms (docs/energy.md)
RESOLUTION_UPDATES = 10         # a window needs ten updates to be reported (error <= 1 in 10)
POLL_INTERVAL_S = 0.1           # power polling where the counter is missing (Zeus polls likewise)
DEFAULT_SETTLE_S = 2.0          # quiet time before a baseline is measured
DEFAULT_BASELINE_S = 3.0        # how long a baseline is measured
DEFAULT_IDLE_SECONDS = DEFAULT_BASELINE_S  # older name, kept for callers of measure_idle()
RAPL_ROOT = Path("/sys/class/powercap")
NVML_ERROR_NOT_SUPPORTED = 3    # pynvml.NVML_ERROR_NOT_SUPPORTED
NVML_ARCH_VOLTA = 5             # pynvml.NVML_DEVICE_ARCH_VOLTA
NVML_ARCH_UNKNOWN = 0xFFFFFFFF  # pynvml.NVML_DEVICE_ARCH_UNKNOWN
NVML_CLOCK_SM, NVML_CLOCK_MEM, NVML_TEMPERATURE_GPU = 1, 2, 0
J_PER_WH = 3600.0

GPU_FIELDS = ("gpu_joules_gross", "gpu_joules_net", "wh", "co2e_g")
COUNTER_METHOD = "NVML total-energy counter (nvmlDeviceGetTotalEnergyConsumption)"
POLLED_METHOD = "power-polled estimate (nvmlDeviceGetPowerUsage every {:g} s, trapezoid integral)"
ARCH_NAMES = {2: "Kepler", 3: "Maxwell", 4: "Pascal", 5: "Volta", 6: "Turing", 7: "Ampere",
              8: "Ada", 9: "Hopper", 10: "Blackwell"}
VIRTUALIZATION = {1: "GPU passthrough", 2: "a virtual GPU (vGPU)", 3: "a vGPU host", 4: "a vSGA host"}


# ---------------------------------------------------------------------------------------------
# What a meter reports
# ---------------------------------------------------------------------------------------------

@dataclass
class DeviceIdentity:
    """Which GPU the meter reads. The UUID identifies one physical GPU: to_dict leaves it out
    unless asked (outputs are meant to be shared), the rest is safe to publish."""

    name: str | None = None
    uuid: str | None = None
    pci_bus_id: str | None = None
    nvml_index: int | None = None
    cuda_index: int | None = None
    matched_by: str | None = None  # "uuid", "pci_bus_id" or "nvml index (no CUDA device given)"

    def to_dict(self, include_uuid: bool = False) -> dict[str, Any]:
        d = asdict(self)
        if not include_uuid:
            d.pop("uuid")
        return d


@dataclass
class Baseline:
    """The GPU's power while idle, measured over `seconds` after `settle_seconds` of quiet."""

    label: str                       # "before", "after", "given", ...
    watts: float | None
    seconds: float
    settle_seconds: float
    temperature_c_start: float | None
    temperature_c_end: float | None
    method: str
    reason: str | None = None        # why watts is None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class EnergyReading:
    """Energy of one window (or of a sum of windows). None means unavailable; see `reasons`."""

    stage: str
    seconds: float
    gpu_joules_gross: float | None
    gpu_joules_net: float | None       # gross - baseline_watts x seconds ("above measured baseline")
    cpu_joules: float | None
    wh: float | None
    co2e_g: float | None
    baseline_watts: float | None = None
    grid_intensity: float = DEFAULT_GRID_INTENSITY
    reasons: dict[str, str] = field(default_factory=dict)
    gpu_method: str | None = None      # COUNTER_METHOD or the power-polled label
    resolution_s: float | None = None  # the shortest window (per window summed) that is reported
    windows: int = 1                   # how many metered windows this reading adds up
    images: int | None = None          # images made inside the window(s); per_image divides by it
    per_image: dict[str, float | None] | None = None
    gpu_joules_estimate: float | None = None  # below resolution only: power x time, flagged
    estimate_method: str | None = None
    gpu_state: dict[str, Any] | None = None   # temperature, clocks, power limit at the window's end
    method: dict[str, Any] | None = None      # on totals: meter.describe()
    _raw_gpu_j: float | None = field(default=None, repr=False)  # counter delta, for sums only

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict; unavailable figures are null with their reason in `reasons`."""
        d = asdict(self)
        d.pop("_raw_gpu_j")
        d["reasons"] = dict(self.reasons)
        return d

    def format_line(self) -> str:
        """One plain sentence, e.g. "Energy: 412 J on the GPU (351 J above its measured baseline
        of 58 W) in 2.1 s, 0.114 Wh, 0.055 g CO2e; CPU 35 J." """
        head = "Energy" if self.stage == "total" else f"Energy for {self.stage}"
        return f"{head}: {self._gpu_words()}; {self._cpu_words()}."

    def _gpu_words(self) -> str:
        if self.gpu_joules_gross is None:
            why = self.reasons.get("gpu_joules_gross", "no reason recorded")
            words = f"GPU figure unavailable ({why})"
            if self.gpu_joules_estimate is not None:
                words += f"; about {_num(self.gpu_joules_estimate)} J by power x time"
            return words
        about = "" if self.gpu_method in (None, COUNTER_METHOD) else "about "
        if self.gpu_joules_net is None:
            net = self.reasons.get("gpu_joules_net", "no baseline measured")
        elif self.gpu_joules_net >= 0:
            net = (f"{_num(self.gpu_joules_net)} J above its measured baseline of "
                   f"{_num(self.baseline_watts)} W")
        else:
            net = (f"{_num(-self.gpu_joules_net)} J below its measured baseline of "
                   f"{_num(self.baseline_watts)} W")
        words = f"{about}{_num(self.gpu_joules_gross)} J on the GPU ({net}) in {_num(self.seconds)} s"
        if self.per_image and self.per_image.get("gpu_joules_gross") is not None:
            words += (f" for {self.images} images ({_num(self.per_image['gpu_joules_gross'])} J "
                      f"and {_num(self.per_image['seconds'])} s per image)")
        words += f", {_num(self.wh)} Wh, {_num(self.co2e_g)} g CO2e"
        if about:
            words += " (a power-polled estimate: this GPU has no energy counter)"
        return words

    def _cpu_words(self) -> str:
        if self.cpu_joules is None:
            return f"CPU figure unavailable ({self.reasons.get('cpu_joules', 'no reason recorded')})"
        return f"CPU {_num(self.cpu_joules)} J"


def _num(x: float | None) -> str:
    """A short human number: 412, 35.1, 0.114, 3.2e-05."""
    if x is None:
        return "unavailable"
    if x == 0:
        return "0"
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 0.001:
        return f"{x:.3g}"
    return f"{x:.1e}"


def wh_from_joules(joules: float) -> float:
    return joules / J_PER_WH


def co2e_grams(joules: float, grid_intensity: float) -> float:
    """Grams CO2e for `joules` at `grid_intensity` g CO2e per kWh."""
    return joules / (1000.0 * J_PER_WH) * grid_intensity


# ---------------------------------------------------------------------------------------------
# CPU package energy from RAPL
# ---------------------------------------------------------------------------------------------

PACKAGE_ZONE = re.compile(r"package-\d+(-die-\d+)?")  # "package-0", or "package-0-die-1" per die


class Rapl:
    """RAPL package zones under `root`; `available` False with `reason` when none is readable.

    Only top-level zones (intel-rapl:N) whose `name` is package-N (or package-N-die-M) are summed.
    The psys zone (a top-level intel-rapl:N named "psys" on Intel client machines) measures the
    whole platform, packages included, so adding it would count the CPU twice. Subzones
    (intel-rapl:N:M: core, uncore, dram) are left out: core and uncore are inside their package,
    and dram is beside it, which the CPU figure does not claim to cover.
    """

    def __init__(self, root: Path = RAPL_ROOT):
        self.root = Path(root)
        self.zones: list[tuple[str, Path, int]] = []  # (name, energy_uj file, max_energy_range_uj)
        self.ignored: list[str] = []
        self.reason: str | None = None
        tops = [p for p in self.root.glob("intel-rapl:*") if re.fullmatch(r"intel-rapl:\d+", p.name)]
        for d in sorted(tops, key=lambda p: int(p.name.split(":")[1])):
            try:
                name = (d / "name").read_text().strip()
            except OSError as exc:
                self.ignored.append(f"{d.name} (its name is not readable: {exc})")
                continue
            if not PACKAGE_ZONE.fullmatch(name):
                self.ignored.append(f"{d.name} ({name}: the platform zone, which already contains "
                                    "the packages)" if name == "psys" else f"{d.name} ({name})")
                continue
            energy = d / "energy_uj"
            try:
                int(energy.read_text().strip())
                max_range = int((d / "max_energy_range_uj").read_text().strip())
            except PermissionError:
                self.reason = f"RAPL not readable: permission denied on {energy}, root only since Linux 5.10"
                self.zones = []
                return
            except (OSError, ValueError) as exc:
                self.reason = f"RAPL not readable: {energy}: {exc}"
                self.zones = []
                return
            self.zones.append((name, energy, max_range))
        if not self.zones:
            self.reason = (f"RAPL not present: no package zone under {self.root}"
                           + (f" (only {', '.join(self.ignored)})" if self.ignored else ""))

    @property
    def available(self) -> bool:
        return bool(self.zones)

    @property
    def zone_names(self) -> list[str]:
        return [name for name, _, _ in self.zones]

    def read(self) -> list[int] | None:
        """Current microjoule counters, one per package zone; None if a read fails."""
        try:
            return [int(f.read_text().strip()) for _, f, _ in self.zones]
        except (OSError, ValueError):
            return None

    def joules_between(self, start: list[int], end: list[int]) -> float:
        """Joules between two reads, each zone's counter allowed to wrap once."""
        total_uj = 0
        for (_, _, max_range), a, b in zip(self.zones, start, end):
            total_uj += b - a if b >= a else b + max_range - a
        return total_uj / 1e6


# ---------------------------------------------------------------------------------------------
# Finding the NVML device that is the torch device
# ---------------------------------------------------------------------------------------------

def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def normalise_uuid(uuid: str | bytes | None) -> str | None:
    """NVML writes "GPU-5f4f8c67-...", torch writes "5f4f8c67-...": compare hex digits only."""
    if uuid is None:
        return None
    text = _text(uuid).strip().lower()
    for prefix in ("gpu-", "mig-"):
        if text.startswith(prefix):
            text = text[len(prefix):]
    return text.replace("-", "") or None


def normalise_pci(bus_id: str | bytes | None) -> tuple[int, int, int] | None:
    """(domain, bus, device) from "00000000:17:00.0" (NVML) or "0000:17:00.0" (sysfs, torch)."""
    if bus_id is None:
        return None
    m = re.fullmatch(r"(?:([0-9a-f]+):)?([0-9a-f]+):([0-9a-f]+)(?:\.[0-9a-f]+)?", _text(bus_id).strip().lower())
    if m is None:
        return None
    return int(m.group(1) or "0", 16), int(m.group(2), 16), int(m.group(3), 16)


def find_device(nvml: Any, *, uuid: str | None = None, pci_bus_id: str | None = None,
                index: int = 0, cuda_index: int | None = None) -> tuple[Any, DeviceIdentity, str | None]:
    """The NVML handle of the GPU with this UUID (else this PCI bus id; else NVML index `index`).

    NVML documents that its index "may not correlate with other APIs, such as the CUDA device
    index" and recommends looking devices up by UUID or PCI bus id: CUDA orders GPUs fastest
    first unless CUDA_DEVICE_ORDER=PCI_BUS_ID, and CUDA_VISIBLE_DEVICES renumbers them.
    Returns (handle or None, identity, reason when not found).
    """
    ident = DeviceIdentity(cuda_index=cuda_index)
    want_uuid, want_pci = normalise_uuid(uuid), normalise_pci(pci_bus_id)
    handle = None
    if want_uuid or want_pci:
        try:
            count = int(nvml.nvmlDeviceGetCount())
        except Exception as exc:
            return None, ident, f"NVML could not count its GPUs: {exc}"
        by_pci = None
        for i in range(count):
            try:
                h = nvml.nvmlDeviceGetHandleByIndex(i)
            except Exception:
                continue  # e.g. no permission on that GPU: it cannot be ours to meter anyway
            if want_uuid and _try(lambda: normalise_uuid(nvml.nvmlDeviceGetUUID(h))) == want_uuid:
                handle, ident.nvml_index, ident.matched_by = h, i, "uuid"
                break
            if want_pci and by_pci is None and _try(lambda: normalise_pci(_pci_text(nvml, h))) == want_pci:
                by_pci = (h, i)
        if handle is None and by_pci is not None:
            (handle, ident.nvml_index), ident.matched_by = by_pci, "pci_bus_id"
        if handle is None:
            which = " or ".join(w for w in (f"UUID {uuid}" if want_uuid else "",
                                            f"PCI bus id {pci_bus_id}" if want_pci else "") if w)
            cuda = f"CUDA device {cuda_index}" if cuda_index is not None else "the CUDA device"
            return None, ident, (f"no NVML device has the {which} of {cuda} (a MIG instance or a "
                                 "GPU hidden from NVML cannot be metered)")
    else:
        try:
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
        except Exception as exc:
            return None, ident, f"GPU {index} not found by NVML: {exc}"
        ident.nvml_index, ident.matched_by = index, "nvml index (no CUDA device given)"
    ident.name = _try(lambda: _text(nvml.nvmlDeviceGetName(handle)))
    ident.uuid = _try(lambda: _text(nvml.nvmlDeviceGetUUID(handle)))
    pci = _try(lambda: normalise_pci(_pci_text(nvml, handle)))
    ident.pci_bus_id = None if pci is None else "{:08x}:{:02x}:{:02x}.0".format(*pci)
    return handle, ident, None


def _pci_text(nvml: Any, handle: Any) -> str:
    return _text(nvml.nvmlDeviceGetPciInfo(handle).busId)


def _try(read: Callable[[], Any]) -> Any:
    try:
        return read()
    except Exception:
        return None


def torch_device_ids(device: Any = None) -> tuple[int | None, str | None, str | None, str | None]:
    """(cuda index, uuid, PCI bus id, why not) of a torch device; imports torch."""
    import torch

    dev = torch.device("cuda") if device is None else torch.device(device)
    if dev.type != "cuda":
        return None, None, None, f"figurine runs on the {dev.type.upper()} here, so no GPU is metered"
    if not torch.cuda.is_available():
        return None, None, None, "torch sees no CUDA GPU"
    index = dev.index if dev.index is not None else torch.cuda.current_device()
    props = torch.cuda.get_device_properties(index)
    uuid = str(props.uuid) if getattr(props, "uuid", None) is not None else None
    pci = None
    if all(hasattr(props, a) for a in ("pci_domain_id", "pci_bus_id", "pci_device_id")):
        pci = f"{props.pci_domain_id:08x}:{props.pci_bus_id:02x}:{props.pci_device_id:02x}.0"
    return index, uuid, pci, None


def counter_missing_reason(nvml: Any, handle: Any, exc: Exception) -> str:
    """Why the energy counter cannot be read, without guessing: NVML's NOT_SUPPORTED is explained
    by the architecture (older than Volta) or virtualisation when NVML says so, else said plainly."""
    if getattr(exc, "value", None) != getattr(nvml, "NVML_ERROR_NOT_SUPPORTED", NVML_ERROR_NOT_SUPPORTED):
        return f"reading the GPU energy counter failed: {exc}"
    arch = _try(lambda: int(nvml.nvmlDeviceGetArchitecture(handle)))
    volta = getattr(nvml, "NVML_DEVICE_ARCH_VOLTA", NVML_ARCH_VOLTA)
    if arch is not None and arch < volta:
        return (f"this GPU ({ARCH_NAMES.get(arch, f'architecture {arch}')}) is older than Volta, "
                "and NVML's total-energy counter starts with Volta")
    mode = _try(lambda: int(nvml.nvmlDeviceGetVirtualizationMode(handle)))
    if mode:
        return (f"NVML does not expose the total-energy counter on this GPU, which runs as "
                f"{VIRTUALIZATION.get(mode, f'virtualization mode {mode}')}")
    return ("NVML reports the total-energy counter as not supported on this GPU "
            "(NVML_ERROR_NOT_SUPPORTED; NVML gives no cause: virtual GPUs and some drivers hide it)")


# ---------------------------------------------------------------------------------------------
# Power polling, where the counter is missing
# ---------------------------------------------------------------------------------------------

class PowerPoller:
    """Samples `read_watts` on a background thread while at least one span is open.

    begin() and end() take a sample at the span's edges and return its time; joules(t0, t1)
    integrates the samples between (trapezoids). The thread stops, and the samples go, when
    the last span closes, so a long-lived process keeps neither a thread nor a growing list.
    """

    def __init__(self, read_watts: Callable[[], float], clock: Callable[[], float], interval: float):
        self.read_watts, self.clock, self.interval = read_watts, clock, interval
        self.error: str | None = None
        self._samples: list[tuple[float, float]] = []
        self._lock = threading.Lock()
        self._open = 0
        self._stop: threading.Event | None = None
        self._thread: threading.Thread | None = None

    def sample(self) -> float | None:
        try:
            watts = float(self.read_watts())
        except Exception as exc:
            self.error = f"reading GPU power failed: {exc}"
            return None
        with self._lock:
            t = self.clock()
            self._samples.append((t, watts))
        return t

    def _loop(self, stop: threading.Event) -> None:
        while not stop.wait(self.interval):
            self.sample()

    def begin(self) -> float | None:
        if self._open == 0:
            with self._lock:
                self._samples.clear()
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._loop, args=(self._stop,), daemon=True,
                                            name="figurine-power-poll")
            self._thread.start()
        self._open += 1
        return self.sample()

    def end(self) -> float | None:
        return self.sample()

    def release(self) -> None:
        self._open = max(0, self._open - 1)
        if self._open == 0:
            self.stop()

    def stop(self) -> None:
        if self._stop is not None:
            self._stop.set()
            self._thread.join(timeout=max(1.0, 5 * self.interval))
            self._stop = self._thread = None

    def joules(self, t0: float, t1: float) -> float | None:
        with self._lock:
            pts = sorted(p for p in self._samples if t0 <= p[0] <= t1)
        if len(pts) < 2:
            return None
        return sum((b[0] - a[0]) * (a[1] + b[1]) / 2.0 for a, b in zip(pts, pts[1:]))


# ---------------------------------------------------------------------------------------------
# The meter
# ---------------------------------------------------------------------------------------------

class EnergyMeter:
    """Measures GPU (NVML) and CPU (RAPL) energy over named windows of work.

    Which GPU: `uuid` and/or `pci_bus_id` of the CUDA device (see for_torch_device), else NVML
    index `device_index`; `cuda_index` is recorded. `no_gpu`: meter no GPU, for this reason.
    grid_intensity: g CO2e per kWh. measure_idle: False turns baselines off (net unavailable).
    idle_watts: a baseline measured earlier. nvml: the NVML module (pynvml when None).
    sync: called at both ends of each window: a callable, "torch" (torch.cuda.synchronize once
    torch is loaded and CUDA is up, without importing torch), or None. clock, sleep: time sources.
    counter_period, resolution_updates, poll_interval: see the module docstring.
    """

    def __init__(self, device_index: int = 0, grid_intensity: float = DEFAULT_GRID_INTENSITY,
                 measure_idle: bool = True, nvml: Any = None, sync: Callable[[], Any] | str | None = None,
                 *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Any] = time.sleep, idle_watts: float | None = None,
                 idle_seconds: float = DEFAULT_IDLE_SECONDS, rapl_root: Path = RAPL_ROOT,
                 uuid: str | None = None, pci_bus_id: str | None = None, cuda_index: int | None = None,
                 no_gpu: str | None = None, counter_period: float = COUNTER_PERIOD_S,
                 resolution_updates: int = RESOLUTION_UPDATES, poll_interval: float = POLL_INTERVAL_S):
        # 1. Check inputs.
        if not _number(grid_intensity) or grid_intensity < 0:
            raise ConfigError(f"energy.grid_intensity must be a number >= 0 (g CO2e per kWh), "
                              f"got {grid_intensity!r}")
        if not isinstance(device_index, int) or isinstance(device_index, bool) or device_index < 0:
            raise ConfigError(f"GPU index must be an integer >= 0, got {device_index!r}")
        for name, value in (("counter_period", counter_period), ("poll_interval", poll_interval)):
            if not _number(value) or value <= 0:
                raise ValueError(f"{name} must be a number > 0, got {value!r}")
        if not isinstance(resolution_updates, int) or resolution_updates < 1:
            raise ValueError(f"resolution_updates must be an integer >= 1, got {resolution_updates!r}")
        if not (sync is None or sync == "torch" or callable(sync)):
            raise ValueError(f"sync must be a callable, 'torch' or None, got {sync!r}")
        self.grid_intensity = float(grid_intensity)
        self.sync = sync
        self.clock, self.sleep = clock, sleep
        self.idle_seconds = idle_seconds
        self.counter_period, self.resolution_updates = float(counter_period), resolution_updates
        self.poll_interval = float(poll_interval)
        self._baseline_on = bool(measure_idle)
        self.baselines: list[Baseline] = []
        if idle_watts is not None:
            self.baselines.append(Baseline("given", float(idle_watts), 0.0, 0.0, None, None,
                                           "given by the caller (measured earlier)"))
        self.readings: list[EnergyReading] = []
        self._top: list[EnergyReading] = []
        self._depth = 0
        # 2. Open NVML and find the GPU; 3. its energy counter, else power polling; 4. RAPL.
        self.nvml: Any = None
        self.handle: Any = None
        self.device = DeviceIdentity(cuda_index=cuda_index)
        self.gpu_reason: str | None = no_gpu
        self.counter_note: str | None = None  # why the counter is not used, when polling instead
        self.poller: PowerPoller | None = None
        if no_gpu is None:
            self._open_nvml(nvml, uuid, pci_bus_id, device_index, cuda_index)
        self.rapl = Rapl(rapl_root)

    @classmethod
    def from_config(cls, energy_cfg: Any, **kwargs: Any) -> "EnergyMeter":
        """Build from the config's [energy] section (grid_intensity, measure_idle); a `device`
        keyword (a torch device) goes through for_torch_device."""
        kwargs.update(grid_intensity=energy_cfg.grid_intensity, measure_idle=energy_cfg.measure_idle)
        if "device" in kwargs:
            return cls.for_torch_device(kwargs.pop("device"), **kwargs)
        return cls(**kwargs)

    @classmethod
    def for_torch_device(cls, device: Any = None, **kwargs: Any) -> "EnergyMeter":
        """A meter on the NVML device that is this torch device (matched by UUID, then PCI bus
        id); a CPU device meters no GPU and says so. sync defaults to "torch"."""
        index, uuid, pci, why = torch_device_ids(device)
        kwargs.setdefault("sync", "torch")
        return cls(uuid=uuid, pci_bus_id=pci, cuda_index=index, no_gpu=why, **kwargs)

    # -- NVML ----------------------------------------------------------------------------------

    def _open_nvml(self, nvml: Any, uuid: str | None, pci_bus_id: str | None, index: int,
                   cuda_index: int | None) -> None:
        if nvml is None:
            try:
                import pynvml as nvml  # nvidia-ml-py
            except ImportError:
                self.gpu_reason = "pynvml not installed (pip install nvidia-ml-py)"
                return
        try:
            nvml.nvmlInit()
        except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
            self.gpu_reason = f"NVIDIA GPU not found, NVML could not start: {exc}"
            return
        self.nvml = nvml
        self.handle, self.device, why = find_device(nvml, uuid=uuid, pci_bus_id=pci_bus_id,
                                                    index=index, cuda_index=cuda_index)
        if why:
            self.gpu_reason = why
            return
        try:
            nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)
            return
        except Exception as exc:
            counter_why = counter_missing_reason(nvml, self.handle, exc)
        # No counter: poll power instead, as Zeus does on GPUs without it (docs/energy.md).
        try:
            nvml.nvmlDeviceGetPowerUsage(self.handle)
        except Exception as exc:
            self.gpu_reason = f"{counter_why}; reading its power failed too: {exc}"
            return
        self.counter_note = counter_why
        self.poller = PowerPoller(lambda: nvml.nvmlDeviceGetPowerUsage(self.handle) / 1000.0,
                                  self.clock, self.poll_interval)

    @property
    def gpu_available(self) -> bool:
        return self.gpu_reason is None

    @property
    def gpu_method(self) -> str | None:
        if not self.gpu_available:
            return None
        return COUNTER_METHOD if self.poller is None else POLLED_METHOD.format(self.poll_interval)

    @property
    def update_period_s(self) -> float:
        return self.counter_period if self.poller is None else self.poll_interval

    @property
    def resolution_s(self) -> float:
        """The shortest window whose GPU figure is reported: ten counter updates (or polls)."""
        return self.resolution_updates * self.update_period_s

    def _read_gpu_mj(self) -> tuple[int | None, str | None]:
        try:
            return int(self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)), None
        except Exception as exc:
            return None, f"reading the GPU energy counter failed: {exc}"

    def device_state(self) -> dict[str, Any]:
        """The metered GPU now: temperature (C), SM and memory clocks (MHz), enforced power limit
        and power draw (W). Unreadable values are None with a reason. bench records it per image."""
        nvml, h = self.nvml, self.handle
        reads: dict[str, Callable[[], Any]] = {
            "temperature_c": lambda: float(nvml.nvmlDeviceGetTemperature(
                h, getattr(nvml, "NVML_TEMPERATURE_GPU", NVML_TEMPERATURE_GPU))),
            "sm_clock_mhz": lambda: int(nvml.nvmlDeviceGetClockInfo(h, getattr(nvml, "NVML_CLOCK_SM", NVML_CLOCK_SM))),
            "mem_clock_mhz": lambda: int(nvml.nvmlDeviceGetClockInfo(h, getattr(nvml, "NVML_CLOCK_MEM", NVML_CLOCK_MEM))),
            "power_limit_w": lambda: nvml.nvmlDeviceGetEnforcedPowerLimit(h) / 1000.0,
            "power_w": lambda: nvml.nvmlDeviceGetPowerUsage(h) / 1000.0,
        }
        state: dict[str, Any] = {k: None for k in reads}
        state["reasons"] = {}
        for key, read in reads.items():
            if h is None:
                state["reasons"][key] = self.gpu_reason or "no GPU"
                continue
            try:
                state[key] = read()
            except Exception as exc:
                state["reasons"][key] = f"NVML could not read it: {exc}"
        return state

    def close(self) -> None:
        """Stop polling and shut NVML down (once); readings stay."""
        if self.poller is not None:
            self.poller.stop()
        if self.nvml is not None:
            try:
                self.nvml.nvmlShutdown()
            except Exception:
                pass
            self.nvml = None

    def __enter__(self) -> "EnergyMeter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- spans: the two ends of a window or a baseline -----------------------------------------

    def _sync(self) -> None:
        if self.sync == "torch":
            torch = sys.modules.get("torch")  # never imported here: no torch, nothing queued
            if torch is not None and torch.cuda.is_initialized():
                torch.cuda.synchronize(self.device.cuda_index)
        elif self.sync is not None:
            self.sync()

    def _open_span(self) -> dict[str, Any]:
        self._sync()
        mark: dict[str, Any] = {"gpu": None, "gpu_err": self.gpu_reason}
        if self.gpu_available and self.poller is None:
            mark["gpu"], mark["gpu_err"] = self._read_gpu_mj()
        elif self.gpu_available:
            mark["gpu"] = self.poller.begin()
            mark["gpu_err"] = None if mark["gpu"] is not None else self.poller.error
        mark["t"] = self.clock()
        mark["cpu"] = self.rapl.read() if self.rapl.available else None
        return mark

    def _close_span(self, start: dict[str, Any]) -> dict[str, Any]:
        """Seconds, GPU joules (raw, before any resolution check) and CPU joules, with reasons."""
        self._sync()
        end_gpu, end_err = None, start["gpu_err"]
        if start["gpu"] is not None and self.poller is None:
            end_gpu, end_err = self._read_gpu_mj()
        elif start["gpu"] is not None:
            end_gpu = self.poller.end()
            end_err = None if end_gpu is not None else self.poller.error
        t = self.clock()
        end_cpu = self.rapl.read() if self.rapl.available else None
        out: dict[str, Any] = {"seconds": max(0.0, t - start["t"]), "gpu": None, "gpu_why": None,
                               "cpu": None, "cpu_why": None}
        if start["gpu"] is None or end_gpu is None:
            out["gpu_why"] = end_err or start["gpu_err"] or "GPU energy not read"
        elif self.poller is not None:
            out["gpu"] = self.poller.joules(start["gpu"], end_gpu)
            if out["gpu"] is None:
                out["gpu_why"] = "too few power samples in the window"
        elif end_gpu < start["gpu"]:
            out["gpu_why"] = "energy counter went backwards during the window (driver reloaded?)"
        else:
            out["gpu"] = (end_gpu - start["gpu"]) / 1000.0
        if self.poller is not None and self.gpu_available:
            self.poller.release()  # every span opened with begin() closes here, read or not
        if not self.rapl.available:
            out["cpu_why"] = self.rapl.reason or "RAPL not available"
        elif start["cpu"] is None or end_cpu is None:
            out["cpu_why"] = "RAPL read failed during the window"
        else:
            out["cpu"] = self.rapl.joules_between(start["cpu"], end_cpu)
        return out

    # -- baseline ------------------------------------------------------------------------------

    def measure_baseline(self, settle_s: float = DEFAULT_SETTLE_S, seconds: float = DEFAULT_BASELINE_S,
                         label: str = "before") -> Baseline:
        """Measure the idle GPU's power: wait `settle_s` (after syncing), then read energy over
        `seconds` with the temperature at both ends. Call it before the run and again after;
        net energy uses the mean of all baselines measured (see total())."""
        if not _number(settle_s) or settle_s < 0 or not _number(seconds) or seconds <= 0:
            raise ValueError(f"baseline needs settle_s >= 0 and seconds > 0, got {settle_s!r}, {seconds!r}")
        if not self._baseline_on:
            b = Baseline(label, None, 0.0, 0.0, None, None, "not measured",
                         "baseline measurement is off (energy.measure_idle = false)")
        elif not self.gpu_available:
            b = Baseline(label, None, 0.0, 0.0, None, None, "not measured", self.gpu_reason)
        else:
            self._sync()
            self.sleep(settle_s)
            temp0 = self.device_state()["temperature_c"]
            start = self._open_span()
            self.sleep(seconds)
            span = self._close_span(start)
            temp1 = self.device_state()["temperature_c"]
            method = (f"{self.gpu_method} over {_num(span['seconds'])} s of idle, after "
                      f"{_num(settle_s)} s to settle")
            b = Baseline(label, None, span["seconds"], float(settle_s), temp0, temp1, method)
            if span["gpu"] is None:
                b.reason = f"baseline not measured: {span['gpu_why']}"
            elif span["seconds"] < self.resolution_s:
                b.reason = (f"baseline not measured: {_num(span['seconds'])} s is below the "
                            f"{_num(self.resolution_s)} s resolution of {self._resolution_words()}")
            else:
                b.watts = span["gpu"] / span["seconds"]
        self.baselines.append(b)
        return b

    def measure_idle(self, seconds: float | None = None) -> float | None:
        """Older API: a baseline over `seconds` with no settle period; returns its watts."""
        return self.measure_baseline(0.0, self.idle_seconds if seconds is None else seconds,
                                     label="idle").watts

    def baseline_watts(self) -> tuple[float | None, str | None]:
        """(mean of the measured baselines' watts, or None with the reason)."""
        got = [b.watts for b in self.baselines if b.watts is not None]
        if got:
            return sum(got) / len(got), None
        if self.baselines:
            return None, self.baselines[-1].reason or "baseline not measured"
        if not self._baseline_on:
            return None, "baseline measurement is off (energy.measure_idle = false)"
        return None, "no baseline measured"

    @property
    def idle_watts(self) -> float | None:
        """Older name for baseline_watts()[0]."""
        return self.baseline_watts()[0]

    def baseline_summary(self) -> dict[str, Any]:
        watts, why = self.baseline_watts()
        before = [b.watts for b in self.baselines if b.label == "before" and b.watts is not None]
        after = [b.watts for b in self.baselines if b.label == "after" and b.watts is not None]
        return {"watts": watts, "reason": why,
                "method": "mean of the baselines measured (before and after the run)",
                "drift_watts": after[-1] - before[0] if before and after else None,
                "measurements": [b.to_dict() for b in self.baselines]}

    # -- windows -------------------------------------------------------------------------------

    def window(self, stage: str, images: int | None = None) -> "Window":
        """Context manager metering the work inside it; its `.result` is set on exit. With
        `images`, the reading's per_image values divide the window's figures by it."""
        if images is not None and (not isinstance(images, int) or isinstance(images, bool) or images < 1):
            raise ValueError(f"images must be an integer >= 1, got {images!r}")
        return Window(self, stage, images)

    def _start(self) -> dict[str, Any]:
        self._depth += 1
        return self._open_span()

    def _stop(self, stage: str, start: dict[str, Any], images: int | None) -> EnergyReading:
        span = self._close_span(start)
        self._depth -= 1
        state = self.device_state() if self.handle is not None else None  # after the window's end
        reading = self._reading(stage, span["seconds"], span["gpu"], span["gpu_why"], span["cpu"],
                                span["cpu_why"], windows=1, images=images, state=state)
        self.readings.append(reading)
        if self._depth == 0:
            self._top.append(reading)
        return reading

    def _resolution_words(self) -> str:
        if self.poller is None:
            return f"NVML's energy counter ({self.resolution_updates} updates of ~{_num(self.counter_period)} s)"
        return f"power polling ({self.resolution_updates} samples {_num(self.poll_interval)} s apart)"

    def _reading(self, stage: str, seconds: float, raw_gpu: float | None, gpu_why: str | None,
                 cpu: float | None, cpu_why: str | None, *, windows: int, images: int | None,
                 state: dict[str, Any] | None = None) -> EnergyReading:
        reasons: dict[str, str] = {}
        gross, estimate, estimate_method = raw_gpu, None, None
        needed = self.resolution_s * windows
        if raw_gpu is not None and seconds < needed:
            gross = None
            per = " per window summed" if windows > 1 else ""
            gpu_why = (f"below counter resolution: {_num(seconds)} s is under {_num(needed)} s, "
                       f"{self._resolution_words()}{per}")
            power = (state or {}).get("power_w")
            if windows == 1 and self.poller is not None:
                estimate, estimate_method = raw_gpu, f"{self.gpu_method}, below resolution"
            elif windows == 1 and power is not None:
                estimate = power * seconds
                estimate_method = ("power x time: NVML power reading at the window's end x its "
                                   "duration (below counter resolution, an approximation)")
        if gross is None:
            for name in GPU_FIELDS:
                reasons[name] = gpu_why or "GPU energy not read"
        baseline, baseline_why = self.baseline_watts()
        net = None
        if gross is not None:
            if baseline is None:
                reasons["gpu_joules_net"] = baseline_why
            else:
                net = gross - baseline * seconds
        if cpu is None:
            reasons["cpu_joules"] = cpu_why or "RAPL not available"
        wh = None if gross is None else wh_from_joules(gross)
        co2e = None if gross is None else co2e_grams(gross, self.grid_intensity)
        per_image = None
        if images:
            per_image = {k: (None if v is None else v / images) for k, v in (
                ("seconds", seconds), ("gpu_joules_gross", gross), ("gpu_joules_net", net),
                ("cpu_joules", cpu), ("wh", wh), ("co2e_g", co2e))}
        return EnergyReading(
            stage=stage, seconds=seconds, gpu_joules_gross=gross, gpu_joules_net=net, cpu_joules=cpu,
            wh=wh, co2e_g=co2e, baseline_watts=baseline, grid_intensity=self.grid_intensity,
            reasons=reasons, gpu_method=self.gpu_method, resolution_s=self.resolution_s,
            windows=windows, images=images, per_image=per_image, gpu_joules_estimate=estimate,
            estimate_method=estimate_method, gpu_state=state, _raw_gpu_j=raw_gpu)

    # -- sums ----------------------------------------------------------------------------------

    def combine(self, stage: str, readings: Iterable[EnergyReading], images: int | None = None) -> EnergyReading:
        """One reading for several windows of this meter (e.g. every "generation" and
        "vae_decode" window: J/figure). Counter deltas are added first and the resolution bound
        applies per window summed; net uses the current baseline once, on the totals."""
        readings = list(readings)
        if not readings:
            why = self.gpu_reason or "no window measured yet"
            return self._reading(stage, 0.0, None, why, None, self.rapl.reason or why,
                                 windows=1, images=images)
        gpu, gpu_why = 0.0, None
        for r in readings:
            if r._raw_gpu_j is None:
                gpu, gpu_why = None, r.reasons.get("gpu_joules_gross", "GPU energy not read")
                break
            gpu += r._raw_gpu_j
        cpu, cpu_why = 0.0, None
        for r in readings:
            if r.cpu_joules is None:
                cpu, cpu_why = None, r.reasons.get("cpu_joules", "RAPL not available")
                break
            cpu += r.cpu_joules
        return self._reading(stage, float(sum(r.seconds for r in readings)), gpu, gpu_why, cpu,
                             cpu_why, windows=len(readings), images=images)

    def total(self, stage: str = "total", exclude: Iterable[str] = ()) -> EnergyReading:
        """The outermost windows so far, less those named in `exclude` (e.g. ("load",) to report
        loading apart), with net energy computed once on the totals; `method` says how (without
        the device identity: make stores totals in shared files; bench records describe())."""
        skip = set(exclude)
        reading = self.combine(stage, [r for r in self._top if r.stage not in skip])
        reading.method = self.describe(include_device=False)
        if skip:
            reading.method["excluded_windows"] = sorted(skip)
        return reading

    def describe(self, include_device: bool = True) -> dict[str, Any]:
        """How this meter measures: device identity (never the UUID), source, resolution, baseline,
        RAPL zones. bench.json records it."""
        device = self.device.to_dict() if include_device else None
        return {
            "gpu": {"device": device, "source": self.gpu_method, "reason": self.gpu_reason,
                    "counter_missing": self.counter_note, "update_period_s": self.update_period_s,
                    "resolution_s": self.resolution_s,
                    "resolution": (f"windows under {_num(self.resolution_s)} s ({self.resolution_updates} "
                                   "updates) report no GPU figure; sums need that much per window")},
            "baseline": self.baseline_summary(),
            "net": "gross - baseline watts x seconds, computed once on totals, never clipped per window",
            "cpu": {"zones": self.rapl.zone_names, "ignored": list(self.rapl.ignored), "reason": self.rapl.reason},
            "grid_intensity": self.grid_intensity,
        }

    def reset(self) -> None:
        """Forget all windows (baselines and NVML stay)."""
        self.readings.clear()
        self._top.clear()


class Window:
    """One metered span of work; `result` is the EnergyReading once the block has ended."""

    def __init__(self, meter: EnergyMeter, stage: str, images: int | None = None):
        self.meter, self.stage, self.images = meter, stage, images
        self.result: EnergyReading | None = None
        self._mark: dict[str, Any] | None = None

    def __enter__(self) -> "Window":
        self._mark = self.meter._start()
        return self

    def __exit__(self, *exc: Any) -> None:
        # Energy spent before an exception is still spent: record it, then let it propagate.
        self.result = self.meter._stop(self.stage, self._mark, self.images)


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
