"""Exporting classifiers to deployable formats (ONNX), and checking an export against its source.

Public interface::

    from edgebert.export import export_onnx, validate_onnx, onnx_feeds
    from edgebert.export import fuse_onnx                                   # onnxruntime fusions
    from edgebert.export import export_torchscript, export_pt2, validate_torchscript
    from edgebert.export import export_mobile                               # .ort + operator config
    from edgebert.export import build_engine, write_build_script            # TensorRT

Heavy libraries (torch, onnx, onnxruntime, tensorrt) load inside the functions, not on import.
"""

from __future__ import annotations

from edgebert.export.fuse import fuse_onnx, fusion_params
from edgebert.export.mobile import export_mobile, mobile_usability
from edgebert.export.onnx import DEFAULT_OPSET, export_onnx, onnx_feeds, onnx_input_names, validate_onnx
from edgebert.export.tensorrt import build_engine, tensorrt_available, write_build_script
from edgebert.export.torchscript import export_pt2, export_torchscript, load_torch_export, validate_torchscript

__all__ = [
    "DEFAULT_OPSET",
    "build_engine",
    "export_mobile",
    "export_onnx",
    "export_pt2",
    "export_torchscript",
    "fuse_onnx",
    "fusion_params",
    "load_torch_export",
    "mobile_usability",
    "onnx_feeds",
    "onnx_input_names",
    "tensorrt_available",
    "validate_onnx",
    "validate_torchscript",
    "write_build_script",
]
