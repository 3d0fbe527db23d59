"""Batch scoring (`foryou recommend`): the top K posts for each of a list of users, each user's
history taken from an engagement log, scored by the serving handlers themselves, in process
(`RetrievalHandler.retrieve`, `RankingHandler.predict`), so a score here is the score the service
would return for the same history and candidates.

Modes:
* retrieval + ranker: the retrieval model's top `retrieve` posts of the corpus (the log directory's
  posts table, else every logged post; the user's history posts and own posts excluded, as served)
  re-ranked by the ranker; `score` = the ranker's score.
* retrieval only: the retrieval model's top K; `score` = the inner product it served.
* ranker only over given candidates (`candidates`: user_id, post_id[, author_id, product_surface]):
  each user's candidates ranked by the ranker.

Ranker score = log of the summed probability of the positive heads (`leave_one_out.RANKING_HEADS`,
the score the leave-one-out evaluation ranks by). Candidates are shown on the log's most common
product surface unless the candidates file says otherwise, and aged at `now_ms` (None = the wall
clock, as served)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from foryou.core import user_state
from foryou.core.actions import ACTION_NAMES
from phoenix.leave_one_out import RANKING_HEADS
from phoenix.log_dir import resolve_logs
from phoenix.ranker.data import impressions_from_log, read_log
from phoenix.ranker.handler import Candidates, History, RankingHandler, RankingHandlerConfig
from phoenix.ranker.sids import resolve_sids
from phoenix.retrieval.handler import RetrievalHandler, RetrievalHandlerConfig
from phoenix.retrieval.index import IndexConfig

UNLIMITED = 1 << 40  # request-size limits of the batch handlers: a log history may be long


@dataclass(slots=True)
class RecommendConfig:
    top_k: int = 10
    retrieve: int = 100  # retrieval's top N handed to the ranker
    now_ms: int | None = None  # time candidates are aged at; None = the wall clock (as served)
    probabilities: bool = False  # add p_<action> columns of the positive heads (ranker only)
    sids_path: str = ""  # Parquet post_id + sid; "" = the log directory's posts table, if it has SIDs


def ranking_score(probs: np.ndarray) -> np.ndarray:
    """float64 [C]: log of the summed probability of the positive heads of `probs` [C, 64]."""
    p = np.asarray(probs, dtype=np.float64)[:, list(RANKING_HEADS)].sum(axis=1)
    return np.log(np.maximum(p, 1e-12))


def read_users(path: str | Path) -> np.ndarray:
    """int64 user ids (first occurrence order, duplicates dropped) of a Parquet or CSV file."""
    df = _read_table(path)
    if "user_id" not in df.columns:
        raise ValueError(f"{path}: no user_id column")
    return df["user_id"].cast(pl.Int64).unique(maintain_order=True).to_numpy()


def read_candidates(path: str | Path) -> pl.DataFrame:
    """user_id, post_id, author_id (default: the post id), product_surface (default: null)."""
    df = _read_table(path)
    missing = [c for c in ("user_id", "post_id") if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: candidates file lacks column(s) {', '.join(missing)}")
    if "author_id" not in df.columns:
        df = df.with_columns(pl.col("post_id").alias("author_id"))
    if "product_surface" not in df.columns:
        df = df.with_columns(pl.lit(None, dtype=pl.Int64).alias("product_surface"))
    cols = ("user_id", "post_id", "author_id", "product_surface")
    return df.select(pl.col(c).cast(pl.Int64) for c in cols)


def _read_table(path: str | Path) -> pl.DataFrame:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file")
    return pl.read_csv(p) if p.suffix.lower() == ".csv" else pl.read_parquet(p)


class Histories:
    """Each user's history in the log: one item per (user, post), oldest first, as trained on."""

    def __init__(self, imp: pl.DataFrame) -> None:
        self.user_id = imp["user_id"].to_numpy().astype(np.int64)
        seq = np.zeros(imp.height, dtype=user_state.SEQ_DTYPE)
        for name, col in (
            ("post_id", "post_id"),
            ("author_id", "author_id"),
            ("action_mask", "action_mask"),
            ("product_surface", "product_surface"),
            ("timestamp_ms", "timestamp_ms"),
            ("dwell_ms", "dwell_ms"),
        ):
            seq[name] = imp[col].to_numpy()
        self.seq = seq
        surfaces = seq["product_surface"]
        self.common_surface = int(np.bincount(surfaces).argmax()) if len(surfaces) else 0

    def sequence(self, user_id: int) -> np.ndarray:
        """SEQ_DTYPE array (the retrieval handler's history); empty for a user not in the log."""
        s = np.searchsorted(self.user_id, user_id, side="left")
        e = np.searchsorted(self.user_id, user_id, side="right")
        return self.seq[s:e]

    @staticmethod
    def ranker_history(seq: np.ndarray) -> History:
        return History(
            seq["post_id"].astype(np.int64),
            seq["author_id"].astype(np.int64),
            seq["action_mask"].astype(np.uint64),
            seq["product_surface"].astype(np.int64),
            seq["dwell_ms"].astype(np.int64),
        )


def corpus_posts(logs_path: str | Path, imp: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(post ids, author ids) retrieval searches: the log directory's live posts, else the logged posts."""
    from phoenix.retrieval.bulk_builder import read_posts

    posts = resolve_logs(logs_path).posts
    if posts is not None:
        return read_posts(posts)
    df = imp.select("post_id", "author_id").unique("post_id", keep="first").sort("post_id")
    return df["post_id"].to_numpy().astype(np.int64), df["author_id"].to_numpy().astype(np.int64)


def batch_handlers(
    retrieval_dir: str | Path | None, ranker_dir: str | Path | None, sids_source: str | Path, sids_path: str
) -> tuple[RetrievalHandler | None, RankingHandler | None]:
    """The serving handlers with request-size limits lifted and (retrieval) an exact index."""
    sids = resolve_sids(sids_source, sids_path)
    ret = None
    if retrieval_dir:
        rc = RetrievalHandlerConfig(
            max_top_k=UNLIMITED,
            max_history=UNLIMITED,
            max_exclusions=UNLIMITED,
            index=IndexConfig(exact_max_size=UNLIMITED),
        )
        ret = RetrievalHandler.from_dir(retrieval_dir, config=rc, sids=sids)
    rnk = None
    if ranker_dir:
        kc = RankingHandlerConfig(max_candidates=UNLIMITED, max_history=UNLIMITED, cache_max_entries=4_096)
        rnk = RankingHandler.from_dir(ranker_dir, kc, sids)
    return ret, rnk


def recommend(
    users: np.ndarray,
    logs_path: str | Path,
    retrieval_dir: str | Path | None = None,
    ranker_dir: str | Path | None = None,
    candidates: pl.DataFrame | None = None,
    config: RecommendConfig | None = None,
) -> pl.DataFrame:
    """One row per (user, recommended post): user_id, rank (1 = best), post_id, author_id, score
    [, p_<action> ...]; at most `top_k` rows per user, best first."""
    cfg = config or RecommendConfig()
    if retrieval_dir is None and ranker_dir is None:
        raise ValueError("give a retrieval model, a ranker, or both")
    if candidates is not None and ranker_dir is None:
        raise ValueError("a candidates file is ranked by the ranker: give --ranker")
    if candidates is not None and retrieval_dir is not None:
        raise ValueError("give either a retrieval model or a candidates file, not both")
    if cfg.top_k <= 0 or cfg.retrieve <= 0:
        raise ValueError("top_k and retrieve must be positive")
    imp = impressions_from_log(read_log(resolve_logs(logs_path).engagements))
    hist = Histories(imp)
    ret, rnk = batch_handlers(retrieval_dir, ranker_dir, logs_path, cfg.sids_path)
    if ret is not None:
        ret.add_posts(*corpus_posts(logs_path, imp))
    by_user = candidates.partition_by("user_id", as_dict=True) if candidates is not None else {}
    heads = list(RANKING_HEADS) if cfg.probabilities and rnk is not None else []
    rows: dict[str, list[np.ndarray]] = {k: [] for k in ("user_id", "post_id", "author_id", "score")}
    probs_out: list[np.ndarray] = []
    for user in users.tolist():
        seq = hist.sequence(user)
        if ret is not None:
            n = cfg.retrieve if rnk is not None else cfg.top_k
            found = ret.retrieve(user, seq, n, exclude_post_ids=np.unique(seq["post_id"]))
            posts = np.array([p for p, _, _ in found], dtype=np.int64)
            authors = np.array([a for _, a, _ in found], dtype=np.int64)
            scores = np.array([s for _, _, s in found], dtype=np.float64)
            surfaces = np.full(len(posts), hist.common_surface, dtype=np.int64)
        else:
            c = by_user.get((user,))
            if c is None:
                continue
            posts, authors = c["post_id"].to_numpy(), c["author_id"].to_numpy()
            surfaces = c["product_surface"].fill_null(hist.common_surface).to_numpy()
            scores = np.zeros(len(posts))
        probs = np.zeros((len(posts), len(heads)), dtype=np.float32)
        if rnk is not None and len(posts):
            p, _ = rnk.predict(
                user, Histories.ranker_history(seq), Candidates(posts, authors, surfaces), now_ms=cfg.now_ms
            )
            scores, probs = ranking_score(p), p[:, heads]
        top = np.argsort(-scores, kind="stable")[: cfg.top_k]
        rows["user_id"].append(np.full(len(top), user, dtype=np.int64))
        rows["post_id"].append(posts[top])
        rows["author_id"].append(authors[top])
        rows["score"].append(scores[top])
        probs_out.append(probs[top])

    def cat(k: str, dtype: type) -> np.ndarray:
        return np.concatenate(rows[k]).astype(dtype) if rows[k] else np.zeros(0, dtype)

    df = pl.DataFrame(
        {
            "user_id": cat("user_id", np.int64),
            "rank": pl.Series([r for x in rows["post_id"] for r in range(1, len(x) + 1)], dtype=pl.Int32),
            "post_id": cat("post_id", np.int64),
            "author_id": cat("author_id", np.int64),
            "score": cat("score", np.float64),
        }
    )
    if heads:
        p = np.concatenate(probs_out) if probs_out else np.zeros((0, len(heads)), np.float32)
        df = df.with_columns(pl.Series(f"p_{ACTION_NAMES[h]}", p[:, i]) for i, h in enumerate(heads))
    return df


def write_recommendations(df: pl.DataFrame, out: str | Path) -> None:
    """Parquet, written to a temporary name and renamed: no half-written output on failure."""
    p = Path(out)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp")
    try:
        df.write_parquet(tmp)
        tmp.replace(p)
    finally:
        tmp.unlink(missing_ok=True)
