"""Model file formats: the one table of file suffix -> format -> runtime, and the precision readers.

Every part of edgebert that decides from a file name what a model file is (the runtime's artifact
loader, bench's variant discovery, the artifact's ``deploy`` block) looks it up here::

    format        suffixes                     runtime       run by
    onnx          .onnx                        onnxruntime   edgebert.runtime (no torch)
    ort           .ort                         onnxruntime   edgebert.runtime (no torch)
    torchscript   .pt .pth .torchscript        torchscript   edgebert.runtime (torch)
    tensorrt      .plan .engine                tensorrt      edgebert.runtime (TensorRT + torch, CUDA)
    torch-export  .pt2                         pytorch       PyTorch only (its export stage validates it)
    pytorch       .safetensors                 pytorch       PyTorch, from the checkpoint's folder

The precision readers say at what precision a file computes (fp32 / fp16 / bf16 / int8 / mixed),
read from the file itself (or, for a TensorRT engine, from the manifest of the stage that built it),
never assumed from a target. This module imports nothing heavy: ``onnx`` and ``safetensors`` are
imported by the reader that needs them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


__all__ = [
    "DEPLOYABLE_SUFFIXES", "FILE_RUNTIMES", "FORMATS", "FileFormat", "ONNX_SUFFIXES", "TENSORRT_SUFFIXES",
    "TORCHSCRIPT_SUFFIXES", "file_runtime", "format_of",
    "onnx_precision", "safetensors_precision", "suffixes_of", "torchscript_precision",
]


@dataclass(frozen=True)
class FileFormat:
    """One model file format."""

    name: str  # the deploy block's "format"
    suffixes: tuple[str, ...]  # lower case, with the dot
    runtime: str  # what runs it: onnxruntime | torchscript | tensorrt | pytorch


FORMATS: tuple[FileFormat, ...] = (
    FileFormat("onnx", (".onnx",), "onnxruntime"),
    FileFormat("ort", (".ort",), "onnxruntime"),
    FileFormat("torchscript", (".pt", ".pth", ".torchscript"), "torchscript"),
    FileFormat("tensorrt", (".plan", ".engine"), "tensorrt"),
    FileFormat("torch-export", (".pt2",), "pytorch"),
    FileFormat("pytorch", (".safetensors",), "pytorch"),
)

#: the runtimes that run a model file by itself (edgebert.runtime's backends); a PyTorch checkpoint
#: runs from its folder (config.json + weights) with the model's code, in the training install
FILE_RUNTIMES = ("onnxruntime", "torchscript", "tensorrt")

_BY_SUFFIX = {suffix: fmt for fmt in FORMATS for suffix in fmt.suffixes}


def suffixes_of(runtime: str) -> tuple[str, ...]:
    """The file suffixes run by ``runtime``, in table order."""
    return tuple(s for fmt in FORMATS if fmt.runtime == runtime for s in fmt.suffixes)


ONNX_SUFFIXES = suffixes_of("onnxruntime")
TORCHSCRIPT_SUFFIXES = suffixes_of("torchscript")
TENSORRT_SUFFIXES = suffixes_of("tensorrt")
#: the files the runtime (and bench) run by themselves
DEPLOYABLE_SUFFIXES = ONNX_SUFFIXES + TORCHSCRIPT_SUFFIXES + TENSORRT_SUFFIXES


def format_of(path: str | os.PathLike) -> FileFormat | None:
    """The format of a model file, by its suffix (any case); None for a suffix not in the table."""
    return _BY_SUFFIX.get(Path(path).suffix.lower())


def file_runtime(path: str | os.PathLike) -> str | None:
    """The runtime that runs this file by itself (one of :data:`FILE_RUNTIMES`), or None."""
    fmt = format_of(path)
    return fmt.runtime if fmt is not None and fmt.runtime in FILE_RUNTIMES else None


# -- precision readers -------------------------------------------------------------------------

#: ONNX operators that only an int8-quantized graph holds (dynamic, static QDQ and QOperator forms)
INT8_OPS = frozenset({"MatMulInteger", "QLinearMatMul", "DynamicQuantizeLinear", "QuantizeLinear",
                      "QAttention", "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "QGemm"})


def onnx_precision(path: str | os.PathLike) -> str:
    """fp32 / fp16 / int8 / mixed from the ops and weight types of an ONNX graph ("unknown" for an
    ``.ort`` file or an unreadable one)."""
    path = Path(path)
    if path.suffix == ".ort":
        return "unknown"
    try:
        import onnx

        model = onnx.load(str(path), load_external_data=False)
    except Exception:
        return "unknown"
    import numpy as np

    ops = {n.op_type for n in model.graph.node}
    if ops & INT8_OPS:
        return "int8"
    elements: dict[int, int] = {}
    for init in model.graph.initializer:
        elements[init.data_type] = elements.get(init.data_type, 0) + int(np.prod(init.dims, dtype=np.int64))
    half, single = elements.get(onnx.TensorProto.FLOAT16, 0), elements.get(onnx.TensorProto.FLOAT, 0)
    if half and half >= 0.9 * (half + single):  # fp16 weights; LayerNorm / Softmax inputs kept fp32 are small
        return "fp16"
    if half:
        return "mixed"
    return "fp32"


def safetensors_precision(path: str | os.PathLike) -> str:
    """fp32 / fp16 / bf16 of a safetensors checkpoint whose float tensors all have that type, else mixed."""
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        dtypes = {str(f.get_slice(k).get_dtype()) for k in f.keys()}
    floats = dtypes & {"F32", "F16", "BF16"}
    return {frozenset({"F16"}): "fp16", frozenset({"BF16"}): "bf16", frozenset({"F32"}): "fp32"}.get(
        frozenset(floats), "mixed")


def torchscript_precision(module) -> str:
    """fp16 / fp32 / mixed of a loaded TorchScript module from its parameters' dtypes ("unknown"
    without parameters). Takes the module so that this module never imports torch."""
    dtypes = {str(p.dtype) for p in module.parameters()}
    if not dtypes:
        return "unknown"
    return "fp16" if dtypes == {"torch.float16"} else "fp32" if dtypes <= {"torch.float32"} else "mixed"
