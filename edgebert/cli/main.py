"""Click group and error translation."""

from __future__ import annotations

import sys

import click

from edgebert import __version__
from edgebert.errors import EdgebertError


class EdgebertGroup(click.Group):
    """A group that turns library errors into messages (no traceback) and lists commands in order."""

    def list_commands(self, ctx):
        return list(self.commands)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except EdgebertError as exc:
            click.secho(f"Error: {exc}", fg="red", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted; nothing was written in place of finished outputs "
                       "(edgebert compress resumes from the last finished stage when run again).", err=True)
            ctx.exit(130)


@click.group(cls=EdgebertGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="edgebert")
def main() -> None:
    """edgebert: fine-tune, compress, export and benchmark BERT / ALBERT text classifiers
    for edge devices.

    \b
    Quick start (offline, embedded MiniLM and demo intents):
      edgebert finetune --model minilm --data intents --out runs/minilm-intents
      edgebert eval --model runs/minilm-intents --data intents
    """


# One module per command, in the order `edgebert --help` lists them. Each module defines `command`.
COMMAND_MODULES = (
    "models",
    "finetune",
    "compress",
    "pack",
    "targets",
    "evaluate",
    "bench",
    "compare",
    "report",
    "predict",
    "serve",
    "calibrate",
)


def _needs_training(command: click.Command) -> click.Command:
    """Check for the ``train`` extra before the command does anything (its --help still works)."""
    import functools

    callback = command.callback

    @functools.wraps(callback)
    def checked(*args, **kwargs):
        from edgebert.deps import require_training

        require_training(f"edgebert {command.name}")
        return callback(*args, **kwargs)

    command.callback = checked
    return command


def _register() -> None:
    import importlib

    for name in COMMAND_MODULES:
        module = importlib.import_module(f"edgebert.cli.{name}")
        # a module sets NEEDS_TRAINING when its command needs more than the runtime install (pip install
        # edgebert) has: torch, transformers, onnx, ... (the train extra)
        main.add_command(_needs_training(module.command) if getattr(module, "NEEDS_TRAINING", False)
                         else module.command)


_register()

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
