"""The targets and recipes shipped in the source tree: every one validates (with distill after prune in
every target's recipe), a bad target file is named with its key, and where the files are found."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from edgebert.errors import ConfigError
from edgebert.plan import load_recipe, target_recipe
from edgebert.targets import list_recipes, list_targets, load_target, recipes_dir, targets_dir

ROOT = Path(__file__).resolve().parents[1]


def test_required_targets_exist():
    assert {"cpu", "cpu-arm64", "server-gpu", "jetson", "mobile"} <= set(list_targets())


@pytest.mark.parametrize("name", list_targets())
def test_every_target_validates_and_uses_distill_after_prune(name):
    from edgebert.pipeline import plan

    the_plan = plan(name)
    assert the_plan.target.name == name
    kinds = [s.kind for s in the_plan.stages]
    assert "prune" in kinds and kinds.index("distill") == kinds.index("prune") + 1
    assert the_plan.target.budgets.accuracy_drop > 0 and the_plan.target.providers


@pytest.mark.parametrize("name", list_recipes())
def test_every_recipe_validates(name):
    recipe_name, stages = load_recipe(name)
    assert recipe_name == name and stages


def test_target_and_recipe_models_round_trip_json():
    for name in list_targets():
        t = load_target(name)
        assert type(t).model_validate_json(t.model_dump_json()) == t


def test_bad_target_file_names_file_and_key(tmp_path):
    src = yaml.safe_load((targets_dir() / "cpu.yaml").read_text())
    bad = dict(src, name="mine", colour="red")
    bad["shapes"] = dict(src["shapes"], min_length=500)
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigError) as err:
        load_target(str(path))
    text = str(err.value)
    assert str(path) in text and "colour: unknown key" in text and "shapes" in text
    wrong = tmp_path / "other.yaml"
    wrong.write_text(yaml.safe_dump(dict(src)))
    with pytest.raises(ConfigError, match="must equal the file name"):
        load_target(str(wrong))
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: broken\nruntime: [unclosed\n")
    with pytest.raises(ConfigError, match=r"broken.yaml:\d+"):
        load_target(str(broken))
    norecipe = tmp_path / "norecipe.yaml"
    norecipe.write_text(yaml.safe_dump(dict(src, name="norecipe", recipe="nosuch")))
    with pytest.raises(ConfigError) as err:
        target_recipe(load_target(str(norecipe)))
    text = str(err.value)
    assert str(norecipe) in text and "recipe: Unknown recipe 'nosuch'" in text and "cpu" in text


def test_targets_and_recipes_dirs_are_in_the_source_tree():
    assert targets_dir() == ROOT / "targets" and recipes_dir() == ROOT / "recipes"


def test_env_var_points_at_other_targets(tmp_path, monkeypatch):
    (tmp_path / "lab.yaml").write_text((targets_dir() / "cpu.yaml").read_text().replace("name: cpu", "name: lab"))
    monkeypatch.setenv("EDGEBERT_TARGETS", str(tmp_path))
    assert list_targets() == ["lab"] and load_target("lab").runtime == "onnxruntime"


def test_wheel_install_finds_targets_under_prefix_share(tmp_path, monkeypatch):
    import sys

    import edgebert.targets as targets

    share = tmp_path / "share" / "edgebert" / "targets"
    share.mkdir(parents=True)
    (share / "cpu.yaml").write_text((targets_dir() / "cpu.yaml").read_text())
    monkeypatch.setattr(targets, "_ROOT", tmp_path / "site-packages")  # no source tree beside the package
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    assert targets.targets_dir() == share and targets.list_targets() == ["cpu"]
