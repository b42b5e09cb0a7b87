"""edgebert.runtime.wordpiece against the Hugging Face fast tokenizer of the same folder.

The reference is what the Android and iOS samples port, so every comparison asserts identical
input_ids, attention_mask and token_type_ids: on all SST-2 dev sentences and BANKING77 test
texts, on hand-picked edge cases at several max_lengths, and character by character over every
code point whose Unicode category is the same in Unicode 3.2 and in Python's database.
"""

from __future__ import annotations

import ast
import csv
import json
import re
import shutil
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

from edgebert.errors import ConfigError, DataError, ModelLoadError, ModelNotFoundError
from edgebert.runtime import wordpiece as wp
from edgebert.runtime.wordpiece import WordPieceTokenizer

FOLDERS = ["minilm_dir", "tiny_tokenizer_dir"]
KOTLIN_SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "android" / "EdgebertClassifier.kt"
#: Android's org.json, as packaged by Debian (libandroid-json-java)
ANDROID_JSON_JAR = Path("/usr/share/java/com.android.json.jar")

EDGE_CASES = [
    "",
    "   \t\n  ",
    "Hello, World!",
    "Café Déjà vu, naïve façade; Ångström, ÀÉÎÕÜ, crème brûlée",
    "e\u0301 versus \u00e9, a\u0308 versus \u00e4",  # combining vs precomposed accents
    "STRASSE Straße ẞ ǅ ﬁnance",
    "ΟΔΟΣ Σίσυφος",  # final sigma: lower-cased one code point at a time
    "İstanbul ISTANBUL ıi",
    "我爱北京天安门, 今天天气很好!",
    "こんにちは世界 カタカナ 안녕하세요",
    "\U00020000\U00020001 \U0002b820\U0002b821 \U0002b920\U0002b921",  # CJK extension B, E
    "I ❤️ it 😀👍🏽 👨‍👩‍👧 🥹🫠",
    "a\x00b\x07c\ufffdd\u200be\u00adf\x7fg\x1bh",  # NUL, BEL, U+FFFD, ZWSP, soft hyphen, DEL, ESC
    "tab\there\nnew\r\nline\u00a0nbsp\u3000ideo\u2028ls\u2029ps\u0085nel\x0bvt\x0cff\u200athin",
    "private\ue000use \U000f0000 noncharacters\ufdd0\uffff unassigned\u0378",
    "a" * 99 + " " + "b" * 100 + " " + "c" * 101,
    "supercalifragilisticexpialidocious" * 3 + " antidisestablishmentarianism",
    "!!!???... --- ((([[[{{{}}}]]]))) ,,,;;;:::",
    "$100 + 5% = <3 ^_^ `code` | ~x @home #tag & * \\ /",
    "«quoted» „German“ ‘single’ — dash – en … ellipsis ¿qué? ¡sí!",
    "https://example.com/a?b=c&d=e#frag me@example.org",
    "3.14159 1,000,000 2nd 21st 100km/h 12:30pm",
    "[CLS] hello [SEP] world [MASK] [UNK] [PAD]",
    "[SEP][SEP]x[sep] [Sep] [[SEP]] [CLS",
    "ＡＢＣ１２３ｆｕｌｌｗｉｄｔｈ 𝐁𝐄𝐑𝐓 𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "مرحبا بالعالم، كَيْفَ حالك؟ שָׁלוֹם עוֹלָם",
    "नमस्ते दुनिया। สวัสดีชาวโลก ជំរាបសួរ",
    "unaffable unbelievable reprogrammed tokenization WordPiece",
    "I can't believe it's not butter!!! Don't you think?",
    "my card got declined AGAIN at the ATM :(",
]
MAX_LENGTHS = [2, 3, 5, 8, 16, 128, 512]


def _hf(folder: Path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    assert tok.is_fast, "the reference is compared with the fast (Rust) tokenizer"
    return tok


def _hf_encode(hf, texts: list[str], max_length: int) -> list[dict[str, list[int]]]:
    out = hf(texts, truncation=True, max_length=max_length)
    keys = ("input_ids", "attention_mask", "token_type_ids")
    return [{k: out[k][i] for k in keys} for i in range(len(texts))]


def _assert_same(ours: WordPieceTokenizer, hf, texts: list[str], max_length: int) -> None:
    expected = _hf_encode(hf, texts, max_length)
    got = [ours.encode(t, max_length) for t in texts]
    bad = [(t, e, g) for t, e, g in zip(texts, expected, got) if e != g]
    if bad:
        text, exp, got = bad[0]
        raise AssertionError(
            f"{len(bad)}/{len(texts)} texts differ at max_length={max_length}; first: {text!r}\n"
            f"  hf:   {hf.convert_ids_to_tokens(exp['input_ids'])}\n"
            f"  ours: {hf.convert_ids_to_tokens(got['input_ids'])}\n  ({exp} != {got})"
        )


@pytest.fixture(scope="module", params=FOLDERS)
def pair(request):
    folder = request.getfixturevalue(request.param)
    return WordPieceTokenizer.from_folder(folder), _hf(folder)


@pytest.fixture(scope="module")
def real_texts(shared_data) -> list[str]:
    """Every SST-2 dev sentence and every BANKING77 test text."""
    with open(shared_data / "sst2" / "dev.tsv", encoding="utf-8", newline="") as f:
        sst2 = [row["sentence"] for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)]
    with open(shared_data / "banking77" / "test.csv", encoding="utf-8", newline="") as f:
        banking = [row["text"] for row in csv.DictReader(f)]
    assert len(sst2) == 872 and len(banking) == 3080, (len(sst2), len(banking))
    return sst2 + banking


def test_real_sentences_match_hf(pair, real_texts):
    ours, hf = pair
    _assert_same(ours, hf, real_texts, 128)


def test_real_sentences_truncated_match_hf(minilm_dir, real_texts):
    ours, hf = WordPieceTokenizer.from_folder(minilm_dir), _hf(minilm_dir)
    _assert_same(ours, hf, real_texts, 12)
    # real text does reach the truncation path
    assert sum(len(ours.encode(t, 12)["input_ids"]) == 12 for t in real_texts) > len(real_texts) // 2


@pytest.mark.parametrize("max_length", MAX_LENGTHS)
def test_edge_cases_match_hf(pair, max_length):
    ours, hf = pair
    _assert_same(ours, hf, EDGE_CASES, max_length)


def test_truncation_keeps_the_first_pieces(minilm_dir):
    ours = WordPieceTokenizer.from_folder(minilm_dir)
    text = " ".join(EDGE_CASES)
    pieces = ours.tokenize(text)
    assert len(pieces) > 300
    for max_length in (2, 7, 64, 128, 300, len(pieces) + 2, len(pieces) + 50):
        enc = ours.encode(text, max_length)
        ids = enc["input_ids"]
        assert len(ids) == min(max_length, len(pieces) + 2)
        assert ids[0] == ours.vocab["[CLS]"] and ids[-1] == ours.vocab["[SEP]"]
        assert ids[1:-1] == [ours.vocab[p] for p in pieces[: max_length - 2]]
        assert enc["attention_mask"] == [1] * len(ids) and enc["token_type_ids"] == [0] * len(ids)
    # None means the folder's model_max_length (512 for MiniLM)
    assert ours.settings.model_max_length == 512
    assert len(ours.encode(text * 3, None)["input_ids"]) == 512


def _assert_same_pairs(ours: WordPieceTokenizer, hf, pairs: list[tuple[str, str]], max_length: int) -> None:
    keys = ("input_ids", "attention_mask", "token_type_ids")
    out = hf([a for a, _ in pairs], [b for _, b in pairs], truncation=True, max_length=max_length)
    for i, (a, b) in enumerate(pairs):
        expected = {k: out[k][i] for k in keys}
        got = ours.encode(a, max_length, text_pair=b)
        assert got == expected, (f"pair {i} differs at max_length={max_length}: {a!r} / {b!r}\n"
                                 f"  hf:   {hf.convert_ids_to_tokens(expected['input_ids'])}\n"
                                 f"  ours: {hf.convert_ids_to_tokens(got['input_ids'])}")


def test_sentence_pairs_match_hf(pair):
    """[CLS] a [SEP] b [SEP] with type ids 1 on b, truncated longest-first exactly as Hugging Face does:
    every combination of lengths around the budget, both orders, odd and even budgets."""
    ours, hf = pair
    words = "the movie was good and i love it fun great film".split()
    lengths = [0, 1, 2, 3, 4, 5, 7, 10]
    pairs = [(" ".join(words[:n]), " ".join(reversed(words[:m]))) for n in lengths for m in lengths]
    pairs += [(EDGE_CASES[i], EDGE_CASES[-1 - i]) for i in range(len(EDGE_CASES))]
    for max_length in (3, 4, 5, 6, 7, 8, 9, 12, 128):
        _assert_same_pairs(ours, hf, pairs, max_length)
    enc = ours.encode("i love it", 128, text_pair="great film")
    assert enc["token_type_ids"] == [0] * 5 + [1] * 3  # [CLS] i love it [SEP] | great film [SEP]


def test_sentence_pairs_of_real_texts_match_hf(minilm_dir, real_texts):
    ours, hf = WordPieceTokenizer.from_folder(minilm_dir), _hf(minilm_dir)
    pairs = list(zip(real_texts[:400], real_texts[400:800]))
    for max_length in (16, 33, 128):
        _assert_same_pairs(ours, hf, pairs, max_length)


def test_truncate_pair_keeps_the_shorter_sentence_whole_when_it_fits():
    assert wp.truncate_pair(2, 8, 7) == (2, 5)
    assert wp.truncate_pair(8, 2, 7) == (5, 2)
    assert wp.truncate_pair(4, 4, 7) == (3, 4)  # both over half: the second gets the odd piece
    assert wp.truncate_pair(8, 4, 7) == (4, 3)
    assert wp.truncate_pair(3, 4, 7) == (3, 4)  # fits: nothing cut


def test_a_pair_template_other_than_berts_is_refused_for_pairs(tiny_tokenizer_dir, tmp_path):
    folder = tmp_path / "tok"
    shutil.copytree(tiny_tokenizer_dir, folder)
    data = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    for piece in data["post_processor"]["pair"]:
        next(iter(piece.values()))["type_id"] = 0  # every segment typed 0
    (folder / "tokenizer.json").write_text(json.dumps(data), encoding="utf-8")
    ours = WordPieceTokenizer.from_folder(folder)
    assert ours.encode("i love it")["input_ids"][0] == ours.cls_id  # single texts are unaffected
    with pytest.raises(ModelLoadError, match="another template than BERT's"):
        ours.encode("i love it", text_pair="great film")


def test_a_pair_needs_three_special_tokens(minilm_dir):
    ours = WordPieceTokenizer.from_folder(minilm_dir)
    with pytest.raises(ConfigError, match="need 3"):
        ours.encode("a", 2, text_pair="b")


@pytest.mark.parametrize("bad", [0, 1, -5, 2.5, "128", True])
def test_max_length_below_two_is_refused(minilm_dir, bad):
    with pytest.raises(ConfigError, match="max_length"):
        WordPieceTokenizer.from_folder(minilm_dir).encode("hello", bad)


def _stable_characters() -> list[str]:
    """Code points assigned in Unicode 3.2 whose general category is unchanged in Python's database.

    Hugging Face's tokenizers classifies characters with older Unicode tables than Python (and
    than phones): characters added or re-categorised since then are documented differences in
    docs/tokenization.md, not checked here.
    """
    old, chars = unicodedata.ucd_3_2_0, []
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        c = chr(cp)
        cat = unicodedata.category(c)
        if cat != "Cn" and old.category(c) == cat:
            chars.append(c)
    return chars


def test_every_stable_code_point_normalizes_and_splits_like_hf(minilm_dir):
    settings = wp.read_settings(minilm_dir)
    backend = _hf(minilm_dir).backend_tokenizer
    chars = _stable_characters()
    assert len(chars) > 200_000
    bad = []
    for i in range(0, len(chars), 4000):
        chunk = chars[i:i + 4000]
        text = "x".join(chunk)  # ASCII letter between: no canonical reordering across characters
        if backend.normalizer.normalize_str(text) != wp.normalize(text, settings):
            bad += [c for c in chunk if backend.normalizer.normalize_str(c) != wp.normalize(c, settings)]
        text = " ".join(f"a{c}a" for c in chunk)
        if [w for w, _ in backend.pre_tokenizer.pre_tokenize_str(text)] != wp.pre_tokenize(text):
            bad += [c for c in chunk
                    if [w for w, _ in backend.pre_tokenizer.pre_tokenize_str(f"a{c}a")] != wp.pre_tokenize(f"a{c}a")]
    assert not bad, [f"U+{ord(c):04X} {unicodedata.name(c, '?')}" for c in bad[:20]]


def test_hf_rules_that_differ_from_bert_python_code(minilm_dir):
    """The two places where the spec follows Hugging Face's tokenizers rather than BERT's Python."""
    hf = _hf(minilm_dir).backend_tokenizer.normalizer
    settings = wp.read_settings(minilm_dir)
    # permanently unassigned code points (noncharacters) and never-assigned U+0378 are kept
    for text in ("a\ufdd0b", "a\uffffb", "a\U0010fffeb", "a\u0378b"):
        assert wp.normalize(text, settings) == hf.normalize_str(text) == text
    # U+2B820..U+2B91F are not padded; U+2B81F and U+2B920 are
    for cp, padded in ((0x2B81F, True), (0x2B820, False), (0x2B91F, False), (0x2B920, True)):
        c = chr(cp)
        assert wp.normalize(c, settings) == hf.normalize_str(c) == (f" {c} " if padded else c)


def _copy_files(src: Path, dst: Path, names: list[str]) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(src / name, dst / name)
    return dst


@pytest.mark.parametrize("do_lower_case,strip_accents", [(False, None), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("with_tokenizer_json", [False, True])
def test_settings_from_tokenizer_config_and_tokenizer_json(minilm_dir, tmp_path, do_lower_case, strip_accents,
                                                           with_tokenizer_json):
    """Lower-casing and accent stripping read from tokenizer_config.json (vocab.txt only) or from the
    tokenizer.json normalizer that transformers writes from it."""
    from transformers import AutoTokenizer

    src = _copy_files(minilm_dir, tmp_path / "slow", ["vocab.txt"])
    config = json.loads((minilm_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    config.update(do_lower_case=do_lower_case, strip_accents=strip_accents)
    (src / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    folder = src
    if with_tokenizer_json:  # transformers converts the vocab.txt tokenizer and writes tokenizer.json
        folder = tmp_path / "fast"
        AutoTokenizer.from_pretrained(src).save_pretrained(folder)
        norm = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))["normalizer"]
        assert norm["lowercase"] == do_lower_case
    ours = WordPieceTokenizer.from_folder(folder)
    expected_strip = do_lower_case if strip_accents is None else strip_accents
    assert (ours.settings.lowercase, ours.settings.strip_accents) == (do_lower_case, expected_strip)
    _assert_same(ours, _hf(folder), EDGE_CASES, 128)


def test_vocab_txt_and_tokenizer_json_agree(pair, tmp_path):
    ours, hf = pair
    assert ours.vocab == hf.get_vocab()
    folder = Path(hf.name_or_path)
    only_json = _copy_files(folder, tmp_path / "json", ["tokenizer.json"])
    assert wp.load_vocab(only_json) == ours.vocab
    only_txt = _copy_files(folder, tmp_path / "txt", ["vocab.txt"])
    assert wp.load_vocab(only_txt) == ours.vocab


def test_a_vocab_txt_that_disagrees_with_tokenizer_json_is_refused(tiny_tokenizer_dir, tmp_path):
    folder = _copy_files(tiny_tokenizer_dir, tmp_path / "t", ["tokenizer.json", "tokenizer_config.json", "vocab.txt"])
    lines = (folder / "vocab.txt").read_text(encoding="utf-8").split("\n")
    lines[10], lines[11] = lines[11], lines[10]
    (folder / "vocab.txt").write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(ModelLoadError, match="different vocabularies"):
        WordPieceTokenizer.from_folder(folder)


def test_write_vocab_txt_for_a_folder_with_tokenizer_json_only(tiny_tokenizer_dir, tmp_path):
    folder = _copy_files(tiny_tokenizer_dir, tmp_path / "t", ["tokenizer.json", "tokenizer_config.json"])
    path = wp.write_vocab_txt(folder)
    assert path == folder / "vocab.txt"
    assert path.read_text(encoding="utf-8") == (tiny_tokenizer_dir / "vocab.txt").read_text(encoding="utf-8")
    assert wp.write_vocab_txt(folder) == path  # present: checked, kept
    path.write_text("[PAD]\n", encoding="utf-8")
    with pytest.raises(ModelLoadError, match="different vocabularies"):
        wp.write_vocab_txt(folder)


def test_special_token_ids_come_from_the_vocab(pair):
    ours, hf = pair
    assert (ours.cls_id, ours.sep_id, ours.unk_id) == (hf.cls_token_id, hf.sep_token_id, hf.unk_token_id)
    assert set(ours.settings.added_tokens) == set(hf.all_special_tokens)


def test_a_sentencepiece_tokenizer_is_refused_with_what_to_use(tmp_path):
    """ALBERT's tokenizer is SentencePiece Unigram: outside the hand-written mobile tokenizer."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers

    tk = Tokenizer(models.Unigram([("<unk>", 0.0), ("▁a", -1.0), ("▁b", -2.0), ("a", -3.0)], unk_id=0))
    tk.normalizer = normalizers.Lowercase()
    tk.pre_tokenizer = pre_tokenizers.Metaspace()
    tk.decoder = decoders.Metaspace()
    tk.save(str(tmp_path / "tokenizer.json"))
    with pytest.raises(ModelLoadError, match="Unigram") as err:
        WordPieceTokenizer.from_folder(tmp_path)
    assert "sentencepiece" in str(err.value) and "ONNX Runtime Extensions" in str(err.value)


def test_missing_folder_and_files(tmp_path):
    with pytest.raises(ModelNotFoundError):
        WordPieceTokenizer.from_folder(tmp_path / "nope")
    with pytest.raises(ModelNotFoundError):
        WordPieceTokenizer.from_folder(tmp_path)


def test_reference_imports_only_the_standard_library():
    """The mobile ports mirror this file: it must not lean on numpy, tokenizers or transformers."""
    tree = ast.parse(Path(wp.__file__).read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module)
    outside = {m for m in imported if m.split(".")[0] not in sys.stdlib_module_names}
    assert outside == {"edgebert.errors"}, outside


_KOTLIN_MAIN = """package com.example.edgebert
import java.io.File
import org.json.JSONObject
fun main(args: Array<String>) {
    val tok = WordPieceTokenizer.fromFiles(File(args[0]).readText(), File(args[1]).readText())
    val out = StringBuilder()
    File(args[2]).forEachLine { line ->
        val o = JSONObject(line)
        val e = tok.encode(o.getString("text"), o.getInt("max_length"))
        out.append(e.inputIds.joinToString(" ")).append(" | ")
        out.append(e.attentionMask.joinToString(" ")).append(" | ").append(e.tokenTypeIds.joinToString(" ")).append("\\n")
    }
    File(args[3]).writeText(out.toString())
}
"""


def _kotlin_tokenizer_sources(kotlinc: str) -> dict[str, str]:
    """The tokenizer half of the Android sample (no onnxruntime / Android classes), compilable on a JVM."""
    src = KOTLIN_SAMPLE.read_text(encoding="utf-8")
    part = src[: src.index("// ---- The classifier")]
    part = "\n".join(line for line in part.splitlines()
                     if not re.match(r"import (ai\.onnxruntime|android\.|java\.nio\.LongBuffer|kotlin\.math)", line))
    files = {"Port.kt": part, "Main.kt": _KOTLIN_MAIN}
    version = subprocess.run([kotlinc, "-version"], capture_output=True, text=True, timeout=120)
    found = re.search(r"kotlinc-jvm (\d+)\.(\d+)", version.stdout + version.stderr)
    if found and (int(found[1]), int(found[2])) < (1, 5):  # e.g. Debian 12's kotlin 1.3
        files["Port.kt"] = re.sub(r",(\s*\n\s*\))", r"\1", part)  # no trailing commas before 1.4
        files["Shim.kt"] = ("package com.example.edgebert\nimport java.util.Locale\n"
                            "fun String.lowercase(locale: Locale): String = this.toLowerCase(locale)\n")
    return files


@pytest.fixture(scope="module")
def kotlin_port_jar(tmp_path_factory) -> Path:
    """The Kotlin sample's tokenizer compiled into a runnable jar (skip without a Kotlin toolchain)."""
    kotlinc, java = shutil.which("kotlinc"), shutil.which("java")
    if not (kotlinc and java and ANDROID_JSON_JAR.is_file()):
        pytest.skip("needs kotlinc, java and Android's org.json "
                    "(apt-get install kotlin default-jdk-headless libandroid-json-java)")
    d = tmp_path_factory.mktemp("kotlin-port")
    for name, text in _kotlin_tokenizer_sources(kotlinc).items():
        (d / name).write_text(text, encoding="utf-8")
    jar = d / "port.jar"
    built = subprocess.run([kotlinc, *sorted(str(p) for p in d.glob("*.kt")), "-cp", str(ANDROID_JSON_JAR),
                            "-include-runtime", "-d", str(jar)], capture_output=True, text=True, timeout=600)
    assert jar.is_file(), built.stderr[-3000:]
    return jar


@pytest.mark.slow
@pytest.mark.parametrize("folder_fixture", FOLDERS)
def test_kotlin_port_tokenizes_like_the_reference(request, folder_fixture, kotlin_port_jar, real_texts, tmp_path):
    """Run the Kotlin sample's tokenizer on a JVM and compare it with wordpiece.py on every input the
    other tests use (the onnxruntime / Android half of the sample is not compiled)."""
    folder = request.getfixturevalue(folder_fixture)
    chars = _stable_characters()
    rows = [(t, m) for t in EDGE_CASES for m in MAX_LENGTHS] + [(t, m) for m in (128, 12) for t in real_texts]
    rows += [(" ".join(f"a{c}b" for c in chars[i:i + 40]) + " " + "".join(chars[i:i + 40]), 512)
             for i in range(0, len(chars), 40)]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"text": t, "max_length": m}) + "\n" for t, m in rows),
                                       encoding="utf-8")
    subprocess.run([shutil.which("java"), "-cp", f"{kotlin_port_jar}:{ANDROID_JSON_JAR}", "com.example.edgebert.MainKt",
                    str(folder / "vocab.txt"), str(folder / "tokenizer.json"), str(tmp_path / "in.jsonl"),
                    str(tmp_path / "out.txt")], check=True, timeout=600)
    got = (tmp_path / "out.txt").read_text(encoding="utf-8").splitlines()
    ours = WordPieceTokenizer.from_folder(folder)
    expected = [" | ".join(" ".join(map(str, e[k])) for k in ("input_ids", "attention_mask", "token_type_ids"))
                for e in (ours.encode(t, m) for t, m in rows)]
    assert len(got) == len(expected)
    bad = [i for i, (g, e) in enumerate(zip(got, expected)) if g != e]
    assert not bad, f"{len(bad)}/{len(rows)} differ; first {rows[bad[0]]!r}: kotlin {got[bad[0]]} != {expected[bad[0]]}"


def _app_predict(artifact: Path, texts: list[str]) -> list[tuple[str, float, int, bool]]:
    """What the Android and iOS samples do, step for step, in Python: (label, score, index, abstained)."""
    import numpy as np
    import onnxruntime as ort

    deploy = json.loads((artifact / "manifest.json").read_text(encoding="utf-8")).get("deploy") or {}
    labels = json.loads((artifact / "labels.json").read_text(encoding="utf-8"))["labels"]
    tokenizer = WordPieceTokenizer.from_folder(artifact / "tokenizer")
    session = ort.InferenceSession(str(artifact / deploy.get("model", "model/model.ort")),
                                   providers=["CPUExecutionProvider"])
    outputs = [o.name for o in session.get_outputs()]
    output = "logits" if "logits" in outputs else outputs[0]
    threshold = deploy.get("threshold")
    predictions = []
    for text in texts:
        enc = tokenizer.encode(text, deploy.get("max_length", 128))
        feeds = {i.name: np.array([enc[i.name]], dtype=np.int64) for i in session.get_inputs()}  # (1, n)
        logits = session.run([output], feeds)[0][0].astype(np.float64)
        e = np.exp(logits - logits.max())
        probs = e / e.sum()
        index = int(np.argmax(probs))
        abstained = threshold is not None and probs[index] < threshold
        predictions.append((deploy.get("unknown_label", "unknown") if abstained else labels[index],
                            float(probs[index]), index, bool(abstained)))
    return predictions


@pytest.mark.slow
def test_the_app_steps_reproduce_the_python_runtime(tiny_classifier_dir, tmp_path):
    """docs/mobile.md's steps on an int8 .ort artifact give edgebert.runtime.Classifier's predictions."""
    from conftest import NEGATIVE, POSITIVE, build_runtime_artifact

    from edgebert.runtime import Classifier

    art = build_runtime_artifact(tiny_classifier_dir, tmp_path / "art", fmt="ort", int8=True)
    assert (art / "model" / "model.ort").is_file()
    wp.write_vocab_txt(art / "tokenizer")  # this tokenizer was built in code: tokenizer.json only
    texts = POSITIVE + NEGATIVE + EDGE_CASES
    # a threshold between the scores, so that both the answered and the abstaining path run
    manifest = json.loads((art / "manifest.json").read_text(encoding="utf-8"))
    manifest["deploy"]["threshold"] = float(sorted(score for _, score, _, _ in _app_predict(art, texts))[len(texts) // 2])
    (art / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")

    app = _app_predict(art, texts)
    assert 0 < sum(abstained for *_, abstained in app) < len(texts)
    classifier = Classifier.load(art)
    for text, (label, score, index, abstained) in zip(texts, app):
        if not text.strip():  # the runtime refuses to classify nothing (docs/mobile.md asks apps to as well)
            with pytest.raises(DataError, match="is empty"):
                classifier.predict(text)
            continue
        p = classifier.predict(text)
        assert (label, index, abstained) == (p.label, p.index, p.abstained), text
        assert score == pytest.approx(p.score, abs=1e-6), text
