"""Per-architecture facts, declared rather than coded.

Later stages (pruning, distillation, export) never hard-code attribute paths: they ask the spec
where the layers, attention projections, FFN and embeddings of a model live. Adding an encoder of
the same shape (RoBERTa, ELECTRA, DistilBERT-like) is one spec here plus one tiny-model test.

All paths are dotted attribute paths; a path with ``{i}`` is formatted with a layer index.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgebert.errors import UnsupportedArchitectureError


@dataclass(frozen=True)
class ArchSpec:
    """Where the parts of one encoder architecture live, relative to the classifier model."""

    model_type: str
    #: attribute of the classifier that holds the encoder (``model.bert``, ``model.albert``)
    base: str
    #: embeddings module, relative to the classifier
    embeddings: str
    #: path of the module list holding the *distinct* transformer layers, relative to the
    #: classifier. For ALBERT this is the list of layer groups (``num_hidden_groups``, 1 in every
    #: released checkpoint): each of the ``num_hidden_layers`` uses runs one group's weights.
    layers: str
    # Paths relative to one transformer layer:
    query: str
    key: str
    value: str
    attn_out: str  # attention output projection (hidden -> hidden)
    attn_norm: str
    ffn_in: str  # hidden -> intermediate
    ffn_out: str  # intermediate -> hidden
    ffn_norm: str
    #: the attention module that carries ``num_attention_heads`` / ``all_head_size`` bookkeeping
    attn_module: str
    #: pooler (dense + tanh on [CLS]) and classification head, relative to the classifier
    pooler: str | None
    classifier: str
    #: ALBERT: one set of layer weights reused for every layer (cross-layer sharing)
    shared_layers: bool = False
    #: ALBERT: embeddings of size E projected to hidden H (E < H), by this module
    embedding_projection: str | None = None
    #: modules the LoRA adapters attach to (names as peft expects them)
    lora_targets: tuple[str, ...] = ("query", "value")
    #: ALBERT: the path of the one layer inside each entry of ``layers`` (a group of ``inner_group_num``
    #: layers; edgebert handles 1)
    group_layer: str | None = None
    #: ONNX input names the model takes, in order
    input_names: tuple[str, ...] = ("input_ids", "attention_mask", "token_type_ids")
    #: rows of the position table an input cannot use: RoBERTa numbers positions from padding_idx + 1 = 2
    position_offset: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    # -- helpers ------------------------------------------------------------------------------
    def layer_modules(self, model) -> list:
        """The distinct transformer layer modules (for ALBERT: one per layer group, usually one)."""
        modules = list(get_path(model, self.layers))
        return [get_path(m, self.group_layer) for m in modules] if self.group_layer else modules

    def layer_of_use(self, model, use: int) -> int:
        """The distinct layer that layer use ``use`` runs: itself, or for ALBERT its group, computed
        as transformers' ``AlbertTransformer`` does (``int(use / (num_hidden_layers / num_hidden_groups))``)."""
        if not self.shared_layers:
            return use
        config = model.config
        return int(use / (config.num_hidden_layers / getattr(config, "num_hidden_groups", 1)))

    def num_layer_uses(self, model) -> int:
        """How many times a layer is run in one forward pass (``num_hidden_layers``)."""
        return int(model.config.num_hidden_layers)

    def layer_part(self, model, part: str, i: int = 0):
        """The module ``part`` (a field name such as ``"query"``) of distinct layer ``i``."""
        return get_path(self.layer_modules(model)[i], getattr(self, part))


def get_path(obj, path: str):
    """Resolve a dotted attribute path (``"bert.encoder.layer"``); integers index sequences."""
    for part in path.split("."):
        obj = obj[int(part)] if part.isdigit() else getattr(obj, part)
    return obj


_BERT = ArchSpec(
    model_type="bert",
    base="bert",
    embeddings="bert.embeddings",
    layers="bert.encoder.layer",
    query="attention.self.query",
    key="attention.self.key",
    value="attention.self.value",
    attn_out="attention.output.dense",
    attn_norm="attention.output.LayerNorm",
    ffn_in="intermediate.dense",
    ffn_out="output.dense",
    ffn_norm="output.LayerNorm",
    attn_module="attention.self",
    pooler="bert.pooler",
    classifier="classifier",
)

_ALBERT = ArchSpec(
    model_type="albert",
    base="albert",
    embeddings="albert.embeddings",
    # ALBERT keeps ``num_hidden_groups`` groups (1 for every released checkpoint; more from
    # ``albertize``) of ``inner_group_num`` layers (1). With the defaults this is one shared layer.
    layers="albert.encoder.albert_layer_groups",
    group_layer="albert_layers.0",
    query="attention.query",
    key="attention.key",
    value="attention.value",
    attn_out="attention.dense",
    attn_norm="attention.LayerNorm",
    ffn_in="ffn",
    ffn_out="ffn_output",
    ffn_norm="full_layer_layer_norm",
    attn_module="attention",
    pooler="albert.pooler",
    classifier="classifier",
    shared_layers=True,
    embedding_projection="albert.encoder.embedding_hidden_mapping_in",
)

_ROBERTA = ArchSpec(
    **{
        **_BERT.__dict__,
        "model_type": "roberta",
        "base": "roberta",
        "embeddings": "roberta.embeddings",
        "layers": "roberta.encoder.layer",
        "pooler": None,
        "classifier": "classifier",
        "input_names": ("input_ids", "attention_mask"),
        "position_offset": 2,
    }
)

SPECS: dict[str, ArchSpec] = {s.model_type: s for s in (_BERT, _ALBERT, _ROBERTA)}


def get_spec(model_or_config) -> ArchSpec:
    """The spec for a model or config; raises UnsupportedArchitectureError for unknown types."""
    config = getattr(model_or_config, "config", model_or_config)
    model_type = getattr(config, "model_type", None)
    if model_type not in SPECS:
        raise UnsupportedArchitectureError(
            f"Architecture '{model_type}' is not supported. Supported: {', '.join(sorted(SPECS))} "
            "(and encoders that declare one of these model types, e.g. MiniLM is 'bert')."
        )
    spec = SPECS[model_type]
    if spec.shared_layers:
        inner = getattr(config, "inner_group_num", 1)
        if inner != 1:
            raise UnsupportedArchitectureError(
                f"ALBERT with inner_group_num={inner} is not supported; edgebert handles groups of one "
                "layer each (inner_group_num=1, as every released ALBERT), any num_hidden_groups."
            )
    return spec
