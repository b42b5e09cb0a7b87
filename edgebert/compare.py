"""``edgebert compare``: several models, each compressed for each target, measured in one interleaved run.

The question it answers is the one users bring: BERT or ALBERT (or any two checkpoints) for my device,
on my data? For every model it runs ``compress`` for every target (fine-tuning where the model has no
head for the data's labels; the stage cache lets the targets of one model share that fine-tuning), then
one ``bench`` over every model's fine-tuned fp32 checkpoint and every deployed file, so all of them are
timed in the same interleaved rounds on the same sentences. It writes::

    OUT/
      artifacts/<model>-<target>/   one compress artifact per model and target (resumable)
      bench/                        the bench run: bench.json, bench.md, pareto.png ...
      compare.json                  one row per model x (fp32 | target): accuracy, macro P / R / F1,
                                    parameters, size, p50 / p99, peak memory, the file measured
      compare.md                    the table;   compare.png  accuracy against p50

Files a target deploys but this machine cannot run (a TensorRT engine without a GPU) are listed with
the reason instead of figures.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgebert.errors import ConfigError, OutputExistsError

#: what compare writes into OUT (anything else there makes OUT someone else's folder)
OWN_ENTRIES = frozenset({"artifacts", "bench", "compare.json", "compare.md", "compare.png"})
KIND = "edgebert-compare"


@dataclass
class CompareResult:
    """The output folder and the content of compare.json."""

    out: Path
    results: dict[str, Any]

    @property
    def markdown(self) -> str:
        return (self.out / "compare.md").read_text(encoding="utf-8")


def model_slug(model: str) -> str:
    """A folder-name-safe short name of a model reference (hub id, alias or folder)."""
    p = Path(model)
    name = p.name if (p.exists() or os.sep in model) and p.name else model
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "model"


def _slugs(models: Sequence[str]) -> list[str]:
    out: list[str] = []
    for m in models:
        base, s, i = model_slug(m), model_slug(m), 2
        while s in out:
            s, i = f"{base}-{i}", i + 1
        out.append(s)
    return out


def check_compare_out(out: Path, overwrite: bool) -> None:
    """OUT is new, empty, or an earlier compare's folder (resumed); anything else is refused."""
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"Output path '{out}' exists and is a file, not a folder.")
    if not out.exists():
        return
    foreign = sorted(p.name for p in out.iterdir() if p.name not in OWN_ENTRIES)
    if foreign:
        raise OutputExistsError(
            f"Output folder '{out}' holds files compare did not write ({', '.join(foreign[:5])}); "
            "choose another --out (compare writes artifacts/, bench/ and compare.* there).")


def count_parameters(path: str | os.PathLike) -> int | None:
    """Weights stored in a model file or folder, each tensor counted once (a shared ALBERT layer once):
    ONNX initializers, safetensors tensors, TorchScript parameters; None where the format does not say
    (.ort, TensorRT engines)."""
    p = Path(path)
    if p.is_dir():
        files = sorted(p.glob("*.safetensors"))
        return sum(_safetensors_elements(f) for f in files) if files else None
    suffix = p.suffix.lower()
    if suffix == ".onnx":
        import onnx

        model = onnx.load(str(p), load_external_data=False)
        return sum(math.prod(init.dims) for init in model.graph.initializer)
    if suffix == ".safetensors":
        return _safetensors_elements(p)
    if suffix == ".pt":
        import torch

        module = torch.jit.load(str(p), map_location="cpu")
        seen = {id(t): t.numel() for t in list(module.parameters()) + list(module.buffers())}
        return int(sum(seen.values()))
    return None


def _safetensors_elements(path: Path) -> int:
    """Element count of every tensor in a safetensors file, from the shapes its header records (no
    weights read)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        return sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())


def compare(models: Sequence[str], data: Any, *, targets: Sequence[str] = ("cpu",), out: str | os.PathLike,
            recipe: str | os.PathLike | None = None,
            split: str = "test", overwrite: bool = False, seed: int = 0, progress: bool = True,
            log: Callable[[str], None] | None = None, cache: bool | str | os.PathLike = True,
            rounds: int | None = None, warmup: int | None = None, latency_samples: int | None = None,
            threads: int | None = None, memory: bool = True, max_rows: int | None = None,
            command: str | None = None, **data_options: Any) -> CompareResult:
    """Compress each of ``models`` for each of ``targets`` on ``data`` and measure them side by side.

    ``recipe`` runs instead of each target's own recipe (e.g. ``quick``); a target written
    ``TARGET:RECIPE`` (e.g. ``cpu:albert``) runs that recipe for that target only, so one model can be
    compared with itself under two recipes (its BERT ``cpu`` artifact against the ALBERT the ``albert``
    recipe makes of it). An artifact whose recipe changed the model's architecture (``albertize``) adds a
    row for that new model's PyTorch fp32 checkpoint too. Every input is checked before any work: at
    least two distinct variants (two models, or one model and two targets), known targets and recipes,
    the data, the output folder. ``max_rows`` caps the benchmarked split (quick runs); training uses the whole
    train split. Bench settings (``rounds``, ``warmup``, ``latency_samples``, ``threads``, ``memory``)
    as for :func:`edgebert.bench.bench`.
    """
    from edgebert.artifact import write_json
    from edgebert.bench import bench
    from edgebert.bench.variants import finetuned_variant
    from edgebert.data import Dataset, load_dataset
    from edgebert.pipeline import compress, plan

    say = log or (lambda msg: None)
    models = [str(m) for m in models]
    targets = list(dict.fromkeys(targets or ("cpu",)))
    if not models or len(models) * len(targets) < 2:
        raise ConfigError(f"compare needs at least two models to compare (or one model and two targets, e.g. "
                          f"--target cpu --target cpu:albert), got {len(models)} model(s) and {len(targets)} "
                          "target(s): edgebert compare MODEL_A MODEL_B --data DATA --out DIR")
    dup = sorted({m for m in models if models.count(m) > 1})
    if dup:
        raise ConfigError(f"model {dup[0]!r} is given twice; give each model once.")
    plans = {t: plan(*split_target(t, recipe)) for t in targets}  # UnknownTargetError before anything runs
    labels = {t: column_label(t, plans[t]) for t in targets}
    if len(set(labels.values())) < len(labels):
        raise ConfigError(f"two --target values name the same target and recipe ({', '.join(targets)}); give each once.")
    out = Path(out)
    check_compare_out(out, overwrite)
    dataset = data if isinstance(data, Dataset) else load_dataset(data, **data_options)
    dataset.split(split)  # an unknown split fails now, not after the training

    slugs = _slugs(models)
    artifacts: dict[tuple[str, str], Path] = {}
    for model, slug in zip(models, slugs):
        for t in targets:
            folder = out / "artifacts" / f"{slug}-{model_slug(labels[t].replace(':', '-'))}"
            say(f"compress {model} for target {t} -> {folder}")
            target, target_recipe = split_target(t, recipe)
            compress(model, target, data=dataset, out=folder, recipe=target_recipe, overwrite=overwrite, seed=seed,
                     progress=progress, log=log, cache=cache)
            artifacts[(model, t)] = folder

    # what to measure: each model's fine-tuned fp32 checkpoint once, and each artifact's deployed file
    entries: list[dict[str, Any]] = []
    for model, slug in zip(models, slugs):
        first = artifacts[(model, targets[0])]
        fp32_path = finetuned_variant(first).path
        entries.append({"model": model, "slug": slug, "target": "fp32", "artifact": str(first),
                        "path": fp32_path, "what": "fine-tuned PyTorch fp32"})
        for t in targets:
            art = artifacts[(model, t)]
            manifest = json.loads((art / "manifest.json").read_text(encoding="utf-8"))
            deployed = (manifest.get("deploy") or {}).get("model")
            path = art / deployed if deployed else art
            if deployed and deployed.endswith(".safetensors"):
                path = path.parent  # a PyTorch checkpoint is benched as its folder
            converted = converted_checkpoint(art, manifest, first_fp32=fp32_path)
            if converted is not None:  # e.g. the ALBERT albertize made: its own fp32 row
                entries.append({"model": model, "slug": slug, "target": f"{labels[t]} fp32", "artifact": str(art),
                                "path": str(converted), "what": f"{labels[t]} recipe's PyTorch fp32 model before export"})
            entries.append({"model": model, "slug": slug, "target": labels[t], "artifact": str(art),
                            "path": str(path), "what": f"{labels[t]} artifact's deployed file"})
    bench_kw = {k: v for k, v in {"rounds": rounds, "warmup": warmup, "latency_samples": latency_samples,
                                  "threads": threads}.items() if v is not None}
    say(f"bench: {len(entries)} variants, interleaved, on the {split} split")
    result = bench([e["path"] for e in entries], dataset, split=split, out=out / "bench", overwrite=True,
                   memory=memory, progress=progress, command=command, max_rows=max_rows, **bench_kw)
    rows = compare_rows(entries, result.results)
    results = {"kind": KIND, "models": models, "targets": [labels[t] for t in targets],
               "columns": list(dict.fromkeys(e["target"] for e in entries if e["target"] != "fp32")),
               "recipes": {labels[t]: plans[t].recipe for t in targets}, "data": result.results.get("data"),
               "environment": result.results.get("environment"), "command": command, "rows": rows,
               "bench": str(out / "bench" / "bench.json")}
    write_json(out / "compare.json", results)
    (out / "compare.md").write_text(compare_markdown(results), encoding="utf-8")
    _plot(rows, out / "compare.png", results)
    return CompareResult(out, results)


def compare_rows(entries: Sequence[dict[str, Any]], bench_results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per entry: the bench variant measured from its path, with the figures the table shows."""
    by_path = {}
    for v in bench_results.get("variants", []):
        by_path.setdefault(str(Path(v["path"]).resolve()), v)
    rows = []
    for e in entries:
        v = by_path.get(str(Path(e["path"]).resolve()))
        acc = (v or {}).get("accuracy") or {}
        lat = (v or {}).get("latency") or {}
        mem = (v or {}).get("memory") or {}
        status = v["status"] if v else "missing"
        reason = None if status == "ok" else ((v or {}).get("error") or "; ".join((v or {}).get("notes") or [])
                                              or "not measured")
        rows.append({
            "model": e["model"], "target": e["target"], "what": e["what"], "path": e["path"],
            "artifact": e["artifact"], "status": status, "reason": reason,
            "runtime": (v or {}).get("runtime"), "precision": (v or {}).get("precision"),
            "accuracy": acc.get("accuracy"), "macro_precision": acc.get("macro_precision"),
            "macro_recall": acc.get("macro_recall"), "macro_f1": acc.get("macro_f1"),
            "parameters": count_parameters(e["path"]), "size_mb": (v or {}).get("size_mb"),
            "p50_ms": lat.get("p50"), "p99_ms": lat.get("p99"), "peak_rss_mb": mem.get("peak_rss_mb"),
        })
    return rows


def split_target(entry: str, recipe: str | os.PathLike | None) -> tuple[str, str | os.PathLike | None]:
    """``(target, recipe)`` of a ``--target`` value: ``TARGET:RECIPE`` names its own recipe, a plain
    ``TARGET`` runs ``recipe`` (None: the target's own)."""
    target, sep, own = str(entry).rpartition(":")
    if sep and len(target) > 1 and own:  # not a Windows drive letter (C:\targets\x.yaml)
        return target, own
    return str(entry), recipe


def column_label(entry: str, the_plan: Any) -> str:
    """The table's name of a target entry: the target's name, with ``:recipe`` when the entry names its own."""
    _, own = split_target(entry, None)
    return f"{the_plan.target.name}:{the_plan.recipe}" if own is not None else the_plan.target.name


def converted_checkpoint(artifact: Path, manifest: dict[str, Any], first_fp32: str) -> Path | None:
    """The last PyTorch model folder of ``artifact``'s stages (its ``manifest``) when its architecture differs
    from the fine-tuned model's at ``first_fp32`` (a recipe that converts, e.g. albertize: BERT -> ALBERT),
    else None."""
    from edgebert.stages.registry import Artifact

    states = [s["state"] for s in manifest.get("stages") or [] if isinstance(s.get("state"), dict)]
    model = states[-1].get("model") if states else None
    if not model:
        return None
    folder = Artifact(root=artifact, model=str(model)).path(str(model))

    def model_type(d: Path) -> str | None:
        try:
            return json.loads((Path(d) / "config.json").read_text(encoding="utf-8")).get("model_type")
        except (OSError, ValueError):
            return None

    kind = model_type(folder)
    return folder if kind is not None and kind != model_type(Path(first_fp32)) else None


def _f(value: Any, spec: str, scale: float = 1.0) -> str:
    return "n/a" if value is None else format(value * scale, spec)


def compare_markdown(results: dict[str, Any]) -> str:
    """The comparison table: per target, every model's row (fp32 first)."""
    env = results.get("environment") or {}
    data = results.get("data") or {}
    lines = [f"# edgebert compare: {', '.join(results['models'])}", "",
             f"Data: {data.get('name')} {data.get('split')} ({data.get('rows')} rows). "
             f"Machine: {env.get('device_label')}; batch 1, {env.get('threads')} threads, all variants timed in "
             "the same interleaved rounds.", ""]
    if results.get("command"):
        lines += [f"Command: `{results['command']}`", ""]
    lines += ["| target | model | accuracy | macro P | macro R | macro F1 | parameters | size MB | p50 ms | "
              "p99 ms | peak MB |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    notes = []
    for target in ["fp32", *results.get("columns", results["targets"])]:
        for r in (r for r in results["rows"] if r["target"] == target):
            if r["status"] != "ok":
                notes.append(f"- {r['model']} ({target}): {r['status']}: {r['reason']}")
            params = "n/a" if r["parameters"] is None else f"{r['parameters'] / 1e6:.2f}M"
            lines.append(f"| {target} | {r['model']} | {_f(r['accuracy'], '.2f', 100)} | "
                         f"{_f(r['macro_precision'], '.2f', 100)} | {_f(r['macro_recall'], '.2f', 100)} | "
                         f"{_f(r['macro_f1'], '.2f', 100)} | {params} | {_f(r['size_mb'], '.1f')} | "
                         f"{_f(r['p50_ms'], '.2f')} | {_f(r['p99_ms'], '.2f')} | {_f(r['peak_rss_mb'], '.0f')} |")
    lines += ["", "Accuracy and macro precision / recall / F1 in percent, each measured through the file's own "
              "runtime; fp32 is the fine-tuned PyTorch checkpoint the artifacts were compressed from; "
              "'TARGET:RECIPE fp32' the model a recipe that changes the architecture made of it, before export."]
    if notes:
        lines += ["", "Not measured:", *notes]
    return "\n".join(lines) + "\n"


def _plot(rows: Sequence[dict[str, Any]], path: Path, results: dict[str, Any]) -> None:
    from edgebert.bench.report import plot_pareto

    points = [{"name": f"{r['model']} {r['target']}", "p50_ms": r["p50_ms"], "accuracy": r["accuracy"],
               "peak_rss_mb": r["peak_rss_mb"], "model": model_slug(r["model"]), "target": r["target"]}
              for r in rows if r["status"] == "ok"]
    data = results.get("data") or {}
    plot_pareto(points, path, title=f"{data.get('name')} {data.get('split')}: accuracy against p50",
                color_by="model", marker_by="target")
