"""A stand-in for pynvml: the one mock the project allows, because NVML cannot exist without an
NVIDIA GPU and its driver. It models what the energy meter depends on:

- an energy counter that moves in steps (every `period` s, 100 ms by default) while the true
  energy grows continuously, so a short window can see no step at all;
- several GPUs whose NVML order differs from CUDA's, each with its own UUID and PCI bus id;
- GPUs without the counter (NVML_ERROR_NOT_SUPPORTED): older than Volta, virtual, or no cause;
- power, temperature and clocks that follow the work: busy GPUs are hot and clock high.

Time comes from a FakeClock that the test advances with `run()` / `sleep()`; `queue()` adds GPU
work that only lands when `synchronize()` runs, like kernels still in flight.

    clock = FakeClock()
    a = FakeGPU(clock, uuid="GPU-aaaa...", pci_bus_id="00000000:17:00.0")
    nvml = FakeNVML(clock, [a])
    nvml.run(2.0, watts=300)          # GPU a draws 300 W for 2 s
"""

from __future__ import annotations

import math
from types import SimpleNamespace

NVML_ERROR_NOT_SUPPORTED = 3


class FakeClock:
    def __init__(self, start: float = 5000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now


class FakeNVMLError(Exception):
    def __init__(self, value: int, message: str):
        super().__init__(message)
        self.value = value


class FakeGPU:
    """One GPU: true energy as breakpoints (time, mJ), linear in between; current draw `watts`."""

    def __init__(self, clock: FakeClock, *, name: str = "NVIDIA H100 80GB HBM3",
                 uuid: str = "GPU-6c1d5e0a-0000-4000-8000-000000000001",
                 pci_bus_id: str = "00000000:17:00.0", idle_watts: float = 60.0,
                 energy_mj: float = 7_000_000.0, period: float = 0.1, phase: float = 0.07,
                 counter: bool = True, power: bool = True, arch: int = 9, virtualization: int = 0,
                 power_limit_w: float = 700.0, idle_sm_mhz: int = 345, busy_sm_mhz: int = 1980,
                 mem_mhz: int = 2619):
        self.clock = clock
        self.name, self.uuid, self.pci_bus_id = name, uuid, pci_bus_id
        self.idle_watts = idle_watts
        self.watts = idle_watts
        self.points: list[tuple[float, float]] = [(clock.now, float(energy_mj))]
        self.period, self.phase = period, phase
        self.counter, self.power, self.arch, self.virtualization = counter, power, arch, virtualization
        self.power_limit_w = power_limit_w
        self.idle_sm_mhz, self.busy_sm_mhz, self.mem_mhz = idle_sm_mhz, busy_sm_mhz, mem_mhz

    # true energy
    def energy_at(self, t: float) -> float:
        pts = self.points
        i = max(k for k, (pt, _) in enumerate(pts) if pt <= t) if t >= pts[0][0] else 0
        if i == len(pts) - 1 or pts[i + 1][0] == pts[i][0]:
            return pts[i][1]
        (t0, e0), (t1, e1) = pts[i], pts[i + 1]
        return e0 + (e1 - e0) * (t - t0) / (t1 - t0)

    def true_mj(self) -> float:
        return self.energy_at(self.clock.now)

    def advance(self, t0: float, t1: float) -> None:
        self.points.append((t1, self.points[-1][1] + self.watts * (t1 - t0) * 1000.0))

    def jump(self, joules: float) -> None:
        """Energy that lands at once (queued work finishing at a sync)."""
        self.points.append((self.clock.now, self.points[-1][1] + joules * 1000.0))

    def reset_counter(self, mj: float) -> None:
        """The driver reloads: the counter restarts from `mj`."""
        self.points.append((self.clock.now, float(mj)))

    # what NVML shows
    def counter_mj(self) -> int:
        now = self.clock.now
        if self.period:
            now = math.floor((now - self.phase) / self.period) * self.period + self.phase
        return int(self.energy_at(now))

    @property
    def temperature_c(self) -> float:
        return round(30.0 + self.watts / 10.0, 1)

    @property
    def sm_mhz(self) -> int:
        return self.busy_sm_mhz if self.watts > 1.5 * self.idle_watts else self.idle_sm_mhz


class FakeNVML:
    """The pynvml functions figurine calls, over FakeGPUs listed in NVML's order."""

    NVML_ERROR_NOT_SUPPORTED = NVML_ERROR_NOT_SUPPORTED
    NVML_CLOCK_SM = 1
    NVML_CLOCK_MEM = 2
    NVML_TEMPERATURE_GPU = 0
    NVML_DEVICE_ARCH_VOLTA = 5
    NVML_GPU_VIRTUALIZATION_MODE_NONE = 0

    def __init__(self, clock: FakeClock | None = None, gpus: list[FakeGPU] | None = None,
                 init_error: str | None = None, **gpu_kwargs):
        self.clock = clock or FakeClock()
        self.gpus = gpus if gpus is not None else [FakeGPU(self.clock, **gpu_kwargs)]
        self.active = self.gpus[0] if self.gpus else None  # the GPU that run() and queue() load
        self.init_error = init_error
        self.queued_j = 0.0
        self.syncs: list[float] = []   # the active GPU's true energy (mJ) at each synchronize()
        self.inits = self.shutdowns = 0

    # controls used by the tests
    def run(self, seconds: float, watts: float, gpu: FakeGPU | None = None) -> None:
        """`gpu` (the active one by default) draws `watts` for `seconds`; the others idle."""
        busy = gpu or self.active
        busy.watts = watts
        t0 = self.clock.now
        self.clock.now += seconds
        for g in self.gpus:
            g.advance(t0, self.clock.now)

    def sleep(self, seconds: float) -> None:
        for g in self.gpus:
            g.watts = g.idle_watts
        t0 = self.clock.now
        self.clock.now += seconds
        for g in self.gpus:
            g.advance(t0, self.clock.now)

    def queue(self, joules: float) -> None:
        self.queued_j += joules

    def synchronize(self) -> None:
        self.active.jump(self.queued_j)
        self.queued_j = 0.0
        self.syncs.append(self.active.true_mj())

    # the NVML surface (a handle is the FakeGPU itself)
    def nvmlInit(self):
        self.inits += 1
        if self.init_error:
            raise FakeNVMLError(9, self.init_error)

    def nvmlShutdown(self):
        self.shutdowns += 1

    def nvmlDeviceGetCount(self):
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index):
        if not 0 <= index < len(self.gpus):
            raise FakeNVMLError(2, "Invalid Argument")
        return self.gpus[index]

    def nvmlDeviceGetIndex(self, handle):
        return self.gpus.index(handle)

    def nvmlDeviceGetUUID(self, handle):
        return handle.uuid

    def nvmlDeviceGetPciInfo(self, handle):
        return SimpleNamespace(busId=handle.pci_bus_id.encode())  # bytes, as ctypes gives them

    def nvmlDeviceGetName(self, handle):
        return handle.name.encode()

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        if not handle.counter:
            raise FakeNVMLError(NVML_ERROR_NOT_SUPPORTED, "Not Supported")
        return handle.counter_mj()

    def nvmlDeviceGetPowerUsage(self, handle):
        if not handle.power:
            raise FakeNVMLError(NVML_ERROR_NOT_SUPPORTED, "Not Supported")
        return int(handle.watts * 1000)

    def nvmlDeviceGetArchitecture(self, handle):
        return handle.arch

    def nvmlDeviceGetVirtualizationMode(self, handle):
        return handle.virtualization

    def nvmlDeviceGetTemperature(self, handle, sensor):
        return int(handle.temperature_c)

    def nvmlDeviceGetClockInfo(self, handle, kind):
        return {self.NVML_CLOCK_SM: handle.sm_mhz, self.NVML_CLOCK_MEM: handle.mem_mhz}[kind]

    def nvmlDeviceGetMaxClockInfo(self, handle, kind):
        raise FakeNVMLError(NVML_ERROR_NOT_SUPPORTED, "Not Supported")

    def nvmlDeviceGetEnforcedPowerLimit(self, handle):
        return int(handle.power_limit_w * 1000)

    def nvmlSystemGetDriverVersion(self):
        return "560.35.03"

    def nvmlSystemGetCudaDriverVersion(self):
        return 12060
