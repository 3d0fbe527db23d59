"""RetrievalHandler without transport: results equal exact search with the towers, exclusions,
model reload swaps the index, Redis failure degrades to an empty history."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import redis
import torch
from redis.backoff import NoBackoff
from redis.retry import Retry

from foryou.core import user_state
from foryou.core.snowflake import make_id
from phoenix.ranker.sids import SidLookup
from phoenix.retrieval.handler import REDIS_ERRORS, RetrievalHandler
from phoenix.retrieval.model import TwoTowerConfig, TwoTowerModel, save_two_tower
from protos import phoenix_pb2

NOW_MS = 1_760_000_000_000


def _checkpoint(path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    save_two_tower(path, TwoTowerModel(TwoTowerConfig.tiny()), step=seed)
    return path


def _history(post_ids: np.ndarray, author_ids: np.ndarray) -> np.ndarray:
    seq = np.zeros(len(post_ids), dtype=user_state.SEQ_DTYPE)
    seq["post_id"], seq["author_id"] = post_ids, author_ids
    seq["action_mask"] = 1 << 1
    seq["timestamp_ms"] = NOW_MS
    return seq


@pytest.fixture
def corpus() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    ids = np.array([make_id(NOW_MS + i) for i in range(300)], dtype=np.int64)
    return ids, rng.integers(1, 40, 300)


def _exact(
    handler: RetrievalHandler, user_id: int, hist: np.ndarray, ids: np.ndarray, authors: np.ndarray
) -> list[int]:
    model = handler._state[0]
    q = handler.user_vector(model, user_id, hist)
    s = model.embed_posts(ids, authors) @ q
    order = np.argsort(-s, kind="stable")
    return [int(ids[i]) for i in order if authors[i] != user_id]


def test_retrieve_equals_exact_search(tmp_path: Path, corpus: tuple[np.ndarray, np.ndarray]) -> None:
    ids, authors = corpus
    h = RetrievalHandler.from_dir(_checkpoint(tmp_path / "m", 0))
    assert h.add_posts(ids, authors) == 300
    assert h.add_posts(ids[:5], authors[:5]) == 0
    user = int(authors[0])  # this user authored some posts: they must not come back
    hist = _history(ids[:4], authors[:4])
    res = h.retrieve(user, hist, top_k=50)
    assert [p for p, _, _ in res] == _exact(h, user, hist, ids, authors)[:50]
    assert all(a != user for _, a, _ in res)
    # given exclusions are honoured; the proto path gives the same answer
    excl = [res[0][0], res[3][0]]
    req = phoenix_pb2.RetrieveRequest(user_id=user, top_k=50, exclude_post_ids=excl)
    req.action_sequence.CopyFrom(user_state.action_sequence_to_proto(hist))
    resp = h.handle(req)
    got = [c.post_id for c in resp.candidates]
    assert got == [p for p in _exact(h, user, hist, ids, authors) if p not in excl][:50]
    assert resp.model_version == h.model_version
    # removed posts are gone
    h.remove_posts([got[0]])
    assert got[0] not in [p for p, _, _ in h.retrieve(user, hist, top_k=50)]


def test_bad_input_is_a_value_error(tmp_path: Path) -> None:
    h = RetrievalHandler.from_dir(_checkpoint(tmp_path / "m", 0))
    with pytest.raises(ValueError, match="user_id"):
        h.retrieve(0, _history(np.zeros(0), np.zeros(0)))
    with pytest.raises(ValueError, match="top_k"):
        h.retrieve(5, _history(np.zeros(0), np.zeros(0)), top_k=10**6)


def test_reload_rebuilds_index_with_new_tower(tmp_path: Path, corpus: tuple[np.ndarray, np.ndarray]) -> None:
    ids, authors = corpus
    h = RetrievalHandler.from_dir(_checkpoint(tmp_path / "a", 0))
    h.add_posts(ids, authors)
    v0 = h.model_version
    hist = _history(ids[10:13], authors[10:13])
    before = [p for p, _, _ in h.retrieve(999, hist, top_k=20)]
    v1 = h.reload(_checkpoint(tmp_path / "b", 1))
    assert v1 != v0 and h.model_version == v1
    assert len(h.index) == 300
    after = [p for p, _, _ in h.retrieve(999, hist, top_k=20)]
    assert after == _exact(h, 999, hist, ids, authors)[:20]
    assert after != before
    with pytest.raises(FileNotFoundError):
        h.reload(tmp_path / "missing")
    assert h.model_version == v1  # a failed reload keeps serving the current model


def test_redis_down_degrades_to_empty_history(tmp_path: Path, corpus: tuple[np.ndarray, np.ndarray]) -> None:
    ids, authors = corpus
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    h = RetrievalHandler.from_dir(_checkpoint(tmp_path / "m", 0), redis_client=dead)
    h.add_posts(ids, authors)
    errors = REDIS_ERRORS._value.get()
    res = h.retrieve(7, None, top_k=10)
    assert REDIS_ERRORS._value.get() == errors + 1
    assert [p for p, _, _ in res] == [p for p, _, _ in h.retrieve(7, user_state.empty_sequence(), top_k=10)]


def test_reload_has_no_gap_in_service(tmp_path: Path, corpus: tuple[np.ndarray, np.ndarray]) -> None:
    """Searches running while a reload re-embeds and swaps always get a full answer."""
    ids, authors = corpus
    h = RetrievalHandler.from_dir(_checkpoint(tmp_path / "a", 0))
    h.add_posts(ids, authors)
    hist = _history(ids[:3], authors[:3])
    stop = threading.Event()
    answers: list[int] = []
    errors: list[BaseException] = []

    def search() -> None:
        while not stop.is_set():
            try:
                answers.append(len(h.retrieve(999, hist, top_k=50)))
            except BaseException as e:  # noqa: BLE001 - any failure is the assertion
                errors.append(e)

    t = threading.Thread(target=search)
    t.start()
    try:
        for seed in (1, 2, 3):
            h.reload(_checkpoint(tmp_path / f"m{seed}", seed))
    finally:
        stop.set()
        t.join(10)
    assert not errors and answers and set(answers) == {50}
    assert h.model_version.startswith("retrieval-3-")


def test_posts_updater_applies_creates_deletes_and_prunes(tmp_path: Path) -> None:
    """The live consumer's apply step: creates within retention embedded and added, a delete seen
    before its create wins, replayed creates are remembered until the replay ends, old deletes
    are forgotten."""
    from foryou.core.kafka import Decoded
    from phoenix.retrieval.service import PostsIndexUpdater
    from protos import events_pb2 as ev

    h = RetrievalHandler.from_dir(_checkpoint(tmp_path / "m", 0))
    up = PostsIndexUpdater(h)
    now = int(time.time() * 1000)
    fresh = [make_id(now - 60_000 + i) for i in range(4)]
    stale = make_id(now - 3 * 24 * 3_600_000)  # beyond the 48 h retention

    def create(p: int) -> ev.PostEvent:
        return ev.PostEvent(create=ev.Post(post_id=p, author_id=9))

    def delete(p: int) -> ev.PostEvent:
        return ev.PostEvent(delete=ev.PostDelete(post_id=p))

    events = [delete(fresh[3]), create(fresh[0]), create(fresh[1]), create(stale), create(fresh[3])]
    up([Decoded(e, "posts", 0, i, now, None) for i, e in enumerate(events)])
    assert set(h.index.live_posts()[0].tolist()) == {fresh[0], fresh[1]} and up.embedded == 2
    up(
        [
            Decoded(delete(fresh[1]), "posts", 0, 9, now, None),
            Decoded(create(fresh[2]), "posts", 0, 10, now, None),
        ]
    )
    assert set(h.index.live_posts()[0].tolist()) == {fresh[0], fresh[2]}
    assert set(up.end_replay().tolist()) == {fresh[0], fresh[1], fresh[2], fresh[3], stale}
    up([Decoded(create(fresh[0]), "posts", 0, 11, now, None)])  # re-delivered: nothing embedded
    assert up.embedded == 3 and up.applied == 8
    up.prune(now + 3 * 24 * 3_600_000)  # every remembered delete is past retention by then
    assert not up._deleted


def test_semantic_ids_shape_vectors_history_and_snapshots(
    tmp_path: Path, corpus: tuple[np.ndarray, np.ndarray]
) -> None:
    ids, authors = corpus
    authors = authors.copy()
    authors[[7, 14]] = authors[0]  # same author and (below) same cluster as post 0
    codes = np.arange(len(ids))[:, None] % 7 + 1  # 7 content clusters, level-1 codes 1..7
    sids = SidLookup(ids[:200], codes[:200])  # the last 100 posts have no SID
    ckpt = _checkpoint(tmp_path / "m", 0)
    h = RetrievalHandler.from_dir(ckpt, sids=sids)
    plain = RetrievalHandler.from_dir(ckpt)
    h.add_posts(ids, authors)
    plain.add_posts(ids, authors)
    model = h._state[0]
    vec_sid = h.index._index.reconstruct_n(0, len(ids))
    vec_id = plain.index._index.reconstruct_n(0, len(ids))
    np.testing.assert_allclose(vec_sid, model.embed_posts(ids, authors, sids=sids), atol=1e-6)
    # posts with a SID are embedded from it (same author + same cluster = same vector) ...
    same = [i for i in range(1, 200) if authors[i] == authors[0] and codes[i, 0] == codes[0, 0]]
    assert 7 in same and 14 in same
    assert not np.allclose(vec_sid[:200], vec_id[:200], atol=1e-4)
    for i in same:
        np.testing.assert_allclose(vec_sid[i], vec_sid[0], atol=1e-6)
    # ... posts without one keep their post-id rows
    np.testing.assert_allclose(vec_sid[200:], vec_id[200:], atol=1e-6)
    # the user tower sees SIDs in the history too
    hist = _history(ids[:5], authors[:5])
    assert not np.allclose(h.user_vector(model, 3, hist), plain.user_vector(model, 3, hist), atol=1e-5)
    # a snapshot embedded with one lookup is not loaded by a handler with another (or none)
    snap = tmp_path / "snap"
    h.save_snapshot(snap)
    assert not RetrievalHandler.from_dir(ckpt).load_snapshot(snap)
    assert not RetrievalHandler.from_dir(ckpt, sids=SidLookup(ids[:200], codes[:200] + 1)).load_snapshot(snap)
    again = RetrievalHandler.from_dir(ckpt, sids=SidLookup(ids[:200], codes[:200]))
    assert again.load_snapshot(snap) and len(again.index) == len(ids)
