"""`rata dashboard`: serve the Panel dashboards on a local address (offline: no CDN).

rata dashboard research --port 5006
rata dashboard live --api http://127.0.0.1:8000 --port 5006
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from runner.cli_support import UserErrorEdge

__all__ = ["dashboard_app"]

dashboard_app = typer.Typer(cls=UserErrorEdge, help="Serve the Panel dashboards in a browser.", no_args_is_help=True)

PortOpt = Annotated[int, typer.Option("--port", "-p", min=1, max=65535, help="TCP port to listen on.")]
AddressOpt = Annotated[str, typer.Option("--address", help="Address to listen on (keep it local).")]
ShowOpt = Annotated[bool, typer.Option("--show/--no-show", help="Open the page in the default browser.")]
ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Deployment TOML file, for stored bars (secrets come from the environment)."),
]


@dashboard_app.command("research")
def research(
    port: PortOpt = 5006, address: AddressOpt = "127.0.0.1", show: ShowOpt = False, config: ConfigOpt = None
) -> None:
    """Serve the research explorer: backtest and sweep strategies on datasets or stored bars."""
    from framework.settings import load_settings

    settings = load_settings(config)
    typer.echo(f"research dashboard: http://{address}:{port}/research (Ctrl-C to stop)")
    from dashboards.research import serve_research

    serve_research(port=port, address=address, show=show, settings=settings)


@dashboard_app.command("live")
def live(
    api: Annotated[
        str, typer.Option("--api", help="Base URL of the runner API (`rata serve`).")
    ] = "http://127.0.0.1:8000",
    port: PortOpt = 5006,
    address: AddressOpt = "127.0.0.1",
    show: ShowOpt = False,
    research: Annotated[
        bool, typer.Option("--research/--no-research", help="Also serve the research explorer at /research.")
    ] = False,
) -> None:
    """Serve the live trading dashboard, a client of a running runner's REST API and WebSocket."""
    if not api.startswith(("http://", "https://")):
        from runner.cli_support import ArgumentError

        raise ArgumentError(f"--api must be an http:// or https:// URL, got {api!r}")
    typer.echo(f"live dashboard: http://{address}:{port}/live on the runner at {api} (Ctrl-C to stop)")
    from dashboards.live import serve_live

    serve_live(api.rstrip("/"), port=port, address=address, show=show, research=research)
