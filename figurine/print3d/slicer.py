"""Slicer: check a model with PrusaSlicer's command line and read its print estimate.

    from figurine.print3d.slicer import find_slicer, slice_model
    if find_slicer():
        s = slice_model("ada.3mf", gcode="ada.gcode")     # gcode=None: sliced in a temp folder
        print(s.time_text, s.filament_g, s.settings["layer_height"])

Debian packages PrusaSlicer (`apt-get install prusa-slicer`); its command line slices headless:
`prusa-slicer --load PROFILE --export-gcode MODEL --output OUT.gcode`. figurine's profile is
configs/print3d/prusaslicer.ini (0.4 mm nozzle, PLA, 0.2 mm layers, 3 perimeters, 15 % gyroid,
supports from the plate). PrusaSlicer runs with a private, empty settings folder (--datadir in a
temp folder) so that neither the user's own profiles nor figurine's runs change each other.

1. Run the slicer (a timeout; a failure becomes SlicerError with its last message line).
2. Read the estimate from the G-code's closing comments: "; estimated printing time (normal
   mode) = 1h 2m 3s", "; filament used [mm] / [cm3] / [g] = ...", and the settings used.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from figurine.config import CONFIG_DIR
from figurine.errors import FigurineError

PROFILE = CONFIG_DIR / "print3d" / "prusaslicer.ini"
NAMES = ("prusa-slicer", "PrusaSlicer", "prusa-slicer-console")
SETTINGS = ("layer_height", "nozzle_diameter", "perimeters", "fill_density", "fill_pattern", "support_material",
            "filament_type", "filament_diameter", "bed_shape", "max_print_height")
TIMEOUT_S = 600


class SlicerError(FigurineError):
    """PrusaSlicer could not slice the model (too tall for the bed, a broken mesh...)."""

    exit_code = 6


@dataclass
class Sliced:
    gcode: Path | None  # kept G-code, or None when sliced only to check
    seconds: int
    time_text: str  # as the slicer writes it: "2h 13m 5s"
    filament_mm: float
    filament_cm3: float
    filament_g: float
    version: str
    settings: dict = field(default_factory=dict)

    def line(self) -> str:
        s = self.settings
        support = "supports" if str(s.get("support_material")) == "1" else "no supports"
        return (f"sliced with {self.version} ({s.get('layer_height')} mm layers, {s.get('nozzle_diameter')} mm nozzle, "
                f"{s.get('filament_type')}, {s.get('fill_density')} infill, {support}): about {self.time_text}, "
                f"{self.filament_g:.1f} g of filament ({self.filament_mm / 1000:.2f} m)")

    def to_dict(self) -> dict:
        return {"seconds": self.seconds, "time": self.time_text, "filament_mm": self.filament_mm,
                "filament_cm3": self.filament_cm3, "filament_g": self.filament_g, "slicer": self.version,
                "settings": self.settings}


def find_slicer() -> str | None:
    """The PrusaSlicer executable on PATH, or None."""
    for name in NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def slice_model(model: str | Path, gcode: str | Path | None = None, profile: Path = PROFILE,
                timeout: float = TIMEOUT_S) -> Sliced:
    """Slice a 3MF or STL; see the module docstring."""
    exe = find_slicer()
    if exe is None:
        raise SlicerError("PrusaSlicer is not installed", hint="apt-get install prusa-slicer")
    with tempfile.TemporaryDirectory(prefix="figurine-slice-") as tmp:
        out = Path(gcode) if gcode else Path(tmp) / "model.gcode"
        # 1. Slice.
        cmd = [exe, "--datadir", str(Path(tmp) / "datadir"), "--load", str(profile),
               "--export-gcode", str(model), "--output", str(out)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                                  env={"PATH": "/usr/bin:/bin", "HOME": tmp, "LANG": "C.UTF-8"})
        except subprocess.TimeoutExpired:
            raise SlicerError(f"PrusaSlicer did not finish slicing {Path(model).name} within {timeout:.0f} s") from None
        if proc.returncode != 0 or not out.is_file():
            lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip() and "[trace]" not in ln]
            raise SlicerError(f"PrusaSlicer could not slice {Path(model).name}: {lines[-1] if lines else 'no message'}")
        # 2. The estimate.
        result = read_estimate(out)
        result.gcode = Path(gcode) if gcode else None
        return result


def read_estimate(gcode: Path) -> Sliced:
    """Print time, filament and settings from a PrusaSlicer G-code file's comments."""
    with open(gcode, "rb") as f:
        f.seek(0, 2)
        f.seek(max(0, f.tell() - 256 * 1024))
        tail = f.read().decode("utf-8", "replace")
    with open(gcode, "rb") as f:
        head = f.read(512).decode("utf-8", "replace")
    values: dict[str, str] = {}
    for m in re.finditer(r"^; ([^=\n]+?) = ([^\n]*)$", tail, re.M):
        values.setdefault(m.group(1).strip(), m.group(2).strip())
    time_text = values.get("estimated printing time (normal mode)", "")
    if not time_text:
        raise SlicerError(f"{gcode.name}: no print time estimate in the G-code")
    version = re.search(r"generated by (\S+ \S+|\S+)", head)
    return Sliced(
        gcode=gcode, seconds=parse_duration(time_text), time_text=time_text,
        filament_mm=_number(values.get("filament used [mm]")), filament_cm3=_number(values.get("filament used [cm3]")),
        filament_g=_number(values.get("filament used [g]")),
        version=(version.group(1).split("+")[0].replace("-", " ") if version else "PrusaSlicer"),
        settings={k: values[k] for k in SETTINGS if k in values},
    )


def parse_duration(text: str) -> int:
    """'1d 2h 3m 4s' -> seconds."""
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([dhms])", text))


def _number(value: str | None) -> float:
    try:
        return float(str(value).split(",")[0])
    except (TypeError, ValueError):
        return 0.0
