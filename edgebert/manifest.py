"""The artifact's manifest.json, typed: what makes a folder an edgebert artifact, read and written in one place.

::

    {"schema_version": 1, "kind": "edgebert-artifact", "status": "running" | "complete",
     "created", "updated", "run": {model, model_source, model_sha256, data, target, recipe, seed},
     "target": the target profile, "recipe": the resolved stage configs, "versions", "host",
     "stages": [StageRecord, ...], "deploy": {how the runtime runs model/...}, "deployed_scores": [...],
     "summary": {teacher vs final accuracy, budgets}, "calibration": {edgebert calibrate's threshold}}

Every block takes keys it does not declare (a newer edgebert's, a hand-written artifact's) and writes them
back, and only the keys a manifest had are written: a manifest read and written again keeps every key and
value, in its order. Readers on the run side (runtime, bench, calibrate) use :func:`read_manifest`,
:func:`deploy_block` and :func:`engine_precision`; nothing here needs torch.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Union

from pydantic import BaseModel, ConfigDict, PrivateAttr, ValidationError, model_serializer, model_validator

from edgebert.errors import ManifestError

#: what manifest.json's "kind" says in a folder edgebert compress wrote (finetune writes its own kind)
ARTIFACT_KIND = "edgebert-artifact"
SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"

# JSON numbers stay as they were read (an int is not turned into a float, nor the reverse)
Number = Union[int, float]
# an open-ended block (a stage's metrics, a config, the host): whatever its writer put there, kept as it is
# (keys too: a stage may record {layer index: heads}, which JSON writes with string keys)
Open = dict[Any, Any]


class _Block(BaseModel):
    """A manifest block: declared keys are typed, others are kept; written back in the order it was read."""

    model_config = ConfigDict(extra="allow", strict=True)
    _order: list[str] = PrivateAttr(default_factory=list)

    @model_validator(mode="wrap")
    @classmethod
    def _remember_order(cls, data: Any, handler):
        block = handler(data)
        if isinstance(data, dict) and not block._order:
            block._order = list(data)
        return block

    @model_serializer(mode="wrap")
    def _in_order(self, handler) -> dict[str, Any]:
        out = handler(self)
        rank = {k: i for i, k in enumerate(self._order)}
        # keys read keep their place; keys set since follow, in the order the schema declares them
        return dict(sorted(out.items(), key=lambda kv: rank.get(kv[0], len(rank))))

    def to_dict(self) -> dict[str, Any]:
        """The block as JSON-ready data: only the keys it was given or set since."""
        return self.model_dump(exclude_unset=True)


class StageRecord(_Block):
    """One stage of a compress run (``metrics``, ``validation``, ``config`` and ``state`` are the stage's own)."""

    index: int | None = None
    kind: str | None = None
    name: str | None = None
    status: str | None = None                 # "done"
    config: Open | None = None                # the resolved stage config
    key: str | None = None                    # the chain of keys up to this stage (resume / cache)
    input_sha256: str | None = None
    output_sha256: str | None = None
    skipped: str | None = None                # why the stage had nothing to do
    metrics: Open | None = None
    validation: Open | None = None
    seconds: Number | None = None
    started: str | None = None
    finished: str | None = None
    seed: int | None = None
    versions: Open | None = None
    host: Open | None = None
    state: Open | None = None                 # the stage registry's Artifact after this stage
    taken_from: str | None = None             # the stage folder of another run it was taken from (stage cache)


class Run(_Block):
    """What a compress run was made from: two runs with the same model, data, target and seed are the same."""

    model: str | None = None
    model_source: str | None = None
    model_sha256: str | None = None
    data: Open | None = None
    target: str | None = None
    recipe: str | None = None
    seed: int | None = None


class Deploy(_Block):
    """How the runtime runs the artifact (``edgebert.runtime.Classifier`` reads this block)."""

    runtime: str | None = None
    precision: str | None = None
    target_runtime: str | None = None
    target_precision: str | None = None
    fallback_runtime: str | None = None
    format: str | None = None
    model: str | None = None                  # the file the runtime loads, relative to the artifact folder
    files: list[str] | None = None
    tokenizer: str | None = None
    labels: str | None = None
    providers: list[str] | None = None
    threads: int | None = None
    max_length: int | None = None
    model_max_length: int | None = None
    input_names: list[str] | None = None
    text_pair: bool | None = None
    threshold: Number | None = None
    unknown_label: str | None = None
    engine: str | None = None
    fallback: Open | None = None


class Summary(_Block):
    """Teacher vs final dev accuracy and the deployed size, against the target's budgets."""

    teacher_dev_accuracy: Number | None = None
    teacher_dev_accuracy_file: str | None = None
    final_dev_accuracy: Number | None = None
    final_dev_accuracy_file: str | None = None
    accuracy_drop_points: Number | None = None
    accuracy_budget_points: Number | None = None
    within_accuracy_budget: bool | None = None
    model_bytes: int | None = None
    size_budget_mib: Number | None = None
    within_size_budget: bool | None = None
    seconds: Number | None = None


class Manifest(_Block):
    """An artifact folder's manifest.json."""

    schema_version: int | None = None
    kind: str | None = None
    status: str | None = None                 # "running" until the artifact is assembled, then "complete"
    created: str | None = None
    updated: str | None = None
    run: Run | None = None
    target: Union[Open, str, None] = None  # the target profile (a name in hand-built artifacts)
    recipe: list[Open] | None = None
    versions: Open | None = None
    host: Open | None = None
    stages: list[StageRecord] | None = None
    deploy: Deploy | None = None
    deployed_scores: list[Open] | None = None
    summary: Summary | None = None
    calibration: Open | None = None
    search: Open | None = None                # compress --search: the shapes timed and trained, and the choice

    @classmethod
    def new(cls, **fields: Any) -> Manifest:
        """A manifest that says it is an edgebert artifact (``fields`` follow the identity)."""
        return cls.model_validate({"schema_version": SCHEMA_VERSION, "kind": ARTIFACT_KIND, **fields})

    @property
    def is_artifact(self) -> bool:
        """Whether this is the manifest of an edgebert artifact (not finetune's, not another tool's)."""
        return self.kind == ARTIFACT_KIND

    def done_stages(self) -> list[StageRecord]:
        """The stage records of stages that finished."""
        return [s for s in self.stages or [] if s.status == "done"]


def read_manifest(path: str | os.PathLike) -> Manifest:
    """The manifest at ``path`` (a manifest.json, or the folder holding one); ManifestError where it is
    missing, not JSON, or of another shape."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ManifestError(f"'{path}' cannot be read ({exc.strerror or exc})", path=path, reason="missing") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ManifestError(f"'{path}' is not valid JSON ({exc})", path=path, reason="garbled") from None
    return manifest_from_data(data, path)


def manifest_from_data(data: Any, path: str | os.PathLike = MANIFEST_NAME) -> Manifest:
    """``data`` (parsed manifest.json) as a Manifest; ManifestError (reason "shape") where it does not fit."""
    if not isinstance(data, dict):
        raise ManifestError(f"'{path}' holds {type(data).__name__}, not a manifest object", path=Path(path),
                            reason="shape")
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        raise ManifestError(f"'{path}' is not an edgebert manifest ({_problems(exc)})", path=Path(path),
                            reason="shape") from None


def _problems(exc: ValidationError) -> str:
    """'stages.0.index: Input should be a valid integer, ...' (the first three)."""
    return ", ".join(".".join(str(p) for p in e["loc"]) + f": {e['msg']}" for e in exc.errors()[:3])


def stage_record(data: Any) -> StageRecord:
    """``data`` (a stage record as JSON data, e.g. the stage cache's) as a StageRecord; ManifestError
    (reason "shape") where it does not fit."""
    try:
        return StageRecord.model_validate(data)
    except ValidationError as exc:
        raise ManifestError(f"not a stage record ({_problems(exc)})", path=Path(MANIFEST_NAME), reason="shape") from None


def write_manifest(path: str | os.PathLike, manifest: Manifest) -> None:
    """Write ``manifest`` to ``path`` (a manifest.json, or the folder holding one) atomically: readers see
    the old file or the new one (see :func:`edgebert.artifact.write_json`)."""
    from edgebert.artifact import write_json

    path = Path(path)
    write_json(path / MANIFEST_NAME if path.is_dir() else path, manifest.to_dict())


def is_artifact(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds the manifest of an edgebert artifact (readable, of the artifact kind)."""
    try:
        return read_manifest(Path(folder) / MANIFEST_NAME).is_artifact
    except ManifestError:
        return False


def deploy_block(manifest: Manifest | dict[str, Any]) -> dict[str, Any]:
    """The manifest's ``deploy`` block as data (empty where it has none)."""
    data = manifest.to_dict() if isinstance(manifest, Manifest) else manifest
    deploy = data.get("deploy")
    return deploy if isinstance(deploy, dict) else {}


def first(records, *paths: str) -> Any:
    """The first value found in ``records`` (dicts) under any of the dotted ``paths`` (e.g. "metrics.precision")."""
    for rec in records:
        for path in paths:
            value: Any = rec
            for part in path.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            if value is not None:
                return value
    return None


def engine_precision(manifest: Manifest | dict[str, Any]) -> str | None:
    """The precision the last build-tensorrt stage of a manifest built (or deferred) its engine with."""
    data = manifest.to_dict() if isinstance(manifest, Manifest) else manifest
    builds = [r for r in reversed(data.get("stages") or [])
              if isinstance(r, dict) and r.get("kind") == "build-tensorrt"]
    value = first(builds, "metrics.precision")
    return None if value is None else str(value)


def engine_file_precision(path: str | os.PathLike) -> str:
    """The precision of a TensorRT engine file from the manifest of the artifact holding it (beside it,
    or one folder up), else "unknown"."""
    path = Path(path)
    for manifest in (path.parent / "manifest.json", path.parent.parent / "manifest.json"):
        if manifest.is_file():
            try:
                data = json.loads(manifest.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return "unknown"
            return (engine_precision(data) if isinstance(data, dict) else None) or "unknown"
    return "unknown"
