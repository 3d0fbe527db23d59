"""`foryou ui`: the web page for a running stack (foryou.app.ui): a viewer's feed explained and a
page per model version. It reads home_mixer's address the way `foryou feed` does (--address, env
FORYOU_HOME_MIXER_ADDRESS, else the running `foryou up`'s address file) and the models from the
registry under the data directory."""

from __future__ import annotations

import signal
from typing import Annotated

import typer

from foryou.app.cli.addresses import ClientAddress, client_address
from foryou.app.cli.common import ModelsRoot, console, ctx_settings, fail, models_root


def ui(
    ctx: typer.Context,
    address: ClientAddress = None,
    host: Annotated[str, typer.Option(help="Interface the page listens on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port (0 = a free one)")] = 8080,
    models: ModelsRoot = None,
) -> None:
    """Serve the web page: open http://HOST:PORT/feed/USER_ID for a viewer's feed, explained."""
    from foryou.app.ui import UiConfig, UiServer

    address = client_address("home_mixer", address, ctx_settings(ctx).data_dir)
    config = UiConfig(
        home_mixer_address=address, models_root=models_root(ctx, models), settings=ctx_settings(ctx)
    )
    server = UiServer(config, host, port)
    try:
        server.start()
    except OSError as e:
        fail(e)
    console.print(f"web page on {server.url} (home_mixer {address}); Ctrl-C stops", soft_wrap=True)

    def _stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)  # like Ctrl-C: the server stops, the command exits 0
    try:
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
