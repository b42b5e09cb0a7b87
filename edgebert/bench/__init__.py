"""Benchmarking classifier variants: accuracy x latency x memory, side by side.

Public interface::

    from edgebert.bench import bench, BenchResult, merge_reports, load_results

    result = bench(["runs/minilm-intents", "runs/minilm-intents/model.onnx"], "intents",
                   baselines=True, out="bench-out/minilm")
    print(result.markdown)

The measuring rules live in :mod:`edgebert.bench.protocol`. Submodules load lazily: the memory
worker imports this package in a fresh process that must stay free of torch.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BenchResult", "bench", "load_results", "merge_reports", "validate_results"]

_LAZY = {
    "bench": ("edgebert.bench.run", "bench"),
    "BenchResult": ("edgebert.bench.run", "BenchResult"),
    "merge_reports": ("edgebert.bench.report", "merge_reports"),
    "ReportResult": ("edgebert.bench.report", "ReportResult"),
    "load_results": ("edgebert.bench.schema", "load_results"),
    "validate_results": ("edgebert.bench.schema", "validate_results"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'edgebert.bench' has no attribute {name!r}")
