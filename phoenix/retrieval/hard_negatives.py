"""Hard negatives for the ranker: each user's top posts under the retrieval model (the candidates the
ranker re-ranks at serving time), minus the posts the user has in the log. Passed to
`phoenix.ranker.train.train_ranker` as its `hard_miner` (the ranker package does not import retrieval)."""

from __future__ import annotations

import numpy as np
import torch

from phoenix.ranker.data import ImpressionTable, Requests, make_batch
from phoenix.ranker.negatives import NegativePool
from phoenix.retrieval.model import load_two_tower


@torch.no_grad()
def mine_hard_negatives(t: ImpressionTable, pool: NegativePool, retrieval_dir: str, top: int) -> np.ndarray:
    """[len(pool.users), top] pool indices (-1 = none) of each user's retrieval top posts, computed
    from the user's training impressions (the table's non-held-out rows) as history."""
    model, _ = load_two_tower(retrieval_dir)
    model.eval()
    hl = model.cfg.trunk.history_len
    tr = ~t.is_eval
    # the history of every user = their last `hl` training impressions (table sorted by user, time)
    starts = np.searchsorted(t.user_id, pool.users, side="left")
    ends = np.searchsorted(t.user_id, pool.users, side="right")
    n_train = np.array([int(tr[s:e].sum()) for s, e in zip(starts, ends, strict=True)])
    he = starts + n_train  # held-out rows are each user's newest (time or last-N split)
    req = Requests(he, he, np.maximum(starts, he - hl), he, np.zeros(len(he), dtype=bool))
    # embed with the retrieval model's own hashing (its table sizes may differ from the ranker's)
    rt = ImpressionTable(
        t.user_id,
        t.post_id,
        t.author_id,
        t.timestamp_ms,
        t.surface,
        t.action_mask,
        t.dwell_ms,
        model.cfg.hash_config.rows(t.user_id, "user"),
        model.post_rows(t.post_id, None),
        model.cfg.hash_config.rows(t.author_id, "author"),
        t.is_eval,
        t.is_context,
    )
    authors = np.zeros(len(pool.post_ids), dtype=np.int64)
    first = np.unique(t.post_id, return_index=True)
    authors[:] = t.author_id[first[1][np.searchsorted(first[0], pool.post_ids)]]
    cand = torch.from_numpy(model.embed_posts(pool.post_ids, authors))
    top = min(top, len(pool.post_ids))
    out = np.full((len(pool.users), top), -1, dtype=np.int64)
    for s in range(0, len(pool.users), 256):
        rows = np.arange(s, min(s + 256, len(pool.users)))
        scores = (model.user_embed(make_batch(rt, req, rows).batch) @ cand.T).numpy()
        uu = np.broadcast_to(pool.users[rows][:, None], scores.shape)
        scores[pool.is_seen(uu, np.broadcast_to(np.arange(scores.shape[1]), scores.shape))] = -np.inf
        idx = np.argpartition(-scores, top - 1, axis=1)[:, :top]
        ok = np.isfinite(np.take_along_axis(scores, idx, axis=1))
        out[rows] = np.where(ok, idx, -1)
    return out
