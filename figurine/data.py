"""Where figurine's data and weights live: the shipped configs, the user's own additions, weights.

    from figurine import data
    data.config_dir()                       # .../configs: default.toml, packaging/, poses/, arch/ ...
    data.config_file("tiny")                # a shipped config by name, or a path as given
    data.named_files("poses", ".json")      # {"hero": Path(...), ..., plus the user's own poses}
    data.user_dir()                         # $FIGURINE_HOME, else $XDG_CONFIG_HOME/figurine
    data.weights_root(None)                 # --weights, else $FIGURINE_WEIGHTS, else ./weights

Shipped data (config_dir), first match wins:
  1. A source checkout: when this package sits in a clone (its parent folder holds
     pyproject.toml and configs/default.toml), the clone's configs/ is used. That covers running
     from the clone, PYTHONPATH=clone and an editable install (`pip install -e .`).
  2. The installed package: the wheel ships configs/ as the package data `figurine.configs`
     (pyproject.toml maps it from the top-level configs/), found with importlib.resources. That
     covers `pip install .`, a built wheel and pipx, from any working directory.

The user's folder (user_dir) holds templates and poses added without editing the install:
    $FIGURINE_HOME, else $XDG_CONFIG_HOME/figurine, else ~/.config/figurine
        packaging/NAME.toml   a packaging template  (figurine pack/make --template NAME)
        poses/NAME.json       a pose preset          (figurine make --pose NAME, figurine poses)
  - NAME is the file's stem: letters, digits, '-' and '_', at most 64 characters. Nothing inside
    a file names another file; other names are skipped with a warning.
  - A file (or a folder on its way) that is a symlink leading out of the user folder is skipped
    with a warning; so is anything that is not a regular file.
  - A name clash with a shipped file: the shipped one wins and the user's file is skipped with a
    warning (copy the shipped file under a new name to change it). A name recorded in a run or
    a picture's metadata thus means the same template or pose on every machine.
  - A user file is read and checked by exactly the code that reads the shipped ones; an invalid
    one is an error naming the file when it is used or listed.

Weights root (weights_root): the --weights DIR argument, else $FIGURINE_WEIGHTS, else ./weights
relative to the working directory; '~' is expanded. Model paths in a config are relative to it.

Cache (cache_dir): $XDG_CACHE_HOME/figurine, else ~/.cache/figurine, for things figurine builds
for the user once (the tiny demo weights).
"""

from __future__ import annotations

import functools
import logging
import os
import re
from pathlib import Path

log = logging.getLogger(__name__)

# A user file's name: its stem. The shipped names follow the same rule.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
KINDS = {"packaging": ".toml", "poses": ".json"}  # what the user folder may add, by subfolder
MANIFEST = "weights.toml"  # the weights manifest sits among the configs but is not a config

_warned: set[str] = set()  # each skipped user file is reported once per process


# ---------------------------------------------------------------------------------------------
# Shipped data


def source_checkout() -> Path | None:
    """The clone this package runs from, or None when it is installed."""
    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file() and (root / "configs" / "default.toml").is_file():
        return root
    return None


@functools.lru_cache(maxsize=1)
def config_dir() -> Path:
    """The shipped configs/ folder: the clone's, else the installed package data."""
    # 1. A source checkout.
    root = source_checkout()
    if root is not None:
        return root / "configs"
    # 2. The installed package data (figurine/configs/ inside site-packages).
    from importlib.resources import files

    folder = files("figurine").joinpath("configs")
    if not isinstance(folder, Path):  # a zipped install: pip and pipx never make one
        raise RuntimeError("figurine must be installed as files (not zipped) to find its configs")
    return folder


def config_file(name_or_path: str | Path) -> Path:
    """A config file: a path as given, or, where no such file exists, a shipped config by name
    ("tiny" or "tiny.toml" -> configs/tiny.toml). Names only: nothing with a folder in it."""
    path = Path(name_or_path)
    text = str(name_or_path)
    if path.is_file() or "/" in text or "\\" in text:
        return path
    stem = text[:-5] if text.endswith(".toml") else text
    shipped = config_dir() / f"{stem}.toml"
    if NAME.fullmatch(stem) and shipped.name != MANIFEST and shipped.is_file():
        return shipped
    return path


def shipped_configs() -> list[str]:
    """Names of the shipped config files (default, tiny, bench-4step, ...)."""
    return sorted(p.stem for p in config_dir().glob("*.toml") if p.name != MANIFEST)


# ---------------------------------------------------------------------------------------------
# The user's folder


def user_dir() -> Path:
    """$FIGURINE_HOME, else $XDG_CONFIG_HOME/figurine, else ~/.config/figurine (read each call)."""
    home = os.environ.get("FIGURINE_HOME")
    if home:
        return Path(os.path.expanduser(home))
    xdg = os.environ.get("XDG_CONFIG_HOME")
    if xdg and os.path.isabs(xdg):  # the XDG spec: a relative value is invalid and ignored
        return Path(xdg) / "figurine"
    return Path.home() / ".config" / "figurine"


def user_files(kind: str) -> dict[str, Path]:
    """The user's own files of one kind ("packaging" or "poses"), by name; see the module text.

    1. List <user_dir>/<kind>/*<suffix>, in name order.
    2. Keep a file only if its stem is a valid name and its real path is a regular file inside
       the real user folder (no symlink out of it).
    """
    suffix = KINDS[kind]
    root = user_dir()
    folder = root / kind
    if not folder.is_dir():
        return {}
    try:
        real_root = root.resolve(strict=True)
        entries = sorted(folder.iterdir())
    except OSError as e:
        _warn(str(folder), f"cannot read {folder} ({e.strerror or e})")
        return {}
    if real_root == config_dir().resolve():  # pointed at the shipped configs: nothing to add
        return {}
    found = {}
    for path in entries:
        if path.suffix != suffix:
            continue
        if not NAME.fullmatch(path.stem):
            _warn(str(path), f"skipping {path}: a name is letters, digits, '-' and '_' (at most 64)")
            continue
        try:
            real = path.resolve(strict=True)
        except (OSError, RuntimeError):  # a dangling link or a link loop
            _warn(str(path), f"skipping {path}: it cannot be resolved")
            continue
        if not real.is_relative_to(real_root) or not real.is_file():
            _warn(str(path), f"skipping {path}: not a regular file inside {root}")
            continue
        found[path.stem] = real
    return found


def named_files(kind: str, shipped: Path | None = None) -> dict[str, Path]:
    """The shipped files of one kind plus the user's own, by name; a shipped name wins a clash.

    `shipped` replaces the shipped folder (configs/<kind>); tests and callers that pass their own
    folder get that folder only, without the user's additions.
    """
    suffix = KINDS[kind]
    own_folder = shipped is not None
    folder = Path(shipped) if own_folder else config_dir() / kind
    found = {p.stem: p for p in sorted(folder.glob(f"*{suffix}")) if p.is_file()}
    if own_folder:
        return found
    for name, path in user_files(kind).items():
        if name in found:
            _warn(str(path), f"skipping {path}: '{name}' is a built-in {_KIND_WORD[kind]}; "
                             "copy it under a new name to change it")
            continue
        found[name] = path
    return dict(sorted(found.items()))


_KIND_WORD = {"packaging": "template", "poses": "pose"}


def _warn(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warning(message)


# ---------------------------------------------------------------------------------------------
# Weights and cache


def weights_root(explicit: str | Path | None = None) -> Path:
    """--weights DIR, else $FIGURINE_WEIGHTS, else ./weights (relative to the working directory)."""
    root = explicit or os.environ.get("FIGURINE_WEIGHTS") or "weights"
    return Path(os.path.expanduser(str(root)))


def cache_dir() -> Path:
    """$XDG_CACHE_HOME/figurine, else ~/.cache/figurine: what figurine builds once for the user."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "figurine"
    return Path.home() / ".cache" / "figurine"
