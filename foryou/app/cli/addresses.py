"""The gRPC address of each service, defined once: its default and the env var that overrides it,
read both by the command serving it and by every command calling it, so they agree on a host."""

from __future__ import annotations

from typing import Annotated

import typer

# defined in foryou.app.running (shared with foryou.app.client, which does not import the CLI)
from foryou.app.running import (
    HOME_MIXER,
    INGEST,
    RANKER,
    RETRIEVAL,
    SERVICES,
    THUNDER,
    ServiceAddress,
)

__all__ = ["HOME_MIXER", "INGEST", "RANKER", "RETRIEVAL", "SERVICES", "THUNDER", "ServiceAddress"]

# option types: `thunder: ThunderAddress = THUNDER.default` (typer wants the default outside Annotated)
HomeMixerAddress = Annotated[str, typer.Option(envvar=HOME_MIXER.envvar)]
ThunderAddress = Annotated[str, typer.Option(envvar=THUNDER.envvar)]
RetrievalAddress = Annotated[str, typer.Option(envvar=RETRIEVAL.envvar)]
RankerAddress = Annotated[str, typer.Option(envvar=RANKER.envvar)]
IngestAddress = Annotated[str, typer.Option(envvar=INGEST.envvar, help="gRPC health address")]

# a client's address option: unset = the running `foryou up` (foryou.app.running), else the default
ClientAddress = Annotated[
    str | None,
    typer.Option(
        envvar=HOME_MIXER.envvar,
        help="home_mixer host:port (default: the running `foryou up` of the data directory, "
        f"else {HOME_MIXER.default})",
    ),
]


def client_address(service: str, given: str | None, data_dir: str) -> str:
    """Where a client finds `service`: the flag or env var when given, else the address the running
    `foryou up` of `data_dir` recorded (<data_dir>/addresses.json), else the service's default."""
    from foryou.app.running import find_address

    return find_address(service, given, data_dir)
