"""The stage registry: ``kind`` -> (typed config, one function, declarations), plus the state a pipeline carries.

A stage is a config class (a :class:`~edgebert.config.StageConfig` with a ``kind`` literal) and one
function ``fn(art: Artifact, cfg, ctx: RunContext) -> StageResult``, in one module of this package.
Registering it makes the kind usable in recipes, in ``edgebert compress --recipe`` files and in error
messages::

    @register_stage(PruneConfig, order=20, reads="torch", changes="torch", produces=("torch:pruned",),
                    rules=(BEFORE_EXPORTS, BEFORE_SPARSIFY), summary="...")
    def prune(art, cfg, ctx): ...

This module names no kind and imports no stage module: the builtin stages are found by importing
every module of the ``edgebert.stages`` package (:func:`load_builtin`), and listed by their ``order``.

What a stage reads and produces is declared as data: ``produces`` are tags such as ``onnx:fp32``,
``onnx:fused``, ``onnx:int8-qdq``, ``torch:int8`` or ``export`` (writes a deployable file), and
``rules`` say which tags must be present or absent before it (:func:`requires`, :func:`forbids`). Both
may depend on the config (a function of ``cfg``). :func:`check_order` checks a recipe against them, so
recipes that cannot work (pruning after an export, quantizing ONNX before any export) fail before
anything heavy runs.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgebert.config import StageConfig, build_config
from edgebert.errors import ConfigError, UnknownStageError

#: what a stage may read: the current PyTorch model, or the current ONNX file
READS = ("torch", "onnx")
#: what a stage changes: the torch model's weights / structure, the ONNX file, or nothing (it only
#: adds deployable files: an export)
CHANGES = ("torch", "onnx", "export")


@dataclass
class Artifact:
    """The state a pipeline passes from stage to stage (paths relative to ``root`` where inside it).

    ``model`` is the current PyTorch classifier folder; ``teacher`` the fine-tuned folder before any
    structural change (distillation's teacher); ``onnx`` the current ONNX file and ``onnx_reference``
    the fp32 export that later ONNX stages are checked against; ``onnx_fused`` whether ``onnx`` holds
    onnxruntime-only fused operators; ``torch_quantization`` a pending torch quantization applied
    when exporting TorchScript; ``deploy`` maps file names in the artifact's ``model/`` folder to
    where they come from; ``primary`` names the file the target's runtime loads.
    """

    root: Path
    model: str
    teacher: str | None = None
    onnx: str | None = None
    onnx_reference: str | None = None
    onnx_plain: str | None = None
    onnx_fused: bool = False
    onnx_quantized: str | None = None
    torch_quantization: dict[str, Any] | None = None
    deploy: dict[str, str] = field(default_factory=dict)
    primary: str | None = None

    def path(self, rel: str | None) -> Path | None:
        """``rel`` as an absolute path (paths outside the artifact are stored absolute)."""
        if rel is None:
            return None
        p = Path(rel)
        return p if p.is_absolute() else self.root / p

    def rel(self, path: str | Path) -> str:
        """``path`` relative to the artifact root when inside it, else absolute."""
        p = Path(path).resolve()
        try:
            return str(p.relative_to(self.root.resolve()))
        except ValueError:
            return str(p)

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("root")
        return d

    @classmethod
    def from_json(cls, root: Path, data: Mapping[str, Any]) -> Artifact:
        known = {f.name for f in dataclasses.fields(cls)} - {"root"}
        return cls(root=root, **{k: v for k, v in data.items() if k in known})

    def replace(self, **changes: Any) -> Artifact:
        return dataclasses.replace(self, **changes)


def model_ref(art: Artifact, ref: str | None) -> str:
    """A model reference usable by models.load (artifact-relative stage folders made absolute; a
    reference outside the artifact, such as the input model or a hub id, as it is)."""
    assert ref is not None
    p = Path(ref)
    external = p.is_absolute() or not (p.parts and p.parts[0] == "stages")
    return ref if external else str(art.path(ref))


@dataclass
class RunContext:
    """What a stage function needs besides its config: data, target, where to write, how to report."""

    dataset: Any                      # edgebert.data.Dataset, labels in the model's order
    target: Any                       # edgebert.targets.TargetProfile
    work: Path                        # the (staging) folder this stage writes into
    seed: int = 0
    progress: bool = True
    log: Callable[[str], None] = lambda msg: None
    validation_texts: int = 64        # dev texts each validation compares on
    # points of the target's accuracy budget the stages before this one left (budget minus the drop of
    # the latest dev accuracy from the fine-tuned model's); None before any accuracy was measured. A
    # stage that trades accuracy (quantize's search) may spend at most this, so the budget holds for
    # the shipped model against the fine-tuned one, not per stage.
    accuracy_budget_left: float | None = None

    def validation_rows(self, split=None):
        """Rows of the dev split (or ``split``, e.g. the dev split in the model's label order) of
        varied lengths: every k-th, so short and long ones are both in, at most ``validation_texts``."""
        split = split if split is not None else self.dataset.split("dev")
        step = max(1, len(split) // max(1, self.validation_texts))
        return split.select(range(0, len(split), step)[: self.validation_texts])

    def validation_inputs(self) -> dict[str, Any]:
        """``{"texts", "pairs"}`` of :meth:`validation_rows`, as the validation functions take them
        (``pairs``: the second sentences of a sentence-pair task, else None): a pair model compared
        on its first sentences alone would be checked on inputs it never sees."""
        rows = self.validation_rows()
        return {"texts": list(rows.texts), "pairs": None if rows.text_pairs is None else list(rows.text_pairs)}


@dataclass
class StageResult:
    """What a stage returns: the new state, its metrics (dev accuracy, sizes ...) and its validation
    against the model it came from (logit difference, label agreement)."""

    artifact: Artifact
    metrics: dict[str, Any] = field(default_factory=dict)
    validation: dict[str, Any] | None = None
    skipped: str | None = None        # why the stage had nothing to do (e.g. finetune of a trained head)


@dataclass(frozen=True)
class Rule:
    """One order rule of a stage: ``tag`` must be present (``present``) or absent before it.

    A tag matches itself and its refinements (``onnx`` matches ``onnx:fused``); the stage it refers to
    is the earliest that produced a matching tag. ``message`` is formatted with ``here`` (the source,
    position and kind of the stage checked) and, for a tag present, ``at``, ``kind`` and ``cfg`` (the
    position, kind and config of the stage that produced it).
    """

    tag: str
    present: bool
    message: str


def requires(tag: str, message: str) -> Rule:
    """A rule: a stage producing ``tag`` must come before this one (else ``message``)."""
    return Rule(tag, True, message)


def forbids(tag: str, message: str) -> Rule:
    """A rule: no stage producing ``tag`` may come before this one (else ``message``)."""
    return Rule(tag, False, message)


Tags = Sequence[str] | Callable[[Any], Sequence[str]]
Rules = Sequence[Rule] | Callable[[Any], Sequence[Rule]]


@dataclass(frozen=True)
class StageDef:
    kind: str
    config: type[StageConfig]
    fn: Callable[[Artifact, Any, RunContext], StageResult]
    reads: str
    changes: str
    summary: str
    resolve: Callable[[Any, Any], Any] | None = None  # (cfg, target) -> cfg with target defaults
    host: Callable[[Any], str | None] | None = None  # (cfg) -> what of this host the output depends on (in its key)
    revision: Callable[[Any], str | None] | None = None  # (cfg) -> how the code's behaviour for cfg changed (in its key)
    check: Callable[[Any, dict[str, Any]], None] | None = None  # (cfg, model shape) -> ConfigError before any work
    for_model: Callable[[Any, Any], Any] | None = None  # (cfg, input model's config) -> cfg with model defaults
    order: int = 0                   # place in pipeline order (listings, error messages)
    produces: Tags = ()              # tags this stage adds for the stages after it (or a function of cfg)
    rules: Rules = ()                # what must / must not come before it (or a function of cfg)

    def produced(self, cfg) -> tuple[str, ...]:
        return tuple(self.produces(cfg) if callable(self.produces) else self.produces)

    def rules_for(self, cfg) -> tuple[Rule, ...]:
        return tuple(self.rules(cfg) if callable(self.rules) else self.rules)


STAGES: dict[str, StageDef] = {}


def register_stage(config: type[StageConfig], *, reads: str, changes: str, summary: str, order: int,
                   produces: Tags = (), rules: Rules = (),
                   resolve: Callable[[Any, Any], Any] | None = None,
                   host: Callable[[Any], str | None] | None = None,
                   revision: Callable[[Any], str | None] | None = None,
                   check: Callable[[Any, dict[str, Any]], None] | None = None,
                   for_model: Callable[[Any, Any], Any] | None = None):
    """Register ``fn`` as the stage of ``config``'s ``kind`` (decorator). ``order`` places it in
    pipeline order; ``produces`` and ``rules`` are its order declarations (see the module docstring).
    ``host(cfg)`` names what of the machine the stage's output depends on (e.g. the device it measured
    on), so that a resumed run on another kind of machine does not reuse it. ``revision(cfg)`` names a
    change of the stage's code that changes its output for ``cfg`` (``None`` where the output is as
    before), so that a run resumed after the change redoes the stage instead of reusing an output the
    code no longer makes, while every other run keeps its key. ``check(cfg, shape)`` raises ConfigError
    when the stage cannot run on the model described by ``shape`` (see :func:`model_shape`), before any
    stage runs; it updates ``shape`` where the stage changes it (prune dropping layers).
    ``for_model(cfg, config)`` fills defaults that depend on the input model (distillation's learning
    rates per model family) before the stage is keyed, so the manifest records them."""
    if reads not in READS or changes not in CHANGES:
        raise ValueError(f"reads must be one of {READS} and changes one of {CHANGES}")
    kind = config.model_fields["kind"].default

    def deco(fn):
        if kind in STAGES and STAGES[kind].fn is not fn:
            raise ValueError(f"stage kind '{kind}' is registered twice")
        STAGES[kind] = StageDef(kind, config, fn, reads, changes, summary, resolve, host, revision, check,
                                for_model, order, produces, rules)
        return fn

    return deco


_loaded = False


def load_builtin() -> None:
    """Import every module of the ``edgebert.stages`` package once (each registers its stage), then
    keep :data:`STAGES` in pipeline order. Modules whose names start with ``_`` hold shared helpers."""
    global _loaded
    if _loaded:
        return
    package = importlib.import_module(__name__.rpartition(".")[0])
    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("_") and f"{package.__name__}.{info.name}" != __name__:
            importlib.import_module(f"{package.__name__}.{info.name}")
    _loaded = True
    ordered = sorted(STAGES.values(), key=lambda s: s.order)
    STAGES.clear()
    STAGES.update((s.kind, s) for s in ordered)


def stage_kinds() -> list[str]:
    """Registered stage kinds, in pipeline order."""
    load_builtin()
    return sorted(STAGES, key=lambda kind: STAGES[kind].order)


def get_stage(kind: str) -> StageDef:
    """The stage registered as ``kind``; UnknownStageError listing the known kinds."""
    load_builtin()
    try:
        return STAGES[kind]
    except KeyError:
        raise UnknownStageError(
            f"Unknown stage '{kind}'. Known: {', '.join(STAGES)}. See: edgebert compress --list-stages"
        ) from None


def parse_stage(values: Any, where: str) -> StageConfig:
    """One recipe entry (a mapping with ``kind``) as its typed config; errors name ``where``."""
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where}: a stage is a mapping with a 'kind' key, got {type(values).__name__}")
    if "kind" not in values:
        raise ConfigError(f"{where}: stage has no 'kind'. Known kinds: {', '.join(stage_kinds())}")
    try:
        stage = get_stage(str(values["kind"]))
    except UnknownStageError as exc:
        raise UnknownStageError(f"{where}: {exc}") from None
    return build_config(stage.config, dict(values), source=where)


def model_shape(config) -> dict[str, Any]:
    """What the stage checks read of a model's config: model type and layer count."""
    return {"model_type": getattr(config, "model_type", None),
            "num_hidden_layers": int(getattr(config, "num_hidden_layers", 0) or 0)}


def resolve_for_model(stages: Sequence[StageConfig], config) -> list[StageConfig]:
    """Each stage's model-dependent defaults (``for_model``) filled in for the input model ``config``."""
    out = []
    for cfg in stages:
        stage = get_stage(cfg.kind)
        out.append(stage.for_model(cfg, config) if stage.for_model else cfg)
    return out


def check_model(stages: Sequence[StageConfig], config, source: str = "recipe", text_pair: bool | None = None) -> None:
    """Each stage's ``check`` against the model it will get (in order): errors name the stage.
    ``text_pair``: whether the data are sentence pairs (None: not known yet), as ``shape["text_pair"]``."""
    shape = {**model_shape(config), "text_pair": text_pair}
    for i, cfg in enumerate(stages, start=1):
        stage = get_stage(cfg.kind)
        if stage.check is None:
            continue
        try:
            stage.check(cfg, shape)
        except ConfigError as exc:
            raise ConfigError(f"{source}: stage {i} ({cfg.kind}): {exc}") from None


def check_token_limits(stages: Sequence[StageConfig], target, config, source: str = "recipe") -> None:
    """The target's ``shapes.max_length`` (what the artifact promises to take) and each stage's
    ``max_length`` against the model's position table, before any work: a longer cap fails mid-run in
    torch, or ships an artifact that fails on long texts."""
    from edgebert.models import check_max_length

    where = f" ({target.source})" if getattr(target, "source", None) else ""
    check_max_length(target.shapes.max_length, config, f"target '{target.name}'{where}: shapes.max_length")
    for i, cfg in enumerate(stages, start=1):
        if getattr(cfg, "max_length", None) is not None:
            check_max_length(cfg.max_length, config, f"{source}: stage {i} ({cfg.kind}): max_length")


def _first(made: Mapping[str, tuple[int, Any]], tag: str) -> tuple[int, Any] | None:
    """(position, config) of the earliest stage that produced ``tag`` or a refinement of it."""
    hits = [v for t, v in made.items() if t == tag or t.startswith(tag + ":")]
    return min(hits, key=lambda v: v[0]) if hits else None


def order_problem(stages: Sequence[StageConfig], source: str = "recipe") -> str | None:
    """What is wrong with the order of ``stages`` (the first problem), checked from each stage's
    declared ``rules`` and ``produces``; None when the order can work."""
    if not stages:
        return f"{source}: the recipe has no stages."
    made: dict[str, tuple[int, Any]] = {}  # tag -> (position, config) of its earliest producer
    for i, cfg in enumerate(stages, start=1):
        stage = get_stage(cfg.kind)
        here = f"{source}: stage {i} '{cfg.kind}'"
        for rule in stage.rules_for(cfg):
            found = _first(made, rule.tag)
            if (found is not None) != rule.present:
                at, by = found or (None, None)
                return rule.message.format(here=here, at=at, kind=getattr(by, "kind", None), cfg=by)
        for tag in stage.produced(cfg):
            made.setdefault(tag, (i, cfg))
    if _first(made, "export") is None:
        return (f"{source}: no stage writes a deployable model. End the recipe with an export "
                f"({_either(deployable_kinds())}).")
    return None


def check_order(stages: Sequence[StageConfig], source: str = "recipe") -> None:
    """Reject orders that cannot work, naming the stages and positions; nothing heavy runs first."""
    problem = order_problem(stages, source)
    if problem:
        raise ConfigError(problem)


def deployable_kinds() -> list[str]:
    """The kinds that write a deployable model (produce ``export`` with their default config)."""
    return [kind for kind in stage_kinds()
            if any(t == "export" or t.startswith("export:") for t in STAGES[kind].produced(
                STAGES[kind].config.model_construct()))]


def _either(words: Iterable[str]) -> str:
    words = list(words)
    return ", ".join(words[:-1]) + f" or {words[-1]}" if len(words) > 1 else "".join(words)
