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
              help="Read the texts from a file: .txt (one per line), .csv / .tsv (a text column), .jsonl "
                   "(a text field per line); '-' reads lines from standard input.")
@click.option("--text-column", default=None,
              help="Column / field holding the texts in a .csv, .tsv or .jsonl input (auto: text, sentence, "
                   "utterance, ..., or the only column).")
@click.option("--json", "as_json", is_flag=True,
              help="Print a JSON array: text, label, score, index (the most likely label's index, also when "
                   "abstaining) and abstained per text.")
@classifier_options
def command(artifact, texts, input_file, text_column, as_json, threads, threshold, max_length, batch_size):
    """Classify texts with an artifact, without PyTorch (onnxruntime + tokenizers).

    \b
    Examples:
      edgebert predict runs/compress/minilm-cpu "I lost my card" "How do I top up?"
      edgebert predict runs/compress/minilm-cpu --input messages.csv --json

    Prints one row per text: label, probability of that label, text. Where a threshold is set
    (--threshold, or the manifest's, see 'edgebert calibrate') texts below it get the unknown label.
    """
    import json
    import sys

    if texts and input_file:
        raise click.UsageError("Give texts as arguments or --input FILE, not both.")
    if not texts and not input_file:
        raise click.UsageError('Give texts to classify: edgebert predict ARTIFACT "a text" ..., or --input FILE.')
    if input_file == "-":
        items = [line.strip() for line in sys.stdin if line.strip()]
    elif input_file:
        from edgebert.runtime.inputs import read_texts

        items = read_texts(input_file, text_column=text_column)
    else:
        items = list(texts)
    clf = load_classifier(artifact, threads=threads, threshold=threshold, max_length=max_length,
                          batch_size=batch_size)
    preds = clf.predict(items)
    if as_json:
        click.echo(json.dumps([{"text": t, **p.to_dict()} for t, p in zip(items, preds)], indent=2,
                              ensure_ascii=False))
        return
    width = max([len("label")] + [len(p.label) for p in preds])
    click.echo(f"{'label':<{width}}  score   text")
    for t, p in zip(items, preds):
        shown = t if len(t) <= _SHOWN else t[:_SHOWN - 3] + "..."
        click.echo(f"{p.label:<{width}}  {p.score:.3f}   {shown}")
    abstained = sum(p.abstained for p in preds)
    if clf.threshold:
        click.echo(f"threshold {clf.threshold:.4f}: {abstained} of {len(preds)} texts below it got "
                   f"'{clf.unknown_label}'")
