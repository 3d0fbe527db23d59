"""Transport-free GetInNetworkPosts: validation, limits and the store query."""

from __future__ import annotations

import time
from dataclasses import dataclass

from protos import thunder_pb2 as pb
from thunder import metrics
from thunder.config import MAX_POSTS_TO_RETURN, MAX_VIDEOS_TO_RETURN, ThunderConfig
from thunder.store import HAS_VIDEO, IS_REPLY, IS_RETWEET, PostStore, QueryResult

ALGORITHMS = {"", "recent", "default", "latest"}


class InvalidRequest(ValueError):
    """Answered as INVALID_ARGUMENT."""


@dataclass(slots=True)
class InNetworkPostsHandler:
    store: PostStore
    config: ThunderConfig

    def validate(self, req: pb.GetInNetworkPostsRequest) -> None:
        if req.user_id <= 0:
            raise InvalidRequest("user_id must be a positive id")
        limit = self.config.max_input_list_size
        if len(req.following_user_ids) > limit:
            raise InvalidRequest(f"following_user_ids has {len(req.following_user_ids)} ids; at most {limit}")
        if len(req.exclude_post_ids) > limit:
            raise InvalidRequest(f"exclude_post_ids has {len(req.exclude_post_ids)} ids; at most {limit}")

    def handle(self, req: pb.GetInNetworkPostsRequest) -> pb.GetInNetworkPostsResponse:
        t0 = time.perf_counter()
        self.validate(req)
        default_max = MAX_VIDEOS_TO_RETURN if req.is_video_request else MAX_POSTS_TO_RETURN
        max_results = req.max_results or default_max
        limits = req.per_author_limits if req.HasField("per_author_limits") else None
        res = self.store.get_posts(
            req.user_id,
            list(req.following_user_ids),
            list(req.exclude_post_ids),
            max_results=max_results,
            is_video=req.is_video_request,
            max_originals=limits.max_posts_per_author
            if limits and limits.HasField("max_posts_per_author")
            else None,
            max_replies=(
                limits.max_replies_reposts_per_author
                if limits and limits.HasField("max_replies_reposts_per_author")
                else None
            ),
        )
        out = pb.GetInNetworkPostsResponse(posts=to_light_posts(res))
        metrics.RETURNED.observe(len(out.posts))
        metrics.REQUEST_SECONDS.observe(time.perf_counter() - t0)
        return out


def to_light_posts(res: QueryResult) -> list[pb.LightPost]:
    c = {k: v.tolist() for k, v in res.columns.items()}
    out = []
    for i in range(len(res)):
        f = c["flags"][i]
        lp = pb.LightPost(
            post_id=c["post_id"][i],
            author_id=c["author_id"][i],
            created_at=c["created_at"][i],
            is_retweet=bool(f & IS_RETWEET),
            is_reply=bool(f & IS_REPLY),
            has_video=bool(f & HAS_VIDEO),
        )
        # optional ids: 0 means absent (as the reference CompactPost)
        for name in (
            "in_reply_to_post_id",
            "in_reply_to_user_id",
            "source_post_id",
            "source_user_id",
            "conversation_id",
        ):
            if c[name][i]:
                setattr(lp, name, c[name][i])
        out.append(lp)
    return out
