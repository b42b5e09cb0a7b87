"""Artifact assembly and reporting (edgebert/deploy.py): the summary against the target's budgets, and what
the run side may import without pulling in the pipeline. Assembly itself runs in every compress test
(tests/test_pipeline.py)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _manifest(teacher: float, final: float, budgets: dict) -> dict:
    return {"target": {"budgets": budgets},
            "stages": [{"kind": "prune", "seconds": 1.0, "metrics": {"dev_accuracy": 0.85},
                        "validation": {"accuracy_before": teacher}},
                       {"kind": "quantize", "seconds": 2.0, "metrics": {"dev_accuracy": final}}]}


def test_summary_checks_the_accuracy_and_size_budgets(tmp_path):
    from edgebert.deploy import budget_warnings, summarize

    model = tmp_path / "model.onnx"
    model.write_bytes(b"\0" * (3 * 2**20))
    within = _manifest(0.90, 0.895, {"accuracy_drop": 1.0, "size_mb": 4})
    within["summary"] = summarize(within, model)
    assert within["summary"]["within_accuracy_budget"] and within["summary"]["within_size_budget"]
    assert budget_warnings(within) == []
    over = _manifest(0.90, 0.87, {"accuracy_drop": 1.0, "size_mb": 2})
    over["summary"] = s = summarize(over, model)
    assert s["accuracy_drop_points"] == pytest.approx(3.0) and s["within_accuracy_budget"] is False
    assert s["within_size_budget"] is False and s["size_budget_mib"] == 2
    warnings = budget_warnings(over)
    assert len(warnings) == 2 and "3.00 points" in warnings[0] and "3.0 MiB" in warnings[1]
    no_size = _manifest(0.90, 0.87, {"accuracy_drop": 5.0})
    no_size["summary"] = summarize(no_size, model)
    assert no_size["summary"]["within_size_budget"] is None and budget_warnings(no_size) == []


def _imports(module: str) -> set[str]:
    """The edgebert modules ``module`` imports, deferred imports (inside functions) included."""
    path = REPO / (module.replace(".", "/") + ".py")
    if not path.is_file():
        path = REPO / module.replace(".", "/") / "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return {m for m in found if m.startswith("edgebert.")}


def _reachable(module: str) -> set[str]:
    seen: set[str] = set()
    todo = [module]
    while todo:
        for dep in _imports(todo.pop()):
            path = REPO / dep.replace(".", "/")
            if dep not in seen and (path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()):
                seen.add(dep)
                todo.append(dep)
    return seen


def test_bench_reads_manifests_without_importing_the_pipeline():
    """bench took engine_precision from the pipeline, which imports bench: an import cycle. The manifest
    readers live below both."""
    assert "edgebert.pipeline" not in _reachable("edgebert.bench.variants")
    assert not {m for m in _reachable("edgebert.manifest")
                if m.startswith(("edgebert.bench", "edgebert.pipeline", "edgebert.deploy", "edgebert.cache"))}
