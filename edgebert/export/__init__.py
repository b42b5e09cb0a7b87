"""Exporting classifiers to deployable formats (ONNX), and checking an export against its source.

Public interface::

    from edgebert.export import export_onnx, validate_onnx, onnx_feeds

Heavy libraries (torch, onnx, onnxruntime) load inside the functions, not on import.
"""

from __future__ import annotations

from edgebert.export.onnx import DEFAULT_OPSET, export_onnx, onnx_feeds, onnx_input_names, validate_onnx

__all__ = ["DEFAULT_OPSET", "export_onnx", "onnx_feeds", "onnx_input_names", "validate_onnx"]
