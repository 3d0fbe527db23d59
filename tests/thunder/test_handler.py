"""InNetworkPostsHandler (transport-free GetInNetworkPosts): validation, defaults, per-author
limits, QPS admission and the LightPost conversion."""

from __future__ import annotations

import time

import pytest

from protos import thunder_pb2 as pb
from thunder.config import ThunderConfig
from thunder.handler import InNetworkPostsHandler, InvalidRequest, RateLimited, TokenBucket
from thunder.store import PostRecord, PostStore

VIEWER = 1


def _handler(store: PostStore, **cfg: object) -> InNetworkPostsHandler:
    return InNetworkPostsHandler(store, ThunderConfig.default(**cfg))


def _store(n_authors: int, per_author: int, video: bool = False) -> PostStore:
    now = int(time.time())
    s = PostStore()
    recs = [
        PostRecord(a * 1000 + i, 100 + a, now - 10 - i, has_video=video)
        for a in range(n_authors)
        for i in range(per_author)
    ]
    s.insert(recs, now_s=now)
    return s


def test_invalid_requests_are_refused_with_a_reason() -> None:
    h = _handler(PostStore())
    with pytest.raises(InvalidRequest, match="user_id"):
        h.get_in_network_posts(pb.GetInNetworkPostsRequest(user_id=0, following_user_ids=[2]))
    with pytest.raises(InvalidRequest, match="following_user_ids"):
        h.get_in_network_posts(pb.GetInNetworkPostsRequest(user_id=1, following_user_ids=range(10_001)))
    with pytest.raises(InvalidRequest, match="exclude_post_ids"):
        h.get_in_network_posts(
            pb.GetInNetworkPostsRequest(user_id=1, following_user_ids=[2], exclude_post_ids=range(10_001))
        )
    # out-of-range fields (issue 16): non-positive ids, an algorithm Thunder does not know
    with pytest.raises(InvalidRequest, match="following_user_ids must hold positive ids, got -3"):
        h.get_in_network_posts(pb.GetInNetworkPostsRequest(user_id=1, following_user_ids=[2, -3]))
    with pytest.raises(InvalidRequest, match="exclude_post_ids must hold positive ids, got 0"):
        h.get_in_network_posts(
            pb.GetInNetworkPostsRequest(user_id=1, following_user_ids=[2], exclude_post_ids=[0])
        )
    with pytest.raises(InvalidRequest, match="unknown algorithm 'popular'"):
        h.get_in_network_posts(
            pb.GetInNetworkPostsRequest(user_id=1, following_user_ids=[2], algorithm="popular")
        )
    for algorithm in ("", "recent", "default", "latest"):
        h.get_in_network_posts(
            pb.GetInNetworkPostsRequest(user_id=1, following_user_ids=[2], algorithm=algorithm)
        )
    # exactly at the limit is fine
    resp = h.get_in_network_posts(pb.GetInNetworkPostsRequest(user_id=1, following_user_ids=range(1, 10_001)))
    assert len(resp.posts) == 0


def test_default_max_results_1200_posts_and_600_videos() -> None:
    h = _handler(_store(n_authors=30, per_author=50))  # 1,500 eligible originals
    following = [100 + a for a in range(30)]
    resp = h.get_in_network_posts(pb.GetInNetworkPostsRequest(user_id=VIEWER, following_user_ids=following))
    assert len(resp.posts) == 1200
    created = [p.created_at for p in resp.posts]
    assert created == sorted(created, reverse=True)
    small = h.get_in_network_posts(
        pb.GetInNetworkPostsRequest(user_id=VIEWER, following_user_ids=following, max_results=7)
    )
    assert len(small.posts) == 7

    hv = _handler(_store(n_authors=8, per_author=100, video=True))  # 800 eligible videos
    fv = [100 + a for a in range(8)]
    video = hv.get_in_network_posts(
        pb.GetInNetworkPostsRequest(user_id=VIEWER, following_user_ids=fv, is_video_request=True)
    )
    assert len(video.posts) == 600 and all(p.has_video for p in video.posts)


def test_per_author_limits_are_clamped_to_the_constants() -> None:
    h = _handler(_store(n_authors=2, per_author=80))
    req = pb.GetInNetworkPostsRequest(user_id=VIEWER, following_user_ids=[100, 101])
    assert len(h.get_in_network_posts(req).posts) == 100  # 50 per author
    req.per_author_limits.max_posts_per_author = 3
    assert len(h.get_in_network_posts(req).posts) == 6
    req.per_author_limits.max_posts_per_author = 500  # above the constant: clamped to 50
    assert len(h.get_in_network_posts(req).posts) == 100


def test_qps_limit_refuses_excess_requests() -> None:
    h = _handler(_store(1, 1), qps_limit=0.001)  # burst of 1, practically no refill
    req = pb.GetInNetworkPostsRequest(user_id=VIEWER, following_user_ids=[100])
    assert len(h.get_in_network_posts(req).posts) == 1
    with pytest.raises(RateLimited):
        h.get_in_network_posts(req)
    unlimited = _handler(_store(1, 1), qps_limit=0)
    for _ in range(50):
        unlimited.get_in_network_posts(req)


def test_token_bucket_refills_at_its_rate() -> None:
    b = TokenBucket(rate=1000.0, burst=2)
    assert b.try_acquire() and b.try_acquire()
    assert not b.try_acquire()
    time.sleep(0.01)  # ~10 tokens' worth, capped at the burst of 2
    assert b.try_acquire() and b.try_acquire()


def test_light_posts_carry_optional_ids_only_when_present() -> None:
    now = int(time.time())
    s = PostStore()
    s.insert(
        [
            PostRecord(1, 100, now - 50, conversation_id=1),
            PostRecord(2, 100, now - 40, is_retweet=True, source_post_id=77, source_user_id=8),
            PostRecord(
                3,
                100,
                now - 30,
                is_reply=True,
                in_reply_to_post_id=1,
                in_reply_to_user_id=100,
                conversation_id=1,
            ),
        ],
        now_s=now,
    )
    h = _handler(s)
    posts = h.get_in_network_posts(
        pb.GetInNetworkPostsRequest(user_id=VIEWER, following_user_ids=[100], algorithm="latest")
    ).posts
    by_id = {p.post_id: p for p in posts}
    assert [p.post_id for p in posts] == [3, 2, 1]
    assert by_id[1].HasField("conversation_id") and not by_id[1].HasField("in_reply_to_post_id")
    assert by_id[2].is_retweet and by_id[2].source_post_id == 77 and by_id[2].source_user_id == 8
    assert not by_id[2].HasField("conversation_id")
    assert by_id[3].is_reply and by_id[3].in_reply_to_post_id == 1 and by_id[3].in_reply_to_user_id == 100
    assert by_id[3].created_at == now - 30 and by_id[3].author_id == 100
