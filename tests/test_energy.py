"""Energy meter and system facts, against a fake NVML (tests/fake_nvml.py: the one stand-in the
project allows, there is no GPU on the test machine) and real RAPL-shaped directory trees.

The findings of issue 14 each have a test here, marked "finding N".
"""

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from figurine import sysinfo
from figurine.energy import COUNTER_METHOD, EnergyMeter, Rapl, co2e_grams, wh_from_joules
from figurine.errors import ConfigError
from tests.fake_nvml import FakeClock, FakeGPU, FakeNVML

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def gpu():
    """A GPU whose counter moves in 100 ms steps, as NVML's does."""
    return FakeNVML(FakeClock())


@pytest.fixture
def exact():
    """A GPU whose counter is exact (no steps), to check the arithmetic to the joule."""
    return FakeNVML(FakeClock(), period=0)


def make_meter(nvml, tmp_path, **kw):
    kw.setdefault("sync", nvml.synchronize)
    return EnergyMeter(nvml=nvml, clock=nvml.clock, sleep=nvml.sleep, rapl_root=tmp_path, **kw)


def assert_gpu_unavailable(reading, fragment):
    for name in ("gpu_joules_gross", "gpu_joules_net", "wh", "co2e_g"):
        assert getattr(reading, name) is None, name
        assert fragment in reading.reasons[name]
    line = reading.format_line()
    assert "GPU figure unavailable (" in line and fragment in line
    assert " 0 J" not in line and " 0 Wh" not in line
    json.dumps(reading.to_dict())


# --- arithmetic ---------------------------------------------------------------------------------

def test_window_gross_is_counter_delta_and_net_subtracts_the_baseline(exact, tmp_path):
    meter = make_meter(exact, tmp_path, grid_intensity=300.0)
    meter.measure_baseline(settle_s=1.0, seconds=2.0)
    with meter.window("generation") as w:
        exact.run(2.5, watts=410.0)
    r = w.result
    assert r.stage == "generation" and r.seconds == pytest.approx(2.5)
    assert r.gpu_joules_gross == pytest.approx(410.0 * 2.5)
    assert r.baseline_watts == pytest.approx(exact.active.idle_watts)
    assert r.gpu_joules_net == pytest.approx(410.0 * 2.5 - exact.active.idle_watts * 2.5)
    assert r.wh == pytest.approx(r.gpu_joules_gross / 3600)
    assert r.co2e_g == pytest.approx(r.gpu_joules_gross / 3.6e6 * 300.0)
    assert r.gpu_method == COUNTER_METHOD and r.reasons == {"cpu_joules": r.reasons["cpu_joules"]}


def test_conversions():
    assert wh_from_joules(3600.0) == pytest.approx(1.0)
    assert co2e_grams(3.6e6, 480.0) == pytest.approx(480.0)  # 1 kWh at 480 g/kWh


def test_sync_at_both_ends_puts_queued_work_in_its_own_window(exact, tmp_path):
    meter = make_meter(exact, tmp_path, resolution_updates=1)
    exact.queue(500.0)                   # work launched before the window, still in flight
    with meter.window("decode") as w:
        exact.queue(250.0)               # launched inside, not finished when the block ends
        exact.run(1.0, watts=0.0)
    assert len(exact.syncs) == 2
    assert w.result.gpu_joules_gross == pytest.approx(250.0)


def test_total_adds_outer_windows_and_does_not_count_nested_twice(exact, tmp_path):
    meter = make_meter(exact, tmp_path)
    with meter.window("image") as outer:
        exact.run(1.0, 300.0)
        with meter.window("vae decode") as inner:
            exact.run(1.5, 500.0)
    with meter.window("packaging") as second:
        exact.run(1.2, 100.0)
    total = meter.total()
    assert [r.stage for r in meter.readings] == ["vae decode", "image", "packaging"]
    assert inner.result.gpu_joules_gross == pytest.approx(750.0)
    assert total.gpu_joules_gross == pytest.approx(
        outer.result.gpu_joules_gross + second.result.gpu_joules_gross)
    assert total.seconds == pytest.approx(3.7) and total.windows == 2
    meter.reset()
    assert meter.total().gpu_joules_gross is None


def test_exception_inside_window_still_records_energy(exact, tmp_path):
    meter = make_meter(exact, tmp_path)
    with pytest.raises(RuntimeError):
        with meter.window("generation") as w:
            exact.run(1.0, 300.0)
            raise RuntimeError("out of memory")
    assert w.result.gpu_joules_gross == pytest.approx(300.0)
    assert meter.total().gpu_joules_gross == w.result.gpu_joules_gross


# --- finding 1: short windows are below the counter's resolution, never 0 J ----------------------

def test_short_window_is_below_counter_resolution_not_zero(gpu, tmp_path):
    meter = make_meter(gpu, tmp_path)
    start = gpu.active.counter_mj()
    with meter.window("packaging") as tiny:
        gpu.run(0.05, watts=300.0)
    assert gpu.active.counter_mj() == start          # the counter did not move: old code said 0 J
    r = tiny.result
    assert r.gpu_joules_gross is None and r.gpu_joules_net is None and r.co2e_g is None
    assert "below counter resolution" in r.reasons["gpu_joules_gross"]
    assert r.gpu_joules_estimate == pytest.approx(300.0 * 0.05)  # flagged power x time estimate
    assert "power x time" in r.estimate_method
    line = r.format_line()
    assert line.startswith("Energy for packaging: GPU figure unavailable (below counter resolution")
    assert " 0 J" not in line and " 0 g" not in line and "about 15 J by power x time" in line

    with meter.window("matte") as half:              # the counter moves 5 times: still too few
        gpu.run(0.5, watts=300.0)
    assert half.result.gpu_joules_gross is None
    assert "below counter resolution" in half.result.reasons["gpu_joules_gross"]


def test_windows_of_ten_updates_or_more_are_reported_within_one_step(gpu, tmp_path):
    meter = make_meter(gpu, tmp_path)
    with meter.window("generation") as w:
        gpu.run(2.0, watts=300.0)
    assert w.result.gpu_joules_gross == pytest.approx(600.0, abs=0.1 * 300.0)
    assert w.result.resolution_s == pytest.approx(1.0)
    assert meter.describe()["gpu"]["resolution_s"] == pytest.approx(1.0)


def test_sums_need_the_resolution_per_window(gpu, tmp_path):
    meter = make_meter(gpu, tmp_path)
    for _ in range(3):                                # 3 windows, 1.5 s in all: under 3 x 1 s
        with meter.window("step"):
            gpu.run(0.5, watts=200.0)
    flagged = meter.total()
    assert flagged.gpu_joules_gross is None and "per window summed" in flagged.reasons["gpu_joules_gross"]
    meter.reset()
    for _ in range(3):                                # 3 windows of 1.5 s: reported
        with meter.window("step"):
            gpu.run(1.5, watts=200.0)
    assert meter.total().gpu_joules_gross == pytest.approx(900.0, abs=3 * 0.1 * 200.0)


# --- finding 2: the NVML device is the CUDA device, found by UUID or PCI bus id -------------------

@pytest.fixture
def three_gpus():
    """NVML lists GPUs by PCI bus; CUDA lists the fastest first: CUDA 0 is NVML 1."""
    clock = FakeClock()
    slow = FakeGPU(clock, name="NVIDIA T400", uuid="GPU-00000000-1111-4000-8000-000000000000",
                   pci_bus_id="00000000:17:00.0", idle_watts=8.0, power_limit_w=31.0)
    fast = FakeGPU(clock, name="NVIDIA H100 80GB HBM3", uuid="GPU-aaaaaaaa-2222-4000-8000-000000000000",
                   pci_bus_id="00000000:65:00.0", idle_watts=70.0, power_limit_w=700.0)
    mid = FakeGPU(clock, name="NVIDIA L4", uuid="GPU-bbbbbbbb-3333-4000-8000-000000000000",
                  pci_bus_id="00000000:ca:00.0", idle_watts=16.0, power_limit_w=72.0)
    return FakeNVML(clock, [slow, fast, mid]), slow, fast, mid


def test_meter_reads_the_cuda_device_found_by_uuid_not_nvml_index_0(three_gpus, tmp_path):
    nvml, slow, fast, mid = three_gpus
    torch_uuid = "aaaaaaaa-2222-4000-8000-000000000000"  # torch's spelling: no "GPU-" prefix
    meter = make_meter(nvml, tmp_path, sync=None, uuid=torch_uuid, cuda_index=0)
    with meter.window("generation") as w:
        nvml.run(2.0, watts=500.0, gpu=fast)
    assert w.result.gpu_joules_gross == pytest.approx(1000.0, abs=50.0)  # not the T400's 16 J
    dev = meter.device
    assert (dev.name, dev.nvml_index, dev.cuda_index, dev.matched_by) == ("NVIDIA H100 80GB HBM3", 1, 0, "uuid")
    assert dev.pci_bus_id == "00000000:65:00.0"
    assert "uuid" not in dev.to_dict() and dev.to_dict(include_uuid=True)["uuid"] == fast.uuid
    recorded = json.loads(json.dumps(meter.describe()))["gpu"]["device"]   # what bench.json records
    assert recorded["nvml_index"] == 1 and recorded["cuda_index"] == 0 and recorded["name"] == fast.name
    assert meter.total().method["gpu"]["device"] is None      # totals go into shared PNGs: no device
    info = sysinfo.collect(nvml=nvml, device=meter.device)      # sysinfo names the same GPU
    assert (info["gpu_name"], info["gpu_index"], info["gpu_cuda_index"]) == (fast.name, 1, 0)
    assert info["power_limit_w"] == pytest.approx(700.0)


def test_meter_matches_by_pci_bus_id_and_says_when_nothing_matches(three_gpus, tmp_path):
    nvml, slow, fast, mid = three_gpus
    meter = make_meter(nvml, tmp_path, sync=None, pci_bus_id="0000:CA:00.0", cuda_index=1)
    assert (meter.device.name, meter.device.nvml_index, meter.device.matched_by) == ("NVIDIA L4", 2, "pci_bus_id")
    lost = make_meter(nvml, tmp_path, sync=None, uuid="deadbeef-0000-4000-8000-000000000000", cuda_index=0)
    with lost.window("generation") as w:
        nvml.run(2.0, watts=300.0, gpu=fast)
    assert_gpu_unavailable(w.result, "no NVML device has the UUID deadbeef")


def test_cpu_torch_device_meters_no_gpu_and_says_why(tmp_path):
    meter = EnergyMeter.for_torch_device("cpu", nvml=FakeNVML(), rapl_root=tmp_path)
    with meter.window("generation") as w:
        pass
    assert_gpu_unavailable(w.result, "figurine runs on the CPU here, so no GPU is metered")


# --- finding 3: a baseline measured for a stated time, before and after; net once on totals -------

def test_baseline_before_and_after_with_temperature_and_net_on_totals(exact, tmp_path):
    meter = make_meter(exact, tmp_path)
    t0 = exact.clock.now
    before = meter.measure_baseline(settle_s=2.0, seconds=3.0)
    assert exact.clock.now - t0 == pytest.approx(5.0)          # settle, then measure
    assert (before.label, before.seconds, before.settle_seconds) == ("before", 3.0, 2.0)
    assert before.watts == pytest.approx(60.0)
    assert before.temperature_c_start == before.temperature_c_end == 36.0
    assert COUNTER_METHOD in before.method and "after 2 s to settle" in before.method

    with meter.window("light") as light:                      # below the baseline: net < 0
        exact.run(2.0, watts=40.0)
    with meter.window("heavy") as heavy:
        exact.run(2.0, watts=300.0)
    assert light.result.gpu_joules_net == pytest.approx(80.0 - 120.0)  # not clipped to 0

    exact.active.idle_watts = 80.0                            # warmer after the run
    after = meter.measure_baseline(settle_s=2.0, seconds=3.0, label="after")
    assert after.watts == pytest.approx(80.0)
    total = meter.total()
    gross = 80.0 + 600.0
    assert total.gpu_joules_gross == pytest.approx(gross)
    assert total.baseline_watts == pytest.approx(70.0)        # mean of before and after
    assert total.gpu_joules_net == pytest.approx(gross - 70.0 * 4.0)   # once, on the totals
    summary = total.method["baseline"]
    assert summary["drift_watts"] == pytest.approx(20.0)
    assert [m["label"] for m in summary["measurements"]] == ["before", "after"]
    assert "above its measured baseline of 70 W" in total.format_line()


def test_baseline_needs_the_resolution_and_can_be_switched_off(gpu, tmp_path):
    meter = make_meter(gpu, tmp_path)
    short = meter.measure_baseline(settle_s=0.0, seconds=0.3)
    assert short.watts is None and "below" in short.reason
    with meter.window("generation") as w:
        gpu.run(2.0, 300.0)
    assert w.result.gpu_joules_net is None and "below" in w.result.reasons["gpu_joules_net"]

    off = EnergyMeter.from_config(SimpleNamespace(grid_intensity=480.0, measure_idle=False),
                                  nvml=gpu, clock=gpu.clock, sleep=gpu.sleep, rapl_root=tmp_path)
    t = gpu.clock.now
    b = off.measure_baseline()
    assert gpu.clock.now == t and b.watts is None and "energy.measure_idle = false" in b.reason

    given = make_meter(gpu, tmp_path, idle_watts=100.0)
    with given.window("y") as w2:
        gpu.run(2.0, 250.0)
    assert w2.result.gpu_joules_net == pytest.approx(w2.result.gpu_joules_gross - 200.0)


# --- finding 4: opening a window never spends time of its own --------------------------------------

def test_opening_a_window_never_waits_for_an_idle_measurement(exact, tmp_path):
    meter = make_meter(exact, tmp_path)             # measure_idle=True, as the config default
    t0 = exact.clock.now
    with meter.window("identity") as w:
        exact.run(1.0, 200.0)
    assert exact.clock.now - t0 == pytest.approx(1.0)    # the old meter slept 1 s in here
    assert w.result.seconds == pytest.approx(1.0)


# --- finding 5: loading is reported apart -------------------------------------------------------

def test_loading_is_reported_apart_from_the_run(exact, tmp_path):
    meter = make_meter(exact, tmp_path)
    with meter.window("load"):
        exact.run(6.0, 150.0)
    with meter.window("generation"):
        exact.run(2.0, 400.0)
    run = meter.total(exclude=("load",))
    assert run.gpu_joules_gross == pytest.approx(800.0) and run.seconds == pytest.approx(2.0)
    assert run.method["excluded_windows"] == ["load"]
    assert meter.total().gpu_joules_gross == pytest.approx(1700.0)


# --- finding 6: per-image energy over N images in one window; J/figure and J/package ---------------

def test_per_image_energy_is_one_window_divided_by_n(gpu, tmp_path):
    meter = make_meter(gpu, tmp_path)
    figure_windows = []
    with meter.window("package", images=4) as package:
        for _ in range(4):
            with meter.window("generation") as g:
                gpu.run(2.0, 350.0)
            with meter.window("vae_decode") as d:
                gpu.run(0.6, 400.0)
            with meter.window("packaging") as p:
                gpu.run(0.05, 80.0)
            figure_windows += [g.result, d.result]
    assert p.result.gpu_joules_gross is None                # one packaging window: too short
    per_package = package.result.per_image
    truth = 350.0 * 2.0 + 400.0 * 0.6 + 80.0 * 0.05
    assert per_package["gpu_joules_gross"] == pytest.approx(truth, abs=0.1 * 400.0 / 4)
    assert per_package["gpu_joules_gross"] == pytest.approx(package.result.gpu_joules_gross / 4)
    assert per_package["seconds"] == pytest.approx(2.65)
    figure = meter.combine("figure", figure_windows, images=4)  # J/figure: generation + decode
    assert figure.per_image["gpu_joules_gross"] == pytest.approx(940.0, abs=8 * 0.1 * 400.0 / 4)
    assert "for 4 images" in package.result.format_line()


# --- finding 7: RAPL package zones only ---------------------------------------------------------

def rapl_zone(parent: Path, zone: str, name: str, energy_uj: int, max_uj: int = 1_000_000_000) -> Path:
    d = parent / zone
    d.mkdir(parents=True)
    (d / "name").write_text(f"{name}\n")
    (d / "energy_uj").write_text(f"{energy_uj}\n")
    (d / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return d / "energy_uj"


@pytest.fixture
def rapl_tree(tmp_path):
    """/sys/class/powercap as Linux lays it out: zones under devices/virtual/powercap, and a link
    in the class directory for every zone, subzones and the MMIO copy of package-0 included."""
    devices = tmp_path / "devices" / "virtual" / "powercap"
    msr, mmio = devices / "intel-rapl", devices / "intel-rapl-mmio"
    f = {"pkg0": rapl_zone(msr, "intel-rapl:0", "package-0", 999_000_000),
         "psys": rapl_zone(msr, "intel-rapl:1", "psys", 5_000_000),
         "pkg1": rapl_zone(msr, "intel-rapl:2", "package-1", 10_000_000),
         "mmio": rapl_zone(mmio, "intel-rapl-mmio:0", "package-0", 1_000_000)}
    f["core"] = rapl_zone(msr / "intel-rapl:0", "intel-rapl:0:0", "core", 0)
    f["dram"] = rapl_zone(msr / "intel-rapl:0", "intel-rapl:0:1", "dram", 0)
    cls = tmp_path / "class" / "powercap"
    cls.mkdir(parents=True)
    for zone in (msr / "intel-rapl:0", msr / "intel-rapl:1", msr / "intel-rapl:2",
                 msr / "intel-rapl:0" / "intel-rapl:0:0", msr / "intel-rapl:0" / "intel-rapl:0:1",
                 mmio / "intel-rapl-mmio:0"):
        (cls / zone.name).symlink_to(zone)
    return cls, f


def test_rapl_sums_package_zones_only_not_psys_or_subzones(exact, rapl_tree):
    root, f = rapl_tree
    meter = make_meter(exact, root)
    with meter.window("generation") as w:
        exact.run(1.0, 300.0)
        f["pkg0"].write_text("2000000\n")    # wrapped past 1e9 uJ: 1 + 2 = 3 J
        f["pkg1"].write_text("14000000\n")   # 4 J
        f["psys"].write_text("30000000\n")   # 25 J: the whole platform, packages included
        f["core"].write_text("2000000\n")    # inside package-0
        f["dram"].write_text("1000000\n")    # beside it
        f["mmio"].write_text("4000000\n")    # the same package-0 through MMIO
    assert w.result.cpu_joules == pytest.approx(7.0)
    assert w.result.format_line().endswith("; CPU 7 J.")
    cpu = meter.describe()["cpu"]
    assert cpu["zones"] == ["package-0", "package-1"]
    assert any("psys" in z and "already contains the packages" in z for z in cpu["ignored"])


def test_rapl_with_only_a_psys_zone_says_so(tmp_path):
    rapl_zone(tmp_path, "intel-rapl:0", "psys", 5)
    r = Rapl(tmp_path)
    assert not r.available and "no package zone" in r.reason and "psys" in r.reason


def test_rapl_absent_or_unreadable_says_why(exact, tmp_path):
    meter = make_meter(exact, tmp_path)
    with meter.window("x") as w:
        exact.run(1.0, 300.0)
    assert w.result.cpu_joules is None
    assert "RAPL not present" in w.result.reasons["cpu_joules"]
    assert "CPU figure unavailable (RAPL not present" in w.result.format_line()

    bad = tmp_path / "bad"
    (bad / "intel-rapl:0" / "energy_uj").mkdir(parents=True)  # a directory, not a counter
    (bad / "intel-rapl:0" / "name").write_text("package-0\n")
    (bad / "intel-rapl:0" / "max_energy_range_uj").write_text("1000\n")
    assert "RAPL not readable" in Rapl(bad).reason


def test_rapl_permission_denied_says_so(tmp_path):
    """A real permission denial: as root (CI) the check runs in a child that drops to 'nobody'."""
    f = rapl_zone(tmp_path, "intel-rapl:0", "package-0", 5)
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
        for name in ("max_energy_range_uj", "name"):
            (tmp_path / "intel-rapl:0" / name).chmod(0o644)
        cmd = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"] + cmd
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    available, reason = proc.stdout.splitlines()
    assert available == "False"
    assert "permission denied" in reason and "energy_uj" in reason


# --- finding 8: no energy counter: say why without guessing, and poll power ----------------------

@pytest.mark.parametrize("arch, virtualization, says, never", [
    (4, 0, "this GPU (Pascal) is older than Volta", None),
    (7, 2, "which runs as a virtual GPU (vGPU)", "Volta"),
    (9, 0, "NVML gives no cause", "Volta"),
])
def test_gpu_without_counter_says_why_without_guessing(tmp_path, arch, virtualization, says, never):
    nvml = FakeNVML(counter=False, power=False, arch=arch, virtualization=virtualization)
    meter = make_meter(nvml, tmp_path)
    with meter.window("generation") as w:
        nvml.run(2.0, 300.0)
    assert_gpu_unavailable(w.result, says)
    assert "reading its power failed too" in w.result.reasons["gpu_joules_gross"]
    if never:
        assert never not in w.result.reasons["gpu_joules_gross"]


def test_gpu_without_counter_integrates_polled_power(tmp_path):
    """Real time and a real polling thread: 100 W for 0.5 s then 300 W for 0.1 s is about 80 J; the
    two edge samples alone would say (100 + 300) / 2 x 0.6 = 120 J."""
    nvml = FakeNVML(counter=False, arch=7, virtualization=2)
    card = nvml.active
    meter = EnergyMeter(nvml=nvml, rapl_root=tmp_path, poll_interval=0.02)
    assert "virtual GPU" in meter.counter_note and "power-polled estimate" in meter.gpu_method
    card.watts = 100.0
    with meter.window("generation") as w:
        t0 = time.monotonic()
        time.sleep(0.5)
        card.watts = 300.0
        low = time.monotonic() - t0      # measured, so a loaded machine's late wake-up is no error
        time.sleep(0.1)
    r = w.result
    truth = 100.0 * low + 300.0 * (r.seconds - low)
    assert r.gpu_joules_gross == pytest.approx(truth, abs=0.02 * 200.0 + 5.0)  # one poll of the step
    assert abs(r.gpu_joules_gross - 200.0 * r.seconds) > 25.0                   # not the edges alone
    assert r.gpu_method.startswith("power-polled estimate") and r.resolution_s == pytest.approx(0.2)
    line = r.format_line()
    assert "about " in line and "power-polled estimate" in line
    assert not any(t.name == "figurine-power-poll" for t in threading.enumerate())  # stops with the window
    meter.close()


# --- finding 9: temperature, clocks and power limit of the metered GPU ---------------------------

def test_device_state_is_read_from_the_metered_gpu_per_window(three_gpus, tmp_path):
    nvml, slow, fast, mid = three_gpus
    meter = make_meter(nvml, tmp_path, sync=None, uuid=mid.uuid, cuda_index=1)
    idle = meter.device_state()
    assert (idle["sm_clock_mhz"], idle["temperature_c"], idle["power_limit_w"]) == (345, 31.0, 72.0)
    with meter.window("image 1") as w:
        nvml.run(2.0, 70.0, gpu=mid)
    state = w.result.gpu_state                               # read at the window's end
    assert (state["sm_clock_mhz"], state["mem_clock_mhz"]) == (1980, 2619)
    assert state["temperature_c"] == 37.0 and state["power_w"] == pytest.approx(70.0)
    assert state["power_limit_w"] == pytest.approx(72.0)    # the L4's, not NVML device 0's
    nvml.sleep(1.0)
    assert meter.device_state()["sm_clock_mhz"] == 345


# --- unavailable, with reasons ------------------------------------------------------------------

def test_counter_going_backwards_is_unavailable(gpu, tmp_path):
    meter = make_meter(gpu, tmp_path)
    with meter.window("generation") as w:
        gpu.run(1.0, 300.0)
        gpu.active.reset_counter(1_000)  # driver reloaded: the counter restarts
        gpu.run(1.0, 300.0)
    assert_gpu_unavailable(w.result, "backwards")
    with meter.window("next") as w2:
        gpu.run(2.0, 300.0)
    assert w2.result.gpu_joules_gross > 0
    assert "backwards" in meter.total().reasons["gpu_joules_gross"]


def test_nvml_init_failure_says_no_gpu_is_found(tmp_path):
    meter = make_meter(FakeNVML(init_error="Driver Not Loaded"), tmp_path)
    with meter.window("generation") as w:
        pass
    assert_gpu_unavailable(w.result, "NVIDIA GPU not found, NVML could not start: Driver Not Loaded")
    line = meter.total().format_line()
    assert line == ("Energy: GPU figure unavailable (NVIDIA GPU not found, NVML could not start: Driver "
                    "Not Loaded); CPU figure unavailable (" + meter.rapl.reason + ").")
    assert "window" not in line


def test_missing_gpu_index_is_reported(gpu, tmp_path):
    meter = make_meter(gpu, tmp_path, device_index=3)
    with meter.window("generation") as w:
        pass
    assert_gpu_unavailable(w.result, "GPU 3 not found")


def test_real_pynvml_on_this_machine(tmp_path):
    """nvml=None uses the installed pynvml; without a driver its init fails, and says so."""
    meter = EnergyMeter(rapl_root=tmp_path)
    with meter.window("generation") as w:
        time.sleep(0.01)
    meter.close()
    if meter.gpu_available:  # a machine with a GPU and driver: a short window is flagged
        assert w.result.gpu_joules_gross is None and "resolution" in w.result.reasons["gpu_joules_gross"]
    else:
        assert_gpu_unavailable(w.result, "NVIDIA GPU not found")


def test_pynvml_not_installed(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` raise ImportError
    meter = EnergyMeter(rapl_root=tmp_path)
    with meter.window("generation") as w:
        pass
    assert_gpu_unavailable(w.result, "pynvml not installed")


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="grid_intensity"):
        EnergyMeter(grid_intensity=-5, nvml=FakeNVML())
    with pytest.raises(ValueError, match="images"):
        EnergyMeter(nvml=FakeNVML()).window("x", images=0)


# --- format and JSON ----------------------------------------------------------------------------

def test_format_line_and_dict_with_figures(exact, tmp_path):
    meter = make_meter(exact, tmp_path, grid_intensity=480.0)
    meter.measure_baseline(settle_s=0.0, seconds=2.0)
    with meter.window("generation"):
        exact.run(2.0, 240.0)
    total = meter.total()
    assert total.format_line() == (
        "Energy: 480 J on the GPU (360 J above its measured baseline of 60 W) in 2 s, 0.133 Wh, "
        "0.064 g CO2e; CPU figure unavailable (" + total.reasons["cpu_joules"] + ").")
    d = json.loads(json.dumps(total.to_dict()))
    assert d["gpu_joules_gross"] == pytest.approx(480.0)
    assert d["cpu_joules"] is None and "RAPL" in d["reasons"]["cpu_joules"]
    assert d["method"]["gpu"]["source"] == COUNTER_METHOD and "_raw_gpu_j" not in d


# --- sysinfo ------------------------------------------------------------------------------------

def test_sysinfo_reads_gpu_facts_and_explains_gaps(gpu):
    info = sysinfo.collect(0, nvml=gpu)
    assert info["gpu_name"] == "NVIDIA H100 80GB HBM3"     # bytes from NVML decoded
    assert info["gpu_matched_by"].startswith("nvml index") and info["gpu_pci_bus_id"] == "00000000:17:00.0"
    assert info["driver_version"] == "560.35.03"
    assert info["cuda_driver_version"] == "12.6"
    assert info["power_limit_w"] == pytest.approx(700.0)
    assert (info["sm_clock_mhz"], info["mem_clock_mhz"]) == (345, 2619)
    assert info["max_sm_clock_mhz"] is None and "Not Supported" in info["reasons"]["max_sm_clock_mhz"]
    assert gpu.shutdowns == 1
    assert info["python"] == "%d.%d.%d" % sys.version_info[:3]
    assert info["os"] and info["cpu_model"]
    import importlib.metadata as md
    assert info["versions"]["nvidia-ml-py"] == md.version("nvidia-ml-py")
    assert "clocks when collected (usually idle)" in sysinfo.format_lines(info)
    json.dumps(info)


def test_sysinfo_without_nvml_says_why_for_every_gpu_field():
    info = sysinfo.collect(0, nvml=FakeNVML(init_error="Driver Not Loaded"))
    for key in sysinfo.GPU_FIELDS:
        assert info[key] is None
        assert info["reasons"][key] == "NVML init failed: Driver Not Loaded"
    assert "GPU 0: unavailable (NVML init failed: Driver Not Loaded)" in sysinfo.format_lines(info)
    info = sysinfo.collect(0, nvml=FakeNVML(gpus=[]))
    assert "GPU 0 not found" in info["reasons"]["gpu_name"]


def test_sysinfo_reports_missing_packages(monkeypatch):
    monkeypatch.setitem(sysinfo.PACKAGES, "no-such-pkg", ["figurine-no-such-dist"])
    info = sysinfo.collect(0, nvml=FakeNVML())
    assert info["versions"]["no-such-pkg"] is None
    assert "not installed" in info["reasons"]["versions.no-such-pkg"]


def test_neither_module_imports_torch():
    """sync="torch" synchronises only once torch is loaded by someone else: never imports it."""
    code = ("import sys, figurine.energy, figurine.sysinfo as s; s.collect(); "
            "m = figurine.energy.EnergyMeter(sync='torch'); w = m.window('x'); w.__enter__(); "
            "w.__exit__(None, None, None); m.measure_baseline(0, 0.01); "
            "bad = [m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60,
                   env={**os.environ, "PYTHONPATH": str(REPO)})
