"""In-process fakes of home_mixer's dependencies (unit tests of home_mixer components only) and
candidate/query builders."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from foryou.core import user_state as us
from foryou.core.snowflake import make_id, timestamp_ms
from foryou.core.user_state import AuthorData, SocialGraph
from home_mixer.candidate import PostCandidate
from home_mixer.params import ACTION_HEADS
from home_mixer.query import ScoredPostsQuery, UserFeatures
from protos import events_pb2, phoenix_pb2, thunder_pb2

NOW_MS = int(time.time() * 1000)


def pid(age_s: float = 60.0, seq: int = 0, now_ms: int = NOW_MS) -> int:
    """A post id created `age_s` seconds before now."""
    return make_id(int(now_ms - age_s * 1000), seq)


def cand(post_id: int | None = None, author_id: int = 10, **kw: Any) -> PostCandidate:
    return PostCandidate(
        post_id=post_id if post_id is not None else pid(seq=author_id), author_id=author_id, **kw
    )


def query(viewer_id: int = 1, **kw: Any) -> ScoredPostsQuery:
    uf = kw.pop("user_features", None) or UserFeatures()
    return ScoredPostsQuery(viewer_id=viewer_id, now_ms=NOW_MS, user_features=uf, **kw)


def history() -> phoenix_pb2.ActionSequence:
    """A viewer history of one engagement (post 3 by author 10): enough for the ranker to run."""
    seq = phoenix_pb2.ActionSequence()
    seq.items.add(post_id=3, author_id=10, action_mask=2)
    return seq


def write_history(r: Any, viewer: int, prefix: str) -> None:
    """The viewer's history in Redis (`r`, a redis client), as the action-sequence ingester writes
    it: two engagements, with posts 1 and 2 of authors 100 and 101."""
    items = us.sequence_items(
        np.array([1, 2]),
        np.array([100, 101]),
        np.array([1, 29]),
        np.array([1, 1]),
        np.array([1, 2]),
        np.zeros(2),
    )
    r.set(us.seq_key(viewer, prefix), us.encode_sequence(items))


class FakeThunder:
    def __init__(self, posts: Sequence[thunder_pb2.LightPost] = (), fail: bool = False) -> None:
        self.posts, self.fail, self.requests = list(posts), fail, []

    async def get_in_network_posts(self, request: thunder_pb2.GetInNetworkPostsRequest) -> Any:
        self.requests.append(request)
        if self.fail:
            raise ConnectionError("thunder down")
        follow = set(request.following_user_ids)
        excl = set(request.exclude_post_ids)
        posts = [p for p in self.posts if p.author_id in follow and p.post_id not in excl]
        return thunder_pb2.GetInNetworkPostsResponse(posts=posts[: request.max_results])


class FakeRetrieval:
    def __init__(self, candidates: Sequence[tuple[int, int, float]] = (), fail: bool = False) -> None:
        self.candidates, self.fail, self.requests = list(candidates), fail, []

    async def retrieve(self, request: phoenix_pb2.RetrieveRequest) -> phoenix_pb2.RetrieveResponse:
        self.requests.append(request)
        if self.fail:
            raise ConnectionError("retrieval down")
        excl = set(request.exclude_post_ids)
        return phoenix_pb2.RetrieveResponse(
            candidates=[
                phoenix_pb2.RetrievedCandidate(post_id=p, author_id=a, score=s)
                for p, a, s in self.candidates
                if p not in excl
            ][: request.top_k or 1000],
            model_version="retr-test",
        )


class FakeRanker:
    """Deterministic probabilities: favorite = probs.get(post_id, 0.1); other heads 0."""

    def __init__(self, probs: dict[int, float] | None = None, fail: bool = False, **heads: float) -> None:
        self.probs, self.fail, self.heads, self.requests = probs or {}, fail, heads, []

    async def predict(self, request: phoenix_pb2.PredictRequest) -> phoenix_pb2.PredictResponse:
        self.requests.append(request)
        if self.fail:
            raise ConnectionError("ranker down")
        out = phoenix_pb2.PredictResponse(model_version="rank-test")
        for c in request.candidates:
            probs = [0.0] * 64
            probs[ACTION_HEADS["favorite"]] = self.probs.get(c.post_id, 0.1)
            for h, v in self.heads.items():
                probs[ACTION_HEADS[h]] = v
            out.predictions.add(post_id=c.post_id, action_probs=probs, continuous=[0.0] * 8)
        return out


class FakeUserState:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.graphs: dict[int, SocialGraph] = {}
        self.sequences: dict[int, phoenix_pb2.ActionSequence] = {}
        self.posts: dict[int, events_pb2.Post] = {}
        self.authors: dict[int, AuthorData] = {}
        self.served: dict[int, list[int]] = {}
        self.mget_calls = 0
        self.followers: dict[int, set[int]] = {}  # user -> who follows them
        self.counts: dict[int, tuple[int, int]] = {}  # post -> (views, favs)
        self.popular: list[tuple[int, int, int]] = []  # (post, author, views)

    def _check(self) -> None:
        if self.fail:
            raise ConnectionError("redis down")

    async def read_social_graph(self, user_id: int) -> SocialGraph:
        self._check()
        return self.graphs.get(user_id, SocialGraph(user_id))

    async def read_action_sequence(self, user_id: int) -> phoenix_pb2.ActionSequence:
        self._check()
        return self.sequences.get(user_id, phoenix_pb2.ActionSequence())

    async def mget_posts(self, post_ids: Sequence[int]) -> list[events_pb2.Post | None]:
        self._check()
        self.mget_calls += 1
        return [self.posts.get(p) for p in post_ids]

    async def mget_authors(self, author_ids: Sequence[int]) -> list[AuthorData | None]:
        self._check()
        return [self.authors.get(a) for a in author_ids]

    async def authors_blocking(self, viewer_id: int, author_ids: Sequence[int]) -> set[int]:
        self._check()
        return {a for a in author_ids if viewer_id in self.graphs.get(a, SocialGraph(a)).blocked}

    async def add_served(self, viewer_id: int, post_ids: Sequence[int], ttl_s: int, max_n: int) -> None:
        self._check()
        self.served.setdefault(viewer_id, []).extend(post_ids)

    async def read_served(self, viewer_id: int) -> list[int]:
        return self.served.get(viewer_id, [])

    async def followed_by(self, viewer_id: int, author_ids: Sequence[int]) -> set[int]:
        self._check()
        return set(author_ids) & self.followers.get(viewer_id, set())

    async def mget_engagement_counts(self, post_ids: Sequence[int]) -> list[tuple[int, int] | None]:
        self._check()
        return [self.counts.get(p) for p in post_ids]

    async def popular_posts(self, hours: Sequence[int], per_hour: int) -> list[tuple[int, int, int]]:
        self._check()
        hs = set(hours)
        rows = [r for r in self.popular if timestamp_ms(r[0]) // 3_600_000 in hs]
        return sorted(rows, key=lambda r: -r[2])[: per_hour * len(hs)]


def small_world(oon_author: Callable[[int], int] = lambda i: 50) -> SimpleNamespace:
    """Viewer 1 follows author 10 and has a history: 20 posts in the store, the odd ones author 10's
    (in-network, from Thunder), the even ones out-of-network from retrieval (author `oon_author(i)`,
    model version "retr-test")."""
    store = FakeUserState()
    store.graphs[1] = SocialGraph(1, following=frozenset({10}))
    store.sequences[1] = history()
    light, oon = [], []
    for i in range(20):
        p = pid(age_s=100 + i, seq=i)
        author = 10 if i % 2 else oon_author(i)
        store.posts[p] = events_pb2.Post(post_id=p, author_id=author, text=f"post {i}")
        if i % 2:
            light.append(thunder_pb2.LightPost(post_id=p, author_id=10))
        else:
            oon.append((p, author, 0.3))
    return SimpleNamespace(
        store=store, thunder=FakeThunder(light), retrieval=FakeRetrieval(oon), ranker=FakeRanker()
    )


@pytest.fixture
def fakes() -> SimpleNamespace:
    return SimpleNamespace(
        Thunder=FakeThunder,
        Retrieval=FakeRetrieval,
        Ranker=FakeRanker,
        UserState=FakeUserState,
        cand=cand,
        query=query,
        pid=pid,
        history=history,
        write_history=write_history,
        small_world=small_world,
        NOW_MS=NOW_MS,
    )
