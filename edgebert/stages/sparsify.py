"""The ``sparsify`` stage: zero the smallest encoder weights (:func:`edgebert.compress.sparsify.sparsify_`;
optional, saves nothing on dense kernels: see the report's note)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edgebert.config import StageConfig
from edgebert.stages._shared import BEFORE_EXPORTS, change_in_place
from edgebert.stages.registry import Artifact, RunContext, StageResult, register_stage


class SparsifyConfig(StageConfig):
    """How many encoder weights to zero, ranked by magnitude."""

    kind: Literal["sparsify"] = "sparsify"
    sparsity: float = Field(0.5, gt=0, lt=1, description="Fraction of the encoder's Linear weights set to zero")
    scope: Literal["per-matrix", "global"] = Field(
        "per-matrix",
        description="per-matrix: the same fraction in every weight matrix; global: one magnitude threshold "
                    "across all encoder matrices (matrices with larger weights keep more)",
    )


@register_stage(SparsifyConfig, order=40, reads="torch", changes="torch",
                produces=("torch:sparse",), rules=(BEFORE_EXPORTS,),
                summary="Zero the smallest encoder weights (unstructured; no speed-up or smaller file on dense runtimes)")
def sparsify(art: Artifact, cfg: SparsifyConfig, ctx: RunContext) -> StageResult:
    from edgebert.compress.sparsify import sparsify_

    def change(loaded, _data):
        report = sparsify_(loaded.model, loaded.spec, **cfg.model_dump(exclude={"kind"}))
        report["config"] = cfg.model_dump(mode="json")  # the manifest's report names the stage's config
        return report

    return change_in_place(art, ctx, change, ("encoder_sparsity", "deflated_bytes_before", "deflated_bytes"))
