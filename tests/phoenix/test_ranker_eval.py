"""Per-segment evaluation (metrics per history / post-novelty / surface mask) on explicit arrays."""

from __future__ import annotations

import numpy as np
import pytest

from phoenix.ranker.evaluate import HEADLINE, markdown_segments, segment_aucs
from phoenix.ranker.metrics import roc_auc


def test_segment_aucs_score_each_subset_alone() -> None:
    rng = np.random.default_rng(0)
    n = 400
    y = np.zeros((n, 64), dtype=np.float32)
    y[:, HEADLINE["favorite"]] = rng.random(n) < 0.3
    p = rng.random((n, 64)).astype(np.float32)
    # the model is right on the first half and random on the second
    first = np.arange(n) < n // 2
    p[first, 1] = y[first, 1] * 0.5 + rng.random(n // 2) * 0.1
    masks = {"first": first, "second": ~first, "tiny": np.arange(n) < 3}
    out = segment_aucs(y, {"model": p}, masks)
    assert out["first"]["impressions"] == 200 and out["tiny"]["impressions"] == 3
    assert out["first"]["favorite"]["model"] == pytest.approx(1.0)
    assert out["second"]["favorite"]["model"] == pytest.approx(roc_auc(y[~first, 1], p[~first, 1]))
    assert abs(out["second"]["favorite"]["model"] - 0.5) < 0.15
    # no reply positives at all, and too few impressions in "tiny": those AUCs are left out
    assert "reply" not in out["first"] and "favorite" not in out["tiny"]

    ev = {"segments": out, "metrics": {"model": {}}}
    md = markdown_segments(ev).splitlines()
    assert md[0] == "| segment (favorite ROC-AUC) | impressions | model |"
    assert md[2] == "| first | 200 | 1.000 |" and len(md) == 4  # "tiny" has no favorite AUC
