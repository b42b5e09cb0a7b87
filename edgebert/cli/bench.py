"""edgebert bench."""

from __future__ import annotations

import click

from edgebert.cli.options import command_line, data_options, pop_data_options

#: needs the train extra (torch, transformers, ...): checked before the command runs (cli/main.py)
NEEDS_TRAINING = True


@click.command("bench")
@click.argument("models", nargs=-1, required=True, metavar="MODEL_OR_ARTIFACT...")
@data_options
@click.option("--split", default="test", show_default=True, help="Split to benchmark: train, dev or test.")
@click.option("--baselines", is_flag=True,
              help="Add baselines built from the first Hugging Face folder (given artifacts only: the fine-tuned "
                   "model the first one was compressed from, as its manifest records): PyTorch eager fp32, ONNX "
                   "fp32 (edgebert export) and Optimum's dynamic int8 export.")
@click.option("--out", "out", type=click.Path(file_okay=False), default=None,
              help="Output folder [default: bench-out/<timestamp>].")
@click.option("--seq-len", type=click.IntRange(min=2), default=None,
              help="Also time a fixed shape: every sentence padded / truncated to exactly N tokens.")
@click.option("--batch", type=click.IntRange(min=1), default=32, show_default=True,
              help="Batch size of the throughput and accuracy runs.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Threads for every runtime [default: physical cores].")
@click.option("--rounds", type=click.IntRange(min=1), default=5, show_default=True,
              help="Interleaved timing rounds (variants take turns, the first one rotating).")
@click.option("--warmup", type=click.IntRange(min=0), default=10, show_default=True,
              help="Untimed runs per variant before the first round.")
@click.option("--latency-samples", type=click.IntRange(min=1), default=200, show_default=True,
              help="Real sentences timed one by one (batch 1, own length) per round.")
@click.option("--reference", default=None,
              help="Variant the others are compared with [default: the PyTorch fp32 one, else the first].")
@click.option("--max-length", type=click.IntRange(min=8), default=128, show_default=True,
              help="Token cap per sentence.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="Where to run; on cuda PyTorch models also run in fp16.")
@click.option("--memory/--no-memory", default=True, show_default=True,
              help="Measure peak RSS and cold load time in a fresh process per variant.")
@click.option("--overwrite", is_flag=True, help="Write into an --out folder that already holds files.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def command(models, data, split, baselines, out, seq_len, batch, threads, rounds, warmup, latency_samples,
            reference, max_length, device, memory, overwrite, quiet, **kwargs):
    """Benchmark model variants side by side: accuracy, macro-F1 and agreement through each
    variant's own runtime, batch-1 latency (p50 with spread, p90, p99), throughput, peak memory
    in a fresh process, size on disk and load time.

    Each MODEL_OR_ARTIFACT is a Hugging Face model folder (PyTorch), an .onnx file
    (onnxruntime), a TorchScript .pt file, or an artifact folder (one variant per model file).
    Writes bench.json, bench.csv, bench.md and pareto.png to --out.

    \b
    Example:
      edgebert bench runs/compress/minilm-cpu --data intents --baselines --out runs/bench/intents
    """
    from edgebert.bench import bench

    data_kw = pop_data_options(kwargs)
    result = bench(list(models), data, split=split, baselines=baselines, out=out, seq_len=seq_len, batch=batch,
                   threads=threads, rounds=rounds, warmup=warmup, latency_samples=latency_samples,
                   reference=reference, max_length=max_length, device=device, memory=memory,
                   overwrite=overwrite, progress=not quiet, command=command_line("models"), **data_kw)
    variants = result.results["variants"]
    if not any(v["status"] == "ok" for v in variants):
        # A bench that measured nothing is a failed run, not a result: scripts and CI must see it.
        why = "; ".join(f"{v['name']} {v['status']}: {_first_line(v['error'])}" for v in variants)
        click.secho(f"Error: nothing was measured, every variant failed or was skipped ({why}). "
                    f"Details: {result.out / 'bench.md'}; once fixed, re-run with --overwrite.", fg="red", err=True)
        click.get_current_context().exit(2)
    click.echo(result.markdown)
    for v in variants:
        if v.get("provider_fallback"):
            click.secho(f"Warning: {v['name']}: {v['provider_fallback']}.", fg="yellow", err=True)
    failed = [v["name"] for v in variants if v["status"] == "failed"]
    if failed:
        click.secho(f"{len(failed)} variant(s) failed: {', '.join(failed)} (reasons above and in bench.json).",
                    fg="yellow", err=True)
    click.echo(f"Results written to {result.out} (bench.json, bench.csv, bench.md, pareto.png)")


# --max-rows comes from the shared data options; for bench it caps the benchmarked split.
for _param in command.params:
    if _param.name == "max_rows":
        _param.help = "Use at most N rows of the benchmarked split (stratified, seeded), for quick runs."


def _first_line(text: str | None, limit: int = 160) -> str:
    """The first line of a variant's error, shortened (the whole text is in bench.json)."""
    lines = (text or "").strip().splitlines()
    line = lines[0] if lines else "no reason recorded"
    return line if len(line) <= limit else line[:limit - 3] + "..."
