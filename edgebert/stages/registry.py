"""The stage registry: ``kind`` -> (typed config, one function), plus the state a pipeline carries.

A stage is a config class (a :class:`~edgebert.config.StageConfig` with a ``kind`` literal) and one
function ``fn(art: Artifact, cfg, ctx: RunContext) -> StageResult``. Registering it makes the kind
usable in recipes, in ``edgebert compress --recipe`` files and in error messages::

    @register_stage(PruneStageConfig, reads="torch", changes="torch", summary="...")
    def prune(art, cfg, ctx): ...

``reads`` / ``changes`` say what the stage consumes and produces; :func:`check_order` uses them to
reject recipes that cannot work (pruning after an export, quantizing ONNX before any export) before
anything heavy runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
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


STAGES: dict[str, StageDef] = {}


def register_stage(config: type[StageConfig], *, reads: str, changes: str, summary: str,
                   resolve: Callable[[Any, Any], Any] | None = None,
                   host: Callable[[Any], str | None] | None = None,
                   revision: Callable[[Any], str | None] | None = None,
                   check: Callable[[Any, dict[str, Any]], None] | None = None,
                   for_model: Callable[[Any, Any], Any] | None = None):
    """Register ``fn`` as the stage of ``config``'s ``kind`` (decorator). ``host(cfg)`` names what of
    the machine the stage's output depends on (e.g. the device it measured on), so that a resumed
    run on another kind of machine does not reuse it. ``revision(cfg)`` names a change of the stage's
    code that changes its output for ``cfg`` (``None`` where the output is as before), so that a run
    resumed after the change redoes the stage instead of reusing an output the code no longer makes,
    while every other run keeps its key. ``check(cfg, shape)`` raises ConfigError when the stage
    cannot run on the model described by ``shape`` (see :func:`model_shape`), before any stage runs;
    it updates ``shape`` where the stage changes it (prune dropping layers). ``for_model(cfg, config)``
    fills defaults that depend on the input model (distillation's learning rates per model family)
    before the stage is keyed, so the manifest records them."""
    if reads not in READS or changes not in CHANGES:
        raise ValueError(f"reads must be one of {READS} and changes one of {CHANGES}")
    kind = config.model_fields["kind"].default

    def deco(fn):
        if kind in STAGES and STAGES[kind].fn is not fn:
            raise ValueError(f"stage kind '{kind}' is registered twice")
        STAGES[kind] = StageDef(kind, config, fn, reads, changes, summary, resolve, host, revision, check,
                                for_model)
        return fn

    return deco


def _load_builtin() -> None:
    from edgebert.stages import train, quantize, export  # noqa: F401,I001  (registration order = pipeline order)


def stage_kinds() -> list[str]:
    """Registered stage kinds, in pipeline order."""
    _load_builtin()
    return list(STAGES)


def get_stage(kind: str) -> StageDef:
    """The stage registered as ``kind``; UnknownStageError listing the known kinds."""
    _load_builtin()
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


def check_model(stages: Sequence[StageConfig], config, source: str = "recipe") -> None:
    """Each stage's ``check`` against the model it will get (in order): errors name the stage."""
    shape = model_shape(config)
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


def check_order(stages: Sequence[StageConfig], source: str = "recipe") -> None:
    """Reject orders that cannot work, naming the stages and positions; nothing heavy runs first."""
    if not stages:
        raise ConfigError(f"{source}: the recipe has no stages.")
    exported_at: tuple[int, str] | None = None   # first export of the torch model
    onnx_at: int | None = None
    fused = False
    pruned_at: int | None = None
    engine_at: int | None = None
    quantized_at: int | None = None
    torch_quant_at: int | None = None
    sparsified_at: int | None = None
    for i, cfg in enumerate(stages, start=1):
        stage = get_stage(cfg.kind)
        here = f"{source}: stage {i} '{cfg.kind}'"
        mode = getattr(cfg, "mode", None)
        if stage.changes == "torch" and exported_at is not None:
            raise ConfigError(
                f"{here} comes after '{exported_at[1]}' (stage {exported_at[0]}): exports capture the model "
                "as it is then, so this change would not reach the exported files. Put finetune, prune and "
                "distill before every export."
            )
        if sparsified_at is not None and cfg.kind in ("finetune", "prune", "distill"):
            raise ConfigError(
                f"{here} comes after 'sparsify' (stage {sparsified_at}): training would refill the zeroed weights "
                "and pruning would re-rank them. Put sparsify after finetune, prune and distill."
            )
        if cfg.kind == "sparsify":
            sparsified_at = i
        if cfg.kind == "distill" and pruned_at is None:
            raise ConfigError(
                f"{here} has no smaller student: distillation trains a pruned model to imitate the fine-tuned "
                "one, so a 'prune' stage must come before it."
            )
        if cfg.kind == "quantize" and mode == "torch-int8-dynamic":
            if exported_at is not None:
                raise ConfigError(f"{here}: torch-int8-dynamic must come before the exports (it changes the torch model).")
            torch_quant_at = i
        elif stage.reads == "onnx" and onnx_at is None:
            raise ConfigError(f"{here} needs an ONNX model: put an 'export-onnx' stage before it.")
        if cfg.kind == "export-onnx":
            if torch_quant_at is not None:
                raise ConfigError(
                    f"{here} after torch-int8-dynamic (stage {torch_quant_at}): torch's quantized modules do not "
                    "export to ONNX. Quantize the ONNX model instead (mode int8-dynamic after export-onnx)."
                )
            if onnx_at is not None:
                raise ConfigError(f"{here}: the recipe already exports ONNX at stage {onnx_at}.")
            onnx_at, fused = i, bool(getattr(cfg, "fuse", False))
        if cfg.kind == "quantize" and mode != "torch-int8-dynamic" and engine_at is not None:
            raise ConfigError(
                f"{here} comes after 'build-tensorrt' (stage {engine_at}), whose build_engine.sh uses the ONNX model "
                "as it was then: quantize before build-tensorrt (int8-static, symmetric: true for an int8 engine).")
        if cfg.kind == "build-tensorrt":
            engine_at = i
        if cfg.kind == "quantize" and mode != "torch-int8-dynamic":
            if quantized_at is not None:
                raise ConfigError(f"{here}: the ONNX model is already quantized at stage {quantized_at}.")
            quantized_at = i
        if cfg.kind == "build-tensorrt" and quantized_at is not None:
            qmode = getattr(stages[quantized_at - 1], "mode", None)
            if qmode not in ("int8-static", "fp16"):
                raise ConfigError(
                    f"{here}: TensorRT cannot parse the {qmode} model of stage {quantized_at} (onnxruntime-only "
                    "integer ops). For an int8 engine quantize with mode int8-static, symmetric: true (Q/DQ); for "
                    "fp16 leave the ONNX model in fp32 (TensorRT converts it).")
        feeding = stages[quantized_at - 1] if quantized_at is not None else None
        if cfg.kind == "build-tensorrt" and getattr(feeding, "mode", None) == "int8-static" and not (
                getattr(feeding, "symmetric", False) and getattr(feeding, "weight_type", "s8") == "s8"):
            raise ConfigError(
                f"{here}: TensorRT takes only symmetric int8 Q/DQ (int8, zero point 0); set symmetric: true and "
                f"weight_type: s8 on the quantize of stage {quantized_at}.")
        if cfg.kind == "build-tensorrt" and getattr(cfg, "precision", None) == "int8" and (
                quantized_at is None or getattr(stages[quantized_at - 1], "mode", None) != "int8-static"):
            raise ConfigError(
                f"{here}: an int8 engine needs explicit Q/DQ: put 'quantize' with mode int8-static, symmetric: true "
                "before it (TensorRT 10 deprecates implicit calibration).")
        if cfg.kind == "build-tensorrt" and fused:
            raise ConfigError(
                f"{here}: TensorRT cannot parse onnxruntime's fused operators (Attention, SkipLayerNorm); "
                f"set 'fuse: false' on export-onnx (stage {onnx_at})."
            )
        if cfg.kind == "prune":
            pruned_at = i
        if stage.changes == "export" or cfg.kind == "export-onnx":
            exported_at = exported_at or (i, cfg.kind)
    if exported_at is None:
        raise ConfigError(
            f"{source}: no stage writes a deployable model. End the recipe with an export "
            "(export-onnx, export-torchscript, export-mobile, build-tensorrt or export-pytorch)."
        )
