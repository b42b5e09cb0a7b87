"""edgebert pack."""

from __future__ import annotations

import click


@click.command("pack")
@click.argument("artifact", type=click.Path(file_okay=False))
@click.option("--out", "out", type=click.Path(dir_okay=False), default=None,
              help="The .tar.gz to write [default: ARTIFACT.tar.gz beside the folder].")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out file.")
def command(artifact, out, overwrite):
    """Pack what a device needs of an artifact folder into one .tar.gz.

    An artifact folder also keeps every stage's output (stages/: checkpoints later runs resume from);
    the device needs only model/, tokenizer/, labels.json and manifest.json. Unpack the file on the
    device and run it with 'edgebert predict FOLDER "some text"' (or edgebert.runtime.Classifier).

    \b
    Example:
      edgebert compress
      edgebert pack runs/compress/minilm-cpu       # writes runs/compress/minilm-cpu.tar.gz
    """
    from edgebert.pack import pack

    result = pack(artifact, out, overwrite=overwrite)
    click.echo(f"Wrote {result.path} ({result.bytes / 2**20:.1f} MiB, {len(result.files)} files). On the device: "
               f"tar xzf {result.path.name} && edgebert predict {result.folder} \"some text\"")
