"""`foryou eval retrieval`: recall@k of held-out positive engagements for a checkpoint, against the
popularity baseline, random retrieval and, when the caller hands one in, an oracle's own top-k
(the app passes the synthetic world's ground-truth scorer; phoenix never imports the world)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from phoenix.holdout import Holdout
from phoenix.log_dir import resolve_logs
from phoenix.ranker.data import ImpressionTable, impressions_from_log, read_log
from phoenix.ranker.sids import resolve_sids
from phoenix.retrieval.model import load_two_tower
from phoenix.retrieval.train import (
    Corpus,
    RetrievalTrainConfig,
    Scorer,
    _corpus,
    evaluate,
    is_positive,
)

# Given the evaluation corpus, a scorer of (users x corpus posts), or None when it has none.
OracleFactory = Callable[[Corpus], Scorer | None]


def evaluate_retrieval(
    logs_path: str | Path,
    model_dir: str | Path,
    config: RetrievalTrainConfig | None = None,
    oracle: OracleFactory | None = None,
) -> dict[str, Any]:
    """Recall on `logs_path`, a log directory (phoenix.log_dir) or an engagement-log Parquet file:
    same held-out split, corpus and metrics as training (eval_fraction, eval_max_users, ks of
    `config`, default the training defaults), plus `oracle`'s top-k when one is given."""
    model, meta = load_two_tower(model_dir)
    cfg = config or RetrievalTrainConfig(model=model.cfg)
    cfg.model = model.cfg
    logs = resolve_logs(logs_path)
    sids = resolve_sids(logs_path, cfg.sids_path)
    t = ImpressionTable.build(
        impressions_from_log(read_log(logs.engagements)),
        model.cfg.hash_config,
        Holdout.resolve(cfg.holdout, cfg.eval_fraction),
        sids,
        model.cfg.trunk,
    )
    corpus = _corpus(t, logs.posts, is_positive(t.action_mask) & ~t.is_eval)
    scorers: dict[str, Scorer] = {}
    oracle_scorer = oracle(corpus) if oracle is not None else None
    if oracle_scorer is not None:
        scorers["oracle"] = oracle_scorer
    out = evaluate(model, t, corpus, cfg, scorers, sids=sids)
    out["model_version"] = meta["model_version"]
    return out
