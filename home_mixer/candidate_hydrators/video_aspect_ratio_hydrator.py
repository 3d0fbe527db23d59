"""video_aspect_ratio (width / height) of the carousel's extra videos (reference VideoAspectRatio
post-selection hydrator, Oct-7; runs only with the video carousel on). Read from the post's core
data (the original's for a repost; `Post.video_aspect_ratio`, which the synthetic world sets for
every video) through the request's shared post lookup; 0 or missing = unknown (None), which
VideoCarouselFilter does not count as vertical."""

from __future__ import annotations

from collections.abc import Sequence

from candidate_pipeline import Hydrator
from home_mixer.candidate import PostCandidate
from home_mixer.query import ScoredPostsQuery
from home_mixer.selectors.video_carousel_extras import video_carousel_enabled


class VideoAspectRatioHydrator(Hydrator[ScoredPostsQuery, PostCandidate]):
    timeout_s = 0.2

    def enable(self, query: ScoredPostsQuery) -> bool:
        return video_carousel_enabled(query)

    async def hydrate(
        self, query: ScoredPostsQuery, candidates: Sequence[PostCandidate]
    ) -> list[float | None]:
        lookup = query.post_lookup
        if lookup is None:
            raise RuntimeError("query has no post lookup")
        wanted = [c for c in candidates if c.video_carousel_extra]
        ids = [c.original_post_id() for c in wanted]
        posts = await lookup.get(ids) if ids else {}
        out: list[float | None] = []
        for c in candidates:
            p = posts.get(c.original_post_id()) if c.video_carousel_extra else None
            ratio = float(p.video_aspect_ratio) if p is not None and p.has_video else 0.0
            out.append(ratio if ratio > 0 else None)
        return out

    def update(self, candidate: PostCandidate, hydrated: float | None) -> None:
        candidate.video_aspect_ratio = hydrated
