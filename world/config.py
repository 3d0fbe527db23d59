"""Sizes and knobs of the synthetic world. Every field is a plain value so a config round-trips
through world.json; `tiny()` is for tests, `demo()` for the demo and training smoke runs."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

# Default world "now": fixed so the same seed gives the same ids and timestamps.
DEFAULT_NOW_MS = 1_784_592_000_000
HOUR_MS = 3_600_000


@dataclass(slots=True)
class WorldConfig:
    seed: int = 0
    now_ms: int = DEFAULT_NOW_MS
    n_users: int = 2_000
    n_authors: int = 300
    n_posts: int = 15_000
    n_impressions: int = 150_000
    n_topics: int = 16
    # posts are created uniformly in [now - post_window_h, now - min_post_age_min]
    post_window_h: float = 40.0
    min_post_age_min: float = 5.0
    # post kinds (the rest are originals)
    reply_frac: float = 0.15
    repost_frac: float = 0.08
    quote_frac: float = 0.05
    secondary_topic_frac: float = 0.2  # posts on the author's secondary topic (reference: 20%)
    video_frac: float = 0.2
    subscriber_only_frac: float = 0.03
    spam_frac: float = 0.03
    nsfw_author_frac: float = 0.06  # reference: 6% of authors post NSFW
    deleted_frac: float = 0.003
    # post quality ~ Beta(k*q_author, k*(1-q_author)): authors are consistent, so ids carry quality
    post_quality_concentration: float = 8.0
    popularity_zipf: float = 0.7  # post popularity ∝ (rank + 1)^-zipf
    author_popularity_zipf: float = 0.9
    # follow graph
    mean_follows: float = 12.0
    block_frac: float = 0.03  # share of users that block one author
    mute_frac: float = 0.04
    subscribe_frac: float = 0.05
    muted_keyword_frac: float = 0.10
    # engagement sessions
    in_network_frac: float = 0.5  # of impressions, for users that follow someone
    oon_topic_frac: float = 0.5  # out-of-network candidates from the user's topics (else random)
    history_delay_h: float = 2.0  # median delay between creation and impression (lognormal)
    in_network_logit_boost: float = 1.0
    gate_slope: float = 14.0  # gate = sigmoid(slope * (affinity - gate_center))
    gate_center: float = 0.15
    # post content: multimodal vectors -> semantic ids by RQ-KMeans; drawn from
    # their own random stream, so the rest of the world does not depend on these knobs
    mm_dim: int = 64  # reference: 1024
    sid_levels: int = 6
    sid_codebook: int = 256
    # features for the October ranking policy (issue 19). Each is drawn from its own random stream
    # (seeded from `seed`), so every frame drawn before them is identical with or without them.
    # mutual follows: an author follows back each follower with P = frac * (1 - author popularity)
    mutual_follow_frac: float = 0.2
    # media-only posts: this share of original video posts carries no text
    media_only_frac: float = 0.1
    # new users: accounts created new_user_min_age_min..new_user_max_age_min before `now` (ids are
    # their creation snowflakes), following new_user_min_follows..new_user_max_follows authors,
    # with no history (no impressions); they are not in `n_users`
    n_new_users: int = 20
    new_user_min_age_min: float = 2.0
    new_user_max_age_min: float = 25.0
    new_user_min_follows: int = 5
    new_user_max_follows: int = 8

    @classmethod
    def tiny(cls, seed: int = 0, **overrides: Any) -> WorldConfig:
        """~300 users, ~60 authors, ~2,000 posts, ~15k impressions: generates in well under 2 s."""
        base = dict(
            n_users=300, n_authors=60, n_posts=2_000, n_impressions=15_000, mean_follows=8.0, n_new_users=5
        )
        base.update(overrides)
        return cls(seed=seed, **base)

    @classmethod
    def demo(cls, seed: int = 0, **overrides: Any) -> WorldConfig:
        """The default demo world (~2,000 users, 300 authors, 15,000 posts, 150k impressions)."""
        return cls(seed=seed, **overrides)

    def replace(self, **changes: Any) -> WorldConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WorldConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def validate(self) -> None:
        if min(self.n_users, self.n_authors, self.n_posts, self.n_topics) <= 0:
            raise ValueError("n_users, n_authors, n_posts and n_topics must be positive")
        if self.n_impressions < 0:
            raise ValueError("n_impressions must be >= 0")
        if self.n_topics < 2:
            raise ValueError("need at least 2 topics (authors have a primary and a secondary topic)")
        if self.reply_frac + self.repost_frac + self.quote_frac >= 1.0:
            raise ValueError("reply_frac + repost_frac + quote_frac must be < 1")
        if self.post_window_h * 60 <= self.min_post_age_min:
            raise ValueError("post_window_h must exceed min_post_age_min")
        if self.n_new_users < 0:
            raise ValueError("n_new_users must be >= 0")
        if not 0 < self.new_user_min_age_min <= self.new_user_max_age_min:
            raise ValueError("need 0 < new_user_min_age_min <= new_user_max_age_min")
        if not 0 <= self.new_user_min_follows <= self.new_user_max_follows:
            raise ValueError("need 0 <= new_user_min_follows <= new_user_max_follows")
        for name in ("mutual_follow_frac", "media_only_frac"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1]")
