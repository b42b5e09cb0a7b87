"""Typed errors raised by the edgebert library.

Library code raises these; only the CLI (``edgebert.cli``) turns them into user-facing messages and
exit codes. Each message says what was wrong, what is valid, and, where useful, what to run next.
"""

from __future__ import annotations


class EdgebertError(Exception):
    """Base class of every error edgebert raises on purpose (user mistakes, missing resources)."""

    #: exit code the CLI uses for this error class
    exit_code = 2


class ConfigError(EdgebertError):
    """A configuration value, recipe or target file is invalid."""


class UnsupportedTokenizerError(ConfigError):
    """An operation does not handle this kind of tokenizer (e.g. vocabulary pruning of a SentencePiece one)."""


class UnknownTargetError(ConfigError):
    """A target profile name that is neither a known target nor a readable file."""


class UnknownStageError(ConfigError):
    """A stage ``kind`` that no registered stage implements."""


class ModelNotFoundError(EdgebertError):
    """A model id or path that cannot be resolved (missing folder, offline hub id not cached, ...)."""


class ModelLoadError(EdgebertError):
    """A model folder exists but cannot be loaded (corrupt weights, unsupported architecture, ...)."""


class UnsupportedArchitectureError(ModelLoadError):
    """An architecture edgebert has no spec for (see ``edgebert.models.specs``)."""


class DataError(EdgebertError):
    """A dataset file or id that cannot be read, or whose content is invalid.

    ``path`` and ``line`` point at the offending place when known (line numbers are 1-based and
    count the header line, as an editor shows them).
    """

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None):
        self.path = path
        self.line = line
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)


class DatasetNotFoundError(DataError):
    """A dataset path that does not exist, or a hub dataset id that cannot be fetched."""


class LabelMismatchError(DataError):
    """Labels that do not fit together (dev/test labels unseen in train, model vs. dataset labels)."""


class ExportError(EdgebertError):
    """A model cannot be exported / converted to a deployable format (ONNX, TorchScript, .ort, TensorRT)."""


class ExportValidationError(ExportError):
    """An exported or compressed model disagrees with the model it came from beyond tolerance."""


class CompressionError(EdgebertError):
    """A compression step (pruning, distillation, quantization) cannot be applied as configured."""


class OutputExistsError(EdgebertError):
    """An output folder that already holds another run's files."""


class ManifestError(ConfigError):
    """An artifact's manifest.json that cannot be read as an edgebert manifest.

    ``reason``: "missing" (no such file, or unreadable), "garbled" (not JSON) or "shape" (JSON of another
    shape); a caller that knows what the folder is for says what to do about it."""

    def __init__(self, message: str, *, path, reason: str):
        self.path = path
        self.reason = reason
        super().__init__(message)


class OutputNotWritableError(EdgebertError):
    """An output folder or file that cannot be written (read-only folder or file system, not a folder)."""


class DiskFullError(EdgebertError):
    """The disk (or the user's quota) filled up while an output was written; nothing half-written is kept.

    ``written``: bytes written (and removed again) before the disk filled, a lower bound of the space needed.
    """

    def __init__(self, message: str, *, written: int = 0):
        self.written = written
        super().__init__(message)


class TrainingError(EdgebertError):
    """Training cannot proceed (e.g. loss became NaN, nothing trainable)."""


class MissingDependencyError(EdgebertError):
    """An optional dependency (peft, datasets, optimum, tensorrt, ...) is not installed."""

    def __init__(self, package: str, extra: str | None = None, purpose: str = ""):
        self.package = package
        self.extra = extra
        hint = f"pip install 'edgebert[{extra}]'" if extra else f"pip install {package}"
        what = f" (needed for {purpose})" if purpose else ""
        super().__init__(f"{package} is not installed{what}. Install it with: {hint}")


class TrainingDependenciesError(MissingDependencyError):
    """A training-side command (finetune, compress, eval, bench, report) run where only the runtime is
    installed: the base package, without the ``train`` extra."""

    def __init__(self, missing: list[str], purpose: str):
        self.package = missing[0]
        self.extra = "train"
        self.missing = list(missing)
        EdgebertError.__init__(self, f"{purpose} needs the training dependencies, which are not installed "
                                     f"({', '.join(missing)}). Install them with: pip install 'edgebert[train]'")


class RuntimeLoadError(ModelLoadError):
    """An artifact folder the on-device runtime cannot load (no model file, no tokenizer.json,
    labels that do not match the model's outputs, an execution provider that is not available, ...)."""


class InferenceError(EdgebertError):
    """A loaded model failed while classifying (e.g. inputs longer than the model's position table)."""
