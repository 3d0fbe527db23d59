"""Engagement log -> impressions -> requests: labels, dwell, history strictly before candidates."""

from __future__ import annotations

import numpy as np
import polars as pl

from phoenix.hashing import HashConfig
from phoenix.ranker.data import ImpressionTable, build_requests, impressions_from_log, make_batch

IMP = 1000


def _log() -> pl.DataFrame:
    rows = [
        # user, post, author, action, ts, surface, dwell
        (1, 10, 100, IMP, 1_000, 1, 0),
        (1, 10, 100, 1, 1_500, 1, 0),  # fav
        (1, 10, 100, 11, 1_600, 1, 12_000),  # dwelled 12 s
        (1, 11, 101, IMP, 2_000, 10, 0),
        (1, 12, 100, IMP, 3_000, 1, 0),
        (1, 12, 100, 4, 3_100, 1, 0),  # reply
        (1, 12, 100, 4, 3_200, 1, 0),  # duplicate action row: still one label
        (2, 10, 100, IMP, 1_200, 1, 0),
        (2, 13, 102, 6, 5_000, 1, 0),  # action without an impression row: impression at its time
    ]
    cols = ["user_id", "post_id", "author_id", "action", "timestamp_ms", "product_surface", "dwell_ms"]
    return pl.DataFrame(rows, schema=cols, orient="row").with_columns(
        pl.col("action").cast(pl.Int32), pl.col("product_surface").cast(pl.Int32)
    )


def test_impressions_labels_and_dwell() -> None:
    imp = impressions_from_log(_log())
    assert imp.select("user_id", "post_id").rows() == [(1, 10), (1, 11), (1, 12), (2, 10), (2, 13)]
    masks = imp["action_mask"].to_list()
    assert masks[0] == (1 << 1) | (1 << 11)
    assert masks[1] == 0
    assert masks[2] == 1 << 4
    assert masks[4] == 1 << 6
    assert imp["dwell_ms"].to_list() == [12_000, 0, 0, 0, 0]
    assert imp["timestamp_ms"].to_list() == [1_000, 2_000, 3_000, 1_200, 5_000]
    assert imp["product_surface"].to_list()[1] == 10


def test_requests_history_strictly_before() -> None:
    imp = impressions_from_log(_log())
    t = ImpressionTable.build(imp, HashConfig(100, 100, 100), eval_fraction=0.0)
    # one candidate per request: every impression's history = that user's earlier impressions
    req = build_requests(t, history_len=128, max_candidates=1, session_gap_ms=10**9)
    hist = [list(t.post_id[s:e]) for s, e in zip(req.hist_start, req.hist_end, strict=True)]
    assert hist == [[], [10], [10, 11], [], [10]]
    # history_len caps to the most recent items
    req2 = build_requests(t, history_len=1, max_candidates=1, session_gap_ms=10**9)
    assert list(t.post_id[req2.hist_start[2] : req2.hist_end[2]]) == [11]
    # grouped candidates share the history before the request's first impression
    req3 = build_requests(t, history_len=128, max_candidates=8, session_gap_ms=10**9)
    assert len(req3) == 2 and req3.hist_end[0] == req3.hist_start[0]
    b = make_batch(t, req, np.arange(len(req)))
    assert b.batch.hist_post_rows.shape[1] == 2
    # user 1's third impression: history (10 with fav+dwelled, 11), label reply
    assert b.batch.hist_actions[2, 0, 1] == 1 and b.batch.hist_actions[2, 0, 11] == 1
    assert b.batch.hist_dwell_s[2, 0] == 12.0
    assert b.labels[2, 0, 4] == 1 and b.labels[2, 0].sum() == 1
    assert (b.batch.hist_post_rows[0] == 0).all()  # first impression: empty history


def test_eval_split_is_most_recent_and_negatives_masked() -> None:
    imp = impressions_from_log(_log())
    t = ImpressionTable.build(imp, HashConfig(100, 100, 100), eval_fraction=0.4)
    assert t.is_eval.tolist() == [False, False, True, False, True]
    req = build_requests(t, 128, 8, 10**9)
    assert all(
        t.is_eval[s:e].all() == ev for s, e, ev in zip(req.cand_start, req.cand_end, req.is_eval, strict=True)
    )
    b = make_batch(t, req, np.arange(len(req)), np.random.default_rng(0), in_batch_negatives=True)
    c = b.labels.shape[1] // 2
    neg = b.labels[:, c:]
    assert (neg[..., 12] == b.label_mask[:, c:, 12]).all()  # negatives: NOT_DWELLED only
    assert neg.sum() == neg[..., 12].sum()
    assert (b.label_mask[:, c:, 17] == 0).all()  # negative-feedback heads not trained on negatives
    assert (b.dwell_mask[:, c:] == 0).all()


def test_history_context_rows_fill_histories_and_are_never_candidates(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from phoenix.log_dir import ENGAGEMENTS_FILE, HISTORY_FILE, resolve_logs
    from phoenix.ranker.data import impressions_with_history

    cols = ["user_id", "post_id", "author_id", "action", "timestamp_ms", "product_surface", "dwell_ms"]
    # engagements before the log: user 1 favorited post 90 and was shown 91; user 3 only has context
    earlier = pl.DataFrame(
        [(1, 90, 900, 1, 100, 1, 0), (1, 91, 901, IMP, 200, 1, 0), (3, 92, 902, 1, 300, 1, 0)],
        schema=cols,
        orient="row",
    ).with_columns(pl.col("action").cast(pl.Int32), pl.col("product_surface").cast(pl.Int32))
    _log().write_parquet(tmp_path / ENGAGEMENTS_FILE)
    earlier.write_parquet(tmp_path / HISTORY_FILE)
    imp = impressions_with_history(resolve_logs(tmp_path))
    assert imp.filter(pl.col("context"))["post_id"].to_list() == [90, 91, 92]
    # the hold-out rule sees the log's 5 impressions only: its newest 40 % as before
    t = ImpressionTable.build(imp, HashConfig(100, 100, 100), eval_fraction=0.4)
    assert t.is_eval[~t.is_context].tolist() == [False, False, True, False, True]
    assert not t.is_eval[t.is_context].any()
    req = build_requests(t, history_len=128, max_candidates=1, session_gap_ms=10**9)
    cands = [int(t.post_id[s]) for s in req.cand_start]
    hist = [list(t.post_id[s:e]) for s, e in zip(req.hist_start, req.hist_end, strict=True)]
    assert cands == [10, 11, 12, 10, 13]  # no context row is a candidate; user 3 has no request
    assert hist == [[90, 91], [90, 91, 10], [90, 91, 10, 11], [], [10]]
    b = make_batch(t, req, np.arange(len(req)))
    assert b.batch.hist_actions[0, 0, 1] == 1  # the earlier favorite is in the first request's history
