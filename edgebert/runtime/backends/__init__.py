"""Per-format backends of the runtime: the base layer of the run side.

One module per runtime of :mod:`edgebert.formats` that runs a model file by itself:

* :mod:`.onnx`: onnxruntime (``.onnx`` / ``.ort``): the one place sessions are opened, with their
  options, threads, providers and the provider-fallback sentence; no torch;
* :mod:`.torchscript`: ``torch.jit`` files (needs torch);
* :mod:`.tensorrt`: serialized TensorRT engines on a CUDA GPU (needs TensorRT and torch).

A backend maps feeds (input name -> (batch, sequence) token ids) to logits (batch, labels) and says
``input_names``, ``input_dtypes``, ``providers`` and any static ``fixed_batch`` / ``fixed_length``.
The classifier (``edgebert predict`` / ``serve``) and ``edgebert bench`` load models through them, so
bench times what a device runs. Heavy libraries are imported on first use, by the backend that needs them.
"""

from edgebert.runtime.backends.onnx import (
    OnnxBackend,
    ProviderFallbackWarning,
    available_providers,
    open_session,
    provider_fallback,
    session_options,
)
from edgebert.runtime.backends.tensorrt import Engine, TensorRTBackend, tensorrt_available
from edgebert.runtime.backends.torchscript import TorchScriptBackend, load_torchscript

__all__ = [
    "Engine", "OnnxBackend", "ProviderFallbackWarning", "TensorRTBackend", "TorchScriptBackend", "available_providers",
    "load_torchscript", "open_session", "provider_fallback", "session_options", "tensorrt_available",
]
