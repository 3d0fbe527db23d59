"""The selector's video-carousel extension (reference TopKScoreSelector, Oct-7; off by default:
EnableVideoCarousel false). On a For You request (not in-network-only) that is carousel-eligible,
after the top-K the selector appends up to VIDEO_CAROUSEL_EXTRA_CANDIDATES (30) of the candidates it
did not select: videos (a video duration), not replies, with a video-open prediction, best by
P(video_open) first (ties keep the selector's order), each flagged `video_carousel_extra`. They go
through post-selection with the feed; VideoCarouselFilter then builds the module from them."""

from __future__ import annotations

from home_mixer.candidate import PostCandidate
from home_mixer.query import ScoredPostsQuery


def video_carousel_enabled(query: ScoredPostsQuery) -> bool:
    return query.params.enable_video_carousel and not query.in_network_only and query.video_carousel_eligible


def video_open(c: PostCandidate) -> float | None:
    """The candidate's P(video_open); None when missing or NaN."""
    p = c.head_scores().get("video_open")
    return p if p is not None and p == p else None


def _video_open(c: PostCandidate) -> float | None:
    """P(video_open) of a carousel-eligible candidate (a video, not a reply), else None."""
    if c.video_duration_ms is None or c.is_reply():
        return None
    return video_open(c)


def append_video_carousel_extras(
    query: ScoredPostsQuery, selected: list[PostCandidate], rest: list[PostCandidate]
) -> tuple[list[PostCandidate], list[PostCandidate]]:
    """(selected + the extras, rest without them)."""
    n = query.params.video_carousel_extra_candidates
    scored = [(p, i) for i, c in enumerate(rest) if (p := _video_open(c)) is not None]
    scored.sort(key=lambda t: -t[0])  # stable: equal P(video_open) keeps the selector's order
    take = {i for _, i in scored[:n]}
    extras = [rest[i] for _, i in scored[:n]]
    for c in extras:
        c.video_carousel_extra = True
    return selected + extras, [c for i, c in enumerate(rest) if i not in take]
