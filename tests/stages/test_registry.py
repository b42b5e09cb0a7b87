"""The registry: stages found by importing the package's modules, order rules checked from declarations."""

import ast
from pathlib import Path
from typing import Literal

import pytest

from edgebert.config import StageConfig
from edgebert.errors import ConfigError
from edgebert.stages import registry
from edgebert.stages.registry import (
    STAGES,
    check_order,
    forbids,
    parse_stage,
    register_stage,
    requires,
    stage_kinds,
)

STAGES_DIR = Path(registry.__file__).parent
TESTS_DIR = Path(__file__).parent


def test_every_stage_kind_has_its_test_file():
    """tests/stages/test_<kind>_stage.py for every registered kind (and none for a kind that is gone), each
    running its kind through the pipeline on a RECIPE."""
    expected = {f"test_{kind.replace('-', '_')}_stage.py" for kind in stage_kinds()}
    assert {p.name for p in TESTS_DIR.glob("test_*_stage.py")} == expected
    for name in expected:
        text = (TESTS_DIR / name).read_text()
        assert "\nRECIPE = " in text and "run_stage(" in text, name


@pytest.mark.parametrize("kind", stage_kinds())
def test_every_stage_config_round_trips_json_and_describes_its_fields(kind):
    cls = STAGES[kind].config
    cfg = cls()
    assert cls.model_validate_json(cfg.model_dump_json()) == cfg
    missing = [n for n, f in cls.model_fields.items() if n != "kind" and not f.description]
    assert not missing, f"{kind}: fields without description: {missing}"


def test_registry_names_no_kind_and_imports_no_stage_module():
    tree = ast.parse((STAGES_DIR / "registry.py").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in imported if m and m.startswith("edgebert.stages")}
    kinds = set(registry.stage_kinds())
    docstrings = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr)}
    strings = {n.value for n in ast.walk(tree)
               if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings}
    assert not [(k, s) for s in strings for k in kinds if k in s]  # in code; docstrings give examples


def test_stage_modules_do_not_import_targets_or_plan_at_the_top():
    """stages -> targets is allowed (lower layer); targets and plan never import back into a cycle."""
    for name in ("targets.py", "config.py"):
        tree = ast.parse((STAGES_DIR.parent / name).read_text())
        modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not {m for m in modules if m and (m.startswith("edgebert.stages") or m == "edgebert.plan")}, name


class EchoConfig(StageConfig):
    kind: Literal["echo-test"] = "echo-test"


def test_a_new_stage_gets_order_checks_from_its_declarations(monkeypatch):
    monkeypatch.setattr(registry, "STAGES", dict(STAGES))  # registered for this test only
    register_stage(EchoConfig, order=65, reads="onnx", changes="export", produces=("export", "echo"),
                   rules=(requires("onnx:fp32", "{here} needs a plain ONNX model"),
                          forbids("onnx:quantized", "{here} after the quantize of stage {at}")),
                   summary="test")(lambda art, cfg, ctx: None)
    assert "echo-test" in registry.stage_kinds()
    stages = [parse_stage(s, "r") for s in ({"kind": "export-onnx", "fuse": False}, {"kind": "echo-test"})]
    check_order(stages, "r")  # and it counts as an export
    with pytest.raises(ConfigError, match="stage 2 'echo-test' needs a plain ONNX model"):
        check_order([parse_stage(s, "r") for s in ({"kind": "export-onnx"}, {"kind": "echo-test"})], "r")
    with pytest.raises(ConfigError, match="stage 3 'echo-test' after the quantize of stage 2"):
        check_order([parse_stage(s, "r") for s in ({"kind": "export-onnx", "fuse": False}, {"kind": "quantize"},
                                                   {"kind": "echo-test"})], "r")
    with pytest.raises(ConfigError, match=r"export-onnx, echo-test, export-torchscript, export-mobile"):
        check_order([parse_stage({"kind": "finetune"}, "r")], "r")
