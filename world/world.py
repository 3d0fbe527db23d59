"""A generated synthetic world: Polars frames plus the config that made it; saved as Parquet.

A saved world is a phoenix log directory (`phoenix.log_dir`): its engagement log, oracle and posts
table are written under phoenix's file names, so training and evaluation read it as is."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from phoenix import log_dir
from world.config import WorldConfig

FORMAT_VERSION = 1
FRAMES = ("posts", "engagements", "oracle", "follows", "muted_keywords", "users", "authors")
# file of each frame in a saved world; the frames phoenix reads take the log directory's names
FILES = {name: f"{name}.parquet" for name in FRAMES} | {
    "engagements": log_dir.ENGAGEMENTS_FILE,
    "oracle": log_dir.ORACLE_FILE,
    "posts": log_dir.POSTS_FILE,
}


@dataclass
class World:
    """Absent ids (reply/repost/quote targets) are 0, never null; `deleted_at_ms` is 0 for live posts."""

    config: WorldConfig
    posts: pl.DataFrame
    engagements: pl.DataFrame
    oracle: pl.DataFrame
    follows: pl.DataFrame
    muted_keywords: pl.DataFrame
    users: pl.DataFrame
    authors: pl.DataFrame
    topics: list[str]
    topic_words: list[list[str]]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def deleted_post_ids(self) -> np.ndarray:
        return self.posts.filter(pl.col("deleted_at_ms") > 0)["post_id"].to_numpy()

    @property
    def deletes(self) -> pl.DataFrame:
        """post_id, author_id, deleted_at_ms of the posts deleted after creation."""
        return self.posts.filter(pl.col("deleted_at_ms") > 0).select("post_id", "author_id", "deleted_at_ms")

    @property
    def impressions(self) -> pl.DataFrame:
        from world.engagement_model import IMPRESSION

        return self.engagements.filter(pl.col("action") == IMPRESSION)

    def summary(self) -> dict[str, Any]:
        from world.engagement_model import IMPRESSION

        counts = self.engagements.group_by("action").len().sort("action")
        return {
            "users": self.users.height,
            "authors": self.authors.height,
            "posts": self.posts.height,
            "deleted_posts": int(len(self.deleted_post_ids)),
            "impressions": int((self.engagements["action"] == IMPRESSION).sum()),
            "engagement_rows": self.engagements.height,
            "follows": self.follows.group_by("kind").len().sort("kind").rows(),
            "muted_keywords": self.muted_keywords.height,
            "actions": dict(zip(counts["action"].to_list(), counts["len"].to_list(), strict=True)),
        }

    def save(self, directory: str | Path) -> Path:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        for name in FRAMES:
            getattr(self, name).write_parquet(d / FILES[name])
        meta = {
            "format_version": FORMAT_VERSION,
            "config": self.config.to_dict(),
            "topics": self.topics,
            "topic_words": self.topic_words,
            "meta": self.meta,
        }
        (d / "world.json").write_text(json.dumps(meta, indent=2))
        return d

    @classmethod
    def load(cls, directory: str | Path) -> World:
        d = Path(directory)
        meta = json.loads((d / "world.json").read_text())
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{d}: unsupported world format {meta.get('format_version')}")
        frames = {name: pl.read_parquet(d / FILES[name]) for name in FRAMES}
        return cls(
            config=WorldConfig.from_dict(meta["config"]),
            topics=meta["topics"],
            topic_words=meta["topic_words"],
            meta=meta.get("meta", {}),
            **frames,
        )

    def rebased(self, now_ms: int) -> World:
        """The same world moved in time so that `now` is `now_ms` (e.g. wall clock before publishing a
        saved world): every timestamp shifts by the difference and every post id with it (a snowflake
        id is (ms - epoch) << 22 | sequence, so shifting time by d adds d << 22)."""
        from foryou.core.snowflake import TIMESTAMP_SHIFT

        d = int(now_ms) - self.config.now_ms
        if d == 0:
            return self
        dt, did = pl.lit(d, pl.Int64), pl.lit(d << TIMESTAMP_SHIFT, pl.Int64)

        def shift_ids(*cols: str) -> list[pl.Expr]:
            return [pl.when(pl.col(c) != 0).then(pl.col(c) + did).otherwise(0).alias(c) for c in cols]

        posts = self.posts.with_columns(
            *shift_ids(
                "post_id", "in_reply_to_post_id", "source_post_id", "quoted_post_id", "conversation_id"
            ),
            pl.col("created_at_ms") + dt,
            pl.when(pl.col("deleted_at_ms") > 0)
            .then(pl.col("deleted_at_ms") + dt)
            .otherwise(0)
            .alias("deleted_at_ms"),
        )
        events = [
            f.with_columns(*shift_ids("post_id"), pl.col("timestamp_ms") + dt)
            for f in (self.engagements, self.oracle)
        ]
        # new users' ids are snowflakes of their account creation: they move with time too
        new_user = pl.col("user_id") >= (1 << TIMESTAMP_SHIFT)
        shift_user = (
            pl.when(new_user).then(pl.col("user_id") + did).otherwise(pl.col("user_id")).alias("user_id")
        )
        users = self.users
        if "created_at_ms" in users.columns:
            users = users.with_columns(
                shift_user,
                pl.when(pl.col("created_at_ms") > 0)
                .then(pl.col("created_at_ms") + dt)
                .otherwise(0)
                .alias("created_at_ms"),
            )
        return World(
            config=self.config.replace(now_ms=int(now_ms)),
            posts=posts,
            engagements=events[0],
            oracle=events[1],
            follows=self.follows.with_columns(shift_user, pl.col("created_at_ms") + dt),
            muted_keywords=self.muted_keywords.with_columns(shift_user, pl.col("created_at_ms") + dt),
            users=users,
            authors=self.authors,
            topics=self.topics,
            topic_words=self.topic_words,
            meta={**self.meta, "rebased_from_now_ms": self.config.now_ms},
        )

    def equals(self, other: World) -> bool:
        return self.config == other.config and all(getattr(self, n).equals(getattr(other, n)) for n in FRAMES)
