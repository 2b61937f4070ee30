"""Where data lives (figurine/data.py): shipped configs, the user's own templates and poses, weights.

The user's folder is $FIGURINE_HOME here (a temp folder per test); the rules under test are the
ones the module text states: names only, no symlink out of the folder, a shipped name wins a
clash (with a warning), and a user file is checked by the same code as a shipped one.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
from PIL import Image

from figurine import data
from figurine.config import load_config
from figurine.errors import ConfigError, InputError
from figurine.packaging import list_templates, load_template
from figurine.pose import list_presets, load_preset
from tests.conftest import ROOT, run_figurine

SHIPPED = ROOT / "configs"
CLASSIC = (SHIPPED / "packaging" / "classic-blister.toml").read_text()
HERO = json.loads((SHIPPED / "poses" / "hero.json").read_text())


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """An empty user folder ($FIGURINE_HOME) with packaging/ and poses/, and fresh warnings."""
    folder = tmp_path / "figurine-home"
    (folder / "packaging").mkdir(parents=True)
    (folder / "poses").mkdir()
    monkeypatch.setenv("FIGURINE_HOME", str(folder))
    monkeypatch.setattr(data, "_warned", set())
    return folder


@pytest.fixture
def warnings_seen():
    """The warnings figurine.data logs (whatever the figurine logger's own handlers are)."""
    seen: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: seen.append(record.getMessage())
    logger = logging.getLogger("figurine.data")
    logger.addHandler(handler)
    yield seen
    logger.removeHandler(handler)


def write_pose(path: Path, **changes) -> Path:
    pose = {**HERO, **changes}
    pose.pop("name", None)
    path.write_text(json.dumps({**pose, **({"name": changes["name"]} if "name" in changes else {})}))
    return path


def raised_up_hand() -> dict:
    points = dict(HERO["keypoints"])
    points["r_wrist"] = [0.33, 0.05]
    return points


# -- shipped data --------------------------------------------------------------------------------
def test_a_clone_uses_its_own_configs_folder():
    from figurine import config, pose, random_weights, weights
    from figurine.packaging import template

    assert data.source_checkout() == ROOT and data.config_dir() == SHIPPED
    for path in (config.DEFAULT_CONFIG, template.TEMPLATE_DIR, pose.POSES_DIR, weights.MANIFEST,
                 random_weights.ARCH_DIR, random_weights.TINY_ARCH_DIR):
        assert path.exists() and path.is_relative_to(SHIPPED), path


def test_a_shipped_config_can_be_named_and_a_real_file_wins(tmp_path, monkeypatch):
    def settings(files):
        return {k: v for k, v in load_config(files).to_dict().items() if k != "sources"}

    assert settings(["tiny"]) == settings(["tiny.toml"]) == settings([SHIPPED / "tiny.toml"])
    assert settings(["tiny"]) != settings([])
    monkeypatch.chdir(tmp_path)
    Path("tiny").write_text("[generation]\nwidth = 512\n")
    assert load_config(["tiny"]).generation.width == 512
    with pytest.raises(ConfigError) as e:
        load_config(["weights"])  # the manifest sits among the configs but is not one
    assert "config file not found: weights" in str(e.value) and "tiny" in str(e.value)


def test_weights_root_is_the_flag_then_the_variable_then_dot_weights(monkeypatch, tmp_path):
    monkeypatch.delenv("FIGURINE_WEIGHTS", raising=False)
    assert load_config().weights_root == Path("weights")
    monkeypatch.setenv("FIGURINE_WEIGHTS", "~/models")
    assert load_config().weights_root == Path(os.path.expanduser("~/models"))
    assert load_config(weights=tmp_path).weights_root == tmp_path
    assert load_config().path("model.controlnet") == Path(os.path.expanduser("~/models/controlnet-openpose-sdxl"))


# -- where the user's folder is ------------------------------------------------------------------
def test_user_folder_is_figurine_home_then_xdg_then_dot_config(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "ada"))
    monkeypatch.delenv("FIGURINE_HOME", raising=False)
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    assert data.user_dir() == tmp_path / "ada" / ".config" / "figurine"
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/ignored")  # the XDG spec: only absolute paths count
    assert data.user_dir() == tmp_path / "ada" / ".config" / "figurine"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert data.user_dir() == tmp_path / "xdg" / "figurine"
    monkeypatch.setenv("FIGURINE_HOME", str(tmp_path / "mine"))
    assert data.user_dir() == tmp_path / "mine"


# -- the user's templates and poses --------------------------------------------------------------
def test_a_user_template_is_listed_loaded_and_boxes_a_figure(home, tmp_path):
    (home / "packaging" / "green-box.toml").write_text(
        CLASSIC.replace('top = "#e8303a"', 'top = "#10a040"').replace('text = "FIGURINE"', 'text = "GREENCO"'))
    shipped = sorted(p.stem for p in (SHIPPED / "packaging").glob("*.toml"))
    assert list_templates() == sorted(shipped + ["green-box"])
    t = load_template("green-box")
    assert t["id"] == "green-box" and t["brand"]["text"] == "GREENCO"

    from figurine.example import figure

    figure(384, 512).save(tmp_path / "figure.png")
    proc = run_figurine("pack", tmp_path / "figure.png", "--name", "Ada", "--template", "green-box",
                        "-o", tmp_path / "green.png", cwd=tmp_path, env={"FIGURINE_HOME": str(home)})
    assert proc.returncode == 0, proc.stderr
    with Image.open(tmp_path / "green.png") as im:
        assert im.size == (1080, 1350)


def test_a_user_pose_is_listed_loaded_and_shown_by_figurine_poses(home, tmp_path):
    write_pose(home / "poses" / "hand-up.json", description="One hand raised high: asking a question.",
               keypoints=raised_up_hand())
    names = [p.name for p in list_presets()]
    assert names == sorted([p.stem for p in (SHIPPED / "poses").glob("*.json")] + ["hand-up"])
    mine, hero = load_preset("hand-up"), load_preset("hero")
    assert mine.name == "hand-up" and mine.keypoints != hero.keypoints

    proc = run_figurine("poses", cwd=tmp_path, env={"FIGURINE_HOME": str(home)})
    assert proc.returncode == 0, proc.stderr
    assert any(line.split()[0] == "hand-up" and "asking a question" in line for line in proc.stdout.splitlines())


def test_a_shipped_name_wins_a_clash_and_the_user_is_told(home, tmp_path, warnings_seen):
    (home / "packaging" / "classic-blister.toml").write_text(CLASSIC.replace('text = "FIGURINE"', 'text = "MINE"'))
    write_pose(home / "poses" / "hero.json", description="Not the shipped hero.", keypoints=raised_up_hand())
    assert list_templates().count("classic-blister") == 1
    assert load_template("classic-blister")["brand"]["text"] == "FIGURINE"
    assert load_preset("hero").keypoints == load_preset("hero", SHIPPED / "poses").keypoints
    assert any("classic-blister.toml" in w and "built-in template" in w for w in warnings_seen), warnings_seen

    proc = run_figurine("poses", cwd=tmp_path, env={"FIGURINE_HOME": str(home)})
    assert proc.returncode == 0, proc.stderr
    hero_lines = [line for line in proc.stdout.splitlines() if line.split()[0] == "hero"]
    assert len(hero_lines) == 1 and "Not the shipped hero" not in hero_lines[0]
    warning = [line for line in proc.stderr.splitlines() if line.startswith("figurine: warning:")]
    assert len(warning) == 1 and "hero.json" in warning[0] and "new name" in warning[0], proc.stderr


@pytest.mark.parametrize("edit, message", [
    (('radius = 5', 'radius = 5\nsparkle = true'), "unknown key 'page.sparkle'"),
    (('top = "#e8303a"', 'top = "red"'), "must be a colour"),
])
def test_a_user_template_is_checked_like_a_shipped_one(home, edit, message):
    path = home / "packaging" / "broken.toml"
    path.write_text(CLASSIC.replace(*edit, 1))
    with pytest.raises(ConfigError, match=message) as by_name:
        load_template("broken")
    with pytest.raises(ConfigError) as by_path:
        load_template(str(path))
    assert str(by_name.value) == str(by_path.value)


@pytest.mark.parametrize("change, message", [
    ({"keypoints": {**HERO["keypoints"], "nose": [1.5, 0.1]}}, "within 0..1"),
    ({"aspect": "wide"}, "'aspect' must be"),
    ({"name": "hero"}, "'name' is 'hero'"),
])
def test_a_user_pose_is_checked_like_a_shipped_one(home, tmp_path, change, message):
    write_pose(home / "poses" / "wonky.json", **change)
    with pytest.raises(InputError, match=message) as as_user:
        load_preset("wonky")
    shipped_like = tmp_path / "shipped-poses"
    shipped_like.mkdir()
    write_pose(shipped_like / "wonky.json", **change)
    with pytest.raises(InputError) as as_shipped:
        load_preset("wonky", shipped_like)
    assert str(as_user.value).split(": ", 1)[1] == str(as_shipped.value).split(": ", 1)[1]


def test_symlinks_out_of_the_user_folder_are_not_followed(home, tmp_path, warnings_seen):
    outside = tmp_path / "outside"
    (outside / "poses").mkdir(parents=True)
    (outside / "escape.toml").write_text(CLASSIC)
    write_pose(outside / "poses" / "far.json")
    (home / "packaging" / "escape.toml").symlink_to(outside / "escape.toml")
    # A link that stays inside the folder is fine.
    (home / "own").mkdir()
    (home / "own" / "inside.toml").write_text(CLASSIC)
    (home / "packaging" / "inside.toml").symlink_to(home / "own" / "inside.toml")
    assert "escape" not in list_templates() and "inside" in list_templates()
    with pytest.raises(InputError, match="unknown template 'escape'"):
        load_template("escape")
    assert any("escape.toml" in w for w in warnings_seen)
    # The poses folder itself pointing outside: nothing in it is used.
    (home / "poses").rmdir()
    (home / "poses").symlink_to(outside / "poses")
    assert "far" not in [p.name for p in list_presets()]
    with pytest.raises(InputError, match="unknown pose 'far'"):
        load_preset("far")


def test_only_plain_names_are_used(home, warnings_seen):
    for name in ("my box.toml", "two.dots.toml", "-dash-first.toml"):
        (home / "packaging" / name).write_text(CLASSIC)
    (home / "packaging" / "Fine_Name-2.toml").write_text(CLASSIC)
    (home / "packaging" / "not-a-template.txt").write_text("x")
    added = set(list_templates()) - {p.stem for p in (SHIPPED / "packaging").glob("*.toml")}
    assert added == {"Fine_Name-2"}
    assert len(warnings_seen) == 3
    for bad in ("../packaging/hero", "poses/hero", "/etc/passwd", ""):
        with pytest.raises(InputError, match="unknown pose"):
            load_preset(bad)
