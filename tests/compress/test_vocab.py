"""edgebert.compress.vocab: vocabulary pruning keeps the model's outputs on its texts and a consistent tokenizer.

Models are random tiny BERT / ALBERT classifiers (no training needed: pruning must leave any weights'
outputs unchanged). The tokenizer puts placeholders before the special tokens, as BERT's vocabulary
does ([PAD], [unused0..98], [UNK], ...), so pruning moves the special ids.
"""

from __future__ import annotations

import copy
import json
import shutil
import string
from pathlib import Path

import pytest
from conftest import NEGATIVE, POSITIVE, WORDS, build_wordpiece_tokenizer, tiny_albert_config, tiny_bert_config

from edgebert.compress.vocab import (
    VocabPruneReport,
    prune_vocabulary,
    tokenization_changes,
    validate_pruned_vocabulary,
)
from edgebert.errors import CompressionError, ConfigError, ExportValidationError, UnsupportedArchitectureError

SPECIAL = ["[PAD]", "[unused0]", "[unused1]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused2]"]
TEXTS = POSITIVE + NEGATIVE
UNSEEN = ["this movie is fun", "zebra 42 love?"]


def _vocab() -> list[str]:
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    tokens = SPECIAL + WORDS + ["zeb", "##ra"] + chars + ["##" + c for c in string.ascii_lowercase + string.digits]
    return list(dict.fromkeys(tokens))


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from transformers import AutoTokenizer

    d = tmp_path_factory.mktemp("vocab-tokenizer")
    build_wordpiece_tokenizer(_vocab()).save_pretrained(d)
    return AutoTokenizer.from_pretrained(d)


def _classifier(arch: str, vocab_size: int, num_labels: int = 3):
    import torch
    from transformers import AlbertForSequenceClassification, BertForSequenceClassification

    torch.manual_seed(0)
    if arch == "bert":
        return BertForSequenceClassification(tiny_bert_config(vocab_size, num_labels=num_labels)).eval()
    # ALBERT's config names bos / eos ids ([CLS], [SEP] of its own vocabulary): those of this one
    return AlbertForSequenceClassification(tiny_albert_config(vocab_size, num_labels=num_labels, bos_token_id=4,
                                                              eos_token_id=5)).eval()


@pytest.fixture(scope="module", params=["bert", "albert"])
def pruned(request, tokenizer):
    model = _classifier(request.param, len(tokenizer))
    new_model, new_tokenizer, report = prune_vocabulary(model, tokenizer, TEXTS)
    return model, new_model, new_tokenizer, report


def _expected_ids(tokenizer, report: VocabPruneReport, text, **kwargs) -> list[int]:
    old_to_new = {old: new for new, old in enumerate(report.kept_old_ids)}
    return [old_to_new[i] for i in tokenizer(text, **kwargs)["input_ids"]]


def test_logits_identical_on_training_texts(pruned, tokenizer):
    model, new_model, new_tokenizer, report = pruned
    assert report.vocab_size_after < report.vocab_size_before == len(tokenizer)
    check = validate_pruned_vocabulary(model, tokenizer, new_model, new_tokenizer, report, TEXTS, batch_size=7)
    assert check.max_abs_logit_diff <= 1e-6 and check.id_mismatches == 0 and check.texts == len(TEXTS)
    # the table really shrank, and the config says so (a reload builds the table from it)
    emb = new_model.get_input_embeddings()
    assert emb.num_embeddings == new_model.config.vocab_size == len(new_tokenizer) == report.vocab_size_after
    assert model.get_input_embeddings().num_embeddings == len(tokenizer)  # the original is left alone


def test_kept_tokens(pruned, tokenizer):
    _, _, new_tokenizer, report = pruned
    kept = set(new_tokenizer.get_vocab())
    used = {t for text in TEXTS for t in tokenizer.tokenize(text)}
    chars = {c for c in string.ascii_lowercase + string.digits + string.punctuation}
    assert used <= kept and chars <= kept and {"##" + c for c in string.ascii_lowercase} <= kept
    assert {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"} <= kept
    assert not kept & {"[unused0]", "[unused1]", "[unused2]", "refund", "zeb", "##ra"}
    assert report.kept_special + report.kept_from_texts + report.kept_characters == report.vocab_size_after
    assert report.kept_top == 0


def test_special_ids_move_consistently(pruned):
    model, new_model, new_tokenizer, report = pruned
    # [UNK] was id 3 behind two placeholders, [CLS] 4, [SEP] 5, [MASK] 6: they close up
    assert report.special_ids["[UNK]"] == [3, 1] and report.special_ids["[MASK]"] == [6, 4]
    assert (new_tokenizer.unk_token_id, new_tokenizer.cls_token_id, new_tokenizer.sep_token_id,
            new_tokenizer.mask_token_id, new_tokenizer.pad_token_id) == (1, 2, 3, 4, 0)
    assert new_model.config.pad_token_id == new_tokenizer.pad_token_id
    if new_model.config.model_type == "albert":
        assert (new_model.config.bos_token_id, new_model.config.eos_token_id) == (2, 3)
    enc = new_tokenizer("love it", "awful")
    assert enc["input_ids"][0] == 2 and enc["input_ids"][-1] == 3 and enc["input_ids"].count(3) == 2
    # each kept row is the original row of the same token
    old, new = model.get_input_embeddings().weight, new_model.get_input_embeddings().weight
    for token in ("[UNK]", "[SEP]", "love", "z", "##z"):
        assert new[new_tokenizer.convert_tokens_to_ids(token)].equal(old[_vocab().index(token)])


def test_unseen_word_tokenizes_into_pieces_not_unk(pruned, tokenizer):
    _, _, new_tokenizer, _ = pruned
    # "zebra" was one-or-two pieces of the full vocabulary (zeb ##ra); pruned, it is spelled out
    assert tokenizer.tokenize("zebra") == ["zeb", "##ra"]
    assert new_tokenizer.tokenize("zebra") == ["z", "##e", "##b", "##r", "##a"]
    changes = tokenization_changes(tokenizer, new_tokenizer, UNSEEN)
    # words: this movie is fun | zebra 42 love ? -> only "zebra" changes ("42" stays 4 ##2)
    assert (changes.texts, changes.words, changes.words_changed, changes.texts_changed) == (2, 8, 1, 1)
    assert changes.words_unk_before == changes.words_unk_after == 0
    # a character the vocabulary never had is [UNK] before and after, counted as such
    changes = tokenization_changes(tokenizer, new_tokenizer, ["café €5"])
    assert changes.words_unk_before == changes.words_unk_after == 1


def test_tokenizer_round_trip(pruned, tokenizer, tmp_path):
    from tokenizers import Tokenizer
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from edgebert.runtime.wordpiece import WordPieceTokenizer, load_vocab, write_vocab_txt

    model, new_model, new_tokenizer, report = pruned
    new_tokenizer.save_pretrained(tmp_path)
    # this generic fast class writes no vocab.txt (transformers 4's BertTokenizerFast does); the
    # artifact's tokenizer/ gets one from tokenizer.json, as here
    write_vocab_txt(tmp_path)
    new_model.save_pretrained(tmp_path)
    text = "I love this film, it is fun!"
    expected = _expected_ids(tokenizer, report, text)
    assert new_tokenizer(text)["input_ids"] == expected
    reloaded_tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    backend = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    assert reloaded_tokenizer(text)["input_ids"] == backend.encode(text).ids == expected
    # a word the texts never had: spelled out alike by every loader
    spelled = new_tokenizer("zebra")["input_ids"]
    assert reloaded_tokenizer("zebra")["input_ids"] == backend.encode("zebra").ids == spelled
    # vocab.txt is the same vocabulary (apps and the runtime's WordPiece read it), in id order
    vocab_txt = (tmp_path / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert vocab_txt == [t for t, _ in sorted(new_tokenizer.get_vocab().items(), key=lambda kv: kv[1])]
    assert load_vocab(tmp_path) == new_tokenizer.get_vocab()
    assert WordPieceTokenizer.from_folder(tmp_path).encode(text)["input_ids"] == expected
    config = json.loads((tmp_path / "tokenizer_config.json").read_text(encoding="utf-8"))
    decoder = {v["content"]: int(k) for k, v in config.get("added_tokens_decoder", {}).items()}
    assert all(decoder[t] == new_tokenizer.convert_tokens_to_ids(t) for t in decoder)
    # the saved model reloads with the smaller table and gives the same logits
    import torch

    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    batch = new_tokenizer(TEXTS[:4], padding=True, return_tensors="pt")
    with torch.inference_mode():
        assert torch.equal(reloaded(**batch).logits, new_model(**batch).logits)
    # and edgebert's own loader (what later stages use) takes the folder as it is
    from edgebert import models

    loaded = models.load(tmp_path, label_names=["a", "b", "c"])
    assert loaded.model.get_input_embeddings().num_embeddings == len(loaded.tokenizer) == report.vocab_size_after


def test_keep_top_takes_vocabulary_order_and_skips_placeholders(tokenizer):
    model = _classifier("bert", len(tokenizer))
    _, new_tokenizer, report = prune_vocabulary(model, tokenizer, ["love it"], keep_top=3)
    # after the specials come the WORDS in order: the a an i my me ...; "a" and "i" are single characters,
    # kept anyway, so the three are "the", "an", "my"; the [unused*] placeholders before them never count
    assert report.kept_top == 3
    kept = set(new_tokenizer.get_vocab())
    assert {"the", "an", "my"} <= kept and "me" not in kept and not any(t.startswith("[unused") for t in kept)


def test_sentence_pairs(tokenizer):
    model = _classifier("bert", len(tokenizer))
    pairs = [("where is my card", "i love it"), ("my order", "awful film")]
    new_model, new_tokenizer, report = prune_vocabulary(model, tokenizer, pairs)
    assert "card" in new_tokenizer.get_vocab() and "awful" in new_tokenizer.get_vocab()
    check = validate_pruned_vocabulary(model, tokenizer, new_model, new_tokenizer, report, pairs)
    assert check.max_abs_logit_diff == 0.0 and check.id_mismatches == 0


def test_validation_reports_accuracy_and_catches_a_changed_row(tokenizer):
    import torch

    model = _classifier("bert", len(tokenizer), num_labels=2)
    new_model, new_tokenizer, report = prune_vocabulary(model, tokenizer, TEXTS)
    labels = [1] * len(POSITIVE) + [0] * len(NEGATIVE)
    check = validate_pruned_vocabulary(model, tokenizer, new_model, new_tokenizer, report, TEXTS,
                                       unseen_texts=TEXTS, unseen_labels=labels)
    assert check.accuracy_before == check.accuracy_after is not None
    with torch.no_grad():
        # one coordinate (a shift of the whole row would vanish in the LayerNorm)
        new_model.get_input_embeddings().weight[new_tokenizer.convert_tokens_to_ids("love"), 0] += 1.0
    with pytest.raises(ExportValidationError, match="logit difference"):
        validate_pruned_vocabulary(model, tokenizer, new_model, new_tokenizer, report, TEXTS)


def test_real_minilm_tokenizer(minilm_dir, tmp_path):
    from transformers import AutoTokenizer

    from edgebert.runtime.wordpiece import WordPieceTokenizer, write_vocab_txt

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir)
    model = _classifier("bert", len(tokenizer))  # hidden 32: cheap, though the table has all 30,522 rows
    texts = ["a stirring , funny and finally transporting re-imagining of beauty and the beast",
             "What can I do if my card still hasn't arrived after 2 weeks?"]
    new_model, new_tokenizer, report = prune_vocabulary(model, tokenizer, texts)
    # specials, the texts' pieces, and the 997 + 997 single characters and ## forms (some in both groups)
    assert report.vocab_size_before == 30522 and 2000 < report.vocab_size_after < 2100
    assert report.special_ids["[UNK]"] == [100, 1] and report.special_ids["[PAD]"] == [0, 0]
    check = validate_pruned_vocabulary(model, tokenizer, new_model, new_tokenizer, report, texts)
    assert check.max_abs_logit_diff == 0.0
    new_tokenizer.save_pretrained(tmp_path)
    write_vocab_txt(tmp_path)  # checks transformers 4's vocab.txt against tokenizer.json; 5 writes none
    saved = json.loads((tmp_path / "tokenizer.json").read_text(encoding="utf-8"))
    assert saved["padding"]["pad_id"] == 0 and saved["post_processor"]["special_tokens"]["[SEP]"]["ids"] == [3]
    unseen = "Unbelievably, the refund never came"
    assert "[UNK]" not in new_tokenizer.tokenize(unseen)
    # a tokenizer made from vocab.txt alone (what the apps and the slow tokenizer read) agrees
    only_txt = tmp_path / "vocab-only"
    only_txt.mkdir()
    for name in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        if (tmp_path / name).is_file():
            shutil.copy(tmp_path / name, only_txt / name)
    expected = new_tokenizer(unseen)["input_ids"]
    assert AutoTokenizer.from_pretrained(only_txt)(unseen)["input_ids"] == expected
    assert WordPieceTokenizer.from_folder(tmp_path).encode(unseen)["input_ids"] == expected


# -- bad input ----------------------------------------------------------------------------------

def test_bad_arguments(tokenizer):
    model = _classifier("bert", len(tokenizer))
    with pytest.raises(ConfigError, match="keep_top"):
        prune_vocabulary(model, tokenizer, TEXTS, keep_top=-1)
    with pytest.raises(ConfigError, match="No texts"):
        prune_vocabulary(model, tokenizer, [])
    with pytest.raises(ConfigError, match="strings or"):
        prune_vocabulary(model, tokenizer, [1, 2])
    small = _classifier("bert", 20)
    with pytest.raises(ConfigError, match="larger than the model's embedding table"):
        prune_vocabulary(small, tokenizer, TEXTS)


def test_refuses_tokens_added_outside_the_vocabulary(tokenizer):
    added = copy.deepcopy(tokenizer)
    added.add_tokens(["<emoji>"])
    with pytest.raises(ConfigError, match=r"\['<emoji>'\] were added .*not support added tokens"):
        prune_vocabulary(_classifier("bert", len(added)), added, TEXTS)


def test_refuses_a_slow_tokenizer(tokenizer, tmp_path):
    from transformers import BertTokenizer

    (tmp_path / "vocab.txt").write_text("\n".join(_vocab()) + "\n", encoding="utf-8")
    slow = BertTokenizer(str(tmp_path / "vocab.txt"))
    if slow.is_fast:
        pytest.skip("transformers 5 has no slow (Python) BERT tokenizer")
    with pytest.raises(ConfigError, match="fast tokenizer"):
        prune_vocabulary(_classifier("bert", len(tokenizer)), slow, TEXTS)


def test_refuses_byte_level_bpe():
    from tokenizers import Tokenizer
    from tokenizers.models import BPE
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(BPE({"<unk>": 0, "<pad>": 1, "a": 2, "b": 3, "ab": 4}, [("a", "b")], unk_token="<unk>"))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, unk_token="<unk>", pad_token="<pad>")
    with pytest.raises(ConfigError, match="BPE .*not supported yet") as caught:
        prune_vocabulary(_classifier("albert", 5), tokenizer, ["ab"])
    # the type the vocab-prune stage skips on (anything else it raises)
    from edgebert.errors import UnsupportedTokenizerError

    assert isinstance(caught.value, UnsupportedTokenizerError)


SPM_CHECKPOINT = Path(__file__).resolve().parents[1] / "data" / "tiny-albert-spm"
SPM_UNSEEN = ["zebras quickly jumped over my account", "Unbelievable!! 42 refunds?", "où est ma carte"]


@pytest.fixture(scope="module")
def spm_pruned(tmp_path_factory):
    """The committed ALBERT checkpoint (albert-base-v2's files, a SentencePiece Unigram model) pruned to the tiny
    task's texts and saved."""
    from transformers import AlbertForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(SPM_CHECKPOINT)
    import torch

    torch.manual_seed(0)
    model = AlbertForSequenceClassification.from_pretrained(SPM_CHECKPOINT, num_labels=2).eval()
    from edgebert.models import save_tokenizer

    new_model, new_tokenizer, report = prune_vocabulary(model, tokenizer, TEXTS)
    out = tmp_path_factory.mktemp("spm-pruned")
    save_tokenizer(new_tokenizer, out)  # as the vocab-prune stage saves it (spiece.model too, under transformers 5)
    return model, tokenizer, new_model, new_tokenizer, report, out


def test_sentencepiece_keeps_logits_and_shrinks(spm_pruned):
    model, tokenizer, new_model, new_tokenizer, report, _ = spm_pruned
    assert report.sentencepiece and report.vocab_size_after < report.vocab_size_before / 2
    assert new_model.get_input_embeddings().num_embeddings == report.vocab_size_after
    check = validate_pruned_vocabulary(model, tokenizer, new_model, new_tokenizer, report, TEXTS,
                                       unseen_texts=SPM_UNSEEN)
    assert check.max_abs_logit_diff == 0.0 and check.id_mismatches == 0
    # an unseen word spells out in kept pieces (single characters at worst), never a new <unk>
    assert check.unseen.words_changed > 0 and check.unseen.words_unk_after == check.unseen.words_unk_before


def test_sentencepiece_files_agree_after_pruning(spm_pruned):
    """tokenizer.json (tokenizers), spiece.model (sentencepiece) and the transformers slow tokenizer give the
    same ids, on the kept texts and on unseen ones, and the kept texts' ids are the old ones renumbered."""
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2
    from tokenizers import Tokenizer
    from transformers import AlbertTokenizer

    from transformers import PreTrainedTokenizerFast

    _model, tokenizer, _new_model, _new_tokenizer, report, out = spm_pruned
    assert {"spiece.model", "tokenizer.json", "tokenizer_config.json"} <= {p.name for p in out.iterdir()}
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString((out / "spiece.model").read_bytes())
    tj = json.loads((out / "tokenizer.json").read_text())
    assert [p.piece for p in proto.pieces] == [piece for piece, _ in tj["model"]["vocab"]]
    assert proto.trainer_spec.vocab_size == report.vocab_size_after
    if issubclass(AlbertTokenizer, PreTrainedTokenizerFast):
        pytest.skip("transformers 5 has no slow (sentencepiece) AlbertTokenizer any more")
    fast = Tokenizer.from_file(str(out / "tokenizer.json"))
    slow = AlbertTokenizer.from_pretrained(out)
    sp = spm.SentencePieceProcessor(model_file=str(out / "spiece.model"))
    old_to_new = {old: new for new, old in enumerate(report.kept_old_ids)}
    for text in TEXTS + SPM_UNSEEN:
        ids = fast.encode(text).ids
        assert ids == slow(text)["input_ids"]
        assert ids[1:-1] == sp.encode(slow.preprocess_text(text))  # lower-cased, accents stripped, as ALBERT does
        if text in TEXTS:
            assert ids == [old_to_new[i] for i in tokenizer(text)["input_ids"]]


def test_sentencepiece_keep_top_takes_the_highest_scores(spm_pruned):
    _model, tokenizer, *_ = spm_pruned
    from edgebert.compress.vocab import kept_token_ids

    base, _ = kept_token_ids(tokenizer, TEXTS)
    more, counts = kept_token_ids(tokenizer, TEXTS, keep_top=5)
    extra = sorted(set(more) - set(base))
    assert counts["top"] == 5 and len(extra) == 5
    scores = [score for _, score in json.loads(tokenizer.backend_tokenizer.to_str())["model"]["vocab"]]
    left = [scores[i] for i in range(len(scores)) if i not in set(more)]
    assert min(scores[i] for i in extra) >= max(left)


def test_refuses_a_model_with_a_vocabulary_head(tokenizer):
    import torch
    from transformers import BertForMaskedLM

    torch.manual_seed(0)
    mlm = BertForMaskedLM(tiny_bert_config(len(tokenizer)))
    with pytest.raises(CompressionError, match="output layer over the vocabulary"):
        prune_vocabulary(mlm, tokenizer, TEXTS)


def test_refuses_an_unknown_architecture(tokenizer):
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    model = DistilBertForSequenceClassification(DistilBertConfig(vocab_size=len(tokenizer), dim=32, n_layers=1,
                                                                 n_heads=2, hidden_dim=64))
    with pytest.raises(UnsupportedArchitectureError):
        prune_vocabulary(model, tokenizer, TEXTS)
