"""Random requests for tests and benchmarks (ids hashed through the real feature path)."""

from __future__ import annotations

import numpy as np

from phoenix.ranker.config import RankerConfig
from phoenix.ranker.features import CandidateArrays, HistoryArrays, build_batch
from phoenix.ranker.model import RankerBatch
from phoenix.ranker.sids import SidLookup


def random_request(
    cfg: RankerConfig, hist_lens: list[int], num_candidates: int, seed: int = 0
) -> tuple[RankerBatch, HistoryArrays, CandidateArrays]:
    """len(hist_lens) requests with that many valid history items each and `num_candidates` candidates."""
    rng = np.random.default_rng(seed)
    b, s = len(hist_lens), cfg.history_len

    def ids(shape: tuple[int, ...]) -> np.ndarray:
        return rng.integers(1, 10**15, size=shape)

    hp, ha = ids((b, s)), ids((b, s))
    masks = rng.integers(0, 2**16, size=(b, s)).astype(np.uint64)
    for i, n in enumerate(hist_lens):
        hp[i, n:] = 0
        ha[i, n:] = 0
        masks[i, n:] = 0
    hist = HistoryArrays(
        ids((b,)), hp, ha, masks, rng.integers(0, 16, (b, s)), rng.integers(0, 60_000, (b, s))
    )
    c = num_candidates
    cand = CandidateArrays(ids((b, c)), ids((b, c)), rng.integers(0, 16, (b, c)))
    sids = random_sids(cfg, np.concatenate([hp.ravel(), cand.post_ids.ravel()]), seed)
    return build_batch(cfg.hash_config, hist, cand, sids, cfg), hist, cand


def random_sids(cfg: RankerConfig, post_ids: np.ndarray, seed: int = 0) -> SidLookup | None:
    """Random semantic ids (every level known) for `post_ids`; None when the config has no SIDs."""
    if cfg.sid_levels == 0:
        return None
    ids = np.unique(post_ids[post_ids != 0])
    codes = np.random.default_rng(seed + 1).integers(1, cfg.sid_codebook + 1, (len(ids), cfg.sid_levels))
    return SidLookup(ids, codes)
