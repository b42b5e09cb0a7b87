"""edgebert.export: ONNX export of tiny BERT / ALBERT classifiers and validation against PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

from edgebert.errors import DataError

# Several lengths, including one past the tracing example's length, and repeated words.
TEXTS = ["hi", "i love this movie", "this is awful", "where is my card and can i change my address",
         "great great great film, i love it and you will love it too, it is fun and not boring at all",
         "help", "what are the open hours for the new account payment desk please"]


@pytest.fixture(scope="module", params=["bert", "albert"])
def loaded(request, tiny_bert_dir, tiny_albert_dir):
    from edgebert import models

    folder = tiny_bert_dir if request.param == "bert" else tiny_albert_dir
    return models.load(folder, label_names=["negative", "neutral", "positive"])


def test_export_and_validate(loaded, tmp_path):
    import onnx

    from edgebert.export import export_onnx, validate_onnx

    loaded.model.train()  # export must not leave the model in eval mode (nor the reverse)
    path = export_onnx(loaded.model, loaded.tokenizer, tmp_path / "sub" / "model.onnx")
    assert path == tmp_path / "sub" / "model.onnx" and path.is_file()
    assert loaded.model.training

    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == list(loaded.spec.input_names)
    assert [o.name for o in graph.output] == ["logits"]
    for inp in graph.input:  # batch and sequence axes are symbolic
        dims = inp.type.tensor_type.shape.dim
        assert [d.dim_param for d in dims] == ["batch", "sequence"]
    assert graph.output[0].type.tensor_type.shape.dim[0].dim_param == "batch"

    report = validate_onnx(loaded.model, loaded.tokenizer, path, TEXTS)
    assert report["n"] == len(TEXTS)
    assert report["max_abs_logit_diff"] < 1e-4
    assert report["label_agreement"] == 1.0
    assert report["min_tokens"] < report["max_tokens"]
    assert loaded.model.training


def test_validate_needs_texts(loaded, tmp_path):
    from edgebert.export import export_onnx, validate_onnx

    path = export_onnx(loaded.model, loaded.tokenizer, tmp_path / "m.onnx")
    with pytest.raises(DataError, match="at least one text"):
        validate_onnx(loaded.model, loaded.tokenizer, path, [])


def test_onnx_feeds_fill_missing_inputs_with_zeros():
    import torch

    from edgebert.export import onnx_feeds

    enc = {"input_ids": torch.tensor([[2, 7, 3]]), "attention_mask": np.ones((1, 3), dtype=np.int32)}
    feeds = onnx_feeds(["input_ids", "attention_mask", "token_type_ids"], enc)
    assert list(feeds) == ["input_ids", "attention_mask", "token_type_ids"]
    assert all(v.dtype == np.int64 and v.shape == (1, 3) for v in feeds.values())
    assert feeds["token_type_ids"].sum() == 0 and feeds["input_ids"].tolist() == [[2, 7, 3]]
