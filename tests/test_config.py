"""Settings: defaults, layered files, --set overrides, and errors that name the bad key."""

from __future__ import annotations

from pathlib import Path

import pytest

from figurine.config import load_config
from figurine.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.toml"
    p.write_text(text)
    return p


def test_defaults_file_matches_the_dataclasses():
    cfg = load_config()
    assert cfg.generation.steps == 30 and (cfg.generation.width, cfg.generation.height) == (832, 1216)
    assert cfg.model.base == "sdxl-base" and cfg.runtime.memory == "auto"


def test_files_layer_and_set_wins(tmp_path):
    a = write(tmp_path, "[generation]\nsteps = 12\nguidance = 4\n")
    cfg = load_config([a], ["generation.steps=20", "model.base=/abs/model.safetensors"])
    assert cfg.generation.steps == 20
    assert cfg.generation.guidance == 4.0 and isinstance(cfg.generation.guidance, float)
    assert cfg.path("model.base") == Path("/abs/model.safetensors")
    assert cfg.sources[-1] == "--set model.base=/abs/model.safetensors"


def test_model_paths_are_relative_to_the_weights_root(monkeypatch, tmp_path):
    monkeypatch.setenv("FIGURINE_WEIGHTS", str(tmp_path / "env-root"))
    assert load_config().path("model.controlnet") == tmp_path / "env-root" / "controlnet-openpose-sdxl"
    assert load_config(weights=tmp_path / "flag").path("model.vae") == tmp_path / "flag" / "sdxl-vae-fp16-fix"


@pytest.mark.parametrize("text, key", [
    ("[generation]\nstepz = 3\n", "generation.stepz"),
    ("[generatoin]\nsteps = 3\n", "generatoin"),
])
def test_unknown_keys_in_a_file_are_named(tmp_path, text, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config([write(tmp_path, text)])


@pytest.mark.parametrize("line, fragment", [
    ("generation.steps=many", "must be int"),
    ("generation.width=100", "multiple of 8"),
    ("runtime.memory=lots", "must be one of"),
    ("nonsense", "key=value"),
    ("weights.root=/x", "unknown config key 'weights.root'"),
])
def test_bad_overrides_say_what_is_wrong(line, fragment):
    with pytest.raises(ConfigError, match=fragment):
        load_config([], [line])


def test_a_missing_or_broken_file_is_one_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config([tmp_path / "nope.toml"])
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config([write(tmp_path, "[generation\n")])
