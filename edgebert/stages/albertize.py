"""The ``albertize`` stage: turn the fine-tuned BERT-family classifier into a real ALBERT
(:func:`edgebert.compress.albertize.albertize`: factorised embedding from a truncated SVD, one set of layer
weights shared by each group of layers), to be distilled from the model it came from.

The result is a transformers ``AlbertForSequenceClassification`` folder (``model_type: albert``) with the
source's tokenizer (WordPiece for MiniLM: its ids are the embedding rows; the config says so). The
model it came from stays the teacher of the ``distill`` stage that must follow.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from edgebert.config import StageConfig
from edgebert.errors import ConfigError
from edgebert.stages._shared import BEFORE_EXPORTS, BEFORE_SPARSIFY, agreement, dev_logits, load
from edgebert.stages.registry import Artifact, RunContext, StageResult, forbids, model_ref, register_stage


class AlbertizeConfig(StageConfig):
    """ALBERT's two ideas applied to a fine-tuned BERT: a factorised embedding and shared layers."""

    kind: Literal["albertize"] = "albertize"
    embedding_size: int | None = Field(
        128, ge=2, description="ALBERT's embedding size E (vocabulary x E, then E x hidden); null: the hidden "
                               "size (no factorisation)")
    num_hidden_groups: int = Field(
        1, ge=1, description="Distinct sets of layer weights (1: every layer shares one, as in ALBERT; the number "
                             "of layers: no sharing); must divide the number of layers")
    init: Literal["average", "best"] = Field(
        "average", description="How a group starts from the layers it replaces: their element-wise average, or the "
                            "single one that best reproduces the group's output on dev texts")
    probe_texts: int = Field(64, ge=1, le=4096, description="Dev texts the 'best' initialisation is measured on")
    max_length: int = Field(128, ge=8, le=8192, description="Token cap of the probe and the dev check")


def _check_albertize(cfg: AlbertizeConfig, shape: dict[str, Any]) -> None:
    """A BERT-family source whose layer count the groups divide, before any work; the stages after it see
    an ALBERT."""
    if shape["model_type"] != "bert":
        raise ConfigError(f"albertize converts a BERT-family model (model_type 'bert'); this one is "
                          f"'{shape['model_type']}'. An ALBERT already shares its layers: leave the stage out.")
    layers = shape["num_hidden_layers"]
    if layers % cfg.num_hidden_groups:
        valid = ", ".join(str(d) for d in range(1, layers + 1) if layers % d == 0)
        raise ConfigError(f"num_hidden_groups {cfg.num_hidden_groups} does not divide the model's {layers} layers; "
                          f"valid: {valid}")
    shape["model_type"] = "albert"


_RULES = (BEFORE_EXPORTS, BEFORE_SPARSIFY,
          forbids("torch:pruned", "{here} comes after '{kind}' (stage {at}): albertize needs every layer whole, so "
                                  "put it first and prune the ALBERT after it."))


@register_stage(AlbertizeConfig, order=15, reads="torch", changes="torch", check=_check_albertize, rules=_RULES,
                produces=("torch:pruned", "torch:albert"),  # a smaller student for distill to train
                summary="Turn a fine-tuned BERT into an ALBERT (factorised embedding, shared layers), to distil")
def albertize(art: Artifact, cfg: AlbertizeConfig, ctx: RunContext) -> StageResult:
    from edgebert import models
    from edgebert.compress.albertize import albertize as convert
    from edgebert.compress.albertize import save_albertized
    from edgebert.compress.prune import count_parameters

    source, data = load(model_ref(art, art.model), ctx)
    dev = data.split("dev")
    probe = source.tokenizer(list(dev.texts[:cfg.probe_texts]), None if dev.text_pairs is None else
                             list(dev.text_pairs[:cfg.probe_texts]), padding=True, truncation=True,
                             max_length=cfg.max_length, return_tensors="pt")
    albert = convert(source.model, embedding_size=cfg.embedding_size, num_hidden_groups=cfg.num_hidden_groups,
                     init=cfg.init, probe=dict(probe) if cfg.init == "best" else None)
    before = dev_logits(source, data, cfg.max_length)
    params_before = count_parameters(source.model)
    out = save_albertized(albert, source.tokenizer, ctx.work / "model")
    del source, albert
    converted = models.load(str(out))
    after = dev_logits(converted, data, cfg.max_length)
    check = agreement(before, after, dev.labels)
    params = count_parameters(converted.model)  # a shared tensor once
    metrics = {"dev_accuracy": check["accuracy_after"], "parameters_before": params_before, "parameters": params,
               "albertize": getattr(converted.model.config, "edgebert_albertize", None)}
    return StageResult(art.replace(model=art.rel(out), teacher=art.teacher or art.model), metrics=metrics,
                       validation=check)
