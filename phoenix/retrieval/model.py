"""Two-tower retrieval model: a user tower and a candidate tower whose dot product ranks posts.

User tower: the ranker's own token builder and transformer trunk over [user] + history (no
candidates), attention bidirectional over valid tokens, masked mean-pool, L2-normalised.
Candidate tower: post + author hash embeddings -> Linear -> SiLU -> Linear -> L2-normalised.
Both towers share one hash embedding table (the ranker's `HashEmbeddingTable`). As in the ranker,
a post whose semantic id is known gets SID rows in its post slots (the candidate tower sees author
hashes + SID, so a new post starts from its content), in the candidate tower and in the user's
history."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from phoenix.checkpoint import load_checkpoint_model, save_checkpoint
from phoenix.hashing import HashConfig
from phoenix.ranker.config import RankerConfig
from phoenix.ranker.model import (
    ContextTokenBuilder,
    HashEmbeddingTable,
    RankerBatch,
    Transformer,
    context_positions,
)
from phoenix.ranker.sids import SidLookup, with_sid_rows

FORMAT = "phoenix-retrieval/1"


@dataclass(slots=True)
class TwoTowerConfig:
    """`trunk` = the ranker architecture used by the user tower (and the hash table sizes). The
    default is the ranker's trunk at half width and history 64 (CPU training budget); on the demo
    world wider, deeper or longer-history towers did not retrieve better (docs/retrieval.md)."""

    trunk: RankerConfig = dataclasses.field(
        default_factory=lambda: RankerConfig(
            emb_size=64, emb_table_width=64, num_layers=2, key_size=16, history_len=64, sid_levels=1
        )
    )
    cand_hidden: int = 256
    # user-tower pooling: mean (all valid tokens; older checkpoints) | last (the newest history
    # token, as sequential recommenders do: recent items are not diluted by a long history) |
    # mean_last (their sum)
    pooling: str = "mean"
    init_temperature: float = 0.1
    min_temperature: float = 0.01

    @classmethod
    def tiny(cls, **overrides: Any) -> TwoTowerConfig:
        base: dict[str, Any] = dict(trunk=RankerConfig.tiny(sid_levels=1), cand_hidden=32)
        base.update(overrides)
        return cls(**base)

    @property
    def dim(self) -> int:
        return self.trunk.emb_size

    @property
    def hash_config(self) -> HashConfig:
        return self.trunk.hash_config

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TwoTowerConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in known and k != "trunk"}
        return cls(trunk=RankerConfig.from_dict(d.get("trunk", {})), **kw)


class TwoTowerModel(nn.Module):
    def __init__(self, cfg: TwoTowerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        t = cfg.trunk
        self.table = HashEmbeddingTable(t)
        self.context_tokens = ContextTokenBuilder(t)
        self.trunk = Transformer(t)
        self.cand_mlp = nn.Sequential(
            nn.Linear(4 * t.emb_table_width, cfg.cand_hidden),
            nn.SiLU(),
            nn.Linear(cfg.cand_hidden, t.emb_size),
        )
        # learned temperature (log-parameterised, floored at min_temperature)
        self.log_temperature = nn.Parameter(torch.tensor(math.log(cfg.init_temperature)))

    @property
    def temperature(self) -> torch.Tensor:
        return self.log_temperature.exp().clamp_min(self.cfg.min_temperature)

    def user_embed(self, b: RankerBatch) -> torch.Tensor:
        """[B, D] unit vectors from the user + history half of `b` (candidates are ignored)."""
        x = self.context_tokens(self.table, b)
        valid = b.context_valid
        # a user without id or history: let the (zero) user token stand in so pooling is defined
        valid = valid.clone()
        valid[:, 0] |= ~valid.any(dim=1)
        eye = torch.eye(x.shape[1], dtype=torch.bool, device=x.device)
        mask = valid.unsqueeze(1) | eye.unsqueeze(0)
        h = self.trunk(x, mask, context_positions(valid, self.cfg.trunk.history_len))
        w = valid.to(h.dtype).unsqueeze(-1)
        pooled = (h * w).sum(1) / w.sum(1)
        if self.cfg.pooling != "mean":
            # history is left-aligned after the user token: the newest item sits at index k
            k = valid[:, 1:].sum(1)
            last = h[torch.arange(h.shape[0], device=h.device), k]
            pooled = last if self.cfg.pooling == "last" else pooled + last
        return F.normalize(pooled, dim=-1)

    def post_rows(self, post_ids: np.ndarray, sids: SidLookup | None) -> np.ndarray:
        """Hashed post rows [..., 2], SID rows for the posts `sids` knows."""
        rows = self.cfg.hash_config.rows(post_ids, "post")
        return with_sid_rows(self.cfg.trunk, post_ids, rows, sids)

    def candidate_embed(self, post_rows: torch.Tensor, author_rows: torch.Tensor) -> torch.Tensor:
        """post/author hashed rows [..., 2] -> [..., D] unit vectors."""
        e = self.table(torch.cat([post_rows, author_rows], dim=-1))
        return F.normalize(self.cand_mlp(e), dim=-1)

    @torch.no_grad()
    def embed_posts(
        self,
        post_ids: np.ndarray,
        author_ids: np.ndarray,
        batch_size: int = 65_536,
        sids: SidLookup | None = None,
    ) -> np.ndarray:
        """Raw ids -> float32 [N, D] candidate vectors (the index's input); `sids` gives the posts
        it knows SID rows instead of post-id rows."""
        hc = self.cfg.hash_config
        post_ids, author_ids = np.asarray(post_ids, np.int64), np.asarray(author_ids, np.int64)
        out = np.empty((len(post_ids), self.cfg.dim), dtype=np.float32)
        device = self.log_temperature.device  # rows go to the model's device, vectors come back
        for s in range(0, len(post_ids), batch_size):
            p = torch.from_numpy(self.post_rows(post_ids[s : s + batch_size], sids)).to(device)
            a = torch.from_numpy(hc.rows(author_ids[s : s + batch_size], "author")).to(device)
            out[s : s + len(p)] = self.candidate_embed(p, a).float().cpu().numpy()
        return out


def save_two_tower(
    out_dir: str | Path, model: TwoTowerModel, step: int = 0, extra: dict[str, Any] | None = None
) -> str:
    """Writes the checkpoint (`phoenix.checkpoint` layout, config.json last). Returns the model_version."""
    return save_checkpoint(
        out_dir, model, model.cfg, fmt=FORMAT, version_prefix="retrieval", step=step, extra=extra
    )


def load_two_tower(model_dir: str | Path) -> tuple[TwoTowerModel, dict[str, Any]]:
    return load_checkpoint_model(
        model_dir, FORMAT, "retrieval", lambda d: TwoTowerModel(TwoTowerConfig.from_dict(d))
    )
