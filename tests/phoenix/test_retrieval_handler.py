"""RetrievalHandler without transport: results equal exact search with the towers, exclusions,
model reload swaps the index, Redis failure degrades to an empty history."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import redis
import torch

from foryou import user_state
from foryou.snowflake import make_id
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
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    h = RetrievalHandler.from_dir(_checkpoint(tmp_path / "m", 0), redis_client=dead)
    h.add_posts(ids, authors)
    errors = REDIS_ERRORS._value.get()
    res = h.retrieve(7, None, top_k=10)
    assert REDIS_ERRORS._value.get() == errors + 1
    assert [p for p, _, _ in res] == [p for p, _, _ in h.retrieve(7, user_state.empty_sequence(), top_k=10)]
