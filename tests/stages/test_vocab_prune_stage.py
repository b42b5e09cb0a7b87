"""The vocab-prune stage: its place in a recipe, and a run whose shipped model and tokenizer hold only the
vocabulary the task uses while answering the task's texts exactly as before."""

import pytest
import yaml

from edgebert.errors import ConfigError
from edgebert.stages.registry import check_order, parse_stage


def test_must_come_before_the_exports():
    with pytest.raises(ConfigError, match="stage 2 'vocab-prune' comes after 'export-onnx'"):
        check_order([parse_stage(s, "r.yaml") for s in ({"kind": "export-onnx"}, {"kind": "vocab-prune"})], "r.yaml")
    with pytest.raises(ConfigError, match="keep_top"):
        parse_stage({"kind": "vocab-prune", "keep_top": -1}, "r.yaml")


def test_pruned_vocabulary_ships_and_answers_as_before(tiny_classifier_dir, tiny_sentiment_dir, tmp_path):
    import numpy as np
    import onnx
    from transformers import AutoTokenizer

    from edgebert.data import load_dataset
    from edgebert.pipeline import compress
    from edgebert.runtime import Classifier

    runs = {}
    for name, stages in (("pruned", [{"kind": "vocab-prune"}, {"kind": "export-onnx", "fuse": False}]),
                         ("whole", [{"kind": "export-onnx", "fuse": False}])):
        recipe = tmp_path / f"{name}.yaml"
        recipe.write_text(yaml.safe_dump({"name": name, "stages": stages}))
        runs[name] = compress(str(tiny_classifier_dir), "cpu", data=str(tiny_sentiment_dir), out=tmp_path / name,
                              recipe=recipe, progress=False, cache=False)
    rec = runs["pruned"].manifest["stages"][0]
    before, after = rec["metrics"]["vocab_size_before"], rec["metrics"]["vocab_size"]
    assert after < before == len(AutoTokenizer.from_pretrained(tiny_classifier_dir))
    assert rec["validation"]["max_abs_logit_diff"] <= 1e-6 and rec["validation"]["id_mismatches"] == 0
    art = runs["pruned"].out
    # the shipped files agree with each other: embedding rows = tokenizer size = vocab.txt lines
    graph = onnx.load(str(art / runs["pruned"].manifest["deploy"]["model"])).graph
    rows = next(i.dims[0] for i in graph.initializer if "word_embeddings" in i.name)
    assert rows == after == len((art / "tokenizer" / "vocab.txt").read_text().splitlines())
    # the task's texts get the same scores from both artifacts
    dev = load_dataset(str(tiny_sentiment_dir)).split("dev")
    pruned, whole = (Classifier.load(runs[k].out).predict_proba(dev.texts) for k in ("pruned", "whole"))
    np.testing.assert_allclose(pruned, whole, atol=1e-5)
