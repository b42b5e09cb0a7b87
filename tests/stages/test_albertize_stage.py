"""The albertize stage: its checks before any work, and the albert recipe's shape (albertize, distill,
export, int8) on the tiny BERT classifier, ending in an ALBERT int8 file that holds one copy of the
shared layer."""

import json
from pathlib import Path

import pytest
import yaml

from edgebert.errors import ConfigError
from edgebert.stages.albertize import AlbertizeConfig, _check_albertize
from edgebert.stages.registry import check_order, parse_stage


def test_checks_before_work():
    with pytest.raises(ConfigError, match="converts a BERT-family model"):
        _check_albertize(AlbertizeConfig(), {"model_type": "albert", "num_hidden_layers": 12})
    with pytest.raises(ConfigError, match="does not divide the model's 6 layers; valid: 1, 2, 3, 6"):
        _check_albertize(AlbertizeConfig(num_hidden_groups=4), {"model_type": "bert", "num_hidden_layers": 6})
    shape = {"model_type": "bert", "num_hidden_layers": 6}
    _check_albertize(AlbertizeConfig(num_hidden_groups=2), shape)
    assert shape["model_type"] == "albert"  # the export's fusion check sees an ALBERT
    with pytest.raises(ConfigError, match="put it first"):
        check_order([parse_stage(s, "r.yaml") for s in ({"kind": "prune", "layers": 1}, {"kind": "albertize"},
                                                        {"kind": "export-onnx"})], "r.yaml")
    # distill needs a smaller student: albertize gives it one
    check_order([parse_stage(s, "r.yaml") for s in ({"kind": "albertize"}, {"kind": "distill"},
                                                    {"kind": "export-onnx"})], "r.yaml")


#: the albert recipe's shape, sized for the tiny BERT (hidden 32; one quick distillation epoch)
RECIPE = [{"kind": "albertize", "embedding_size": 16, "num_hidden_groups": 1},
          {"kind": "distill", "epochs": 1, "augment": 0, "batch_size": 8, "learning_rate": 3e-3,
           "head_learning_rate": 3e-3, "patience": 0, "select": "kl", "hidden_weight": 1.0},
          {"kind": "export-onnx", "fuse": True}, {"kind": "quantize", "mode": "int8-dynamic", "max_accuracy_drop": 100.0}]


def test_the_albert_recipe_has_this_shape():
    recipe = yaml.safe_load((Path(__file__).resolve().parents[2] / "recipes" / "albert.yaml").read_text())
    assert [s["kind"] for s in recipe["stages"]] == ["finetune"] + [s["kind"] for s in RECIPE]


def test_albert_recipe_on_a_tiny_bert(request, tiny_classifier_dir, tmp_path):
    import onnx
    from transformers import AutoConfig

    from conftest import run_stage
    from edgebert.runtime import Classifier

    conv, _files, out = run_stage(request, tmp_path, "albertize", RECIPE)
    manifest = json.loads((out / "manifest.json").read_text())
    by_kind = {s["kind"]: s for s in manifest["stages"]}
    assert conv["metrics"]["parameters"] < conv["metrics"]["parameters_before"]
    assert conv["metrics"]["albertize"]["num_hidden_groups"] == 1 and "WordPiece" in conv["metrics"]["albertize"]["tokenizer"]
    student = out / by_kind["distill"]["state"]["model"]
    config = AutoConfig.from_pretrained(student)
    assert config.model_type == "albert" and config.embedding_size == 16 and config.num_hidden_groups == 1
    # the distilled student's teacher is the fine-tuned BERT
    assert by_kind["distill"]["state"]["teacher"] == str(tiny_classifier_dir)
    # the shipped int8 ONNX: one copy of the shared layer's weight matrices (a layer has 6 of them)
    shipped = out / manifest["deploy"]["model"]
    graph = onnx.load(str(shipped)).graph
    big = [i for i in graph.initializer if len(i.dims) == 2 and min(i.dims) >= 32]
    assert len(big) <= 6 + 1, [(i.name, list(i.dims)) for i in big]  # + the pooler
    assert Classifier.load(out).predict(["a great film"])[0].label in ("positive", "negative")


def test_albert_recipe_with_two_layer_groups(request, tmp_path):
    """num_hidden_groups 2 (less sharing): distilled, exported, fused and quantized, the int8 file holds
    one copy of each group's weight matrices, two in all."""
    import onnx

    from conftest import run_stage
    from edgebert.runtime import Classifier

    recipe = [{**RECIPE[0], "num_hidden_groups": 2}, *RECIPE[1:]]
    _conv, _files, out = run_stage(request, tmp_path, "albertize", recipe)
    manifest = json.loads((out / "manifest.json").read_text())
    graph = onnx.load(str(out / manifest["deploy"]["model"])).graph
    big = [i for i in graph.initializer if len(i.dims) == 2 and min(i.dims) >= 32]
    assert 2 * 6 <= len(big) <= 2 * 6 + 1, [(i.name, list(i.dims)) for i in big]
    assert Classifier.load(out).predict(["a great film"])[0].label in ("positive", "negative")
