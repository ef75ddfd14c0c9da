"""Serve Panel apps on a local address, every JavaScript and CSS file from the server itself.

The browser of a trading desk may have no internet access: nothing here is loaded from a CDN.
Bokeh's resources are set to "server" mode (BokehJS from the server's own `/static`), Panel serves
its bundled extensions (Tabulator, fonts, icons) the same way, and the apps use Panel's Bootstrap
template, whose assets are bundled too (the Fast templates fetch a Google font).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import panel as pn
from panel.template.base import BaseTemplate
from panel.viewable import Viewable

__all__ = ["AppFactory", "offline_resources", "serve"]

AppFactory = Callable[[], Viewable | BaseTemplate]


def offline_resources() -> None:
    """Make Bokeh and Panel load their resources from the serving process, never from a CDN."""
    from bokeh.settings import settings

    settings.resources.set_value("server")


def serve(
    apps: Mapping[str, AppFactory],
    *,
    port: int = 5006,
    address: str = "127.0.0.1",
    show: bool = False,
    title: str | dict[str, str] = "rata",
) -> None:
    """Serve `apps` (URL slug -> factory called once per browser session) until Ctrl-C.

    Only pages from this address and port (or `localhost` on the same port) may open a session.
    """
    offline_resources()
    origins = [f"{address}:{port}", f"localhost:{port}", f"127.0.0.1:{port}"]
    pn.serve(
        dict(apps),
        port=port,
        address=address,
        websocket_origin=sorted(set(origins)),
        show=show,
        title=title,
        verbose=False,
        start=True,
    )
