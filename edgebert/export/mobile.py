"""ONNX Runtime Mobile packaging: ``.ort`` format model, required-operators config, usability check.

:func:`export_mobile` runs onnxruntime's own tools, through their Python APIs:

* ``onnxruntime.tools.convert_onnx_models_to_ort`` writes ``<name>.ort`` (the flatbuffer format the
  mobile and minimal builds load) and ``<name>.required_operators.config``, the operator list a
  reduced-size onnxruntime build takes (``build.sh --minimal_build --include_ops_by_config ...``);
* ``onnxruntime.tools.check_onnx_model_mobile_usability`` (its ``usability_checker``) estimates how
  well the NNAPI (Android) and CoreML (iOS) execution providers would run the model; its log lines
  and a per-provider summary are returned.

The ``.ort`` file is then opened with onnxruntime (a full build reads the ORT format too) and its
logits compared with the ``.onnx`` file's.

Style ``Fixed`` (default) bakes the graph optimizations into the file: right for the CPU execution
provider. ``Runtime`` keeps them replayable at load time, which suits NNAPI / CoreML, where the
nodes a provider takes are known only on the device.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgebert.errors import ConfigError, ExportError, ExportValidationError

__all__ = ["MOBILE_TOLERANCE", "export_mobile", "mobile_usability"]

#: why a text-in graph gets no usability check (recorded in its report)
TEXT_IN_USABILITY = ("not checked: onnxruntime's mobile usability checker loads the graph without the "
                     "onnxruntime-extensions operators a text-in graph holds (its tokenizer, which runs on the CPU "
                     "execution provider); the token-in model (recipe mobile-token-in) can be checked for NNAPI / CoreML")

#: largest |onnx - ort| logit accepted (same runtime and kernels; differences come from the baked
#: optimizations reordering float math)
MOBILE_TOLERANCE = 1e-3


@contextlib.contextmanager
def _quiet_logger(name: str):
    log = logging.getLogger(name)
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        log.setLevel(level)


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def mobile_usability(onnx_path: str | os.PathLike) -> dict[str, Any]:
    """Run onnxruntime's mobile usability checker on an ONNX file; return its findings.

    As ``python -m onnxruntime.tools.check_onnx_model_mobile_usability``: the graph is optimized to
    the basic level (as the ORT-format conversion does), then checked for the NNAPI (Android) and
    CoreML (iOS) execution providers. Returns::

        {"try_nnapi_or_coreml": the checker's verdict (False: use the CPU execution provider),
         "providers": {"NNAPI" | "CoreML NeuralNetwork" | "CoreML MLProgram":
                       {"suitability": "YES" | "MAYBE" | "NO" (shapes as they are),
                        "suitability_fixed_shapes": the same if the inputs had fixed shapes,
                        "partitions", "supported_nodes", "nodes", "unsupported_ops": [...]}},
         "dynamic_inputs": [input names with dynamic shapes],
         "log": [the checker's log lines]}

    Dynamic shapes can be fixed with ``python -m onnxruntime.tools.make_dynamic_shape_fixed``.
    """
    import tempfile

    from onnxruntime.tools.mobile_helpers import usability_checker as uc
    from onnxruntime.tools.onnx_model_utils import ModelProtoWithShapeInfo, optimize_model

    onnx_path = Path(onnx_path).resolve()
    logger = logging.getLogger("edgebert.mobile_usability")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = _Collect()
    logger.addHandler(handler)
    report: dict[str, Any] = {"try_nnapi_or_coreml": False, "providers": {}, "dynamic_inputs": [], "log": []}
    try:
        with tempfile.TemporaryDirectory(prefix="edgebert-mobile-") as tmp, \
                contextlib.redirect_stdout(io.StringIO()):
            optimized = Path(tmp) / onnx_path.name
            optimize_model(onnx_path, optimized, use_external_initializers=True)
            logger.info(f"Checking {onnx_path} for usability with ORT Mobile.")
            report["try_nnapi_or_coreml"] = bool(uc.checker(optimized, logger))
            # The same checks once more, kept as numbers rather than log lines. These helpers are
            # internal to onnxruntime's tools: on failure the log above still holds the findings.
            try:
                model = ModelProtoWithShapeInfo(optimized).model_with_shape_info
                dynamic, _ = uc.check_shapes(model.graph)
                report["dynamic_inputs"] = [i.name for i in dynamic]
                checks = {
                    "NNAPI": lambda fixed: uc.check_nnapi_partitions(model, fixed),
                    "CoreML NeuralNetwork": lambda fixed: uc.check_coreml_partitions(
                        model, fixed, "coreml_supported_neuralnetwork_ops.md"),
                    "CoreML MLProgram": lambda fixed: uc.check_coreml_partitions(
                        model, fixed, "coreml_supported_mlprogram_ops.md"),
                }
                for name, check in checks.items():
                    info = check(True)  # require fixed input sizes: the model as it is
                    report["providers"][name] = {
                        "suitability": info.suitability().name,
                        "suitability_fixed_shapes": check(False).suitability().name,
                        "partitions": int(info.num_partitions),
                        "supported_nodes": int(info.num_supported_nodes),
                        "nodes": int(info.num_nodes),
                        "unsupported_ops": sorted(info.unsupported_ops),
                    }
            except Exception as exc:
                report["providers_error"] = f"{type(exc).__name__}: {exc}"
    except Exception as exc:
        raise ExportError(f"The mobile usability check of '{onnx_path}' failed: {exc}") from exc
    finally:
        logger.removeHandler(handler)
    report["log"] = handler.lines
    return report


def _vocab_size(model) -> int | None:
    """Rows of the word-embedding table the ``input_ids`` input indexes (None if not found)."""
    inits = {i.name: i for i in model.graph.initializer}
    names = {"input_ids"}
    for node in model.graph.node:  # follow input_ids through Casts to the embedding lookup
        if node.op_type == "Cast" and node.input and node.input[0] in names:
            names.update(node.output)
    for node in model.graph.node:
        if node.op_type == "Gather" and len(node.input) == 2 and node.input[1] in names and node.input[0] in inits:
            return int(inits[node.input[0]].dims[0])
        if node.op_type in ("EmbedLayerNormalization", "QEmbedLayerNormalization") and node.input \
                and node.input[0] in names and len(node.input) > 2 and node.input[2] in inits:
            return int(inits[node.input[2]].dims[0])
    return None


#: texts a text-in model is checked on when none are given
_CHECK_TEXTS = ("I lost my card yesterday", "this film was a delight", "how do I change my PIN?")


def _takes_strings(onnx_path: Path) -> bool:
    """True for a text-in graph: its input is a string tensor."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    return any(i.type.tensor_type.elem_type == onnx.TensorProto.STRING for i in model.graph.input)


def _synthetic_feeds(onnx_path: Path) -> list[dict[str, np.ndarray]]:
    """Two batches of valid token ids (batch 1 and a padded batch 3) for the graph's inputs."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    vocab = _vocab_size(model) or 2
    rng = np.random.default_rng(0)
    names = [i.name for i in model.graph.input]
    out = []
    for batch, length in ((1, 7), (3, 12)):
        ids = rng.integers(0, vocab, size=(batch, length), dtype=np.int64)
        mask = np.ones((batch, length), dtype=np.int64)
        if batch > 1:
            mask[1, 8:] = 0  # one padded row
            ids[1, 8:] = 0
        feed = {}
        for name in names:
            feed[name] = ids if name == "input_ids" else mask if name == "attention_mask" else np.zeros_like(ids)
        out.append(feed)
    return out


def _session(path: Path, config: dict[str, str] | None = None, custom_ops: str | None = None):
    from edgebert.runtime.backends import open_session

    return open_session(path, config=config, custom_ops=custom_ops)


def export_mobile(onnx_path: str | os.PathLike, out_dir: str | os.PathLike, *, style: str = "Fixed",
                  target_platform: str | None = "arm", tokenizer=None, texts: Sequence[str] | None = None,
                  pairs: Sequence[str] | None = None, check_usability: bool = True) -> dict[str, Any]:
    """Convert ``onnx_path`` to ORT format in ``out_dir``, write its operator config, check it.

    ``style`` is ``"Fixed"`` or ``"Runtime"`` (see the module docstring); ``target_platform``
    ``"arm"`` (phones, Jetson: allows int8 QDQ kernels) or ``"amd64"``. The ``.ort`` file is run
    next to the ``.onnx`` file on ``texts`` (with ``pairs``, the second sentences of a sentence-pair
    task; tokenized with ``tokenizer``) when both are given, else
    on synthetic token ids; logits must agree within :data:`MOBILE_TOLERANCE`. A text-in model
    (:mod:`edgebert.export.textin`) is converted with the onnxruntime-extensions operator library
    and run on ``texts`` (or a few built-in ones) as strings. Returns::

        {"ort_path", "config_path", "onnx_bytes", "ort_bytes",
         "required_operators": ["ai.onnx;17;Add,...", ...] (the config's operator lines),
         "max_abs_logit_diff", "label_agreement", "text_in" (the graph takes strings),
         "usability": mobile_usability(onnx_path)   # when check_usability; for a text-in graph
                                                    # {"skipped": why} (the checker cannot load it)}
    """
    from onnxruntime.tools.convert_onnx_models_to_ort import OptimizationStyle, convert_onnx_models_to_ort

    from edgebert.export.fuse import model_file_bytes

    onnx_path, out_dir = Path(onnx_path).resolve(), Path(out_dir)
    if not onnx_path.is_file() or onnx_path.suffix != ".onnx":
        raise ExportError(f"'{onnx_path}' is not an ONNX file (.onnx). Export one first: edgebert.export.export_onnx(...)")
    if style not in ("Fixed", "Runtime"):
        raise ConfigError(f"style must be 'Fixed' or 'Runtime'; got '{style}'.")
    if target_platform not in (None, "arm", "amd64"):
        raise ConfigError(f"target_platform must be 'arm', 'amd64' or None; got '{target_platform}'.")
    # A text-in graph (edgebert.export.textin) holds onnxruntime-extensions operators: the converter
    # and the sessions below need their library, and the check feeds strings.
    text_in = _takes_strings(onnx_path)
    custom_ops = None
    if text_in:
        from edgebert.runtime.textin import extensions_library

        custom_ops = extensions_library()
    out_dir.mkdir(parents=True, exist_ok=True)
    out_dir = out_dir.resolve()
    try:
        # The converter prints progress; errors are raised.
        with contextlib.redirect_stdout(io.StringIO()), _quiet_logger("ort_format_model.utils"):
            convert_onnx_models_to_ort(onnx_path, output_dir=out_dir,
                                       optimization_styles=[OptimizationStyle[style]],
                                       target_platform=target_platform,
                                       custom_op_library_path=Path(custom_ops) if custom_ops else None)
    except Exception as exc:
        raise ExportError(f"onnxruntime could not convert '{onnx_path}' to ORT format: {exc}") from exc
    suffix = ".with_runtime_opt" if style == "Runtime" else ""
    ort_path = out_dir / (onnx_path.stem + suffix + ".ort")
    config_path = out_dir / (onnx_path.stem + f".required_operators{suffix}.config")
    if not ort_path.is_file() or not config_path.is_file():
        raise ExportError(f"The ORT converter did not write {ort_path.name} and {config_path.name} in {out_dir}.")
    operators = [line.strip() for line in config_path.read_text(encoding="utf-8").splitlines()
                 if line.strip() and not line.startswith("#")]

    try:
        ort_session = _session(ort_path, custom_ops=custom_ops)
    except Exception as exc:
        raise ExportValidationError(f"onnxruntime cannot load the converted file '{ort_path}': {exc}") from exc
    # The reference session optimizes the .onnx graph the way the converter did for the target
    # platform: "arm" lets int8 Q/DQ pairs fuse into signed-int8 kernels (session.qdqisint8allowed),
    # which round differently from the x86 default; without the same setting the comparison would
    # measure two different int8 kernels, not the conversion.
    onnx_session = _session(onnx_path, {"session.qdqisint8allowed": "1" if target_platform == "arm" else "0"},
                            custom_ops)
    names = [i.name for i in onnx_session.get_inputs()]
    if text_in:
        from edgebert.runtime.textin import text_feeds

        texts = list(texts or _CHECK_TEXTS)
        feeds = [text_feeds([t]) for t in texts] + [text_feeds(texts)]
    elif tokenizer is not None and texts:
        from edgebert.export.onnx import onnx_feeds

        from edgebert.data import encode_texts

        texts = list(texts)
        feeds = [onnx_feeds(names, dict(encode_texts(tokenizer, texts[i:i + 1], None if pairs is None else
                                                     [pairs[i]], return_tensors="np", truncation=True)))
                 for i in range(len(texts))]
        feeds.append(onnx_feeds(names, dict(encode_texts(tokenizer, texts, pairs, padding="longest",
                                                         truncation=True, return_tensors="np"))))
    else:
        feeds = _synthetic_feeds(onnx_path)
    out_name = onnx_session.get_outputs()[0].name
    diffs, agree = [], []
    for feed in feeds:
        ref = np.asarray(onnx_session.run([out_name], feed)[0], dtype=np.float32)
        got = np.asarray(ort_session.run([out_name], feed)[0], dtype=np.float32)
        diffs.append(float(np.abs(ref - got).max()))
        agree.extend((ref.argmax(-1) == got.argmax(-1)).tolist())
    diff = max(diffs)
    if diff > MOBILE_TOLERANCE:
        raise ExportValidationError(
            f"The ORT-format model disagrees with '{onnx_path.name}': max |logit diff| {diff:.2e} > {MOBILE_TOLERANCE}."
        )
    report = {
        "ort_path": str(ort_path),
        "config_path": str(config_path),
        "onnx_bytes": model_file_bytes(onnx_path),
        "ort_bytes": ort_path.stat().st_size,
        "required_operators": operators,
        "max_abs_logit_diff": diff,
        "label_agreement": float(np.mean(agree)),
        "text_in": text_in,
    }
    if check_usability and text_in:
        # the checker loads the graph without the extensions library, so a text-in graph cannot be checked;
        # its tokenizer operators run on the CPU execution provider whatever the checker would say
        report["usability"] = {"skipped": TEXT_IN_USABILITY}
    elif check_usability:
        report["usability"] = mobile_usability(onnx_path)
    return report
