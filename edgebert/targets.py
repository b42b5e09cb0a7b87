"""Target profiles (``targets/*.yaml``) and recipes (``recipes/*.yaml``).

A target profile describes one class of device: the runtime and precision the artifact is built
for, the execution providers, the input shapes (batch, min / opt / max sequence length), the
budgets (accuracy drop, latency, memory, size) and the default recipe. A recipe is an ordered list
of stage configs. Both are YAML files whose unknown keys are errors naming the file and the key.

Profiles and recipes are looked up by name in ``$EDGEBERT_TARGETS`` / ``$EDGEBERT_RECIPES`` when set,
else in the ``targets/`` and ``recipes/`` folders of the edgebert source tree (or their copies under
``<prefix>/share/edgebert/`` in a wheel install); any place a name is accepted also takes a path to
a YAML file.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from edgebert.config import StageConfig, build_config, load_yaml
from edgebert.errors import ConfigError, UnknownTargetError

_ROOT = Path(__file__).resolve().parent.parent
RUNTIMES = ("onnxruntime", "tensorrt", "torchscript", "pytorch")


def source_dir(name: str, env: str | None = None) -> Path:
    """$env, else the source tree's folder (editable installs, a checkout), else the copy a wheel
    installs under <prefix>/share/edgebert/ (pyproject's data-files)."""
    if env and os.environ.get(env):
        return Path(os.environ[env])
    here = _ROOT / name
    if here.is_dir():
        return here
    return Path(sys.prefix) / "share" / "edgebert" / name


def targets_dir() -> Path:
    """Where named target profiles live."""
    return source_dir("targets", "EDGEBERT_TARGETS")


def recipes_dir() -> Path:
    """Where named recipes live."""
    return source_dir("recipes", "EDGEBERT_RECIPES")


class Shapes(StageConfig):
    """Input shapes the artifact is built and checked for (TensorRT optimization profiles use them)."""

    batch: int = Field(1, ge=1, description="Batch size the target usually runs (the optimum)")
    max_batch: int = Field(1, ge=1, description="Largest batch the deployed model must accept")
    min_length: int = Field(1, ge=1, description="Shortest input in tokens (special tokens included)")
    opt_length: int = Field(64, ge=1, description="Typical input length in tokens (tuning optimum)")
    max_length: int = Field(
        128, ge=8, le=8192,
        description="Longest input in tokens; longer texts are truncated. Also the token cap of every stage "
                    "whose recipe entry does not set its own max_length (training, scoring, validation)")

    @model_validator(mode="after")
    def _order(self):
        if not self.min_length <= self.opt_length <= self.max_length:
            raise ValueError(f"need min_length <= opt_length <= max_length; got {self.min_length}, "
                             f"{self.opt_length}, {self.max_length}")
        if self.batch > self.max_batch:
            raise ValueError(f"batch ({self.batch}) is larger than max_batch ({self.max_batch})")
        return self

    def trt(self) -> dict[str, tuple[int, int]]:
        """min / opt / max (batch, sequence) for a TensorRT optimization profile."""
        return {"min": (1, self.min_length), "opt": (self.batch, self.opt_length),
                "max": (self.max_batch, self.max_length)}


class Budgets(StageConfig):
    """What the artifact must stay within on the target (None: no budget)."""

    accuracy_drop: float = Field(
        1.0, ge=0, description="Largest dev accuracy drop in points: of the artifact from the fine-tuned fp32 model "
                               "(checked in the manifest's summary, warned by compress) and of quantization from its "
                               "input (quantize keeps sensitive layers in float until it holds)")
    latency_ms: float | None = Field(
        None, gt=0, description="Median latency at batch 1 in milliseconds, on the device (checked by edgebert bench "
                                "there, on real sentences at their own lengths)")
    memory_mb: float | None = Field(
        None, gt=0, description="Peak process memory while serving, in MiB, on the device (checked by edgebert bench)")
    size_mb: float | None = Field(
        None, gt=0, description="Deployed model file size, in MiB (checked in the manifest's summary, warned by compress)")


class TargetProfile(StageConfig):
    """One device class: runtime, precision, providers, shapes, budgets and the default recipe."""

    name: str = Field(description="Profile name; must equal the file name without .yaml")
    description: str = Field(description="One line: the device class this profile is for")
    device: str = Field(description="Hardware examples, e.g. 'Jetson Orin Nano / NX / AGX'")
    arch: Literal["x86_64", "aarch64", "any"] = Field(description="CPU architecture of the device")
    runtime: Literal["onnxruntime", "tensorrt", "torchscript", "pytorch"] = Field(
        description="What runs the deployed model on the device")
    fallback_runtime: Literal["onnxruntime", "torchscript", "pytorch"] | None = Field(
        None, description="What runs it where the main runtime is absent (e.g. no TensorRT)")
    precision: Literal["fp32", "fp16", "int8"] = Field(description="Numeric precision of the deployed model")
    providers: list[str] = Field(
        default_factory=lambda: ["CPUExecutionProvider"],
        description="onnxruntime execution providers, in preference order")
    threads: int | None = Field(None, ge=1, description="Intra-op threads at inference (None: the runtime's default)")
    shapes: Shapes = Field(default_factory=Shapes, description="Input shapes (batch and sequence lengths)")
    budgets: Budgets = Field(default_factory=Budgets, description="Accuracy, latency, memory and size budgets")
    recipe: str | list[dict[str, Any]] = Field(
        description="Default recipe: a name in recipes/, a path to a recipe file, or an inline list of stages")
    notes: list[str] = Field(default_factory=list, description="What a user of this target should know")
    source: str | None = Field(None, description="File the profile was read from (filled in on load)")


class SearchSpace(StageConfig):
    """The shapes ``compress --search`` tries in place of the recipe's ``prune`` stage (see :mod:`edgebert.search`).

    Each list is the levels of one lever, from least to most removed; a shape takes one level of each."""

    layers: list[int] = Field([0, 1, 2, 3], description="Whole layers dropped (by measured importance, the top "
                                                         "layer never dropped): the levels tried")
    heads: list[float] = Field([0.0, 0.25, 0.5, 0.75], description="Fractions of attention heads removed")
    ffn: list[float] = Field([0.0, 0.25, 0.5, 0.75], description="Fractions of FFN neurons removed")
    budget_minutes: float = Field(240.0, gt=0, description="Wall-clock budget of the whole search (--search-budget); "
                                                           "no candidate starts that its estimated time would overrun")
    proxy_rows: int = Field(512, ge=16, description="Dev texts the untrained-shape ranking (KL to the fine-tuned "
                                                    "model after pruning, before training) is measured on")
    latency_rows: int = Field(64, ge=4, description="Dev texts each shape is timed on, one at a time (batch 1)")
    latency_rounds: int = Field(3, ge=1, description="Rounds over those texts per timing (the median is kept)")
    min_gain: float = Field(0.03, ge=0, lt=1, description="A step must save at least this share of the current "
                                                         "shape's latency to join the chain")

    @model_validator(mode="after")
    def _levels(self):
        for name in ("layers", "heads", "ffn"):
            levels = getattr(self, name)
            if not levels or levels[0] != 0:
                raise ValueError(f"{name}: the levels start at 0 (the unpruned shape), got {levels}")
            if any(b <= a for a, b in zip(levels, levels[1:])):
                raise ValueError(f"{name}: the levels must increase, got {levels}")
        if any(not 0 <= f < 1 for f in self.heads + self.ffn):
            raise ValueError("heads and ffn levels are fractions removed, each in [0, 1)")
        if any(n < 0 for n in self.layers):
            raise ValueError("layers levels count the layers dropped, each >= 0")
        return self


class Recipe(StageConfig):
    """An ordered list of stage configs."""

    name: str = Field(description="Recipe name; must equal the file name without .yaml")
    description: str = Field("", description="What the recipe does and why")
    stages: list[dict[str, Any]] = Field(description="Stage configs in order, each with a 'kind'")
    search: SearchSpace | None = Field(
        None, description="The shapes compress --search tries in place of the prune stage's (default: SearchSpace())")


def _named(name_or_path: str | os.PathLike, folder: Path) -> Path | None:
    s = os.fspath(name_or_path)
    p = Path(s)
    if s.endswith((".yaml", ".yml")) or os.sep in s or p.is_file():
        return p
    candidate = folder / f"{s}.yaml"
    return candidate if candidate.is_file() else None


def list_targets() -> list[str]:
    """Names of the profiles in :func:`targets_dir`."""
    return sorted(p.stem for p in targets_dir().glob("*.yaml"))


def list_recipes() -> list[str]:
    """Names of the recipes in :func:`recipes_dir`."""
    return sorted(p.stem for p in recipes_dir().glob("*.yaml"))


def _mapping(data: Any, path: Path, what: str) -> dict:
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a {what} file is a mapping of keys (name, ...), got {type(data).__name__}")
    return data


def load_target(name_or_path: str | os.PathLike) -> TargetProfile:
    """The profile called ``name_or_path`` (or read from that file)."""
    path = _named(name_or_path, targets_dir())
    if path is None or not path.is_file():
        known = ", ".join(list_targets()) or "none"
        raise UnknownTargetError(
            f"Unknown target '{os.fspath(name_or_path)}'. Known: {known}. See: edgebert targets "
            "(or pass a path to a target .yaml file)"
        )
    data = _mapping(load_yaml(path), path, "target")
    profile = build_config(TargetProfile, data, source=str(path))
    if profile.name != path.stem:
        raise ConfigError(f"{path}: name '{profile.name}' must equal the file name ('{path.stem}').")
    return profile.model_copy(update={"source": str(path)})


def recipe_file(name_or_path: str | os.PathLike) -> Path:
    """The file of a recipe name (in :func:`recipes_dir`) or path; unknown ones list the known."""
    path = _named(name_or_path, recipes_dir())
    if path is None or not path.is_file():
        known = ", ".join(list_recipes()) or "none"
        raise ConfigError(f"Unknown recipe '{os.fspath(name_or_path)}'. Known: {known} (or pass a path to a recipe .yaml file).")
    return path


def describe(target: TargetProfile) -> str:
    """One line for ``edgebert targets``."""
    recipe = target.recipe if isinstance(target.recipe, str) else "inline"
    return f"{target.runtime} {target.precision}, recipe {recipe}: {target.description}"
