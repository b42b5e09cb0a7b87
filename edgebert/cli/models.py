"""edgebert models."""

from __future__ import annotations

import click


@click.command("models")
def command():
    """List model aliases and what is available offline.

    Any Hugging Face id (bert-base-uncased, albert-base-v2, ...) also works when online or when it
    is already in the local Hugging Face cache; so does any local model folder.
    """
    from edgebert.models import describe_aliases

    for row in describe_aliases():
        click.echo(f"{row['alias']}")
        click.echo(f"  {row['description']}")
        click.echo(f"  hub id: {row['hub_id']}")
        click.echo(f"  available offline: {row['available_offline']}")
        if row["path"]:
            click.echo(f"  path: {row['path']}")
    click.echo()
    click.echo("Also accepted: a local model folder (config.json + weights), or a Hugging Face id "
               "(needs the network unless cached; HF_HUB_OFFLINE=1 forces offline).")
