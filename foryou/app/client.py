"""A small Python client for a running stack (`foryou up`, `foryou serve …`), so that no extra tool
is needed to call the services:

    from foryou.app.client import Client

    client = Client()  # the running `foryou up` of the data directory (<data_dir>/addresses.json)
    feed = client.feed(42)  # GetScoredPostsResponse
    for post in feed.scored_posts:
        print(post.post_id, post.score)
    client.log_engagements([{"user_id": 42, "post_id": 7, "action": 1, "timestamp_ms": 1790000000000}])
    client.call("home_mixer", "GetScoredPosts", {"viewer_id": 42})  # any method, as JSON

`call` works for every service and method through gRPC server reflection (the servers have it on):
the request is built from JSON with the message types the server describes; `foryou call` is this
method on the command line.

Addresses: the `address` argument, else FORYOU_<SERVICE>_ADDRESS, else the running `foryou up`'s
address file, else the service's default port. TLS follows the settings (FORYOU_TLS_*)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from foryou.app import running
from foryou.core.settings import Settings
from foryou.core.tls import channel
from protos import events_pb2, home_mixer_pb2_grpc
from protos import home_mixer_pb2 as hm

# the gRPC service behind each short name (`foryou call home_mixer …`)
SERVICE_NAMES = {
    "home_mixer": "foryou.home_mixer.ScoredPostsService",
    "thunder": "foryou.thunder.InNetworkPostsService",
    "ranker": "foryou.phoenix.RankingService",
    "retrieval": "foryou.phoenix.RetrievalService",
}


def find_address(service: str, address: str | None = None, data_dir: str | None = None) -> str:
    """Where `service` (a short name: home_mixer, thunder, ranker, retrieval) listens
    (foryou.app.running.find_address; the data directory defaults to the settings')."""
    return running.find_address(service, address, data_dir or Settings.from_env().data_dir)


def short_name(service: str) -> str:
    """`home_mixer` or `foryou.home_mixer.ScoredPostsService` (or its last part) -> `home_mixer`."""
    if service in SERVICE_NAMES:
        return service
    for short, full in SERVICE_NAMES.items():
        if service in (full, full.rsplit(".", 1)[1]):
            return short
    known = ", ".join([*SERVICE_NAMES, *SERVICE_NAMES.values()])
    raise ValueError(f"unknown service {service!r}: one of {known}")


def call(
    address: str,
    service: str,
    method: str,
    body: Mapping[str, Any] | str = "{}",
    settings: Settings | None = None,
    timeout_s: float = 10.0,
) -> dict[str, Any]:
    """Call `service`.`method` at `address` with a JSON body (a dict or JSON text), using the
    server's reflection for the message types; returns the response as the proto3 JSON mapping
    (field names as in the .proto, 64-bit integers as strings). Raises grpc.RpcError (unreachable,
    no such method on the server), ValueError (a body that does not fit the request type)."""
    import json

    from google.protobuf import descriptor_pool, json_format, message_factory
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
        ProtoReflectionDescriptorDatabase,
    )

    full = SERVICE_NAMES.get(service, service)
    text = body if isinstance(body, str) else json.dumps(body)
    with channel(address, settings) as ch:
        pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(ch))
        try:
            svc = pool.FindServiceByName(full)
        except KeyError:
            raise ValueError(f"{address} does not serve {full}") from None
        m = svc.methods_by_name.get(method)
        if m is None:
            raise ValueError(f"{full} has no method {method!r}: one of {', '.join(svc.methods_by_name)}")
        request_cls = message_factory.GetMessageClass(m.input_type)
        response_cls = message_factory.GetMessageClass(m.output_type)
        try:
            request = json_format.Parse(text, request_cls())
        except json_format.ParseError as e:
            raise ValueError(f"the body is not a {m.input_type.full_name}: {e}") from None
        rpc = ch.unary_unary(
            f"/{full}/{method}",
            request_serializer=lambda r: r.SerializeToString(),
            response_deserializer=response_cls.FromString,
        )
        response = rpc(request, timeout=timeout_s)
    return json_format.MessageToDict(response, preserving_proto_field_name=True)


class Client:
    """home_mixer's API in Python: `feed`, `debug_feed`, `log_engagements`; `call` for any method of
    any service. Each call opens its own channel (a client for scripts, not a hot loop)."""

    def __init__(
        self,
        address: str | None = None,
        *,
        settings: Settings | None = None,
        data_dir: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self.settings = settings or Settings.from_env()
        self.data_dir = data_dir or self.settings.data_dir
        self.address = find_address("home_mixer", address, self.data_dir)
        self.timeout_s = timeout_s

    def feed(self, viewer_id: int, **request: Any) -> hm.GetScoredPostsResponse:
        """The served feed of `viewer_id`; other GetScoredPostsRequest fields as keywords."""
        req = hm.GetScoredPostsRequest(viewer_id=viewer_id, **request)
        with channel(self.address, self.settings) as ch:
            stub = home_mixer_pb2_grpc.ScoredPostsServiceStub(ch)
            return stub.GetScoredPosts(req, timeout=self.timeout_s)

    def debug_feed(self, viewer_id: int, **request: Any) -> hm.GetDebugScoredPostsResponse:
        """Every candidate of `viewer_id`'s feed with its scores and the filter that removed it."""
        req = hm.GetDebugScoredPostsRequest(query=hm.GetScoredPostsRequest(viewer_id=viewer_id, **request))
        with channel(self.address, self.settings) as ch:
            stub = home_mixer_pb2_grpc.ScoredPostsServiceStub(ch)
            return stub.GetDebugScoredPosts(req, timeout=self.timeout_s)

    def log_engagements(self, events: Iterable[events_pb2.EngagementEvent | Mapping[str, Any]]) -> int:
        """Log engagement events (EngagementEvent messages or dicts of its fields); returns how many
        Kafka acknowledged."""
        batch = [
            e if isinstance(e, events_pb2.EngagementEvent) else events_pb2.EngagementEvent(**e)
            for e in events
        ]
        with channel(self.address, self.settings) as ch:
            stub = home_mixer_pb2_grpc.ScoredPostsServiceStub(ch)
            resp = stub.LogEngagements(hm.LogEngagementsRequest(events=batch), timeout=self.timeout_s)
        return int(resp.accepted)

    def call(
        self, service: str, method: str, body: Mapping[str, Any] | str = "{}", address: str | None = None
    ) -> dict[str, Any]:
        """Any method of any service by reflection (see `call`); the address of a service other than
        home_mixer comes from `address`, its env var or the running stack's address file."""
        short = short_name(service)
        where = address or (
            self.address if short == "home_mixer" else find_address(short, None, self.data_dir)
        )
        return call(where, SERVICE_NAMES[short], method, body, self.settings, self.timeout_s)
