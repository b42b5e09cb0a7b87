"""The ``onnx-metadata`` stage: write the labels and the token cap into the ONNX file's metadata.

The file then says by itself what it answers: an app that opens it with onnxruntime reads
``session.get_modelmeta().custom_metadata_map["edgebert.labels"]`` instead of shipping labels.json
beside it. The graph is not touched (checked: the stage fails if it changed).
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import Field

from edgebert.config import StageConfig
from edgebert.errors import ExportValidationError
from edgebert.stages._shared import NEEDS_ONNX
from edgebert.stages.registry import Artifact, RunContext, StageResult, model_ref, register_stage


class OnnxMetadataConfig(StageConfig):
    """What to write into the ONNX file's metadata besides the labels."""

    kind: Literal["onnx-metadata"] = "onnx-metadata"
    max_length: int | None = Field(None, ge=8, le=8192,
                                   description="Token cap written as edgebert.max_length [default: the target's]")
    description: str | None = Field(None, description="Free text written as the model's doc string")


def _resolve(cfg: OnnxMetadataConfig, target) -> OnnxMetadataConfig:
    if cfg.max_length is None:  # the cap the artifact promises: the target's
        return cfg.model_copy(update={"max_length": int(target.shapes.max_length)})
    return cfg


@register_stage(OnnxMetadataConfig, order=65, reads="onnx", changes="onnx", resolve=_resolve,
                produces=("onnx:metadata",), rules=(NEEDS_ONNX,),
                summary="Write the labels and token cap into the ONNX file's metadata (graph unchanged)")
def onnx_metadata(art: Artifact, cfg: OnnxMetadataConfig, ctx: RunContext) -> StageResult:
    import onnx

    from edgebert import models

    labels = models.model_labels(models.load_config(model_ref(art, art.model)))
    model = onnx.load(str(art.path(art.onnx)))
    graph_before = model.graph.SerializeToString()
    entries = {"edgebert.labels": json.dumps(labels), "edgebert.max_length": str(cfg.max_length)}
    kept = [p for p in model.metadata_props if p.key not in entries]
    del model.metadata_props[:]
    model.metadata_props.extend(kept + [onnx.StringStringEntryProto(key=k, value=v) for k, v in entries.items()])
    if cfg.description:
        model.doc_string = cfg.description
    out = ctx.work / "model.onnx"
    onnx.save(model, str(out))
    if onnx.load(str(out)).graph.SerializeToString() != graph_before:
        raise ExportValidationError(f"onnx-metadata changed the graph of {art.onnx}; nothing was shipped")
    deploy = {**art.deploy, "model.onnx": art.rel(out)} if "model.onnx" in art.deploy else art.deploy
    return StageResult(art.replace(onnx=art.rel(out), deploy=deploy), metrics={"metadata": entries},
                       validation={"graph_unchanged": True})
