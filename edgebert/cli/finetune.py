"""edgebert finetune."""

from __future__ import annotations

import click

from edgebert.cli.options import config_options, config_overrides, data_options, pop_data_options
from edgebert.train.finetune import FinetuneConfig

#: needs the train extra (torch, transformers, ...): checked before the command runs (cli/main.py)
NEEDS_TRAINING = True


@click.command("finetune")
@click.option("--model", "model", default="minilm", show_default=True,
              help="Model to fine-tune: an alias (see 'edgebert models'), a local folder, or a "
                   "Hugging Face id such as bert-base-uncased or albert-base-v2 (online).")
@data_options
@click.option("--out", "out", type=click.Path(file_okay=False), default=None,
              help="Output model folder [default: runs/<model>-<data>].")
@click.option("--overwrite", is_flag=True, help="Replace an existing finetune output folder (only one edgebert wrote is ever deleted).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@config_options(FinetuneConfig)
def command(model, data, out, overwrite, quiet, **kwargs):
    """Fine-tune a BERT or ALBERT classifier on a labelled text dataset.

    Writes a standard Hugging Face model folder (safetensors, config with label names, tokenizer)
    plus labels.json, metrics.json and manifest.json. Uses the GPU with mixed precision when there
    is one, the CPU otherwise. For several GPUs or nodes run the same command under
    'torchrun --nproc_per_node N -m edgebert finetune ...' or 'accelerate launch -m edgebert finetune ...'.

    \b
    Example (offline):
      edgebert finetune --model minilm --data ../shared/data/sst2 --epochs 2
    """
    from edgebert.config import build_config
    from edgebert.train.finetune import finetune

    cfg = build_config(FinetuneConfig, config_overrides(FinetuneConfig, kwargs))
    data_kw = pop_data_options(kwargs)
    out = out or _default_out(model, data)
    result = finetune(model, data, out=out, config=cfg, overwrite=overwrite, progress=not quiet, **data_kw)
    if not result.main_process:
        return  # under torchrun / accelerate launch only rank 0 reports
    m = result.metrics
    click.echo(f"Best epoch {m['best_epoch']}. Dev: accuracy {m['dev']['accuracy']:.4f}, "
               f"macro-F1 {m['dev']['macro_f1']:.4f} (n={m['dev']['n']})")
    if "test" in m:
        click.echo(f"Test: accuracy {m['test']['accuracy']:.4f}, macro-F1 {m['test']['macro_f1']:.4f} "
                   f"(n={m['test']['n']})")
    click.echo(f"Model written to {result.out}")


def _default_out(model: str, data: str) -> str:
    from pathlib import Path

    def slug(s: str) -> str:
        s = Path(str(s).rstrip("/")).name if ("/" in str(s) or "\\" in str(s)) else str(s)
        return "".join(c if c.isalnum() or c in "-_." else "-" for c in s).strip("-.") or "x"

    return str(Path("runs") / f"{slug(model)}-{slug(data)}")
