"""On-device inference without PyTorch: onnxruntime + ``tokenizers`` + numpy.

Public interface::

    from edgebert.runtime import Classifier

    clf = Classifier.load("out/minilm-banking77", threads=2)     # an artifact folder
    clf.predict("I lost my card")           # -> Prediction(label='lost_or_stolen_card', score=0.93, ...)
    clf.predict(["text one", "text two"])   # -> [Prediction, Prediction]
    clf.predict_proba(["text one"])         # -> np.ndarray (1, len(clf.labels))

    from edgebert.runtime import calibrate  # pick the confidence threshold on dev data
    from edgebert.runtime import create_app # the HTTP service behind `edgebert serve` (Starlette)

The base install (``pip install edgebert``, without the ``train`` extra) is this package: it,
``edgebert predict``, ``serve`` and ``calibrate`` work without torch or transformers.
Submodules other than the classifier load on first use.
"""

from __future__ import annotations

from typing import Any

from edgebert.runtime.classifier import (
    DEFAULT_MAX_LENGTH,
    DEFAULT_UNKNOWN_LABEL,
    ArtifactLayout,
    Classifier,
    Prediction,
    resolve_artifact,
)

__all__ = [
    "ArtifactLayout", "CalibrationResult", "Classifier", "DEFAULT_MAX_LENGTH", "DEFAULT_UNKNOWN_LABEL",
    "Prediction", "calibrate", "create_app", "resolve_artifact",
]

_LAZY = {
    "calibrate": ("edgebert.runtime.calibration", "calibrate"),
    "CalibrationResult": ("edgebert.runtime.calibration", "CalibrationResult"),
    "create_app": ("edgebert.runtime.serve", "create_app"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'edgebert.runtime' has no attribute {name!r}")
