"""Planning a run: every problem of a recipe reported at once, one line per stage."""

import pytest
import yaml
from click.testing import CliRunner

from conftest import assert_clean_error
from edgebert.cli.main import main
from edgebert.errors import ConfigError
from edgebert.plan import plan

TWO_BAD = [{"kind": "prune", "heads": 1.5, "colour": "red"}, {"kind": "export-onnx"},
           {"kind": "quantize", "mode": "int9"}]


def _recipe(tmp_path, stages):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"name": "bad", "stages": stages}), encoding="utf-8")
    return path


def test_errors_in_two_stages_are_both_reported(tmp_path):
    with pytest.raises(ConfigError) as err:
        plan("cpu", _recipe(tmp_path, TWO_BAD))
    header, *lines = str(err.value).splitlines()
    assert header.endswith("bad.yaml: 2 stages are invalid:")
    assert len(lines) == 2
    assert "stage 1 (prune): heads: Input should be less than 1; colour: unknown key" in lines[0]
    assert "stage 3 (quantize): mode: Input should be" in lines[1]


def test_unknown_and_invalid_stages_together(tmp_path):
    with pytest.raises(ConfigError) as err:
        plan("cpu", _recipe(tmp_path, [{"kind": "prnue"}, {"kind": "export-onnx", "opset": 3}]))
    lines = str(err.value).splitlines()[1:]
    assert "stage 1: Unknown stage 'prnue'" in lines[0] and "stage 2 (export-onnx): opset:" in lines[1]


def test_one_error_keeps_its_message(tmp_path):
    with pytest.raises(ConfigError, match=r"Invalid configuration in .*bad.yaml: stage 1:\n  heads"):
        plan("cpu", _recipe(tmp_path, TWO_BAD[:2]))


def test_cli_reports_both_and_exits_2(tmp_path):
    result = CliRunner().invoke(main, ["compress", "--recipe", str(_recipe(tmp_path, TWO_BAD)),
                                       "--out", str(tmp_path / "o")])
    assert_clean_error(result, "stage 1 (prune)", "stage 3 (quantize)")
    assert result.exit_code == 2 and not (tmp_path / "o").exists()
