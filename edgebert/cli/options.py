"""Click options generated from config fields, and shared option groups.

A config field's ``description`` is its ``--help`` text, so the CLI and the JSON schema never
disagree. Options default to None ("not given") so only what the user typed overrides the config.
"""

from __future__ import annotations

import typing
from typing import Any, Callable

import click


def _click_type(annotation) -> tuple[Any, bool]:
    """(click type, is_flag) for a pydantic field annotation."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is typing.Literal:
        return click.Choice([str(a) for a in typing.get_args(annotation)]), False
    if args and len(args) == 1:  # Optional[X]
        return _click_type(args[0])
    if annotation is bool:
        return bool, True
    return annotation, False


def config_options(cls, *, exclude: tuple[str, ...] = ("kind",)) -> Callable:
    """Decorator adding one ``--field-name`` option per field of a pydantic config class."""

    def decorate(fn):
        for name, field in reversed(list(cls.model_fields.items())):
            if name in exclude:
                continue
            ctype, is_flag = _click_type(field.annotation)
            flag = "--" + name.replace("_", "-")
            default = field.default
            help_text = f"{field.description}. [default: {default if default is not None else 'auto'}]"
            if is_flag:
                decl = f"{flag}/--no-{name.replace('_', '-')}"
                fn = click.option(decl, name, default=None, help=help_text)(fn)
            else:
                fn = click.option(flag, name, type=ctype, default=None, help=help_text)(fn)
        return fn

    return decorate


def config_overrides(cls, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Pop the options of ``cls`` from ``kwargs`` and return those the user actually gave."""
    return {k: kwargs.pop(k) for k in list(kwargs) if k in cls.model_fields and kwargs[k] is not None}


def data_options(fn):
    """--data and the options that say how to read it (shared by finetune, eval, ...)."""
    decorators = [
        click.option("--data", "data", default="intents", show_default=True,
                     help="Dataset: a CSV/TSV/JSONL file (the train split), a folder with train.*, "
                          "dev.*|validation.*, test.*, the builtin 'intents' demo set, or a Hugging "
                          "Face datasets id (online)."),
        click.option("--dev", "dev", type=click.Path(dir_okay=False), default=None,
                     help="Dev split file (default: dev.* in the folder, else a stratified split of train)."),
        click.option("--test", "test", type=click.Path(dir_okay=False), default=None,
                     help="Test split file (default: test.* in the folder)."),
        click.option("--text-column", default=None, help="Text column (auto: text, sentence, utterance, ...)."),
        click.option("--text-pair-column", default=None, help="Second text column, for sentence-pair tasks."),
        click.option("--label-column", default=None, help="Label column (auto: label, category, intent, ...)."),
        click.option("--max-rows", type=click.IntRange(min=1), default=None,
                     help="Use at most N training rows (stratified subset), for quick runs."),
        click.option("--oos-data", "oos_data", type=click.Path(dir_okay=False), default=None,
                     help="Out-of-scope texts (one per line, or a CSV/JSONL text column): texts that belong to no "
                          "label, added as one more class split into train/dev/test (see --oos-label)."),
        click.option("--oos-label", "oos_label", default=None,
                     help="Name of the out-of-scope class, and the answer predict / serve give for it "
                          "[default: out_of_scope]."),
    ]
    for d in reversed(decorators):
        fn = d(fn)
    return fn


DATA_KEYS = ("dev", "test", "text_column", "text_pair_column", "label_column", "max_rows", "oos_data", "oos_label")


def pop_data_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Remove the data-reading options from ``kwargs``; return those given, for load_dataset."""
    return {k: v for k in DATA_KEYS if (v := kwargs.pop(k, None)) is not None}


def command_line(argument: str) -> str:
    """The command as typed (its ``argument`` values, then the options given on the command line only), for
    the results files a command writes."""
    import shlex

    from click.core import ParameterSource

    ctx = click.get_current_context()
    parts = ["edgebert", ctx.info_name or "edgebert", *ctx.params.get(argument, ())]
    for p in ctx.command.params:
        if p.name == argument or ctx.get_parameter_source(p.name) is not ParameterSource.COMMANDLINE:
            continue
        value = ctx.params.get(p.name)
        if isinstance(p, click.Option) and p.is_flag:
            parts.append(p.opts[0] if value or not p.secondary_opts else p.secondary_opts[0])
        elif isinstance(p, click.Option) and p.multiple:
            parts += [a for v in value for a in (p.opts[0], str(v))]
        else:
            parts += [p.opts[0], str(value)]
    return shlex.join(parts)
