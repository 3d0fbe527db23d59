"""Training curriculum: co-exposure warm start, exposure labels, authors-only exposure stage."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from phoenix.hashing import HashConfig
from phoenix.ranker.config import EXPOSURE_SLOT, NUM_ACTIONS, RankerConfig, TrainConfig
from phoenix.ranker.data import (
    ImpressionTable,
    build_requests,
    exposure_labels,
    impressions_from_log,
    make_batch,
    read_log,
)
from phoenix.ranker.model import HashEmbeddingTable, RankerModel
from phoenix.ranker.testing import random_request
from phoenix.ranker.train import train_ranker
from phoenix.ranker.warm_start import author_cooccurrence_init
from world import WorldConfig, generate_world


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("world")
    generate_world(WorldConfig.tiny(seed=1)).save(d)
    return d


def test_cooccurrence_init_puts_co_exposed_authors_together() -> None:
    # users 0..59 are shown authors 1..5, users 60..119 authors 6..10 (plus a little noise)
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(120), 20)
    group = users >= 60
    authors = np.where(group, rng.integers(6, 11, users.size), rng.integers(1, 6, users.size))
    noise = rng.random(users.size) < 0.05
    authors[noise] = rng.integers(1, 11, noise.sum())
    cfg = RankerConfig.tiny()
    hc = cfg.hash_config
    table = HashEmbeddingTable(cfg)
    assert author_cooccurrence_init(table, hc, users + 1000, authors, dim=4) == 10
    w = table.table.weight.detach()
    rows = torch.from_numpy(hc.rows(np.arange(1, 11), "author")[:, 0])
    v = torch.nn.functional.normalize(w[rows], dim=1)
    cos = v @ v.T
    same = torch.tensor([[(i < 5) == (j < 5) and i != j for j in range(10)] for i in range(10)])
    diff = torch.tensor([[(i < 5) != (j < 5) for j in range(10)] for i in range(10)])
    assert cos[same].mean() > cos[diff].mean() + 0.5
    assert torch.all(w[0] == 0)  # padding row untouched
    assert torch.allclose(w[rows].norm(dim=1), torch.ones(10))
    # nothing to factorise: no change
    assert author_cooccurrence_init(table, hc, np.array([1, 1]), np.array([3, 4]), dim=4) == 0


def test_exposure_labels(tiny_world: Path) -> None:
    imp = impressions_from_log(read_log(tiny_world / "engagements.parquet"))
    t = ImpressionTable.build(imp, HashConfig(1000, 1000, 1000), eval_fraction=0.0)
    req = build_requests(t, 16, 8, 3_600_000)
    tb = make_batch(t, req, np.arange(16), np.random.default_rng(0), in_batch_negatives=True)
    c = tb.cand_index.shape[1] // 2
    real = torch.from_numpy(tb.cand_index[:, :c] >= 0)
    neg = tb.batch.cand_post_rows[:, c:, 0] != 0
    assert neg.any() and real.any()
    for only in (False, True):
        e = exposure_labels(tb, exposure_only=only)
        assert torch.equal(e.labels[:, c:, EXPOSURE_SLOT], neg.float())
        assert torch.equal(e.label_mask[:, c:, EXPOSURE_SLOT], neg.float())
        assert e.label_mask[:, c:].sum() == neg.sum()  # negatives train the exposure slot only
        assert torch.equal(e.labels[:, :c, EXPOSURE_SLOT], torch.zeros_like(real, dtype=torch.float32))
        assert torch.equal(e.label_mask[:, :c, EXPOSURE_SLOT], real.float())
        others = e.label_mask[:, :c, 1:]
        if only:
            assert others.sum() == 0 and e.dwell_mask.sum() == 0
        else:
            assert torch.equal(others, real[..., None].float().expand(-1, -1, NUM_ACTIONS - 1))
            assert torch.equal(e.labels[:, :c, 1:], tb.labels[:, :c, 1:])
            assert torch.equal(e.dwell_mask, tb.dwell_mask)
    # a one-request batch has an empty negative half
    one = exposure_labels(make_batch(t, req, np.arange(1), None, True), exposure_only=True)
    assert one.label_mask[:, one.cand_index.shape[1] // 2 :].sum() == 0


def test_authors_only_hides_user_and_post_ids() -> None:
    torch.manual_seed(0)
    cfg = RankerConfig.tiny(sid_levels=0)  # post-id rows only (SID rows are kept: test_sids)
    model = RankerModel(cfg).eval()
    b, _, _ = random_request(cfg, [5, 9], 4, seed=0)
    other, _, _ = random_request(cfg, [5, 9], 4, seed=1)
    # same authors, different users and posts
    swapped = replace(
        b,
        user_rows=other.user_rows,
        hist_post_rows=torch.where(b.hist_post_rows != 0, other.hist_post_rows, 0),
        cand_post_rows=other.cand_post_rows,
    )
    with torch.no_grad():
        a1, _ = model(b, authors_only=True)
        a2, _ = model(swapped, authors_only=True)
        f1, _ = model(b)
        f2, _ = model(swapped)
    assert a1.shape == (2, 4, NUM_ACTIONS)
    torch.testing.assert_close(a1, a2)
    assert (f1 - f2).abs().max() > 1e-3


@pytest.mark.slow
def test_curriculum_runs_both_stages_and_resumes(
    tiny_world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = TrainConfig(
        model=RankerConfig.tiny(),
        epochs=1.0,
        exposure_epochs=1.0,
        progress=False,
        num_threads=1,
        eval_every=0,
        checkpoint_every=0,
        warmup_steps=5,
    )
    m = train_ranker(tiny_world, tmp_path / "run", replace(cfg, max_steps=20), evaluate=False)
    assert m["exposure_steps"] == 10 and m["steps"] == 20
    # the exposure stage learns; the ranking stage's loss is tracked on its own
    assert m["exposure_final_loss_ema"] < m["exposure_first_loss_ema"]
    assert m["first_train_loss_ema"] is not None and m["final_train_loss_ema"] is not None
    # a crash after the exposure stage, then a resume with the same config: same model as straight
    import phoenix.ranker.train as train_mod

    calls = {"n": 0}
    real_make_batch = train_mod.make_batch

    def crashing(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 15:
            raise RuntimeError("simulated crash")
        return real_make_batch(*args, **kwargs)

    crash_cfg = replace(cfg, max_steps=20, checkpoint_every=12)
    monkeypatch.setattr(train_mod, "make_batch", crashing)
    with pytest.raises(RuntimeError):
        train_ranker(tiny_world, tmp_path / "resumed", crash_cfg, evaluate=False)
    monkeypatch.setattr(train_mod, "make_batch", real_make_batch)
    again = train_ranker(tiny_world, tmp_path / "resumed", crash_cfg, evaluate=False)
    assert again["steps"] == 20
    straight = load_file(str(tmp_path / "run" / "model.safetensors"))
    resumed = load_file(str(tmp_path / "resumed" / "model.safetensors"))
    for k, v in straight.items():
        torch.testing.assert_close(resumed[k], v, msg=k)
