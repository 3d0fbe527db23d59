"""The video-carousel module (the last post-selection filter; reference VideoCarouselFilter with the
carousel selection of util/video_carousel.rs, Oct-7; off by default: EnableVideoCarousel false).

Selection (the sheet): of the selector's extra videos (`video_carousel_extra`), the vertical ones
(aspect ratio < 1.0; unknown is not vertical), best 5 (VIDEO_CAROUSEL_MAX_VIDEOS) by P(video_open),
and a module only if at least 3 (VIDEO_CAROUSEL_MIN_VIDEOS) qualify. The filter's own rule was not
read; our decision (docs/home_mixer.md): the module's videos are kept, flagged `video_carousel`,
recorded on the query in module order, and every other extra is removed (with fewer than 3 vertical
ones, all extras are removed and the feed is the plain top-K). The feed's own posts are untouched;
the pipeline lists the module after the feed's result_size posts."""

from __future__ import annotations

from candidate_pipeline import Filter, FilterResult
from home_mixer.candidate import PostCandidate
from home_mixer.query import ScoredPostsQuery
from home_mixer.selectors.video_carousel_extras import video_carousel_enabled, video_open


def carousel_videos(query: ScoredPostsQuery, extras: list[PostCandidate]) -> list[PostCandidate]:
    """The module: the vertical extras, best by P(video_open) (stable), at most max; [] below min."""
    p = query.params
    vertical = [
        c
        for c in extras
        if c.video_aspect_ratio is not None and c.video_aspect_ratio < p.video_carousel_max_aspect_ratio
    ]
    vertical.sort(key=lambda c: -(video_open(c) or 0.0))
    chosen = vertical[: p.video_carousel_max_videos]
    return chosen if len(chosen) >= p.video_carousel_min_videos else []


class VideoCarouselFilter(Filter[ScoredPostsQuery, PostCandidate]):
    def enable(self, query: ScoredPostsQuery) -> bool:
        return video_carousel_enabled(query)

    def filter(self, query: ScoredPostsQuery, candidates: list[PostCandidate]) -> FilterResult[PostCandidate]:
        extras = [c for c in candidates if c.video_carousel_extra]
        module = carousel_videos(query, extras)
        chosen = {id(c) for c in module}
        for c in module:
            c.video_carousel = True
        query.video_carousel = module
        feed = [c for c in candidates if not c.video_carousel_extra]
        removed = [c for c in extras if id(c) not in chosen]
        return FilterResult(feed + module, removed)
