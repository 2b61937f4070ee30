"""Packaging templates: TOML files in configs/packaging/ (and the user's own), checked against the keys below.

    from figurine.packaging.template import list_templates, load_template
    list_templates()                      # ['classic-blister', 'collector-window', ...]
    t = load_template("classic-blister")  # or a path to your own .toml
    t["name"]["box"]                      # [x, y, w, h] in millimetres

A template is plain data: sizes and boxes in millimetres from the package's top-left corner,
colours as "#rrggbb", and a choice among the drawing styles the renderer knows (card art,
bubble or window, tray style, badge shapes). To make a new package, copy a template, change it,
and pass its path, or drop it in your own folder (~/.config/figurine/packaging/NAME.toml, or
$FIGURINE_HOME/packaging/; see figurine/data.py) to use it by NAME. Every key is listed with its
default in DEFAULTS; an unknown key or a wrong type is a ConfigError naming the file and the key,
for a user's template exactly as for a shipped one. A shipped name wins a clash.

A template is untrusted data, so every number is checked too: it must be finite (TOML allows
inf and nan) and within its range in RANGES, and whole where a count is meant. The ranges, in
millimetres unless said otherwise:
- page width and height 20 to 420 (A3's long side), bleed 0 to 10: at 300 dpi the print canvas
  is at most 5197 x 5197 px (0.43 GB as float RGBA). Measured here (2 cores): the largest page
  renders for print in about 4 s at 0.75 GB peak memory; with a page-sized, extruded name about
  15 s (the social picture well under a second either way);
- positions (a box's x and y, badge and art centres) -420 to 420; a box's width and height and
  other lengths (hang tab, side panel, paddings, insets) 0 to 420, a badge's size 1 to 420;
  radii 0 to 210 (enclosure.top_radius also -1: "as radius"); line widths 0 to 50;
- fractions 0 to 1 (opacities, scene.shadow, side_panel.view_width 0.05 to 1); text effects as
  fractions of the letter size: outline_width 0 to 0.3, extrude 0 to 0.15, shadow_offset -0.3 to 0.3;
- font weight 100 to 900 and width 62.5 to 100 (the font's axes), min_size 0.5 to 100 mm,
  max_lines 1 to 3, art_count 1 to 200, rotations -360 to 360 degrees;
- the side panel at most half the page width, the hang tab at most half the page height.
Edition texts (badge_text.edition, and an edition badge's own text) are filled in with
str.format: the only field allowed is {edition}, with an optional integer format of at most 12
characters' width, e.g. "No.\n{edition:04d}"; any other field ({0}, {}, {edition.real}) is a
ConfigError. Literal braces are written {{ and }}.
"""

from __future__ import annotations

import copy
import math
import re
import string
import tomllib
from pathlib import Path
from typing import Any

from figurine.data import config_dir, named_files
from figurine.errors import ConfigError, InputError

TEMPLATE_DIR = config_dir() / "packaging"

BOX = [0.0, 0.0, 0.0, 0.0]  # x, y, w, h in mm; w == 0 means "not drawn"

DEFAULTS: dict[str, Any] = {
    "label": "",
    "description": "",
    "page": {"width": 170.0, "height": 250.0, "radius": 3.0, "bleed": 3.0},
    # The social/story picture: a studio backdrop behind the package.
    "scene": {"top": "#e9e4dc", "bottom": "#b9b2a8", "shadow": 0.45},
    "hang_tab": {"width": 0.0, "height": 0.0, "radius": 5.0, "hole": "euro",  # euro | round | none
                 "hole_width": 26.0, "hole_y": 0.0},
    "side_panel": {"width": 0.0, "top": "#333333", "bottom": "#111111", "text": "",
                   "text_color": "#ffffff", "accent": "#c9a227", "view_width": 0.45},
    "card": {"top": "#1f4fd1", "bottom": "#0b1c5a", "middle": "",
             "art": "rays",  # rays | grid | stripes | halftone | spotlight | plain
             "art_color": "#ffffff", "art_opacity": 0.12, "art_center": [85.0, 120.0],
             "art_count": 18, "art_box": BOX,
             "border_color": "", "border_width": 0.0, "border_inset": 4.0,
             "panel_color": "", "panel_box": BOX, "panel_radius": 4.0},
    "enclosure": {"kind": "bubble",  # bubble (moulded blister) | window (box with film window)
                  "box": [25.0, 60.0, 120.0, 140.0], "radius": 10.0, "top_radius": -1.0,
                  "backing_top": "#ffffff", "backing_bottom": "#cccccc", "backing_art": "spotlight",
                  "frame_color": "", "frame_width": 0.0, "padding": 5.0},
    "tray": {"box": BOX, "kind": "bubbles",  # bubbles (one blister each) | insert (moulded tray)
             "color": "#dfe6ee", "label": "", "label_color": "#ffffff"},
    "brand": {"text": "FIGURINE", "sub": "", "box": BOX, "color": "#ffffff",
              "sub_color": "#ffffff", "weight": 900.0, "width": 75.0, "italic": False,
              "plate": "", "plate_radius": 3.0, "rotate": 0.0},
    "name": {"box": [10.0, 205.0, 150.0, 22.0], "color": "#ffffff", "outline": "#000000",
             "outline_width": 0.06, "shadow": "", "shadow_offset": [0.04, 0.06],
             "extrude": 0.0, "weight": 900.0, "width": 62.5, "italic": False,
             "case": "upper",  # upper | asis
             "max_lines": 2, "min_size": 4.0, "align": "center",
             "banner": "", "banner_box": BOX, "banner_shape": "rect",  # rect | slant | ribbon
             "banner_radius": 2.0, "banner_outline": ""},
    "tagline": {"box": [15.0, 228.0, 140.0, 8.0], "color": "#ffffff", "weight": 600.0,
                "width": 85.0, "italic": False, "case": "upper", "min_size": 2.2,
                "plate": "", "plate_radius": 2.0, "align": "center"},
    "barcode": {"box": [120.0, 232.0, 38.0, 14.0]},
    "badge": [],
    "badge_text": {"scale": "1/12\nSCALE", "age": "AGES\n14+", "ai": "AI-GENERATED\nIMAGE",
                   "edition": "No.\n{edition:04d}", "edition_none": "1st\nEDITION"},
}

BADGE_DEFAULTS: dict[str, Any] = {
    "kind": "text",  # scale | age | ai | edition | text
    "text": "", "center": [0.0, 0.0], "size": [20.0, 20.0],
    "shape": "circle",  # circle | starburst | pill | rect | tag
    "color": "#ffd23f", "text_color": "#111111", "outline": "", "rotate": 0.0,
    "weight": 800.0, "width": 75.0,
}

CHOICES = {
    ("hang_tab", "hole"): ("euro", "round", "none"),
    ("card", "art"): ("rays", "grid", "stripes", "halftone", "spotlight", "plain"),
    ("enclosure", "kind"): ("bubble", "window"),
    ("enclosure", "backing_art"): ("rays", "grid", "stripes", "halftone", "spotlight", "plain"),
    ("tray", "kind"): ("bubbles", "insert"),
    ("name", "case"): ("upper", "asis"),
    ("tagline", "case"): ("upper", "asis"),
    ("name", "banner_shape"): ("rect", "slant", "ribbon"),
    ("name", "align"): ("center", "left"),
    ("tagline", "align"): ("center", "left"),
    ("badge", "kind"): ("scale", "age", "ai", "edition", "text"),
    ("badge", "shape"): ("circle", "starburst", "pill", "rect", "tag"),
}

# The range of every number, by key ("section.key"; "badge.key" for any [[badge]]). Lists
# (boxes, centres, offsets) give one range per element. See the module text.
PAGE_MAX = 420.0  # mm: A3's long side
_POS = (-PAGE_MAX, PAGE_MAX)
_LEN = (0.0, PAGE_MAX)
_RADIUS = (0.0, PAGE_MAX / 2)
_LINE = (0.0, 50.0)
_UNIT = (0.0, 1.0)
_BOX = (_POS, _POS, _LEN, _LEN)
_WEIGHT = (100.0, 900.0)
_FONT_WIDTH = (62.5, 100.0)
_TURN = (-360.0, 360.0)
RANGES: dict[str, Any] = {
    "page.width": (20.0, PAGE_MAX), "page.height": (20.0, PAGE_MAX), "page.radius": _RADIUS,
    "page.bleed": (0.0, 10.0),
    "scene.shadow": _UNIT,
    "hang_tab.width": _LEN, "hang_tab.height": _LEN, "hang_tab.radius": _RADIUS,
    "hang_tab.hole_width": _LEN, "hang_tab.hole_y": _LEN,
    "side_panel.width": _LEN, "side_panel.view_width": (0.05, 1.0),
    "card.art_opacity": _UNIT, "card.art_center": (_POS, _POS), "card.art_count": (1, 200),
    "card.art_box": _BOX, "card.border_width": _LINE, "card.border_inset": _LEN,
    "card.panel_box": _BOX, "card.panel_radius": _RADIUS,
    "enclosure.box": _BOX, "enclosure.radius": _RADIUS, "enclosure.top_radius": (-1.0, PAGE_MAX / 2),
    "enclosure.frame_width": _LINE, "enclosure.padding": _LEN,
    "tray.box": _BOX,
    "brand.box": _BOX, "brand.weight": _WEIGHT, "brand.width": _FONT_WIDTH,
    "brand.plate_radius": _RADIUS, "brand.rotate": _TURN,
    "name.box": _BOX, "name.outline_width": (0.0, 0.3), "name.shadow_offset": ((-0.3, 0.3), (-0.3, 0.3)),
    "name.extrude": (0.0, 0.15), "name.weight": _WEIGHT, "name.width": _FONT_WIDTH,
    "name.max_lines": (1, 3), "name.min_size": (0.5, 100.0), "name.banner_box": _BOX,
    "name.banner_radius": _RADIUS,
    "tagline.box": _BOX, "tagline.weight": _WEIGHT, "tagline.width": _FONT_WIDTH,
    "tagline.min_size": (0.5, 100.0), "tagline.plate_radius": _RADIUS,
    "barcode.box": _BOX,
    "badge.center": (_POS, _POS), "badge.size": ((1.0, PAGE_MAX), (1.0, PAGE_MAX)),
    "badge.rotate": _TURN, "badge.weight": _WEIGHT, "badge.width": _FONT_WIDTH,
}
EDITION_KEYS = ("badge_text.edition",)  # and the text of a badge of kind "edition"
EDITION_MAX_WIDTH = 12

_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")

Template = dict  # a checked, defaults-filled template: plain nested dicts


def list_templates() -> list[str]:
    """Names of the templates shipped in configs/packaging/ and of the user's own (data.py)."""
    return list(named_files("packaging"))


def load_template(name: str) -> Template:
    """A template by name (shipped, or the user's own) or by path to a .toml file."""
    path = Path(name)
    if not (name.endswith(".toml") or path.is_file()):
        known = named_files("packaging")
        if name not in known:
            raise InputError(f"unknown template '{name}'",
                             hint=f"choose one of: {', '.join(known)}, or a .toml path")
        path = known[name]
    if not path.is_file():
        raise InputError(f"template file not found: {path}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from e
    t = _merge(DEFAULTS, data, path, "")
    t["badge"] = [_merge(BADGE_DEFAULTS, b, path, f"badge[{i}].")
                  for i, b in enumerate(data.get("badge", []))]
    _check_together(t, path)
    t["id"] = path.stem
    t["path"] = str(path)
    return t


def _merge(defaults: dict, data: Any, path: Path, prefix: str) -> dict:
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: '{prefix.rstrip('.')}' must be a table")
    out = copy.deepcopy({k: v for k, v in defaults.items() if k != "badge"})
    for key, value in data.items():
        full = f"{prefix}{key}"
        if key == "badge" and not prefix:
            if not isinstance(value, list):
                raise ConfigError(f"{path}: 'badge' must be an array of tables ([[badge]])")
            continue
        if key not in defaults:
            raise ConfigError(f"{path}: unknown key '{full}'")
        default = defaults[key]
        if isinstance(default, dict):
            out[key] = _merge(default, value, path, f"{full}.")
            continue
        out[key] = _check_value(value, default, path, full)
    return out


def _check_value(value: Any, default: Any, path: Path, key: str) -> Any:
    section_key = tuple(key.split(".")[-2:]) if "." in key else (key,)
    if section_key and section_key[0].startswith("badge["):
        section_key = ("badge", section_key[-1])
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, (int, float)):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok and isinstance(default, float) else value
    elif isinstance(default, list):
        ok = (isinstance(value, list) and len(value) == len(default)
              and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value))
        value = [float(v) for v in value] if ok else value
    else:
        ok = isinstance(value, str)
    if not ok:
        raise ConfigError(f"{path}: '{key}' has the wrong type (expected like {default!r})")
    range_key = ".".join(section_key)
    if range_key in RANGES:
        value = _check_range(value, RANGES[range_key], isinstance(default, int) and not isinstance(default, bool),
                             path, key)
    if range_key in EDITION_KEYS:
        check_edition_text(value, path, key)
    if isinstance(value, str) and _looks_like_colour_key(key) and value and not _HEX.match(value):
        raise ConfigError(f"{path}: '{key}' must be a colour like \"#1a2b3c\" or \"\", got {value!r}")
    allowed = CHOICES.get(section_key)
    if allowed and value not in allowed:
        raise ConfigError(f"{path}: '{key}' must be one of {', '.join(allowed)}, got {value!r}")
    return value


_COLOUR_KEYS = ("top", "bottom", "middle", "color", "outline", "shadow", "banner", "plate",
                "accent", "backing_top", "backing_bottom", "frame_color", "border_color",
                "panel_color", "art_color", "text_color", "sub_color", "label_color",
                "banner_outline")


def _looks_like_colour_key(key: str) -> bool:
    last = key.split(".")[-1]
    return last in _COLOUR_KEYS and not key.startswith("scene.shadow")


def _check_range(value: Any, bounds: Any, whole: bool, path: Path, key: str) -> Any:
    """Finite and within bounds (one (lo, hi) per element for a list); a count must be whole."""
    if isinstance(value, list):
        for i, (v, (lo, hi)) in enumerate(zip(value, bounds)):
            if not (math.isfinite(v) and lo <= v <= hi):
                raise ConfigError(f"{path}: '{key}[{i}]' must be a number from {lo:g} to {hi:g}, got {v!r}")
        return value
    lo, hi = bounds
    if not (math.isfinite(value) and lo <= value <= hi):
        raise ConfigError(f"{path}: '{key}' must be a number from {lo:g} to {hi:g}, got {value!r}")
    if whole:
        if value != int(value):
            raise ConfigError(f"{path}: '{key}' must be a whole number from {lo:g} to {hi:g}, got {value!r}")
        value = int(value)
    return value


def _check_together(t: Template, path: Path) -> None:
    """Limits that involve two keys; and the text of edition badges (known only with their kind)."""
    if t["side_panel"]["width"] > t["page"]["width"] / 2:
        raise ConfigError(f"{path}: 'side_panel.width' must be at most half of page.width "
                          f"({t['page']['width'] / 2:g}), got {t['side_panel']['width']:g}")
    if t["hang_tab"]["height"] > t["page"]["height"] / 2:
        raise ConfigError(f"{path}: 'hang_tab.height' must be at most half of page.height "
                          f"({t['page']['height'] / 2:g}), got {t['hang_tab']['height']:g}")
    for i, badge in enumerate(t["badge"]):
        if badge["kind"] == "edition" and badge["text"]:
            check_edition_text(badge["text"], path, f"badge[{i}].text")


def check_edition_text(text: str, path: Path | str, key: str) -> None:
    """ConfigError unless `text` formats with {edition} as its only field (see the module text)."""
    def refuse(why: str):
        return ConfigError(f"{path}: '{key}' {why}; only {{edition}} is filled in "
                           f"(e.g. \"No. {{edition:04d}}\"; write {{{{ and }}}} for a brace)")

    try:
        fields = [(name, spec, conv) for _, name, spec, conv in string.Formatter().parse(text)
                  if name is not None]
    except ValueError as e:
        raise refuse(f"is not a valid format ({e}): {text!r}") from None
    for name, spec, conv in fields:
        if name != "edition" or conv is not None:
            shown = "{" + name + (f"!{conv}" if conv else "") + (f":{spec}" if spec else "") + "}"
            raise refuse(f"has the format field {shown!r}")
        if "{" in spec:
            raise refuse(f"has a field inside a field: {text!r}")
        if any(int(n) > EDITION_MAX_WIDTH for n in re.findall(r"\d+", spec)):
            raise refuse(f"asks for a width over {EDITION_MAX_WIDTH} characters: {text!r}")
    try:
        text.format(edition=9999)
    except (ValueError, TypeError) as e:
        raise refuse(f"has a format that does not fit a number ({e})") from None


def edition_label(text: str, edition: int, path: Path | str = "template") -> str:
    """An edition badge's label: `text` with the number filled in (checked again: a Template is a
    plain dict, and one that did not come from load_template is checked here)."""
    check_edition_text(text, path, "edition text")
    return text.format(edition=edition)
