"""The committed ALBERT checkpoint with albert-base-v2's files (tests/data/tiny-albert-spm, built by
tests/data/build_tiny_albert.py): its SentencePiece tokenizer gives the same ids through the
``tokenizers`` file, transformers' slow tokenizer and edgebert's runtime; the model loads."""

from __future__ import annotations

import csv
import json

import pytest

from conftest import REPO, build_runtime_artifact

CHECKPOINT = REPO / "tests" / "data" / "tiny-albert-spm"
#: albert-base-v2's files (its hub repository also holds the older pytorch_model.bin / TF / flax weights)
ALBERT_FILES = {"config.json", "model.safetensors", "spiece.model", "tokenizer.json", "tokenizer_config.json",
                "special_tokens_map.json"}
#: texts that take the tokenizer's less common paths: digits before commas (the slow tokenizer re-splits
#: "9," pieces), accents (stripped), runs of spaces, `` and '' quotes, full-width forms (NFKC), [MASK],
#: characters the vocabulary lacks
EDGE_TEXTS = ["it cost $1,000, or 9,5 euros on 3/4,", "Café  naïve   ``quoted'' résumé", "the [MASK] is here",
              "ＦＵＬＬＷＩＤＴＨ ｔｅｘｔ ①", "emoji 😀 and ß"]


def _real_texts(data, each: int = 300) -> list[str]:
    with open(data / "sst2" / "dev.tsv", encoding="utf-8", newline="") as f:
        sst2 = [r["sentence"] for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)]
    with open(data / "banking77" / "test.csv", encoding="utf-8", newline="") as f:
        banking = [r["text"] for r in csv.DictReader(f)]
    return sst2[:each] + banking[:each]


def test_checkpoint_has_albert_base_v2s_files_and_layout():
    assert {p.name for p in CHECKPOINT.iterdir()} == ALBERT_FILES
    assert sum(p.stat().st_size for p in CHECKPOINT.iterdir()) < 1_000_000
    config = json.loads((CHECKPOINT / "config.json").read_text())
    assert config["model_type"] == "albert"
    tok = json.loads((CHECKPOINT / "tokenizer.json").read_text())
    assert tok["model"]["type"] == "Unigram"
    from tokenizers import Tokenizer

    fast = Tokenizer.from_file(str(CHECKPOINT / "tokenizer.json"))
    assert [fast.token_to_id(t) for t in ("<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]")] == [0, 1, 2, 3, 4]


def test_checkpoint_loads_with_the_auto_classes():
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(CHECKPOINT)
    assert tokenizer.is_fast and type(tokenizer).__name__.startswith("AlbertTokenizer")  # ...Fast before 5.0
    model = AutoModelForSequenceClassification.from_pretrained(CHECKPOINT, num_labels=3).eval()
    assert type(model).__name__ == "AlbertForSequenceClassification"
    with torch.no_grad():
        logits = model(**tokenizer(["where is my card?", "a fine film"], padding=True, return_tensors="pt")).logits
    assert logits.shape == (2, 3) and torch.isfinite(logits).all()


def _runtime_ids(artifact, texts: list[str]) -> list[list[int]]:
    """Token ids as edgebert's runtime feeds them to the model (Classifier._encode_sorted), in input order."""
    from edgebert.runtime import Classifier

    clf = Classifier.load(artifact)
    batches, order = clf._encode_sorted(texts, None)
    rows = []
    for feeds, n in batches:
        for r in range(n):
            length = int(feeds["attention_mask"][r].sum())
            rows.append(feeds["input_ids"][r, :length].tolist())
    ids: list[list[int]] = [[] for _ in texts]
    for position, i in enumerate(order):
        ids[int(i)] = rows[position]
    return ids


def test_sentencepiece_ids_agree_between_tokenizer_json_autotokenizer_and_the_runtime(shared_data, tmp_path):
    from tokenizers import Tokenizer
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    texts = _real_texts(shared_data) + EDGE_TEXTS
    fast = [e.ids for e in Tokenizer.from_file(str(CHECKPOINT / "tokenizer.json")).encode_batch(texts)]
    auto = AutoTokenizer.from_pretrained(CHECKPOINT)(texts)["input_ids"]  # what edgebert trains with

    # the runtime reads an artifact: a (random) classifier of the checkpoint, exported to ONNX
    model_dir = tmp_path / "clf"
    labels = ["negative", "positive"]
    AutoModelForSequenceClassification.from_pretrained(
        CHECKPOINT, num_labels=2, id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)},
    ).save_pretrained(model_dir)
    AutoTokenizer.from_pretrained(CHECKPOINT).save_pretrained(model_dir)
    artifact = build_runtime_artifact(model_dir, tmp_path / "art", max_length=512)
    runtime = _runtime_ids(artifact, texts)

    assert max(len(x) for x in fast) < 512  # nothing truncated: the whole texts are compared
    for name, ids in (("AutoTokenizer", auto), ("runtime", runtime)):
        differ = [t for t, a, b in zip(texts, fast, ids) if a != b]
        assert not differ, f"{name} differs from tokenizer.json on {len(differ)} texts, e.g. {differ[:3]}"
    # ids are real pieces, not a wall of <unk>
    assert sum(x.count(1) for x in fast) < 10


def test_sentencepiece_ids_agree_between_tokenizer_json_and_the_slow_tokenizer(shared_data):
    """transformers' slow AlbertTokenizer runs spiece.model through the sentencepiece library, with
    ALBERT's own pre-processing in Python: the reference the fast tokenizer.json was converted from."""
    from tokenizers import Tokenizer
    from transformers import AlbertTokenizer, PreTrainedTokenizerFast

    pytest.importorskip("sentencepiece", reason="the slow AlbertTokenizer needs sentencepiece (pip install -e '.[dev]')")
    if issubclass(AlbertTokenizer, PreTrainedTokenizerFast):
        pytest.skip("transformers 5 has no slow (sentencepiece) AlbertTokenizer any more")
    texts = _real_texts(shared_data) + EDGE_TEXTS
    fast = [e.ids for e in Tokenizer.from_file(str(CHECKPOINT / "tokenizer.json")).encode_batch(texts)]
    slow = AlbertTokenizer(vocab_file=str(CHECKPOINT / "spiece.model"))(texts)["input_ids"]
    differ = [t for t, a, b in zip(texts, fast, slow) if a != b]
    assert not differ, f"the slow AlbertTokenizer differs from tokenizer.json on {len(differ)} texts, e.g. {differ[:3]}"
