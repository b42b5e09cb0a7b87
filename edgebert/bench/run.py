"""``bench()``: accuracy x latency x memory of several variants of a classifier, side by side.

The measuring rules are in :mod:`edgebert.bench.protocol`; this module only orchestrates them:
load the data, discover the variants, (build the baselines), score accuracy through each variant's
own runtime, run the interleaved latency / throughput rounds, measure memory in fresh processes,
and write bench.json, bench.csv, bench.md and pareto.png.
"""

from __future__ import annotations

import os
import random
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgebert.bench import protocol
from edgebert.bench.baselines import baseline_names
from edgebert.bench.variants import (Runner, VariantSpec, discover, encode_numpy, finetuned_variant, is_artifact,
                                     load_hf_tokenizer, open_runner)
from edgebert.errors import ConfigError, DataError


@dataclass
class BenchResult:
    """The output folder and the content of its bench.json."""

    out: Path
    results: dict[str, Any]

    @property
    def markdown(self) -> str:
        """The comparison table, as written to bench.md."""
        return (self.out / "bench.md").read_text(encoding="utf-8")


@dataclass
class _Variant:
    """A variant during the run: its spec, loaded runner, prepared inputs and measurements."""

    spec: VariantSpec
    status: str = "ok"
    error: str | None = None
    runner: Runner | None = None
    load_s_in_process: float | None = None
    latency_inputs: list = field(default_factory=list)
    fixed_inputs: list = field(default_factory=list)
    throughput_inputs: list = field(default_factory=list)
    latency_ns: list[int] = field(default_factory=list)
    fixed_ns: list[int] = field(default_factory=list)
    throughput: list[float] = field(default_factory=list)
    metrics: dict[str, Any] | None = None
    predicted: list[str | None] | None = None  # predicted label names (None: not answered), in split row order
    memory: dict[str, Any] | None = None
    providers: list[str] | None = None  # onnxruntime's providers that ran the model (None: not onnxruntime)
    provider_fallback: str | None = None  # the sentence saying the model ran on another provider than asked

    def fail(self, phase: str, exc: BaseException) -> None:
        text = str(exc).strip() or type(exc).__name__
        self.status, self.error = "failed", f"{phase}: {text[:2000]}"
        if self.runner is not None:
            self.runner.close()
        self.runner = None
        self.latency_inputs = self.fixed_inputs = self.throughput_inputs = []


def _check_settings(**values: Any) -> None:
    minimum = {"rounds": 1, "warmup": 0, "latency_samples": 1, "batch": 1, "threads": 1, "seq_len": 2,
               "max_length": 2}
    for name, value in values.items():
        if value is not None and (not isinstance(value, int) or value < minimum[name]):
            raise ConfigError(f"{name} must be an integer >= {minimum[name]}, got {value!r}.")


def _unique_names(specs: list[VariantSpec]) -> None:
    seen: dict[str, int] = {}
    for s in specs:
        base = s.name
        if base in seen:
            seen[base] += 1
            s.name = f"{base}#{seen[base]}"
        else:
            seen[base] = 1


def _timestamp() -> str:
    import datetime as _dt

    return _dt.datetime.now().strftime("%Y%m%d-%H%M%S")


def _resolve_device(device: str) -> str:
    if device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"device must be auto, cpu or cuda, got {device!r}.")
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:  # pragma: no cover - torch is a dependency
        has_cuda = False
    if device == "cuda" and not has_cuda:
        raise ConfigError("device 'cuda' was asked for but no CUDA GPU is visible to torch. Use --device cpu.")
    return "cuda" if device == "cuda" or (device == "auto" and has_cuda) else "cpu"


def _latency_rows(n_rows: int, samples: int, seed: int = 0) -> list[int]:
    """``samples`` row indices of the split (seeded sample; cycles when the split is smaller)."""
    rng = random.Random(seed)
    if samples <= n_rows:
        return rng.sample(range(n_rows), samples)
    rows = list(range(n_rows))
    rng.shuffle(rows)
    return [rows[i % n_rows] for i in range(samples)]


class _Inputs:
    """Tokenized inputs per tokenizer folder (variants sharing a tokenizer share the arrays)."""

    def __init__(self, split, rows: list[int], *, batch: int, max_length: int, seq_len: int | None):
        self.split, self.rows, self.batch = split, rows, batch
        self.max_length, self.seq_len = max_length, seq_len
        self._cache: dict[str, dict[str, Any]] = {}

    def _encode(self, tok, rows: list[int], **kw) -> dict[str, np.ndarray]:
        texts = [self.split.texts[i] for i in rows]
        pairs = [self.split.text_pairs[i] for i in rows] if self.split.text_pairs is not None else None
        return encode_numpy(tok, texts, pairs, truncation=True, **kw)

    def get(self, tokenizer_dir: str) -> dict[str, Any]:
        if tokenizer_dir in self._cache:
            return self._cache[tokenizer_dir]
        tok = load_hf_tokenizer(tokenizer_dir)
        latency = [self._encode(tok, [i], max_length=self.max_length) for i in self.rows]
        fixed = ([self._encode(tok, [i], max_length=self.seq_len, padding="max_length") for i in self.rows]
                 if self.seq_len else [])
        # Throughput: the latency sentences in length-sorted batches, each padded to its longest.
        by_len = sorted(range(len(self.rows)), key=lambda k: latency[k]["input_ids"].shape[1], reverse=True)
        tput_rows = [[self.rows[k] for k in by_len[s:s + self.batch]] for s in range(0, len(by_len), self.batch)]
        tput = [self._encode(tok, rows, max_length=self.max_length, padding="longest") for rows in tput_rows]
        self._cache[tokenizer_dir] = {"tokenizer": tok, "latency": latency, "fixed": fixed, "throughput": tput,
                                      "throughput_rows": tput_rows}
        return self._cache[tokenizer_dir]

    def texts(self, rows: list[int]) -> tuple[list[str], list[str] | None]:
        """The split's texts (and second texts) of ``rows``: what a text-in variant is fed."""
        pairs = [self.split.text_pairs[i] for i in rows] if self.split.text_pairs is not None else None
        return [self.split.texts[i] for i in rows], pairs


def _relabel(split, dataset_labels: list[str], model_labels: list[str]):
    """``split`` with its label indices moved to the model's label order (checked beforehand)."""
    from edgebert.data import Split

    if list(dataset_labels) == list(model_labels):
        return split
    where = {name: i for i, name in enumerate(model_labels)}
    return Split(texts=split.texts, labels=[where[dataset_labels[y]] for y in split.labels],
                 text_pairs=split.text_pairs)


def _score(v: _Variant, split, tokenizer, *, batch: int, max_length: int, out_of_scope_label: str | None = None) -> None:
    """Accuracy / macro P-R-F1 of ``v`` through its own runtime (length-sorted batches). Below the variant's
    calibrated threshold a text is not answered (index -1: wrong, and an out-of-scope answer). With
    ``out_of_scope_label`` (data with an out-of-scope class): in-scope accuracy and out-of-scope recall too."""
    from edgebert.data import collate_batches
    from edgebert.metrics import classification_metrics
    from edgebert.runtime.classifier import softmax

    labels = v.spec.label_names or []
    pred = np.full(len(split), -1, dtype=np.int64)
    for inputs, _y, rows in collate_batches(split, tokenizer, batch_size=batch, max_length=max_length,
                                            sort_by_length=True):
        if getattr(v.runner, "text_in", False):  # the graph tokenizes: it gets the texts themselves
            feeds = v.runner.prepare_texts([split.texts[i] for i in rows],
                                           None if split.text_pairs is None else [split.text_pairs[i] for i in rows])
        else:
            feeds = v.runner.prepare({k: t.numpy() for k, t in inputs.items()})
        logits = v.runner.logits(v.runner(feeds))  # (batch, num_labels)
        if logits.ndim != 2 or logits.shape[1] != len(labels):
            raise DataError(f"the model returns logits of shape {tuple(logits.shape)}, expected "
                            f"(batch, {len(labels)}) for its {len(labels)} labels")
        answer = logits.argmax(-1)
        if v.spec.threshold is not None:  # as predict abstains: top probability below the threshold
            answer = np.where(softmax(logits).max(-1) < v.spec.threshold, -1, answer)
        pred[rows] = answer
    v.metrics = classification_metrics(split.labels, pred, labels, out_of_scope_label=out_of_scope_label)
    v.predicted = [labels[i] if i >= 0 else None for i in pred]


def bench(paths: Sequence[str | os.PathLike], data: Any, *, split: str = "test", baselines: bool = False,
          out: str | os.PathLike | None = None, seq_len: int | None = None,
          batch: int = protocol.DEFAULT_BATCH, threads: int | None = None, rounds: int = protocol.DEFAULT_ROUNDS,
          warmup: int = protocol.DEFAULT_WARMUP, latency_samples: int = protocol.DEFAULT_LATENCY_SAMPLES,
          reference: str | None = None, max_length: int = protocol.DEFAULT_MAX_LENGTH, device: str = "auto",
          overwrite: bool = False, progress: bool = True, command: str | None = None,
          memory: bool = True, **data_options: Any) -> BenchResult:
    """Benchmark model variants on one dataset split and write the results to ``out``.

    ``paths``: Hugging Face model folders, .onnx / .ort files, TorchScript .pt files or artifact
    folders (see :mod:`edgebert.bench.variants`). ``data`` and ``data_options``: as for
    :func:`edgebert.data.load_dataset`, except that ``max_rows`` caps the rows of the benchmarked
    ``split`` (a stratified, seeded subset). ``baselines`` adds the ONNX fp32 and Optimum int8
    baselines of the first Hugging Face folder. ``seq_len`` adds a fixed-shape latency block;
    ``batch`` is the throughput (and accuracy) batch size; ``threads`` defaults to the physical
    cores; ``rounds`` / ``warmup`` / ``latency_samples``: see :mod:`edgebert.bench.protocol`.
    ``reference`` names the variant others are compared with (default: the PyTorch fp32 one,
    else the first). ``device``: cpu, cuda or auto. ``memory=False`` skips the fresh-process
    memory measurement (quick runs). ``out`` defaults to ``bench-out/<timestamp>``; an existing
    folder with files is refused unless ``overwrite``.

    A variant that fails to load or crashes is marked ``failed`` with the runtime's message and
    the rest of the run completes. Raises ConfigError for unusable paths or settings and
    LabelMismatchError when a model's labels do not cover the dataset's.
    """
    from edgebert.artifact import check_output_dir, now_iso, write_json
    from edgebert.bench.report import write_bench_outputs
    from edgebert.bench.schema import SCHEMA_VERSION

    started = time.perf_counter()
    _check_settings(rounds=rounds, warmup=warmup, latency_samples=latency_samples, batch=batch, threads=threads,
                    seq_len=seq_len, max_length=max_length)
    specs = _discover(paths, baselines)
    device = _resolve_device(device)
    threads = threads or protocol.default_threads()
    max_rows = data_options.pop("max_rows", None)
    ds, the_split = _load_split(data, split, max_rows, specs, data_options)
    _place(specs, device)
    source = _baseline_source(specs) if baselines else None

    _unique_names(specs)
    names = [s.name for s in specs] + (baseline_names() if baselines else [])
    if reference is not None and reference not in names:
        raise ConfigError(f"Reference '{reference}' is not one of the variants: {', '.join(names)}.")

    out = Path(out) if out is not None else Path("bench-out") / _timestamp()
    check_output_dir(out, overwrite=overwrite)
    out.mkdir(parents=True, exist_ok=True)

    rows = _latency_rows(len(the_split), latency_samples)
    progress_bar = _Progress(progress)
    baseline_info = None
    if source is not None:
        baseline_info = _add_baselines(specs, source, out, the_split.select(rows[:64]), ds.split("train"),
                                       device=device, max_length=max_length, on_step=progress_bar.phase)
    _unique_names(specs)

    variants = [_Variant(spec=s) for s in specs]
    for v in variants:
        if v.spec.skip_reason:
            v.status, v.error = "skipped", v.spec.skip_reason
        elif v.spec.error:
            v.status, v.error = "failed", v.spec.error
    live = [v for v in variants if v.status == "ok"]
    progress_bar.bar.total = len(live) * (2 + rounds + (1 if memory else 0))
    inputs = _Inputs(the_split, rows, batch=batch, max_length=max_length, seq_len=seq_len)

    with protocol.torch_threads(threads):
        _load_and_score(live, inputs, the_split, ds.label_names, progress_bar, threads=threads, batch=batch,
                        max_length=max_length, warmup=warmup, out_of_scope_label=ds.out_of_scope_label)
        _time_rounds(live, rounds, len(rows), progress_bar)
    for v in live:  # free the models before the memory workers start
        if v.runner is not None:
            v.runner.close()
            v.runner = None
        v.latency_inputs = v.fixed_inputs = v.throughput_inputs = []
    if memory:
        _measure_memory(live, the_split.select(rows[:protocol.MEMORY_RUNS]), progress_bar, threads=threads,
                        max_length=max_length)
    progress_bar.bar.close()

    ok = [v for v in variants if v.status == "ok"]
    ref = _pick_reference(ok, reference)
    results = {
        "schema_version": SCHEMA_VERSION,
        "tool": "edgebert bench",
        "edgebert_version": _version(),
        "created": now_iso(),
        "command": command if command is not None else shlex.join(sys.argv),
        "out": str(out),
        "data": {"name": ds.name, "split": split, "rows": len(the_split), "file": ds.files.get(split),
                 "label_names": ds.label_names, "max_rows": max_rows, "latency_rows": len(rows)},
        "protocol": protocol.protocol_settings(threads=threads, rounds=rounds, warmup=warmup,
                                               latency_samples=latency_samples, batch=batch, seq_len=seq_len,
                                               max_length=max_length, device=device),
        "environment": protocol.environment(threads),
        "reference": ref.spec.name if ref else None,
        "baselines": baseline_info,
        "variants": [_variant_json(v, ref, seq_len, batch, len(rows), rounds) for v in variants],
        "wall_s": None,
    }
    if baselines:  # the strongest baseline and each edgebert row's speed-up against it
        from edgebert.bench.baselines import headline

        results["headline"] = headline(results["variants"])
    results["wall_s"] = time.perf_counter() - started
    write_json(out / "bench.json", results)
    write_bench_outputs(results, out)
    return BenchResult(out=out, results=results)


# -- the steps of bench() ---------------------------------------------------------------------

def _discover(paths: Sequence[str | os.PathLike] | str | os.PathLike, baselines: bool) -> list[VariantSpec]:
    """The variants the command-line paths stand for; with ``baselines`` and artifacts only, the
    fine-tuned model the first artifact was compressed from comes first (the baselines' source)."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if not paths:
        raise ConfigError("bench needs at least one model: a Hugging Face folder, an .onnx or .pt file, "
                          "or an artifact folder.")
    specs: list[VariantSpec] = [s for p in paths for s in discover(p)]
    if baselines and not any(s.kind == "hf" and s.skip_reason is None for s in specs):
        # Artifacts only: the baselines come from the fine-tuned model the first one was compressed from.
        artifact = next((p for p in paths if is_artifact(Path(p).expanduser())), None)
        if artifact is not None:
            specs.insert(0, finetuned_variant(artifact))
    return specs


def _load_split(data: Any, split: str, max_rows: int | None, specs: list[VariantSpec],
                data_options: dict[str, Any]):
    """(dataset, the benchmarked split, capped to ``max_rows``); each variant's labels checked against
    the dataset's (each scores the split re-indexed to its own label order; LabelMismatchError)."""
    from edgebert.data import Dataset, load_dataset

    ds = data if isinstance(data, Dataset) else load_dataset(data, **data_options)
    the_split = ds.split(split)
    if max_rows is not None:
        the_split = the_split.subset(int(max_rows))
    if len(the_split) == 0:
        raise DataError(f"the {split!r} split of {ds.name} has no rows to benchmark on.")
    for s in specs:
        if s.label_names is not None and s.skip_reason is None:
            ds.with_labels(s.label_names)
    return ds, the_split


def _place(specs: list[VariantSpec], device: str) -> None:
    """Put the variants on ``device``: on CUDA eager fp32 gets an fp16 twin and everything runs on the
    GPU where it can; on the CPU TensorRT engines are skipped. Then the torch.compile decisions."""
    if device == "cuda":  # eager fp32 and fp16 on the GPU; everything else on the GPU where it can
        extra = []
        for s in specs:
            s.device = "cuda"
            if s.runtime == "pytorch":
                extra.append(VariantSpec(**{**s.to_json(), "name": f"{s.name} fp16", "precision": "fp16",
                                            "notes": list(s.notes)}))
                s.budgets = None  # a deployed checkpoint (a GPU target's fallback) runs at fp16 there
        specs += extra
    else:
        for s in specs:
            if s.runtime == "tensorrt" and not s.skip_reason:
                s.skip_reason = "a TensorRT engine runs on a CUDA GPU only: bench --device cuda (or auto, on a GPU host)"
    _apply_compile_decisions(specs)


def _baseline_source(specs: list[VariantSpec]) -> VariantSpec:
    """The Hugging Face variant the baselines are built from."""
    source = next((s for s in specs if s.kind == "hf" and s.skip_reason is None), None)
    if source is None:
        raise ConfigError("--baselines builds from a Hugging Face model folder (or the fine-tuned model an "
                          "artifact's manifest names), and none was given. Add the fine-tuned folder: "
                          "edgebert bench FINETUNED_DIR MODEL_FILE --data DATA --baselines")
    return source


def _add_baselines(specs: list[VariantSpec], source: VariantSpec, out: Path, sample, train, *, device: str,
                   max_length: int, on_step) -> dict[str, Any]:
    """Build the baselines of ``source`` in ``out``/baselines (``train``: the split that calibrates the OpenVINO
    baseline), append them to ``specs``; bench.json's ``baselines`` block."""
    from edgebert.bench.baselines import build_baselines

    built = build_baselines(source, out / "baselines", sample.texts, pairs=sample.text_pairs,
                            max_length=max_length, on_step=on_step, train_texts=train.texts,
                            train_pairs=train.text_pairs)
    for b in built:
        b.device = device
    specs += built
    return {"requested": True, "source": source.path, "folder": str(out / "baselines"),
            "notes": [n for b in built for n in b.notes] + [b.skip_reason for b in built if b.skip_reason]}


class _Progress:
    """The progress bar (stderr; off with ``progress=False``): one step per variant and phase."""

    def __init__(self, enabled: bool):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=0, desc="bench", unit="step", disable=not enabled, file=sys.stderr, leave=False)

    def phase(self, name: str, what: str) -> None:
        self.bar.set_description_str(f"{name}: {what}")
        self.bar.refresh()

    def step(self) -> None:
        self.bar.update(1)


def _load_and_score(live: list[_Variant], inputs: _Inputs, the_split, dataset_labels: list[str],
                    progress_bar: _Progress, *, threads: int, batch: int, max_length: int, warmup: int,
                    out_of_scope_label: str | None = None) -> None:
    """1. load + accuracy, one variant at a time; each variant's timing inputs prepared and warmed up."""
    for v in live:
        progress_bar.phase(v.spec.name, "load")
        try:
            t0 = time.perf_counter()
            v.runner = open_runner(v.spec, threads)
            v.load_s_in_process = time.perf_counter() - t0
            _record_providers(v)
        except Exception as exc:
            v.fail("load", exc)
        progress_bar.step()
        if v.status != "ok":
            continue
        progress_bar.phase(v.spec.name, "accuracy")
        try:
            prepared = inputs.get(v.spec.tokenizer_dir)
            split_v = _relabel(the_split, dataset_labels, v.spec.label_names)
            _score(v, split_v, prepared["tokenizer"], batch=batch, max_length=max_length,
                   out_of_scope_label=out_of_scope_label)
            if getattr(v.runner, "text_in", False):  # strings, one sentence each; no fixed shape (the graph pads)
                v.latency_inputs = [v.runner.prepare_texts(*inputs.texts([i])) for i in inputs.rows]
                v.throughput_inputs = [v.runner.prepare_texts(*inputs.texts(r)) for r in prepared["throughput_rows"]]
            else:
                v.latency_inputs = [v.runner.prepare(e) for e in prepared["latency"]]
                v.fixed_inputs = [v.runner.prepare(e) for e in prepared["fixed"]]
                v.throughput_inputs = [v.runner.prepare(e) for e in prepared["throughput"]]
            protocol.warm_up(v.runner, v.latency_inputs, warmup)
        except Exception as exc:
            v.fail("accuracy", exc)
        progress_bar.step()


def _time_rounds(live: list[_Variant], rounds: int, rows: int, progress_bar: _Progress) -> None:
    """2. interleaved latency / throughput rounds."""
    for k in range(rounds):
        order = protocol.round_order([v.spec.name for v in live], k)
        for name in order:
            v = next(x for x in live if x.spec.name == name)
            if v.status != "ok":
                progress_bar.step()
                continue
            progress_bar.phase(name, f"latency round {k + 1}/{rounds}")
            try:
                fell_back = v.runner.fell_back_at
                _time_round(v, rows)
                if v.runner.fell_back_at != fell_back:
                    # torch.compile failed inside a timed block: keep eager samples only
                    v.latency_ns, v.fixed_ns, v.throughput = [], [], []
                    _time_round(v, rows)
                    v.spec.notes.append(f"timing restarted eager in round {k + 1} of {rounds}: the samples "
                                        "timed compiled before the failure were dropped")
            except Exception as exc:
                v.fail(f"latency round {k + 1}", exc)
            progress_bar.step()


def _measure_memory(live: list[_Variant], sample, progress_bar: _Progress, *, threads: int, max_length: int) -> None:
    """3. memory and cold load, one fresh process per variant."""
    for v in live:
        if v.status != "ok":
            progress_bar.step()
            continue
        progress_bar.phase(v.spec.name, "memory (fresh process)")
        v.memory = protocol.measure_memory({"variant": v.spec.to_json(), "threads": threads,
                                            "texts": sample.texts, "text_pairs": sample.text_pairs,
                                            "runs": protocol.MEMORY_RUNS, "max_length": max_length})
        progress_bar.step()


def _record_providers(v: _Variant) -> None:
    """The providers the variant runs on; where it is not the one asked for (a CUDA bench on an
    onnxruntime without CUDA), the variant's notes say so, so no row passes CPU figures off as GPU ones."""
    from edgebert.runtime.backends import provider_fallback

    used = getattr(v.runner, "providers", None)
    if not used:
        return
    v.providers = list(used)
    v.provider_fallback = provider_fallback(getattr(v.runner, "requested", None) or [], v.providers)
    if v.provider_fallback:
        v.spec.notes.append(v.provider_fallback)


def _time_round(v: _Variant, rows: int) -> None:
    """One variant's turn in a timing round: batch-1 latency, the fixed shape, throughput."""
    protocol.warm_up(v.runner, v.latency_inputs, 1)  # re-prime after the previous variant
    v.latency_ns += protocol.time_calls(v.runner, v.latency_inputs)
    if v.fixed_inputs:
        protocol.warm_up(v.runner, v.fixed_inputs, 1)
        v.fixed_ns += protocol.time_calls(v.runner, v.fixed_inputs)
    protocol.warm_up(v.runner, v.throughput_inputs, 1)
    t = protocol.time_calls(v.runner, v.throughput_inputs)
    v.throughput.append(rows / (sum(t) / 1e9))


def _apply_compile_decisions(specs: list[VariantSpec]) -> None:
    """Compile the PyTorch variants whose folder's torch_compile.json enables it for their device type
    and precision (the export-pytorch stage measured it there); note the decision either way."""
    from edgebert.export.torch_compile import compile_choice, read_settings

    dtypes = {"fp32": "float32", "fp16": "float16"}
    for s in specs:
        if s.runtime != "pytorch" or s.skip_reason:
            continue
        s.torch_compile, note = compile_choice(read_settings(s.path), s.device, dtypes.get(s.precision, s.precision))
        if note:
            s.notes.append(note)
        s.compile_note = note if s.torch_compile else None


def _pick_reference(ok: list[_Variant], reference: str | None) -> _Variant | None:
    if reference is not None:
        return next((v for v in ok if v.spec.name == reference), None)
    for v in ok:
        if v.spec.runtime == "pytorch" and v.spec.precision == "fp32":
            return v
    return ok[0] if ok else None


def _variant_json(v: _Variant, ref: _Variant | None, seq_len: int | None, batch: int, samples: int,
                  rounds: int = 1) -> dict[str, Any]:
    s = v.spec
    ok = v.status == "ok"
    accuracy = latency = fixed = tput = None
    if ok and v.metrics is not None:
        accuracy = dict(v.metrics)
        agree = None
        if ref is not None and ref.predicted is not None and v.predicted is not None:
            agree = float(np.mean([a == b for a, b in zip(v.predicted, ref.predicted)]))
        accuracy["agreement"] = agree
    if ok and v.latency_ns:
        latency = protocol.summarize_ns(v.latency_ns)
        ref_p50 = protocol.summarize_ns(ref.latency_ns)["p50"] if ref and ref.latency_ns else None
        latency["ratio_vs_reference"] = latency["p50"] / ref_p50 if ref_p50 else None
        matrix = protocol.rounds_matrix(v.latency_ns, rounds, samples)
        if matrix is not None:
            latency["rounds_ms"] = np.round(matrix, 5).tolist()
            latency["spread"] = protocol.measurement_spread(matrix)
            ref_matrix = protocol.rounds_matrix(ref.latency_ns, rounds, samples) if ref and ref.latency_ns else None
            if ref_matrix is not None and ref is not v:
                latency["ratio_vs_reference_interval"] = protocol.bootstrap_ratio(matrix, ref_matrix)
    if ok and v.fixed_ns:
        fixed = {"seq_len": seq_len, **protocol.summarize_ns(v.fixed_ns)}
    if ok and v.throughput:
        tput = protocol.throughput_summary(v.throughput, batch=batch, samples=samples)
    memory = v.memory
    notes = list(s.notes)
    if memory and "error" in memory:
        notes.append(f"memory not measured: {memory['error']}")
    if memory and memory.get("torch_compile_fallback"):
        notes.append(f"memory process: {memory['torch_compile_fallback']} (its peak and first_call_s include "
                     "the failed compilation)")
    size = s.size_bytes if s.files else None
    budgets = _budget_check(s.budgets, latency, memory) if s.budgets else None
    return {
        "name": s.name, "role": s.role, "baseline": s.baseline, "kind": s.kind, "runtime": s.runtime,
        "precision": s.precision, "device": s.device, "providers": v.providers,
        "provider_fallback": v.provider_fallback, "path": s.path, "source": s.source,
        "status": v.status, "error": v.error, "notes": notes, "label_names": s.label_names,
        "files": s.files, "size_bytes": size, "size_mb": size / 1e6 if size is not None else None,
        "load_s": (memory or {}).get("load_s"), "load_s_in_process": v.load_s_in_process,
        "accuracy": accuracy, "latency": latency, "latency_fixed": fixed, "throughput": tput,
        "memory": memory, "validation": s.validation, "budgets": budgets,
    }


def _budget_check(budgets: dict[str, Any], latency: dict[str, Any] | None,
                  memory: dict[str, Any] | None) -> dict[str, Any]:
    """The target's latency / memory budgets against this run's p50 at batch 1 and peak RSS (None:
    no budget, or not measured)."""
    p50 = (latency or {}).get("p50")
    peak = (memory or {}).get("peak_rss_mb")
    lat, mem = budgets.get("latency_ms"), budgets.get("memory_mb")
    return {"target": budgets.get("target"), "latency_ms": lat, "memory_mb": mem,
            "within_latency": None if lat is None or p50 is None else p50 <= lat,
            "within_memory": None if mem is None or peak is None else peak <= mem}


def _version() -> str:
    from edgebert import __version__

    return __version__
