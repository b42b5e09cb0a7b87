"""The ``text-in`` stage: put the tokenizer inside the ONNX graph (:func:`edgebert.export.textin.make_text_in`:
onnxruntime-extensions' BertTokenizer or SentencepieceTokenizer merged in front of the classifier), so an app
passes a string and gets logits back, with no tokenizer port that could disagree with training.

The text-in graph is validated like every export: on the dev texts its token ids must equal the Hugging Face
tokenizer's and its labels the token-in model's, or the run fails. It needs the ``onnxruntime-extensions``
package here and its operator library where it runs (``pip install 'edgebert[textin]'``; the extensions
packages for Android and iOS in apps). Single texts only: a sentence-pair model is refused before any work.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edgebert.config import StageConfig
from edgebert.errors import ConfigError
from edgebert.stages._shared import NEEDS_ONNX
from edgebert.stages.registry import Artifact, RunContext, StageResult, forbids, model_ref, register_stage


class TextInConfig(StageConfig):
    """Merge the tokenizer into the graph (strings in, logits out)."""

    kind: Literal["text-in"] = "text-in"
    max_length: int | None = Field(None, ge=8, le=8192,
                                   description="Token cap fixed in the graph [default: the target's max_length]")


def _check_text_in(cfg: TextInConfig, shape) -> None:
    """Single texts, and the operator library to build and check the graph: said before any stage runs."""
    from edgebert.export.textin import PAIR_REFUSAL
    from edgebert.runtime.textin import extensions_library

    if shape.get("text_pair"):
        raise ConfigError(PAIR_REFUSAL)
    extensions_library()  # MissingDependencyError naming the extra


def _resolve(cfg: TextInConfig, target) -> TextInConfig:
    if cfg.max_length is None:
        return cfg.model_copy(update={"max_length": int(target.shapes.max_length)})
    return cfg


@register_stage(TextInConfig, order=75, reads="onnx", changes="onnx", resolve=_resolve, check=_check_text_in,
                produces=("onnx:text-in",),
                rules=(NEEDS_ONNX, forbids("onnx:text-in", "{here}: the graph already takes text since stage {at}.")),
                summary="Put the tokenizer inside the ONNX graph (onnxruntime-extensions): strings in, logits out")
def text_in(art: Artifact, cfg: TextInConfig, ctx: RunContext) -> StageResult:
    from edgebert import models
    from edgebert.export.textin import make_text_in, validate_text_in

    # the tokenizer files as the model's own tokenizer saves them (spiece.model included for SentencePiece),
    # wherever the model came from (an alias, a folder, a cached hub id)
    tokenizer_dir = ctx.work / "tokenizer"
    models.load_tokenizer(model_ref(art, art.model)).save_pretrained(tokenizer_dir)
    src = art.path(art.onnx)
    out = ctx.work / "model.onnx"
    made = make_text_in(src, tokenizer_dir, out, max_length=cfg.max_length,
                        text_pair=ctx.dataset.text_pair_column is not None)
    dev = ctx.dataset.split("dev")
    validation = validate_text_in(out, src, tokenizer_dir, list(dev.texts), strict=True)
    metrics = {"bytes": made["bytes"], "token_in_bytes": made["token_in_bytes"], "tokenizer": made["kind"],
               "max_length": made["max_length"]}
    deploy = {**art.deploy, "model.onnx": art.rel(out)} if "model.onnx" in art.deploy else art.deploy
    return StageResult(art.replace(onnx=art.rel(out), deploy=deploy), metrics=metrics, validation=validation)
