"""edgebert report."""

from __future__ import annotations

import click

#: needs the train extra (matplotlib draws the figure): checked before the command runs (cli/main.py)
NEEDS_TRAINING = True


@click.command("report")
@click.argument("results", nargs=-1, required=True, metavar="RESULTS...")
@click.option("--out", "out", type=click.Path(file_okay=False), default=None,
              help="Output folder [default: report-out/<timestamp>].")
def command(results, out):
    """Merge bench results from several devices into one table and one plot, grouped by device
    (host name + CPU / GPU).

    Each RESULTS is a bench.json or a folder written by 'edgebert bench'. Writes report.md,
    report.json and pareto.png to --out. In the example, runs/bench/intents-jetson is the --out of
    the same bench command run on a Jetson, copied here.

    \b
    Example:
      edgebert report runs/bench/intents runs/bench/intents-jetson --out runs/report/intents
    """
    from edgebert.bench import merge_reports

    result = merge_reports(list(results), out=out)
    click.echo(result.markdown)
    click.echo(f"Report written to {result.out} (report.md, report.json, pareto.png)")
