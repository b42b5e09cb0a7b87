"""The TorchScript backend (``.pt`` / ``.pth`` / ``.torchscript``): needs torch, imported on first use."""

from __future__ import annotations

import importlib.util
import os
import warnings
from pathlib import Path

import numpy as np

from edgebert.errors import MissingDependencyError, RuntimeLoadError

__all__ = ["TorchScriptBackend", "load_torchscript"]


def load_torchscript(path: str | os.PathLike, device: str = "cpu"):
    """``torch.jit.load`` of ``path`` onto ``device``, in eval mode (torch's errors propagate)."""
    import torch

    with warnings.catch_warnings():  # torch >= 2.10 marks torch.jit deprecated (still supported)
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.load(str(path), map_location=device).eval()


class TorchScriptBackend:
    """``torch.jit.load`` of a file written by :func:`edgebert.export.export_torchscript`."""

    providers = ["torch-cpu"]
    fixed_batch = fixed_length = None

    def __init__(self, path: Path, *, threads: int | None):
        if importlib.util.find_spec("torch") is None:
            raise MissingDependencyError(
                "torch", purpose=f"the TorchScript model '{path}'; the torch-free runtime runs ONNX "
                                 "artifacts (model.onnx / model.ort)")
        import torch

        if threads:
            torch.set_num_threads(int(threads))  # process-wide in torch
        try:
            self.module = load_torchscript(path)
        except Exception as exc:
            raise RuntimeLoadError(f"torch.jit.load cannot load '{path}': {exc}") from exc
        # The export's forward takes the inputs by their spec names, in spec order.
        self.input_names = [a.name for a in self.module.forward.schema.arguments[1:]]
        self.input_dtypes = {n: np.int64 for n in self.input_names}

    def __call__(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            out = self.module(*(torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in self.input_names))
        return out.float().numpy()
