"""Vocabulary pruning (edgebert.compress.vocab) on MiniLM with SST-2 and BANKING77: what it keeps and saves.

    python benchmarks/vocab_prune.py     # writes runs/benchmarks/vocab_prune.{json,md} (--publish: benchmarks/results/)

For each dataset the vocabulary is pruned to the tokens of its train + dev texts (BANKING77 has no dev
file: edgebert's loader carves dev out of train, so train + dev is the whole train file), plus the
special tokens and every single character and its ``##`` form, plus the ``--keep-top`` most frequent
other tokens (one row per value). Reported per row: the kept vocabulary, the word-embedding table in
MB (fp32 and int8, before and after) and the model's parameters; on the test texts, which were not
used to prune, the share of words whose tokenization changed, of [UNK] words, and of test texts whose
token ids changed (only those can be classified differently); and on ``--check-rows`` train texts the
largest logit difference to the unpruned model (must be 0).

The model is ``runs/models/minilm-<dataset>`` when ``python benchmarks/finetune_minilm.py --keep
runs/models`` made it (then the test accuracy before and after is reported too); otherwise the embedded
all-MiniLM-L6-v2 with a new, untrained head, which is enough for everything but the accuracy. Without
a fine-tuned model, a linear probe stands in for the accuracy: a logistic regression on the frozen
encoder's mean-pooled, normalised sentence embeddings (how all-MiniLM-L6-v2 is used), trained on the
train + dev texts (identical before and after pruning) and scored on test with the embeddings of the
full and of the pruned vocabulary.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from publish import add_publish_option, results_dir  # run as a script: benchmarks/ is on sys.path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
DATASETS = ("sst2", "banking77")
MB = 1e6


def _model_for(name: str, models_dir: Path, label_names: list[str]):
    from edgebert import models

    tuned = models_dir / f"minilm-{name}"
    if (tuned / "config.json").is_file():
        return models.load(tuned), str(tuned.relative_to(ROOT) if tuned.is_relative_to(ROOT) else tuned), True
    return models.load("minilm", label_names=label_names), "minilm (embedded all-MiniLM-L6-v2, untrained head)", False


def _embed(model, tokenizer, texts: list[str], batch_size: int = 64):
    """Mean-pooled, L2-normalised last hidden states (sentence-transformers' all-MiniLM-L6-v2 pooling)."""
    import numpy as np
    import torch

    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths: less padding
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            batch = tokenizer([texts[i] for i in idx], truncation=True, max_length=128, padding=True,
                              return_tensors="pt")
            hidden = model.base_model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
            out[idx] = pooled.numpy()
    return out


def _probe(model, tokenizer, texts, labels, test_texts):
    """A logistic regression on frozen sentence embeddings; returns it and the test embeddings."""
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(max_iter=2000).fit(_embed(model, tokenizer, texts), labels)
    return clf, _embed(model, tokenizer, test_texts)


def _probe_after(clf, test_emb, new_model, new_tokenizer, tokenizer, report, test_texts, test_labels) -> dict:
    """Probe accuracy with the pruned vocabulary: only test texts whose token ids changed are re-embedded."""
    import numpy as np

    old_to_new = {old: new for new, old in enumerate(report.kept_old_ids)}
    changed = [i for i, t in enumerate(test_texts)
               if [old_to_new.get(x, -1) for x in tokenizer(t, truncation=True, max_length=128)["input_ids"]]
               != new_tokenizer(t, truncation=True, max_length=128)["input_ids"]]
    after = test_emb.copy()
    if changed:
        after[changed] = _embed(new_model, new_tokenizer, [test_texts[i] for i in changed])
    y = np.asarray(test_labels)
    pred_a, pred_b = clf.predict(test_emb), clf.predict(after)
    return {"accuracy_before": float((pred_a == y).mean()), "accuracy_after": float((pred_b == y).mean()),
            "predictions_changed": int((pred_a != pred_b).sum()), "texts_reembedded": len(changed)}


def run_dataset(name: str, keep_tops: list[int], models_dir: Path, check_rows: int) -> dict:
    from edgebert.compress.vocab import prune_vocabulary, validate_pruned_vocabulary
    from edgebert.data import load_dataset

    ds = load_dataset(str(DATA / name))
    train, dev, test = ds.split("train"), ds.split("dev"), ds.split("test")
    texts = train.texts + dev.texts
    loaded, model_name, fine_tuned = _model_for(name, models_dir, ds.label_names)
    model, tokenizer = loaded.model.eval(), loaded.tokenizer
    if fine_tuned:
        test_labels = ds.with_labels(loaded.label_names).split("test").labels
    params_before = sum(p.numel() for p in model.parameters())
    check = train.subset(min(check_rows, len(train)), seed=0).texts
    if not fine_tuned:
        t0 = time.perf_counter()
        clf, test_emb = _probe(model, tokenizer, texts, train.labels + dev.labels, test.texts)
        print(f"{name}: linear probe fitted in {time.perf_counter() - t0:.0f} s", flush=True)
    rows = []
    for keep_top in keep_tops:
        t0 = time.perf_counter()
        new_model, new_tokenizer, report = prune_vocabulary(model, tokenizer, texts, keep_top=keep_top)
        seconds = time.perf_counter() - t0
        v = validate_pruned_vocabulary(model, tokenizer, new_model, new_tokenizer, report, check,
                                       unseen_texts=test.texts, unseen_labels=test_labels if fine_tuned else None)
        params_after = sum(p.numel() for p in new_model.parameters())
        probe = None if fine_tuned else _probe_after(clf, test_emb, new_model, new_tokenizer, tokenizer, report,
                                                     test.texts, test.labels)
        rows.append({"keep_top": keep_top, "prune_seconds": round(seconds, 2), **report.to_dict(),
                     "params_before": params_before, "params_after": params_after, "validation": v.to_dict(),
                     "probe": probe})
        u = v.unseen
        print(f"{name} keep_top={keep_top}: vocab {report.vocab_size_before} -> {report.vocab_size_after}, "
              f"int8 table {report.embedding_bytes(1, after=False) / MB:.2f} -> "
              f"{report.embedding_bytes(1) / MB:.2f} MB, "
              f"test words changed {u.changed_share:.2%}, [UNK] {u.unk_share_before:.3%} -> {u.unk_share_after:.3%}, "
              f"test texts changed {u.texts_changed_share:.1%}, max logit diff {v.max_abs_logit_diff:g}"
              + (f", probe acc {probe['accuracy_before']:.4f} -> {probe['accuracy_after']:.4f}" if probe else ""),
              flush=True)
    return {"dataset": name, "model": model_name, "fine_tuned": fine_tuned, "texts": len(texts),
            "test_texts": len(test), "check_rows": len(check), "rows": rows}


def markdown(record: dict) -> str:
    out = ["# Vocabulary pruning: MiniLM on SST-2 and BANKING77", "",
           f"Command: `{record['command']}`  ",
           f"Date: {record['date']}; host: {record['host']['processor']}, {record['host']['cpu_count']} cores; "
           f"transformers {record['versions'].get('transformers')}, torch {record['versions'].get('torch')}", "",
           "Kept: special tokens + the tokens of the train + dev texts + every single character and its `##` form "
           "(+ `keep_top` most frequent others, by vocabulary order). Test texts were not used to prune. "
           "Sizes are the word-embedding table alone (int8: one byte per weight, scales not counted); "
           "parameters are the whole fp32 model's. Where the model is not fine-tuned, the accuracy is a linear "
           "probe's (logistic regression on the frozen encoder's mean-pooled sentence embeddings, fitted on train + "
           "dev), scored on test with the full and the pruned vocabulary; `test texts changed` bounds the share of "
           "test predictions any classifier on this encoder can change.", ""]
    for ds in record["datasets"]:
        out += [f"## {ds['dataset']}", "",
                f"Model: {ds['model']}. Pruned on {ds['texts']} train + dev texts; test {ds['test_texts']} texts; "
                f"logits compared on {ds['check_rows']} train texts.", "",
                "| keep_top | vocab | from texts | characters | table fp32 MB | table int8 MB | params M | "
                "test words changed | test [UNK] words before / after | test texts changed | max logit diff |"
                + (" test acc before / after |" if ds["fine_tuned"] else
                   " linear-probe test acc before / after (predictions changed) |"),
                "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in ds["rows"]:
            mb, u, v = r["embedding_mb"], r["validation"]["unseen"], r["validation"]
            line = (f"| {r['keep_top']} | {r['vocab_size_before']} -> {r['vocab_size_after']} | {r['kept_from_texts']} "
                    f"| {r['kept_characters']} | {mb['fp32_before']:.1f} -> {mb['fp32_after']:.1f} "
                    f"| {mb['int8_before']:.2f} -> {mb['int8_after']:.2f} "
                    f"| {r['params_before'] / 1e6:.1f} -> {r['params_after'] / 1e6:.1f} "
                    f"| {u['changed_share']:.2%} ({u['words_changed']} of {u['words']}) "
                    f"| {u['unk_share_before']:.3%} / {u['unk_share_after']:.3%} "
                    f"| {u['texts_changed_share']:.1%} | {v['max_abs_logit_diff']:g} |")
            if ds["fine_tuned"]:
                line += f" {v['accuracy_before']:.4f} / {v['accuracy_after']:.4f} |"
            else:
                p = r["probe"]
                line += f" {p['accuracy_before']:.4f} / {p['accuracy_after']:.4f} ({p['predictions_changed']}) |"
            out.append(line)
        out.append("")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=DATASETS, action="append")
    ap.add_argument("--keep-top", type=int, nargs="+", default=[0, 2000, 5000],
                    help="Numbers of most frequent other tokens to keep as well (one row each)")
    ap.add_argument("--models", type=Path, default=ROOT / "runs" / "models",
                    help="Folder holding minilm-<dataset> fine-tuned models (benchmarks/finetune_minilm.py --keep)")
    ap.add_argument("--check-rows", type=int, default=300, help="Train texts the logits are compared on")
    ap.add_argument("--threads", type=int, default=2)
    add_publish_option(ap)
    args = ap.parse_args()
    RESULTS = results_dir(args.publish)

    import torch

    from edgebert.artifact import host_info, library_versions, now_iso, write_json

    torch.set_num_threads(args.threads)
    for name in args.only or DATASETS:
        if not (DATA / name).is_dir():
            raise SystemExit(f"missing {DATA / name}: this benchmark reads the real datasets")
    record = {"command": "python " + shlex.join(["benchmarks/vocab_prune.py", *sys.argv[1:]]), "date": now_iso(),
              "host": host_info(), "versions": library_versions(),
              "datasets": [run_dataset(n, args.keep_top, args.models, args.check_rows) for n in args.only or DATASETS]}
    write_json(RESULTS / "vocab_prune.json", record)
    (RESULTS / "vocab_prune.md").write_text(markdown(record) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS / 'vocab_prune.md'}")


if __name__ == "__main__":
    main()
