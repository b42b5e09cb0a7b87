"""Rebuild the committed ALBERT test checkpoint ``tests/data/tiny-albert-spm`` (about 0.5 MB).

    pip install -e '.[dev]'                   # sentencepiece and the training side
    python tests/data/build_tiny_albert.py    # reads ../shared/data (SST-2, BANKING77)

The same files as ``albert-base-v2`` on the Hugging Face Hub, at toy size, so that edgebert's ALBERT
paths meet ALBERT's real tokenizer rather than the WordPiece vocabulary of the test fixtures:

- ``spiece.model``: a SentencePiece Unigram model (``sentencepiece`` package) of 1000 pieces trained
  on the lower-cased training texts of SST-2 and BANKING77, with ALBERT's layout: NFKC normalisation
  (``nmt_nfkc``), ``<pad>`` 0, ``<unk>`` 1 and the control symbols ``[CLS]`` 2, ``[SEP]`` 3,
  ``[MASK]`` 4, as in albert-base-v2;
- ``tokenizer.json`` (fast), ``tokenizer_config.json``, ``special_tokens_map.json``: what
  transformers' ``AlbertTokenizerFast``, converted from that ``spiece.model``, saves;
- ``config.json`` + ``model.safetensors``: a randomly initialised ``AlbertForMaskedLM`` (embedding
  16, hidden 32, 6 layers sharing one set of weights, 4 heads, 512 positions), a pre-trained-style
  checkpoint without a classification head, as albert-base-v2 is. Six layers, as MiniLM has, so the
  targets' recipes, which drop 2 layers, run on it; sharing makes them cost no file size.

The training is deterministic (one thread, input in file order, seeded weights), so a rebuild writes
the same files for the same library versions.
"""

from __future__ import annotations

import csv
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "tiny-albert-spm"
SHARED_DATA = HERE.parents[2] / "shared" / "data"
VOCAB_SIZE = 1000


def training_texts(data: Path = SHARED_DATA) -> list[str]:
    """The lower-cased training texts of SST-2 and BANKING77 (ALBERT's tokenizer lower-cases too)."""
    with open(data / "sst2" / "train.tsv", encoding="utf-8", newline="") as f:
        texts = [row["sentence"] for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)]
    with open(data / "banking77" / "train.csv", encoding="utf-8", newline="") as f:
        texts += [row["text"] for row in csv.DictReader(f)]
    return [t.lower().strip() for t in texts if t.strip()]


def train_spiece(texts: list[str], path: Path) -> Path:
    """Train the Unigram model on ``texts`` and write it to ``path``. Fed from memory, so the model
    records no temporary file name (its trainer_spec keeps the input's) and a rebuild is byte-identical."""
    import io

    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_writer=model, model_type="unigram", vocab_size=VOCAB_SIZE,
        normalization_rule_name="nmt_nfkc", character_coverage=1.0,
        pad_id=0, pad_piece="<pad>", unk_id=1, unk_piece="<unk>", bos_id=-1, eos_id=-1,
        control_symbols=["[CLS]", "[SEP]", "[MASK]"],  # ids 2, 3, 4, as in albert-base-v2
        shuffle_input_sentence=False, num_threads=1, minloglevel=2,
    )
    path.write_bytes(model.getvalue())
    return path


def build(out: Path = OUT, data: Path = SHARED_DATA) -> Path:
    import torch
    from transformers import AlbertConfig, AlbertForMaskedLM, AlbertTokenizerFast

    if not (data / "sst2").is_dir() or not (data / "banking77").is_dir():
        raise SystemExit(f"the shared data is not at {data}: see its README (../shared/data)")
    out.mkdir(parents=True, exist_ok=True)
    for old in out.iterdir():
        old.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        model_file = train_spiece(training_texts(data), Path(tmp) / "spiece.model")
        # AlbertTokenizerFast from a spiece.model converts it (transformers' AlbertConverter) and, on
        # save, writes the spiece.model beside tokenizer.json, as albert-base-v2 ships them
        tokenizer = AlbertTokenizerFast(vocab_file=str(model_file), model_max_length=512)
        tokenizer.save_pretrained(out)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in ("<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]")}
    if list(ids.values()) != [0, 1, 2, 3, 4]:
        raise SystemExit(f"special token ids differ from albert-base-v2's 0..4: {ids}")
    config = AlbertConfig(vocab_size=len(tokenizer), embedding_size=16, hidden_size=32, num_hidden_layers=6,
                          num_attention_heads=4, intermediate_size=64, max_position_embeddings=512,
                          pad_token_id=0, bos_token_id=2, eos_token_id=3)
    torch.manual_seed(0)
    AlbertForMaskedLM(config).save_pretrained(out)
    return out


if __name__ == "__main__":
    path = build()
    size = sum(f.stat().st_size for f in path.iterdir())
    print(f"wrote {path} ({size / 1e3:.0f} KB): {', '.join(sorted(f.name for f in path.iterdir()))}")
    sys.exit(0)
