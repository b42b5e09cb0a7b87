"""The training side's dependencies: what the base install (the torch-free runtime) leaves out.

``pip install edgebert`` installs the runtime (``edgebert predict / serve / calibrate``); fine-tuning,
compression, export and benchmarks need the ``train`` extra. Commands that need it check here before
doing any work, so that a runtime-only install gets one line saying what to install, not an ImportError
from deep inside a stage.
"""

from __future__ import annotations

import importlib.util

from edgebert.errors import TrainingDependenciesError

#: the ``train`` extra of pyproject.toml: distribution name -> the module it installs
#: (tests/test_packaging.py keeps the two in step)
TRAINING_PACKAGES = {
    "torch": "torch",
    "transformers": "transformers",
    "safetensors": "safetensors",
    "accelerate": "accelerate",
    "onnx": "onnx",
    "tqdm": "tqdm",
    "filelock": "filelock",
    "scikit-learn": "sklearn",
    "matplotlib": "matplotlib",
    "onnxruntime-extensions": "onnxruntime_extensions",
}


def missing_training_packages() -> list[str]:
    """The ``train`` extra's distributions whose module cannot be found (nothing is imported)."""
    return [dist for dist, module in TRAINING_PACKAGES.items() if importlib.util.find_spec(module) is None]


def require_training(purpose: str) -> None:
    """Raise TrainingDependenciesError naming ``purpose`` when any of the ``train`` extra is missing."""
    missing = missing_training_packages()
    if missing:
        raise TrainingDependenciesError(missing, purpose)
