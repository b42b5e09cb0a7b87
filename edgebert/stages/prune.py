"""The ``prune`` stage: remove attention heads, FFN neurons and whole layers ranked by measured importance
(:func:`edgebert.compress.prune.prune`), checked against the model before on the dev split."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from edgebert.config import StageConfig
from edgebert.errors import ConfigError
from edgebert.stages._shared import BEFORE_EXPORTS, BEFORE_SPARSIFY, change_in_place
from edgebert.stages.registry import Artifact, RunContext, StageResult, register_stage


class PruneConfig(StageConfig):
    """What to remove. Fractions are rounded to whole heads / neurons per layer."""

    kind: Literal["prune"] = "prune"
    heads: float = Field(0.0, ge=0, lt=1, description="Fraction of attention heads removed")
    ffn: float = Field(0.0, ge=0, lt=1, description="Fraction of FFN neurons removed (same count in every layer)")
    layers: int | list[int] | None = Field(
        None,
        description="Number of whole layers to drop (chosen by measured importance), or the explicit indices to keep",
    )
    scope: Literal["global", "per-layer"] = Field(
        "per-layer",
        description="Rank heads across all layers (global) or remove the same fraction in each layer (per-layer)",
    )
    samples: int = Field(256, ge=8, description="Training examples used to measure importance")
    batch_size: int = Field(32, ge=1, description="Examples per forward/backward pass while measuring importance")
    max_length: int = Field(128, ge=8, le=8192, description="Token cap per example (longer texts are truncated)")
    seed: int = Field(0, description="Seed for choosing the importance sample")

    @field_validator("layers")
    @classmethod
    def _check_layers(cls, value):
        if isinstance(value, int) and value < 0:
            raise ValueError("layers as a number counts the layers to drop; it must be >= 0")
        if isinstance(value, list):
            if not value:
                raise ValueError("layers as a list names the layers to keep; it must not be empty")
            if any(i < 0 for i in value) or len(set(value)) != len(value):
                raise ValueError(f"layers to keep must be distinct indices >= 0, got {value}")
        return value


def _check_prune(cfg: PruneConfig, shape: dict[str, Any]) -> None:
    """Layer counts and indices against the model's layers (before any work); updates ``shape``."""
    n = shape["num_hidden_layers"]
    shape.setdefault("teacher_layers", n)  # the model before the first prune teaches distill
    if isinstance(cfg.layers, int):
        if cfg.layers >= n:
            raise ConfigError(f"layers: {cfg.layers} would drop every layer of a {n}-layer model; "
                              f"drop at most {n - 1}.")
        shape["num_hidden_layers"] = n - cfg.layers
    elif isinstance(cfg.layers, list):
        bad = [i for i in cfg.layers if i >= n]
        if bad:
            raise ConfigError(f"layers: keeps {bad}, but the model has {n} layers (0..{n - 1}).")
        shape["num_hidden_layers"] = len(cfg.layers)


@register_stage(PruneConfig, order=20, reads="torch", changes="torch", check=_check_prune,
                produces=("torch:pruned",), rules=(BEFORE_EXPORTS, BEFORE_SPARSIFY),
                summary="Remove attention heads, FFN neurons and whole layers ranked by measured importance")
def prune(art: Artifact, cfg: PruneConfig, ctx: RunContext) -> StageResult:
    from edgebert.compress.prune import prune as run_prune

    def change(loaded, data):
        report = run_prune(loaded.model, loaded.tokenizer, loaded.spec, data.split("train"),
                           **cfg.model_dump(exclude={"kind"}))
        report["config"] = cfg.model_dump(mode="json")  # the manifest's report names the stage's config
        return report

    return change_in_place(art, ctx, change, ("parameters_before", "parameters_after"), cfg.max_length)
