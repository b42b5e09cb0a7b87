"""edgebert compare."""

from __future__ import annotations

import click

from edgebert.cli.options import command_line, data_options, pop_data_options

#: needs the train extra (torch, transformers, ...): checked before the command runs (cli/main.py)
NEEDS_TRAINING = True


@click.command("compare")
@click.argument("models", nargs=-1, required=True, metavar="MODEL_A [MODEL_B ...]")
@data_options
@click.option("--target", "targets", multiple=True, default=("cpu",), show_default=True,
              help="Target to compress each model for (repeat for several): a name (see 'edgebert targets') or a "
                   "target .yaml file; TARGET:RECIPE runs that recipe for it (e.g. cpu:albert: the ALBERT made of "
                   "the model), so one model can be compared under two recipes.")
@click.option("--recipe", "recipe", default=None,
              help="Recipe to run for every target instead of each target's own: a name in recipes/ or a .yaml file.")
@click.option("--out", "out", type=click.Path(file_okay=False), required=True,
              help="Output folder: artifacts/ (one compress artifact per model and target; re-running resumes), "
                   "bench/, compare.json, compare.md, compare.png.")
@click.option("--split", default="test", show_default=True, help="Split the variants are measured on.")
@click.option("--bench-rows", type=click.IntRange(min=1), default=None,
              help="Measure on at most N rows of --split (stratified, seeded), for quick runs.")
@click.option("--rounds", type=click.IntRange(min=1), default=None, help="Interleaved timing rounds [default: bench's].")
@click.option("--latency-samples", type=click.IntRange(min=1), default=None,
              help="Sentences timed one by one per round [default: bench's].")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="Threads for every runtime [default: physical cores].")
@click.option("--memory/--no-memory", default=True, show_default=True,
              help="Measure peak RSS in a fresh process per variant.")
@click.option("--seed", type=int, default=0, show_default=True, help="Run seed of every compress run.")
@click.option("--overwrite", is_flag=True, help="Replace artifacts of other runs in OUT/artifacts (compress --overwrite).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def command(models, data, targets, recipe, out, split, bench_rows, rounds, latency_samples, threads, memory, seed, overwrite,
            quiet, **kwargs):
    """Compare models (e.g. a BERT and an ALBERT) for your devices, on your data.

    Compresses each MODEL for each --target (fine-tuning first where a model has no head for the
    data's labels), then measures every model's fine-tuned fp32 checkpoint and every deployed file
    in one interleaved bench run: accuracy, macro precision / recall / F1, parameters, size, p50 /
    p99 latency at batch 1 and peak memory, per target. Without an ALBERT checkpoint, compare a
    BERT with the ALBERT the 'albert' recipe makes of it: one model, --target cpu --target cpu:albert
    (its fp32 ALBERT gets a row too).

    \b
    Examples:
      edgebert compare bert-base-uncased albert-base-v2 --data ../shared/data/sst2 --target cpu --target mobile --out runs/compare/sst2
      edgebert compare runs/minilm-sst2 --data ../shared/data/sst2 --target cpu --target cpu:albert --out runs/compare/bert-albert
    """
    import sys

    from edgebert.compare import compare

    data_kw = pop_data_options(kwargs)
    result = compare(list(models), data, targets=targets, recipe=recipe, out=out, split=split, overwrite=overwrite, seed=seed,
                     progress=not quiet and sys.stderr.isatty(), log=lambda msg: click.echo(msg, err=True),
                     rounds=rounds, latency_samples=latency_samples, threads=threads, memory=memory,
                     max_rows=bench_rows, command=command_line("models"), **data_kw)
    click.echo(result.markdown)
    click.echo(f"Results written to {result.out} (compare.json, compare.md, compare.png; bench/ and artifacts/)")
