"""The synthetic world's exact engagement probabilities for any (user, post) pair, from its hidden
tables (user topic preferences, author and post quality, labels, follow edges): what the oracle
columns hold for the impressions the world drew, extended to every pair. Used to score whole feeds
against the truth (`foryou demo`), which no logged metric can do for posts nobody was shown."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl

from world import engagement_model as em
from world.world import FILES


class GroundTruth:
    def __init__(self, world_dir: str | Path) -> None:
        w = Path(world_dir)
        cfg = json.loads((w / "world.json").read_text())
        cfg = cfg.get("config", cfg)
        self.slope = float(cfg.get("gate_slope", 14.0))
        self.center = float(cfg.get("gate_center", 0.15))
        self.boost = float(cfg.get("in_network_logit_boost", 1.0))
        users = pl.read_parquet(w / FILES["users"], columns=["user_id", "topics", "topic_weights"]).sort(
            "user_id"
        )
        self.user_ids = users["user_id"].to_numpy()
        n_topics = int(cfg.get("n_topics", 0)) or 1 + max(
            (max(t) for t in users["topics"].to_list() if t), default=0
        )
        self.pref = np.zeros((len(users), n_topics))
        flat = users.with_row_index("u").explode(["topics", "topic_weights"]).drop_nulls("topics")
        self.pref[flat["u"].to_numpy(), flat["topics"].to_numpy()] = flat["topic_weights"].to_numpy()
        authors = pl.read_parquet(w / FILES["authors"], columns=["author_id", "quality"]).sort("author_id")
        self.author_ids, self.author_quality = authors["author_id"].to_numpy(), authors["quality"].to_numpy()
        posts = pl.read_parquet(
            w / FILES["posts"], columns=["post_id", "author_id", "topic", "quality", "has_video", "labels"]
        ).sort("post_id")
        self.post_ids = posts["post_id"].to_numpy()
        self.post_author = posts["author_id"].to_numpy()
        self.topic = posts["topic"].to_numpy().astype(np.int64)
        self.quality = posts["quality"].to_numpy()
        self.has_video = posts["has_video"].to_numpy()
        self.spam = posts["labels"].list.contains("spam").to_numpy()
        self.nsfw = posts["labels"].list.contains("nsfw").to_numpy()
        # user follows author ("follow_back" edges, an author following a user, do not make a post
        # in-network for anyone: authors are not viewers)
        follows = pl.read_parquet(w / FILES["follows"]).filter(pl.col("kind") == "follow")
        self.follow_keys = np.unique(
            self._keys(follows["user_id"].to_numpy(), follows["target_user_id"].to_numpy())
        )

    def _keys(self, user_ids: np.ndarray, author_ids: np.ndarray) -> np.ndarray:
        """Pair keys by user row (new users' ids are snowflakes, too wide to shift into a key)."""
        return _pair_key(_lookup(self.user_ids, np.asarray(user_ids, np.int64)), author_ids)

    def add_follows(self, user_ids: np.ndarray, author_ids: np.ndarray) -> None:
        """New follow edges (a simulated user followed an author): the in-network boost applies to
        that pair from now on, as it does in the world's engagement model."""
        keys = self._keys(np.asarray(user_ids, np.int64), np.asarray(author_ids, np.int64))
        self.follow_keys = np.union1d(self.follow_keys, keys)

    def probabilities(self, user_id: int | np.ndarray, post_ids: np.ndarray) -> dict[int, np.ndarray]:
        """{ActionName: P(action | user shown post)} for each post; NaN for posts or users the world
        does not know."""
        post_ids = np.asarray(post_ids, dtype=np.int64)
        users = np.broadcast_to(np.asarray(user_id, dtype=np.int64), post_ids.shape)
        p = _lookup(self.post_ids, post_ids)
        u = _lookup(self.user_ids, users)
        known = (p >= 0) & (u >= 0)
        pi, ui = np.where(known, p, 0), np.where(known, u, 0)
        author = self.post_author[pi]
        ai = np.maximum(_lookup(self.author_ids, author), 0)
        feats = em.ImpressionFeatures(
            pref=self.pref[ui, self.topic[pi]],
            author_quality=self.author_quality[ai],
            post_quality=self.quality[pi],
            in_network=np.isin(_pair_key(u, author), self.follow_keys),
            has_video=self.has_video[pi],
            spam=self.spam[pi],
            nsfw=self.nsfw[pi],
        )
        probs = em.action_probabilities(feats, self.slope, self.center, self.boost)
        return {a: np.where(known, v, np.nan) for a, v in probs.items()}


def _lookup(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Index of each id in `sorted_ids`, -1 when absent."""
    if len(sorted_ids) == 0:
        return np.full(ids.shape, -1, dtype=np.int64)
    pos = np.clip(np.searchsorted(sorted_ids, ids), 0, len(sorted_ids) - 1)
    return np.where(sorted_ids[pos] == ids, pos, -1)


def _pair_key(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """One int64 per (user row, author id) pair (both < 2^31 in synthetic worlds; row -1 = unknown)."""
    return (np.asarray(a, dtype=np.int64) << 32) ^ np.asarray(b, dtype=np.int64)
