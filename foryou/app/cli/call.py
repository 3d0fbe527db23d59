"""`foryou call SERVICE METHOD JSON`: call any method of a running service through gRPC server
reflection (foryou.app.client.call) and print the response as JSON: no grpcurl needed."""

from __future__ import annotations

from typing import Annotated

import typer

from foryou.app.cli.common import ctx_settings, fail, print_json


def call(
    ctx: typer.Context,
    service: Annotated[
        str,
        typer.Argument(
            help="home_mixer | thunder | ranker | retrieval, or a full gRPC service name "
            "(foryou.home_mixer.ScoredPostsService)"
        ),
    ],
    method: Annotated[str, typer.Argument(help="e.g. GetScoredPosts")],
    body: Annotated[str, typer.Argument(help="The request as JSON, e.g. '{\"viewer_id\": 42}'")] = "{}",
    address: Annotated[
        str | None,
        typer.Option(
            help="host:port (default: FORYOU_<SERVICE>_ADDRESS, else the running `foryou up`'s "
            "address file, else the service's default port)"
        ),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds")] = 10.0,
) -> None:
    """Call a service method with a JSON request; prints the JSON response (proto3 mapping:
    field names as in the .proto, 64-bit integers as strings)."""
    import grpc

    from foryou.app.client import SERVICE_NAMES, find_address, short_name
    from foryou.app.client import call as call_rpc

    settings = ctx_settings(ctx)
    where = address or ""
    try:
        short = short_name(service)
        where = find_address(short, address, settings.data_dir)
        response = call_rpc(where, SERVICE_NAMES[short], method, body, settings, timeout)
    except ValueError as e:
        fail(e)
    except grpc.RpcError as e:
        fail(ValueError(f"{service} at {where}: {e.code().name}: {' '.join(str(e.details()).split())}"))
    print_json(response)
