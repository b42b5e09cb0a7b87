"""The bench.json schema (version 1): required keys, validation and loading.

Top level::

    schema_version   1
    tool             "edgebert bench"
    edgebert_version, created (ISO 8601 UTC), command (the command line), out, wall_s
    data             {name, split, rows, file, label_names, max_rows, latency_rows}
    protocol         every setting that shapes the figures (see edgebert.bench.protocol)
    environment      {hostname, cpu, machine, cpu_flags, physical_cores, threads, gpu, cuda,
                      jetson_power_mode, libraries, host, device_label, ...}
    reference        name of the reference variant (None when every variant failed)
    baselines        {requested, source, notes} or None
    headline         (with --baselines; optional) {budget_points, fp32, strongest, optimum_avx2, candidates,
                     rows, notes}: the fastest third-party baseline within budget_points of the fp32 model's
                     accuracy and each other row's p50 speed-up against it (edgebert.bench.baselines.headline)
    variants         [variant, ...] in command-line order (baselines after the inputs)

A variant::

    name, role (input | baseline), baseline, kind, runtime, precision, device, path, source,
    providers (onnxruntime's providers that ran it, first = the one running; optional),
    provider_fallback (why it ran on another provider than the device asked for, or None; optional),
    status (ok | failed | skipped), error, notes, label_names, files, size_bytes, size_mb,
    load_s (cold load in the memory worker), load_s_in_process,
    accuracy       {n, accuracy, macro_precision, macro_recall, macro_f1, agreement,
                    out_of_scope: {in_scope_n, out_of_scope_n, in_scope_accuracy, out_of_scope_recall,
                    out_of_scope_precision} (data with an out-of-scope class only)} | None
    threshold      the artifact's calibrated confidence threshold applied to its deployed file | None
    latency        {n, mean, std, min, p10, p25, p50, p75, p90, p99, max, iqr, ratio_vs_reference} | None  (ms)
    latency_fixed  same keys + seq_len | None (only with --seq-len)
    throughput     {rounds, batch, samples_per_round, mean, min, max, std} | None  (samples/s)
    memory         {peak_rss_mb, peak_source, ru_maxrss_mb, rss_runtime_mb, increase_mb, rss_start_mb,
                    rss_loaded_mb, rss_end_mb, load_s, runtime_modules, torch_imported,
                    cuda_max_allocated_mb}
                   | {error} | None
    validation     export check of a baseline ({n, max_abs_logit_diff, label_agreement, ...}) | None
    budgets        (optional) the artifact target's budgets on a file it deploys: {target, latency_ms,
                   memory_mb, within_latency, within_memory} (None: no budget or not measured) | None
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from edgebert.errors import ConfigError

SCHEMA_VERSION = 1

REQUIRED_TOP = ("schema_version", "tool", "created", "command", "data", "protocol", "environment",
                "reference", "variants")
REQUIRED_DATA = ("name", "split", "rows", "label_names")
REQUIRED_ENVIRONMENT = ("hostname", "cpu", "threads", "libraries", "device_label")
REQUIRED_PROTOCOL = ("version", "isolation", "threads", "rounds", "warmup_runs", "latency_samples")
REQUIRED_VARIANT = ("name", "role", "kind", "runtime", "precision", "device", "status", "error",
                    "size_bytes", "load_s", "accuracy", "latency", "latency_fixed", "throughput",
                    "memory", "validation")
STATUSES = ("ok", "failed", "skipped")


def validate_results(data: Any, *, where: str = "bench.json") -> dict[str, Any]:
    """Check a parsed bench.json against schema version 1; return it, or raise ConfigError listing
    every problem."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where} is not a bench result (expected a JSON object).")
    problems: list[str] = []
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        problems.append(f"schema_version is {version!r}; this edgebert reads version {SCHEMA_VERSION}")
    problems += [f"missing key '{k}'" for k in REQUIRED_TOP if k not in data]
    for block, keys in (("data", REQUIRED_DATA), ("environment", REQUIRED_ENVIRONMENT),
                        ("protocol", REQUIRED_PROTOCOL)):
        value = data.get(block)
        if isinstance(value, dict):
            problems += [f"missing key '{block}.{k}'" for k in keys if k not in value]
        elif block in data:
            problems.append(f"'{block}' is not an object")
    variants = data.get("variants")
    if variants is not None and not isinstance(variants, list):
        problems.append("'variants' is not a list")
    for i, v in enumerate(variants if isinstance(variants, list) else []):
        if not isinstance(v, dict):
            problems.append(f"variants[{i}] is not an object")
            continue
        label = v.get("name", i)
        problems += [f"variant {label!r}: missing key '{k}'" for k in REQUIRED_VARIANT if k not in v]
        if v.get("status") not in STATUSES:
            problems.append(f"variant {label!r}: status {v.get('status')!r} is not one of {', '.join(STATUSES)}")
    if problems:
        shown = "; ".join(problems[:12]) + (f"; ... ({len(problems) - 12} more)" if len(problems) > 12 else "")
        raise ConfigError(f"{where} is not a valid bench result: {shown}.")
    return data


def load_results(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a bench.json (or the bench.json inside a bench output folder)."""
    p = Path(path).expanduser()
    if p.is_dir():
        p = p / "bench.json"
    if not p.is_file():
        raise ConfigError(f"'{path}' is neither a bench.json file nor a folder holding one "
                          "(as written by: edgebert bench ... --out DIR).")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"Cannot read '{p}' as JSON: {exc}") from exc
    return validate_results(data, where=str(p))
