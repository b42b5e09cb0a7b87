"""The on-device classifier: an artifact folder in, labels and probabilities out, without PyTorch.

Only ``onnxruntime``, ``tokenizers`` and ``numpy`` are imported for an ONNX (``.onnx`` / ``.ort``)
artifact; ``torch`` and ``transformers`` never are (``tests/test_runtime.py`` checks
``sys.modules`` in a fresh process). A TorchScript file (``model.pt``) needs torch and a TensorRT
engine (``model.plan``) needs TensorRT (and torch, for its CUDA buffers); without them loading
fails with :class:`~edgebert.errors.MissingDependencyError`.

What is read from an artifact folder (see :func:`resolve_artifact`)::

    manifest.json   deploy: {"model": "model/model.onnx", "max_length": 128, "threshold": 0.7,
                             "unknown_label": "unknown", "text_pair": false, ...}
                             (optional; found files otherwise)
    model/          model.onnx (+ model.onnx.data) | model.ort | model.pt | model.plan
    tokenizer/      tokenizer.json (a Hugging Face *fast* tokenizer file), or at the root
    labels.json     {"labels": ["neg", "pos"]}  (index = logit index); or config.json id2label

The same steps the app guides (``docs/mobile.md``) mirror, per batch of texts:

1. tokenize each text with ``tokenizer.json`` ([CLS] text [SEP]; a sentence pair as [CLS] text [SEP]
   text_pair [SEP] with token type 1 on the second part), truncated to ``max_length`` tokens (the
   longer of the two sentences first); no padding yet;
2. sort the texts by token count and cut them into batches of ``batch_size``, each padded to its
   own longest text (pad id from the tokenizer, ``attention_mask`` 0 on padding, ``token_type_ids``
   0), so that short texts do not pay for long ones (a graph with a static input shape gets exactly
   that shape: batches filled up with copies, every row padded to its length, texts truncated to it);
3. run the model: int64 (or int32, as the graph declares) arrays of shape (batch, sequence) named
   as the graph's inputs; output logits (batch, num_labels);
4. softmax over the labels (float64); the predicted index is the arg-max; when a threshold is set
   and the top probability is below it, the label is the unknown label (``abstained=True``).
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence, overload

import numpy as np

from edgebert.errors import ConfigError, DataError, InferenceError, ModelNotFoundError, RuntimeLoadError
from edgebert.formats import (
    DEPLOYABLE_SUFFIXES,
    ONNX_SUFFIXES,
    TENSORRT_SUFFIXES,
    TORCHSCRIPT_SUFFIXES,
    file_runtime,
)
from edgebert.runtime.backends import (
    OnnxBackend,
    ProviderFallbackWarning,
    TensorRTBackend,
    TorchScriptBackend,
    available_providers,
    provider_fallback,
)
from edgebert.runtime import textin

__all__ = [
    "ArtifactLayout", "Classifier", "DEFAULT_MAX_LENGTH", "DEFAULT_UNKNOWN_LABEL", "EMPTY_TEXT", "Prediction",
    "is_blank", "resolve_artifact", "softmax",
]

#: token cap when neither the caller nor the manifest gives one (edgebert trains at 128 tokens)
DEFAULT_MAX_LENGTH = 128
#: label returned for inputs whose top probability is below the threshold
DEFAULT_UNKNOWN_LABEL = "unknown"
#: texts per model call; texts are sorted by length first, so batches carry little padding
DEFAULT_BATCH_SIZE = 32

#: model inputs the runtime knows how to fill from a tokenizer's output
KNOWN_INPUTS = ("input_ids", "attention_mask", "token_type_ids")

_HOW_TO_BUILD = "Build an artifact with: edgebert compress --model MODEL --data DATA --out ARTIFACT"

#: why a text is refused, in every entry point's message (Classifier, predict, serve): a model
#: asked about nothing still answers with some label, and that answer means nothing
EMPTY_TEXT = "is empty (or only whitespace): there is nothing to classify"


def is_blank(text: str) -> bool:
    """True for a text the runtime refuses to classify: empty or only whitespace."""
    return not text.strip()


@dataclass(frozen=True)
class Prediction:
    """The classification of one text."""

    label: str  # the predicted label, or the unknown label when the classifier abstained
    score: float  # probability of the most likely label (softmax of the logits), 0..1
    index: int  # logit index of the most likely label, also when the classifier abstained
    abstained: bool = False  # True when score < threshold, i.e. label is the unknown label

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ArtifactLayout:
    """Where the files of an artifact are and what its manifest's ``deploy`` block says."""

    root: Path
    model: Path  # the deployable model file
    format: str  # onnxruntime | torchscript | tensorrt (from the file suffix)
    tokenizer: Path  # tokenizer.json
    labels: tuple[str, ...]
    max_length: int | None  # deploy.max_length (None: not in the manifest)
    threshold: float | None  # deploy.threshold
    unknown_label: str | None  # deploy.unknown_label
    manifest: Path | None  # manifest.json when present
    threads: int | None = None  # deploy.threads: the target's intra-op threads
    providers: tuple[str, ...] | None = None  # deploy.providers: the target's execution providers
    input_names: tuple[str, ...] | None = None  # deploy.input_names (used for TensorRT engines)
    model_max_length: int | None = None  # deploy.model_max_length: most tokens the model takes (its position table)
    text_pair: bool | None = None  # deploy.text_pair: trained on sentence pairs (None: not stated)


# -- artifact folders ---------------------------------------------------------------------------

def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise RuntimeLoadError(f"Cannot read the {what} '{path}': {exc}") from exc


def _format_of(path: Path) -> str:
    runtime = file_runtime(path)
    if runtime is not None:
        return runtime
    raise RuntimeLoadError(
        f"'{path}' is not a model file the runtime runs (it runs {', '.join(DEPLOYABLE_SUFFIXES)})."
    )


def _find_model(root: Path) -> Path:
    """The model file of a folder without ``deploy.model``: model/model.onnx, else a single
    .onnx/.ort in model/ or at the root, else a single .pt/.plan in model/."""
    if (root / "model" / "model.onnx").is_file():
        return root / "model" / "model.onnx"
    for folder, suffixes in ((root / "model", ONNX_SUFFIXES), (root, ONNX_SUFFIXES),
                             (root / "model", TORCHSCRIPT_SUFFIXES + TENSORRT_SUFFIXES)):
        if not folder.is_dir():
            continue
        found = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            names = ", ".join(str(p.relative_to(root)) for p in found)
            raise RuntimeLoadError(
                f"Artifact '{root}' holds several model files ({names}) and its manifest.json names none. "
                'Say which one to run in manifest.json: {"deploy": {"model": "model/model.onnx"}}, '
                "or pass the model file's path instead of the folder."
            )
    content = ", ".join(sorted(p.name for p in root.iterdir())[:12]) or "nothing"
    raise RuntimeLoadError(
        f"'{root}' holds no model the runtime can run (it contains: {content}); expected "
        f"model/model.onnx, or one {' / '.join(DEPLOYABLE_SUFFIXES)} file in model/. {_HOW_TO_BUILD}"
    )


def _find_tokenizer(dirs: Sequence[Path]) -> Path:
    for d in dirs:
        for candidate in (d / "tokenizer" / "tokenizer.json", d / "tokenizer.json"):
            if candidate.is_file():
                return candidate
    looked = ", ".join(str(d) for d in dict.fromkeys(dirs))
    raise RuntimeLoadError(
        f"No tokenizer.json found (looked in {looked} and their tokenizer/ folders). The runtime reads "
        "Hugging Face fast-tokenizer files: save one with "
        "AutoTokenizer.from_pretrained(MODEL).save_pretrained(ARTIFACT / 'tokenizer')."
    )


def _check_labels(labels: Any, source: Path) -> tuple[str, ...]:
    if not isinstance(labels, list) or not labels or not all(isinstance(x, (str, int)) for x in labels):
        raise RuntimeLoadError(f"'{source}' must hold a non-empty list of label names, "
                               'e.g. {"labels": ["negative", "positive"]}.')
    names = tuple(str(x) for x in labels)
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise RuntimeLoadError(f"'{source}' names the label(s) {', '.join(map(repr, dup))} more than once.")
    return names


def _find_labels(dirs: Sequence[Path]) -> tuple[str, ...]:
    """Labels from labels.json, else a classifier config.json's id2label (first folder first)."""
    for d in dirs:
        path = d / "labels.json"
        if path.is_file():
            data = _read_json(path, "labels file")
            return _check_labels(data.get("labels") if isinstance(data, dict) else data, path)
    for d in dirs:
        path = d / "config.json"
        if path.is_file():
            id2label = (_read_json(path, "model config") or {}).get("id2label") or {}
            try:
                ordered = [id2label[k] for k in sorted(id2label, key=int)]
            except (TypeError, ValueError):
                raise RuntimeLoadError(f"'{path}' has an id2label whose keys are not integers.") from None
            if ordered:
                return _check_labels(ordered, path)
    looked = ", ".join(str(d) for d in dict.fromkeys(dirs))
    raise RuntimeLoadError(
        f'No labels found (looked for labels.json {{"labels": [...]}} and config.json id2label in {looked}).'
    )


def _deploy_block(manifest: Path | None) -> dict[str, Any]:
    if manifest is None:
        return {}
    data = _read_json(manifest, "manifest")
    deploy = data.get("deploy") if isinstance(data, dict) else None
    if deploy is None:
        return {}
    if not isinstance(deploy, dict):
        raise RuntimeLoadError(f"'{manifest}': 'deploy' must be an object, found {type(deploy).__name__}.")
    return deploy


def _optional(deploy: dict[str, Any], key: str, kinds: tuple[type, ...], manifest: Path | None) -> Any:
    value = deploy.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise RuntimeLoadError(f"'{manifest}': deploy.{key} must be {' or '.join(k.__name__ for k in kinds)}, "
                               f"found {value!r}.")
    return value


def resolve_artifact(path: str | os.PathLike) -> ArtifactLayout:
    """Find the model, tokenizer and labels of an artifact folder (or of a model file's folder).

    ``path`` is an artifact folder written by ``edgebert compress`` (its manifest's ``deploy`` block
    names the model file), an older folder without ``deploy`` (files are searched, see
    :func:`_find_model`), or a model file itself (tokenizer and labels beside it or one folder up).
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise ModelNotFoundError(f"'{path}' does not exist. Pass an artifact folder (manifest.json, model/, "
                                 f"tokenizer/, labels.json) or a model file. {_HOW_TO_BUILD}")
    if p.is_file():
        model = p
        root = p.parent.parent if p.parent.name == "model" else p.parent
        manifest = root / "manifest.json" if (root / "manifest.json").is_file() else None
        deploy = _deploy_block(manifest)
        if deploy.get("model") and (root / str(deploy["model"])).resolve() != p.resolve():
            deploy = {}  # the manifest describes another file: its settings are not this file's
    else:
        root = p
        manifest = root / "manifest.json" if (root / "manifest.json").is_file() else None
        deploy = _deploy_block(manifest)
        rel = _optional(deploy, "model", (str,), manifest)
        if rel is not None:
            model = root / rel
            if not model.is_file():
                raise RuntimeLoadError(f"'{manifest}' names deploy.model '{rel}', which is not a file in '{root}'.")
        else:
            model = _find_model(root)
    dirs = [d for d in (root, model.parent) if d.is_dir()]
    tokenizer_rel = _optional(deploy, "tokenizer", (str,), manifest)  # a folder or the tokenizer.json
    if tokenizer_rel is not None:
        tok = root / tokenizer_rel
        dirs_tok = [tok.parent] if tok.is_file() else [tok]
        tokenizer = tok if tok.is_file() and tok.suffix == ".json" else _find_tokenizer(dirs_tok)
    else:
        tokenizer = _find_tokenizer(dirs)
    labels_rel = _optional(deploy, "labels", (str,), manifest)
    if labels_rel is not None and (root / labels_rel).is_file():
        data = _read_json(root / labels_rel, "labels file")
        labels = _check_labels(data.get("labels") if isinstance(data, dict) else data, root / labels_rel)
    else:
        labels = _find_labels(dirs)
    threshold = _optional(deploy, "threshold", (int, float), manifest)
    providers = _optional(deploy, "providers", (list,), manifest)
    input_names = _optional(deploy, "input_names", (list,), manifest)
    text_pair = deploy.get("text_pair")
    if text_pair is not None and not isinstance(text_pair, bool):
        raise RuntimeLoadError(f"'{manifest}': deploy.text_pair must be true or false, found {text_pair!r}.")
    return ArtifactLayout(
        root=root, model=model, format=_format_of(model), tokenizer=tokenizer, labels=labels,
        max_length=_optional(deploy, "max_length", (int,), manifest),
        threshold=None if threshold is None else float(threshold),
        unknown_label=_optional(deploy, "unknown_label", (str,), manifest), manifest=manifest,
        threads=_optional(deploy, "threads", (int,), manifest),
        providers=None if providers is None else tuple(str(x) for x in providers),
        input_names=None if input_names is None else tuple(str(x) for x in input_names),
        model_max_length=_optional(deploy, "model_max_length", (int,), manifest),
        text_pair=text_pair,
    )


# -- the classifier (over the per-format backends of edgebert.runtime.backends) -------------------

def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64; (n, labels) -> (n, labels), rows sum to 1."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _check_threshold(value: float | None) -> float | None:
    if value is None:
        return None
    try:
        t = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"threshold must be a number between 0 and 1, got {value!r}.") from None
    if not 0.0 <= t <= 1.0:
        raise ConfigError(f"threshold must be between 0 and 1 (a probability), got {value!r}. "
                          "0 answers every input; 'edgebert calibrate' picks one on dev data.")
    return t


def _pad_id(tokenizer, folder: Path) -> int:
    """The padding token id: the tokenizer.json padding block, the tokenizer config, [PAD]/<pad>, 0."""
    padding = tokenizer.padding
    if padding and padding.get("pad_id") is not None:
        return int(padding["pad_id"])
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        path = folder / name
        if path.is_file():
            try:
                token = json.loads(path.read_text(encoding="utf-8")).get("pad_token")
            except (OSError, ValueError, AttributeError):
                continue
            if isinstance(token, dict):
                token = token.get("content")
            if isinstance(token, str) and tokenizer.token_to_id(token) is not None:
                return int(tokenizer.token_to_id(token))
    for token in ("[PAD]", "<pad>"):
        if tokenizer.token_to_id(token) is not None:
            return int(tokenizer.token_to_id(token))
    return 0


def _default_max_length(folder: Path) -> int:
    """DEFAULT_MAX_LENGTH, lowered to the tokenizer's model_max_length where that is smaller."""
    path = folder / "tokenizer_config.json"
    try:
        limit = json.loads(path.read_text(encoding="utf-8")).get("model_max_length")
    except (OSError, ValueError, AttributeError):
        limit = None
    if isinstance(limit, (int, float)) and 2 <= limit < DEFAULT_MAX_LENGTH:
        return int(limit)
    return DEFAULT_MAX_LENGTH


def _check_model_max_length(max_length: int, layout: ArtifactLayout) -> None:
    """Refuse at load a token cap above the model's position table: every text longer than the table
    would fail (an HTTP 500 in serve) instead of being truncated."""
    limit = layout.model_max_length
    if limit is None or max_length <= limit:
        return
    if max_length == layout.max_length:  # the manifest's own cap (an edited or foreign manifest)
        raise RuntimeLoadError(f"'{layout.manifest}': deploy.max_length {max_length} is above the {limit} tokens the "
                               f"model takes (deploy.model_max_length). Set deploy.max_length to {limit} or less, or "
                               f"pass --max-length {limit}.")
    raise ConfigError(f"max_length {max_length} is above the {limit} tokens the model of '{layout.root}' takes "
                      f"(its position table, deploy.model_max_length in manifest.json). Use --max-length {limit} "
                      "or less.")


class Classifier:
    """A text classifier loaded from an artifact folder; see the module doc for the steps.

    ``predict`` and ``predict_proba`` accept one text (``str``) or a sequence of texts: a ``str``
    gives one :class:`Prediction` (one row of probabilities), a sequence gives a list (a 2-D array),
    in input order. A sentence-pair model (:attr:`text_pair`) takes the second sentences as
    ``text_pairs``, shaped like ``texts``. Empty texts are refused (DataError): the model would
    answer them with some label all the same. Instances are safe to call from several threads
    (onnxruntime sessions and ``tokenizers`` tokenizers are).
    """

    def __init__(self, backend, tokenizer, layout: ArtifactLayout, *, max_length: int,
                 threshold: float | None, unknown_label: str, batch_size: int, threads: int | None):
        self._backend = backend
        self._tokenizer = tokenizer
        self.layout = layout
        self.labels: tuple[str, ...] = layout.labels
        self.unknown_label = unknown_label
        self._fixed_batch = backend.fixed_batch
        self._fixed_length = backend.fixed_length
        if self._fixed_length and max_length > self._fixed_length:
            max_length = self._fixed_length  # a static-shape graph: no text can be longer
        #: True: the model takes strings and tokenizes inside (a text-in model); its token cap is its graph's
        self.text_in: bool = textin.TEXT_INPUT in backend.input_names
        if self.text_in:
            max_length = textin.graph_max_length(backend.session) or max_length
        self.max_length = max_length
        self.batch_size = min(batch_size, self._fixed_batch) if self._fixed_batch else batch_size
        self.threads = threads
        #: True: the model classifies sentence pairs (text_pairs required); False: single texts; None:
        #: the artifact does not say (both are accepted)
        self.text_pair: bool | None = layout.text_pair
        #: execution providers asked for, and the sentence saying which of them the model does not run on
        self.requested_providers: list[str] = list(getattr(backend, "requested", None) or backend.providers)
        self.provider_fallback: str | None = provider_fallback(self.requested_providers, list(backend.providers))
        self._pad_id = _pad_id(tokenizer, layout.tokenizer.parent)  # before no_padding() clears it
        # tokenizer.json may carry the padding / truncation of the call that saved it: batches are
        # padded here (per length-sorted batch) and the cap is this classifier's max_length.
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=max_length)
        self._threshold: float | None = None
        self.threshold = threshold
        missing = [n for n in backend.input_names if n not in KNOWN_INPUTS + (textin.TEXT_INPUT,)]
        if missing:
            raise RuntimeLoadError(f"'{layout.model}' takes input(s) {', '.join(missing)}; the runtime "
                                   f"feeds {', '.join(KNOWN_INPUTS)}.")

    @classmethod
    def load(cls, path: str | os.PathLike, *, threads: int | None = None, providers: Sequence[str] | None = None,
             threshold: float | None = None, max_length: int | None = None, unknown_label: str | None = None,
             batch_size: int = DEFAULT_BATCH_SIZE) -> Classifier:
        """Load an artifact folder (or a model file with its tokenizer and labels beside it).

        ``threads``: intra-op threads of the model (None: the manifest's ``deploy.threads``, else the
        runtime's default, one per core). ``providers``: onnxruntime execution providers in
        priority order, all required (None: those of ``deploy.providers`` this onnxruntime build
        has, else CPU). When the model does not run on the first provider asked for (not in this
        build, or it failed to start) a :class:`ProviderFallbackWarning` says so, and
        :attr:`provider_fallback` / :meth:`info` keep the sentence.
        ``threshold``: answer only when the top probability is at least this (0..1); None takes the
        manifest's ``deploy.threshold`` (none there: answer everything); 0 turns it off.
        ``max_length``: token cap per text (default: ``deploy.max_length``, else 128 or the
        tokenizer's smaller limit). ``unknown_label``: label of abstentions (default
        ``deploy.unknown_label``, else ``"unknown"``). ``batch_size``: texts per model call.
        """
        layout = resolve_artifact(path)
        if max_length is None:
            max_length = layout.max_length or _default_max_length(layout.tokenizer.parent)
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 2:
            raise ConfigError(f"max_length must be an integer >= 2 ([CLS] and [SEP] take two tokens), "
                              f"got {max_length!r}.")
        _check_model_max_length(max_length, layout)
        if threads is None:
            threads = layout.threads
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ConfigError(f"threads must be a positive integer (or None for the default), got {threads!r}.")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}.")
        unknown_label = unknown_label or layout.unknown_label or DEFAULT_UNKNOWN_LABEL
        threshold = _check_threshold(layout.threshold if threshold is None else threshold)

        from tokenizers import Tokenizer

        try:
            tokenizer = Tokenizer.from_file(str(layout.tokenizer))
        except Exception as exc:  # tokenizers raises a plain Exception for unreadable files
            raise RuntimeLoadError(f"Cannot read the tokenizer '{layout.tokenizer}': {exc}") from exc
        requested = None
        if layout.format == "onnxruntime":
            if not providers and layout.providers:
                requested = list(layout.providers)
                providers = available_providers(layout.providers)
            backend = OnnxBackend.load(layout.model, threads=threads, providers=providers)
            if requested:
                backend.requested = requested  # the target's list: the fallback is measured against it
        elif providers is not None:
            raise ConfigError(f"providers apply to ONNX models; '{layout.model}' is a {layout.format} file.")
        elif layout.format == "torchscript":
            backend = TorchScriptBackend(layout.model, threads=threads)
        else:
            backend = TensorRTBackend(layout.model, input_names=layout.input_names or KNOWN_INPUTS)
        self = cls(backend, tokenizer, layout, max_length=max_length, threshold=threshold,
                   unknown_label=unknown_label, batch_size=batch_size, threads=threads)
        self._check_outputs()
        if self.provider_fallback:
            warnings.warn(f"{self.layout.root}: {self.provider_fallback}", ProviderFallbackWarning, stacklevel=2)
        return self

    # -- properties -------------------------------------------------------------------------

    @property
    def threshold(self) -> float | None:
        """Smallest top probability answered (None: every input is answered)."""
        return self._threshold

    @threshold.setter
    def threshold(self, value: float | None) -> None:
        value = _check_threshold(value)
        if value and self.unknown_label in self.labels:
            raise ConfigError(f"The unknown label '{self.unknown_label}' is also one of the model's labels; "
                              "abstentions could not be told apart. Choose another unknown label.")
        self._threshold = value

    @property
    def format(self) -> str:
        """onnxruntime | torchscript | tensorrt."""
        return self.layout.format

    @property
    def provider(self) -> str:
        """The execution provider that runs the model (onnxruntime's first), or the backend's name."""
        return list(self._backend.providers)[0]

    def info(self) -> dict[str, Any]:
        """What is loaded, for logs and ``GET /health``."""
        return {"artifact": str(self.layout.root), "model": str(self.layout.model), "format": self.format,
                "provider": self.provider, "providers": list(self._backend.providers),
                "requested_providers": self.requested_providers, "provider_fallback": self.provider_fallback,
                "text_pair": self.text_pair, "inputs": list(self._backend.input_names),
                "labels": len(self.labels), "max_length": self.max_length, "threshold": self.threshold,
                "unknown_label": self.unknown_label, "threads": self.threads, "batch_size": self.batch_size}

    # -- inference --------------------------------------------------------------------------

    def _encode_sorted(self, texts: list[str], pairs: list[str] | None
                       ) -> tuple[list[tuple[dict[str, np.ndarray], int]], np.ndarray]:
        """Tokenize; return (padded feeds, texts in them) per batch, in length order, and that order."""
        if self.text_in:
            return textin.string_batches(texts, pairs, self.batch_size)
        # a (text, pair) tuple is encoded by tokenizer.json's pair template ([CLS] a [SEP] b [SEP], type
        # ids 1 on b) and truncated longest-first, as the Hugging Face tokenizer did in training
        encodings = self._tokenizer.encode_batch(texts if pairs is None else list(zip(texts, pairs)))
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        order = np.argsort(lengths, kind="stable")
        batches = []
        for start in range(0, len(order), self.batch_size):
            rows = [encodings[i] for i in order[start:start + self.batch_size]]
            width = self._fixed_length or max(len(e.ids) for e in rows)
            height = self._fixed_batch or len(rows)  # a static batch is filled up with copies of row 0
            ids = np.full((height, width), self._pad_id, dtype=np.int64)  # (batch, sequence)
            mask = np.zeros((height, width), dtype=np.int64)
            types = np.zeros((height, width), dtype=np.int64)
            for r in range(height):
                e = rows[r] if r < len(rows) else rows[0]
                n = len(e.ids)
                ids[r, :n] = e.ids
                mask[r, :n] = 1
                types[r, :n] = e.type_ids
            batches.append(({"input_ids": ids, "attention_mask": mask, "token_type_ids": types}, len(rows)))
        return batches, order

    def logits(self, texts: str | Iterable[str], text_pairs: str | Iterable[str] | None = None) -> np.ndarray:
        """Raw model outputs: (labels,) for one text, (n, labels) float32 for a sequence."""
        items, pairs, single = self._inputs(texts, text_pairs)
        out = self._logits(items, pairs)
        return out[0] if single else out

    def _inputs(self, texts, text_pairs) -> tuple[list[str], list[str] | None, bool]:
        """(texts, pairs, whether one bare string was given), checked: strings, none empty, pairs
        where (and only where) the model takes them."""
        items, single = _as_texts(texts)
        pairs = None
        if text_pairs is not None:
            pairs, pair_single = _as_texts(text_pairs, "text pair")
            if pair_single != single or len(pairs) != len(items):
                raise DataError(f"text_pairs must be shaped like texts (one second sentence per text): got "
                                f"{'a string' if single else f'{len(items)} texts'} and "
                                f"{'a string' if pair_single else f'{len(pairs)} text pairs'}.")
        if self.text_pair and pairs is None:
            raise DataError(f"'{self.layout.root}' classifies sentence pairs: give each text its second "
                            "sentence (text_pairs).")
        if self.text_pair is False and pairs is not None:
            raise DataError(f"'{self.layout.root}' classifies single texts (it was not trained on sentence "
                            "pairs): leave text_pairs out.")
        for what, values in (("text", items), ("text pair", pairs or [])):
            for i, t in enumerate(values):
                if is_blank(t):
                    raise DataError(f"{what} {i} {EMPTY_TEXT}" if not single else f"the {what} {EMPTY_TEXT}")
        return items, pairs, single

    def _logits(self, items: list[str], pairs: list[str] | None) -> np.ndarray:
        out = np.zeros((len(items), len(self.labels)), dtype=np.float32)
        if not items:
            return out
        batches, order = self._encode_sorted(items, pairs)
        done = 0
        for feeds, real in batches:
            feeds = {n: feeds[n] for n in self._backend.input_names}
            try:
                logits = np.asarray(self._backend(feeds))
            except Exception as exc:
                shape = tuple(feeds["input_ids"].shape) if "input_ids" in feeds else None
                raise InferenceError(f"The model failed on a batch of shape {shape}: "
                                     f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}. "
                                     "If the sequence is longer than the model accepts, lower max_length.") from exc
            n = feeds[self._backend.input_names[0]].shape[0]
            if logits.shape != (n, len(self.labels)):
                raise InferenceError(f"The model returned scores of shape {logits.shape} for {n} texts; "
                                     f"expected ({n}, {len(self.labels)}): one per label in {self.layout.root}.")
            out[order[done:done + real]] = logits[:real]  # rows past `real` fill a static batch
            done += real
        return out

    def predict_proba(self, texts: str | Iterable[str], text_pairs: str | Iterable[str] | None = None) -> np.ndarray:
        """Label probabilities (softmax, float64): (labels,) for one text, (n, labels) for a sequence;
        columns follow :attr:`labels`."""
        return softmax(self.logits(texts, text_pairs))

    @overload
    def predict(self, texts: str, text_pairs: str | None = None) -> Prediction: ...

    @overload
    def predict(self, texts: Iterable[str], text_pairs: Iterable[str] | None = None) -> list[Prediction]: ...

    def predict(self, texts, text_pairs=None):
        """The most likely label of each text (of each pair, with ``text_pairs``) with its probability;
        the unknown label where the probability is below :attr:`threshold`. One text -> a
        Prediction; a sequence -> a list."""
        items, pairs, single = self._inputs(texts, text_pairs)
        probs = softmax(self._logits(items, pairs))
        best = probs.argmax(axis=1) if len(items) else np.zeros(0, dtype=np.int64)
        preds = []
        for row, index in zip(probs, best):
            score = float(row[index])
            abstain = self._threshold is not None and score < self._threshold
            preds.append(Prediction(label=self.unknown_label if abstain else self.labels[int(index)],
                                    score=score, index=int(index), abstained=bool(abstain)))
        return preds[0] if single else preds

    def _check_outputs(self) -> None:
        """One call at load: the model runs and gives one score per label (also warms it up)."""
        try:
            self._logits(["a"], ["a"] if self.text_pair else None)
        except InferenceError as exc:
            raise RuntimeLoadError(f"'{self.layout.model}' does not fit its labels or inputs: {exc}") from exc

    def __repr__(self) -> str:
        return (f"Classifier({str(self.layout.root)!r}, format={self.format!r}, labels={len(self.labels)}, "
                f"max_length={self.max_length}, threshold={self.threshold})")


def _as_texts(texts: Any, what: str = "text") -> tuple[list[str], bool]:
    """(list of texts, whether one bare string was given); DataError for anything else."""
    if isinstance(texts, str):
        return [texts], True
    if isinstance(texts, (bytes, bytearray)) or texts is None or not isinstance(texts, Iterable):
        raise DataError(f"{what}s must be a string or a sequence of strings, got {type(texts).__name__}.")
    items = list(texts)
    for i, t in enumerate(items):
        if not isinstance(t, str):
            raise DataError(f"{what} {i} is a {type(t).__name__}, not a string.")
    return items, False
