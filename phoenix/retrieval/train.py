"""Two-tower training: sampled softmax over in-batch positives of
other users plus random global negatives from the corpus, log-Q corrected for popularity, with a
learned temperature. Held-out = the most recent impressions by time; metrics = recall@k of held-out
positive engagements vs a popularity baseline and random."""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
import torch.nn.functional as F

from phoenix import distributed
from phoenix.holdout import Holdout
from phoenix.log_dir import resolve_logs
from phoenix.output_dir import removed_on_failure
from phoenix.ranker.config import RankerConfig
from phoenix.ranker.data import (
    ImpressionTable,
    Requests,
    build_requests,
    impressions_from_log,
    make_batch,
    read_log,
)
from phoenix.ranker.optim import RowwiseAdagrad
from phoenix.ranker.sids import SidLookup, resolve_sids, with_sid_rows
from phoenix.retrieval.early_stopping import EarlyStopping
from phoenix.retrieval.model import TwoTowerConfig, TwoTowerModel, save_two_tower

log = logging.getLogger(__name__)

POSITIVE_ACTIONS = (1, 4, 5, 6, 11, 13, 14, 21, 29, 30, 37)
NEGATIVE_ACTIONS = (16, 17, 23, 25)


def _mask_of(actions: tuple[int, ...]) -> np.uint64:
    return np.uint64(sum(1 << a for a in actions))


POSITIVE_MASK = _mask_of(POSITIVE_ACTIONS)
NEGATIVE_MASK = _mask_of(NEGATIVE_ACTIONS)


def is_positive(action_mask: np.ndarray) -> np.ndarray:
    m = np.asarray(action_mask, dtype=np.uint64)
    return ((m & POSITIVE_MASK) != 0) & ((m & NEGATIVE_MASK) == 0)


@dataclass(slots=True)
class RetrievalTrainConfig:
    model: TwoTowerConfig = dataclasses.field(default_factory=TwoTowerConfig)
    seed: int = 0
    epochs: float = 2.0  # 3 scored lower on the demo world (post ids overfit; docs/retrieval.md)
    max_steps: int = 0  # 0 = derived from epochs
    max_seconds: float = 0.0  # 0 = no wall-clock cap
    batch_size: int = 256
    num_global_negatives: int = 512
    lr: float = 1e-2
    embedding_lr: float = 0.2
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    eval_fraction: float = 0.15
    holdout: str = ""  # phoenix.holdout spec (time:F | last:N | none); "" = time:eval_fraction
    eval_max_users: int = 2_000
    ks: tuple[int, ...] = (100, 1000)
    # early stopping: after each epoch the model is evaluated on the held-out split; training stops
    # once `patience` epochs in a row did not improve `early_stop_metric` (recall@k, "" = the first
    # of `ks`) and the best epoch's weights are kept. -1 = off
    patience: int = -1
    early_stop_metric: str = ""
    # Parquet with post_id + sid; "" = the log directory's posts table when it has SIDs
    sids_path: str = ""
    num_threads: int = 0
    progress: bool = True

    @classmethod
    def tiny(cls, **overrides: Any) -> RetrievalTrainConfig:
        base: dict[str, Any] = dict(model=TwoTowerConfig.tiny(), batch_size=64, num_global_negatives=128)
        base.update(overrides)
        return cls(**base)

    @classmethod
    def fast(cls, **overrides: Any) -> RetrievalTrainConfig:
        """~20 s on one core for the demo world (the demo's config; docs/retrieval.md)."""
        trunk = RankerConfig(
            emb_size=32,
            emb_table_width=32,
            num_layers=1,
            num_q_heads=2,
            num_kv_heads=1,
            key_size=16,
            history_len=32,
            sid_levels=1,
        )
        base: dict[str, Any] = dict(
            model=TwoTowerConfig(trunk=trunk, cand_hidden=64),
            epochs=2.0,
            batch_size=256,
            num_global_negatives=256,
        )
        base.update(overrides)
        return cls(**base)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Corpus:
    """Every retrievable post (id, author) and its training-positive count (for log-Q and the
    popularity baseline)."""

    post_ids: np.ndarray
    author_ids: np.ndarray
    pos_count: np.ndarray

    def index_of(self, post_ids: np.ndarray) -> np.ndarray:
        order = np.argsort(self.post_ids)
        pos = np.searchsorted(self.post_ids, post_ids, sorter=order)
        return order[np.clip(pos, 0, len(order) - 1)]


def _corpus(t: ImpressionTable, posts: Path | None, train_pos: np.ndarray) -> Corpus:
    """Every post of the log directory's posts table when there is one, else the logged posts."""
    if posts is not None and posts.exists():
        df = pl.read_parquet(posts, columns=["post_id", "author_id"])
    else:
        df = pl.DataFrame({"post_id": t.post_id, "author_id": t.author_id})
    df = df.unique("post_id").sort("post_id")
    post_ids, author_ids = df["post_id"].to_numpy(), df["author_id"].to_numpy()
    c = Corpus(post_ids, author_ids, np.zeros(len(post_ids), dtype=np.int64))
    idx = c.index_of(t.post_id[train_pos])
    c.pos_count = np.bincount(idx, minlength=len(post_ids))
    return c


def _eval_requests(t: ImpressionTable, history_len: int) -> tuple[Requests, np.ndarray, list[np.ndarray]]:
    """One request per user with held-out positives: history = the user's training impressions
    (most recent `history_len`), no candidates. Returns (requests, user ids, held-out post ids)."""
    n = len(t)
    new_user = np.r_[True, t.user_id[1:] != t.user_id[:-1]]
    starts = np.flatnonzero(new_user)
    ends = np.r_[starts[1:], n]
    rs, re_, users, targets = [], [], [], []
    pos = is_positive(t.action_mask)
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        ev = t.is_eval[s:e]
        held = t.post_id[s:e][ev & pos[s:e]]
        if len(held) == 0:
            continue
        first_eval = s + int(np.argmax(ev))
        rs.append(max(s, first_eval - history_len))
        re_.append(first_eval)
        users.append(t.user_id[s])
        targets.append(np.unique(held))
    hs, he = np.array(rs, dtype=np.int64), np.array(re_, dtype=np.int64)
    req = Requests(he, he, hs, he, np.ones(len(he), dtype=bool))
    return req, np.array(users, dtype=np.int64), targets


def _recall(
    scores: np.ndarray, targets: list[np.ndarray], corpus: Corpus, seen: list[np.ndarray], ks: tuple[int, ...]
) -> dict[str, float]:
    """scores [U, N] over the corpus; seen posts are excluded; recall averaged over positives."""
    hits = {k: 0 for k in ks}
    total = 0
    kmax = min(max(ks), scores.shape[1])
    for u in range(scores.shape[0]):
        s = scores[u].copy()
        if len(seen[u]):
            s[corpus.index_of(seen[u])] = -np.inf
        top = np.argpartition(-s, kmax - 1)[:kmax]
        top = top[np.argsort(-s[top], kind="stable")]
        tgt = corpus.index_of(targets[u])
        total += len(tgt)
        for k in ks:
            hits[k] += int(np.isin(tgt, top[:k]).sum())
    return {f"recall@{k}": hits[k] / max(total, 1) for k in ks}


# an extra baseline: (eval user ids [U]) -> scores [U, corpus size], higher = retrieved first
Scorer = Callable[[np.ndarray], np.ndarray]


@torch.no_grad()
def evaluate(
    model: TwoTowerModel,
    t: ImpressionTable,
    corpus: Corpus,
    cfg: RetrievalTrainConfig,
    scorers: dict[str, Scorer] | None = None,
    sids: SidLookup | None = None,
) -> dict[str, Any]:
    """recall@k of held-out positives for the model, popularity, random and any `scorers`."""
    model.eval()
    req, users, targets = _eval_requests(t, cfg.model.trunk.history_len)
    if len(users) > cfg.eval_max_users:
        keep = np.random.default_rng(cfg.seed).choice(len(users), cfg.eval_max_users, replace=False)
        keep.sort()
        req, users, targets = req.subset(keep), users[keep], [targets[i] for i in keep]
    # every post the user was shown before the held-out period is excluded (not only the posts
    # inside the model's history window: the exclusion must not depend on the model's size)
    starts = np.searchsorted(t.user_id, users)  # the table is sorted by user, then time
    seen = [np.unique(t.post_id[s:e]) for s, e in zip(starts.tolist(), req.hist_end.tolist(), strict=True)]
    device = model.log_temperature.device  # the batches go where the model is
    cand = torch.from_numpy(model.embed_posts(corpus.post_ids, corpus.author_ids, sids=sids)).to(device)
    out: dict[str, Any] = {"eval_users": int(len(users)), "eval_positives": int(sum(len(x) for x in targets))}
    model_scores = []
    for s in range(0, len(users), 256):
        rows = np.arange(s, min(s + 256, len(users)))
        b = make_batch(t, req, rows).batch.to(device)
        model_scores.append((model.user_embed(b) @ cand.T).cpu().numpy())
    if model_scores:
        out["model"] = _recall(np.concatenate(model_scores), targets, corpus, seen, cfg.ks)
        pop = np.broadcast_to(corpus.pos_count.astype(np.float64), (len(users), len(corpus.post_ids)))
        out["popularity"] = _recall(np.array(pop), targets, corpus, seen, cfg.ks)
        for name, scorer in (scorers or {}).items():
            parts = []
            for s in range(0, len(users), 256):
                r = slice(s, s + 256)
                parts.append(_recall(scorer(users[r]), targets[r], corpus, seen[r], cfg.ks))
            w = [sum(len(x) for x in targets[s : s + 256]) for s in range(0, len(users), 256)]
            out[name] = {k: float(np.average([p[k] for p in parts], weights=w)) for k in parts[0]}
    n = len(corpus.post_ids)
    out["random"] = {f"recall@{k}": min(1.0, k / n) for k in cfg.ks}
    out["corpus_posts"] = int(n)
    model.train()
    return out


def train_retrieval(
    logs_path: str | Path,
    out_dir: str | Path,
    config: RetrievalTrainConfig | None = None,
    stop: threading.Event | None = None,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """`_train_retrieval`; a run that fails (or is stopped) leaves no output folder behind when it
    started without one (or with an empty one): no half-written checkpoint for a later run to load.
    `device`: where the model, its optimiser state and each batch live (batches are built on the
    CPU and moved; phoenix/device.py resolves `--device`)."""
    with removed_on_failure(out_dir):
        return _train_retrieval(logs_path, out_dir, config, stop, torch.device(device))


def _train_retrieval(
    logs_path: str | Path,
    out_dir: str | Path,
    config: RetrievalTrainConfig | None = None,
    stop: threading.Event | None = None,
    device: torch.device | None = None,
) -> dict[str, Any]:
    """Train from a log directory (phoenix.log_dir) or an engagement-log Parquet file; writes the checkpoint
    (config.json + model.safetensors) and metrics.json into `out_dir`; returns the metrics. `stop`
    set (the demo's Ctrl-C): raises KeyboardInterrupt before the next step, writing nothing."""
    cfg = config or RetrievalTrainConfig()
    t_start = time.monotonic()
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    # under torchrun: data parallel (phoenix/distributed.py), one GPU per rank on CUDA
    dd = distributed.init_from_env(str(device or "cpu"))
    device = distributed.rank_device(device or torch.device("cpu"), dd)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    logs = resolve_logs(logs_path)
    hc = cfg.model.hash_config
    sids = resolve_sids(logs_path, cfg.sids_path)
    imp = impressions_from_log(read_log(logs.engagements))
    holdout = Holdout.resolve(cfg.holdout, cfg.eval_fraction)
    t = ImpressionTable.build(imp, hc, holdout, sids, cfg.model.trunk)
    hist_len = cfg.model.trunk.history_len
    # one request per impression: history = that user's impressions strictly before it
    req = build_requests(t, hist_len, 1, session_gap_ms=0)
    pos = is_positive(t.action_mask)
    train_req = req.subset(pos[req.cand_start] & ~req.is_eval)
    if len(train_req) == 0:
        raise ValueError(f"{logs_path}: no positive engagements in the training period")
    corpus = _corpus(t, logs.posts, pos & ~t.is_eval)
    n_corpus = len(corpus.post_ids)
    # log-Q: in-batch candidates are drawn in proportion to their positive count
    q_post = (corpus.pos_count + 1.0) / (corpus.pos_count.sum() + n_corpus)
    # tensors the steps index, on the training device (built on the CPU; `.to` is a no-op there)
    corpus_post_rows = torch.from_numpy(
        with_sid_rows(cfg.model.trunk, corpus.post_ids, hc.rows(corpus.post_ids, "post"), sids)
    ).to(device)
    corpus_author_rows = torch.from_numpy(hc.rows(corpus.author_ids, "author")).to(device)
    train_q = torch.from_numpy(q_post[corpus.index_of(t.post_id[train_req.cand_start])]).float().to(device)

    model = TwoTowerModel(cfg.model).to(device)  # before the optimisers: their state follows it
    model.train()
    dense = [p for n, p in model.named_parameters() if not n.startswith("table.")]
    opt = torch.optim.AdamW(dense, lr=cfg.lr, weight_decay=cfg.weight_decay)
    emb_opt = RowwiseAdagrad(model.table.table.weight, lr=cfg.embedding_lr)
    steps_per_epoch = max(1, len(train_req) // cfg.batch_size)
    total_steps = cfg.max_steps or max(1, int(cfg.epochs * steps_per_epoch))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total_steps, pct_start=0.1)

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    losses: list[float] = []
    step = 0
    m = cfg.num_global_negatives
    stopper = None
    if cfg.patience >= 0:
        metric = cfg.early_stop_metric or f"recall@{cfg.ks[0]}"
        stopper = EarlyStopping(cfg.patience, metric, lambda: evaluate(model, t, corpus, cfg, sids=sids))
    log_q_global = float(np.log(max(m, 1) / n_corpus))
    with Progress(
        TextColumn("retrieval"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} loss {task.fields[loss]}"),
        TimeElapsedColumn(),
        disable=not cfg.progress or not dd.is_main,
    ) as bar:
        task = bar.add_task("train", total=total_steps, loss="-")
        while step < total_steps:
            order = rng.permutation(len(train_req))
            n_full = max(1, len(order) // cfg.batch_size)
            for s in range(0, n_full * cfg.batch_size, cfg.batch_size):
                if stop is not None and stop.is_set():
                    raise KeyboardInterrupt("retrieval training stopped")
                timed_out = bool(cfg.max_seconds and time.monotonic() - t_start > cfg.max_seconds)
                if step >= total_steps or dd.mean(float(timed_out)) > 0:  # every rank stops together
                    total_steps = step
                    break
                rows = dd.shard(order[s : s + cfg.batch_size])  # this rank's share of the batch
                b = make_batch(t, train_req, rows).batch.to(device)
                u = model.user_embed(b)
                c_pos = model.candidate_embed(b.cand_post_rows[:, 0], b.cand_author_rows[:, 0])
                neg_np = rng.integers(0, n_corpus, size=m)
                neg = torch.from_numpy(neg_np).to(device)
                c_neg = model.candidate_embed(corpus_post_rows[neg], corpus_author_rows[neg])
                temp = model.temperature
                q = train_q[torch.from_numpy(rows).to(device)]
                logits_in = (u @ c_pos.T) / temp - torch.log(q * len(rows)).unsqueeze(0)
                # the same post as the row's positive elsewhere in the batch is not a negative
                pid = torch.from_numpy(t.post_id[train_req.cand_start[rows]]).to(device)
                eye = torch.eye(len(rows), dtype=torch.bool, device=device)
                dup = (pid.unsqueeze(0) == pid.unsqueeze(1)) & ~eye
                logits_in = logits_in.masked_fill(dup, float("-inf"))
                logits_g = (u @ c_neg.T) / temp - log_q_global
                neg_pid = torch.from_numpy(corpus.post_ids[neg_np]).to(device)
                logits_g = logits_g.masked_fill(neg_pid.unsqueeze(0) == pid.unsqueeze(1), float("-inf"))
                logits = torch.cat([logits_in, logits_g], dim=1)
                loss = F.cross_entropy(logits, torch.arange(len(rows), device=device))
                opt.zero_grad()
                emb_opt.zero_grad()
                loss.backward()
                dd.average_gradients(model.parameters())
                torch.nn.utils.clip_grad_norm_(dense, cfg.grad_clip)
                opt.step()
                emb_opt.step()
                if step < total_steps - 1:
                    sched.step()
                step += 1
                losses.append(dd.mean(float(loss.detach())))
                bar.update(task, advance=1, loss=f"{np.mean(losses[-20:]):.3f}")
            else:  # a full epoch: the held-out metric decides whether to go on
                if stopper is not None and stopper.epoch_done(model, step):
                    break
        if stopper is not None:
            stopper.finish(model, step)  # the best epoch's weights

    train_seconds = time.monotonic() - t_start
    if not dd.is_main:  # identical replicas: rank 0 alone evaluates and writes the checkpoint
        dd.barrier()
        return {
            "rank": dd.rank,
            "steps": step,
            "final_loss": float(np.mean(losses[-20:])) if losses else None,
        }
    metrics = evaluate(model, t, corpus, cfg, sids=sids)
    if stopper is not None:
        metrics["early_stopping"] = stopper.summary()
    metrics.update(
        steps=step,
        train_examples=int(len(train_req)),
        final_loss=float(np.mean(losses[-20:])) if losses else None,
        sid_posts=len(sids) if sids is not None and cfg.model.trunk.sid_levels > 0 else 0,
        temperature=float(model.temperature.detach()),
        train_seconds=round(train_seconds, 2),
        total_seconds=round(time.monotonic() - t_start, 2),
        config=_jsonable(cfg.to_dict()),
        device=str(device),
    )
    out = Path(out_dir)
    version = save_two_tower(
        out,
        model,
        stopper.best_step if stopper is not None else step,
        extra={"train_metrics": {k: metrics.get(k) for k in ("model", "popularity")}},
    )
    metrics["model_version"] = version
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    log.info("retrieval trained", extra={"model_version": version, "model": metrics.get("model")})
    dd.barrier()
    return metrics


def _jsonable(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _jsonable(v) for k, v in d.items()}
    if isinstance(d, (list, tuple)):
        return [_jsonable(v) for v in d]
    return d
