"""`foryou train ranker --logs PATH --out DIR`: multi-task BCE over the 64 action heads (masked) +
dwell squared error, AdamW on dense weights + row-wise AdaGrad on the hash table, warmup + cosine LR,
deterministic seed, rich progress bar, periodic eval, resumable checkpoints, metrics.json and
training-curve PNGs in the output directory."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from phoenix import distributed
from phoenix.checkpoint import CONFIG_FILE, atomic_write_text, load_weights, save_tensors
from phoenix.device import on_cpu
from phoenix.holdout import Holdout
from phoenix.log_dir import resolve_logs
from phoenix.log_validation import is_positives_only
from phoenix.output_dir import removed_on_failure
from phoenix.ranker.checkpoint import (
    OPTIMIZER_FILE,
    TRAIN_STATE_FILE,
    read_config,
    save_model,
)
from phoenix.ranker.config import DWELL_CAP_S, NEGATIVES_AUTO, POSITIVE_HEADS, RankerConfig, TrainConfig
from phoenix.ranker.data import (
    ImpressionTable,
    TrainBatch,
    batches_by_length,
    build_requests,
    exposure_labels,
    hide_user_ids,
    impressions_from_log,
    make_batch,
    read_log,
    with_history_context,
)
from phoenix.ranker.evaluate import HEADLINE, action_name, evaluate_split, predict_requests
from phoenix.ranker.metrics import roc_auc
from phoenix.ranker.model import RankerModel
from phoenix.ranker.negatives import NegativePool, append_negatives
from phoenix.ranker.optim import RowwiseAdagrad
from phoenix.ranker.sids import resolve_sids
from phoenix.ranker.warm_start import author_cooccurrence_init, sid_cooccurrence_init

PERIODIC_EVAL_REQUESTS = 2_000


def listwise_loss(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over a request's candidates, per positive head: each positive candidate against the
    request's negatives, -log(e^s_i / (e^s_i + sum_neg e^s_j)) = softplus(lse_neg - s_i); mean
    over (request, head, positive). Candidate isolation makes every candidate's score independent
    of the others, so the softmax is over scores the model also produces at serving time."""
    heads = list(POSITIVE_HEADS)
    s, y, m = logits[..., heads].float(), labels[..., heads], mask[..., heads]
    neg = (y == 0) & (m > 0)
    lse_neg = torch.logsumexp(s.masked_fill(~neg, float("-inf")), dim=1, keepdim=True)  # [B, 1, H]
    pos = (y > 0) & (m > 0) & torch.isfinite(lse_neg)
    if not pos.any():
        return logits.sum() * 0.0
    return F.softplus(lse_neg - s)[pos].mean()


def ranking_loss(
    model: RankerModel,
    tb: TrainBatch,
    dwell_weight: float,
    authors_only: bool = False,
    listwise_weight: float = 0.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    logits, cont = model(tb.batch, authors_only)
    bce = F.binary_cross_entropy_with_logits(logits, tb.labels, reduction="none") * tb.label_mask
    n = (tb.label_mask.amax(-1) > 0).sum().clamp(min=1)
    discrete = bce.sum() / n
    if listwise_weight > 0:
        discrete = discrete + listwise_weight * listwise_loss(logits, tb.labels, tb.label_mask)
    # squared error: the head estimates the expected capped dwell (0 when not dwelled). With an
    # absolute error its optimum is the median, which is 0 here (most impressions are not dwelled)
    target = tb.dwell_target.clamp(0, DWELL_CAP_S) / DWELL_CAP_S
    err = (torch.sigmoid(cont[..., 1]) - target).square() * tb.dwell_mask
    mse = err.sum() / tb.dwell_mask.sum().clamp(min=1)
    total = discrete + dwell_weight * mse
    return total, {"loss": total.item(), "bce": discrete.item(), "dwell_mse": mse.item()}


def lr_factor(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    frac = (step - warmup) / max(1, total - warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))


def _dense_params(model: RankerModel) -> list[torch.nn.Parameter]:
    return [p for n, p in model.named_parameters() if n != "table.table.weight"]


def _save_checkpoint(
    out: Path,
    model: RankerModel,
    adam: torch.optim.AdamW,
    adagrad: RowwiseAdagrad,
    step: int,
    cfg: TrainConfig,
    history: dict[str, list[Any]],
) -> str:
    tensors: dict[str, torch.Tensor] = dict(adagrad.state_tensors())
    state = adam.state_dict()
    for i, st in state["state"].items():
        for k, v in st.items():
            tensors[f"adam.{i}.{k}"] = v if torch.is_tensor(v) else torch.tensor(v)
    return save_resumable(out, model, tensors, step, adagrad.steps, cfg, history)


def save_resumable(
    out: Path,
    model: RankerModel,
    optimizer_tensors: dict[str, torch.Tensor],
    step: int,
    adagrad_steps: int,
    cfg: TrainConfig,
    history: dict[str, list[Any]],
    extra: dict[str, Any] | None = None,
) -> str:
    """A checkpoint `train_ranker` resumes from (what `_load_checkpoint` reads): the optimiser
    state, the model, then train_state.json. Returns the model_version."""
    save_tensors(out / OPTIMIZER_FILE, optimizer_tensors)
    version = save_model(out, model, step, extra={"train": cfg.to_dict(), **(extra or {})})
    state = {"step": step, "adagrad_steps": adagrad_steps, "model_version": version, "history": history}
    atomic_write_text(out / TRAIN_STATE_FILE, json.dumps(state))
    return version


def _load_checkpoint(
    out: Path, model: RankerModel, adam: torch.optim.AdamW, adagrad: RowwiseAdagrad
) -> tuple[int, dict[str, list[Any]]]:
    model.load_state_dict(load_weights(out), strict=True)
    st = json.loads((out / TRAIN_STATE_FILE).read_text())
    tensors = load_file(str(out / OPTIMIZER_FILE))
    adagrad.load_state_tensors(tensors, int(st["adagrad_steps"]))
    state = adam.state_dict()
    for i in range(len(state["param_groups"][0]["params"])):
        keys = [k for k in tensors if k.startswith(f"adam.{i}.")]
        if keys:
            state["state"][i] = {k.split(".", 2)[2]: tensors[k].clone() for k in keys}
    adam.load_state_dict(state)
    return int(st["step"]), st.get("history", {})


def _plot(out: Path, history: dict[str, list[Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    evals = [(s, m) for s, m in history.get("eval", []) if any(v is not None for v in m.values())]
    # the AUC panel only when there is periodic eval to show (eval_every > 0): never an empty one
    fig, axes = plt.subplots(1, 2 if evals else 1, figsize=(11 if evals else 6, 4), squeeze=False)
    ax = axes[0]
    if history.get("loss"):
        steps, loss = zip(*history["loss"], strict=True)
        ax[0].plot(steps, loss, lw=0.8, label="train loss (EMA)")
    ax[0].set_xlabel("step")
    ax[0].set_ylabel("loss")
    for name in HEADLINE if evals else ():
        pts = [(s, m[name]) for s, m in evals if m.get(name) is not None]
        if pts:
            s, v = zip(*pts, strict=True)
            ax[1].plot(s, v, marker="o", label=f"{name} AUC (eval)")
    if evals:
        ax[1].set_xlabel("step")
        ax[1].set_ylabel("ROC-AUC")
    for a in ax:
        if a.get_legend_handles_labels()[0]:
            a.legend()
    fig.tight_layout()
    fig.savefig(out / "training_curves.png", dpi=100)
    plt.close(fig)


# (training table, pool, retrieval checkpoint, top) -> [users, top] pool indices of hard negatives;
# injected by the caller (phoenix.retrieval.hard_negatives): the ranker package never imports retrieval
HardNegativeMiner = Callable[[ImpressionTable, NegativePool, str, int], np.ndarray]


def train_ranker(
    logs_path: str | Path,
    out_dir: str | Path,
    config: TrainConfig | None = None,
    evaluate: bool = True,
    hard_miner: HardNegativeMiner | None = None,
    stop: threading.Event | None = None,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """Train (or resume, when `out_dir` holds a checkpoint) and return the final metrics dict. A run
    that fails before its first checkpoint leaves no output folder behind (a later run would
    otherwise take the empty folder for a resume point). `stop` set (the demo's Ctrl-C): raises
    KeyboardInterrupt before the next step. `device`: where the model, its optimiser state and
    each batch live (batches are built on the CPU and moved; evaluation runs on the CPU;
    phoenix/device.py resolves `--device`)."""
    # a resumable state, once written, is kept: the next run continues from it
    with removed_on_failure(out_dir, keep=lambda out: (out / TRAIN_STATE_FILE).exists()) as out:
        return _train_ranker(
            logs_path, out, config or TrainConfig(), evaluate, hard_miner, stop, torch.device(device)
        )


def _train_ranker(
    logs_path: str | Path,
    out: Path,
    cfg: TrainConfig,
    evaluate: bool,
    hard_miner: HardNegativeMiner | None,
    stop: threading.Event | None = None,
    device: torch.device | None = None,
) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    # under torchrun: data parallel (phoenix/distributed.py), one GPU per rank on CUDA
    dd = distributed.init_from_env(str(device or "cpu"))
    device = distributed.rank_device(device or torch.device("cpu"), dd)
    resuming = (out / TRAIN_STATE_FILE).exists() and (out / CONFIG_FILE).exists()
    mcfg = RankerConfig.from_dict(read_config(out)["model"]) if resuming else cfg.model
    torch.manual_seed(cfg.seed)
    model = RankerModel(mcfg)

    t0 = time.monotonic()
    logs = resolve_logs(logs_path)
    log = read_log(logs.engagements)  # read once: the positives-only check and the impressions
    positives_only = is_positives_only(log)
    imp = with_history_context(impressions_from_log(log), logs.history)
    sids = resolve_sids(logs_path, cfg.sids_path)
    holdout = Holdout.resolve(cfg.holdout, cfg.eval_fraction)
    table = ImpressionTable.build(imp, mcfg.hash_config, holdout, sids, mcfg)
    req = build_requests(table, mcfg.history_len, cfg.max_candidates, cfg.session_gap_ms)
    train_req, eval_req = req.subset(~req.is_eval), req.subset(req.is_eval)
    if len(train_req) == 0:
        raise ValueError(f"{logs_path}: no training impressions")
    n_neg = cfg.negatives if cfg.negatives >= 0 else (NEGATIVES_AUTO if positives_only else 0)
    if positives_only and n_neg == 0:
        raise ValueError(
            f"{logs_path}: positives-only log (no impression rows): every label is 1 and the ranker "
            "learns nothing; train with sampled negatives (--negatives N, docs/ranker.md)"
        )
    pool: NegativePool | None = None
    if n_neg:
        pool = NegativePool.build(table, ~table.is_eval & ~table.is_context, cfg.negative_distribution)
        if cfg.negative_distribution == "hard":
            if not cfg.negatives_from or hard_miner is None:
                raise ValueError("hard negatives need a retrieval checkpoint (--negatives-from DIR)")
            pool.hard = hard_miner(table, pool, cfg.negatives_from, cfg.hard_negatives_top)
    # periodic eval on a fixed subset of the held-out requests
    sub = np.random.default_rng(cfg.seed).permutation(len(eval_req))[:PERIODIC_EVAL_REQUESTS]
    periodic_req = eval_req.subset(np.isin(np.arange(len(eval_req)), sub))
    data_s = time.monotonic() - t0

    steps_per_epoch = math.ceil(len(train_req) / cfg.batch_size)
    # with sampled negatives there is no exposure stage (docs/ranker.md: it measured no gain)
    exposure_epochs = cfg.exposure_epochs if pool is None else 0.0
    epochs = exposure_epochs + cfg.epochs
    total_steps = cfg.max_steps or max(1, math.ceil(epochs * steps_per_epoch))
    exposure_steps = round(total_steps * exposure_epochs / epochs) if epochs > 0 else 0
    if not resuming and cfg.warm_start_dim > 0:
        tr = ~table.is_eval
        author_cooccurrence_init(
            model.table, mcfg.hash_config, table.user_id[tr], table.author_id[tr], cfg.warm_start_dim
        )
        sid_cooccurrence_init(
            model.table, mcfg.hash_config.num_rows, table.user_id[tr], table.post_rows[tr], cfg.warm_start_dim
        )
    model.to(device)  # before the optimisers: their state is created next to the parameters
    adam = torch.optim.AdamW(
        _dense_params(model), lr=cfg.lr, betas=(0.95, 0.98), weight_decay=cfg.weight_decay
    )
    adagrad = RowwiseAdagrad(model.table.table.weight, cfg.embedding_lr)
    step, history = 0, {"loss": [], "eval": []}
    if resuming:
        step, history = _load_checkpoint(out, model, adam, adagrad)

    def periodic_eval() -> dict[str, float | None]:
        with on_cpu(model, device):  # evaluate.py builds its batches on the CPU
            idx, p, _ = predict_requests(model, table, periodic_req)
        model.train()
        y = table.action_mask[idx]
        res: dict[str, float | None] = {}
        for name, a in HEADLINE.items():
            lab = (y >> np.uint64(a)) & np.uint64(1)
            auc = roc_auc(lab, p[:, a])
            res[name] = None if np.isnan(auc) else auc
        return res

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    model.train()
    ema: float | None = None  # of the current stage's loss (the two stages' losses differ in kind)
    first_ema: float | None = None
    exposure_first_ema: float | None = None
    exposure_final_ema: float | None = None
    ema_stage_is_exposure = False
    skipped = 0
    t_train = time.monotonic()
    examples = 0
    epoch_batches: tuple[int, list[np.ndarray]] | None = None
    with Progress(
        TextColumn("[bold]train ranker"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        disable=not cfg.progress or not dd.is_main,
    ) as bar:
        task = bar.add_task("train", total=total_steps, completed=step, info="")
        while step < total_steps:
            if stop is not None and stop.is_set():
                raise KeyboardInterrupt("ranker training stopped")
            epoch, pos = divmod(step, steps_per_epoch)
            if epoch_batches is None or epoch_batches[0] != epoch:
                # the data order depends only on (seed, epoch): resume continues at the same batch
                epoch_batches = (
                    epoch,
                    batches_by_length(train_req, cfg.batch_size, np.random.default_rng([cfg.seed, epoch])),
                )
            rows = dd.shard(epoch_batches[1][pos])  # this rank's share of the global batch
            exposure_stage = step < exposure_steps
            # the exposure objective pairs a request with another's candidates (in-batch): with
            # sampled negatives the ranking heads get their contrast directly, so it is not used
            exposure = (exposure_stage or cfg.exposure_loss) and pool is None
            tb = make_batch(
                table,
                train_req,
                rows,
                np.random.default_rng([cfg.seed, epoch, pos]),
                exposure or cfg.in_batch_negatives,
            )
            if exposure:
                tb = exposure_labels(tb, exposure_only=exposure_stage)
            if cfg.user_dropout > 0:
                tb = hide_user_ids(tb, cfg.user_dropout, np.random.default_rng([cfg.seed, epoch, pos, 2]))
            if pool is not None:
                users = table.user_id[train_req.cand_start[rows]]
                neg = pool.sample(
                    users, n_neg, np.random.default_rng([cfg.seed, epoch, pos, 1]), tb.request_ms
                )
                tb = append_negatives(tb, pool, neg)
            tb = tb.to(device)  # built on the CPU; a no-op there
            # each stage ends its own cosine: the exposure stage decays over its steps, the ranking
            # stage picks the run-long cosine up where it stands
            scale = lr_factor(step, cfg.warmup_steps, exposure_steps if exposure_stage else total_steps)
            for g in adam.param_groups:
                g["lr"] = cfg.lr * scale
            loss, parts = ranking_loss(
                model, tb, cfg.dwell_loss_weight, exposure_stage and pool is None, cfg.listwise_weight
            )
            adam.zero_grad(set_to_none=True)
            adagrad.zero_grad()
            loss.backward()
            dd.average_gradients(model.parameters())
            norm = torch.nn.utils.clip_grad_norm_(_dense_params(model), cfg.grad_clip)
            if torch.isfinite(loss) and torch.isfinite(norm) and adagrad.grad_is_finite():
                adam.step()
                adagrad.step(scale)
            else:
                skipped += 1  # reference: skip the whole update on non-finite gradients
            examples += int((tb.cand_index >= 0).sum())
            step += 1
            if not exposure_stage and ema_stage_is_exposure:
                exposure_first_ema, exposure_final_ema = first_ema, ema
                ema, first_ema = None, None
            ema_stage_is_exposure = exposure_stage
            parts["loss"] = dd.mean(parts["loss"])  # of the global batch
            ema = parts["loss"] if ema is None else 0.98 * ema + 0.02 * parts["loss"]
            first_ema = ema if first_ema is None else first_ema
            if step % 10 == 0 or step == total_steps:
                history["loss"].append((step, ema))
            info = f"{'exposure ' if exposure_stage else ''}loss {ema:.4f}"
            if (
                cfg.eval_every
                and dd.is_main
                and (step % cfg.eval_every == 0 or step == total_steps)
                and len(periodic_req)
            ):
                res = periodic_eval()
                history["eval"].append((step, res))
                info += " | " + " ".join(f"{k} {v:.3f}" for k, v in res.items() if v is not None)
            if (
                cfg.checkpoint_every
                and step % cfg.checkpoint_every == 0
                and step < total_steps
                and dd.is_main
            ):
                _save_checkpoint(out, model, adam, adagrad, step, cfg, history)
            bar.update(task, completed=step, info=info)
    train_s = time.monotonic() - t_train
    model.to("cpu")  # the checkpoint is written from, and the evaluation runs on, the CPU
    if not dd.is_main:  # the replicas are identical: rank 0 alone writes the checkpoint and metrics
        dd.barrier()
        return {"rank": dd.rank, "steps": step, "final_train_loss_ema": ema}
    version = _save_checkpoint(out, model, adam, adagrad, step, cfg, history)
    _plot(out, history)

    metrics: dict[str, Any] = {
        "model_version": version,
        "steps": step,
        "exposure_steps": exposure_steps,
        "skipped_steps": skipped,
        "positives_only_log": positives_only,
        "sampled_negatives": n_neg,
        "train_requests": len(train_req),
        "eval_requests": len(eval_req),
        "sid_posts": len(sids) if sids is not None and mcfg.sid_levels > 0 else 0,
        "train_impressions": int((~table.is_eval & ~table.is_context).sum()),
        "history_context_impressions": int(table.is_context.sum()),
        "eval_impressions": int(table.is_eval.sum()),
        "data_prep_s": round(data_s, 2),
        "train_s": round(train_s, 2),
        "examples_per_s": round(examples / train_s, 1) if train_s > 0 else None,
        "device": str(device),
        # of the last stage run in this call (ranking, unless the run stopped in the exposure stage)
        "final_train_loss_ema": ema,
        "first_train_loss_ema": first_ema,
        "exposure_first_loss_ema": exposure_first_ema,
        "exposure_final_loss_ema": exposure_final_ema,
        "config": cfg.to_dict(),
    }
    if evaluate and len(eval_req):
        import polars as pl

        oracle = pl.read_parquet(logs.oracle) if logs.oracle is not None else None
        ev = evaluate_split(model, table, req, oracle)
        metrics["eval"] = ev
        model.train()
    metrics["world_size"] = dd.world_size
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))
    _plot_eval_bars(out, metrics)
    dd.barrier()
    return metrics


def _plot_eval_bars(out: Path, metrics: dict[str, Any]) -> None:
    ev = metrics.get("eval")
    if not ev:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = ev["metrics"]
    actions = [a for a in ev["actions"] if all(a in table[s] for s in table)]
    if not actions:
        return
    fig, ax = plt.subplots(figsize=(max(6, len(actions) * 0.9), 4))
    width = 0.8 / len(table)
    for i, (scorer, per_action) in enumerate(table.items()):
        ax.bar(
            np.arange(len(actions)) + i * width,
            [per_action[a]["roc_auc"] for a in actions],
            width,
            label=scorer,
        )
    ax.set_xticks(np.arange(len(actions)) + 0.4 - width / 2)
    ax.set_xticklabels(
        [a.replace("CLIENT_TWEET_", "").replace("SERVER_TWEET_", "") for a in actions],
        rotation=45,
        ha="right",
        fontsize=8,
    )
    ax.set_ylim(0.4, 1.0)
    ax.set_ylabel("ROC-AUC (eval)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "eval_auc.png", dpi=100)
    plt.close(fig)


__all__ = ["action_name", "ranking_loss", "train_ranker"]
