"""Limits on what a Phoenix client controls, shared by the ranker and retrieval servers.

* Request size: a service is registered with a byte limit per method; a request above it is never
  parsed (parsing 1M candidates costs hundreds of MB before any count can be checked) and reaches
  the servicer as an `OversizedRequest`, answered INVALID_ARGUMENT. The limit is the worst-case
  encoding of the largest valid request (`worst_case_bytes`), so a valid request is never refused
  by it; the counts themselves (candidates, history, exclusions) are checked on the parsed
  message with precise messages.
* Model reloads: `ReloadModel` paths must resolve (symlinks, "..") inside a models root; a
  checkpoint that cannot be loaded is reported as one line (`CheckpointLoadError`), the details go
  to the log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import Message

from protos import phoenix_pb2

log = logging.getLogger(__name__)

# room for fields a newer client may add, and for the framing of the top-level message
_HEADROOM_BYTES = 64 << 10


@dataclass(frozen=True, slots=True)
class OversizedRequest:
    """What the servicer receives instead of a request whose encoding exceeds the method's limit."""

    nbytes: int
    limit: int

    def message(self, what: str) -> str:
        return (
            f"request is {self.nbytes:,} bytes; at most {self.limit:,} allowed ({what}); "
            "split it into smaller requests"
        )


def _varint_len(n: int) -> int:
    return max(1, (n.bit_length() + 6) // 7)


def repeated_bytes(element: Message, count: int) -> int:
    """Worst-case bytes of `count` copies of `element` in a repeated message field (tag ≤ 15)."""
    size = element.ByteSize()
    return count * (1 + _varint_len(size) + size)


# -1 encodes as a 10-byte varint (ids, and enum values the stubs type as the enum): the worst case
WIDEST_VARINT: Any = -1


def history_bytes(max_items: int) -> int:
    """Worst-case bytes of an `action_sequence` field with `max_items` items (tag, length, items)."""
    item = phoenix_pb2.HistoryItem(
        post_id=-1,
        author_id=-1,
        action_mask=2**64 - 1,
        product_surface=WIDEST_VARINT,
        timestamp_ms=-1,
        dwell_ms=-1,
    )
    return 1 + 5 + repeated_bytes(item, max_items)


def worst_case_bytes(*parts: int) -> int:
    """A byte limit from the worst-case sizes of a request's parts, plus headroom."""
    return sum(parts) + _HEADROOM_BYTES


def _guarded(deserialize: Callable[[bytes], Any], limit: int) -> Callable[[bytes], Any]:
    def parse(raw: bytes) -> Any:
        if len(raw) > limit:
            return OversizedRequest(len(raw), limit)
        return deserialize(raw)

    return parse


def size_guarded_adder(
    service: ServiceDescriptor, max_request_bytes: Mapping[str, int]
) -> Callable[[Any, Any], None]:
    """`add_XServicer_to_server` for the unary service `service`, with the methods named in
    `max_request_bytes` refusing (as `OversizedRequest`) requests over their limit before parsing.
    Works for grpc.Server and grpc.aio.Server. The handler table is built from the descriptor, so a
    method added to the proto is registered here too."""

    def add(servicer: Any, server: Any) -> None:
        handlers: dict[str, grpc.RpcMethodHandler] = {}
        for m in service.methods:
            if m.client_streaming or m.server_streaming:
                raise ValueError(f"{service.full_name}.{m.name}: only unary methods are supported")
            req = message_factory.GetMessageClass(m.input_type)
            resp = message_factory.GetMessageClass(m.output_type)
            limit = max_request_bytes.get(m.name)
            handlers[m.name] = grpc.unary_unary_rpc_method_handler(
                getattr(servicer, m.name),
                request_deserializer=req.FromString if limit is None else _guarded(req.FromString, limit),
                response_serializer=resp.SerializeToString,
            )
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
        server.add_registered_method_handlers(service.full_name, handlers)

    return add


# --- model reloads ---


class CheckpointLoadError(ValueError):
    """A checkpoint that exists but cannot be loaded (truncated, wrong shapes, bad JSON…)."""


def models_root(configured: str, model_dir: str | Path | None) -> Path | None:
    """The directory reloads may come from: the configured one, else the directory holding the
    checkpoint the service started from; None (no reloads) when neither is known."""
    if configured:
        return Path(configured).resolve()
    if model_dir is not None:
        return Path(model_dir).resolve().parent
    return None


def resolve_reload_path(path: str | Path, root: Path | None) -> Path:
    """`path` (relative paths are taken inside the root) resolved; PermissionError when it is
    outside the root after following symlinks and "..", or when no root is configured."""
    if root is None:
        raise PermissionError("model reloads are disabled: no models root configured")
    p = (root / Path(path)).resolve()  # an absolute `path` replaces the root here
    if not p.is_relative_to(root):
        raise PermissionError(f"{path} is outside the models root {root}")
    return p


def load_checkpoint(load: Callable[[Path], Any], path: Path, kind: str) -> Any:
    """`load(path)`; a missing checkpoint stays FileNotFoundError, any other failure becomes a
    one-line CheckpointLoadError (the traceback goes to the log, not to the caller)."""
    try:
        return load(path)
    except FileNotFoundError:
        raise
    except Exception as e:
        log.warning("%s checkpoint %s cannot be loaded", kind, path, exc_info=True)
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise CheckpointLoadError(
            f"{path}: not a loadable {kind} checkpoint ({type(e).__name__}: {first})"
        ) from e
