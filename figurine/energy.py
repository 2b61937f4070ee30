"""Energy meter: how many joules a stage of figurine costs on this machine.

    import torch
    from figurine.energy import EnergyMeter

    with EnergyMeter(device_index=0, sync=torch.cuda.synchronize) as meter:
        with meter.window("generation") as w:
            image = pipe(...).images[0]
        print(w.result.format_line())
        # energy (generation): 412 J GPU (351 J above idle) in 2.1 s, 0.114 Wh, 0.055 g CO2e;
        #   CPU unavailable (RAPL not readable: permission denied on .../energy_uj, ...)
        print(meter.total().to_dict())

What is measured
- GPU: NVML's total-energy counter (`nvmlDeviceGetTotalEnergyConsumption`, millijoules since
  the driver was loaded; Volta and newer GPUs). A window's gross energy is the counter's
  difference between its two ends. Both ends first call `sync` (pass `torch.cuda.synchronize`)
  so the work queued inside the window is finished, and counted, inside it.
- Idle: the same counter read across a short quiet interval before the first window
  (`measure_idle()`, 1 s by default) gives the GPU's idle power. A window's net energy is
  gross - idle_watts * seconds, never below zero: the part of the energy the work itself added.
- CPU: the package energy counters of Linux RAPL (/sys/class/powercap/intel-rapl:N/energy_uj,
  summed over packages, wrap-around handled with max_energy_range_uj). Since Linux 5.10 these
  files are readable by root only; otherwise the CPU figure is unavailable and says why.
- Wh and CO2e are computed from the GPU's gross energy: wh = J / 3600, co2e_g = kWh * grid
  intensity. CPU joules are reported beside them, not added in (RAPL is often unreadable, and
  a figure that changes meaning with file permissions would not compare across machines).

Nothing unavailable is ever reported as 0: its value is None and `reasons[field]` says why
(pynvml not installed, NVML init failed, counter not supported, RAPL not readable, ...).

Grid intensity default: 480 g CO2e/kWh, the world average carbon intensity of electricity
generation in 2023 in Ember's Global Electricity Review 2024 (May 2024): a record low of 480
gCO2e/kWh, down from 486 in 2022 (ember-climate.org/insights/research/global-electricity-review-
2024). Ember's figures since that
edition are life-cycle emissions (upstream methane, supply chain, manufacturing; all gases as
CO2-equivalent over 100 years), so they are CO2e. Earlier editions counted combustion only
(436 g/kWh for 2022 in the 2023 review): do not mix the two. Set your own grid's figure with
`--set energy.grid_intensity=...` (e.g. from Ember's data explorer or your utility).

Windows may nest (a "vae decode" window inside an "image" window); `total()` sums only the
outermost windows so nothing is counted twice. This module imports neither torch nor pynvml at
import time: pynvml is imported when a meter is made, torch only arrives as `sync`.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from figurine.errors import ConfigError

DEFAULT_GRID_INTENSITY = 480.0  # g CO2e/kWh, world 2023, Ember Global Electricity Review 2024
DEFAULT_IDLE_SECONDS = 1.0
RAPL_ROOT = Path("/sys/class/powercap")
NVML_ERROR_NOT_SUPPORTED = 3  # pynvml.NVML_ERROR_NOT_SUPPORTED
J_PER_WH = 3600.0

GPU_FIELDS = ("gpu_joules_gross", "gpu_joules_net", "wh", "co2e_g")


# ---------------------------------------------------------------------------------------------
# The result of one window
# ---------------------------------------------------------------------------------------------

@dataclass
class EnergyReading:
    """Energy of one window (or of a sum of windows). None means unavailable; see `reasons`."""

    stage: str
    seconds: float
    gpu_joules_gross: float | None
    gpu_joules_net: float | None
    cpu_joules: float | None
    wh: float | None
    co2e_g: float | None
    idle_watts: float | None = None
    grid_intensity: float = DEFAULT_GRID_INTENSITY
    reasons: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict; unavailable figures are null with their reason in `reasons`."""
        d = asdict(self)
        d["reasons"] = dict(self.reasons)
        return d

    def format_line(self) -> str:
        """One human line, e.g. "energy: 412 J GPU (351 J above idle) in 2.1 s, 0.114 Wh, ..."."""
        head = "energy" if self.stage == "total" else f"energy ({self.stage})"
        if self.gpu_joules_gross is None:
            gpu = f"GPU unavailable ({self.reasons.get('gpu_joules_gross', 'no reason recorded')})"
        else:
            if self.gpu_joules_net is None:
                net = f"above-idle unavailable: {self.reasons.get('gpu_joules_net', '?')}"
            else:
                net = f"{_num(self.gpu_joules_net)} J above idle"
            gpu = (f"{_num(self.gpu_joules_gross)} J GPU ({net}) in {_num(self.seconds)} s, "
                   f"{_num(self.wh)} Wh, {_num(self.co2e_g)} g CO2e")
        if self.cpu_joules is None:
            cpu = f"CPU unavailable ({self.reasons.get('cpu_joules', 'no reason recorded')})"
        else:
            cpu = f"CPU {_num(self.cpu_joules)} J"
        return f"{head}: {gpu}; {cpu}"


def _num(x: float | None) -> str:
    """A short human number: 412, 35.1, 0.114, 3.2e-05 (None never reaches here as a number)."""
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

class Rapl:
    """Package-level RAPL counters under `root`; `available` False with `reason` when unreadable."""

    def __init__(self, root: Path = RAPL_ROOT):
        self.root = Path(root)
        self.domains: list[tuple[Path, int]] = []  # (energy_uj file, max_energy_range_uj)
        self.reason: str | None = None
        # Package domains are intel-rapl:N (sub-domains intel-rapl:N:M are inside them).
        dirs = sorted(p for p in self.root.glob("intel-rapl:*") if p.name.count(":") == 1)
        if not dirs:
            self.reason = f"RAPL not present: no {self.root}/intel-rapl:* package domains"
            return
        for d in dirs:
            energy = d / "energy_uj"
            try:
                int(energy.read_text().strip())
                max_range = int((d / "max_energy_range_uj").read_text().strip())
            except PermissionError:
                self.reason = f"RAPL not readable: permission denied on {energy}, root only since Linux 5.10"
                self.domains = []
                return
            except (OSError, ValueError) as exc:
                self.reason = f"RAPL not readable: {energy}: {exc}"
                self.domains = []
                return
            self.domains.append((energy, max_range))

    @property
    def available(self) -> bool:
        return bool(self.domains)

    def read(self) -> list[int] | None:
        """Current microjoule counters, one per package; None if a read fails."""
        try:
            return [int(f.read_text().strip()) for f, _ in self.domains]
        except (OSError, ValueError):
            return None

    def joules_between(self, start: list[int], end: list[int]) -> float:
        """Joules between two reads, each package's counter allowed to wrap once."""
        total_uj = 0
        for (_, max_range), a, b in zip(self.domains, start, end):
            total_uj += b - a if b >= a else b + max_range - a
        return total_uj / 1e6


# ---------------------------------------------------------------------------------------------
# The meter
# ---------------------------------------------------------------------------------------------

class EnergyMeter:
    """Measures GPU (NVML) and CPU (RAPL) energy over named windows of work.

    device_index: NVML index of the GPU to meter. grid_intensity: g CO2e per kWh.
    measure_idle: measure idle power before the first window (else net energy is unavailable
    unless idle_watts is given). nvml: the NVML module (pynvml when None; tests pass a fake).
    sync: called at both ends of each window, e.g. torch.cuda.synchronize. clock, sleep: time
    sources (time.monotonic, time.sleep). idle_watts: reuse an idle power measured earlier.
    """

    def __init__(self, device_index: int = 0, grid_intensity: float = DEFAULT_GRID_INTENSITY,
                 measure_idle: bool = True, nvml: Any = None, sync: Callable[[], Any] | None = None,
                 *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Any] = time.sleep, idle_watts: float | None = None,
                 idle_seconds: float = DEFAULT_IDLE_SECONDS, rapl_root: Path = RAPL_ROOT):
        # 1. Check inputs.
        if not isinstance(grid_intensity, (int, float)) or isinstance(grid_intensity, bool) \
                or not math.isfinite(grid_intensity) or grid_intensity < 0:
            raise ConfigError(f"energy.grid_intensity must be a number >= 0 (g CO2e per kWh), "
                              f"got {grid_intensity!r}")
        if not isinstance(device_index, int) or device_index < 0:
            raise ConfigError(f"GPU index must be an integer >= 0, got {device_index!r}")
        self.device_index = device_index
        self.grid_intensity = float(grid_intensity)
        self.sync = sync
        self.clock = clock
        self.sleep = sleep
        self.idle_seconds = idle_seconds
        self.idle_watts: float | None = idle_watts
        self.idle_reason: str | None = None if idle_watts is not None else (
            "idle power not measured (energy.measure_idle = false)")
        self._auto_idle = measure_idle and idle_watts is None
        self.readings: list[EnergyReading] = []
        self._top: list[EnergyReading] = []
        self._depth = 0
        # 2. Open NVML and check the counter; 3. find RAPL.
        self.nvml = None
        self.handle = None
        self.gpu_reason: str | None = None
        self._open_nvml(nvml)
        self.rapl = Rapl(rapl_root)

    @classmethod
    def from_config(cls, energy_cfg: Any, **kwargs: Any) -> "EnergyMeter":
        """Build from the config's [energy] section (grid_intensity, measure_idle)."""
        return cls(grid_intensity=energy_cfg.grid_intensity,
                   measure_idle=energy_cfg.measure_idle, **kwargs)

    # -- NVML ----------------------------------------------------------------------------------

    def _open_nvml(self, nvml: Any) -> None:
        if nvml is None:
            try:
                import pynvml as nvml  # nvidia-ml-py
            except ImportError:
                self.gpu_reason = "pynvml not installed (pip install nvidia-ml-py)"
                return
        try:
            nvml.nvmlInit()
        except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
            self.gpu_reason = f"NVML init failed: {exc}"
            return
        self.nvml = nvml
        try:
            self.handle = nvml.nvmlDeviceGetHandleByIndex(self.device_index)
        except Exception as exc:
            self.gpu_reason = f"GPU {self.device_index} not found by NVML: {exc}"
            return
        try:
            nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)
        except Exception as exc:
            if getattr(exc, "value", None) == getattr(nvml, "NVML_ERROR_NOT_SUPPORTED",
                                                      NVML_ERROR_NOT_SUPPORTED):
                self.gpu_reason = (f"GPU {self.device_index} does not support NVML's total-energy "
                                   "counter (Volta or newer required)")
            else:
                self.gpu_reason = f"reading the GPU energy counter failed: {exc}"

    @property
    def gpu_available(self) -> bool:
        return self.gpu_reason is None

    def _read_gpu_mj(self) -> tuple[int | None, str | None]:
        try:
            return int(self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)), None
        except Exception as exc:
            return None, f"reading the GPU energy counter failed: {exc}"

    def close(self) -> None:
        """Shut NVML down (once); readings stay."""
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

    # -- idle ----------------------------------------------------------------------------------

    def measure_idle(self, seconds: float | None = None) -> float | None:
        """Measure the GPU's idle power (W) over `seconds` of doing nothing; None if impossible."""
        seconds = self.idle_seconds if seconds is None else seconds
        self._auto_idle = False
        if not self.gpu_available:
            self.idle_watts, self.idle_reason = None, self.gpu_reason
            return None
        self._sync()
        e0, err0 = self._read_gpu_mj()
        t0 = self.clock()
        self.sleep(seconds)
        e1, err1 = self._read_gpu_mj()
        t1 = self.clock()
        if err0 or err1:
            self.idle_watts, self.idle_reason = None, f"idle not measured: {err0 or err1}"
        elif t1 <= t0:
            self.idle_watts, self.idle_reason = None, "idle not measured: clock did not advance"
        elif e1 < e0:
            self.idle_watts, self.idle_reason = None, (
                "idle not measured: energy counter went backwards (driver reloaded?)")
        else:
            self.idle_watts, self.idle_reason = (e1 - e0) / 1000.0 / (t1 - t0), None
        return self.idle_watts

    # -- windows -------------------------------------------------------------------------------

    def _sync(self) -> None:
        if self.sync is not None:
            self.sync()

    def window(self, stage: str) -> "Window":
        """Context manager metering the work inside it; its `.result` is set on exit."""
        return Window(self, stage)

    def _start(self) -> dict[str, Any]:
        if self._auto_idle and self._depth == 0:
            self.measure_idle()
        self._depth += 1
        self._sync()
        mark: dict[str, Any] = {"gpu": None, "gpu_err": self.gpu_reason}
        if self.gpu_available:
            mark["gpu"], mark["gpu_err"] = self._read_gpu_mj()
        mark["t"] = self.clock()
        mark["cpu"] = self.rapl.read() if self.rapl.available else None
        return mark

    def _stop(self, stage: str, start: dict[str, Any]) -> EnergyReading:
        self._sync()
        end_gpu, end_err = (self._read_gpu_mj() if self.gpu_available and start["gpu"] is not None
                            else (None, start["gpu_err"]))
        t = self.clock()
        end_cpu = self.rapl.read() if self.rapl.available else None
        self._depth -= 1
        seconds = max(0.0, t - start["t"])
        reasons: dict[str, str] = {}

        # GPU gross: counter difference in mJ.
        gross = None
        if start["gpu"] is None or end_gpu is None:
            why = end_err or start["gpu_err"] or "GPU energy counter not read"
        elif end_gpu < start["gpu"]:
            why = "energy counter went backwards during the window (driver reloaded?)"
        else:
            gross, why = (end_gpu - start["gpu"]) / 1000.0, None
        if gross is None:
            for name in GPU_FIELDS:
                reasons[name] = why

        # GPU net of idle.
        net = None
        if gross is not None:
            if self.idle_watts is None:
                reasons["gpu_joules_net"] = self.idle_reason or "idle power not measured"
            else:
                net = max(0.0, gross - self.idle_watts * seconds)

        # CPU from RAPL.
        cpu = None
        if not self.rapl.available:
            reasons["cpu_joules"] = self.rapl.reason or "RAPL not available"
        elif start["cpu"] is None or end_cpu is None:
            reasons["cpu_joules"] = "RAPL read failed during the window"
        else:
            cpu = self.rapl.joules_between(start["cpu"], end_cpu)

        reading = EnergyReading(
            stage=stage, seconds=seconds, gpu_joules_gross=gross, gpu_joules_net=net,
            cpu_joules=cpu, wh=None if gross is None else wh_from_joules(gross),
            co2e_g=None if gross is None else co2e_grams(gross, self.grid_intensity),
            idle_watts=self.idle_watts, grid_intensity=self.grid_intensity, reasons=reasons)
        self.readings.append(reading)
        if self._depth == 0:
            self._top.append(reading)
        return reading

    # -- sums ----------------------------------------------------------------------------------

    def total(self, stage: str = "total") -> EnergyReading:
        """Sum of the outermost windows so far; a figure is unavailable if any window lacks it."""
        return sum_readings(self._top, stage=stage, grid_intensity=self.grid_intensity,
                            idle_watts=self.idle_watts,
                            empty_reason=self.gpu_reason or "no window measured yet")

    def reset(self) -> None:
        """Forget all windows (the idle measurement and NVML stay)."""
        self.readings.clear()
        self._top.clear()


class Window:
    """One metered span of work; `result` is the EnergyReading once the block has ended."""

    def __init__(self, meter: EnergyMeter, stage: str):
        self.meter = meter
        self.stage = stage
        self.result: EnergyReading | None = None
        self._mark: dict[str, Any] | None = None

    def __enter__(self) -> "Window":
        self._mark = self.meter._start()
        return self

    def __exit__(self, *exc: Any) -> None:
        # Energy spent before an exception is still spent: record it, then let it propagate.
        self.result = self.meter._stop(self.stage, self._mark)


def sum_readings(readings: list[EnergyReading], stage: str = "total",
                 grid_intensity: float = DEFAULT_GRID_INTENSITY, idle_watts: float | None = None,
                 empty_reason: str = "no window measured") -> EnergyReading:
    """Add readings field by field; a field missing in any reading is None with that reason."""
    reasons: dict[str, str] = {}
    sums: dict[str, float | None] = {}
    for name in ("gpu_joules_gross", "gpu_joules_net", "cpu_joules"):
        values = [getattr(r, name) for r in readings]
        missing = [r for r in readings if getattr(r, name) is None]
        if not readings:
            sums[name], reasons[name] = None, empty_reason
        elif missing:
            sums[name] = None
            reasons[name] = missing[0].reasons.get(name, "unavailable") + (
                f" (window '{missing[0].stage}')" if len(readings) > 1 else "")
        else:
            sums[name] = float(sum(values))
    gross = sums["gpu_joules_gross"]
    if gross is None:
        reasons["wh"] = reasons["co2e_g"] = reasons["gpu_joules_gross"]
    return EnergyReading(
        stage=stage, seconds=float(sum(r.seconds for r in readings)),
        gpu_joules_gross=gross, gpu_joules_net=sums["gpu_joules_net"],
        cpu_joules=sums["cpu_joules"], wh=None if gross is None else wh_from_joules(gross),
        co2e_g=None if gross is None else co2e_grams(gross, grid_intensity),
        idle_watts=idle_watts, grid_intensity=grid_intensity, reasons=reasons)
