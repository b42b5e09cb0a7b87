"""Transformer graph fusion of an exported ONNX classifier (onnxruntime's transformer optimizer).

``fuse_onnx`` rewrites the plain graph written by :func:`edgebert.export.export_onnx` into
onnxruntime's fused transformer operators (``com.microsoft`` domain): ``Attention`` (one node per
self-attention block: QKV projection + scaled dot-product + softmax), ``SkipLayerNormalization``
(residual add + LayerNorm), ``BiasGelu`` / ``FastGelu`` and ``EmbedLayerNormalization``. The fused
graph runs on onnxruntime only (CPU and CUDA execution providers); TensorRT and the mobile NNAPI /
CoreML providers want the plain graph.

Facts the choices below rest on (onnxruntime 1.32, legacy ``dynamo=False`` export, opset 17):

* The raw attention mask is kept (``AttentionMaskFormat.AttentionMask``): onnxruntime's BERT
  default turns the mask into per-row lengths, which is only right for right-padded batches.
* ALBERT runs one set of layer weights ``num_hidden_layers`` times. The ``Attention`` fusion
  concatenates Q, K and V into a new initializer per fused node, so every layer gets its own copy of
  the shared weights (ALBERT-base: 47 MB grows to 125 MB), and the first layer (fed by the embedding
  projection, not by a LayerNorm) is not fused at all. For ALBERT the fusion therefore uses
  ``MultiHeadAttention``, which leaves the Q/K/V projections as MatMuls on the shared initializers
  and only packs the three biases. Identical initializers are merged afterwards, and the result is
  checked: the weights may not grow by more than :data:`ALBERT_MAX_GROWTH`.
* Layers with pruned heads have fewer heads than the config says, a different count per layer.
  onnxruntime reads each layer's head count from the constant in its Q Reshape; transformers 4
  writes the layer's own count there, transformers 5 writes ``-1`` (``view(..., -1, head_size)``),
  for which onnxruntime takes the ``num_heads`` argument: the config's count, wrong for a pruned
  layer. The head size is the same in every layer (pruning drops whole heads), so each fused node's
  ``num_heads`` is set afterwards from its own packed Q/K/V width: width / head size.
* onnxruntime's quantizer cannot infer the types of the fused operators' outputs; quantize a fused
  graph with ``extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT}`` (edgebert's
  :func:`edgebert.compress.quantize.quantize_onnx` does).

The module also holds small graph utilities shared with quantization: initializer byte counts,
merging identical initializers, and removing ``Identity`` nodes over initializers (the legacy
exporter writes one per reuse of an ALBERT weight; the quantizer does not see through them).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import logging
import os
import threading
from pathlib import Path
from typing import Any

from edgebert.errors import ConfigError, ExportError
from edgebert.export.onnx import eager_attention  # re-exported: export under it for fusion

__all__ = [
    "ALBERT_MAX_GROWTH",
    "eager_attention",
    "FUSABLE_MODEL_TYPES",
    "dedupe_initializers",
    "fold_initializer_identities",
    "fuse_onnx",
    "fusion_params",
    "initializer_bytes",
    "model_file_bytes",
    "name_unnamed_nodes",
]

#: model types ``fuse_onnx`` knows (both use onnxruntime's BERT fusion patterns)
FUSABLE_MODEL_TYPES = ("bert", "albert")
#: largest allowed growth of ALBERT's weight bytes through fusion (1.05 = 5 %)
ALBERT_MAX_GROWTH = 1.05
# 2 GB protobuf limit (with headroom): larger models are saved with external data
_EXTERNAL_DATA_THRESHOLD = 1_800_000_000


def fusion_params(model_or_config) -> dict[str, Any]:
    """``model_type``, ``num_heads`` and ``hidden_size`` for :func:`fuse_onnx` from a model or config."""
    config = getattr(model_or_config, "config", model_or_config)
    model_type = getattr(config, "model_type", None)
    if model_type not in FUSABLE_MODEL_TYPES:
        raise ConfigError(
            f"Graph fusion supports model types {', '.join(FUSABLE_MODEL_TYPES)}; got '{model_type}'. "
            "Run the unfused ONNX file instead."
        )
    return {"model_type": model_type, "num_heads": int(config.num_attention_heads),
            "hidden_size": int(config.hidden_size)}


# -- graph utilities ------------------------------------------------------------------------

def initializer_bytes(model) -> int:
    """Bytes of all initializers of an ``onnx.ModelProto`` (external data included)."""
    import onnx

    total = 0
    for init in model.graph.initializer:
        if init.data_location == onnx.TensorProto.EXTERNAL:
            total += next((int(e.value) for e in init.external_data if e.key == "length"), 0)
        else:
            total += _tensor_nbytes(init)
    return total


def _tensor_nbytes(init) -> int:
    import onnx
    from onnx import numpy_helper

    if init.HasField("raw_data"):
        return len(init.raw_data)
    if init.data_type == onnx.TensorProto.STRING:
        return sum(len(s) for s in init.string_data)
    return int(numpy_helper.to_array(init).nbytes)


def model_file_bytes(path: str | os.PathLike) -> int:
    """Size on disk of an ONNX file plus the external-data files it references."""
    import onnx

    path = Path(path)
    total = path.stat().st_size
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # not an ONNX protobuf (e.g. an .ort file): its own size
        return total
    seen = set()
    for init in model.graph.initializer:
        if init.data_location == onnx.TensorProto.EXTERNAL:
            for entry in init.external_data:
                if entry.key == "location" and entry.value not in seen:
                    seen.add(entry.value)
                    f = path.parent / entry.value
                    if f.is_file():
                        total += f.stat().st_size
    return total


def _rename_inputs(graph, mapping: dict[str, str]) -> None:
    """Point every node input (subgraphs included) named in ``mapping`` at its new name."""
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in mapping:
                node.input[i] = mapping[name]
        for attr in node.attribute:
            if attr.HasField("g"):
                _rename_inputs(attr.g, mapping)
            for g in attr.graphs:
                _rename_inputs(g, mapping)


def dedupe_initializers(model) -> int:
    """Merge initializers with identical dtype, shape and bytes into one (in place); return how many went.

    Graph inputs and outputs are never merged. Used after fusion so that copies of ALBERT's shared
    weights (or packed biases) made per fused node are stored once.
    """
    graph = model.graph
    protected = {v.name for v in graph.input} | {v.name for v in graph.output}
    first: dict[tuple, str] = {}
    mapping: dict[str, str] = {}
    keep = []
    for init in graph.initializer:
        # Only tensors held as raw bytes are compared (typed-field tensors are tiny constants).
        if init.name in protected or not init.HasField("raw_data"):
            keep.append(init)
            continue
        key = (init.data_type, tuple(init.dims), hashlib.sha256(init.raw_data).hexdigest())
        if key in first:
            mapping[init.name] = first[key]
        else:
            first[key] = init.name
            keep.append(init)
    if not mapping:
        return 0
    _rename_inputs(graph, mapping)
    del graph.initializer[:]
    graph.initializer.extend(keep)
    return len(mapping)


def fold_initializer_identities(model) -> int:
    """Remove ``Identity`` nodes whose input is an initializer (in place); return how many went.

    The legacy exporter writes ``onnx::MatMul_318 = Identity(onnx::MatMul_302)`` for every reuse of
    a shared ALBERT weight. Consumers are pointed at the initializer itself, so quantizers and
    fusions see a constant weight. Identities that produce graph outputs are kept.
    """
    graph = model.graph
    inits = {i.name for i in graph.initializer}
    outputs = {o.name for o in graph.output}
    mapping = {}
    keep = []
    for node in graph.node:
        if (node.op_type == "Identity" and node.domain in ("", "ai.onnx") and len(node.input) == 1
                and node.input[0] in inits and node.output[0] not in outputs):
            mapping[node.output[0]] = node.input[0]
        else:
            keep.append(node)
    if not mapping:
        return 0
    del graph.node[:]
    graph.node.extend(keep)
    _rename_inputs(graph, mapping)
    names = set(mapping)
    kept_vi = [vi for vi in graph.value_info if vi.name not in names]
    del graph.value_info[:]
    graph.value_info.extend(kept_vi)
    return len(mapping)


def name_unnamed_nodes(model) -> int:
    """Give every node without a name a unique ``<OpType>_edgebert_<i>`` name (in place).

    Quantizers select and exclude nodes by name; onnxruntime's fusions leave some nodes unnamed.
    """
    used = {n.name for n in model.graph.node if n.name}
    count = 0
    for i, node in enumerate(model.graph.node):
        if not node.name:
            name = f"{node.op_type}_edgebert_{i}"
            while name in used:
                name += "_"
            node.name = name
            used.add(name)
            count += 1
    return count


def save_model(model, path: str | os.PathLike) -> Path:
    """Save an ``onnx.ModelProto`` (external data beside it when the model passes ~1.8 GB)."""
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if model.ByteSize() > _EXTERNAL_DATA_THRESHOLD:
        data = path.name + ".data"
        if (path.parent / data).exists():
            (path.parent / data).unlink()  # save_model appends to an existing data file
        onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=data, size_threshold=1024)
    else:
        onnx.save_model(model, str(path))
    return path


# -- fusion ---------------------------------------------------------------------------------

def _set_head_counts(model, head_size: int) -> int:
    """Set ``num_heads`` of every fused ``Attention`` / ``MultiHeadAttention`` node from its packed
    Q/K/V width and ``head_size`` (in place); return how many nodes changed.

    The packed bias (or, without one, the packed weight) holds Q, K and V side by side; Q's width is
    ``qkv_hidden_sizes[0]`` where the three differ, else a third of the whole. A MultiHeadAttention
    node without a bias takes Q from a MatMul outside it: that MatMul's weight gives the width.
    """
    from onnx import helper

    inits = {i.name: i for i in model.graph.initializer}
    producer = {out: n for n in model.graph.node for out in n.output}
    changed = 0
    for node in model.graph.node:
        if node.domain != "com.microsoft" or node.op_type not in ("Attention", "MultiHeadAttention"):
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        packed = [node.input[i] for i in ((2, 1) if node.op_type == "Attention" else (3,))
                  if len(node.input) > i and node.input[i] in inits]
        if "qkv_hidden_sizes" in attrs:
            q_width = int(attrs["qkv_hidden_sizes"][0])
        elif packed:
            q_width = int(inits[packed[0]].dims[-1]) // 3
        elif (q := producer.get(node.input[0])) is not None and q.op_type == "MatMul" and q.input[1] in inits:
            q_width = int(inits[q.input[1]].dims[-1])
        else:
            raise ExportError(f"Cannot tell the head count of fused attention node '{node.name}': no packed "
                              "Q/K/V weight or bias. Use the unfused ONNX file.")
        if q_width % head_size:
            raise ExportError(f"Fused attention node '{node.name}' has a Q width of {q_width}, not a multiple "
                              f"of the head size {head_size}. Use the unfused ONNX file.")
        heads = q_width // head_size
        if attrs.get("num_heads") != heads:
            for attr in node.attribute:
                if attr.name == "num_heads":
                    attr.i = heads
            changed += 1
    return changed


def _check_args(in_path: Path, model_type: str, num_heads: int, hidden_size: int, opt_level: int) -> None:
    if not in_path.is_file():
        raise ExportError(f"ONNX file '{in_path}' does not exist. Export it first: edgebert.export.export_onnx(...)")
    if model_type not in FUSABLE_MODEL_TYPES:
        raise ConfigError(f"model_type must be one of {', '.join(FUSABLE_MODEL_TYPES)}; got '{model_type}'.")
    if num_heads < 1 or hidden_size < 1 or hidden_size % num_heads:
        raise ConfigError(
            f"hidden_size ({hidden_size}) must be a positive multiple of num_heads ({num_heads}); "
            "take both from the model config (fusion_params(model))."
        )
    if opt_level not in (0, 1, 2, 99):
        raise ConfigError(f"opt_level must be 0, 1, 2 or 99 (onnxruntime graph optimization level); got {opt_level}.")


_QUIET_LOCK = threading.Lock()


@functools.lru_cache(maxsize=1)
def _fusion_logger_names() -> tuple[str, ...]:
    """Names onnxruntime's transformer optimizer logs under: its package, and each of its modules
    by bare name too, since it puts its own folder on sys.path and imports them as top-level
    modules (``fusion_attention``, ``onnx_model``, ...)."""
    import pkgutil

    import onnxruntime.transformers as ort_transformers

    bare = [m.name for m in pkgutil.iter_modules(ort_transformers.__path__)]
    return ("onnxruntime.transformers", *bare, *(f"onnxruntime.transformers.{n}" for n in bare))


@contextlib.contextmanager
def _quiet_fusion():
    """Drop onnxruntime's fusion chatter for the duration of the block: warnings logged by the
    transformer optimizer's modules (their loggers' levels are raised, then restored) and prints."""
    loggers = [logging.getLogger(name) for name in _fusion_logger_names()]
    with _QUIET_LOCK:
        previous = [lg.level for lg in loggers]
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                yield
        finally:
            for lg, level in zip(loggers, previous):
                lg.setLevel(level)


def fuse_onnx(in_path: str | os.PathLike, out_path: str | os.PathLike, *, model_type: str,
              num_heads: int, hidden_size: int, opt_level: int = 1) -> dict[str, Any]:
    """Fuse a BERT / ALBERT ONNX graph into onnxruntime's transformer operators; write ``out_path``.

    ``model_type`` is ``"bert"`` (BERT, MiniLM, ...) or ``"albert"``; ``num_heads`` and
    ``hidden_size`` come from the model config (:func:`fusion_params` reads them), also for a model
    with pruned heads: each fused node gets its own layer's head count. ``opt_level`` is
    the onnxruntime graph optimization level run before the Python fusions (1 = basic, portable; 2
    and 99 add CPU-specific rewrites). Returns::

        {"path", "model_type",
         "fused_ops": {op type: count} of the fused operators present (zeros left out),
         "attention_nodes": Attention + MultiHeadAttention nodes,
         "bytes_in", "bytes_out":                 file sizes (external data included),
         "weight_bytes_in", "weight_bytes_out":   initializer bytes,
         "initializers_in", "initializers_out":   initializer counts,
         "merged_initializers": identical initializers stored once,
         "removed_identities": Identity nodes over initializers removed before fusing,
         "notes": [what to know, e.g. that no attention block was fused, and why]}

    Raises ExportError when onnxruntime cannot fuse the graph, or when an ALBERT graph's weights grew
    by more than :data:`ALBERT_MAX_GROWTH` (shared weights copied per layer).
    """
    import onnx
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.onnx_model import OnnxModel
    from onnxruntime.transformers.optimizer import optimize_model

    in_path, out_path = Path(in_path), Path(out_path)
    _check_args(in_path, model_type, int(num_heads), int(hidden_size), int(opt_level))
    source = onnx.load(str(in_path))
    weight_in, inits_in = initializer_bytes(source), len(source.graph.initializer)
    removed = fold_initializer_identities(source)

    options = FusionOptions("bert")
    options.use_raw_attention_mask(True)  # correct for any padding side (see the module docstring)
    if model_type == "albert":
        options.use_multi_head_attention = True  # Q/K/V stay MatMuls on the shared weights
    try:
        # A ModelProto input keeps the caller's file untouched; opt_level > 0 round-trips it
        # through an onnxruntime session in a temporary folder.
        # Its attention fusion logs the warning "Input hidden size (192) is not same as weight
        # matrix dimension of q,k,v (384)" for layers with pruned heads before fusing them with
        # the detected sizes; the counts below say what was fused, so the messages are dropped.
        with _quiet_fusion():
            optimizer = optimize_model(source, model_type="bert", num_heads=int(num_heads),
                                       hidden_size=int(hidden_size), optimization_options=options,
                                       opt_level=int(opt_level), use_gpu=False)
    except Exception as exc:  # onnxruntime raises plain exceptions from its fusion passes
        raise ExportError(f"onnxruntime could not fuse '{in_path}': {exc}") from exc
    stats = {op: int(n) for op, n in optimizer.get_fused_operator_statistics().items() if n}
    model = optimizer.model
    _set_head_counts(model, int(hidden_size) // int(num_heads))  # per layer (see the module docstring)
    merged = dedupe_initializers(model)
    name_unnamed_nodes(model)
    OnnxModel(model).topological_sort()
    weight_out = initializer_bytes(model)
    if model_type == "albert" and weight_out > ALBERT_MAX_GROWTH * weight_in:
        raise ExportError(
            f"Fusing ALBERT grew its weights from {weight_in} to {weight_out} bytes "
            f"(> {ALBERT_MAX_GROWTH:.2f}x): the shared layer weights were copied per layer. "
            "Use the unfused ONNX file."
        )
    save_model(model, out_path)
    notes = []
    attention = stats.get("Attention", 0) + stats.get("MultiHeadAttention", 0)
    if not attention:
        notes.append(
            "No attention block was fused. transformers 5 exports its default sdpa attention as a pattern "
            "onnxruntime does not recognize: export under edgebert.export.onnx.eager_attention(model), as export_onnx does."
        )
    return {
        "path": str(out_path),
        "model_type": model_type,
        "fused_ops": stats,
        "attention_nodes": attention,
        "bytes_in": model_file_bytes(in_path),
        "bytes_out": model_file_bytes(out_path),
        "weight_bytes_in": weight_in,
        "weight_bytes_out": weight_out,
        "initializers_in": inits_in,
        "initializers_out": len(model.graph.initializer),
        "merged_initializers": merged,
        "removed_identities": removed,
        "notes": notes,
    }
