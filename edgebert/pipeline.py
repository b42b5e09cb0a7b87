"""Run a recipe over a model and write one self-describing artifact folder.

::

    OUT/
      manifest.json   every stage: kind, resolved config, input / output sha256, metrics, validation,
                      seconds, library versions, host, seed; the run (model, data, target); deploy
      model/          the deployable files (model.onnx | model.ort | model.pt | model.plan + build_engine.sh ...)
      tokenizer/      the tokenizer files;  labels.json  {"labels": [...]} (index = logit index)
      report.md       the stage table
      stages/NN-kind/ each stage's outputs (kept: later runs reuse them)

Each stage writes into a staging folder renamed into place when it finished, and the manifest is
rewritten (atomically) after every stage, so an interrupted run resumes from the last finished
stage and never leaves a half-written file in place of a finished one. A re-run skips every stage
whose config and inputs are unchanged (a chain of keys: each stage's key hashes the previous key and
its own resolved config) and whose output folder still has the recorded sha256. While a run writes, it holds
an operating-system lock on OUT/.edgebert-compress.lock: a second run into the same folder is refused,
and the lock of a run that was killed (SIGKILL, a stopped container) is released by the system; the
staging folders such a run leaves are removed by the next run.

This module is the stage loop; :mod:`edgebert.cache` holds the keys, the run's identity, the lock and the
stage cache, :mod:`edgebert.deploy` the assembly of model/ and the reports, :mod:`edgebert.manifest` the
manifest's schema.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgebert import cache as stage_cache
from edgebert.deploy import accuracy_budget_left, assemble, report_markdown
from edgebert.errors import ConfigError, OutputExistsError
from edgebert.manifest import Manifest, StageRecord, write_manifest
from edgebert.plan import DEFAULT_TARGET, Plan, _with_run_seed, plan  # noqa: F401  (moved; names kept here)

# names that lived here before the keys, the lock and the cache moved to cache.py, assembly and reports to
# deploy.py and the manifest's identity to manifest.py: code that imports them from here keeps working
from edgebert.cache import LOCK_NAME, stage_key as _key  # noqa: F401,E402
from edgebert.deploy import budget_warnings, summarize  # noqa: F401,E402
from edgebert.manifest import ARTIFACT_KIND, SCHEMA_VERSION, engine_precision  # noqa: F401,E402

DEFAULT_MODEL = "minilm"
DEFAULT_DATA = "intents"


@dataclass
class CompressResult:
    out: Path
    manifest: dict[str, Any]
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def default_out(model: str, target: str) -> Path:
    slug = Path(str(model).rstrip("/")).name or "model"
    return Path("runs") / "compress" / f"{slug}-{Path(str(target)).stem}"


def _seed_everything(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % (2**32))
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:  # pragma: no cover
        pass


def compress(model: str = DEFAULT_MODEL, target: str = DEFAULT_TARGET, *, data: Any = DEFAULT_DATA,
             out: str | os.PathLike | None = None, recipe: str | os.PathLike | None = None,
             overwrite: bool = False, seed: int = 0, progress: bool = True,
             log: Callable[[str], None] | None = None, cache: str | os.PathLike | bool = True,
             keep: tuple[str, ...] = (), **data_options: Any) -> CompressResult:
    """Run the target's recipe (or ``recipe``) on ``model`` with ``data``; write the artifact to ``out``.

    Every input is checked before anything heavy runs: the target and recipe (known stages, a
    possible order, values in range), the model (resolvable, an architecture edgebert can export),
    the data, and the output folder (empty, or this same run to resume). See the module docstring
    for the folder. ``cache``: the stage cache shared with other runs (``True``: beside ``out``, see
    :mod:`edgebert.cache`; a folder; ``False``: none). ``keep``: entries of ``out`` that are not this
    run's and stay (:mod:`edgebert.search` keeps its candidates there).
    """
    from edgebert import models
    from edgebert.artifact import check_writable, host_info, library_versions, now_iso, sha256_tree, staged_dir, write_text
    from edgebert.data import Dataset, load_dataset
    from edgebert.models.specs import get_spec
    from edgebert.stages.registry import Artifact, RunContext, check_model, check_token_limits, get_stage

    say = log or (lambda msg: None)
    the_plan = plan(target, recipe)
    out = Path(out) if out is not None else default_out(model, the_plan.target.name)
    check_writable(out)  # a read-only place fails now, not when the first stage has run
    config = models.load_config(model)
    get_spec(config)  # UnsupportedArchitectureError before any work
    models.check_weights(model)  # a truncated weights file is reported before the output folder is claimed
    the_plan = the_plan.for_model(config)
    check_token_limits(the_plan.stages, the_plan.target, config, f"recipe '{the_plan.recipe}'")
    dataset = data if isinstance(data, Dataset) else load_dataset(data, **data_options)
    # e.g. fusion of a RoBERTa, too many layers, a text-in graph for sentence pairs
    check_model(the_plan.stages, config, f"recipe '{the_plan.recipe}'", text_pair=dataset.text_pair_column is not None)
    if any(s.kind in ("finetune", "distill") for s in the_plan.stages):
        dataset.check_trainable()
    trained = models.model_labels(config)
    has_head = trained is not None and set(trained) == set(dataset.label_names)
    if not has_head and not any(s.kind == "finetune" for s in the_plan.stages):
        raise ConfigError(
            f"Model '{model}' has no trained head for the {dataset.num_labels} labels of {dataset.name}, and recipe "
            f"'{the_plan.recipe}' has no 'finetune' stage. Add one, or pass a model fine-tuned on this data."
        )
    if "dev" not in dataset.splits:
        raise ConfigError(f"Dataset {dataset.name} has no dev split; compress checks every stage on dev data.")
    if has_head:
        dataset = dataset.with_labels(trained)
    location, model_hash = stage_cache.model_identity(model)
    run = {"model": str(model), "model_source": location, "model_sha256": model_hash,
           "data": stage_cache.data_identity(dataset), "target": the_plan.target.name, "recipe": the_plan.recipe, "seed": seed}
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"Output path '{out}' exists and is a file, not a folder.")
    stage_cache.check_lock(out)  # a folder another run is writing: refused before anything is created
    out.mkdir(parents=True, exist_ok=True)
    root = out.resolve()
    cache_dir = None if cache is False else stage_cache.default_cache_dir(root) if cache is True else Path(cache)
    why_not = stage_cache.usable(cache_dir) if cache_dir is not None else None
    if why_not:
        say(f"Not using the stage cache {cache_dir}: {why_not} (--cache DIR names another, --no-cache none)")
        cache_dir = None
    with stage_cache.run_lock(root):  # the lock first, then the folder's state: no other run can start in between
        previous = stage_cache.prepare_out(out, run, overwrite, keep)
        stage_cache.remove_leftovers(root)
        old_stages = {s.index: s for s in previous.done_stages()} if previous is not None else {}

        manifest = Manifest.new(
            status="running", created=previous.created if previous and previous.created else now_iso(),
            updated=now_iso(), run=run, target=the_plan.target.model_dump(mode="json"),
            recipe=[s.model_dump(mode="json") for s in the_plan.stages],
            versions=library_versions(), host=_host(host_info()), stages=[],
        )
        art = Artifact(root=root, model=location)
        key, code = stage_cache.first_key(run)
        result = CompressResult(out=out, manifest={})
        changed = stage_cache.changed_versions((previous.versions if previous else None) or {}, code)
        if changed:
            say(f"library versions changed since {out} was written ({changed}): its stages run again")
        if previous is None:  # a run stopped in its first stage still leaves a folder that says whose it is
            write_manifest(root / "manifest.json", manifest)
        diverged = False
        total = len(the_plan.stages)
        for index, cfg in enumerate(the_plan.stages, start=1):
            stage = get_stage(cfg.kind)
            cfg = _with_run_seed(cfg, seed)
            key = stage_cache.stage_key(key, cfg, stage.host(cfg) if stage.host else None,
                       stage.revision(cfg) if stage.revision else None)
            name = f"{index:02d}-{cfg.kind}"
            folder = root / "stages" / name
            old = old_stages.get(index)
            if not diverged and old and old.key == key and folder.is_dir() \
                    and sha256_tree(folder) == old.output_sha256:
                art = Artifact.from_json(root, old.state)
                manifest.stages.append(old)
                result.skipped.append(name)
                say(f"[{index}/{total}] {cfg.kind}: unchanged, reused {folder.relative_to(root)}")
                stage_cache.try_put(cache_dir, key, index, folder, old, say)
                continue
            if not diverged:  # from here on every stage runs again; older outputs are stale
                diverged = True
                for stale in sorted((root / "stages").glob("*")) if (root / "stages").is_dir() else []:
                    if stale.name >= name:
                        shutil.rmtree(stale, ignore_errors=True)
            cached = stage_cache.try_take(cache_dir, key, index, folder, stage_cache.input_hash(art, stage), say)
            if cached is not None:  # the same stage of another run (e.g. fine-tuning for another target)
                art = Artifact.from_json(root, cached.state)
                manifest.stages.append(cached)
                manifest.updated = now_iso()
                write_manifest(root / "manifest.json", manifest)
                result.skipped.append(name)
                say(f"[{index}/{total}] {cfg.kind}: same stage as an earlier run, taken from {cache_dir}")
                continue
            say(f"[{index}/{total}] {cfg.kind}: running")
            _seed_everything(seed + index)
            input_sha = stage_cache.input_hash(art, stage)
            started, t0 = now_iso(), time.perf_counter()
            with staged_dir(folder) as work:
                ctx = RunContext(dataset=dataset, target=the_plan.target, work=work, seed=seed + index,
                                 progress=progress, log=say,
                                 accuracy_budget_left=accuracy_budget_left([s.to_dict() for s in manifest.stages],
                                                                            the_plan.target))
                res = stage.fn(art, cfg, ctx)
                staging_rel = art.rel(work)
            seconds = time.perf_counter() - t0
            state = stage_cache.relocate(res.artifact.to_json(), staging_rel, f"stages/{name}")
            art = Artifact.from_json(root, state)
            record = StageRecord.model_validate({
                "index": index, "kind": cfg.kind, "name": name, "status": "done",
                "config": cfg.model_dump(mode="json"), "key": key,
                "input_sha256": input_sha, "output_sha256": sha256_tree(folder),
                "skipped": res.skipped, "metrics": stage_cache.relocate(res.metrics, str(root / staging_rel), str(folder)),
                "validation": res.validation, "seconds": round(seconds, 3), "started": started, "finished": now_iso(),
                "seed": seed + index, "versions": library_versions(), "host": host_info(), "state": state,
            })
            manifest.stages.append(record)
            manifest.updated = now_iso()
            write_manifest(root / "manifest.json", manifest)
            stage_cache.try_put(cache_dir, key, index, folder, record, say)
            result.ran.append(name)
            say(f"[{index}/{total}] {cfg.kind}: " + (f"nothing to do ({res.skipped})" if res.skipped else
                                                      f"done in {seconds:.1f} s{_headline(record)}"))

        assemble(root, art, manifest, the_plan.target, previous, dataset)
        manifest.status = "complete"
        manifest.updated = now_iso()
        write_manifest(root / "manifest.json", manifest)
        result.manifest = manifest.to_dict()
        write_text(root / "report.md", report_markdown(result.manifest))
        return result


def _host(info: dict[str, Any]) -> dict[str, Any]:
    """host_info plus the CPU features that decide which int8 / fp16 kernels onnxruntime picks."""
    from edgebert.artifact import flags_of_interest

    return {**info, "kernel_flags": [f for f, present in flags_of_interest().items() if present]}


def _headline(record: StageRecord) -> str:
    m, v = record.metrics or {}, record.validation or {}
    parts = []
    if m.get("dev_accuracy") is not None:
        parts.append(f"dev accuracy {m['dev_accuracy']:.4f}")
    if v.get("label_agreement") is not None:
        parts.append(f"agreement {v['label_agreement']:.3f}")
    if m.get("bytes"):
        parts.append(f"{m['bytes'] / 2**20:.1f} MiB")
    return (": " + ", ".join(parts)) if parts else ""
