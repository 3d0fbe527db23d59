"""Ranker model: mask structure, candidate isolation / batch invariance, fast path == masked forward."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from phoenix.ranker.config import RankerConfig
from phoenix.ranker.model import (
    RankerModel,
    Transformer,
    candidate_isolation_mask,
    context_positions,
)
from phoenix.ranker.testing import random_request as random_batch


@pytest.fixture
def tiny_model() -> RankerModel:
    torch.manual_seed(0)
    model = RankerModel(RankerConfig.tiny()).eval()
    # larger head weights than the init, so outputs depend strongly on the trunk
    with torch.no_grad():
        model.action_head.weight.normal_(std=0.5)
        model.continuous_head.weight.normal_(std=0.5)
    return model


def test_mask_structure() -> None:
    # user valid, 3 history slots of which 2 valid, 3 candidates
    valid = torch.tensor([[True, True, True, False]])
    m = candidate_isolation_mask(valid, 3)[0].int()
    expected = torch.tensor(
        [
            # keys: u  h1 h2 pad c1 c2 c3
            [1, 1, 1, 0, 0, 0, 0],  # user
            [1, 1, 1, 0, 0, 0, 0],  # h1: bidirectional over valid user/history
            [1, 1, 1, 0, 0, 0, 0],  # h2
            [1, 1, 1, 1, 0, 0, 0],  # padding query: valid context + itself (keeps softmax finite)
            [1, 1, 1, 0, 1, 0, 0],  # c1: context + itself only
            [1, 1, 1, 0, 0, 1, 0],
            [1, 1, 1, 0, 0, 0, 1],
        ]
    )
    assert torch.equal(m, expected)


def test_right_anchored_positions() -> None:
    valid = torch.tensor([[True, True, True, False, False], [False, False, False, False, False]])
    pos = context_positions(valid, history_len=4)
    # history_len 4: the 2 valid items end at 1 + 4 - 1 = 4; candidates would sit at 5
    assert pos.tolist() == [[0, 3, 4, 0, 0], [0, 0, 0, 0, 0]]


def test_candidates_do_not_see_each_other_or_padding(tiny_model: RankerModel) -> None:
    b, _, _ = random_batch(tiny_model.cfg, [5], 6)
    with torch.inference_mode():
        base, _ = tiny_model(b)
        # change candidate 0: every other candidate is unchanged, candidate 0 changes
        b2 = b.select_candidates(torch.arange(6))
        b2.cand_post_rows = b2.cand_post_rows.clone()
        b2.cand_post_rows[0, 0] = torch.tensor([11, 12])
        out, _ = tiny_model(b2)
        assert torch.allclose(out[0, 1:], base[0, 1:], atol=1e-6)
        assert not torch.allclose(out[0, 0], base[0, 0], atol=1e-4)
        # garbage in padded history slots (post row 0 = invalid) changes nothing
        b3 = b.select_candidates(torch.arange(6))
        b3.hist_author_rows = b3.hist_author_rows.clone()
        b3.hist_author_rows[0, 7:] = 99
        b3.hist_actions = b3.hist_actions.clone()
        b3.hist_actions[0, 7:] = 1.0
        out3, _ = tiny_model(b3)
        assert torch.allclose(out3, base, atol=1e-6)


def test_batch_invariance(tiny_model: RankerModel) -> None:
    """A candidate's scores are identical (1e-5) whatever else shares its request, in any order."""
    b, _, _ = random_batch(tiny_model.cfg, [9], 12, seed=1)
    g = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        for fwd in (tiny_model.forward, tiny_model.forward_fast):
            full, full_c = fwd(b)
            for _ in range(4):
                idx = torch.randperm(12, generator=g)[: int(torch.randint(1, 13, (1,), generator=g))]
                sub, sub_c = fwd(b.select_candidates(idx))
                assert torch.allclose(torch.sigmoid(sub[0]), torch.sigmoid(full[0, idx]), atol=1e-5)
                assert torch.allclose(sub_c[0], full_c[0, idx], atol=1e-5)
            # a candidate alone in its request
            alone, _ = fwd(b.select_candidates(torch.tensor([3])))
            assert torch.allclose(torch.sigmoid(alone[0, 0]), torch.sigmoid(full[0, 3]), atol=1e-5)


def test_fast_path_equals_masked_forward(tiny_model: RankerModel) -> None:
    cfg = tiny_model.cfg
    with torch.inference_mode():
        # several requests with padded histories (incl. empty and full), padded candidate slots
        b, _, _ = random_batch(cfg, [0, 3, cfg.history_len], 9, seed=2)
        b.cand_post_rows[1, -2:] = 0
        ref_l, ref_c = tiny_model(b)
        for chunk in (1024, 4):
            lo, c = tiny_model.forward_fast(b, chunk_size=chunk)
            assert torch.allclose(lo, ref_l, atol=1e-4)
            assert torch.allclose(torch.sigmoid(lo), torch.sigmoid(ref_l), atol=1e-5)
            assert torch.allclose(c, ref_c, atol=1e-4)
        # single request (padding dropped from the cached context)
        b1, _, _ = random_batch(cfg, [5], 33, seed=3)
        l1, c1 = tiny_model.forward_fast(b1, chunk_size=10)
        r1, rc1 = tiny_model(b1)
        assert torch.allclose(torch.sigmoid(l1), torch.sigmoid(r1), atol=1e-5)
        assert torch.allclose(c1, rc1, atol=1e-4)


@pytest.mark.parametrize("preset", [RankerConfig, RankerConfig.small])
def test_fast_path_default_config_shapes(preset: Callable[..., RankerConfig]) -> None:
    torch.manual_seed(0)
    cfg = preset(user_table_size=1000, post_table_size=1000, author_table_size=1000)
    model = RankerModel(cfg).eval()
    with torch.no_grad():  # heads start at zero: give them weights so outputs depend on the trunk
        model.action_head.weight.normal_(std=0.5)
    b, _, _ = random_batch(cfg, [128], 50, seed=4)
    with torch.inference_mode():
        lo, c = model.forward_fast(b)
        r, rc = model(b)
    assert lo.shape == (1, 50, 64) and c.shape == (1, 50, 8)
    assert torch.allclose(torch.sigmoid(lo), torch.sigmoid(r), atol=1e-5)


def test_bf16_fast_path_close(tiny_model: RankerModel) -> None:
    b, _, _ = random_batch(tiny_model.cfg, [6], 8, seed=5)
    with torch.inference_mode():
        ref, _ = tiny_model.forward_fast(b)
        low = RankerModel(tiny_model.cfg)
        low.load_state_dict(tiny_model.state_dict())
        low = low.eval().to(torch.bfloat16)
        out, _ = low.forward_fast(b)
    assert out.dtype == torch.float32
    assert (torch.sigmoid(out) - torch.sigmoid(ref)).abs().max().item() < 0.05


def test_transformer_trunk_is_reusable() -> None:
    """Retrieval reuses the trunk with its own (e.g. causal) mask."""
    cfg = RankerConfig.tiny()
    trunk = Transformer(cfg).eval()
    x = torch.randn(2, 5, cfg.emb_size)
    causal = torch.tril(torch.ones(5, 5, dtype=torch.bool)).expand(2, 5, 5)
    with torch.inference_mode():
        y = trunk(x, causal, torch.arange(5).expand(2, 5))
        x2 = x.clone()
        x2[:, -1] += 1.0
        y2 = trunk(x2, causal, torch.arange(5).expand(2, 5))
    assert y.shape == x.shape
    assert torch.allclose(y[:, :-1], y2[:, :-1], atol=1e-6)  # causal: earlier tokens unaffected
