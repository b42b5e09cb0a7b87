"""Quantization of exported classifiers: ONNX int8 (dynamic, static QDQ), fp16, and torch int8.

ONNX modes (onnxruntime's quantization tools, :func:`quantize_onnx`):

* ``int8-dynamic``: weights int8 ahead of time, activations quantized per batch at run time
  (``MatMulInteger`` / ``QAttention`` / ``QEmbedLayerNormalization``). No calibration data; the
  usual choice for CPU. Works on plain and fused graphs (a fused graph needs the quantizer option
  ``DefaultTensorType=FLOAT``, always set here: its shape inference cannot type the fused ops).
* ``int8-static``: QDQ format (``QuantizeLinear`` / ``DequantizeLinear`` pairs around MatMul and
  Gemm inputs) with activation ranges calibrated on real tokenized texts. The format TensorRT
  (explicit quantization; use ``symmetric=True``), QNN and other accelerators take. Calibrate on
  the plain graph for TensorRT: a fused graph keeps its ``Attention`` nodes in float.
* ``fp16``: weights and compute in float16 with float32 graph inputs/outputs; LayerNorm-type ops and
  Softmax stay float32 (:data:`FP16_KEEP_FP32_OPS`). For GPUs; slower than fp32 on most CPUs.

``torch-int8-dynamic`` is :func:`torch_quantize_dynamic` (``torch.ao.quantization.quantize_dynamic``
on ``nn.Linear``) for TorchScript / eager targets. (torchao's int8 dynamic mode is ~19x slower than
fp32 eager on x86 CPUs and is deliberately not used.)

Only MatMuls whose second input is a constant (weights) are quantized, plus embedding Gathers in
dynamic mode; activation x activation MatMuls (attention scores) stay float.

Accuracy-aware quantization (:func:`quantize_with_budget`): quantize everything, measure the dev
accuracy with a caller-supplied ``eval_fn(onnx_path) -> accuracy`` and, when the drop exceeds
``max_accuracy_drop``, measure each transformer layer's sensitivity (:func:`layer_sensitivity`)
and keep the most sensitive layers in float, one at a time, until the budget holds. Layers are
found from the graph structure (:func:`layer_groups`): every encoder layer holds two LayerNorms.

ALBERT shares one set of layer weights between all layers. The legacy export reaches every reuse
through an ``Identity`` node, which the quantizer does not see through (only the first layer would
be quantized); those Identities are removed first, so each shared weight is quantized once. When
some uses of a shared weight are excluded (kept float), onnxruntime feeds them the dequantized int8
weight rather than a second fp32 copy: their compute is float, their weights int8-rounded, and the
weights stay stored once.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import tempfile
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from edgebert.errors import CompressionError, ConfigError

__all__ = [
    "FP16_KEEP_FP32_OPS",
    "ONNX_MODES",
    "calibration_feeds",
    "layer_groups",
    "layer_sensitivity",
    "onnx_accuracy_fn",
    "quantizable_nodes",
    "quantize_onnx",
    "quantize_with_budget",
    "quantized_nodes",
    "settings_problem",
    "torch_quantize_dynamic",
]

QuantMode = Literal["int8-dynamic", "int8-static", "fp16", "torch-int8-dynamic"]
WeightType = Literal["s8", "u8"]
CalibrationMethod = Literal["minmax", "entropy", "percentile"]
#: modes :func:`quantize_onnx` implements (``torch-int8-dynamic`` is :func:`torch_quantize_dynamic`)
ONNX_MODES = ("int8-dynamic", "int8-static", "fp16")
#: op types kept float32 by the fp16 conversion (normalisation statistics and softmax overflow in
#: fp16). EmbedLayerNormalization is not listed: keeping it fp32 would keep the embedding table,
#: often half the weights, in fp32; its kernels accumulate in fp32 anyway.
FP16_KEEP_FP32_OPS = ("LayerNormalization", "SimplifiedLayerNormalization", "SkipLayerNormalization",
                      "SkipSimplifiedLayerNormalization", "Softmax")
# Ops that mark the end of a residual block: two per BERT / ALBERT encoder layer, one for embeddings.
_NORM_OPS = {"LayerNormalization", "SkipLayerNormalization", "SimplifiedLayerNormalization",
             "SkipSimplifiedLayerNormalization", "EmbedLayerNormalization"}
# Which float ops with a constant weight each mode quantizes, and where that weight is.
_WEIGHT_INPUT = {"MatMul": 1, "Gemm": 1, "Attention": 1, "Gather": 0, "EmbedLayerNormalization": 2}
_MODE_OPS = {
    "int8-dynamic": ("MatMul", "Gemm", "Attention", "Gather", "EmbedLayerNormalization"),
    "int8-static": ("MatMul", "Gemm"),
    "fp16": ("MatMul", "Gemm", "Attention", "Gather", "EmbedLayerNormalization"),
}
_STATIC_OP_TYPES = ["MatMul", "Gemm"]
_EXTERNAL_DATA_THRESHOLD = 1_800_000_000


def settings_problem(mode: str, symmetric: bool) -> str | None:
    """What is wrong with quantizing in ``mode`` with these settings, or None (the recipe's config and
    :func:`quantize_onnx` both ask)."""
    if symmetric and mode == "int8-dynamic":
        return ("symmetric applies to int8-static only: int8-dynamic computes asymmetric uint8 activation "
                "ranges at run time")
    return None


def _check_settings(mode: str, symmetric: bool, weight_type: str, calibration_method: str) -> None:
    if mode not in ONNX_MODES:
        raise ConfigError(
            f"quantize_onnx handles modes {', '.join(ONNX_MODES)}; '{mode}' quantizes a torch model: "
            "use edgebert.compress.quantize.torch_quantize_dynamic(model)."
        )
    for name, value, choices in (("weight_type", weight_type, WeightType),
                                 ("calibration_method", calibration_method, CalibrationMethod)):
        if value not in get_args(choices):
            raise ConfigError(f"{name} must be one of {', '.join(get_args(choices))}; got '{value}'.")
    problem = settings_problem(mode, symmetric)
    if problem:
        raise ConfigError(f"{problem}.")


# -- helpers ---------------------------------------------------------------------------------

@contextlib.contextmanager
def _quiet_ort():
    """Silence onnxruntime's quantization tools: they log through the root logger and print
    calibration progress to stdout."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


def _load(model_or_path):
    import onnx

    if isinstance(model_or_path, (str, os.PathLike)):
        path = Path(model_or_path)
        if not path.is_file():
            raise CompressionError(f"ONNX file '{path}' does not exist. Export it first: edgebert.export.export_onnx(...)")
        return onnx.load(str(path))
    copy = onnx.ModelProto()
    copy.CopyFrom(model_or_path)
    return copy


def _prepared(model_or_path):
    """A copy of the model as the quantizer sees it: Identity-over-initializer removed, all nodes named."""
    from edgebert.export.fuse import fold_initializer_identities, name_unnamed_nodes

    model = _load(model_or_path)
    fold_initializer_identities(model)
    name_unnamed_nodes(model)
    return model


def _save(model, path: Path) -> Path:
    from edgebert.export.fuse import save_model

    return save_model(model, path)


def quantizable_nodes(model_or_path, mode: str = "int8-dynamic") -> dict[str, str]:
    """Names (in graph order) and op types of the nodes ``mode`` would quantize or convert.

    These are float ops with a constant weight: MatMul / Gemm with a constant second input, and in
    int8-dynamic / fp16 also fused Attention, embedding Gathers and EmbedLayerNormalization.
    """
    import onnx

    if mode not in _MODE_OPS:
        raise ConfigError(f"mode must be one of {', '.join(_MODE_OPS)}; got '{mode}'.")
    model = _prepared(model_or_path)
    floats = {i.name for i in model.graph.initializer
              if i.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)}
    out = {}
    for node in model.graph.node:
        idx = _WEIGHT_INPUT.get(node.op_type)
        if node.op_type in _MODE_OPS[mode] and idx is not None and len(node.input) > idx \
                and node.input[idx] in floats:
            out[node.name] = node.op_type
    return out


def quantized_nodes(source, quantized) -> list[str]:
    """The nodes of ``source`` (an fp32 ONNX file or model) that are int8 / fp16 in ``quantized``.

    A node counts as quantized when onnxruntime replaced it by its quantized form (``<name>_quant``:
    dynamic mode), reads an int8 / uint8 initializer (dynamic-mode Gather), takes its activation
    input from DequantizeLinear (QDQ), or when its weight is float16. A float node whose only
    quantized input is a weight (ALBERT: an excluded use of a shared weight that other uses
    quantize, which onnxruntime then feeds through DequantizeLinear) counts as float.
    """
    import onnx

    cands = quantizable_nodes(source, "int8-dynamic")
    out = _load(quantized)
    nodes = {n.name: n for n in out.graph.node}
    producers = {o: n for n in out.graph.node for o in n.output}
    fp16_inits = {i.name for i in out.graph.initializer if i.data_type == onnx.TensorProto.FLOAT16}
    int8_inits = {i.name for i in out.graph.initializer
                  if i.data_type in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8)}

    def is_fp16_cast(name: str) -> bool:
        p = producers.get(name)
        return p is not None and p.op_type == "Cast" and any(
            a.name == "to" and a.i == onnx.TensorProto.FLOAT16 for a in p.attribute)

    done = []
    for name, op in cands.items():
        node = nodes.get(name) or nodes.get(name + "_MatMul")  # dynamic mode turns Gemm into MatMul
        if node is None:
            if (name + "_quant") in nodes or (name + "_MatMul_quant") in nodes:
                done.append(name)
            continue
        act = node.input[0] if node.op_type != "Gather" and node.input else None
        if act is not None and (p := producers.get(act)) is not None and p.op_type == "DequantizeLinear":
            done.append(name)  # QDQ: the activation input is quantized too
        elif any(i in int8_inits for i in node.input):
            done.append(name)  # dynamic mode: Gather over an int8 table, then DequantizeLinear
        elif any(i in fp16_inits or is_fp16_cast(i) for i in node.input):
            done.append(name)
    return done


def layer_groups(model_or_path, mode: str = "int8-dynamic") -> dict[str, list[str]]:
    """The quantizable nodes of a BERT / ALBERT graph grouped by transformer layer.

    Keys, in order: ``embeddings`` (embedding Gathers / EmbedLayerNormalization, ALBERT's embedding
    projection), ``layer.0`` ... ``layer.{L-1}``, ``classifier`` (pooler and classification head).
    A node's layer is the number of LayerNorm-type nodes on its longest input path: the embedding
    LayerNorm, then two per encoder layer. This holds for plain and fused graphs and for ALBERT,
    whose node names do not tell the layer (one shared layer module is called L times).
    """
    model = _prepared(model_or_path)
    cands = quantizable_nodes(model, mode)
    depth: dict[str, int] = {}
    node_depth: dict[str, int] = {}
    for node in model.graph.node:  # ONNX requires topological order
        d = max((depth.get(i, 0) for i in node.input if i), default=0)
        node_depth[node.name] = d
        for o in node.output:
            depth[o] = d + (1 if node.op_type in _NORM_OPS else 0)
    top = max(depth.values(), default=0)
    if top < 3:
        raise CompressionError(
            "Cannot find the transformer layers of this graph (no LayerNormalization nodes). Export it "
            "with opset >= 17 (edgebert.export.export_onnx does) so that LayerNorm is a single node."
        )
    num_layers = (top - 1) // 2
    groups: dict[str, list[str]] = {"embeddings": []}
    groups.update({f"layer.{i}": [] for i in range(num_layers)})
    groups["classifier"] = []
    for name, op in cands.items():
        d = node_depth[name]
        if d == 0 or op in ("Gather", "EmbedLayerNormalization") or "embedding_hidden_mapping_in" in name:
            groups["embeddings"].append(name)
        elif d > 2 * num_layers:
            groups["classifier"].append(name)
        else:
            groups[f"layer.{(d - 1) // 2}"].append(name)
    return {k: v for k, v in groups.items() if v}


# -- calibration -----------------------------------------------------------------------------

def calibration_feeds(tokenizer, texts: Sequence[str], input_names: Sequence[str], *, samples: int = 256,
                      batch_size: int = 8, max_length: int = 128, seed: int = 0,
                      pairs: Sequence[str] | None = None) -> list[dict[str, np.ndarray]]:
    """Calibration batches (onnxruntime feed dicts) from real texts, for ``int8-static``.

    ``pairs``: the second sentences of a sentence-pair task (one per text), calibrated as the model
    runs them, joined to their first sentences.

    Up to ``samples`` texts (a seeded random choice when there are more) are tokenized and padded to
    one common length (the longest, capped at ``max_length``), in batches of equal size: the
    entropy and percentile calibrators stack all batches into one array. The last batch is filled
    up with the first texts again. ``input_names`` are the ONNX graph's inputs (a name the tokenizer
    does not produce, e.g. ``token_type_ids``, gets zeros).
    """
    from edgebert.data.batching import check_pairs, encode_texts
    from edgebert.export.onnx import onnx_feeds

    texts = [str(t) for t in texts]
    if not texts:
        raise CompressionError("int8-static calibration needs at least one text (e.g. the training split's)")
    check_pairs(texts, pairs)
    rows = list(range(len(texts)))
    if len(texts) > samples:
        rng = np.random.default_rng(seed)
        rows = sorted(rng.choice(len(texts), size=samples, replace=False).tolist())
    batch_size = max(1, min(batch_size, len(rows)))
    n_batches = math.ceil(len(rows) / batch_size)
    rows = (rows * 2)[: n_batches * batch_size] if len(rows) % batch_size else rows
    enc = encode_texts(tokenizer, [texts[i] for i in rows], None if pairs is None else [pairs[i] for i in rows],
                       padding="longest", truncation=True, max_length=max_length, return_tensors="np")
    feeds = onnx_feeds(input_names, dict(enc))
    return [{k: v[i * batch_size:(i + 1) * batch_size] for k, v in feeds.items()} for i in range(n_batches)]


def _calibration_reader(feeds: Sequence[dict[str, np.ndarray]], input_names: Sequence[str], samples: int):
    from onnxruntime.quantization import CalibrationDataReader

    from edgebert.export.onnx import onnx_feeds

    batches, rows = [], 0
    for feed in feeds:
        if rows >= samples:
            break
        batch = onnx_feeds(input_names, feed)
        batches.append(batch)
        rows += int(next(iter(batch.values())).shape[0])
    if not batches:
        raise CompressionError("int8-static calibration got no batches: calibration_feeds is empty")

    class _Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter(batches)

        def get_next(self):
            return next(self._it, None)

    return _Reader(), rows


# -- ONNX quantization -----------------------------------------------------------------------

def _quant_type(name: str):
    from onnxruntime.quantization import QuantType

    return QuantType.QInt8 if name == "s8" else QuantType.QUInt8


def _check_exclude(model, exclude: Sequence[str]) -> None:
    names = {n.name for n in model.graph.node}
    unknown = [n for n in exclude if n not in names]
    if unknown:
        examples = ", ".join(repr(n) for n in list(quantizable_nodes(model))[:3])
        raise ConfigError(
            f"exclude names {len(unknown)} node(s) not in the graph: {', '.join(map(repr, unknown[:5]))}. "
            f"Quantizable nodes are e.g. {examples} (see edgebert.compress.quantize.layer_groups)."
        )


def _symbolic_shapes(model):
    """The model with types inferred through onnxruntime's contrib ops (calibration needs them)."""
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    try:
        inferred = SymbolicShapeInference.infer_shapes(model, auto_merge=True)
    except Exception:  # plain ONNX shape inference inside the quantizer is the fallback
        return model
    return inferred if inferred is not None else model


def quantize_onnx(in_path: str | os.PathLike, out_path: str | os.PathLike, *, mode: str = "int8-dynamic",
                  per_channel: bool = False, symmetric: bool = False, reduce_range: bool = False,
                  weight_type: str = "s8", calibration_samples: int = 256, calibration_method: str = "minmax",
                  exclude: Sequence[str] = (),
                  calibration_feeds: Iterable[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Quantize (int8) or convert (fp16) the ONNX file ``in_path`` into ``out_path``.

    ``mode`` is one of :data:`ONNX_MODES`; ``per_channel``, ``symmetric``, ``reduce_range``,
    ``weight_type``, ``calibration_method`` and ``exclude`` (node names kept float) are described by the
    recipe stage's config (:class:`edgebert.stages.quantize.QuantizeConfig`). ``calibration_feeds``
    (int8-static only, required there) are onnxruntime feed dicts of real tokenized texts, e.g. from
    :func:`calibration_feeds`; batches are read until ``calibration_samples`` rows. Returns::

        {"mode", "path",
         "bytes_in", "bytes_out":               file sizes (external data included),
         "weight_bytes_in", "weight_bytes_out": initializer bytes,
         "nodes_quantized": names of nodes now int8 / fp16,
         "nodes_excluded": exclude,
         "nodes_float": quantizable nodes left in float (excluded, or not handled by the quantizer),
         "op_counts": {op type: count} of the quantized / cast ops in the result,
         "calibration_rows": texts used for calibration (int8-static)}
    """
    from edgebert.export.fuse import initializer_bytes, model_file_bytes

    _check_settings(mode, symmetric, weight_type, calibration_method)
    exclude = list(exclude)
    in_path, out_path = Path(in_path), Path(out_path)
    model = _prepared(in_path)
    _check_exclude(model, exclude)
    if mode == "int8-static" and calibration_feeds is None:
        raise CompressionError(
            "int8-static needs calibration data: pass calibration_feeds=calibration_feeds(tokenizer, "
            "train_texts, input_names), or use mode 'int8-dynamic' (no calibration)."
        )
    input_names = [i.name for i in model.graph.input]
    weight_bytes_in = initializer_bytes(model)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    rows = None
    external = model.ByteSize() > _EXTERNAL_DATA_THRESHOLD
    try:
        if mode == "fp16":
            _to_fp16(_load(model), out_path, exclude)
        else:
            weights = {"per_channel": per_channel, "reduce_range": reduce_range, "weight_type": weight_type,
                       "exclude": exclude}
            with tempfile.TemporaryDirectory(prefix="edgebert-quant-") as tmp:
                src = _save(model, Path(tmp) / "prepared.onnx")
                if mode == "int8-dynamic":
                    _dynamic(src, out_path, model, external, **weights)
                else:
                    rows = _static(src, out_path, model, calibration_feeds, input_names, external, **weights,
                                   symmetric=symmetric, calibration_samples=calibration_samples,
                                   calibration_method=calibration_method)
    except (CompressionError, ConfigError):
        raise
    except Exception as exc:  # onnxruntime raises plain exceptions (ValueError, RuntimeError, ...)
        raise CompressionError(f"{mode} quantization of '{in_path}' failed: {exc}") from exc

    import onnx

    result = onnx.load(str(out_path))
    quantized = quantized_nodes(model, result)
    cands = quantizable_nodes(model, mode)
    interesting = {"MatMulInteger", "DynamicQuantizeLinear", "DynamicQuantizeMatMul", "QAttention",
                   "QEmbedLayerNormalization", "QuantizeLinear", "DequantizeLinear", "QLinearMatMul", "Cast"}
    op_counts: dict[str, int] = {}
    for node in result.graph.node:
        if node.op_type in interesting:
            op_counts[node.op_type] = op_counts.get(node.op_type, 0) + 1
    report = {
        "mode": mode,
        "path": str(out_path),
        "bytes_in": model_file_bytes(in_path),
        "bytes_out": model_file_bytes(out_path),
        "weight_bytes_in": weight_bytes_in,
        "weight_bytes_out": initializer_bytes(result),
        "nodes_quantized": quantized,
        "nodes_excluded": list(exclude),
        "nodes_float": [n for n in cands if n not in set(quantized)],
        "op_counts": op_counts,
    }
    if rows is not None:
        report["calibration_rows"] = rows
    return report


def _excluded_with_gemm_aliases(model, exclude: Sequence[str]) -> list[str]:
    # Dynamic mode rewrites Gemm X into MatMul "X_MatMul" + Add before it checks exclusions.
    gemms = {n.name for n in model.graph.node if n.op_type == "Gemm"}
    return [*exclude, *(f"{n}_MatMul" for n in exclude if n in gemms)]


def _dynamic(src: Path, out_path: Path, model, external: bool, *, per_channel: bool, reduce_range: bool,
             weight_type: str, exclude: list[str]) -> None:
    import onnx
    from onnxruntime.quantization import quantize_dynamic

    with _quiet_ort():
        quantize_dynamic(
            str(src), str(out_path), per_channel=per_channel, reduce_range=reduce_range,
            weight_type=_quant_type(weight_type),
            nodes_to_exclude=_excluded_with_gemm_aliases(model, exclude),
            use_external_data_format=external,
            # DefaultTensorType: the quantizer's shape inference cannot type the outputs of fused
            # contrib ops (Attention, SkipLayerNormalization, ...) and fails without it.
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT, "MatMulConstBOnly": True},
        )


def _static(src: Path, out_path: Path, model, feeds, input_names, external: bool, *, per_channel: bool,
            reduce_range: bool, weight_type: str, exclude: list[str], symmetric: bool, calibration_samples: int,
            calibration_method: str) -> int:
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    reader, rows = _calibration_reader(feeds, input_names, calibration_samples)
    # Fused graphs: the calibrator only records tensors whose type is known, and plain ONNX shape
    # inference does not type contrib-op outputs; symbolic inference does.
    typed = _save(_symbolic_shapes(model), src)
    method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
              "percentile": CalibrationMethod.Percentile}[calibration_method]
    with _quiet_ort():
        quantize_static(
            str(typed), str(out_path), reader, quant_format=QuantFormat.QDQ,
            op_types_to_quantize=_STATIC_OP_TYPES, per_channel=per_channel, reduce_range=reduce_range,
            activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
            weight_type=_quant_type(weight_type), nodes_to_exclude=list(exclude),
            use_external_data_format=external, calibrate_method=method,
            extra_options={
                "ActivationSymmetric": symmetric,
                "WeightSymmetric": weight_type == "s8",
                "MatMulConstBOnly": True,
                "DefaultTensorType": onnx.TensorProto.FLOAT,
                # bounds calibration memory: ranges are merged every N batches
                "CalibMaxIntermediateOutputs": 16,
            },
        )
    return rows


def _to_fp16(model, out_path: Path, exclude: list[str]) -> None:
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST
    from onnxruntime.transformers.onnx_model import OnnxModel

    wrapper = OnnxModel(model)
    with _quiet_ort():
        wrapper.convert_float_to_float16(
            keep_io_types=True,  # callers keep feeding / reading float32
            op_block_list=list(DEFAULT_OP_BLOCK_LIST) + list(FP16_KEEP_FP32_OPS),
            node_block_list=list(exclude),
        )
    _save(wrapper.model, out_path)


# -- torch -----------------------------------------------------------------------------------

def torch_quantize_dynamic(model, *, per_channel: bool = False):
    """A copy of a torch model with every ``nn.Linear`` replaced by a dynamic int8 Linear (qint8).

    ``torch.ao.quantization.quantize_dynamic``: int8 weights, activations quantized per batch; CPU
    only (x86 fbgemm / ARM qnnpack kernels). The input model is left unchanged. For TorchScript and
    eager CPU targets; ONNX targets use :func:`quantize_onnx`.
    """
    import torch
    from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig, quantize_dynamic

    params = list(model.parameters())
    if params and any(p.device.type != "cpu" for p in params):
        raise CompressionError("torch int8 dynamic quantization runs on CPU only: move the model with model.cpu() first")
    if params and any(p.dtype != torch.float32 for p in params):
        raise CompressionError("torch int8 dynamic quantization needs a float32 model: call model.float() first")
    qconfig = per_channel_dynamic_qconfig if per_channel else default_dynamic_qconfig
    with warnings.catch_warnings():  # torch >= 2.10 announces the deprecation of quantized tensors
        warnings.simplefilter("ignore")
        quantized = quantize_dynamic(model, {torch.nn.Linear: qconfig}, dtype=torch.qint8, inplace=False)
    return quantized.eval() if not model.training else quantized


# -- accuracy-aware search -------------------------------------------------------------------

def onnx_accuracy_fn(tokenizer, texts: Sequence[str], labels: Sequence[int], *, batch_size: int = 32,
                     max_length: int = 128, pairs: Sequence[str] | None = None) -> Callable[[str | os.PathLike], float]:
    """An ``eval_fn(onnx_path) -> accuracy`` (fraction in [0, 1]) over labelled texts, via onnxruntime CPU.

    ``pairs``: the second sentences of a sentence-pair task, one per text. The texts are tokenized
    once (padded batches); each call opens a session on the given file.
    """
    from edgebert.data import encode_texts
    from edgebert.export.onnx import onnx_feeds
    from edgebert.runtime.backends import open_session

    texts = [str(t) for t in texts]
    labels_arr = np.asarray(labels, dtype=np.int64)
    if not texts or len(texts) != len(labels_arr):
        raise CompressionError(f"onnx_accuracy_fn needs one label per text (got {len(texts)} texts, {len(labels_arr)} labels)")
    encoded = [dict(encode_texts(tokenizer, texts[s:s + batch_size],
                                 None if pairs is None else list(pairs)[s:s + batch_size],
                                 padding="longest", truncation=True, max_length=max_length, return_tensors="np"))
               for s in range(0, len(texts), batch_size)]

    def evaluate(path: str | os.PathLike) -> float:
        session = open_session(path, threads=1)  # small eval sets: threads cost more than they bring
        names = [i.name for i in session.get_inputs()]
        out = [o.name for o in session.get_outputs()]
        output = "logits" if "logits" in out else out[0]
        preds = [np.asarray(session.run([output], onnx_feeds(names, enc))[0]).argmax(-1) for enc in encoded]
        return float((np.concatenate(preds) == labels_arr).mean())

    return evaluate


def _accuracy(eval_fn, path) -> float:
    acc = float(eval_fn(str(path)))
    if not 0.0 <= acc <= 1.0 or math.isnan(acc):
        raise CompressionError(f"eval_fn must return accuracy as a fraction in [0, 1]; got {acc} for {path}")
    return acc


def layer_sensitivity(fp32_onnx: str | os.PathLike, quantize_fn: Callable[[str, str, list[str]], Any],
                      eval_fn: Callable[[str], float], groups: Mapping[str, Sequence[str]], *,
                      baseline: float | None = None, workdir: str | os.PathLike | None = None,
                      ) -> list[tuple[str, float]]:
    """How much accuracy each group of nodes loses when it alone is quantized; most sensitive first.

    For every group, ``quantize_fn(fp32_onnx, out_path, exclude)`` writes a model in which only that
    group is quantized (``exclude`` lists the nodes of all other groups; nodes outside every group
    are left to ``quantize_fn``), and ``eval_fn(out_path)`` gives its accuracy (fraction in [0, 1]).
    Returns ``[(group, accuracy_drop_in_points), ...]`` sorted by drop, largest first; the drop is
    ``100 * (baseline - accuracy)`` with ``baseline`` the fp32 accuracy (measured when not given).
    """
    fp32_onnx = Path(fp32_onnx)
    if baseline is None:
        baseline = _accuracy(eval_fn, fp32_onnx)
    everything = [n for nodes in groups.values() for n in nodes]
    results = []
    with tempfile.TemporaryDirectory(prefix="edgebert-sens-", dir=workdir) as tmp:
        for i, (group, nodes) in enumerate(groups.items()):
            own = set(nodes)
            out = Path(tmp) / f"only_{i}.onnx"
            quantize_fn(str(fp32_onnx), str(out), [n for n in everything if n not in own])
            results.append((group, 100.0 * (baseline - _accuracy(eval_fn, out))))
            for f in Path(tmp).glob(f"only_{i}.onnx*"):
                f.unlink()
    order = {g: i for i, g in enumerate(groups)}
    return sorted(results, key=lambda r: (-r[1], order[r[0]]))


def quantize_with_budget(fp32_path: str | os.PathLike, out_path: str | os.PathLike,
                         eval_fn: Callable[[str], float], *, max_accuracy_drop: float | None = None,
                         mode: str = "int8-dynamic", per_channel: bool = False, symmetric: bool = False,
                         reduce_range: bool = False, weight_type: str = "s8", calibration_samples: int = 256,
                         calibration_method: str = "minmax", exclude: Sequence[str] = (),
                         calibration_feeds: Iterable[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Quantize within an accuracy budget, keeping the most sensitive layers in float when needed.

    The settings after ``max_accuracy_drop`` are :func:`quantize_onnx`'s.

    1. Quantize everything (except ``exclude``) and measure the accuracy with ``eval_fn``
       (``eval_fn(onnx_path) -> accuracy`` in [0, 1], e.g. :func:`onnx_accuracy_fn` on the dev split).
    2. If the drop from fp32 exceeds ``max_accuracy_drop`` points (None: no search), measure every layer group's
       sensitivity (:func:`layer_groups`, :func:`layer_sensitivity`), then keep groups in float, most
       sensitive first, one more per attempt, until the drop is within budget or all are kept.

    ``out_path`` receives the last attempt (within budget, or the one with every group in float).
    Returns::

        {"fp32_accuracy", "accuracy", "accuracy_drop" (points), "max_accuracy_drop", "within_budget",
         "kept_fp32": [groups kept in float], "excluded_nodes": [node names kept in float],
         "sensitivity": [(group, drop in points), ...] (empty when no search was needed),
         "attempts": [{"kept_fp32": [...], "accuracy", "accuracy_drop"}, ...],
         "quantize": quantize_onnx's report of the final model}
    """
    if mode not in ONNX_MODES:
        raise ConfigError(f"quantize_with_budget handles modes {', '.join(ONNX_MODES)}; got '{mode}'.")
    exclude = list(exclude)
    settings = {"mode": mode, "per_channel": per_channel, "symmetric": symmetric, "reduce_range": reduce_range,
                "weight_type": weight_type, "calibration_samples": calibration_samples,
                "calibration_method": calibration_method}
    fp32_path, out_path = Path(fp32_path), Path(out_path)
    feeds = list(calibration_feeds) if calibration_feeds is not None else None  # reused per attempt
    budget = max_accuracy_drop
    fp32_acc = _accuracy(eval_fn, fp32_path)

    def run(dst: Path, extra: Sequence[str]) -> dict[str, Any]:
        return quantize_onnx(fp32_path, dst, **settings, exclude=list(dict.fromkeys([*exclude, *extra])),
                             calibration_feeds=feeds)

    out_path.parent.mkdir(parents=True, exist_ok=True)
    attempts: list[dict[str, Any]] = []
    sensitivity: list[tuple[str, float]] = []
    kept: list[str] = []
    excluded: list[str] = []
    with tempfile.TemporaryDirectory(prefix="edgebert-budget-", dir=out_path.parent) as tmp:
        def attempt(extra: list[str]) -> tuple[Path, dict[str, Any], float]:
            dst = Path(tmp) / f"attempt_{len(attempts)}.onnx"
            report = run(dst, extra)
            acc = _accuracy(eval_fn, dst)
            attempts.append({"kept_fp32": list(kept), "accuracy": acc, "accuracy_drop": 100.0 * (fp32_acc - acc)})
            return dst, report, acc

        path, report, acc = attempt([])
        if budget is not None and 100.0 * (fp32_acc - acc) > budget:
            groups = layer_groups(fp32_path, mode)
            groups = {g: [n for n in nodes if n not in exclude] for g, nodes in groups.items()}
            groups = {g: nodes for g, nodes in groups.items() if nodes}
            sensitivity = layer_sensitivity(fp32_path, lambda i, o, ex: run(Path(o), ex), eval_fn, groups,
                                            baseline=fp32_acc, workdir=tmp)
            for group, _ in sensitivity:
                kept.append(group)
                excluded.extend(groups[group])
                path, report, acc = attempt(excluded)
                if 100.0 * (fp32_acc - acc) <= budget:
                    break
        final = _load(path)
        _save(final, out_path)
    report = dict(report, path=str(out_path))
    from edgebert.export.fuse import model_file_bytes

    report["bytes_out"] = model_file_bytes(out_path)
    drop = 100.0 * (fp32_acc - acc)
    return {
        "fp32_accuracy": fp32_acc,
        "accuracy": acc,
        "accuracy_drop": drop,
        "max_accuracy_drop": budget,
        "within_budget": budget is None or drop <= budget,
        "kept_fp32": kept,
        "excluded_nodes": excluded,
        "sensitivity": sensitivity,
        "attempts": attempts,
        "quantize": report,
    }
