"""edgebert compress."""

from __future__ import annotations

import click

from edgebert.cli.options import data_options, pop_data_options

#: needs the train extra (torch, transformers, ...): checked before the command runs (cli/main.py)
NEEDS_TRAINING = True


@click.command("compress")
@click.option("--model", "model", default="minilm", show_default=True,
              help="Model to compress: an alias (see 'edgebert models'), a local folder (e.g. written by "
                   "'edgebert finetune'), or a Hugging Face id such as albert-base-v2 (online). A model "
                   "without a trained head for the data is fine-tuned first.")
@click.option("--target", "target", default="cpu", show_default=True,
              help="Target profile: a name (see 'edgebert targets') or a path to a target .yaml file.")
@data_options
@click.option("--out", "out", type=click.Path(file_okay=False), default=None,
              help="Artifact folder [default: runs/compress/<model>-<target>]. Re-running into the same "
                   "folder resumes and skips unchanged stages.")
@click.option("--recipe", "recipe", default=None,
              help="Recipe to run instead of the target's: a name in recipes/ or a path to a recipe .yaml file.")
@click.option("--print-recipe", is_flag=True,
              help="Print the resolved recipe that would run on --model (defaults that depend on the model, "
                   "such as distillation's learning rates, filled in for it), and exit.")
@click.option("--list-stages", is_flag=True, help="List the stage kinds a recipe can use, and exit.")
@click.option("--seed", type=int, default=0, show_default=True, help="Run seed, added to each stage's own seed (importance sample, shuffling, augmentation); "
              "0 keeps the recipe's seeds, another value repeats the run with other random draws.")
@click.option("--overwrite", is_flag=True, help="Replace an output folder that holds another compress run (only an edgebert artifact folder is ever deleted).")
@click.option("--cache", "cache", type=click.Path(file_okay=False), default=None,
              help="Stage cache shared between runs: a stage already run with the same config and inputs (e.g. "
                   "fine-tuning the same model on the same data for another target) is taken from it [default: "
                   ".edgebert-stage-cache beside the artifact folder; files are hard links, no second copy].")
@click.option("--no-cache", is_flag=True, help="Neither use nor fill the stage cache.")
@click.option("--search", "search", is_flag=True,
              help="Choose the prune stage's shape (layers, heads, FFN neurons kept) per run: the fastest one, timed "
                   "here as int8 ONNX before any training, whose deployed file stays within the target's accuracy "
                   "budget on dev (binary search along a chain of shapes; the recipe's 'search' block sets the "
                   "levels). Candidates stay under OUT/search/; the manifest records every one.")
@click.option("--search-budget", "search_budget", type=click.FloatRange(min=1), default=None, metavar="MINUTES",
              help="Wall-clock budget of --search [default: the recipe's search.budget_minutes, 240]; no candidate "
                   "starts that would overrun it, and the fastest one that passed is kept.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def command(model, target, data, out, recipe, print_recipe, list_stages, seed, overwrite, cache, no_cache, search,
            search_budget, quiet, **kwargs):
    """Compress a classifier for a target device and write one artifact folder.

    Runs the target's recipe (e.g. finetune -> prune -> distill -> export-onnx -> quantize for
    'cpu'), checking every stage against the model it came from, and writes OUT/ with model/
    (the deployable files), tokenizer/, labels.json, manifest.json (every stage: config, input and
    output sha256, metrics, validation, seconds, versions, host) and report.md.

    \b
    Examples:
      edgebert compress                                   # embedded MiniLM, demo intents, cpu (offline)
      edgebert compress --model runs/minilm-sst2 --target cpu --data ../shared/data/sst2
      edgebert compress --model albert-base-v2 --target jetson --data ../shared/data/banking77
      edgebert compress --target mobile --print-recipe
      edgebert compress --model runs/minilm-sst2 --data ../shared/data/sst2 --search --search-budget 120
    """
    import shlex
    import sys

    from edgebert import pipeline

    data_kw = pop_data_options(kwargs)
    if list_stages:
        from edgebert.stages.registry import STAGES, stage_kinds

        for kind in stage_kinds():
            click.echo(f"{kind:20} {STAGES[kind].summary}")
        return
    the_plan = pipeline.plan(target, recipe)
    if print_recipe:
        from edgebert import models
        from edgebert.errors import ModelLoadError, ModelNotFoundError

        resolved_for = None
        try:
            # config.json alone decides the defaults: no transformers import (seconds, not half a minute)
            the_plan, resolved_for = the_plan.for_model(models.read_config(model)), model
        except (ModelNotFoundError, ModelLoadError) as exc:
            click.echo(f"Note: distillation's learning rates are left unset below (compress fills them in "
                       f"per model family): {exc}", err=True)
        click.echo(the_plan.to_yaml(seed, model=resolved_for), nl=False)
        return
    if search_budget is not None and not search:
        from edgebert.errors import ConfigError

        raise ConfigError("--search-budget sets the budget of --search; pass --search too.")
    out = out or str(pipeline.default_out(model, the_plan.target.name))
    click.echo(f"Compressing {model} for target {the_plan.target.name} (recipe {the_plan.recipe}: "
               f"{' -> '.join(s.kind for s in the_plan.stages)}) into {out}"
               + (", searching the prune stage's shape" if search else ""), err=True)
    common = dict(data=data, out=out, recipe=recipe, overwrite=overwrite, seed=seed,
                  cache=False if no_cache else (cache or True), progress=not quiet and sys.stderr.isatty(),
                  log=lambda msg: click.echo(msg, err=True), **data_kw)
    if search:
        from edgebert.search import search as run_search
        from edgebert.search import search_table

        result = run_search(model, target, budget_minutes=search_budget, **common)
        click.echo(search_table(result.search) + "\n")
    else:
        result = pipeline.compress(model, target, **common)
    click.echo(pipeline.report_markdown(result.manifest))
    deploy = result.manifest["deploy"]
    click.echo(f"Artifact: {result.out}  (deploy {deploy['model']}, {deploy['runtime']} {deploy['precision']})")
    from edgebert.pack import deployable_files

    shipped = sum(p.stat().st_size for p in deployable_files(result.out))
    click.echo(f"Ship to the device: model/, tokenizer/, labels.json, manifest.json ({shipped / 2**20:.1f} MiB; "
               f"stages/ is for resuming runs). One file: edgebert pack {result.out}")
    if deploy.get("engine"):
        click.echo(f"TensorRT: {deploy['engine']}")
    for warning in pipeline.budget_warnings(result.manifest):
        click.echo(f"Warning: {warning}.", err=True)
    # The same data options (bench's --max-rows caps its split instead: left out), so the hint runs as printed.
    same_data = [a for k, v in data_kw.items() if k != "max_rows" for a in ("--" + k.replace("_", "-"), str(v))]
    click.echo("Next: " + shlex.join(["edgebert", "bench", str(result.out), "--data", str(data), *same_data,
                                      "--baselines"]))
