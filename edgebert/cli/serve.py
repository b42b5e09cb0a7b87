"""edgebert serve."""

from __future__ import annotations

import click

from edgebert.cli.runtime_options import ARTIFACT_HELP, classifier_options, load_classifier

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


@click.command("serve", epilog=ARTIFACT_HELP)
@click.argument("artifact")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. The default accepts connections from this machine only; "
                   "0.0.0.0 exposes the model to the network (no authentication).")
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@click.option("--max-batch", type=click.IntRange(min=1), default=64, show_default=True,
              help="Most texts one request may carry (422 above).")
@click.option("--max-body-bytes", type=click.IntRange(min=64), default=1 << 20, show_default=True,
              help="Largest request body accepted (413 above).")
@click.option("--log-level", type=click.Choice(["critical", "error", "warning", "info", "debug"]), default="info",
              show_default=True, help="uvicorn log level; 'debug' also logs every request.")
@classifier_options
def command(artifact, host, port, max_batch, max_body_bytes, log_level, threads, threshold, max_length, batch_size):
    """Serve an artifact over HTTP (JSON), without PyTorch: one process, for local inference.

    \b
    POST /predict  {"text": "..."} or {"texts": ["...", ...]}  -> label, score, index, abstained
    GET  /health   model facts and limits
    GET  /labels   the label names, the unknown label and the threshold

    Bad requests get a 4xx JSON error ({"error": ..., "status": ...}); texts are truncated to the
    model's max length. One model call runs at a time; requests that arrive meanwhile are batched
    into the next call (up to --max-batch texts). Stop with Ctrl-C.

    \b
    Example:
      edgebert serve runs/compress/minilm-cpu --port 8080 &
      curl -s localhost:8080/predict -d '{"text": "I lost my card"}'
    """
    from edgebert.runtime.serve import create_app, serve

    clf = load_classifier(artifact, threads=threads, threshold=threshold, max_length=max_length,
                          batch_size=batch_size)
    app = create_app(clf, max_batch=max_batch, max_body_bytes=max_body_bytes)
    _check_bind(host, port)
    if host not in _LOOPBACK:
        click.secho(f"Note: listening on {host}: anyone who can reach this machine can query the model "
                    "(no authentication).", err=True, fg="yellow")
    if clf.threshold:
        threshold = f"answers '{clf.unknown_label}' below confidence {clf.threshold:.4f}"
    else:
        threshold = (f"no confidence threshold, answers every text (to set one: edgebert calibrate {artifact} "
                     "--data DATA --write)")
    click.echo(f"Serving {artifact} ({len(clf.labels)} labels, {clf.format}, max length {clf.max_length}, "
               f"{threshold}) on http://{host}:{port}  (POST /predict, GET /health, GET /labels)", err=True)
    serve(app, host=host, port=port, log_level=log_level)


def _check_bind(host: str, port: int) -> None:
    """Fail with a message (not uvicorn's log line and exit) when the address cannot be bound."""
    import socket

    from edgebert.errors import ConfigError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family, _, _, _, address = infos[0]
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            sock.bind(address)
    except OSError as exc:
        raise ConfigError(f"Cannot listen on {host}:{port}: {exc.strerror or exc}. "
                          "Choose another --port (or stop what uses it).") from None
