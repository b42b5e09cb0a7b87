"""Plan a compress run: the target profile and its recipe, typed, order-checked and resolved.

Every problem of a recipe is reported at once: a recipe with errors in two stages names both, one
line each, prefixed with the stage's position and kind (one ConfigError). Nothing heavy runs here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from edgebert.config import StageConfig, build_config, format_validation_error, load_yaml
from edgebert.errors import ConfigError
from edgebert.stages.registry import check_order, get_stage, parse_stage, resolve_for_model
from edgebert.targets import Recipe, TargetProfile, load_target, recipe_file

DEFAULT_TARGET = "cpu"


@dataclass
class Plan:
    """What a compress run will do: the target, the recipe and its resolved stage configs."""

    target: Any                      # TargetProfile
    recipe: str
    stages: list[Any]                # resolved StageConfigs
    search: Any = None               # the recipe's SearchSpace (None: the recipe has no search block)

    def to_yaml(self, seed: int = 0, model: str | None = None) -> str:
        """The recipe as it would run with run seed ``seed`` (each stage's seed shifted by it), as a
        recipe file that ``--recipe`` reads back (saved as ``<name>.yaml``)."""
        import yaml

        notes = [f"# recipe '{self.recipe}' resolved for target '{self.target.name}'"
                 + (f" and model '{model}' (its defaults, e.g. distillation's learning rates, are that model "
                    "family's)" if model else "")
                 + f"; to run it as --recipe FILE, save it as {self.recipe}.yaml (or set name: to the file's name)"]
        if seed:
            notes.append(f"# stage seeds include run seed {seed}: run this file with --seed 0 to use them as they are")
        body = {"name": self.recipe, "stages": [_with_run_seed(s, seed).model_dump(mode="json") for s in self.stages]}
        if self.search is not None:
            body["search"] = self.search.model_dump(mode="json")
        return "\n".join(notes) + "\n" + yaml.safe_dump(body, sort_keys=False)

    def for_model(self, config) -> Plan:
        """This plan with the stages' model-dependent defaults filled in for the input model's
        ``config`` (distillation's learning rates per model family)."""
        return Plan(self.target, self.recipe, resolve_for_model(self.stages, config), self.search)


def plan(target: str = DEFAULT_TARGET, recipe: str | os.PathLike | None = None) -> Plan:
    """Load the target profile and the recipe (``recipe`` overrides the target's), resolve the
    stages' target-dependent defaults and check their order. Nothing heavy runs."""
    profile = load_target(target)
    name, stages = load_recipe(recipe) if recipe is not None else target_recipe(profile)
    stages = resolve_stages(stages, profile)
    check_order(stages, f"recipe '{name}' for target '{profile.name}'")
    search = None
    if recipe is not None or isinstance(profile.recipe, str):
        search = _read_recipe(recipe_file(recipe if recipe is not None else profile.recipe))[1].search
    return Plan(profile, name, stages, search)


def _with_run_seed(cfg, seed: int):
    """``cfg`` with the run seed added to its own ``seed`` (prune's importance sample, distillation's
    shuffling and augmentation, fine-tuning), so ``--seed 1`` redraws every random choice of the recipe
    and seed 0 keeps the recipe's seeds as written. The manifest records the seed each stage used."""
    if not seed or "seed" not in type(cfg).model_fields:
        return cfg
    return cfg.model_copy(update={"seed": cfg.seed + seed})


def load_recipe(name_or_path: str | os.PathLike) -> tuple[str, list[StageConfig]]:
    """(name, typed stage configs) of a recipe name or file; errors name the file and the stage."""
    path, recipe = _read_recipe(recipe_file(name_or_path))
    return recipe.name, parse_stages(recipe.stages, str(path))


def _read_recipe(path):
    """(path, the recipe file's Recipe): keys checked, stages not yet typed."""
    data = load_yaml(path)
    if isinstance(data, list):  # a bare list of stages is a recipe too
        data = {"name": path.stem, "stages": data}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a recipe file is a mapping of keys (name, ...), got {type(data).__name__}")
    recipe = build_config(Recipe, data, source=str(path))
    if recipe.name != path.stem:
        raise ConfigError(f"{path}: name '{recipe.name}' must equal the file name ('{path.stem}').")
    return path, recipe


def _one_line(entry: Any, where: str, exc: ConfigError) -> str:
    """``exc`` about the stage ``entry`` as one line: ``where (kind): problem; problem``."""
    kind = entry.get("kind") if isinstance(entry, Mapping) else None
    try:
        get_stage(str(kind)).config.model_validate(dict(entry))
    except ValidationError as err:
        problems = [line.strip() for line in format_validation_error(err).splitlines()[1:]]
        return f"{where} ({kind}): " + "; ".join(problems)
    except ConfigError:
        pass
    return " ".join(str(exc).split())


def parse_stages(entries: list[Any], source: str) -> list[StageConfig]:
    """Typed configs of a list of stage mappings, order checked. The problems of every stage are
    reported together (one ConfigError, one line per stage); one problem keeps its own message."""
    stages, problems = [], []
    for i, entry in enumerate(entries, start=1):
        where = f"{source}: stage {i}"
        try:
            stages.append(parse_stage(entry, where))
        except ConfigError as exc:
            problems.append((entry, where, exc))
    if len(problems) == 1:
        raise problems[0][2]
    if problems:
        lines = "\n".join("  " + _one_line(*p) for p in problems)
        raise ConfigError(f"{source}: {len(problems)} stages are invalid:\n{lines}")
    check_order(stages, source)
    return stages


def target_recipe(target: TargetProfile) -> tuple[str, list[StageConfig]]:
    """The target's default recipe, typed and order-checked."""
    if isinstance(target.recipe, list):
        return f"{target.name} (inline)", parse_stages(target.recipe, f"{target.source or target.name}: recipe")
    try:
        path = recipe_file(target.recipe)
    except ConfigError as exc:  # name the profile and its key: the recipe name is the profile's mistake
        raise ConfigError(f"{target.source or target.name}: recipe: {exc}") from exc
    return load_recipe(path)


def resolve_stages(stages: list[StageConfig], target: TargetProfile) -> list[StageConfig]:
    """Fill each stage's target-dependent defaults (budgets, shapes, precision) from ``target``."""
    out = []
    for cfg in stages:
        stage = get_stage(cfg.kind)
        cfg = _with_max_length(cfg, target.shapes.max_length)
        out.append(stage.resolve(cfg, target) if stage.resolve else cfg)
    return out


def _with_max_length(cfg: StageConfig, max_length: int) -> StageConfig:
    """``cfg`` with the target's token cap where the stage has a ``max_length`` the recipe left unset
    (a model trained, scored and validated at the lengths the device will feed it)."""
    if "max_length" not in type(cfg).model_fields or "max_length" in cfg.model_fields_set:
        return cfg
    return type(cfg).model_validate({**cfg.model_dump(exclude_unset=True), "max_length": max_length})
