"""The vocab-prune stage: its place in a recipe, and a run whose shipped model and tokenizer hold only the
vocabulary the task uses while answering the task's texts exactly as before."""

import pytest

from edgebert.errors import ConfigError
from edgebert.stages.registry import check_order, parse_stage


def test_must_come_before_the_exports():
    with pytest.raises(ConfigError, match="stage 2 'vocab-prune' comes after 'export-onnx'"):
        check_order([parse_stage(s, "r.yaml") for s in ({"kind": "export-onnx"}, {"kind": "vocab-prune"})], "r.yaml")
    with pytest.raises(ConfigError, match="keep_top"):
        parse_stage({"kind": "vocab-prune", "keep_top": -1}, "r.yaml")


RECIPE = [{"kind": "vocab-prune"}, {"kind": "export-onnx", "fuse": False}]


def test_pruned_vocabulary_ships_and_answers_as_before(request, tiny_classifier_dir, tiny_sentiment_dir, tmp_path):
    import json

    import numpy as np
    import onnx
    from transformers import AutoTokenizer

    from conftest import run_recipe, run_stage
    from edgebert.data import load_dataset
    from edgebert.runtime import Classifier

    (tmp_path / "pruned").mkdir()
    (tmp_path / "whole").mkdir()
    rec, _files, art = run_stage(request, tmp_path / "pruned", "vocab-prune", RECIPE)
    whole = run_recipe(tmp_path / "whole", tiny_classifier_dir, tiny_sentiment_dir, RECIPE[1:]).out
    before, after = rec["metrics"]["vocab_size_before"], rec["metrics"]["vocab_size"]
    assert after < before == len(AutoTokenizer.from_pretrained(tiny_classifier_dir))
    assert rec["validation"]["max_abs_logit_diff"] <= 1e-6 and rec["validation"]["id_mismatches"] == 0
    # the shipped files agree with each other: embedding rows = tokenizer size = vocab.txt lines
    manifest = json.loads((art / "manifest.json").read_text())
    graph = onnx.load(str(art / manifest["deploy"]["model"])).graph
    rows = next(i.dims[0] for i in graph.initializer if "word_embeddings" in i.name)
    assert rows == after == len((art / "tokenizer" / "vocab.txt").read_text().splitlines())
    # the task's texts get the same scores from both artifacts
    dev = load_dataset(str(tiny_sentiment_dir)).split("dev")
    pruned, full = (Classifier.load(a).predict_proba(dev.texts) for a in (art, whole))
    np.testing.assert_allclose(pruned, full, atol=1e-5)


def test_sentencepiece_albert_pruned_then_text_in(tiny_sentiment_dir, tmp_path):
    """The committed ALBERT checkpoint (spiece.model + tokenizer.json, as albert-base-v2 ships): vocab-prune keeps the
    logits, ships a pruned spiece.model, and the text-in graph built from that spiece.model tokenizes the task's
    texts exactly as the pruned tokenizer does (the text-in stage validates ids and labels)."""
    import json

    import transformers
    import yaml
    from sentencepiece import sentencepiece_model_pb2

    if int(transformers.__version__.split(".")[0]) >= 5:  # as tests/export/test_export_textin.py
        pytest.skip("transformers 5 cannot convert a spiece.model into a fast tokenizer here (it yields [UNK]s)")

    from conftest import REPO
    from edgebert.pipeline import compress

    recipe = tmp_path / "spm-vocab.yaml"
    recipe.write_text(yaml.safe_dump({"name": "spm-vocab", "stages": [
        {"kind": "finetune", "epochs": 1}, {"kind": "vocab-prune"}, {"kind": "export-onnx", "fuse": False},
        {"kind": "text-in"}]}))
    result = compress(str(REPO / "tests" / "data" / "tiny-albert-spm"), "cpu", data=str(tiny_sentiment_dir),
                      out=tmp_path / "art", recipe=recipe, progress=False)
    rec = next(s for s in result.manifest["stages"] if s["kind"] == "vocab-prune")
    assert not rec.get("skipped") and rec["metrics"]["vocab_size"] < rec["metrics"]["vocab_size_before"] == 1000
    assert rec["validation"]["max_abs_logit_diff"] <= 1e-6 and rec["validation"]["id_mismatches"] == 0
    tok = tmp_path / "art" / "tokenizer"
    assert not (tok / "vocab.txt").exists()
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString((tok / "spiece.model").read_bytes())
    assert len(proto.pieces) == rec["metrics"]["vocab_size"] == len(json.loads((tok / "tokenizer.json").read_text())
                                                                    ["model"]["vocab"])
    text_in = next(s for s in result.manifest["stages"] if s["kind"] == "text-in")
    v = text_in["validation"]
    assert v["texts"] > 0 and v["token_mismatches"] == 0 and v["label_mismatches"] == 0
