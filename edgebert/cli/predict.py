"""edgebert predict."""

from __future__ import annotations

import click

from edgebert.cli.runtime_options import ARTIFACT_HELP, classifier_options, load_classifier

#: characters of a text shown in the table (the JSON output always has the whole text)
_SHOWN = 60


@click.command("predict", epilog=ARTIFACT_HELP)
@click.argument("artifact")
@click.argument("texts", nargs=-1)
@click.option("--input", "-i", "input_file", type=click.Path(dir_okay=False, allow_dash=True), default=None,
              help="Read the texts from a file: .txt (one per line), .csv / .tsv (a text column; two for a "
                   "sentence-pair model), .jsonl (a text field per line); '-' reads lines from standard input.")
@click.option("--text-column", default=None,
              help="Column / field holding the texts in a .csv, .tsv or .jsonl input (auto: text, sentence, "
                   "utterance, ..., or the only column; for a sentence-pair model sentence1, question1, ...).")
@click.option("--text-pair-column", default=None,
              help="Column / field holding the second sentences, for a sentence-pair model (auto: the partner "
                   "of the text column, e.g. sentence2).")
@click.option("--text-pair", "text_pairs", multiple=True,
              help="Second sentence of a sentence-pair model, once per TEXT argument, in order.")
@click.option("--json", "as_json", is_flag=True,
              help="Print a JSON array: text (and text_pair), label, score, index (the most likely label's "
                   "index, also when abstaining), abstained and the execution provider that ran the model, "
                   "per text.")
@classifier_options
def command(artifact, texts, input_file, text_column, text_pair_column, text_pairs, as_json, threads, threshold,
            max_length, batch_size):
    """Classify texts with an artifact, without PyTorch (onnxruntime + tokenizers).

    \b
    Examples:
      edgebert predict runs/compress/minilm-cpu "I lost my card" "How do I top up?"
      edgebert predict runs/compress/minilm-cpu --input messages.csv --json

    Prints one row per text: label, probability of that label, text. Where a threshold is set
    (--threshold, or the manifest's, see 'edgebert calibrate') texts below it get the unknown label.
    Empty texts are refused (exit 2), naming the argument or the file's line.
    """
    import json
    import sys

    from edgebert.errors import DataError
    from edgebert.runtime.classifier import EMPTY_TEXT, is_blank

    if texts and input_file:
        raise click.UsageError("Give texts as arguments or --input FILE, not both.")
    if not texts and not input_file:
        raise click.UsageError('Give texts to classify: edgebert predict ARTIFACT "a text" ..., or --input FILE.')
    if text_pairs and input_file:
        raise click.UsageError("--text-pair goes with TEXT arguments; with --input the pairs are a second column "
                               "(--text-pair-column).")
    if text_pairs and len(text_pairs) != len(texts):
        raise click.UsageError(f"Give one --text-pair per TEXT argument: got {len(texts)} texts and "
                               f"{len(text_pairs)} --text-pair.")
    for what, values in (("TEXT argument", texts), ("--text-pair", text_pairs)):
        for i, t in enumerate(values, start=1):
            if is_blank(t):
                raise DataError(f"{what} {i} {EMPTY_TEXT}")
    clf = load_classifier(artifact, threads=threads, threshold=threshold, max_length=max_length,
                          batch_size=batch_size)
    pairs = list(text_pairs) or None
    if input_file == "-":
        if clf.text_pair or text_pair_column:
            raise DataError("a sentence-pair model reads its pairs from a .csv / .tsv / .jsonl file with two text "
                            "columns (--input FILE), not from standard input")
        items = [line.strip() for line in sys.stdin if line.strip()]
    elif input_file:
        from edgebert.runtime.inputs import read_inputs

        items, pairs = read_inputs(input_file, text_column=text_column, text_pair_column=text_pair_column,
                                   pairs=bool(clf.text_pair))
    else:
        items = list(texts)
        if clf.text_pair and pairs is None:
            raise DataError(f"'{artifact}' classifies sentence pairs: give each TEXT its second sentence with "
                            "--text-pair, or --input FILE with two text columns")
    preds = clf.predict(items, pairs)
    if as_json:
        rows = [{"text": t, **({"text_pair": pairs[i]} if pairs is not None else {}), **p.to_dict(),
                 "provider": clf.provider} for i, (t, p) in enumerate(zip(items, preds))]
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    width = max([len("label")] + [len(p.label) for p in preds])
    click.echo(f"{'label':<{width}}  score   text")
    for i, (t, p) in enumerate(zip(items, preds)):
        if pairs is not None:
            t = f"{t} | {pairs[i]}"
        shown = t if len(t) <= _SHOWN else t[:_SHOWN - 3] + "..."
        click.echo(f"{p.label:<{width}}  {p.score:.3f}   {shown}")
    abstained = sum(p.abstained for p in preds)
    if clf.threshold:
        click.echo(f"threshold {clf.threshold:.4f}: {abstained} of {len(preds)} texts below it got "
                   f"'{clf.unknown_label}'")
