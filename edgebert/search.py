"""``compress --search``: the fastest shape whose deployed file stays within the target's accuracy budget.

A recipe's ``prune`` stage fixes one shape (e.g. drop 2 layers, half the heads, half the FFN neurons).
On another data set that shape may leave speed unused (an easy task) or break the budget (a hard one).
The search chooses the shape per run, on dev, in three steps:

1. **Base.** The recipe without ``prune`` and ``distill`` (fine-tuning where needed, export, int8): the
   unpruned deployed model, its dev accuracy and its latency. Its fine-tuned model is the teacher.
2. **Chain (no training).** Starting from the unpruned shape, each step removes one more level of one
   lever (:class:`edgebert.targets.SearchSpace`: layers, heads, FFN neurons). Every shape considered is
   pruned from the fine-tuned model by measured importance (the ``prune`` stage's own function), scored
   by its KL divergence from the fine-tuned model on dev texts, and timed as a fused int8 ONNX file at
   batch 1 on this machine, with the deployment's threads (a latency table measured on the device the
   search runs on, as in ZipLM). The step taken is the one that adds the least KL per millisecond saved.
   So the chain runs from slow and faithful to fast and damaged, and no shape joins it that a faster,
   less damaged one dominates.
3. **Binary search along the chain (training).** Each candidate runs the whole recipe with its shape
   (prune, distill, export, quantize, validation: stage outputs shared through the stage cache) and
   passes when its deployed file's dev accuracy is within the target's ``accuracy_drop`` of the
   fine-tuned model. Accuracy falls along the chain, so halving the interval finds the fastest passing
   candidate in log2(chain length) trainings. A candidate starts only when the time left in the
   budget covers the slowest training so far. The fastest candidate that passed, as measured, is kept
   (a candidate whose int8 step kept layers float can be slower than its place in the chain says).

The chosen recipe then runs into the output folder (every stage taken from the cache) and its
manifest gets a ``search`` block: every shape timed (predicted latency, KL), every candidate trained
(dev accuracy, its deployed file's latency), the chain and the choice. Test accuracy is measured once,
for the chosen model only. Candidates stay under ``OUT/search/``.
"""

from __future__ import annotations

import copy
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgebert.errors import ConfigError

SEARCH_DIRNAME = "search"
#: stages a candidate replaces (prune) or leaves out (the base runs neither)
_SHAPED = ("prune", "distill")


@dataclass
class SearchResult:
    out: Path
    manifest: dict[str, Any]
    search: dict[str, Any]


@dataclass(frozen=True)
class Shape:
    """One level of each lever: whole layers dropped, fractions of heads and FFN neurons removed."""

    layers: int = 0
    heads: float = 0.0
    ffn: float = 0.0

    @property
    def name(self) -> str:
        return f"L-{self.layers}_H-{round(self.heads * 100)}_F-{round(self.ffn * 100)}"

    @property
    def unpruned(self) -> bool:
        return self == Shape()

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "layers_dropped": self.layers, "heads_removed": self.heads,
                "ffn_removed": self.ffn}


def searchable(stages: list[Any], target: Any, recipe: str) -> int:
    """Index of the recipe's prune stage; ConfigError where the search cannot run this recipe."""
    kinds = [s.kind for s in stages]
    problems = []
    if "prune" not in kinds:
        problems.append("it has no 'prune' stage whose shape the search could choose")
    if "export-onnx" not in kinds:
        problems.append("it exports no ONNX model (the search times shapes with onnxruntime)")
    if target.runtime != "onnxruntime":
        problems.append(f"target '{target.name}' runs {target.runtime}, and the search times shapes with onnxruntime")
    if problems:
        raise ConfigError(f"--search cannot run recipe '{recipe}': " + "; ".join(problems) + ". Use a cpu-style "
                          "recipe (prune, distill, export-onnx, quantize), e.g. --target cpu.")
    return kinds.index("prune")


def _levels(space) -> tuple[list[int], list[float], list[float]]:
    return list(space.layers), list(space.heads), list(space.ffn)


def neighbours(shape: Shape, space, n_layers: int) -> list[Shape]:
    """The shapes one level further along one lever (layers dropped stay below the model's depth)."""
    layers, heads, ffn = _levels(space)
    out = []
    if shape.layers in layers:
        i = layers.index(shape.layers)
        if i + 1 < len(layers) and layers[i + 1] < n_layers:
            out.append(Shape(layers[i + 1], shape.heads, shape.ffn))
    for name, levels in (("heads", heads), ("ffn", ffn)):
        value = getattr(shape, name)
        i = levels.index(value)
        if i + 1 < len(levels):
            out.append(Shape(**{**shape.__dict__, name: levels[i + 1]}))
    return out


def build_chain(probe: Callable[[Shape], dict[str, Any]], space, n_layers: int,
                log: Callable[[str], None] = lambda m: None) -> list[Shape]:
    """The greedy chain from the unpruned shape: each step the neighbour with the least KL added per ms
    saved, among those that save at least ``space.min_gain`` of the current latency. ``probe(shape)``
    returns {"kl", "latency_ms"} (memoized by the caller)."""
    current = Shape()
    chain = [current]
    here = probe(current)
    while True:
        best, best_rate = None, math.inf
        for nxt in neighbours(current, space, n_layers):
            there = probe(nxt)
            saved = here["latency_ms"] - there["latency_ms"]
            if saved <= 0 or saved < space.min_gain * here["latency_ms"]:
                continue
            rate = max(there["kl"] - here["kl"], 0.0) / saved
            if rate < best_rate or (rate == best_rate and best is not None and there["latency_ms"] < probe(best)["latency_ms"]):
                best, best_rate = nxt, rate
        if best is None:
            return chain
        current, here = best, probe(best)
        chain.append(current)
        log(f"search: chain step {len(chain) - 1}: {current.name} ({here['latency_ms']:.2f} ms predicted, "
            f"KL {here['kl']:.4f} before training)")


def next_candidate(lo: int, hi: int) -> int | None:
    """The chain index to train next when index ``lo`` is known to pass and ``hi`` to fail (``hi`` may be
    one past the end): the middle, or None when they are neighbours."""
    return None if hi - lo <= 1 else (lo + hi) // 2


# -- measuring shapes before training ------------------------------------------------------------------

def time_onnx(path: str | os.PathLike, tokenizer, rows, *, threads: int, max_length: int,
              rounds: int = 3, warmup: int = 8) -> dict[str, Any]:
    """Latency of an ONNX classifier at batch 1 over the texts of the split ``rows`` (each alone, at its own
    length, with its second text in a pair task): median of ``rounds`` passes' medians, with the
    deployment's session options and ``threads``."""
    from edgebert.bench.protocol import summarize_ns, time_calls, warm_up
    from edgebert.export.onnx import onnx_feeds
    from edgebert.runtime.backends.onnx import open_session

    session = open_session(path, threads=threads)  # the device runtime's session options, on the CPU
    names = [i.name for i in session.get_inputs()]
    pairs = rows.text_pairs or [None] * len(rows)
    feeds = [onnx_feeds(names, dict(tokenizer(t, p, truncation=True, max_length=max_length, return_tensors="np")))
             for t, p in zip(rows.texts, pairs)]

    def call(feed):
        return session.run(None, feed)

    warm_up(call, feeds, warmup)
    per_round = [summarize_ns(time_calls(call, feeds))["p50"] for _ in range(rounds)]
    per_round.sort()
    return {"p50_ms": per_round[len(per_round) // 2], "rounds_p50_ms": per_round, "texts": len(rows)}


class ShapeProbe:
    """Prune the fine-tuned model to a shape (measured importance), score it against the model before
    (KL on dev texts) and time it as the recipe would deploy it (fused, int8); memoized per shape."""

    def __init__(self, teacher_ref: str, dataset, prune_cfg, quantize_cfg, space, *, threads: int,
                 max_length: int, work: Path, log: Callable[[str], None] = lambda m: None):
        from edgebert import models
        from edgebert.evaluation import predict_logits

        self.loaded = models.load(teacher_ref)
        self.data = dataset.with_labels(self.loaded.label_names)
        full_dev = self.data.split("dev")
        full = predict_logits(self.loaded.model, self.loaded.tokenizer, full_dev, max_length=max_length)
        #: the fine-tuned model's accuracy on the whole dev split: what every candidate is held to
        self.teacher_dev_accuracy = float((full.argmax(-1) == full_dev.labels).mean())
        proxy = full_dev.subset_rows(space.proxy_rows)  # the KL's texts: their teacher logits are already there
        self.dev, self.teacher_logits = full_dev.select(proxy), full[proxy]
        self.latency_rows = self.dev.subset(space.latency_rows, seed=1)
        self.prune_cfg, self.quantize_cfg, self.space = prune_cfg, quantize_cfg, space
        self.threads, self.max_length, self.work, self.log = threads, max_length, work, log
        self.n_layers = int(self.loaded.model.config.num_hidden_layers)
        self.table: dict[Shape, dict[str, Any]] = {}
        # the table of an interrupted search of the same shapes on the same machine is reused, so that a
        # resumed search follows the same chain (timings differ a little from run to run)
        self.saved = work / "latency-table.json"
        from edgebert.artifact import sha256_tree

        self.identity = {"teacher": str(teacher_ref), "teacher_sha256": sha256_tree(Path(teacher_ref))
                         if Path(teacher_ref).is_dir() else None, "prune": prune_cfg.model_dump(mode="json"),
                         "quantize": None if quantize_cfg is None else quantize_cfg.model_dump(mode="json"),
                         "space": space.model_dump(mode="json", exclude={"budget_minutes"}), "threads": threads,
                         "max_length": max_length, "data": dataset.name, "cpu": _cpu()}
        if self.saved.is_file():
            import json

            kept = json.loads(self.saved.read_text())
            if kept.get("identity") == json.loads(json.dumps(self.identity)):
                self.table = {Shape(r["shape"]["layers_dropped"], r["shape"]["heads_removed"],
                                    r["shape"]["ffn_removed"]): r for r in kept["rows"]}
                log(f"search: reusing {len(self.table)} timed shapes from {self.saved}")

    def __call__(self, shape: Shape) -> dict[str, Any]:
        if shape not in self.table:
            from edgebert.artifact import write_json

            t0 = time.perf_counter()
            self.table[shape] = {**self._measure(shape), "seconds": round(time.perf_counter() - t0, 1)}
            write_json(self.saved, {"identity": self.identity, "rows": list(self.table.values())})
            row = self.table[shape]
            self.log(f"search: timed {shape.name}: {row['latency_ms']:.2f} ms, KL {row['kl']:.4f}, "
                     f"{row['parameters'] / 1e6:.1f} M parameters")
        return self.table[shape]

    def _measure(self, shape: Shape) -> dict[str, Any]:
        from edgebert.compress.prune import count_parameters, prune
        from edgebert.evaluation import predict_logits
        from edgebert.export.fuse import fuse_onnx, fusion_params
        from edgebert.export.onnx import export_onnx

        model = copy.deepcopy(self.loaded.model)
        if not shape.unpruned:
            settings = self.prune_cfg.model_dump(exclude={"kind", "layers", "heads", "ffn"})
            prune(model, self.loaded.tokenizer, self.loaded.spec, self.data.split("train"),
                  layers=shape.layers or None, heads=shape.heads, ffn=shape.ffn, **settings)
        logits = predict_logits(model, self.loaded.tokenizer, self.dev, max_length=self.max_length)
        with tempfile.TemporaryDirectory(dir=self.work) as tmp:
            plain = export_onnx(model, self.loaded.tokenizer, Path(tmp) / "plain.onnx")
            fused = Path(tmp) / "fused.onnx"
            fuse_onnx(plain, fused, **fusion_params(model))
            deployed = self._quantize(fused, Path(tmp) / "model.onnx")
            latency = time_onnx(deployed, self.loaded.tokenizer, self.latency_rows, threads=self.threads,
                                max_length=self.max_length, rounds=self.space.latency_rounds)
        return {"shape": shape.to_json(), "kl": kl_divergence(self.teacher_logits, logits),
                "dev_accuracy_untrained": float((logits.argmax(-1) == self.dev.labels).mean()),
                "latency_ms": latency["p50_ms"], "latency_rounds_ms": latency["rounds_p50_ms"],
                "parameters": count_parameters(model), "layers": int(model.config.num_hidden_layers)}

    def _quantize(self, fused: Path, out: Path) -> Path:
        """The fused file as the recipe's quantize stage would make it (its mode and settings; all
        layers quantized), or the fused file itself where the recipe does not quantize."""
        cfg = self.quantize_cfg
        if cfg is None or not str(cfg.mode).startswith(("int8", "fp16")) or cfg.mode == "torch-int8-dynamic":
            return fused
        from edgebert.compress.quantize import calibration_feeds, quantize_onnx

        feeds = None
        if cfg.mode == "int8-static":
            import onnxruntime as ort

            names = [i.name for i in ort.InferenceSession(str(fused), providers=["CPUExecutionProvider"]).get_inputs()]
            feeds = calibration_feeds(self.loaded.tokenizer, list(self.dev.texts), names,
                                      samples=cfg.calibration_samples, max_length=self.max_length)
        quantize_onnx(fused, out, mode=cfg.mode, per_channel=cfg.per_channel, symmetric=cfg.symmetric,
                      reduce_range=cfg.reduce_range, weight_type=cfg.weight_type,
                      calibration_samples=cfg.calibration_samples, calibration_method=cfg.calibration_method,
                      calibration_feeds=feeds)
        return out


def _cpu() -> str | None:
    from edgebert.artifact import host_info

    return host_info().get("processor")


def kl_divergence(teacher_logits, student_logits) -> float:
    """Mean KL(teacher || student) of the softmax outputs, in nats."""
    import numpy as np

    def log_softmax(x):
        x = np.asarray(x, dtype=np.float64)
        x = x - x.max(-1, keepdims=True)
        return x - np.log(np.exp(x).sum(-1, keepdims=True))

    lt, ls = log_softmax(teacher_logits), log_softmax(student_logits)
    return float((np.exp(lt) * (lt - ls)).sum(-1).mean())


# -- the search ----------------------------------------------------------------------------------------

def _recipe_file(folder: Path, name: str, stages: list[Any]) -> Path:
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    body = {"name": name, "stages": [s.model_dump(mode="json") for s in stages]}
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def candidate_stages(stages: list[Any], prune_index: int, shape: Shape) -> list[Any]:
    """The recipe's stages with the prune stage set to ``shape`` (the unpruned shape: no prune, no distill)."""
    if shape.unpruned:
        return [s for s in stages if s.kind not in _SHAPED]
    prune_cfg = stages[prune_index]
    shaped = prune_cfg.model_copy(update={"layers": shape.layers or None, "heads": shape.heads, "ffn": shape.ffn})
    return [shaped if i == prune_index else s for i, s in enumerate(stages)]


def _teacher_of(result) -> str:
    """The fine-tuned model a base run used: its finetune stage's output, else the input model."""
    from edgebert.stages.registry import Artifact, model_ref

    root = Path(result.out).resolve()
    for rec in result.manifest["stages"]:
        if rec["kind"] == "finetune" and not rec.get("skipped"):
            art = Artifact.from_json(root, rec["state"])
            return model_ref(art, art.model)
    return result.manifest["run"]["model"]


def _deployed_latency(artifact: Path, rows, *, threads: int, max_length: int, rounds: int) -> float:
    from edgebert.bench.variants import load_hf_tokenizer
    from edgebert.manifest import read_manifest

    manifest = read_manifest(artifact)
    tokenizer = load_hf_tokenizer(artifact / manifest.deploy.tokenizer)
    return time_onnx(artifact / manifest.deploy.model, tokenizer, rows, threads=threads, max_length=max_length,
                     rounds=rounds)["p50_ms"]


def search(model: str, target: str, *, data: Any, out: str | os.PathLike, recipe: str | os.PathLike | None = None,
           budget_minutes: float | None = None, overwrite: bool = False, seed: int = 0, progress: bool = True,
           log: Callable[[str], None] | None = None, cache: str | os.PathLike | bool = True,
           **data_options: Any) -> SearchResult:
    """Compress ``model`` for ``target`` with the fastest shape of the recipe's search space whose deployed
    file stays within the target's accuracy budget on dev (see the module docstring); write the chosen
    artifact to ``out`` with a ``search`` block in its manifest. ``budget_minutes`` overrides the recipe's
    ``search.budget_minutes``. Other arguments as for :func:`edgebert.pipeline.compress`."""
    import shutil

    from edgebert import models
    from edgebert.artifact import now_iso, write_text
    from edgebert.bench.protocol import default_threads
    from edgebert.cache import default_cache_dir
    from edgebert.data import Dataset, load_dataset
    from edgebert.deploy import report_markdown
    from edgebert.manifest import read_manifest, write_manifest
    from edgebert.pipeline import compress, default_out, plan
    from edgebert.targets import SearchSpace

    say = log or (lambda msg: None)
    started = time.perf_counter()
    the_plan = plan(target, recipe)
    space = the_plan.search or SearchSpace()
    if budget_minutes is not None:
        space = space.model_copy(update={"budget_minutes": float(budget_minutes)})
    prune_index = searchable(the_plan.stages, the_plan.target, the_plan.recipe)
    n_layers = int(models.read_config(model).num_hidden_layers)
    out = Path(out) if out is not None else default_out(model, the_plan.target.name)
    _check_out(out, overwrite)
    dataset = data if isinstance(data, Dataset) else load_dataset(data, **data_options)
    if "dev" not in dataset.splits:
        raise ConfigError(f"Dataset {dataset.name} has no dev split; the search chooses on dev data.")
    if overwrite and (out / SEARCH_DIRNAME).is_dir():
        shutil.rmtree(out / SEARCH_DIRNAME)
    work = out / SEARCH_DIRNAME
    # without a shared cache (--no-cache) the search keeps a private one: candidates share fine-tuning, and the
    # final run into OUT takes the chosen candidate's stages instead of training them again
    cache_dir: Any = (work / "stage-cache") if cache is False else default_cache_dir(out) if cache is True else cache
    threads = the_plan.target.threads or default_threads()
    max_length = the_plan.target.shapes.max_length
    budget_s = space.budget_minutes * 60
    quantize_cfg = next((s for s in the_plan.stages if s.kind == "quantize"), None)
    budget_points = the_plan.target.budgets.accuracy_drop

    def run(shape: Shape, folder: Path, what: str):
        name = f"search-{shape.name}".replace(".", "")
        path = _recipe_file(work / "recipes", name, candidate_stages(the_plan.stages, prune_index, shape))
        say(f"search: {what} {shape.name} -> {folder}")
        return compress(model, target, data=dataset, out=folder, recipe=path, overwrite=overwrite, seed=seed,
                        progress=progress, log=lambda m: say("  " + m), cache=cache_dir, keep=(SEARCH_DIRNAME,)
                        if folder == out else ())

    # 1. the base: unpruned, fine-tuned where needed, exported and quantized as the recipe does
    t0 = time.perf_counter()
    base = run(Shape(), work / "00-base", "base (no prune, no distill):")
    base_seconds = time.perf_counter() - t0
    teacher = _teacher_of(base)
    probe = ShapeProbe(teacher, dataset, the_plan.stages[prune_index], quantize_cfg, space, threads=threads,
                       max_length=max_length, work=work, log=say)

    # 2. the chain, from the latency table
    chain = build_chain(probe, space, n_layers, say)
    say(f"search: chain of {len(chain)} shapes from {probe(chain[0])['latency_ms']:.2f} to "
        f"{probe(chain[-1])['latency_ms']:.2f} ms predicted; {len(probe.table)} shapes timed")

    # 3. binary search along it
    trained: dict[int, dict[str, Any]] = {}

    def record(i: int, res, seconds: float) -> None:
        s = res.manifest.get("summary") or {}
        final = s.get("final_dev_accuracy")
        drop = None if final is None else 100.0 * (probe.teacher_dev_accuracy - final)
        trained[i] = {**chain[i].to_json(), "chain_index": i, "folder": str(Path(res.out)),
                      "passed": drop is not None and drop <= budget_points, "dev_accuracy": final,
                      "dev_accuracy_file": s.get("final_dev_accuracy_file"),
                      "teacher_dev_accuracy": probe.teacher_dev_accuracy, "accuracy_drop_points": drop,
                      "model_bytes": s.get("model_bytes"),
                      "predicted_ms": probe(chain[i])["latency_ms"],
                      "measured_ms": _deployed_latency(Path(res.out), probe.latency_rows, threads=threads,
                                                       max_length=max_length, rounds=space.latency_rounds),
                      "seconds": round(seconds, 1)}
        say(f"search: {chain[i].name}: dev {_fmt(trained[i]['dev_accuracy'], '.4f')} (drop "
            f"{_fmt(trained[i]['accuracy_drop_points'], '.2f')} points): "
            f"{'passes' if trained[i]['passed'] else 'fails'}, {trained[i]['measured_ms']:.2f} ms")

    record(0, base, base_seconds)
    # the base outside the budget: pruning more will not bring it back, so no candidate is trained
    lo, hi = 0, (len(chain) if trained[0]["passed"] else 1)
    stopped = None
    while (mid := next_candidate(lo, hi)) is not None:
        slowest = max([t["seconds"] for i, t in trained.items() if i > 0] or [0.0])
        left = budget_s - (time.perf_counter() - started)
        if left <= 0 or (slowest and slowest > left):
            stopped = (f"budget: {max(left, 0) / 60:.1f} of {space.budget_minutes:g} minutes left"
                       + (f", a candidate took up to {slowest / 60:.1f}" if slowest else
                          " after the base and the latency table, before the first candidate"))
            say(f"search: stopping, {stopped}")
            break
        t0 = time.perf_counter()
        res = run(chain[mid], work / f"{mid:02d}-{chain[mid].name}", f"candidate {mid} of {len(chain) - 1}:")
        record(mid, res, time.perf_counter() - t0)
        lo, hi = (mid, hi) if trained[mid]["passed"] else (lo, mid)

    # the fastest that passed, as measured: a candidate whose quantize kept layers float to stay within the
    # budget can be slower than a less pruned one
    passing = [i for i, t in trained.items() if t["passed"]]
    chosen = min(passing, key=lambda i: trained[i]["measured_ms"]) if passing else 0
    note = None if trained[0]["passed"] else ("even the unpruned model is outside the accuracy budget after "
                                              "quantization: the base is kept")
    if note:
        say(f"search: {note}")
    # the chosen recipe into the output folder: every stage comes from the stage cache
    final = run(chain[chosen], out, "writing the chosen shape")
    test = _test_accuracy(Path(final.out), dataset, max_length)
    block = {
        "space": space.model_dump(mode="json"), "threads": threads, "created": now_iso(),
        "seconds": round(time.perf_counter() - started, 1), "stopped": stopped, "note": note,
        "criterion": "fastest chain shape whose deployed file's dev accuracy is within the target's accuracy_drop "
                     "of the fine-tuned model's",
        "teacher_dev_accuracy": probe.teacher_dev_accuracy, "accuracy_budget_points": budget_points,
        "table": [{**row, "chain_index": chain.index(s) if s in chain else None} for s, row in probe.table.items()],
        "chain": [s.name for s in chain], "candidates": [trained[i] for i in sorted(trained)],
        "chosen": {**trained[chosen], "test_accuracy": test},
    }
    block["plot"] = f"{SEARCH_DIRNAME}/frontier.png"
    plot_search(block, out / block["plot"])
    manifest = read_manifest(out)
    manifest.search = block
    write_manifest(out / "manifest.json", manifest)
    data_out = manifest.to_dict()
    write_text(out / "report.md", report_markdown(data_out))
    return SearchResult(out=Path(final.out), manifest=data_out, search=block)


def _test_accuracy(artifact: Path, dataset, max_length: int) -> float | None:
    """The chosen deployed file's test accuracy (the one test measurement of the search), or None."""
    if "test" not in dataset.splits:
        return None
    from edgebert import models
    from edgebert.bench.variants import load_hf_tokenizer
    from edgebert.manifest import read_manifest
    from edgebert.stages._shared import onnx_dev_accuracy

    manifest = read_manifest(artifact)
    labels = models.read_labels_file(artifact)
    tokenizer = load_hf_tokenizer(artifact / manifest.deploy.tokenizer)
    return onnx_dev_accuracy(artifact / manifest.deploy.model, tokenizer, dataset.with_labels(labels).split("test"),
                             max_length)


def search_table(block: dict[str, Any]) -> str:
    """The candidates of a manifest's ``search`` block as a Markdown table (compress prints it)."""
    lines = ["| chain | shape | predicted ms | measured ms | dev accuracy | drop (points) | passes |",
             "|---|---|---|---|---|---|---|"]
    for c in block["candidates"]:
        lines.append(f"| {c['chain_index']} | {c['name']} | {c['predicted_ms']:.2f} | {c['measured_ms']:.2f} | "
                     f"{_fmt(c['dev_accuracy'], '.4f')} | {_fmt(c['accuracy_drop_points'], '.2f')} | "
                     f"{'yes' if c['passed'] else 'no'} |")
    ch = block["chosen"]
    test = f", test accuracy {ch['test_accuracy']:.4f}" if ch.get("test_accuracy") is not None else ""
    lines += ["", f"Chosen: {ch['name']} ({ch['measured_ms']:.2f} ms{test}); chain {' > '.join(block['chain'])}."]
    if block.get("stopped"):
        lines.append(f"Stopped early: {block['stopped']}.")
    return "\n".join(lines)


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _check_out(out: Path, overwrite: bool) -> None:
    """Before any work: ``out`` is new, empty, an earlier search's output (resumed), or (with ``overwrite``)
    an edgebert artifact; a folder of anything else is never written into."""
    from edgebert.artifact import not_ours_message
    from edgebert.cache import LOCK_NAME
    from edgebert.errors import OutputExistsError
    from edgebert.manifest import is_artifact

    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"Output path '{out}' exists and is a file, not a folder.")
    if not out.is_dir():
        return
    others = [p for p in out.iterdir() if p.name not in (LOCK_NAME, SEARCH_DIRNAME)]
    if not others:
        return
    if not is_artifact(out):
        raise OutputExistsError(not_ours_message(out, "compress artifact"))
    if not overwrite and not (out / SEARCH_DIRNAME).is_dir():
        raise OutputExistsError(f"Output folder '{out}' holds a compress artifact that no search wrote. Choose "
                                "another --out, or pass --overwrite to replace it.")


def plot_search(block: dict[str, Any], path: str | os.PathLike) -> Path:
    """Two panels: every shape timed before training (predicted ms against KL to the fine-tuned model, the
    chain joined), and every candidate trained (measured ms against dev accuracy, the budget line, the
    choice starred)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5), dpi=110)
    rows = block["table"]
    left.scatter([r["latency_ms"] for r in rows], [r["kl"] for r in rows], color="0.6", s=30, label="shape timed")
    chain = {name: i for i, name in enumerate(block["chain"])}
    on_chain = sorted((r for r in rows if r["shape"]["name"] in chain), key=lambda r: chain[r["shape"]["name"]])
    left.plot([r["latency_ms"] for r in on_chain], [r["kl"] for r in on_chain], "o-", color="tab:blue", label="chain")
    for r in on_chain:
        left.annotate(r["shape"]["name"], (r["latency_ms"], r["kl"]), fontsize=7, xytext=(3, 3),
                      textcoords="offset points")
    left.set_xlabel("predicted p50, int8 ONNX before training (ms)")
    left.set_ylabel("KL to the fine-tuned model before training (nats)")
    left.set_title("latency table", fontsize=10)
    left.grid(True, alpha=0.3)
    left.legend(fontsize=8)
    cands = [c for c in block["candidates"] if c.get("dev_accuracy") is not None]
    for c in cands:
        right.scatter(c["measured_ms"], c["dev_accuracy"], color="tab:green" if c["passed"] else "tab:red", s=40)
        right.annotate(c["name"], (c["measured_ms"], c["dev_accuracy"]), fontsize=7, xytext=(3, 3),
                       textcoords="offset points")
    chosen = block["chosen"]
    if chosen.get("dev_accuracy") is not None:
        right.scatter(chosen["measured_ms"], chosen["dev_accuracy"], marker="*", s=250, color="gold",
                      edgecolors="black", zorder=3, label="chosen")
    floor = block["teacher_dev_accuracy"] - block["accuracy_budget_points"] / 100
    right.axhline(block["teacher_dev_accuracy"], color="0.4", lw=1, label="fine-tuned (dev)")
    right.axhline(floor, color="tab:red", lw=1, ls="--", label="budget")
    right.set_xlabel("measured p50 of the deployed file (ms)")
    right.set_ylabel("dev accuracy of the deployed file")
    right.set_title("candidates trained (green: within budget)", fontsize=10)
    right.grid(True, alpha=0.3)
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)
