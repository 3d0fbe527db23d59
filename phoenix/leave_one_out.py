"""Leave-one-out evaluation (`foryou eval … --test FILE`), transport-free.

Split (`split_leave_one_out`): for each user with at least two positive engagements, the post of
their last positive engagement is the test item; the training log is every row of that user strictly
before it (later rows would leak the future) plus every row of the other users.

Evaluation (`LooData` + scorers): for each test row (user, post), the user's history is their part of
the training log; every corpus post is scored, the posts in that history are removed, and the rank of
the test post gives HR@K, NDCG@K and MRR (phoenix.ranking_metrics). Scorers: the retrieval model,
the ranker (every corpus post, or re-ranking the retrieval model's top M), popularity (positive
count in the training log) and random.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import torch

from foryou.core.actions import ACTION_NAMES
from foryou.core.snowflake import timestamps_ms
from phoenix.hashing import HashConfig
from phoenix.holdout import Holdout
from phoenix.log_dir import resolve_logs
from phoenix.ranker.config import POSITIVE_HEADS, RankerConfig
from phoenix.ranker.data import ImpressionTable, Requests, impressions_from_log, make_batch, read_log
from phoenix.ranker.features import candidate_ages
from phoenix.ranker.model import RankerModel
from phoenix.ranker.sids import SidLookup, with_sid_rows
from phoenix.ranking_metrics import paired_difference, rank_metrics, target_ranks
from phoenix.retrieval.model import TwoTowerModel

# Positive engagements that mark a test item: explicit actions (a dwell alone is not one). The same
# set defines the positives-only log derived from a full log (`positives_only`).
POSITIVE_ACTIONS = POSITIVE_HEADS
# ranker score for a leave-one-out ranking: log of the summed probability of these heads
RANKING_HEADS = POSITIVE_HEADS
KS = (10, 100)
assert all(a in ACTION_NAMES for a in POSITIVE_ACTIONS)


def positives_only(log: pl.DataFrame) -> pl.DataFrame:
    """The rows of positive engagements only (impressions, dwell and negative feedback dropped): the
    common public-log shape (likes / ratings, no impressions)."""
    return log.filter(pl.col("action").is_in(list(POSITIVE_ACTIONS)))


def split_leave_one_out(log: pl.DataFrame, min_positives: int = 2) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(training log, test frame user_id/post_id/author_id/timestamp_ms) of a validated log."""
    pos = (
        log.filter(pl.col("action").is_in(list(POSITIVE_ACTIONS)))
        .group_by("user_id", "post_id")
        .agg(pl.col("author_id").first(), pl.col("timestamp_ms").min())
    )
    counts = pos.group_by("user_id").len()
    test = (
        pos.join(counts.filter(pl.col("len") >= min_positives).select("user_id"), on="user_id")
        .sort("user_id", "timestamp_ms", "post_id")
        .group_by("user_id", maintain_order=True)
        .last()
        .select("user_id", "post_id", "author_id", "timestamp_ms")
    )
    # the test (user, post)'s first row of any kind (its impression) starts the cut, and is the
    # test row's timestamp: the request time its candidates are aged at
    first_seen = log.group_by("user_id", "post_id").agg(pl.col("timestamp_ms").min().alias("cut"))
    test = test.join(first_seen, on=["user_id", "post_id"]).with_columns(timestamp_ms=pl.col("cut"))
    cut = test.select("user_id", "cut")
    test = test.drop("cut")
    train = log.join(cut, on="user_id", how="left").filter(
        pl.col("cut").is_null() | (pl.col("timestamp_ms") < pl.col("cut"))
    )
    return train.drop("cut"), test


def read_test(path: str | Path) -> pl.DataFrame:
    """A test file: Parquet with user_id and post_id (author_id optional, default the post id;
    timestamp_ms optional, the request time: default the user's last training row)."""
    df = pl.read_parquet(path)
    missing = [c for c in ("user_id", "post_id") if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: test file lacks column(s) {', '.join(missing)}")
    if "author_id" not in df.columns:
        df = df.with_columns(pl.col("post_id").alias("author_id"))
    if "timestamp_ms" not in df.columns:
        df = df.with_columns(pl.lit(None, dtype=pl.Int64).alias("timestamp_ms"))
    cols = ("user_id", "post_id", "author_id", "timestamp_ms")
    return df.select(pl.col(c).cast(pl.Int64) for c in cols).unique(
        subset=["user_id", "post_id"], maintain_order=True
    )


@dataclass
class LooData:
    """The training log hashed for one model, the corpus and the test cases."""

    table: ImpressionTable  # the training log, every impression a history item
    corpus_posts: np.ndarray  # [N]
    corpus_authors: np.ndarray  # [N]
    pos_count: np.ndarray  # [N] positive engagements in the training log
    users: np.ndarray  # [U] one per test row
    targets: np.ndarray  # [U] corpus index of the test post
    req: Requests  # [U] history = the user's training impressions, no candidates
    seen: list[np.ndarray]  # [U] corpus indices of the user's training posts (not ranked)
    request_ms: np.ndarray | None = None  # [U] request time (the test row's, else the last training row's)
    created_ms: np.ndarray | None = None  # [N] creation time of each corpus post (its snowflake id)

    def corpus_index(self, post_ids: np.ndarray) -> np.ndarray:
        order = np.argsort(self.corpus_posts, kind="stable")
        pos = np.searchsorted(self.corpus_posts, post_ids, sorter=order)
        return order[np.clip(pos, 0, len(order) - 1)]


def load_loo(
    logs_path: str | Path,
    test: pl.DataFrame,
    hc: HashConfig,
    history_len: int,
    sids: SidLookup | None = None,
    model: RankerConfig | None = None,
    max_users: int = 0,
    seed: int = 0,
) -> LooData:
    """Training log `logs_path` (a log directory: its posts table joins the corpus), test cases
    `test`; `max_users` > 0 keeps a random subset of the test rows."""
    logs = resolve_logs(logs_path)
    log = read_log(logs.engagements)
    t = ImpressionTable.build(impressions_from_log(log), hc, Holdout("none", 0.0), sids, model)
    frames = [
        pl.DataFrame({"post_id": t.post_id, "author_id": t.author_id}),
        test.select("post_id", "author_id"),
    ]
    if logs.posts is not None:
        frames.insert(0, pl.read_parquet(logs.posts, columns=["post_id", "author_id"]))
    corpus = pl.concat([f.cast(pl.Int64) for f in frames]).unique("post_id", keep="first").sort("post_id")
    cp, ca = corpus["post_id"].to_numpy(), corpus["author_id"].to_numpy()
    # a user absent from the training log has no history to personalise from: not a test case
    test = test.filter(pl.col("user_id").is_in(pl.Series(np.unique(t.user_id)).implode()))
    if max_users and test.height > max_users:
        keep = np.sort(np.random.default_rng(seed).choice(test.height, max_users, replace=False))
        test = test[keep]
    users, tposts = test["user_id"].to_numpy(), test["post_id"].to_numpy()
    # the table is sorted by user, then time: each user's impressions are one slice
    starts = np.searchsorted(t.user_id, users, side="left")
    ends = np.searchsorted(t.user_id, users, side="right")
    hs = np.maximum(starts, ends - history_len)
    # no candidates (an empty range at the user's first row, which make_batch takes the user from)
    req = Requests(starts, starts, hs, ends, np.ones(len(users), dtype=bool))
    d = LooData(t, cp, ca, np.zeros(len(cp), np.int64), users, np.zeros(0, np.int64), req, [])
    d.targets = d.corpus_index(tposts)
    d.created_ms = timestamps_ms(cp)
    pos = (t.action_mask & np.uint64(sum(1 << a for a in POSITIVE_ACTIONS))) != 0
    d.pos_count = np.bincount(d.corpus_index(t.post_id[pos]), minlength=len(cp))
    d.seen = [d.corpus_index(np.unique(t.post_id[s:e])) for s, e in zip(starts, ends, strict=True)]
    last = t.timestamp_ms[np.maximum(ends - 1, 0)]
    ts = test["timestamp_ms"].to_numpy() if "timestamp_ms" in test.columns else None
    d.request_ms = (
        last if ts is None else np.where(np.isnan(ts.astype(np.float64)), last, ts).astype(np.int64)
    )
    return d


def popularity_scores(d: LooData, rows: np.ndarray) -> np.ndarray:
    return np.broadcast_to(d.pos_count.astype(np.float32), (len(rows), len(d.corpus_posts)))


def random_scores(d: LooData, rows: np.ndarray, seed: int = 0) -> np.ndarray:
    return np.random.default_rng([seed, int(rows[0]) if len(rows) else 0]).random(
        (len(rows), len(d.corpus_posts)), dtype=np.float32
    )


def newest_scores(d: LooData, rows: np.ndarray) -> np.ndarray:
    """Newest first [len(rows), N]: a post's creation time (its snowflake id), -inf for posts
    created after the request: a recency pool like in-network sources, not personalised by topic."""
    created = (d.created_ms if d.created_ms is not None else timestamps_ms(d.corpus_posts)).astype(np.float64)
    req_ms = (d.request_ms[rows] if d.request_ms is not None else np.full(len(rows), np.inf))[:, None]
    return np.where(created[None, :] <= req_ms, created[None, :], -np.inf)


# the ranker's history ablation: variant name -> (history, user id hidden)
ABLATIONS = {
    "": ("real", False),
    "empty history": ("empty", False),
    "other user's history": ("shuffled", False),
    "no user id": ("real", True),
    "no user id, empty history": ("empty", True),
}
# paired differences reported: name -> (variant with the real history, the same without it)
HISTORY_GAINS = {
    "history_gain_vs_empty": ("", "empty history"),
    "history_gain_vs_other": ("", "other user's history"),
    "history_gain_without_user_id": ("no user id", "no user id, empty history"),
}


@torch.no_grad()
def ranker_scores(
    model: RankerModel,
    d: LooData,
    rows: np.ndarray,
    cand: np.ndarray,
    sids: SidLookup | None = None,
    history: str = "real",
    seed: int = 0,
    hide_user: bool = False,
) -> np.ndarray:
    """Ranker scores [len(rows), M] of corpus posts `cand` [len(rows), M] for test rows `rows`:
    log of the summed probability of `RANKING_HEADS`. `history`: real | empty | shuffled (the
    history ablation: another test user's history). `hide_user`: no user-id token (as for a user
    the model never trained on), so only the history can personalise."""
    model.eval()
    req = d.req.subset(rows)
    if history == "empty":
        req = Requests(req.cand_start, req.cand_end, req.hist_end, req.hist_end, req.is_eval)
    elif history == "shuffled":
        perm = np.random.default_rng(seed).permutation(len(d.req))[: len(rows)]
        other = d.req.subset(perm)
        req = Requests(req.cand_start, req.cand_end, other.hist_start, other.hist_end, req.is_eval)
    ctx = make_batch(d.table, req, np.arange(len(rows))).batch
    if hide_user:
        ctx.user_rows = torch.zeros_like(ctx.user_rows)
    hc = model.cfg.hash_config
    posts = d.corpus_posts[cand]
    ctx.cand_post_rows = torch.from_numpy(with_sid_rows(model.cfg, posts, hc.rows(posts, "post"), sids))
    ctx.cand_author_rows = torch.from_numpy(hc.rows(d.corpus_authors[cand], "author"))
    # candidates are shown on the log's most common surface
    surface = int(np.bincount(d.table.surface).argmax()) if len(d.table) else 0
    ctx.cand_surface = torch.full(cand.shape, surface, dtype=torch.int64)
    if d.request_ms is not None:
        ctx.cand_age = torch.from_numpy(candidate_ages(posts, d.request_ms[rows][:, None]))
    logits, _ = model.forward_fast(ctx)
    p = torch.sigmoid(logits[..., list(RANKING_HEADS)]).sum(-1)
    return torch.log(p.clamp_min(1e-12)).numpy()


@torch.no_grad()
def retrieval_scores(
    model: TwoTowerModel, d: LooData, rows: np.ndarray, cand_vectors: torch.Tensor
) -> np.ndarray:
    """Dot products [len(rows), N] of the users' embeddings with `cand_vectors` [N, D]
    (`TwoTowerModel.embed_posts` of the corpus)."""
    model.eval()
    b = make_batch(d.table, d.req, rows).batch
    return (model.user_embed(b) @ cand_vectors.T).numpy()


def two_stage(first: np.ndarray, second: np.ndarray, top: np.ndarray) -> np.ndarray:
    """Scores of a re-ranked list: the `top` [U, M] columns of `first` [U, N] ordered by `second`
    [U, M], above every other column (which keep `first`'s order)."""
    out = first - first.max(axis=1, keepdims=True) - 1.0  # all < 0
    ranked = second - second.min(axis=1, keepdims=True)  # all >= 0
    np.put_along_axis(out, top, ranked, axis=1)
    return out


def top_m(scores: np.ndarray, exclude: list[np.ndarray], m: int) -> np.ndarray:
    """[U, M] column indices of the M highest scores per row, `exclude[u]` removed."""
    s = scores.copy()
    for u, ex in enumerate(exclude):
        s[u, ex] = -np.inf
    m = min(m, s.shape[1])
    return np.argpartition(-s, m - 1, axis=1)[:, :m]


def evaluate_scores(d: LooData, scores: np.ndarray, rows: np.ndarray, ks: tuple[int, ...] = KS) -> np.ndarray:
    """Ranks of the test posts of `rows` under `scores` [len(rows), N]."""
    return target_ranks(scores, d.targets[rows], [d.seen[r] for r in rows])


def summarise(ranks: np.ndarray, ks: tuple[int, ...] = KS) -> dict[str, float]:
    return {**rank_metrics(ranks, ks), "test_cases": int(len(ranks))}


def _per_user_corr(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over rows of the Pearson correlation of a[u] and b[u] (rows with no spread skipped)."""
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    den = np.sqrt((a * a).sum(1) * (b * b).sum(1))
    ok = den > 0
    return float(((a * b).sum(1)[ok] / den[ok]).mean()) if ok.any() else float("nan")


def evaluate_loo(
    logs_path: str | Path,
    test_path: str | Path,
    retrieval_dir: str | Path | None = None,
    ranker_dir: str | Path | None = None,
    rerank: int = 100,
    max_users: int = 0,
    ablation: bool = True,
    batch_users: int = 64,
    seed: int = 0,
) -> dict[str, object]:
    """HR@K / NDCG@K / MRR of the test posts for: popularity, random, the retrieval model, the ranker
    re-ranking retrieval's top `rerank` (both given) or ranking the whole corpus (ranker only), and
    with `ablation` the ranker with an empty / another user's history (plus the mean per-user
    correlation of its scores with and without the history)."""
    from phoenix.ranker.checkpoint import load_model
    from phoenix.ranker.sids import resolve_sids
    from phoenix.retrieval.model import load_two_tower

    test = read_test(test_path)
    ret = load_two_tower(retrieval_dir)[0] if retrieval_dir else None
    rnk = load_model(ranker_dir)[0] if ranker_dir else None
    sids = resolve_sids(logs_path, "")

    def data_for(cfg: RankerConfig) -> LooData:
        return load_loo(logs_path, test, cfg.hash_config, cfg.history_len, sids, cfg, max_users, seed)

    base_cfg = ret.cfg.trunk if ret is not None else rnk.cfg if rnk is not None else RankerConfig.tiny()
    d = data_for(base_cfg)
    dr = data_for(rnk.cfg) if rnk is not None else None
    n_users = len(d.users)
    ranks: dict[str, list[np.ndarray]] = {}
    corr: dict[str, list[float]] = {}

    def add(name: str, rows: np.ndarray, scores: np.ndarray) -> None:
        ranks.setdefault(name, []).append(evaluate_scores(d, scores, rows))

    cand_vectors = (
        torch.from_numpy(ret.embed_posts(d.corpus_posts, d.corpus_authors, sids=sids)) if ret else None
    )
    for s in range(0, n_users, batch_users):
        rows = np.arange(s, min(s + batch_users, n_users))
        add("popularity", rows, popularity_scores(d, rows))
        add("random", rows, random_scores(d, rows, seed))
        first = None
        if ret is not None and cand_vectors is not None:
            first = retrieval_scores(ret, d, rows, cand_vectors)
            add("retrieval", rows, first)
        if rnk is None or dr is None:
            continue
        if first is not None:
            newest = newest_scores(d, rows)
            add("newest first", rows, newest)
            variants = ABLATIONS if ablation else {"": ("real", False)}
            for pool, pool_scores in (("newest", newest), ("retrieval", first)):
                top = top_m(pool_scores, [d.seen[r] for r in rows], rerank)
                scored = {
                    k: ranker_scores(rnk, dr, rows, top, sids, hist, seed + s, hide)
                    for k, (hist, hide) in variants.items()
                }
                for k in variants:
                    name = f"{pool}+ranker{f' ({k})' if k else ''}"
                    add(name, rows, two_stage(pool_scores, scored[k], top))
            if ablation:
                for key, k in (("empty", "empty history"), ("shuffled", "other user's history")):
                    corr.setdefault(key, []).append(_per_user_corr(scored[""], scored[k]))
        else:
            every = np.broadcast_to(np.arange(len(d.corpus_posts)), (len(rows), len(d.corpus_posts)))
            add("ranker", rows, ranker_scores(rnk, dr, rows, np.ascontiguousarray(every), sids))
    out: dict[str, object] = {name: summarise(np.concatenate(r)) for name, r in ranks.items()}
    for pool in ("retrieval", "newest"):
        for name, (with_h, without_h) in HISTORY_GAINS.items():
            if f"{pool}+ranker ({without_h})" in ranks:  # on the same test cases
                a = np.concatenate(ranks[f"{pool}+ranker{f' ({with_h})' if with_h else ''}"])
                b = np.concatenate(ranks[f"{pool}+ranker ({without_h})"])
                out[name if pool == "retrieval" else f"{pool}_{name}"] = paired_difference(a, b)
    if corr:
        out["ranker_score_corr_with_empty_history"] = float(np.nanmean(corr["empty"]))
        out["ranker_score_corr_with_other_history"] = float(np.nanmean(corr["shuffled"]))
    out["corpus_posts"] = int(len(d.corpus_posts))
    return out
