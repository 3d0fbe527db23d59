"""Two-tower model and index units: unit-norm towers, checkpoint round trip, index add/remove/evict,
search equals exact search, snapshots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from foryou.core.snowflake import make_id
from phoenix.ranker.data import make_batch
from phoenix.ranker.features import CandidateArrays, HistoryArrays, build_batch
from phoenix.retrieval.index import IndexConfig, PostIndex
from phoenix.retrieval.model import TwoTowerConfig, TwoTowerModel, load_two_tower, save_two_tower

NOW_MS = 1_760_000_000_000


def _history(cfg: TwoTowerConfig, n_hist: int, user_id: int = 7) -> HistoryArrays:
    rng = np.random.default_rng(n_hist)
    return HistoryArrays.single(
        user_id,
        rng.integers(1, 10**12, n_hist),
        rng.integers(1, 1000, n_hist),
        np.full(n_hist, 1 << 1, dtype=np.uint64),
        np.zeros(n_hist, dtype=np.int64),
        np.zeros(n_hist, dtype=np.int64),
        cfg.trunk.history_len,
    )


def _batch(cfg: TwoTowerConfig, n_hist: int, user_id: int = 7):  # noqa: ANN202
    empty = CandidateArrays(
        np.zeros((1, 1), np.int64), np.zeros((1, 1), np.int64), np.zeros((1, 1), np.int64)
    )
    return build_batch(cfg.hash_config, _history(cfg, n_hist, user_id), empty)


def test_tower_outputs_are_unit_norm() -> None:
    torch.manual_seed(0)
    cfg = TwoTowerConfig.tiny()
    m = TwoTowerModel(cfg).eval()
    with torch.no_grad():
        for n_hist in (0, 3, 40):  # empty, short, longer than history_len
            u = m.user_embed(_batch(cfg, n_hist))
            assert u.shape == (1, cfg.dim)
            assert torch.allclose(u.norm(dim=-1), torch.ones(1), atol=1e-5)
        v = m.embed_posts(np.arange(1, 50), np.arange(1, 50) % 7 + 1)
    assert v.shape == (49, cfg.dim)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)


def test_user_tower_ignores_padding_and_depends_on_history() -> None:
    torch.manual_seed(0)
    cfg = TwoTowerConfig.tiny()
    m = TwoTowerModel(cfg).eval()
    with torch.no_grad():
        a = m.user_embed(_batch(cfg, 5))
        b = m.user_embed(_batch(cfg, 6))
        # the same 5 items padded into a batch with a longer history give the same vector
        h5, h9 = _history(cfg, 5), _history(cfg, 9)
        both = HistoryArrays(
            *(np.concatenate([getattr(h5, f), getattr(h9, f)]) for f in h5.__dataclass_fields__)
        )
        cand = CandidateArrays(*(np.zeros((2, 1), np.int64) for _ in range(3)))
        ab = m.user_embed(build_batch(cfg.hash_config, both, cand))
    assert torch.allclose(ab[0], a[0], atol=1e-5)
    assert not torch.allclose(a, b, atol=1e-3)


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    cfg = TwoTowerConfig.tiny()
    m = TwoTowerModel(cfg).eval()
    version = save_two_tower(tmp_path, m, step=3)
    m2, meta = load_two_tower(tmp_path)
    assert meta["model_version"] == version
    assert (tmp_path / "model.safetensors").exists()
    ids = np.arange(1, 20)
    np.testing.assert_allclose(m.embed_posts(ids, ids), m2.embed_posts(ids, ids), atol=1e-6)
    assert make_batch is not None  # the training path reuses the ranker's batch builder


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    v = rng.standard_normal((n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _post_ids(n: int, start_ms: int = NOW_MS) -> np.ndarray:
    return np.array([make_id(start_ms + i) for i in range(n)], dtype=np.int64)


def test_index_add_remove_and_exact_search() -> None:
    rng = np.random.default_rng(0)
    d = 16
    idx = PostIndex(d, IndexConfig(exact_max_size=10_000))
    ids, authors, vecs = _post_ids(500), rng.integers(1, 20, 500), _unit(rng, 500, d)
    assert idx.add(ids, authors, vecs) == 500
    assert idx.add(ids[:10], authors[:10], vecs[:10]) == 0  # idempotent
    q = _unit(rng, 1, d)[0]
    got = [p for p, _, _ in idx.search(q, 50)]
    want = ids[np.argsort(-(vecs @ q), kind="stable")[:50]].tolist()
    assert got == want
    assert got == idx.exact_search(q, 50)
    # remove the best 5: they are never returned again; the rest moves up
    assert idx.remove(want[:5]) == 5
    got2 = [p for p, _, _ in idx.search(q, 45)]
    assert got2 == want[5:50]
    assert len(idx) == 495 and want[0] not in idx
    # exclusions: given ids and the user's own posts (author)
    own_author = int(idx.author_of(want[6]))
    res = idx.search(q, 30, exclude_post_ids=[want[5]], exclude_author_id=own_author)
    assert len(res) == 30
    assert all(a != own_author and p != want[5] for p, a, _ in res)
    scores = [s for _, _, s in res]
    assert scores == sorted(scores, reverse=True)


def test_index_compacts_after_many_removals() -> None:
    rng = np.random.default_rng(1)
    d = 8
    idx = PostIndex(d, IndexConfig(compact_fraction=0.25))
    ids, vecs = _post_ids(200), _unit(rng, 200, d)
    idx.add(ids, np.ones(200, np.int64), vecs)
    idx.remove(ids[:100])
    assert idx.stats()["slots"] == 100  # rebuilt from live vectors
    q = vecs[150]
    assert idx.search(q, 1)[0][0] == int(ids[150])
    assert idx.exact_search(q, 20) == [p for p, _, _ in idx.search(q, 20)]


def test_index_evicts_posts_older_than_retention() -> None:
    rng = np.random.default_rng(2)
    d = 8
    idx = PostIndex(d, IndexConfig(retention_ms=3_600_000))
    old = _post_ids(30, NOW_MS - 2 * 3_600_000)
    new = _post_ids(30, NOW_MS - 60_000)
    idx.add(np.r_[old, new], np.ones(60, np.int64), _unit(rng, 60, d))
    assert idx.evict(NOW_MS) == 30
    assert len(idx) == 30
    returned = {p for p, _, _ in idx.search(_unit(rng, 1, d)[0], 60)}
    assert returned == set(new.tolist())


def test_hnsw_recall_and_snapshot(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    d = 16
    idx = PostIndex(d, IndexConfig(exact_max_size=100, large_kind="hnsw", hnsw_m=16, ef_search=200))
    ids, vecs = _post_ids(2_000), _unit(rng, 2_000, d)
    idx.add(ids[:50], np.ones(50, np.int64), vecs[:50])
    assert idx.kind == "flat"
    idx.add(ids[50:], np.ones(1_950, np.int64), vecs[50:])
    assert idx.kind == "hnsw"  # switched type above the threshold
    idx.remove(ids[:10])
    qs = _unit(rng, 20, d)
    recall = np.mean(
        [len(set(idx.exact_search(q, 100)) & {p for p, _, _ in idx.search(q, 100)}) / 100 for q in qs]
    )
    assert recall >= 0.9
    idx.save(tmp_path / "snap")
    loaded = PostIndex.load(tmp_path / "snap")
    assert len(loaded) == len(idx) == 1_990 and loaded.kind == "hnsw"
    assert [p for p, _, _ in loaded.search(qs[0], 20)] == [p for p, _, _ in idx.search(qs[0], 20)]
    assert int(ids[0]) not in {p for p, _, _ in loaded.search(vecs[0], 5)}


@pytest.mark.parametrize("kind", ["ivf", "pq"])
def test_trained_index_recall_removal_and_snapshot(tmp_path: Path, kind: str) -> None:
    rng = np.random.default_rng(4)
    d = 16
    idx = PostIndex(d, IndexConfig(exact_max_size=500, large_kind=kind, ivf_nprobe=32))
    ids, vecs = _post_ids(3_000), _unit(rng, 3_000, d)
    idx.add(ids[:400], np.ones(400, np.int64), vecs[:400])
    assert idx.kind == "flat"
    idx.add(ids[400:2_500], np.ones(2_100, np.int64), vecs[400:2_500])
    assert idx.kind == kind  # trained on the old and the new vectors when crossing the threshold
    idx.add(ids[2_500:], np.ones(500, np.int64), vecs[2_500:])  # incremental adds to the trained lists
    idx.remove(ids[:10])
    qs = _unit(rng, 20, d)
    recall = np.mean(
        [len(set(idx.exact_search(q, 100)) & {p for p, _, _ in idx.search(q, 100)}) / 100 for q in qs]
    )
    assert recall >= 0.9
    assert int(ids[0]) not in {p for p, _, _ in idx.search(vecs[0], 5)}
    assert idx.search(vecs[2_900], 1)[0][0] == int(ids[2_900])
    assert idx.memory_bytes() > 3_000 * d * 4
    idx.save(tmp_path / "snap")
    loaded = PostIndex.load(tmp_path / "snap")
    assert len(loaded) == 2_990 and loaded.kind == kind
    assert [p for p, _, _ in loaded.search(qs[0], 20)] == [p for p, _, _ in idx.search(qs[0], 20)]
    loaded.remove(ids[10:1_000])  # compaction rebuilds (and retrains) from reconstructed vectors
    assert loaded.stats()["slots"] == 2_000 and loaded.kind == kind
    assert loaded.search(vecs[2_900], 1)[0][0] == int(ids[2_900])


def test_search_widens_when_own_posts_fill_the_top() -> None:
    """The viewer wrote the 60 posts nearest the query (more than the over-fetch margin): the
    search widens until it has top_k posts by others."""
    rng = np.random.default_rng(5)
    d = 8
    q = _unit(rng, 1, d)[0]
    near = q + 0.01 * rng.normal(size=(60, d))
    vecs = np.r_[near / np.linalg.norm(near, axis=1, keepdims=True), _unit(rng, 200, d)].astype(np.float32)
    authors = np.r_[np.full(60, 7), np.arange(200) % 5 + 100]
    ids = _post_ids(260)
    idx = PostIndex(d)
    idx.add(ids, authors, vecs)
    res = idx.search(q, 10, exclude_author_id=7)
    others = np.flatnonzero(authors != 7)
    want = ids[others[np.argsort(-(vecs[others] @ q), kind="stable")[:10]]].tolist()
    assert [p for p, _, _ in res] == want
