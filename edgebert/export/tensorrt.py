"""TensorRT engines from an exported classifier: Python build (TensorRT 10 API) and a trtexec script.

A TensorRT engine (``.plan``) is specific to the GPU, the TensorRT version and the CUDA version it
was built with: an engine for a Jetson must be built on that Jetson. Hence two routes:

* :func:`build_engine` builds a plan with TensorRT's Python API where ``tensorrt`` is importable
  (a server GPU, or on the Jetson itself);
* :func:`write_build_script` writes ``build_engine.sh``, the equivalent ``trtexec`` command, to ship
  next to ``model.onnx`` and run on the device (JetPack puts trtexec in /usr/src/tensorrt/bin).

Both take the plain ONNX export (:func:`edgebert.export.export_onnx`): the TensorRT ONNX parser does
not know onnxruntime's fused ``com.microsoft`` operators, and TensorRT fuses attention itself.
Every input is (batch, sequence), int64, with one optimization profile (min / opt / max shapes).

Precisions:

* ``fp32``: TF32 disabled, the reference;
* ``fp16``: FP16 kernels allowed, LayerNormalization layers constrained to fp32
  (``OBEY_PRECISION_CONSTRAINTS``): their variance overflows fp16 after the residual adds;
* ``int8``: explicit quantization from a QDQ model written by
  :func:`edgebert.compress.quantize.quantize_onnx` with ``mode="int8-static", symmetric=True``
  (TensorRT needs int8 with zero point 0); layers without Q/DQ run in fp16. TensorRT 10 deprecates
  implicit calibration (``IInt8Calibrator``), so none is used.

A timing cache (``timing_cache=``) makes rebuilds with the same shapes much faster; it is loaded when
present and saved after the build. Built engines run with :class:`edgebert.runtime.backends.tensorrt.Engine`.
"""

from __future__ import annotations

import os
import shlex
import stat
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgebert.errors import ConfigError, ExportError
# The engine runner is the runtime's (export/ builds on runtime/, never the other way round); the names
# stay importable from here.
from edgebert.runtime.backends.tensorrt import Engine, run_engine, tensorrt_available
from edgebert.runtime.backends.tensorrt import import_tensorrt as _import_tensorrt

__all__ = ["PRECISIONS", "Engine", "build_engine", "layernorm_node_names", "run_engine", "tensorrt_available",
           "write_build_script"]

PRECISIONS = ("fp32", "fp16", "int8")
#: name of the script :func:`write_build_script` writes
SCRIPT_NAME = "build_engine.sh"

Shape = tuple[int, int]  # (batch, sequence)


def _check_shapes(min_shape, opt_shape, max_shape) -> tuple[Shape, Shape, Shape]:
    shapes = []
    for what, shape in (("min", min_shape), ("opt", opt_shape), ("max", max_shape)):
        try:
            b, s = (int(v) for v in shape)
        except (TypeError, ValueError):
            raise ConfigError(f"{what} shape must be (batch, sequence); got {shape!r}.") from None
        if b < 1 or s < 1:
            raise ConfigError(f"{what} shape must be positive (batch, sequence); got {shape!r}.")
        shapes.append((b, s))
    lo, mid, hi = shapes
    if not (lo[0] <= mid[0] <= hi[0] and lo[1] <= mid[1] <= hi[1]):
        raise ConfigError(f"Shapes must satisfy min <= opt <= max per dimension; got min {lo}, opt {mid}, max {hi}.")
    return lo, mid, hi


def _check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}; got '{precision}'.")


def layernorm_node_names(onnx_path: str | os.PathLike) -> list[str]:
    """Names of the LayerNormalization nodes of an ONNX file (TensorRT names its layers after them)."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    return [n.name for n in model.graph.node if n.op_type == "LayerNormalization" and n.name]


def _inspect_onnx(onnx_path: Path, precision: str) -> list[str]:
    """Check that TensorRT can take the graph at this precision; return its input names."""
    import onnx

    if not onnx_path.is_file():
        raise ExportError(f"ONNX file '{onnx_path}' does not exist. Export it first: edgebert.export.export_onnx(...)")
    model = onnx.load(str(onnx_path), load_external_data=False)
    contrib = sorted({n.op_type for n in model.graph.node if n.domain not in ("", "ai.onnx")})
    if contrib:
        raise ExportError(
            f"'{onnx_path.name}' holds onnxruntime-only operators ({', '.join(contrib)}) that TensorRT cannot "
            "parse. Build the engine from the plain export (export_onnx), not from a fused or dynamically "
            "quantized graph."
        )
    q_nodes = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    if precision == "int8":
        if not q_nodes:
            raise ExportError(
                "int8 engines need an explicitly quantized (QDQ) model: quantize_onnx(..., "
                "mode='int8-static', symmetric=True) first. TensorRT 10 deprecates implicit calibration."
            )
        inits = {i.name: i for i in model.graph.initializer}
        for node in q_nodes:
            zp = inits.get(node.input[2]) if len(node.input) > 2 else None
            if zp is None:
                continue
            from onnx import numpy_helper

            if zp.data_type != onnx.TensorProto.INT8 or np.any(numpy_helper.to_array(zp, base_dir=str(onnx_path.parent)) != 0):
                raise ExportError(
                    f"TensorRT needs symmetric int8 quantization (int8, zero point 0); node '{node.name}' is not. "
                    "Quantize with quantize_onnx(..., mode='int8-static', symmetric=True, weight_type='s8')."
                )
    return [i.name for i in model.graph.input]


def build_engine(onnx_path: str | os.PathLike, plan_path: str | os.PathLike, *, min_shape: Shape,
                 opt_shape: Shape, max_shape: Shape, precision: str = "fp16",
                 timing_cache: str | os.PathLike | None = None, workspace_mb: int = 1024,
                 verbose: bool = False) -> dict[str, Any]:
    """Build and serialize a TensorRT engine (``plan_path``) from a plain ONNX export.

    ``min_shape`` / ``opt_shape`` / ``max_shape`` are (batch, sequence) and apply to every input
    (one optimization profile). ``precision`` is fp32 / fp16 / int8 (see the module docstring).
    ``timing_cache`` is a file loaded when it exists and written after the build. ``workspace_mb``
    caps the builder's scratch memory. Returns::

        {"plan_path", "plan_bytes", "precision", "tensorrt_version", "inputs": [...],
         "shapes": {"min", "opt", "max"}, "fp32_layers": [layers constrained to fp32],
         "timing_cache": path or None, "build_seconds"}

    Raises ConfigError for bad shapes / precision, ExportError for graphs TensorRT cannot take (or
    a failed build), MissingDependencyError where TensorRT is not installed.
    """
    onnx_path, plan_path = Path(onnx_path), Path(plan_path)
    _check_precision(precision)
    lo, mid, hi = _check_shapes(min_shape, opt_shape, max_shape)
    if int(workspace_mb) < 1:
        raise ConfigError(f"workspace_mb must be at least 1; got {workspace_mb}.")
    _inspect_onnx(onnx_path, precision)
    trt = _import_tensorrt()

    started = time.perf_counter()
    logger = trt.Logger(trt.Logger.VERBOSE if verbose else trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: networks are always explicit-batch
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):  # by path: resolves external data files
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"TensorRT could not parse '{onnx_path}': {errors}")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mb) << 20)
    profile = builder.create_optimization_profile()
    inputs = []
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        if len(tensor.shape) != 2:
            raise ExportError(f"Input '{tensor.name}' has shape {tuple(tensor.shape)}; expected (batch, sequence).")
        profile.set_shape(tensor.name, lo, mid, hi)
        inputs.append(tensor.name)
    config.add_optimization_profile(profile)

    fp32_layers: list[str] = []
    if precision == "fp32":
        config.clear_flag(trt.BuilderFlag.TF32)  # fp32 means fp32: no 10-bit-mantissa matmuls
    else:
        config.set_flag(trt.BuilderFlag.FP16)
        if precision == "int8":
            # Explicit quantization, weakly typed: Q/DQ layers decide where int8 runs; everything
            # else may use fp16.
            config.set_flag(trt.BuilderFlag.INT8)
        for i in range(network.num_layers):
            layer = network.get_layer(i)
            if layer.type == trt.LayerType.NORMALIZATION:
                layer.precision = trt.float32
                for j in range(layer.num_outputs):
                    layer.set_output_type(j, trt.float32)
                fp32_layers.append(layer.name)
        if fp32_layers:
            config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)

    cache_path = Path(timing_cache) if timing_cache is not None else None
    if cache_path is not None:
        data = cache_path.read_bytes() if cache_path.is_file() else b""
        cache = config.create_timing_cache(data)
        config.set_timing_cache(cache, ignore_mismatch=False)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError(
            f"TensorRT failed to build an engine from '{onnx_path}' ({precision}); rerun with verbose=True for "
            "the builder log."
        )
    plan_path.parent.mkdir(parents=True, exist_ok=True)
    with open(plan_path, "wb") as f:
        f.write(serialized)
    if cache_path is not None:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        cache_path.write_bytes(bytes(config.get_timing_cache().serialize()))
    return {
        "plan_path": str(plan_path),
        "plan_bytes": plan_path.stat().st_size,
        "precision": precision,
        "tensorrt_version": str(trt.__version__),
        "inputs": inputs,
        "shapes": {"min": lo, "opt": mid, "max": hi},
        "fp32_layers": fp32_layers,
        "timing_cache": str(cache_path) if cache_path is not None else None,
        "build_seconds": time.perf_counter() - started,
    }



def _shape_arg(names: Sequence[str], shape: Shape) -> str:
    return ",".join(f"{n}:{shape[0]}x{shape[1]}" for n in names)


def write_build_script(onnx_name: str, plan_name: str, out_dir: str | os.PathLike, *,
                       shapes: Mapping[str, Shape], precision: str, input_names: Sequence[str],
                       timing_cache: str = "timing.cache", workspace_mb: int = 1024,
                       fp32_layers: Sequence[str] | None = None) -> Path:
    """Write ``out_dir/build_engine.sh``: the trtexec command that builds ``plan_name`` on the device.

    ``onnx_name`` / ``plan_name`` / ``timing_cache`` are file names relative to the script's folder
    (the script changes into it). ``shapes`` maps ``min`` / ``opt`` / ``max`` to (batch, sequence),
    applied to every name in ``input_names``. For fp16 / int8 the LayerNormalization layers are
    pinned to fp32 (``--precisionConstraints=obey --layerPrecisions=... --layerOutputTypes=...``):
    ``fp32_layers`` names them, by default read from ``out_dir/onnx_name`` when it exists. Extra
    arguments to the script are passed on to trtexec; ``TRTEXEC=/path/to/trtexec`` overrides where
    it is found. Returns the script's path (executable).
    """
    _check_precision(precision)
    missing = [k for k in ("min", "opt", "max") if k not in shapes]
    if missing:
        raise ConfigError(f"shapes needs 'min', 'opt' and 'max' (batch, sequence) entries; missing {', '.join(missing)}.")
    lo, mid, hi = _check_shapes(shapes["min"], shapes["opt"], shapes["max"])
    names = [str(n) for n in input_names]
    if not names:
        raise ConfigError("input_names is empty: pass the ONNX graph's input names (onnx_input_names(model)).")
    bad = [n for n in names if any(c in n for c in ",: \t\n'\"")]
    if bad:
        raise ConfigError(f"Input names cannot contain ',', ':', quotes or spaces in a trtexec shape spec: {bad}.")
    if int(workspace_mb) < 1:
        raise ConfigError(f"workspace_mb must be at least 1; got {workspace_mb}.")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if fp32_layers is None:
        onnx_file = out_dir / onnx_name
        fp32_layers = layernorm_node_names(onnx_file) if precision != "fp32" and onnx_file.is_file() else []
    pinned = [n for n in fp32_layers if n and not any(c in n for c in ",:")]

    args = [
        f"--onnx={onnx_name}",
        f"--saveEngine={plan_name}",
        f"--minShapes={_shape_arg(names, lo)}",
        f"--optShapes={_shape_arg(names, mid)}",
        f"--maxShapes={_shape_arg(names, hi)}",
    ]
    if precision == "fp32":
        args.append("--noTF32")
    else:
        args.append("--fp16")
        if precision == "int8":
            args.append("--int8")  # explicit quantization: the QDQ nodes in the model decide
        if pinned:
            spec_p = ",".join(f"{n}:fp32" for n in pinned)
            args += ["--precisionConstraints=obey", f"--layerPrecisions={spec_p}", f"--layerOutputTypes={spec_p}"]
    args += [f"--memPoolSize=workspace:{int(workspace_mb)}M", f"--timingCacheFile={timing_cache}"]

    notes = {
        "fp32": "fp32 (TF32 off)",
        "fp16": "fp16, LayerNorm layers kept fp32",
        "int8": "int8 from the model's Q/DQ nodes (explicit quantization), other layers fp16, LayerNorm fp32",
    }
    lines = [
        "#!/usr/bin/env bash",
        "# Builds a TensorRT engine from the ONNX model beside this script. Written by edgebert.",
        "# Run it ON THE TARGET DEVICE (e.g. the Jetson): an engine only works with the GPU, TensorRT",
        "# and CUDA versions it was built with. Extra arguments are passed to trtexec.",
        f"# Precision: {notes[precision]}.",
        "# Layers pinned to fp32 are named after their ONNX nodes; should trtexec not find one, list the",
        "# engine's layers with --dumpLayerInfo --profilingVerbosity=detailed.",
        f"# Shapes (batch x sequence) for inputs {', '.join(names)}: "
        f"min {lo[0]}x{lo[1]}, opt {mid[0]}x{mid[1]}, max {hi[0]}x{hi[1]}.",
        "set -euo pipefail",
        'cd "$(dirname "$0")"',
        'TRTEXEC="${TRTEXEC:-$(command -v trtexec || echo /usr/src/tensorrt/bin/trtexec)}"',
        'if [ ! -x "$TRTEXEC" ]; then',
        '  echo "trtexec not found. Set TRTEXEC=/path/to/trtexec (JetPack: /usr/src/tensorrt/bin/trtexec)." >&2',
        "  exit 1",
        "fi",
        '"$TRTEXEC" \\',
    ]
    lines += [f"  {shlex.quote(a)} \\" for a in args]
    lines.append('  "$@"')
    path = out_dir / SCRIPT_NAME
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path
