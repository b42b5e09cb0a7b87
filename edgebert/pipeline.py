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
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgebert.errors import ConfigError, EdgebertError, ModelLoadError, OutputExistsError
from edgebert.formats import DEPLOYABLE_SUFFIXES, engine_precision, format_of, onnx_precision, safetensors_precision
from edgebert.plan import DEFAULT_TARGET, Plan, _with_run_seed, plan  # noqa: F401  (moved; names kept here)

ARTIFACT_KIND = "edgebert-artifact"
SCHEMA_VERSION = 1
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


def _key(prev: str, cfg, host: str | None = None, revision: str | None = None) -> str:
    body = json.dumps(cfg.model_dump(mode="json"), sort_keys=True)
    text = f"{prev}\n{cfg.kind}\n{body}" + (f"\nhost: {host}" if host is not None else "")
    text += f"\nrevision: {revision}" if revision is not None else ""
    return hashlib.sha256(text.encode()).hexdigest()


def _model_identity(ref: str) -> tuple[str, str]:
    """(resolved location, sha256) of the input model; hub ids hash their cached files when loaded."""
    from edgebert import models
    from edgebert.artifact import sha256_tree

    resolved = models.resolve(ref)
    if resolved.kind == "hub":  # the cached revision (commit) load_config fetched: a new upload is another model
        return resolved.path, f"hub:{resolved.path}@{_hub_revision(resolved.path)}"
    return resolved.path, sha256_tree(resolved.path)


def _hub_revision(hub_id: str) -> str:
    """The commit of ``hub_id``'s cached snapshot (its config.json's snapshot folder), 'unknown' if not cached."""
    from huggingface_hub import try_to_load_from_cache

    path = try_to_load_from_cache(hub_id, "config.json")
    return Path(path).parent.name if isinstance(path, str) else "unknown"


def _split_sha256(split) -> str:
    return hashlib.sha256(json.dumps([split.texts, split.text_pairs, split.labels]).encode()).hexdigest()


def _changed_versions(before: dict[str, Any], now: dict[str, Any]) -> str:
    """'torch 2.12.0 -> 2.13.0, ...' for the output-shaping libraries a previous manifest recorded otherwise."""
    return ", ".join(f"{name} {before[name]} -> {now[name]}" for name in now
                     if name in before and before[name] != now[name])


def _data_identity(dataset) -> dict[str, Any]:
    from edgebert.data import file_sha256

    files = {}
    for split, path in sorted(dataset.files.items()):
        try:
            files[split] = file_sha256(path)
        except (OSError, TypeError):
            files[split] = str(path)
    # The columns and label names say what the rows mean: the same file read with another --text-column
    # or relabelled is other data.
    return {"name": dataset.name, "labels": len(dataset.label_names), "label_names": list(dataset.label_names),
            "columns": {"text": dataset.text_column, "label": dataset.label_column,
                        "text_pair": dataset.text_pair_column},
            "files": files, "rows": {k: len(v) for k, v in dataset.splits.items()},
            # what the rows hold, whatever their source (files, a hub dataset, a Dataset built in code)
            "content": {k: _split_sha256(v) for k, v in sorted(dataset.splits.items())},
            "dev_from_train": dataset.dev_from_train}


def _read_manifest(out: Path) -> dict[str, Any] | None:
    path = out / "manifest.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise OutputExistsError(f"'{path}' is not valid JSON ({exc}): choose another --out, or delete that folder "
                                "yourself if it is a broken run of yours.") from None
    return data if isinstance(data, dict) else None


def _same(run: dict[str, Any], key: str) -> Any:
    """What must match for two runs to be the same one (data by content, not by how its path was spelt)."""
    value = run.get(key)
    if key == "data" and isinstance(value, dict):
        return {k: v for k, v in value.items() if k != "name"}
    return value


def _prepare_out(out: Path, run: dict[str, Any], overwrite: bool) -> dict[str, Any] | None:
    """The previous manifest of this same run (to resume / skip), or None; refuses another run's folder.
    ``out`` is a folder (compress checked it) whose run lock this run holds."""
    if not out.is_dir() or not any(p.name != LOCK_NAME for p in out.iterdir()):
        return None
    previous = _read_manifest(out)
    if previous is None or previous.get("kind") != ARTIFACT_KIND:  # never deleted, not even with --overwrite
        from edgebert.artifact import not_ours_message

        raise OutputExistsError(not_ours_message(out, "compress artifact"))
    before = previous.get("run", {})
    differs = [k for k in ("model_sha256", "data", "target", "seed") if _same(before, k) != _same(run, k)]
    # A run that stopped before finishing any stage left nothing to lose: any run may take its folder
    # (e.g. the same command again with a repaired model or data file).
    produced = any(s.get("status") == "done" for s in previous.get("stages") or [] if isinstance(s, dict))
    if overwrite or (differs and not produced):  # everything but the lock this run holds
        for p in out.iterdir():
            if p.name == LOCK_NAME:
                continue
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
        return None
    if differs:
        raise OutputExistsError(
            f"Output folder '{out}' holds another run (different {', '.join(differs)}: it was built from "
            f"model '{before.get('model')}', target '{before.get('target')}'). Choose another --out, or pass "
            "--overwrite to replace it."
        )
    return previous


LOCK_NAME = ".edgebert-compress.lock"


def _lock(root: Path):
    """``root``'s run lock: an operating-system lock (flock) on ``root/LOCK_NAME``, released by the OS
    when its holder exits in any way (SIGKILL, a stopped container), so no lock is ever left stale.
    The file itself stays in place (waiters must share its inode)."""
    import filelock

    return filelock.FileLock(str(root / LOCK_NAME), timeout=0)


def _busy(out: Path) -> OutputExistsError:
    return OutputExistsError(
        f"Output folder '{out}' is being written by another edgebert compress (it holds {out / LOCK_NAME}). "
        "Wait for it to finish, or choose another --out.")


def _check_lock(out: Path) -> None:
    """Refuse a folder another run is writing (its lock is held), before anything is created."""
    if not (out / LOCK_NAME).is_file():
        return
    import filelock

    try:
        with _lock(out):
            pass
    except filelock.Timeout:
        raise _busy(out) from None


@contextlib.contextmanager
def _run_lock(root: Path):
    """Hold ``root``'s run lock while stages write into it (two runs into one folder would mix files)."""
    import filelock

    lock = _lock(root)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise _busy(root) from None
    try:
        yield
    finally:
        lock.release()


def _remove_leftovers(root: Path) -> None:
    """Staging folders of a run that was killed (SIGKILL, power loss) before it could remove them."""
    for parent in (root, root / "stages"):
        for pattern in (".*.partial-*", ".*.old-*"):
            for leftover in parent.glob(pattern) if parent.is_dir() else []:
                if leftover.is_dir():
                    shutil.rmtree(leftover, ignore_errors=True)
                else:
                    leftover.unlink(missing_ok=True)


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


def _input_hash(art, stage) -> str:
    from edgebert.artifact import sha256_file, sha256_tree

    if stage.reads == "onnx" and art.onnx:
        return sha256_file(art.path(art.onnx))
    path = Path(art.model) if Path(art.model).is_absolute() else art.root / art.model
    return sha256_tree(path) if path.is_dir() else f"ref:{art.model}"


def _cache_put(cache_dir, key, index, folder, record, say) -> None:
    """Fill the stage cache; the cache is an optimisation: a failure is said, never fatal."""
    if cache_dir is None:
        return
    from edgebert import cache as stage_cache

    try:
        stage_cache.put(cache_dir, key, index, folder, record)
    except (OSError, EdgebertError) as exc:
        say(f"Stage cache {cache_dir} not filled ({exc}); the run goes on")


def _cache_take(cache_dir, key, index, folder, input_sha, say) -> dict[str, Any] | None:
    if cache_dir is None:
        return None
    from edgebert import cache as stage_cache

    try:
        return stage_cache.take(cache_dir, key, index, folder, input_sha)
    except (OSError, EdgebertError) as exc:
        say(f"Stage cache {cache_dir} not read ({exc}); the stage runs")
        return None


def compress(model: str = DEFAULT_MODEL, target: str = DEFAULT_TARGET, *, data: Any = DEFAULT_DATA,
             out: str | os.PathLike | None = None, recipe: str | os.PathLike | None = None,
             overwrite: bool = False, seed: int = 0, progress: bool = True,
             log: Callable[[str], None] | None = None, cache: str | os.PathLike | bool = True,
             **data_options: Any) -> CompressResult:
    """Run the target's recipe (or ``recipe``) on ``model`` with ``data``; write the artifact to ``out``.

    Every input is checked before anything heavy runs: the target and recipe (known stages, a
    possible order, values in range), the model (resolvable, an architecture edgebert can export),
    the data, and the output folder (empty, or this same run to resume). See the module docstring
    for the folder. ``cache``: the stage cache shared with other runs (``True``: beside ``out``, see
    :mod:`edgebert.cache`; a folder; ``False``: none).
    """
    from edgebert import cache as stage_cache
    from edgebert import models
    from edgebert.artifact import (check_writable, host_info, library_versions, now_iso, output_versions, sha256_tree,
                                   staged_dir, write_json, write_text)
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
    check_model(the_plan.stages, config, f"recipe '{the_plan.recipe}'")  # e.g. fusion of a RoBERTa, too many layers
    check_token_limits(the_plan.stages, the_plan.target, config, f"recipe '{the_plan.recipe}'")
    dataset = data if isinstance(data, Dataset) else load_dataset(data, **data_options)
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
    location, model_hash = _model_identity(model)
    run = {"model": str(model), "model_source": location, "model_sha256": model_hash,
           "data": _data_identity(dataset), "target": the_plan.target.name, "recipe": the_plan.recipe, "seed": seed}
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"Output path '{out}' exists and is a file, not a folder.")
    _check_lock(out)  # a folder another run is writing: refused before anything is created
    out.mkdir(parents=True, exist_ok=True)
    root = out.resolve()
    cache_dir = None if cache is False else stage_cache.default_cache_dir(root) if cache is True else Path(cache)
    why_not = stage_cache.usable(cache_dir) if cache_dir is not None else None
    if why_not:
        say(f"Not using the stage cache {cache_dir}: {why_not} (--cache DIR names another, --no-cache none)")
        cache_dir = None
    with _run_lock(root):  # the lock first, then the folder's state: no other run can start in between
        previous = _prepare_out(out, run, overwrite)
        _remove_leftovers(root)
        old_stages = {s.get("index"): s for s in (previous or {}).get("stages", []) if s.get("status") == "done"}

        manifest: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION, "kind": ARTIFACT_KIND, "status": "running",
            "created": (previous or {}).get("created", now_iso()), "updated": now_iso(),
            "run": run, "target": the_plan.target.model_dump(mode="json"),
            "recipe": [s.model_dump(mode="json") for s in the_plan.stages],
            "versions": library_versions(), "host": _host(host_info()), "stages": [],
        }
        art = Artifact(root=root, model=location)
        # The chain starts from what the stages read (model, data, seed) and the code that shapes their
        # outputs (edgebert's and its libraries' versions); the recipe's name does not matter.
        inputs = {**{k: _same(run, k) for k in ("model_sha256", "data", "seed")}, "code": output_versions()}
        key = hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()
        result = CompressResult(out=out, manifest=manifest)
        changed = _changed_versions((previous or {}).get("versions") or {}, inputs["code"])
        if changed:
            say(f"library versions changed since {out} was written ({changed}): its stages run again")
        if previous is None:  # a run stopped in its first stage still leaves a folder that says whose it is
            write_json(root / "manifest.json", manifest)
        diverged = False
        total = len(the_plan.stages)
        for index, cfg in enumerate(the_plan.stages, start=1):
            stage = get_stage(cfg.kind)
            cfg = _with_run_seed(cfg, seed)
            key = _key(key, cfg, stage.host(cfg) if stage.host else None,
                       stage.revision(cfg) if stage.revision else None)
            name = f"{index:02d}-{cfg.kind}"
            folder = root / "stages" / name
            old = old_stages.get(index)
            if not diverged and old and old.get("key") == key and folder.is_dir() \
                    and sha256_tree(folder) == old.get("output_sha256"):
                art = Artifact.from_json(root, old["state"])
                manifest["stages"].append(old)
                result.skipped.append(name)
                say(f"[{index}/{total}] {cfg.kind}: unchanged, reused {folder.relative_to(root)}")
                _cache_put(cache_dir, key, index, folder, old, say)
                continue
            if not diverged:  # from here on every stage runs again; older outputs are stale
                diverged = True
                for stale in sorted((root / "stages").glob("*")) if (root / "stages").is_dir() else []:
                    if stale.name >= name:
                        shutil.rmtree(stale, ignore_errors=True)
            cached = _cache_take(cache_dir, key, index, folder, _input_hash(art, stage), say)
            if cached is not None:  # the same stage of another run (e.g. fine-tuning for another target)
                art = Artifact.from_json(root, cached["state"])
                manifest["stages"].append(cached)
                manifest["updated"] = now_iso()
                write_json(root / "manifest.json", manifest)
                result.skipped.append(name)
                say(f"[{index}/{total}] {cfg.kind}: same stage as an earlier run, taken from {cache_dir}")
                continue
            say(f"[{index}/{total}] {cfg.kind}: running")
            _seed_everything(seed + index)
            input_sha = _input_hash(art, stage)
            started, t0 = now_iso(), time.perf_counter()
            with staged_dir(folder) as work:
                ctx = RunContext(dataset=dataset, target=the_plan.target, work=work, seed=seed + index,
                                 progress=progress, log=say,
                                 accuracy_budget_left=_budget_left(manifest["stages"], the_plan.target))
                res = stage.fn(art, cfg, ctx)
                staging_rel = art.rel(work)
            seconds = time.perf_counter() - t0
            state = stage_cache.relocate(res.artifact.to_json(), staging_rel, f"stages/{name}")
            art = Artifact.from_json(root, state)
            record = {
                "index": index, "kind": cfg.kind, "name": name, "status": "done",
                "config": cfg.model_dump(mode="json"), "key": key,
                "input_sha256": input_sha, "output_sha256": sha256_tree(folder),
                "skipped": res.skipped, "metrics": stage_cache.relocate(res.metrics, str(root / staging_rel), str(folder)),
                "validation": res.validation, "seconds": round(seconds, 3), "started": started, "finished": now_iso(),
                "seed": seed + index, "versions": library_versions(), "host": host_info(), "state": state,
            }
            manifest["stages"].append(record)
            manifest["updated"] = now_iso()
            write_json(root / "manifest.json", manifest)
            _cache_put(cache_dir, key, index, folder, record, say)
            result.ran.append(name)
            say(f"[{index}/{total}] {cfg.kind}: " + (f"nothing to do ({res.skipped})" if res.skipped else
                                                      f"done in {seconds:.1f} s{_headline(record)}"))

        _assemble(root, art, manifest, the_plan, previous, dataset)
        manifest["status"] = "complete"
        manifest["updated"] = now_iso()
        write_json(root / "manifest.json", manifest)
        write_text(root / "report.md", report_markdown(manifest))
        return result


def _host(info: dict[str, Any]) -> dict[str, Any]:
    """host_info plus the CPU features that decide which int8 / fp16 kernels onnxruntime picks."""
    from edgebert.bench.protocol import flags_of_interest

    return {**info, "kernel_flags": [f for f, present in flags_of_interest().items() if present]}


def _headline(record: dict[str, Any]) -> str:
    m, v = record.get("metrics") or {}, record.get("validation") or {}
    parts = []
    if m.get("dev_accuracy") is not None:
        parts.append(f"dev accuracy {m['dev_accuracy']:.4f}")
    if v.get("label_agreement") is not None:
        parts.append(f"agreement {v['label_agreement']:.3f}")
    if m.get("bytes"):
        parts.append(f"{m['bytes'] / 2**20:.1f} MiB")
    return (": " + ", ".join(parts)) if parts else ""


def _assemble(root: Path, art, manifest: dict[str, Any], the_plan: Plan, previous: dict[str, Any] | None,
              dataset) -> None:
    """model/ (deployable files), tokenizer/, labels.json and the manifest's deploy + summary."""
    from edgebert.cache import link_or_copy
    from edgebert import models
    from edgebert.artifact import staged_dir, write_json
    from edgebert.stages.registry import model_ref as _ref

    if not art.deploy:
        raise ConfigError("The recipe produced no deployable file.")
    with staged_dir(root / "model") as stage:
        for name, rel in art.deploy.items():
            link_or_copy(art.path(rel), stage / name)
            data = art.path(rel).with_name(art.path(rel).name + ".data")
            if name.endswith(".onnx") and data.is_file():  # external weights of a large model
                link_or_copy(data, stage / (name + ".data"))
    ref = _ref(art, art.model)
    with staged_dir(root / "tokenizer") as stage:
        models.load_tokenizer(ref).save_pretrained(stage)
        if (stage / "tokenizer.json").is_file() and not (stage / "vocab.txt").is_file():
            from edgebert.runtime.wordpiece import write_vocab_txt

            try:  # apps tokenize from vocab.txt (docs/tokenization.md)
                write_vocab_txt(stage)
            except ModelLoadError:  # not WordPiece (ALBERT's SentencePiece): apps use its own files
                pass
    labels = models.model_labels(models.load_config(ref))
    write_json(root / "labels.json", {"labels": labels})

    target = the_plan.target
    primary = art.primary or next(iter(art.deploy))
    fmt = format_of(primary)
    old_deploy = (previous or {}).get("deploy") or {}
    deploy = {
        # runtime and precision of the file named in "model" (what runs it, at what precision, here and now);
        # the target's own in target_runtime / target_precision (they differ where a TensorRT engine is deferred)
        "runtime": fmt.runtime if fmt else target.runtime,
        "precision": _file_precision(root / "model", primary, art, manifest),
        "target_runtime": target.runtime,
        # an engine's precision is build-tensorrt's (jetson-int8 builds int8 for an fp16 target)
        "target_precision": engine_precision(manifest) or target.precision,
        "fallback_runtime": target.fallback_runtime, "format": fmt.name if fmt else "unknown",
        "model": f"model/{primary}", "files": sorted(f"model/{n}" for n in art.deploy),
        "tokenizer": "tokenizer/", "labels": "labels.json",
        "providers": target.providers, "threads": target.threads, "max_length": target.shapes.max_length,
        "model_max_length": models.max_tokens(models.load_config(ref)),  # what --max-length may go up to
        "input_names": _input_names(root / "model", primary),
        "text_pair": dataset.text_pair_column is not None,  # a sentence-pair model: the runtime asks for the second sentence
        "threshold": old_deploy.get("threshold"), "unknown_label": old_deploy.get("unknown_label", "unknown"),
    }
    if "build_engine.sh" in art.deploy and "model.plan" not in art.deploy:
        deploy["engine"] = "not built here: run model/build_engine.sh on the device to write model/model.plan"
    if "model.safetensors" in art.deploy and primary != "model.safetensors":
        deploy["fallback"] = {"runtime": "pytorch", "model": "model/model.safetensors",
                              "precision": _file_precision(root / "model", "model.safetensors", art, manifest)}
    manifest["deploy"] = deploy
    write_json(root / "manifest.json", manifest)  # the runtime scores the artifact as it loads it: by its deploy block
    manifest["deployed_scores"] = score_deployed(root, deploy, dataset)
    manifest["summary"] = summarize(manifest, root / "model" / primary)


def score_deployed(root: Path, deploy: dict[str, Any], dataset) -> list[dict[str, Any]]:
    """Dev accuracy of each file that ships, run as the device runs it: the deployed model through the
    torch-free runtime (ONNX, .ort, TorchScript; a TensorRT engine where TensorRT is present), and a
    PyTorch checkpoint (the primary or the fallback) at its own precision. Stage figures come from
    intermediate files; these are the shipped files' own."""
    import numpy as np

    dev = dataset.split("dev")
    scores = []
    files = [(deploy["model"], deploy["runtime"], deploy["precision"])]
    if deploy.get("fallback"):
        fb = deploy["fallback"]
        files.append((fb["model"], fb["runtime"], fb["precision"]))
    for rel, runtime, precision in files:
        path = root / rel
        if path.suffix == ".safetensors":
            logits, labels = _torch_logits(path.parent, precision, dev, deploy["max_length"])
        elif path.suffix == ".plan" and not _tensorrt_present():
            continue  # built on the device; validated there by build_engine.sh
        elif path.suffix.lower() not in DEPLOYABLE_SUFFIXES:
            continue  # a torch.export file runs in PyTorch only; its export stage validated it
        else:
            from edgebert.runtime import Classifier

            # one text per call, as a device answering requests runs it (dynamic int8's activation scales
            # come from the whole call, so batching would change the answers)
            clf = Classifier.load(root if rel == deploy["model"] else path, threshold=0, batch_size=1,
                                  max_length=deploy["max_length"])
            logits, labels = clf.logits(dev.texts, text_pairs=dev.text_pairs), list(clf.labels)
        index = {name: i for i, name in enumerate(labels)}
        gold = np.array([index[dataset.label_names[y]] for y in dev.labels])
        scores.append({"file": rel, "runtime": runtime, "precision": precision, "n": len(dev),
                       "dev_accuracy": float((np.asarray(logits).argmax(-1) == gold).mean())})
    return scores


def _torch_logits(folder: Path, precision: str, dev, max_length: int):
    """Logits of a saved PyTorch classifier at its saved precision (from_pretrained loads float32)."""
    import torch

    from edgebert import models
    from edgebert.evaluation import predict_logits

    loaded = models.load(folder)
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)
    model = loaded.model.to(dtype) if dtype is not None else loaded.model
    return predict_logits(model, loaded.tokenizer, dev, max_length=max_length), loaded.label_names


def _tensorrt_present() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorrt") is not None


def _file_precision(model_dir: Path, name: str, art, manifest: dict[str, Any]) -> str:
    """fp32 / fp16 / int8 / mixed of a deployed file, read from the file (not assumed from the target)."""
    path = model_dir / name
    if path.suffix == ".onnx":
        return onnx_precision(path)
    if path.suffix == ".ort":  # converted from the recipe's last ONNX model, same precision
        return onnx_precision(art.path(art.onnx)) if art.onnx else "unknown"
    if path.suffix == ".safetensors":
        return safetensors_precision(path)
    if path.suffix == ".plan":
        return engine_precision(manifest) or "unknown"
    # TorchScript / torch.export files are written from the fp32 model, or its torch int8 dynamic quantization
    return "int8" if getattr(art, "torch_quantization", None) else "fp32"


def _input_names(model_dir: Path, primary: str) -> list[str] | None:
    """The graph inputs an app feeds (ONNX / ORT models), in order."""
    path = model_dir / primary
    if path.suffix == ".onnx":
        import onnx

        return [i.name for i in onnx.load(str(path), load_external_data=False).graph.input]
    if path.suffix == ".ort":
        from edgebert.runtime.backends import open_session

        return [i.name for i in open_session(path).get_inputs()]
    onnx_file = model_dir / "model.onnx"
    return _input_names(model_dir, "model.onnx") if onnx_file.is_file() else None


def _first(records, *paths) -> Any:
    for rec in records:
        for path in paths:
            value: Any = rec
            for part in path.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            if value is not None:
                return value
    return None


def _budget_left(stages: list[dict[str, Any]], target) -> float | None:
    teacher, current = accuracy_so_far(stages)
    if teacher is None or current is None:
        return None
    return float(target.budgets.accuracy_drop) - 100.0 * (teacher - current)


def accuracy_so_far(stages: list[dict[str, Any]]) -> tuple[Any, Any]:
    """(fine-tuned model's dev accuracy, the latest dev accuracy) recorded by finished stage records."""
    teacher = _first(stages, "metrics.teacher_dev_accuracy", "metrics.dev.accuracy", "validation.accuracy_before")
    return teacher, _first(list(reversed(stages)), "metrics.dev_accuracy")


def summarize(manifest: dict[str, Any], primary: Path) -> dict[str, Any]:
    """Teacher vs final dev accuracy, the drop against the budget, the deployed size against its budget.

    The final accuracy is the deployed file's own (``deployed_scores``) where it could be run here, else
    the last stage's; ``final_dev_accuracy_file`` says which file it belongs to. Latency and memory
    budgets are the device's to check: ``edgebert bench`` on the device compares the artifact's
    measured p50 and peak memory with them.
    """
    from edgebert.export.fuse import model_file_bytes

    stages = manifest["stages"]
    teacher, final = accuracy_so_far(stages)
    shipped = (manifest.get("deploy") or {}).get("model")
    deployed = next((s for s in manifest.get("deployed_scores") or [] if s["file"] == shipped), None)
    final_file = "the last stage's dev scoring (the deployed file cannot run here)"
    if deployed is not None:
        final, final_file = deployed["dev_accuracy"], deployed["file"]
    budgets = manifest["target"]["budgets"]
    budget = budgets["accuracy_drop"]
    size = model_file_bytes(primary) if primary.exists() else None
    drop = None if teacher is None or final is None else 100.0 * (teacher - final)
    size_budget = budgets.get("size_mb")
    return {"teacher_dev_accuracy": teacher, "teacher_dev_accuracy_file": _teacher_file(stages),
            "final_dev_accuracy": final, "final_dev_accuracy_file": final_file, "accuracy_drop_points": drop,
            "accuracy_budget_points": budget, "within_accuracy_budget": None if drop is None else drop <= budget,
            "model_bytes": size, "size_budget_mib": size_budget,
            "within_size_budget": None if size is None or size_budget is None else size <= size_budget * 2**20,
            "seconds": round(sum(s.get("seconds", 0) for s in stages), 1)}


def _teacher_file(stages: list[dict[str, Any]]) -> str | None:
    """The fine-tuned model the teacher accuracy was measured on (the input model when it had a head)."""
    return _first(stages, "state.teacher")


def budget_warnings(manifest: dict[str, Any]) -> list[str]:
    """One sentence per budget of the target the artifact does not meet (empty: all met or unknown)."""
    s = manifest.get("summary") or {}
    out = []
    if s.get("within_accuracy_budget") is False:
        out.append(f"dev accuracy dropped {s['accuracy_drop_points']:.2f} points from the fine-tuned model "
                   f"({s['teacher_dev_accuracy']:.4f} -> {s['final_dev_accuracy']:.4f}), over the target's budget of "
                   f"{s['accuracy_budget_points']} points")
    if s.get("within_size_budget") is False:
        out.append(f"the deployed model is {s['model_bytes'] / 2**20:.1f} MiB, over the target's size budget of "
                   f"{s['size_budget_mib']} MiB")
    return out


def report_markdown(manifest: dict[str, Any]) -> str:
    """The stage table of an artifact (also written as report.md)."""
    s = manifest["summary"]
    lines = [f"# {manifest['run']['model']} for target {manifest['run']['target']}", "",
             f"Recipe `{manifest['run']['recipe']}`, data {manifest['run']['data']['name']}, "
             f"seed {manifest['run']['seed']}. Deploy: `{manifest['deploy']['model']}` "
             f"({manifest['deploy']['runtime']}, {manifest['deploy']['precision']}){_target_note(manifest['deploy'])}.",
             "",
             "| # | stage | seconds | dev accuracy | agreement with input | max logit diff | size MiB |",
             "|---|---|---|---|---|---|---|"]
    for rec in manifest["stages"]:
        m, v = rec.get("metrics") or {}, rec.get("validation") or {}
        acc = m.get("dev_accuracy", (m.get("dev") or {}).get("accuracy"))
        cells = [str(rec["index"]), rec["kind"] + (" (skipped)" if rec.get("skipped") else ""),
                 f"{rec['seconds']:.1f}", _fmt(acc, ".4f"), _fmt(v.get("label_agreement"), ".3f"),
                 _fmt(v.get("max_abs_logit_diff"), ".2e"), _fmt(m.get("bytes") and m["bytes"] / 2**20, ".1f")]
        lines.append("| " + " | ".join(cells) + " |")
    size_mib = s["model_bytes"] and s["model_bytes"] / 2**20
    lines += ["", f"Teacher dev accuracy {_fmt(s['teacher_dev_accuracy'], '.4f')}"
                  + (f" (`{s['teacher_dev_accuracy_file']}`)" if s.get("teacher_dev_accuracy_file") else "")
                  + f", final {_fmt(s['final_dev_accuracy'], '.4f')}"
                  + (f" (`{s['final_dev_accuracy_file']}`)" if s.get("final_dev_accuracy_file") else "")
                  + f": drop {_fmt(s['accuracy_drop_points'], '.2f')} points "
                  f"(budget {s['accuracy_budget_points']}). Deployed file {_fmt(size_mib, '.1f')} MiB"
                  + (f" (budget {s['size_budget_mib']} MiB)." if s.get("size_budget_mib") else "."), ""]
    lines += [f"Over budget: {w}." for w in budget_warnings(manifest)]
    return "\n".join(lines)


def _target_note(deploy: dict[str, Any]) -> str:
    """Where the deployed file is not what the target runs (a deferred TensorRT engine), say so."""
    want = (deploy.get("target_runtime"), deploy.get("target_precision"))
    if None in want or want == (deploy.get("runtime"), deploy.get("precision")):
        return ""
    note = f"; the target runs {want[0]} {want[1]}"
    if deploy.get("engine"):
        note += " once model/build_engine.sh has built the engine on the device"
    if deploy.get("fallback"):
        fb = deploy["fallback"]
        note += f"; fallback `{fb['model']}` ({fb['runtime']}, {fb['precision']})"
    return note


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)
