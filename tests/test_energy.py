"""Energy meter and system facts, against a fake NVML (the one stand-in the project allows:
there is no GPU on the test machine) and a real RAPL-shaped directory tree.

The fake NVML keeps an energy counter driven by a fake clock: `run(seconds, watts)` advances
both, `queue(joules)` adds GPU work that only lands on the counter when `synchronize()` runs,
like kernels still in flight when the CPU reaches the end of a window.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from figurine.energy import EnergyMeter, co2e_grams, wh_from_joules
from figurine.errors import ConfigError
from figurine import sysinfo


class FakeClock:
    def __init__(self, start: float = 5000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now


class FakeNVMLError(Exception):
    def __init__(self, value: int, message: str):
        super().__init__(message)
        self.value = value


class FakeNVML:
    """The pynvml functions figurine calls, over a controllable counter and clock."""

    NVML_ERROR_NOT_SUPPORTED = 3
    NVML_CLOCK_SM = 1
    NVML_CLOCK_MEM = 2

    def __init__(self, clock: FakeClock, idle_watts: float = 60.0, energy_mj: int = 7_000_000,
                 supported: bool = True, init_error: str | None = None, gpus: int = 1):
        self.clock = clock
        self.idle_watts = idle_watts
        self.energy_mj = energy_mj
        self.supported = supported
        self.init_error = init_error
        self.gpus = gpus
        self.queued_j = 0.0
        self.syncs: list[int] = []  # counter value at each synchronize()
        self.shutdowns = 0

    # controls used by the tests
    def run(self, seconds: float, watts: float) -> None:
        self.clock.now += seconds
        self.energy_mj += round(watts * seconds * 1000)

    def sleep(self, seconds: float) -> None:
        self.run(seconds, self.idle_watts)

    def queue(self, joules: float) -> None:
        self.queued_j += joules

    def synchronize(self) -> None:
        self.energy_mj += round(self.queued_j * 1000)
        self.queued_j = 0.0
        self.syncs.append(self.energy_mj)

    # the NVML surface
    def nvmlInit(self):
        if self.init_error:
            raise FakeNVMLError(9, self.init_error)

    def nvmlShutdown(self):
        self.shutdowns += 1

    def nvmlDeviceGetHandleByIndex(self, index):
        if index >= self.gpus:
            raise FakeNVMLError(2, "Invalid Argument")
        return ("gpu", index)

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        if not self.supported:
            raise FakeNVMLError(self.NVML_ERROR_NOT_SUPPORTED, "Not Supported")
        return self.energy_mj

    def nvmlDeviceGetName(self, handle):
        return b"NVIDIA H100 80GB HBM3"

    def nvmlSystemGetDriverVersion(self):
        return "560.35.03"

    def nvmlSystemGetCudaDriverVersion(self):
        return 12060

    def nvmlDeviceGetEnforcedPowerLimit(self, handle):
        return 700_000

    def nvmlDeviceGetClockInfo(self, handle, kind):
        return {self.NVML_CLOCK_SM: 1755, self.NVML_CLOCK_MEM: 2619}[kind]

    def nvmlDeviceGetMaxClockInfo(self, handle, kind):
        raise FakeNVMLError(self.NVML_ERROR_NOT_SUPPORTED, "Not Supported")


@pytest.fixture
def gpu():
    return FakeNVML(FakeClock())


def make_meter(gpu, tmp_path, **kw):
    kw.setdefault("sync", gpu.synchronize)
    return EnergyMeter(nvml=gpu, clock=gpu.clock, sleep=gpu.sleep, rapl_root=tmp_path, **kw)


# --- arithmetic ---------------------------------------------------------------------------------

def test_window_gross_is_counter_delta_and_net_subtracts_measured_idle(gpu, tmp_path):
    meter = make_meter(gpu, tmp_path, grid_intensity=300.0)
    with meter.window("generation") as w:
        start_mj = gpu.syncs[-1]
        gpu.run(2.5, watts=410.0)
    r = w.result
    gross = (gpu.energy_mj - start_mj) / 1000
    assert r.stage == "generation"
    assert r.seconds == pytest.approx(2.5)
    assert r.gpu_joules_gross == pytest.approx(gross)
    assert meter.idle_watts == pytest.approx(gpu.idle_watts)
    assert r.gpu_joules_net == pytest.approx(gross - gpu.idle_watts * 2.5)
    assert r.wh == pytest.approx(gross / 3600)
    assert r.co2e_g == pytest.approx(gross / 3.6e6 * 300.0)
    assert r.reasons.get("gpu_joules_gross") is None


def test_conversions():
    assert wh_from_joules(3600.0) == pytest.approx(1.0)
    assert co2e_grams(3.6e6, 480.0) == pytest.approx(480.0)  # 1 kWh at 480 g/kWh


def test_idle_is_measured_once_over_a_quiet_interval(gpu, tmp_path):
    meter = make_meter(gpu, tmp_path, idle_seconds=2.0)
    t0 = gpu.clock.now
    with meter.window("a"):
        gpu.run(1.0, 200.0)
    assert gpu.clock.now - t0 == pytest.approx(3.0)  # 2 s idle + 1 s work
    with meter.window("b"):
        gpu.run(1.0, 200.0)
    assert gpu.clock.now - t0 == pytest.approx(4.0)  # no second idle interval


def test_net_is_never_below_zero(gpu, tmp_path):
    meter = make_meter(gpu, tmp_path)
    with meter.window("light") as w:
        gpu.run(1.0, watts=gpu.idle_watts / 2)
    assert w.result.gpu_joules_gross > 0
    assert w.result.gpu_joules_net == 0.0


def test_sync_at_both_ends_puts_queued_work_in_its_own_window(gpu, tmp_path):
    meter = make_meter(gpu, tmp_path, measure_idle=False)
    gpu.queue(500.0)                     # work launched before the window, still in flight
    with meter.window("decode") as w:
        gpu.queue(250.0)                 # launched inside, not finished when the block ends
    assert len(gpu.syncs) == 2
    assert w.result.gpu_joules_gross == pytest.approx(250.0)
    assert meter.total().gpu_joules_gross == pytest.approx(250.0)


def test_total_sums_outer_windows_and_does_not_count_nested_twice(gpu, tmp_path):
    meter = make_meter(gpu, tmp_path)
    with meter.window("image") as outer:
        gpu.run(1.0, 300.0)
        with meter.window("vae decode") as inner:
            gpu.run(0.5, 500.0)
    with meter.window("packaging") as second:
        gpu.run(0.2, 100.0)
    total = meter.total()
    assert [r.stage for r in meter.readings] == ["vae decode", "image", "packaging"]
    assert inner.result.gpu_joules_gross < outer.result.gpu_joules_gross
    assert total.gpu_joules_gross == pytest.approx(
        outer.result.gpu_joules_gross + second.result.gpu_joules_gross)
    assert total.gpu_joules_net == pytest.approx(
        outer.result.gpu_joules_net + second.result.gpu_joules_net)
    assert total.seconds == pytest.approx(1.7)
    assert total.wh == pytest.approx(total.gpu_joules_gross / 3600)
    meter.reset()
    assert meter.total().gpu_joules_gross is None


def test_measure_idle_off_makes_net_unavailable_but_given_idle_is_used(gpu, tmp_path):
    off = make_meter(gpu, tmp_path, measure_idle=False)
    with off.window("x") as w:
        gpu.run(1.0, 250.0)
    assert w.result.gpu_joules_gross > 0
    assert w.result.gpu_joules_net is None
    assert "measure_idle" in w.result.reasons["gpu_joules_net"]
    assert "above-idle unavailable" in w.result.format_line()

    reuse = make_meter(gpu, tmp_path, idle_watts=100.0)
    before = gpu.clock.now
    with reuse.window("y") as w2:
        gpu.run(1.0, 250.0)
    assert gpu.clock.now - before == pytest.approx(1.0)  # no idle interval spent
    assert w2.result.gpu_joules_net == pytest.approx(w2.result.gpu_joules_gross - 100.0)


def test_exception_inside_window_still_records_energy(gpu, tmp_path):
    meter = make_meter(gpu, tmp_path)
    with pytest.raises(RuntimeError):
        with meter.window("generation") as w:
            gpu.run(1.0, 300.0)
            raise RuntimeError("out of memory")
    assert w.result.gpu_joules_gross > 0
    assert meter.total().gpu_joules_gross == w.result.gpu_joules_gross


# --- unavailable, with reasons ------------------------------------------------------------------

def assert_gpu_unavailable(reading, fragment):
    for name in ("gpu_joules_gross", "gpu_joules_net", "wh", "co2e_g"):
        assert getattr(reading, name) is None, name
        assert fragment in reading.reasons[name]
    line = reading.format_line()
    assert "GPU unavailable (" in line and fragment in line
    assert "0 J" not in line and " 0 Wh" not in line
    json.dumps(reading.to_dict())


def test_counter_not_supported_is_unavailable_not_zero(tmp_path):
    gpu = FakeNVML(FakeClock(), supported=False)
    meter = make_meter(gpu, tmp_path)
    with meter.window("generation") as w:
        gpu.run(1.0, 300.0)
    assert_gpu_unavailable(w.result, "Volta")
    assert_gpu_unavailable(meter.total(), "Volta")
    assert meter.idle_watts is None


def test_counter_going_backwards_is_unavailable(gpu, tmp_path):
    meter = make_meter(gpu, tmp_path)
    with meter.window("generation") as w:
        gpu.run(1.0, 300.0)
        gpu.energy_mj = 1_000            # driver reloaded: the counter restarts
    assert_gpu_unavailable(w.result, "backwards")
    with meter.window("next") as w2:
        gpu.run(1.0, 300.0)
    assert w2.result.gpu_joules_gross > 0
    assert meter.total().gpu_joules_gross is None
    assert "generation" in meter.total().reasons["gpu_joules_gross"]


def test_nvml_init_failure_is_reported(tmp_path):
    gpu = FakeNVML(FakeClock(), init_error="Driver Not Loaded")
    meter = make_meter(gpu, tmp_path)
    with meter.window("generation") as w:
        pass
    assert_gpu_unavailable(w.result, "NVML init failed: Driver Not Loaded")


def test_missing_gpu_index_is_reported(gpu, tmp_path):
    meter = make_meter(gpu, tmp_path, device_index=3)
    with meter.window("generation") as w:
        pass
    assert_gpu_unavailable(w.result, "GPU 3 not found")


def test_real_pynvml_on_this_machine(tmp_path):
    """nvml=None uses the installed pynvml; without a driver its init fails, and says so."""
    meter = EnergyMeter(rapl_root=tmp_path, idle_seconds=0.05)
    with meter.window("generation") as w:
        pass
    meter.close()
    if meter.gpu_available:  # a machine with a GPU and driver: real figures
        assert w.result.gpu_joules_gross is not None and w.result.gpu_joules_gross >= 0
    else:
        assert_gpu_unavailable(w.result, "NVML init failed: ")


def test_pynvml_not_installed(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` raise ImportError
    meter = EnergyMeter(rapl_root=tmp_path)
    with meter.window("generation") as w:
        pass
    assert_gpu_unavailable(w.result, "pynvml not installed")


def test_bad_grid_intensity_is_a_config_error():
    with pytest.raises(ConfigError, match="grid_intensity"):
        EnergyMeter(grid_intensity=-5, nvml=FakeNVML(FakeClock()))


# --- CPU from RAPL ------------------------------------------------------------------------------

def rapl_domain(root, name, energy_uj, max_uj=1_000_000_000):
    d = root / name
    d.mkdir(parents=True)
    (d / "energy_uj").write_text(f"{energy_uj}\n")
    (d / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return d / "energy_uj"


def test_rapl_sums_packages_and_handles_wrap_around(gpu, tmp_path):
    pkg0 = rapl_domain(tmp_path, "intel-rapl:0", 999_000_000)
    pkg1 = rapl_domain(tmp_path, "intel-rapl:1", 10_000_000)
    core = rapl_domain(tmp_path, "intel-rapl:0:0", 0)  # a sub-domain: must not be added
    meter = make_meter(gpu, tmp_path)
    with meter.window("generation") as w:
        gpu.run(1.0, 300.0)
        pkg0.write_text("2000000\n")     # wrapped past 1e9 µJ: 1 + 2 = 3 J
        pkg1.write_text("14000000\n")    # 4 J
        core.write_text("900000000\n")
    assert w.result.cpu_joules == pytest.approx(7.0)
    assert "cpu_joules" not in w.result.reasons
    assert "CPU 7 J" in w.result.format_line()


def test_rapl_absent_or_unreadable_says_why(gpu, tmp_path):
    meter = make_meter(gpu, tmp_path)
    with meter.window("x") as w:
        gpu.run(1.0, 300.0)
    assert w.result.cpu_joules is None
    assert "RAPL not present" in w.result.reasons["cpu_joules"]
    assert "CPU unavailable (RAPL not present" in w.result.format_line()

    (tmp_path / "intel-rapl:0" / "energy_uj").mkdir(parents=True)  # a directory, not a counter
    (tmp_path / "intel-rapl:0" / "max_energy_range_uj").write_text("1000\n")
    meter = make_meter(gpu, tmp_path)
    with meter.window("x") as w:
        pass
    assert w.result.cpu_joules is None
    assert "RAPL not readable" in w.result.reasons["cpu_joules"]


def test_rapl_permission_denied_says_so(tmp_path):
    """A real permission denial: as root (CI) the check runs in a child that drops to 'nobody'."""
    f = rapl_domain(tmp_path, "intel-rapl:0", 5)
    f.chmod(0)
    code = ("import sys; from figurine.energy import Rapl; r = Rapl(sys.argv[1]); "
            "print(r.available); print(r.reason)")
    cmd = [sys.executable, "-c", code, str(tmp_path)]
    if os.geteuid() == 0:
        for d in (tmp_path, *tmp_path.parents):
            if d == Path("/"):
                break
            d.chmod(d.stat().st_mode | 0o005)  # let 'nobody' walk to the file (not read it)
        (tmp_path / "intel-rapl:0").chmod(0o755)
        (tmp_path / "intel-rapl:0" / "max_energy_range_uj").chmod(0o644)
        cmd = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"] + cmd
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    available, reason = proc.stdout.splitlines()
    assert available == "False"
    assert "permission denied" in reason and "energy_uj" in reason


# --- format and JSON ----------------------------------------------------------------------------

def test_format_line_and_dict_with_figures(gpu, tmp_path):
    meter = make_meter(gpu, tmp_path, grid_intensity=480.0)
    with meter.window("generation"):
        gpu.run(2.0, 240.0)
    total = meter.total()
    line = total.format_line()
    assert line.startswith("energy: ")
    assert f"{total.gpu_joules_gross:.0f} J GPU" in line
    assert f"{total.gpu_joules_net:.0f} J above idle" in line
    assert "Wh" in line and "g CO2e" in line
    d = json.loads(json.dumps(total.to_dict()))
    assert d["gpu_joules_gross"] == pytest.approx(total.gpu_joules_gross)
    assert d["cpu_joules"] is None and "RAPL" in d["reasons"]["cpu_joules"]
    assert d["grid_intensity"] == 480.0


# --- sysinfo ------------------------------------------------------------------------------------

def test_sysinfo_reads_gpu_facts_and_explains_gaps(gpu):
    info = sysinfo.collect(0, nvml=gpu)
    assert info["gpu_name"] == "NVIDIA H100 80GB HBM3"     # bytes from NVML decoded
    assert info["driver_version"] == "560.35.03"
    assert info["cuda_driver_version"] == "12.6"
    assert info["power_limit_w"] == pytest.approx(700.0)
    assert (info["sm_clock_mhz"], info["mem_clock_mhz"]) == (1755, 2619)
    assert info["max_sm_clock_mhz"] is None and "Not Supported" in info["reasons"]["max_sm_clock_mhz"]
    assert gpu.shutdowns == 1
    assert info["python"] == "%d.%d.%d" % sys.version_info[:3]
    assert info["os"] and info["cpu_model"]
    import importlib.metadata as md
    assert info["versions"]["nvidia-ml-py"] == md.version("nvidia-ml-py")
    json.dumps(info)


def test_sysinfo_without_nvml_says_why_for_every_gpu_field():
    info = sysinfo.collect(0, nvml=FakeNVML(FakeClock(), init_error="Driver Not Loaded"))
    for key in sysinfo.GPU_FIELDS:
        assert info[key] is None
        assert info["reasons"][key] == "NVML init failed: Driver Not Loaded"
    assert "GPU 0: unavailable (NVML init failed: Driver Not Loaded)" in sysinfo.format_lines(info)
    info = sysinfo.collect(0, nvml=FakeNVML(FakeClock(), gpus=0))
    assert "GPU 0 not found" in info["reasons"]["gpu_name"]


def test_sysinfo_reports_missing_packages(monkeypatch):
    monkeypatch.setitem(sysinfo.PACKAGES, "no-such-pkg", ["figurine-no-such-dist"])
    info = sysinfo.collect(0, nvml=FakeNVML(FakeClock()))
    assert info["versions"]["no-such-pkg"] is None
    assert "not installed" in info["reasons"]["versions.no-such-pkg"]


def test_neither_module_imports_torch():
    code = ("import sys, figurine.energy, figurine.sysinfo as s; s.collect(); "
            "figurine.energy.EnergyMeter(idle_seconds=0); "
            "bad = [m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
