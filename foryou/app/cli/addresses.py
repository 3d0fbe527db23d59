"""The gRPC address of each service, defined once: its default and the env var that overrides it,
read both by the command serving it and by every command calling it, so they agree on a host."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import typer


@dataclass(frozen=True)
class ServiceAddress:
    default: str  # host:port when neither the flag nor the env var is given
    envvar: str  # FORYOU_<SERVICE>_ADDRESS, shared by server and clients (not per command)


HOME_MIXER = ServiceAddress("127.0.0.1:50050", "FORYOU_HOME_MIXER_ADDRESS")
THUNDER = ServiceAddress("127.0.0.1:50051", "FORYOU_THUNDER_ADDRESS")
RETRIEVAL = ServiceAddress("127.0.0.1:50052", "FORYOU_RETRIEVAL_ADDRESS")
RANKER = ServiceAddress("127.0.0.1:50053", "FORYOU_RANKER_ADDRESS")

# option types: `thunder: ThunderAddress = THUNDER.default` (typer wants the default outside Annotated)
HomeMixerAddress = Annotated[str, typer.Option(envvar=HOME_MIXER.envvar)]
ThunderAddress = Annotated[str, typer.Option(envvar=THUNDER.envvar)]
RetrievalAddress = Annotated[str, typer.Option(envvar=RETRIEVAL.envvar)]
RankerAddress = Annotated[str, typer.Option(envvar=RANKER.envvar)]
