"""Text-in models: the tokenizer merged into the ONNX graph, in front of the classifier.

:func:`make_text_in` writes a graph that takes ``text`` (a 1-D string tensor, one text per row) and
returns the classifier's logits (batch, labels): an app passes a string, with no tokenizer port.
The tokenizer runs as ONNX Runtime Extensions operators (package ``onnxruntime-extensions``, domain
``ai.onnx.contrib``), built from the model's own Hugging Face tokenizer folder:

* WordPiece (BERT, MiniLM; ``tokenizer.json`` model ``WordPiece`` with a ``BertNormalizer``): the
  ``BertTokenizer`` operator (vocab.txt content, lower-casing, accent stripping as the HF tokenizer:
  ``strip_accents`` unset follows ``lowercase``), which adds [CLS] ... [SEP] and truncates to
  ``max_length`` tokens as the HF tokenizer does;
* SentencePiece (ALBERT; ``Unigram`` with ``spiece.model`` in the folder): the
  ``SentencepieceTokenizer`` operator on the ``spiece.model`` proto, after the HF normalizer's steps
  that the proto does not hold (the ``\u0060\u0060`` / ``''`` quotes, accents removed, lower-casing),
  then truncated to ``max_length - 2`` pieces and put between [CLS] and [SEP] with standard operators.

Both operators tokenize one text per call, so the graph runs them in a ``Loop`` over the rows, pads
each row to ``max_length`` and cuts the batch to its longest row (batch, sequence): batches of any
size, with the attention mask 0 and token type 0 on the padding. Sentence pairs are refused
(ConfigError): ``BertTokenizer`` does not truncate a pair, so a long pair would differ from the HF
tokenizer's longest-first truncation.

:func:`validate_text_in` checks a text-in model as every export is checked: on real texts, token ids
identical to the HF tokenizer's and labels identical to the token-in model's.
"""

from __future__ import annotations

import json
import os
import unicodedata
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgebert.errors import ConfigError, ExportError, ExportValidationError, ModelNotFoundError
from edgebert.runtime.textin import (
    CONTRIB_DOMAIN,
    META_KIND,
    META_MAX_LENGTH,
    TEXT_INPUT,
    extensions_library,
)

__all__ = ["TOKEN_INPUTS", "make_text_in", "tokenizer_graph", "tokenizer_kind", "validate_text_in"]

#: the classifier inputs the tokenizer graph fills, (batch, sequence) int64 each
TOKEN_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
#: why a sentence-pair model is not made text-in (the text-in stage says it before any stage runs)
PAIR_REFUSAL = ("Text-in models take single texts: onnxruntime-extensions' BertTokenizer does not truncate sentence "
                "pairs as the Hugging Face tokenizer does (longest first), so a long pair would be classified on "
                "other tokens than in training. Export this pair model token-in (the app tokenizes; see "
                "docs/tokenization.md).")
_WORDPIECE, _SENTENCEPIECE = "wordpiece", "sentencepiece"


# -- reading the Hugging Face tokenizer folder ----------------------------------------------------

def _tokenizer_json(tokenizer_dir: Path) -> dict[str, Any]:
    path = tokenizer_dir / "tokenizer.json"
    if not path.is_file():
        raise ModelNotFoundError(f"No tokenizer.json in '{tokenizer_dir}': a text-in model is built from the model's "
                                 "Hugging Face fast tokenizer. Save one with: AutoTokenizer.from_pretrained(MODEL)"
                                 ".save_pretrained(FOLDER)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelNotFoundError(f"Cannot read '{path}': {exc}") from exc


def tokenizer_kind(tokenizer_dir: str | os.PathLike) -> str:
    """``"wordpiece"`` or ``"sentencepiece"``: the in-graph tokenizer a tokenizer folder maps to
    (ConfigError for any other tokenizer, e.g. byte-level BPE)."""
    model = _tokenizer_json(Path(tokenizer_dir)).get("model") or {}
    kind = {"WordPiece": _WORDPIECE, "Unigram": _SENTENCEPIECE}.get(model.get("type"))
    if kind is None:
        raise ConfigError(f"Text-in models support WordPiece (BERT, MiniLM) and SentencePiece (ALBERT) tokenizers; "
                          f"'{tokenizer_dir}' holds a {model.get('type') or 'unknown'} tokenizer. Export token-in "
                          "instead (the app tokenizes): leave the text-in option off.")
    return kind


def _normalizers(spec: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The normalizer steps of a tokenizer.json (a Sequence flattened)."""
    if not spec:
        return []
    if spec.get("type") == "Sequence":
        return [step for s in spec.get("normalizers", []) for step in _normalizers(s)]
    return [spec]


def _special_ids(tok: dict[str, Any], tokenizer_dir: Path) -> tuple[int, int]:
    """([CLS] id, [SEP] id) of the single-text template ([CLS] $A [SEP])."""
    post = tok.get("post_processor") or {}
    if post.get("type") == "TemplateProcessing":
        single = post.get("single") or []
        names = [p["SpecialToken"]["id"] if "SpecialToken" in p else "$A" for p in single]
        if len(names) == 3 and names[1] == "$A":
            special = post.get("special_tokens") or {}
            return int(special[names[0]]["ids"][0]), int(special[names[2]]["ids"][0])
    if post.get("type") == "BertProcessing":
        return int(post["cls"][1]), int(post["sep"][1])
    raise ConfigError(f"The tokenizer of '{tokenizer_dir}' does not wrap a text as [CLS] text [SEP] (its "
                      f"post-processor is {post.get('type') or 'absent'}); text-in models build that template.")


# -- the per-text tokenizer subgraphs -------------------------------------------------------------

def _wordpiece_nodes(tok: dict[str, Any], tokenizer_dir: Path, text: str, max_length: int, helper) -> list:
    """BertTokenizer on ``text`` (one string) -> ``ids`` and ``types`` (n,) int64, [CLS]/[SEP] included."""
    model = tok["model"]
    norm = next((s for s in _normalizers(tok.get("normalizer")) if s.get("type") == "BertNormalizer"), None)
    if norm is None or (tok.get("pre_tokenizer") or {}).get("type") != "BertPreTokenizer":
        raise ConfigError(f"The WordPiece tokenizer of '{tokenizer_dir}' is not BERT's (BertNormalizer + "
                          "BertPreTokenizer), which is what the in-graph BertTokenizer reproduces.")
    lowercase = bool(norm.get("lowercase", True))
    # HF: strip_accents unset (null) follows lowercase, as in the original BERT; the operator's own
    # default is 0 and onnxruntime-extensions' converter passes it only when it is set
    strip = norm.get("strip_accents")
    strip_accents = lowercase if strip is None else bool(strip)
    vocab = sorted(model["vocab"].items(), key=lambda kv: kv[1])
    if [i for _, i in vocab] != list(range(len(vocab))):
        raise ConfigError(f"The vocabulary of '{tokenizer_dir}' has gaps in its ids; the in-graph tokenizer reads "
                          "ids as line numbers of vocab.txt.")
    cls_id, sep_id = _special_ids(tok, tokenizer_dir)
    tokens = [t for t, _ in vocab]
    return [helper.make_node(
        "BertTokenizer", [text], ["ids", "types", "mask"], domain=CONTRIB_DOMAIN, name="tokenize",
        vocab_file="\n".join(tokens), do_lower_case=int(lowercase), strip_accents=int(strip_accents),
        tokenize_chinese_chars=int(bool(norm.get("handle_chinese_chars", True))),
        unk_token=model.get("unk_token", "[UNK]"), cls_token=tokens[cls_id], sep_token=tokens[sep_id],
        suffix_indicator=model.get("continuing_subword_prefix", "##"), max_length=int(max_length))]


def _accent_table() -> dict[str, str]:
    """Latin letters whose accents the HF normalizer (NFKD, then combining marks dropped) removes:
    {replacement: characters}, over Latin-1 Supplement and Latin Extended-A/B (U+00C0..U+024F)."""
    table: dict[str, str] = {}
    for code in range(0xC0, 0x250):
        ch = chr(code)
        plain = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
        if plain != ch:
            table[plain] = table.get(plain, "") + ch
    return table


def _trailing_space_piece(tokenizer_dir: Path) -> int | None:
    """The id of the piece the tokenizer.json appends for trailing whitespace, or None when it appends none
    (asked of the tokenizer itself, with the ``tokenizers`` library)."""
    from tokenizers import Tokenizer

    tk = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
    plain, spaced = (tk.encode(t, add_special_tokens=False).ids for t in ("a", "a "))
    if len(spaced) == len(plain) + 1 and spaced[:-1] == plain:
        return int(spaced[-1])
    return None


def _sentencepiece_nodes(tok: dict[str, Any], tokenizer_dir: Path, text: str, max_length: int, helper,
                         numpy_helper) -> list:
    """Normalize as HF, SentencepieceTokenizer, truncate, [CLS] ... [SEP] -> ``ids``, ``types`` (n,) int64."""
    spm = tokenizer_dir / "spiece.model"
    if not spm.is_file():
        raise ModelNotFoundError(f"No spiece.model in '{tokenizer_dir}': the in-graph SentencePiece tokenizer runs "
                                 "the model's SentencePiece proto. Save the tokenizer with it: "
                                 "AutoTokenizer.from_pretrained(MODEL).save_pretrained(FOLDER)")
    steps = _normalizers(tok.get("normalizer"))
    cls_id, sep_id = _special_ids(tok, tokenizer_dir)
    nodes, inits, current = [], [], text

    def const(name, value, dtype):
        inits.append(numpy_helper.from_array(np.array(value, dtype=dtype), name))
        return name

    def replace(pattern: str, rewrite: str):
        nonlocal current
        n = len(nodes)
        out = f"norm{n}"
        nodes.append(helper.make_node("StringRegexReplace", [current, const(f"pat{n}", [pattern], object),
                                                             const(f"rew{n}", [rewrite], object)],
                                      [out], domain=CONTRIB_DOMAIN, name=f"normalize{n}"))
        current = out

    for step in steps:
        kind = step.get("type")
        if kind == "Replace":
            pattern = step["pattern"].get("String")
            if pattern is None:  # a regex: RE2 syntax matches the HF (Oniguruma) one for plain patterns
                pattern = step["pattern"]["Regex"]
            else:
                pattern = "".join("\\" + c if not c.isalnum() else c for c in pattern)
            replace(pattern, step["content"])
        elif kind == "StripAccents":
            for plain, chars in sorted(_accent_table().items()):
                replace(f"[{chars}]", plain)
            replace("\\p{Mn}", "")  # combining marks typed as such
        elif kind == "Lowercase":
            out = f"norm{len(nodes)}"
            nodes.append(helper.make_node("StringLower", [current], [out], domain=CONTRIB_DOMAIN,
                                          name=f"lowercase{len(nodes)}"))
            current = out
        # NFKD / Precompiled (the proto's own nmt_nfkc) / Strip: done by the SentencePiece operator
    # The HF fast tokenizer (Metaspace pre-tokenizer) turns trailing whitespace into one more "▁" piece,
    # which the SentencePiece proto's own normalizer strips: put it back where the tokenizer.json does.
    trailing = _trailing_space_piece(tokenizer_dir)
    if trailing is not None:
        nodes += [
            helper.make_node("StringRegexReplace", [current, const("ws_pat", ["[\\s\\p{Z}]+$"], object),
                                                    const("ws_rew", [""], object)], ["rstripped"],
                             domain=CONTRIB_DOMAIN, name="rstrip"),
            helper.make_node("StringLength", [current], ["len_text"], domain=CONTRIB_DOMAIN, name="text_length"),
            helper.make_node("StringLength", ["rstripped"], ["len_stripped"], domain=CONTRIB_DOMAIN,
                             name="stripped_length"),
            helper.make_node("Greater", ["len_text", "len_stripped"], ["ends_space"], name="ends_with_space"),
            helper.make_node("Cast", ["ends_space"], ["n_extra"], to=7, name="extra_count"),
            helper.make_node("Slice", [const("space_piece", [trailing], np.int64), const("zero_sp", [0], np.int64),
                                       "n_extra"], ["extra"], name="extra_piece"),
        ]
    nodes.append(helper.make_node(
        "SentencepieceTokenizer",
        [current, const("nbest_size", [0], np.int64), const("alpha", [0.0], np.float32),
         const("add_bos", [False], np.bool_), const("add_eos", [False], np.bool_),
         const("reverse", [False], np.bool_), const("fairseq", [False], np.bool_)],
        ["pieces32", "instance_indices", "token_indices"], domain=CONTRIB_DOMAIN, name="tokenize",
        model=spm.read_bytes()))
    nodes += [
        helper.make_node("Cast", ["pieces32"], ["pieces_sp"], to=7, name="pieces_int64"),
        helper.make_node("Concat", ["pieces_sp", "extra"], ["pieces"], axis=0, name="trailing_piece")
        if trailing is not None else helper.make_node("Identity", ["pieces_sp"], ["pieces"], name="no_trailing"),
        helper.make_node("Slice", ["pieces", const("zero", [0], np.int64),
                                   const("keep", [max_length - 2], np.int64)], ["kept"], name="truncate"),
        helper.make_node("Concat", [const("cls", [cls_id], np.int64), "kept", const("sep", [sep_id], np.int64)],
                         ["ids"], axis=0, name="add_special"),
        helper.make_node("Shape", ["ids"], ["n_ids"], name="ids_shape"),
        helper.make_node("ConstantOfShape", ["n_ids"], ["types"], name="types",
                         value=numpy_helper.from_array(np.zeros(1, dtype=np.int64))),
    ]
    return nodes, inits


def tokenizer_graph(tokenizer_dir: str | os.PathLike, *, max_length: int, opset: int):
    """The pre-processing model: ``text`` (batch,) strings -> input_ids, attention_mask, token_type_ids
    (batch, sequence) int64, sequence = the batch's longest row (at most ``max_length``)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    tokenizer_dir = Path(tokenizer_dir)
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 3:
        raise ConfigError(f"max_length must be an integer >= 3 ([CLS], a token and [SEP]), got {max_length!r}.")
    kind = tokenizer_kind(tokenizer_dir)
    tok = _tokenizer_json(tokenizer_dir)
    pad_id = int(((tok.get("padding") or {}).get("pad_id")) or 0)

    # Loop body: one row. i -> text[i] (1,) -> ids, types (n,) -> padded to max_length.
    body_inits = [numpy_helper.from_array(np.array([0], dtype=np.int64), "zero1"),
                  numpy_helper.from_array(np.array([max_length], dtype=np.int64), "max_len")]
    body = [helper.make_node("Unsqueeze", ["i", "zero1"], ["i1"], name="row_index"),
            helper.make_node("Gather", [TEXT_INPUT, "i1"], ["row_text"], axis=0, name="row")]
    if kind == _WORDPIECE:
        body += _wordpiece_nodes(tok, tokenizer_dir, "row_text", max_length, helper)
    else:
        nodes, inits = _sentencepiece_nodes(tok, tokenizer_dir, "row_text", max_length, helper, numpy_helper)
        body += nodes
        body_inits += inits
    body += [
        helper.make_node("Shape", ["ids"], ["n"], name="row_length"),
        helper.make_node("Sub", ["max_len", "n"], ["pad_n"], name="pad_length"),
        helper.make_node("Concat", ["zero1", "pad_n"], ["pads"], axis=0, name="pads"),
        helper.make_node("Pad", ["ids", "pads", "pad_value"], ["row_ids"], name="pad_ids"),
        helper.make_node("Pad", ["types", "pads"], ["row_types"], name="pad_types"),
        helper.make_node("ConstantOfShape", ["n"], ["ones"], name="ones",
                         value=numpy_helper.from_array(np.ones(1, dtype=np.int64))),
        helper.make_node("Pad", ["ones", "pads"], ["row_mask"], name="pad_mask"),
        helper.make_node("Identity", ["cond"], ["cond_out"], name="keep_going"),
    ]
    body_inits.append(numpy_helper.from_array(np.array(pad_id, dtype=np.int64), "pad_value"))
    i64 = TensorProto.INT64
    loop_body = helper.make_graph(
        body, "tokenize_row",
        [helper.make_tensor_value_info("i", i64, []), helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("row_ids", i64, [max_length]),
         helper.make_tensor_value_info("row_mask", i64, [max_length]),
         helper.make_tensor_value_info("row_types", i64, [max_length]),
         helper.make_tensor_value_info("n", i64, [1])],
        body_inits)
    top_inits = [numpy_helper.from_array(np.array(True), "true"),
                 numpy_helper.from_array(np.array([0], dtype=np.int64), "zero"),
                 numpy_helper.from_array(np.array([1], dtype=np.int64), "one"),
                 numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1")]
    nodes = [
        helper.make_node("Shape", [TEXT_INPUT], ["batch"], name="batch_size"),
        helper.make_node("Squeeze", ["batch", "zero"], ["batch0"], name="batch_scalar"),
        helper.make_node("Loop", ["batch0", "true"], ["all_ids", "all_mask", "all_types", "lengths"],
                         body=loop_body, name="tokenize_rows"),
        # the batch's longest row: the padding to max_length beyond it is cut off
        helper.make_node("ReduceMax", ["lengths"], ["longest2"], keepdims=1, name="longest"),
        helper.make_node("Reshape", ["longest2", "one"], ["longest"], name="longest_1d"),
    ] + [helper.make_node("Slice", [f"all_{src}", "zero", "longest", "axis1"], [name], name=f"cut_{src}")
         for src, name in (("ids", "input_ids"), ("mask", "attention_mask"), ("types", "token_type_ids"))]
    graph = helper.make_graph(
        nodes, "tokenizer", [helper.make_tensor_value_info(TEXT_INPUT, TensorProto.STRING, ["batch"])],
        [helper.make_tensor_value_info(n, i64, ["batch", "sequence"]) for n in TOKEN_INPUTS], top_inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset),
                                                    helper.make_opsetid(CONTRIB_DOMAIN, 1)])
    model.metadata_props.add(key=META_KIND, value=kind)
    model.metadata_props.add(key=META_MAX_LENGTH, value=str(max_length))
    return model


# -- the merged model -----------------------------------------------------------------------------

def _check_out_path(out_path: Path, onnx_path: Path) -> None:
    if out_path.suffix != ".onnx":
        raise ConfigError(f"The text-in model is an ONNX file: give out_path a .onnx name, got '{out_path}'.")
    if out_path.resolve() == onnx_path.resolve():
        raise ConfigError(f"out_path '{out_path}' is the token-in model itself: write the text-in model beside it "
                          "(e.g. model-text.onnx), so the token-in path stays for apps that tokenize.")


def make_text_in(onnx_path: str | os.PathLike, tokenizer_dir: str | os.PathLike, out_path: str | os.PathLike, *,
                 max_length: int, text_pair: bool = False) -> dict[str, Any]:
    """Write ``out_path``: the classifier ``onnx_path`` (token ids in, logits out; fp32 or int8) with
    the tokenizer of ``tokenizer_dir`` merged in front, so it takes ``text`` (batch,) strings.

    ``max_length``: the token cap, [CLS] and [SEP] included (the cap the classifier was trained and
    validated at); it is fixed in the graph. ``text_pair``: the classifier takes sentence pairs; refused
    (ConfigError), see the module doc. Returns ``{"path", "kind", "max_length", "bytes",
    "token_in_bytes"}``; the file is written only once the merged graph passes the ONNX checker.
    """
    import onnx
    from onnx import compose

    from edgebert.export.fuse import model_file_bytes

    onnx_path, out_path, tokenizer_dir = Path(onnx_path), Path(out_path), Path(tokenizer_dir)
    if text_pair:
        raise ConfigError(PAIR_REFUSAL)
    if not onnx_path.is_file():
        raise ModelNotFoundError(f"'{onnx_path}' is not a file. Export the classifier first: "
                                 "edgebert.export.export_onnx(model, tokenizer, PATH)")
    _check_out_path(out_path, onnx_path)
    clf = onnx.load(str(onnx_path))
    names = [i.name for i in clf.graph.input]
    unknown = [n for n in names if n not in TOKEN_INPUTS]
    if unknown:
        raise ConfigError(f"'{onnx_path}' takes input(s) {', '.join(unknown)}; the in-graph tokenizer gives "
                          f"{', '.join(TOKEN_INPUTS)}.")
    opset = next((o.version for o in clf.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None or opset < 13:
        raise ConfigError(f"'{onnx_path}' uses ONNX opset {opset}; text-in models need opset 13 or newer "
                          "(export with edgebert.export.export_onnx, opset 17).")
    pre = tokenizer_graph(tokenizer_dir, max_length=max_length, opset=opset)
    # the classifier reads only some of the tokenizer's outputs, maybe as int32 (a graph exported so)
    wanted = {i.name: i.type.tensor_type.elem_type for i in clf.graph.input}
    keep = [o for o in pre.graph.output if o.name in wanted]
    for o in keep:
        if wanted[o.name] != onnx.TensorProto.INT64:
            src = o.name + "_int64"
            for node in pre.graph.node:
                node.output[:] = [src if x == o.name else x for x in node.output]
            pre.graph.node.append(onnx.helper.make_node("Cast", [src], [o.name], to=wanted[o.name],
                                                        name=f"cast_{o.name}"))
            o.type.tensor_type.elem_type = wanted[o.name]
    del pre.graph.output[:]
    pre.graph.output.extend(keep)
    pre.ir_version = clf.ir_version
    pre = compose.add_prefix(pre, "textin/", rename_inputs=False, rename_outputs=False)
    extra = [o for o in clf.opset_import if o.domain not in ("", "ai.onnx", CONTRIB_DOMAIN)]
    if extra:
        pre.opset_import.extend(extra)  # merge_models wants the same opset imports on both sides
    clf.opset_import.append(onnx.helper.make_opsetid(CONTRIB_DOMAIN, 1))
    try:
        merged = compose.merge_models(pre, clf, io_map=[(n, n) for n in names], doc_string=clf.doc_string)
    except Exception as exc:
        raise ExportError(f"Cannot merge the tokenizer into '{onnx_path}': {exc}") from exc
    del merged.metadata_props[:]
    merged.metadata_props.extend(clf.metadata_props)
    merged.metadata_props.extend(pre.metadata_props)
    merged.producer_name = clf.producer_name or "edgebert"
    try:
        onnx.checker.check_model(merged)
    except Exception as exc:
        raise ExportError(f"The text-in graph of '{onnx_path}' does not pass the ONNX checker: {exc}") from exc
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.tmp")
    try:
        onnx.save(merged, str(tmp))
        os.replace(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)
    return {"path": str(out_path), "kind": tokenizer_kind(tokenizer_dir), "max_length": max_length,
            "bytes": model_file_bytes(out_path), "token_in_bytes": model_file_bytes(onnx_path)}


# -- validation -----------------------------------------------------------------------------------

def _session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.register_custom_ops_library(extensions_library())
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _row_length(tokens: dict[str, np.ndarray], row: int) -> int:
    """Tokens in a row of the graph's (padded) batch: its attention mask, else its non-pad ids."""
    if "attention_mask" in tokens:
        return int(tokens["attention_mask"][row].sum())
    return int(np.count_nonzero(tokens["input_ids"][row]))  # pad id 0 (BERT's [PAD])


def validate_text_in(text_in_path: str | os.PathLike, token_in_path: str | os.PathLike,
                     tokenizer_dir: str | os.PathLike, texts: Sequence[str], *, batch_size: int = 32,
                     max_examples: int = 5, strict: bool = True) -> dict[str, Any]:
    """Check a text-in model against its token-in source on real ``texts``.

    Token ids: the tokens the text-in graph feeds its classifier (input_ids, attention_mask,
    token_type_ids, read from the graph itself) are, per text, those of the Hugging Face tokenizer
    of ``tokenizer_dir`` truncated to the graph's max_length. Labels: the text-in model's arg-max
    equals the token-in model's on the HF tokens, batch by batch (padding included). Returns::

        {"texts", "max_length", "token_mismatches" (texts whose tokens differ),
         "label_mismatches", "max_abs_logit_diff", "examples": [{"text", "hf", "graph"}, ...]}

    ``strict``: raise ExportValidationError on any mismatch (else only report it).
    """
    import onnx
    from transformers import AutoTokenizer

    from edgebert.export.onnx import onnx_feeds

    text_in_path, token_in_path = Path(text_in_path), Path(token_in_path)
    texts = list(texts)
    if not texts:
        raise ConfigError("validate_text_in needs at least one text.")

    model = onnx.load(str(text_in_path))
    meta = {p.key: p.value for p in model.metadata_props}
    if META_MAX_LENGTH not in meta:
        raise ConfigError(f"'{text_in_path}' is not a text-in model written by make_text_in (no {META_MAX_LENGTH} "
                          "metadata).")
    max_length = int(meta[META_MAX_LENGTH])
    # The model itself, with its tokenizer's outputs (the classifier's inputs) made graph outputs too:
    # the tokens checked are those the classifier reads, from the very graph that ships.
    probe_names = [n for n in TOKEN_INPUTS if any(n in node.input for node in model.graph.node)]
    logits_name = model.graph.output[0].name
    model.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n) for n in probe_names)
    probe_path = text_in_path.with_name(f".{text_in_path.stem}.probe.onnx")
    onnx.save(model, str(probe_path))
    del model
    try:
        probe = _session(probe_path)
    finally:
        probe_path.unlink(missing_ok=True)
    token_in = _session(token_in_path)
    token_names = [i.name for i in token_in.get_inputs()]
    hf = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    token_mismatches, label_mismatches, diff, examples = 0, 0, 0.0, []
    for start in range(0, len(texts), batch_size):
        batch = texts[start:start + batch_size]
        strings = np.array(batch, dtype=object)
        ref = hf(batch, truncation=True, max_length=max_length, padding="longest", return_tensors="np")
        outputs = probe.run([logits_name] + probe_names, {TEXT_INPUT: strings})
        have = outputs[0]
        got = dict(zip(probe_names, (np.asarray(x, dtype=np.int64) for x in outputs[1:])))
        for r in range(len(batch)):
            n = int(ref["attention_mask"][r].sum())
            same = got["input_ids"].shape[1] >= n and all(
                np.array_equal(got[k][r, :n], ref[k][r, :n]) for k in probe_names if k in ref) \
                and _row_length(got, r) == n
            if not same:
                token_mismatches += 1
                if len(examples) < max_examples:
                    m = _row_length(got, r)
                    examples.append({"text": batch[r], "hf": hf.convert_ids_to_tokens(ref["input_ids"][r, :n]),
                                     "graph": hf.convert_ids_to_tokens(got["input_ids"][r, :m])})
        want = token_in.run(None, onnx_feeds(token_names, dict(ref)))[0]
        label_mismatches += int((want.argmax(-1) != have.argmax(-1)).sum())
        diff = max(diff, float(np.abs(want.astype(np.float32) - have.astype(np.float32)).max()))
    report = {"texts": len(texts), "max_length": max_length, "token_mismatches": token_mismatches,
              "label_mismatches": label_mismatches, "max_abs_logit_diff": diff, "examples": examples}
    if strict and (token_mismatches or label_mismatches):
        raise ExportValidationError(
            f"The text-in model '{text_in_path.name}' disagrees with the Hugging Face tokenizer / token-in model on "
            f"{len(texts)} texts: {token_mismatches} tokenized differently, {label_mismatches} labelled differently"
            + (f"; first: {examples[0]['text']!r} -> {examples[0]['graph']} (HF {examples[0]['hf']})" if examples
               else "") + ". Export token-in for this model (the app tokenizes).")
    return report
