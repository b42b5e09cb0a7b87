"""edgebert eval."""

from __future__ import annotations

import click

from edgebert.cli.options import data_options, pop_data_options

#: needs the train extra (torch, transformers, ...): checked before the command runs (cli/main.py)
NEEDS_TRAINING = True


@click.command("eval")
@click.option("--model", "model", required=True,
              help="A fine-tuned classifier: a folder written by 'edgebert finetune', or a hub id.")
@data_options
@click.option("--split", default="test", show_default=True, help="Split to score: train, dev or test.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--max-length", type=click.IntRange(min=8), default=128, show_default=True,
              help="Token cap per example.")
@click.option("--out", "out", type=click.Path(dir_okay=False), default=None,
              help="Write the metrics as JSON here [default: <model>/eval-<split>.json for a folder].")
@click.option("--report/--no-report", default=True, show_default=True,
              help="Print the per-class report.")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON instead of text.")
def command(model, data, split, batch_size, max_length, out, report, as_json, **kwargs):
    """Score a fine-tuned model: accuracy, macro precision / recall / F1, per-class report and
    confusion matrix (in the JSON written to --out)."""
    import json
    from pathlib import Path

    from edgebert.evaluation import evaluate

    import os

    # the default file goes beside the model only where that folder can be written (--out asks for it anywhere)
    if out is None and Path(model).is_dir() and os.access(model, os.W_OK):
        out = str(Path(model) / f"eval-{split}.json")
    m = evaluate(model, data, split=split, batch_size=batch_size, max_length=max_length, out=out,
                 **pop_data_options(kwargs))
    if as_json:
        click.echo(json.dumps(m, indent=2))
        return
    if report:
        from edgebert.metrics import format_report

        click.echo(format_report(m))
        click.echo()
    click.echo(f"{split} (n={m['n']}): accuracy {m['accuracy']:.4f}, macro precision "
               f"{m['macro_precision']:.4f}, macro recall {m['macro_recall']:.4f}, "
               f"macro-F1 {m['macro_f1']:.4f}")
    oos = m.get("out_of_scope")
    if oos:
        click.echo(f"out of scope: in-scope accuracy {_pct(oos['in_scope_accuracy'])} ({oos['in_scope_n']} texts), "
                   f"out-of-scope recall {_pct(oos['out_of_scope_recall'])} ({oos['out_of_scope_n']} texts)")
    if out:
        click.echo(f"Metrics (with confusion matrix) written to {out}")


def _pct(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"
