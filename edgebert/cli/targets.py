"""edgebert targets [show NAME]."""

from __future__ import annotations

import click


@click.group("targets", invoke_without_command=True)
@click.pass_context
def command(ctx):
    """List the target profiles (targets/*.yaml), one line each; 'show NAME' prints one.

    A profile states the device class, runtime, precision, execution providers, input shapes,
    budgets and default recipe. Pass a profile name or a .yaml path to 'edgebert compress --target NAME'.
    """
    if ctx.invoked_subcommand is not None:
        return
    from edgebert.errors import ConfigError
    from edgebert.pipeline import plan
    from edgebert.targets import describe, list_targets, targets_dir

    names = list_targets()
    if not names:
        click.echo(f"No target profiles in {targets_dir()}.")
        return
    width = max(len(n) for n in names)
    bad = 0
    for name in names:
        try:
            click.echo(f"{name:{width}}  {describe(plan(name).target)}")  # the profile and its recipe load
        except ConfigError as exc:  # one broken profile does not hide the others
            bad += 1
            click.echo(f"{name:{width}}  (invalid) {exc}", err=True)
    if bad:
        raise click.ClickException(f"{bad} target profile(s) in {targets_dir()} are invalid (see above).")


@command.command("show")
@click.argument("name")
def show(name):
    """Print one target profile and the stages of its default recipe."""
    import yaml

    from edgebert.pipeline import plan

    the_plan = plan(name)
    body = the_plan.target.model_dump(mode="json", exclude={"source"})
    click.echo(f"# {the_plan.target.source}")
    click.echo(yaml.safe_dump(body, sort_keys=False), nl=False)
    click.echo(f"# recipe {the_plan.recipe}: {' -> '.join(s.kind for s in the_plan.stages)}")
