"""`rata serve`: the trading service with its REST and WebSocket API and `/metrics`, in one process.

    rata serve --config rata.toml --mode dev
    rata serve --config rata.toml --mode paper --host 0.0.0.0 --certfile cert.pem --keyfile key.pem
    rata serve --config rata.toml --mode live --live-trading-i-accept-the-risk --certfile ... --keyfile ...

uvicorn serves `runner.api.app.create_app` on 127.0.0.1:8000 unless told otherwise, over HTTPS
when given a certificate and its key. Ctrl-C or SIGTERM stops it cleanly: the API stops taking
requests, the runner stops deciding, in-flight work finishes, the database closes. Add users
first with `rata users add NAME --role admin`; tokens are signed with `RATA_JWT_SECRET` (a fresh
key per process otherwise, so every restart logs everyone out).

Exit status: 0 after a clean stop on Ctrl-C or SIGTERM (uvicorn shuts down gracefully and then
re-raises the signal to the handler that was there before it; that handler is ours and exits 0, so
a service manager sees a clean stop rather than "killed by SIGTERM"), 2 for a usage error.
"""

from __future__ import annotations

import signal
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from runner.cli_output import console
from runner.cli_run import LIVE_FLAG, resolve_run_config
from runner.cli_support import ArgumentError

__all__ = ["serve"]

_LOOPBACK = ("127.0.0.1", "::1", "localhost")


def serve(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Deployment TOML file with the run tables.")
    ] = None,
    mode: Annotated[
        str | None, typer.Option(help="replay, dev, paper or live (overrides the mode of the runner table).")
    ] = None,
    host: Annotated[str, typer.Option(help="Address to bind; keep the default unless the API must be reachable.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(min=1, max=65_535, help="Port to listen on.")] = 8000,
    certfile: Annotated[Path | None, typer.Option(help="TLS certificate (PEM): serve HTTPS.")] = None,
    keyfile: Annotated[Path | None, typer.Option(help="TLS private key (PEM) of --certfile.")] = None,
    cors_origin: Annotated[
        list[str] | None, typer.Option("--cors-origin", help="A browser origin allowed to call the API (repeat).")
    ] = None,
    live_opt_in: Annotated[bool, typer.Option(LIVE_FLAG, help="Required to trade real money in live mode.")] = False,
    log_level: Annotated[str, typer.Option(help="uvicorn log level: debug, info, warning, error.")] = "info",
) -> None:
    """Run the trading service and serve its API (REST, WebSocket, /metrics) until Ctrl-C or SIGTERM."""
    if mode is not None and mode not in ("replay", "dev", "paper", "live"):
        raise ArgumentError(f"--mode must be replay, dev, paper or live, got {mode!r}")  # before any file is read
    if (certfile is None) != (keyfile is None):
        raise ArgumentError("give both --certfile and --keyfile to serve HTTPS")
    for path in (certfile, keyfile):
        if path is not None and not path.is_file():
            raise ArgumentError(f"no such file: {path}")
    if log_level not in ("critical", "error", "warning", "info", "debug"):
        raise ArgumentError(f"--log-level must be debug, info, warning or error, got {log_level!r}")

    from framework.settings import load_settings

    run_config = resolve_run_config(config, mode, live_opt_in)
    settings = load_settings(config)

    import uvicorn

    from runner.api.app import ApiOptions, create_app

    out = console(stderr=True)
    if host not in _LOOPBACK and certfile is None:
        out.print(f"[yellow]warning[/yellow]: serving plain HTTP on {host}: tokens cross the network in clear text")
    app = create_app(settings, run_config, options=ApiOptions(cors_origins=tuple(cors_origin or ())))
    scheme = "https" if certfile is not None else "http"
    out.print(f"rata serve: {run_config.runner.mode} mode, API at {scheme}://{host}:{port}/api/v1 (docs: /api/v1/docs)")
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _exit_cleanly)
    uvicorn.run(
        app,
        host=host,
        port=port,
        ssl_certfile=str(certfile) if certfile is not None else None,
        ssl_keyfile=str(keyfile) if keyfile is not None else None,
        log_level=log_level,
        lifespan="on",
        server_header=False,
        proxy_headers=False,
    )


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    """The signal handler uvicorn hands a stop signal back to once it has shut down: exit 0."""
    raise SystemExit(0)
