"""Ranker model and training configs: plain dataclasses saved in the checkpoint's config.json."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from phoenix.hashing import HashConfig

NUM_ACTIONS = 64  # discrete heads, slot i = ActionName i
# Discrete slot 0 (ActionName INVALID, never a label) is the exposure head: trained to tell the
# user's real impressions (0) from other users' impressions (1), see docs/ranker.md.
EXPOSURE_SLOT = 0
NUM_CONTINUOUS = 8  # continuous heads, slot 1 = dwell seconds
PRODUCT_SURFACE_VOCAB = 16
DWELL_CAP_S = 30.0  # reference: non-gallery dwell head = 30 * sigmoid, history dwell feature clip
NEGATIVES_AUTO = 16  # sampled negatives per request on a positives-only log
# heads of positive engagement: the listwise loss and the leave-one-out score use these
POSITIVE_HEADS = (1, 4, 5, 6, 13, 14, 21, 29, 30, 37)


AGE_UNKNOWN = 0  # age bucket of padding and of a candidate whose age is not given
AGE_FUTURE = 1  # created after the request time (a clock skew, or a sampled negative from the future)


def age_bucket(age_ms: np.ndarray, buckets: int = 64) -> np.ndarray:
    """Candidate ages in ms -> int64 buckets in [0, buckets): AGE_FUTURE below -1 minute, then
    2 + floor(log2(1 + minutes)) capped at buckets - 1 (16 buckets: under a minute, 1-3 min,
    3-7 min, ..., the last one 5.7 days and older). The model clamps to its own `age_buckets`, so
    batches are built with the default cap."""
    a = np.asarray(age_ms, dtype=np.float64)
    minutes = np.maximum(a, 0.0) / 60_000.0
    b = 2 + np.floor(np.log2(1.0 + minutes)).astype(np.int64)
    return np.where(a < -60_000.0, AGE_FUTURE, np.minimum(b, buckets - 1)).astype(np.int64)


@dataclass(slots=True)
class RankerConfig:
    """Default = CPU serving size: width 128, 4 layers, 4 query / 2 KV heads of size 32, history 128."""

    emb_size: int = 128
    emb_table_width: int = 128
    num_layers: int = 4
    num_q_heads: int = 4
    num_kv_heads: int = 2
    key_size: int = 32
    ffn_widening: float = 2.0
    history_len: int = 128
    rope_base: float = 10_000.0
    qk_norm: bool = True
    # history and candidate tokens share the post/author projection, and each K head starts as a
    # copy of its first Q head: attention begins as token similarity (same author/post -> high logit)
    shared_entity_proj: bool = True
    tied_qk_init: bool = True
    dropout: float = 0.0  # residual + token dropout, training only (regularises the id embeddings)
    user_table_size: int = 100_000
    post_table_size: int = 100_000
    author_table_size: int = 30_000
    # semantic ids of post content: a post whose SID is known gets SID rows in the two post slots
    # of its token instead of post-id hash rows (slot j = level min(j, sid_levels - 1); the
    # reference's production config likewise drops the post-id hash for SIDs). 0 = post ids only
    sid_levels: int = 1
    sid_codebook: int = 256
    # candidate age at request time (request time - creation time read from the snowflake post id)
    # as a learned embedding over this many log2-minute buckets (`age_bucket`); 0 = no age feature
    # (checkpoints from before it). Without it no model can tell a fresh post from a stale one, and
    # what a user engages with next is mostly fresh (docs/ranker.md, "Leave-one-out evaluation")
    age_buckets: int = 16

    @classmethod
    def tiny(cls, **overrides: Any) -> RankerConfig:
        base: dict[str, Any] = dict(
            emb_size=32,
            emb_table_width=16,
            num_layers=2,
            num_q_heads=2,
            num_kv_heads=1,
            key_size=16,
            history_len=16,
            user_table_size=1_000,
            post_table_size=4_000,
            author_table_size=500,
        )
        base.update(overrides)
        return cls(**base)

    @classmethod
    def small(cls, **overrides: Any) -> RankerConfig:
        """Width 64, 2 layers, 4 query / 2 KV heads of 16, history 128: on the demo world it reaches
        the default config's held-out AUC after 1 epoch in ~1/10 of the time (docs/ranker.md)."""
        base: dict[str, Any] = dict(emb_size=64, emb_table_width=64, num_layers=2, key_size=16)
        base.update(overrides)
        return cls(**base)

    @property
    def hash_config(self) -> HashConfig:
        return HashConfig(self.user_table_size, self.post_table_size, self.author_table_size)

    @property
    def table_rows(self) -> int:
        """Rows of the shared embedding table: the hashed blocks, then 2 x (codebook + 1) SID rows."""
        return self.hash_config.num_rows + (2 * (self.sid_codebook + 1) if self.sid_levels > 0 else 0)

    def sid_rows(self, codes: np.ndarray) -> np.ndarray:
        """SID codes [..., >= sid_levels] (1-based, 0 = missing) -> table rows [..., 2] for the
        two post slots; 0 where the level's code is missing."""
        base, stride = self.hash_config.num_rows, self.sid_codebook + 1
        out = np.zeros((*codes.shape[:-1], 2), dtype=np.int64)
        for slot in range(2):
            c = np.clip(codes[..., min(slot, self.sid_levels - 1)], 0, self.sid_codebook)
            out[..., slot] = np.where(c > 0, base + slot * stride + c, 0)
        return out

    @property
    def ffn_size(self) -> int:
        return -(-int(self.ffn_widening * self.emb_size) // 32) * 32

    def validate(self) -> None:
        if self.num_q_heads % self.num_kv_heads:
            raise ValueError("num_q_heads must be a multiple of num_kv_heads")
        if self.key_size % 2:
            raise ValueError("key_size must be even (RoPE)")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RankerConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        kw.setdefault("sid_levels", 0)  # checkpoints from before SIDs have no SID table
        kw.setdefault("age_buckets", 0)  # nor an age feature
        return cls(**kw)


@dataclass(slots=True)
class TrainConfig:
    """Training run knobs. `model` is the architecture trained from scratch (ignored on resume)."""

    model: RankerConfig = dataclasses.field(default_factory=RankerConfig)
    seed: int = 0
    epochs: float = 2.0  # ranking stage (all heads), after the exposure stage
    # curriculum (docs/ranker.md): first `exposure_epochs` train only the exposure slot on in-batch
    # negatives, so the trunk learns to match candidates against the history; `exposure_loss`
    # keeps that slot trained during the ranking stage
    exposure_epochs: float = 1.0
    exposure_loss: bool = True
    # author rows of the hash table start from a PPMI-SVD of the user x author impression matrix
    # with this many dimensions (0 = random init)
    warm_start_dim: int = 16
    batch_size: int = 32  # requests (user + history + up to max_candidates candidates) per step
    max_candidates: int = 32  # impressions of one user grouped into one request
    session_gap_ms: int = 60 * 60_000  # a new request starts after this gap between impressions
    lr: float = 5e-3
    embedding_lr: float = 0.05  # row-wise AdaGrad on the hash table
    weight_decay: float = 1e-3
    warmup_steps: int = 50
    grad_clip: float = 1.0
    dwell_loss_weight: float = 1.0  # x squared error of dwell / 30 s
    in_batch_negatives: bool = False  # reference labelling: negatives count as NOT_DWELLED
    # sampled negatives per request (phoenix.ranker.negatives): posts the user never engaged with,
    # drawn uniform | popularity | hard (from the retrieval model `negatives_from`); -1 = auto:
    # NEGATIVES_AUTO for a positives-only log (no impression rows), else none
    negatives: int = -1
    negative_distribution: str = "popularity"
    negatives_from: str = ""  # retrieval checkpoint for `hard`
    hard_negatives_top: int = 200  # hard negatives come from the retrieval model's top this many
    # listwise softmax over a request's candidates for each positive head (docs/ranker.md, Loss)
    listwise_weight: float = 0.0
    # share of training requests whose user-id token is hidden (user rows 0): the model must read
    # the user's preferences from the history, as it must for users it never trained on
    # (docs/ranker.md, "History ablation")
    user_dropout: float = 0.0
    eval_fraction: float = 0.15  # the most recent impressions (by time) are held out
    holdout: str = ""  # phoenix.holdout spec (time:F | last:N | none); "" = time:eval_fraction
    # Parquet with post_id + sid (list of codes); "" = the log directory's posts table when it has
    # SIDs, else no SIDs
    sids_path: str = ""
    eval_every: int = 200  # steps; 0 = only at the end
    checkpoint_every: int = 200
    max_steps: int = 0  # 0 = derived from epochs (both stages keep their share when capped)
    num_threads: int = 0  # 0 = torch default
    progress: bool = True

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in known and k != "model"}
        return cls(model=RankerConfig.from_dict(d.get("model", {})), **kw)
