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
its own resolved config) and whose output folder still has the recorded sha256. While a run writes,
OUT/.edgebert-compress.lock names its process: a second run into the same folder is refused, and a
run killed before it could clean up (SIGKILL) leaves a lock and staging folders that the next run
removes.
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

from edgebert.errors import ConfigError, ModelLoadError, OutputExistsError

ARTIFACT_KIND = "edgebert-artifact"
SCHEMA_VERSION = 1
DEFAULT_MODEL = "minilm"
DEFAULT_TARGET = "cpu"
DEFAULT_DATA = "intents"


@dataclass
class Plan:
    """What a compress run will do: the target, the recipe and its resolved stage configs."""

    target: Any                      # TargetProfile
    recipe: str
    stages: list[Any]                # resolved StageConfigs

    def to_yaml(self, seed: int = 0, model: str | None = None) -> str:
        """The recipe as it would run with run seed ``seed`` (each stage's seed shifted by it), as a
        recipe file that ``--recipe`` reads back (saved as ``<name>.yaml``)."""
        import yaml

        notes = [f"# recipe '{self.recipe}' resolved for target '{self.target.name}'"
                 + (f" and model '{model}' (its defaults, e.g. distillation's learning rates, are that model "
                    "family's)" if model else "")
                 + f"; to run it as --recipe FILE, save it as {self.recipe}.yaml (or set name: to the file's name)"]
        if seed:
            notes.append(f"# stage seeds include run seed {seed}: run this file with --seed 0 to use them as they are")
        body = {"name": self.recipe, "stages": [_with_run_seed(s, seed).model_dump(mode="json") for s in self.stages]}
        return "\n".join(notes) + "\n" + yaml.safe_dump(body, sort_keys=False)

    def for_model(self, config) -> Plan:
        """This plan with the stages' model-dependent defaults filled in for the input model's
        ``config`` (distillation's learning rates per model family)."""
        from edgebert.stages.registry import resolve_for_model

        return Plan(self.target, self.recipe, resolve_for_model(self.stages, config))


@dataclass
class CompressResult:
    out: Path
    manifest: dict[str, Any]
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def plan(target: str = DEFAULT_TARGET, recipe: str | os.PathLike | None = None) -> Plan:
    """Load the target profile and the recipe (``recipe`` overrides the target's), resolve the
    stages' target-dependent defaults and check their order. Nothing heavy runs."""
    from edgebert.stages.registry import check_order
    from edgebert.targets import load_recipe, load_target, resolve_stages, target_recipe

    profile = load_target(target)
    name, stages = load_recipe(recipe) if recipe is not None else target_recipe(profile)
    stages = resolve_stages(stages, profile)
    check_order(stages, f"recipe '{name}' for target '{profile.name}'")
    return Plan(profile, name, stages)


def default_out(model: str, target: str) -> Path:
    slug = Path(str(model).rstrip("/")).name or "model"
    return Path("runs") / "compress" / f"{slug}-{Path(str(target)).stem}"


def _with_run_seed(cfg, seed: int):
    """``cfg`` with the run seed added to its own ``seed`` (prune's importance sample, distillation's
    shuffling and augmentation, fine-tuning), so ``--seed 1`` redraws every random choice of the recipe
    and seed 0 keeps the recipe's seeds as written. The manifest records the seed each stage used."""
    if not seed or "seed" not in type(cfg).model_fields:
        return cfg
    return cfg.model_copy(update={"seed": cfg.seed + seed})


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
    if resolved.kind == "hub":
        return resolved.path, "hub:" + resolved.path
    return resolved.path, sha256_tree(resolved.path)


def _data_identity(dataset) -> dict[str, Any]:
    from edgebert.data import file_sha256

    files = {}
    for split, path in sorted(dataset.files.items()):
        try:
            files[split] = file_sha256(path)
        except (OSError, TypeError):
            files[split] = str(path)
    return {"name": dataset.name, "labels": len(dataset.label_names), "files": files,
            "rows": {k: len(v) for k, v in dataset.splits.items()}, "dev_from_train": dataset.dev_from_train}


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
    if overwrite:  # everything but the lock this run holds
        for p in out.iterdir():
            if p.name == LOCK_NAME:
                continue
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
        return None
    before = previous.get("run", {})
    differs = [k for k in ("model_sha256", "data", "target", "seed") if _same(before, k) != _same(run, k)]
    if differs:
        raise OutputExistsError(
            f"Output folder '{out}' holds another run (different {', '.join(differs)}: it was built from "
            f"model '{before.get('model')}', target '{before.get('target')}'). Choose another --out, or pass "
            "--overwrite to replace it."
        )
    return previous


LOCK_NAME = ".edgebert-compress.lock"


def _lock_holder(out: Path) -> str | None:
    """Who holds ``out``'s run lock ("pid N on HOST"), None when nobody does; a lock left by a process
    of this host that no longer runs (killed) is removed."""
    import socket

    lock = out / LOCK_NAME
    try:
        pid_text, _, host = lock.read_text(encoding="utf-8").partition(" ")
        pid = int(pid_text)
    except (OSError, ValueError):
        return None if not lock.exists() else f"an unreadable lock file {lock}"
    if host.strip() == socket.gethostname():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            lock.unlink(missing_ok=True)
            return None
        except PermissionError:
            pass  # alive, another user's
    return f"process {pid} on {host.strip() or 'an unknown host'}"


def _check_lock(out: Path) -> None:
    holder = _lock_holder(out) if out.is_dir() else None
    if holder:
        raise OutputExistsError(
            f"Output folder '{out}' is being written by another edgebert compress ({holder}). Wait for it, or "
            f"choose another --out. If no such run is active, delete {out / LOCK_NAME}.")


@contextlib.contextmanager
def _run_lock(root: Path):
    """Hold ``root``'s run lock while stages write into it (two runs into one folder would mix files)."""
    import socket

    def take() -> int:
        return os.open(root / LOCK_NAME, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)

    try:
        fd = take()
    except FileExistsError:
        _check_lock(root)  # raises while a live run holds it; else the stale lock is gone now
        try:
            fd = take()
        except FileExistsError:  # another run took it in between
            raise OutputExistsError(f"Output folder '{root}' was just taken by another edgebert compress; "
                                    "choose another --out.") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(f"{os.getpid()} {socket.gethostname()}")
        yield
    finally:
        (root / LOCK_NAME).unlink(missing_ok=True)


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


def _relocate(data: Any, old: str, new: str) -> Any:
    """Paths recorded while a stage wrote into its staging folder, moved to the final folder."""
    if isinstance(data, str):
        return new + data[len(old):] if data == old or data.startswith(old + "/") else data
    if isinstance(data, dict):
        return {k: _relocate(v, old, new) for k, v in data.items()}
    if isinstance(data, list):
        return [_relocate(v, old, new) for v in data]
    return data


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)  # same file system: no second copy of a large model
    except OSError:
        shutil.copy2(src, dst)


def compress(model: str = DEFAULT_MODEL, target: str = DEFAULT_TARGET, *, data: Any = DEFAULT_DATA,
             out: str | os.PathLike | None = None, recipe: str | os.PathLike | None = None,
             overwrite: bool = False, seed: int = 0, progress: bool = True,
             log: Callable[[str], None] | None = None, **data_options: Any) -> CompressResult:
    """Run the target's recipe (or ``recipe``) on ``model`` with ``data``; write the artifact to ``out``.

    Every input is checked before anything heavy runs: the target and recipe (known stages, a
    possible order, values in range), the model (resolvable, an architecture edgebert can export),
    the data, and the output folder (empty, or this same run to resume). See the module docstring
    for the folder.
    """
    from edgebert import models
    from edgebert.artifact import host_info, library_versions, now_iso, sha256_tree, staged_dir, write_json, write_text
    from edgebert.data import Dataset, load_dataset
    from edgebert.models.specs import get_spec
    from edgebert.stages.registry import Artifact, RunContext, check_model, get_stage

    say = log or (lambda msg: None)
    the_plan = plan(target, recipe)
    out = Path(out) if out is not None else default_out(model, the_plan.target.name)
    config = models.load_config(model)
    get_spec(config)  # UnsupportedArchitectureError before any work
    the_plan = the_plan.for_model(config)
    check_model(the_plan.stages, config, f"recipe '{the_plan.recipe}'")  # e.g. fusion of a RoBERTa, too many layers
    dataset = data if isinstance(data, Dataset) else load_dataset(data, **data_options)
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
        # The chain starts from what the stages read (model, data, seed); the recipe's name does not matter.
        inputs = {k: _same(run, k) for k in ("model_sha256", "data", "seed")}
        key = hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()
        result = CompressResult(out=out, manifest=manifest)
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
                continue
            if not diverged:  # from here on every stage runs again; older outputs are stale
                diverged = True
                for stale in sorted((root / "stages").glob("*")) if (root / "stages").is_dir() else []:
                    if stale.name >= name:
                        shutil.rmtree(stale, ignore_errors=True)
            say(f"[{index}/{total}] {cfg.kind}: running")
            _seed_everything(seed + index)
            input_sha = _input_hash(art, stage)
            started, t0 = now_iso(), time.perf_counter()
            with staged_dir(folder) as work:
                ctx = RunContext(dataset=dataset, target=the_plan.target, work=work, seed=seed + index,
                                 progress=progress, log=say)
                res = stage.fn(art, cfg, ctx)
                staging_rel = art.rel(work)
            seconds = time.perf_counter() - t0
            state = _relocate(res.artifact.to_json(), staging_rel, f"stages/{name}")
            art = Artifact.from_json(root, state)
            record = {
                "index": index, "kind": cfg.kind, "name": name, "status": "done",
                "config": cfg.model_dump(mode="json"), "key": key,
                "input_sha256": input_sha, "output_sha256": sha256_tree(folder),
                "skipped": res.skipped, "metrics": _relocate(res.metrics, str(root / staging_rel), str(folder)),
                "validation": res.validation, "seconds": round(seconds, 3), "started": started, "finished": now_iso(),
                "seed": seed + index, "versions": library_versions(), "host": host_info(), "state": state,
            }
            manifest["stages"].append(record)
            manifest["updated"] = now_iso()
            write_json(root / "manifest.json", manifest)
            result.ran.append(name)
            say(f"[{index}/{total}] {cfg.kind}: " + (f"nothing to do ({res.skipped})" if res.skipped else
                                                      f"done in {seconds:.1f} s{_headline(record)}"))

        _assemble(root, art, manifest, the_plan, previous, text_pair=dataset.text_pair_column is not None)
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
              text_pair: bool = False) -> None:
    """model/ (deployable files), tokenizer/, labels.json and the manifest's deploy + summary."""
    from edgebert import models
    from edgebert.artifact import staged_dir, write_json
    from edgebert.stages.train import _ref

    if not art.deploy:
        raise ConfigError("The recipe produced no deployable file.")
    with staged_dir(root / "model") as stage:
        for name, rel in art.deploy.items():
            _link_or_copy(art.path(rel), stage / name)
            data = art.path(rel).with_name(art.path(rel).name + ".data")
            if name.endswith(".onnx") and data.is_file():  # external weights of a large model
                _link_or_copy(data, stage / (name + ".data"))
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
    fmt = _FORMATS.get(Path(primary).suffix, "unknown")
    old_deploy = (previous or {}).get("deploy") or {}
    deploy = {
        # runtime and precision of the file named in "model" (what runs it, at what precision, here and now);
        # the target's own in target_runtime / target_precision (they differ where a TensorRT engine is deferred)
        "runtime": _RUNTIMES.get(fmt, target.runtime),
        "precision": _file_precision(root / "model", primary, art, manifest),
        "target_runtime": target.runtime,
        # an engine's precision is build-tensorrt's (jetson-int8 builds int8 for an fp16 target)
        "target_precision": engine_precision(manifest) or target.precision,
        "fallback_runtime": target.fallback_runtime, "format": fmt,
        "model": f"model/{primary}", "files": sorted(f"model/{n}" for n in art.deploy),
        "tokenizer": "tokenizer/", "labels": "labels.json",
        "providers": target.providers, "threads": target.threads, "max_length": target.shapes.max_length,
        "input_names": _input_names(root / "model", primary),
        "text_pair": text_pair,  # a sentence-pair model: the runtime asks for the second sentence
        "threshold": old_deploy.get("threshold"), "unknown_label": old_deploy.get("unknown_label", "unknown"),
    }
    if "build_engine.sh" in art.deploy and "model.plan" not in art.deploy:
        deploy["engine"] = "not built here: run model/build_engine.sh on the device to write model/model.plan"
    if "model.safetensors" in art.deploy and primary != "model.safetensors":
        deploy["fallback"] = {"runtime": "pytorch", "model": "model/model.safetensors",
                              "precision": _file_precision(root / "model", "model.safetensors", art, manifest)}
    manifest["deploy"] = deploy
    manifest["summary"] = summarize(manifest, root / "model" / primary)


_FORMATS = {".onnx": "onnx", ".ort": "ort", ".pt": "torchscript", ".pt2": "torch-export", ".plan": "tensorrt",
            ".safetensors": "pytorch"}
_RUNTIMES = {"onnx": "onnxruntime", "ort": "onnxruntime", "torchscript": "torchscript", "torch-export": "pytorch",
             "tensorrt": "tensorrt", "pytorch": "pytorch"}


def _file_precision(model_dir: Path, name: str, art, manifest: dict[str, Any]) -> str:
    """fp32 / fp16 / int8 / mixed of a deployed file, read from the file (not assumed from the target)."""
    from edgebert.bench.variants import onnx_precision

    path = model_dir / name
    if path.suffix == ".onnx":
        return onnx_precision(path)
    if path.suffix == ".ort":  # converted from the recipe's last ONNX model, same precision
        return onnx_precision(art.path(art.onnx)) if art.onnx else "unknown"
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as f:
            dtypes = {str(f.get_slice(k).get_dtype()) for k in f.keys()}
        floats = dtypes & {"F32", "F16", "BF16"}
        return {frozenset({"F16"}): "fp16", frozenset({"BF16"}): "bf16", frozenset({"F32"}): "fp32"}.get(
            frozenset(floats), "mixed")
    if path.suffix == ".plan":
        return engine_precision(manifest) or "unknown"
    # TorchScript / torch.export files are written from the fp32 model, or its torch int8 dynamic quantization
    return "int8" if getattr(art, "torch_quantization", None) else "fp32"


def engine_precision(manifest: dict[str, Any]) -> str | None:
    """The precision the last build-tensorrt stage of a manifest built (or deferred) its engine with."""
    builds = [r for r in reversed(manifest.get("stages") or [])
              if isinstance(r, dict) and r.get("kind") == "build-tensorrt"]
    value = _first(builds, "metrics.precision")
    return None if value is None else str(value)


def _input_names(model_dir: Path, primary: str) -> list[str] | None:
    """The graph inputs an app feeds (ONNX / ORT models), in order."""
    path = model_dir / primary
    if path.suffix == ".onnx":
        import onnx

        return [i.name for i in onnx.load(str(path), load_external_data=False).graph.input]
    if path.suffix == ".ort":
        import onnxruntime as ort

        return [i.name for i in ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_inputs()]
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


def summarize(manifest: dict[str, Any], primary: Path) -> dict[str, Any]:
    """Teacher vs final dev accuracy, the drop against the budget, the deployed size against its budget.

    Latency and memory budgets are the device's to check: ``edgebert bench`` on the device compares
    the artifact's measured p50 and peak memory with them.
    """
    from edgebert.export.fuse import model_file_bytes

    stages = manifest["stages"]
    teacher = _first(stages, "metrics.teacher_dev_accuracy", "metrics.dev.accuracy", "validation.accuracy_before")
    final = _first(list(reversed(stages)), "metrics.dev_accuracy")
    budgets = manifest["target"]["budgets"]
    budget = budgets["accuracy_drop"]
    size = model_file_bytes(primary) if primary.exists() else None
    drop = None if teacher is None or final is None else 100.0 * (teacher - final)
    size_budget = budgets.get("size_mb")
    return {"teacher_dev_accuracy": teacher, "final_dev_accuracy": final, "accuracy_drop_points": drop,
            "accuracy_budget_points": budget, "within_accuracy_budget": None if drop is None else drop <= budget,
            "model_bytes": size, "size_budget_mib": size_budget,
            "within_size_budget": None if size is None or size_budget is None else size <= size_budget * 2**20,
            "seconds": round(sum(s.get("seconds", 0) for s in stages), 1)}


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
    lines += ["", f"Teacher dev accuracy {_fmt(s['teacher_dev_accuracy'], '.4f')}, final "
                  f"{_fmt(s['final_dev_accuracy'], '.4f')}: drop {_fmt(s['accuracy_drop_points'], '.2f')} points "
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
