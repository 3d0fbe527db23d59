"""Redis clients from `FORYOU_REDIS_URL`: one server, a Redis Cluster, or a Sentinel-managed master.

URL forms (docs/SCALING.md):
  redis://[user:pass@]host:port/db                      one server (redis-py's own URL; rediss:// TLS)
  redis+cluster://[user:pass@]host:port[,host:port...]  Redis Cluster: any reachable node(s) seed the
                                                        slot map (rediss+cluster:// for TLS)
  redis+sentinel://[:pass@]host:port[,host:port...]/service[/db]
                                                        the master of `service`, found through the
                                                        Sentinels (failover followed on reconnect)

On a cluster redis-py's RedisCluster does the routing: a non-transactional pipeline is split by
node and sent as one round trip per node, and `mget` below reads keys in different slots with
`mget_nonatomic` (grouped by slot; the asyncio client runs the per-slot reads concurrently). Our
code never computes slots itself. A RedisCluster answers every command our readers and ingesters
use, so callers hold it as a `redis.Redis` (the factories cast)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode as AsyncClusterNode
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.sentinel import Sentinel

CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """What a URL names: kind "single" (then `url` is passed to redis-py as is), "cluster" or
    "sentinel" (then `nodes` are the seeds / Sentinels)."""

    kind: str
    url: str
    nodes: tuple[tuple[str, int], ...] = ()
    service: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = None
    ssl: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def parse(url: str) -> RedisTarget:
    """The target a Redis URL names; ValueError for a malformed cluster / sentinel URL."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in CLUSTER_SCHEMES + SENTINEL_SCHEMES:
        return RedisTarget("single", url)
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    nodes: list[tuple[str, int]] = []
    for hp in netloc.split(","):
        host, _, port = hp.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"{scheme} URL: expected host:port[,host:port...], got {hp!r}")
        nodes.append((host.strip("[]"), int(port)))
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    ssl = scheme.startswith("rediss")
    if scheme in CLUSTER_SCHEMES:
        if parts.path.strip("/") not in ("", "0"):
            raise ValueError("Redis Cluster has only database 0")
        return RedisTarget("cluster", url, tuple(nodes), username=user, password=password, ssl=ssl)
    path = [p for p in parts.path.split("/") if p]
    if not path:
        raise ValueError("redis+sentinel URL needs the master's service name: .../<service>[/db]")
    db = int(path[1]) if len(path) > 1 else 0
    return RedisTarget("sentinel", url, tuple(nodes), path[0], db, user, password, ssl)


def _auth(t: RedisTarget) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if t.username:
        out["username"] = t.username
    if t.password:
        out["password"] = t.password
    if t.ssl:
        out["ssl"] = True
    return out


def connect(url: str, **kwargs: Any) -> redis.Redis:
    """A sync client for `url` (any form above); `kwargs` go to the connections (timeouts, retry)."""
    t = parse(url)
    if t.kind == "single":
        return redis.Redis.from_url(url, **kwargs)
    if t.kind == "cluster":
        nodes = [ClusterNode(h, p) for h, p in t.nodes]
        return cast(redis.Redis, RedisCluster(startup_nodes=nodes, **_auth(t), **kwargs))
    sentinel = Sentinel(list(t.nodes), sentinel_kwargs=_sentinel_kwargs(kwargs), **kwargs)
    return sentinel.master_for(t.service, db=t.db, **_auth(t))


def connect_async(url: str, **kwargs: Any) -> aioredis.Redis:
    """The asyncio twin of `connect`."""
    t = parse(url)
    if t.kind == "single":
        return aioredis.Redis.from_url(url, **kwargs)
    if t.kind == "cluster":
        nodes = [AsyncClusterNode(h, p) for h, p in t.nodes]
        if kwargs.pop("retry_on_timeout", None) is False:  # not a parameter of the asyncio cluster
            kwargs.setdefault("retry", Retry(NoBackoff(), 0))
        return cast(aioredis.Redis, AsyncRedisCluster(startup_nodes=nodes, **_auth(t), **kwargs))
    sentinel = AsyncSentinel(list(t.nodes), sentinel_kwargs=_sentinel_kwargs(kwargs), **kwargs)
    return sentinel.master_for(t.service, db=t.db, **_auth(t))


def _sentinel_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    # the Sentinels themselves: the same timeouts, never the data nodes' password
    return {k: v for k, v in kwargs.items() if k.startswith("socket_")}


def is_cluster(client: Any) -> bool:
    return isinstance(client, RedisCluster | AsyncRedisCluster)


def mget(client: redis.Redis, keys: Sequence[str]) -> list[Any]:
    """MGET of `keys` in order; on a cluster grouped by slot (keys of different slots)."""
    if not keys:
        return []
    if isinstance(client, RedisCluster):
        return list(client.mget_nonatomic(list(keys)))
    return cast(list[Any], client.mget(list(keys)))


async def amget(client: aioredis.Redis, keys: Sequence[str]) -> list[Any]:
    """The asyncio `mget`: on a cluster the per-slot reads run concurrently."""
    if not keys:
        return []
    if isinstance(client, AsyncRedisCluster):
        return list(await client.mget_nonatomic(list(keys)))
    return cast(list[Any], await client.mget(list(keys)))
