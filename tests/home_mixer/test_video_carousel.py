"""The video carousel (sheet §6.1, issue 19; off by default): the selector's extension (up to 30
extra videos, not replies, with a video-open score, best by P(video_open), flagged), the module rule
(vertical videos, top 5 by P(video_open), only if ≥ 3 qualify) in VideoCarouselFilter, the last
post-selection filter, and the whole pipeline on mocks: the module follows the feed's 35 posts."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from foryou.core.user_state import AuthorData, SocialGraph
from home_mixer.candidate import PostCandidate
from home_mixer.clients import HomeMixerClients
from home_mixer.filters.dedup_conversation_filter import DedupConversationFilter
from home_mixer.filters.video_carousel_filter import VideoCarouselFilter
from home_mixer.handler import ScoredPostsHandler, scored_post
from home_mixer.params import ACTION_HEADS, Params
from home_mixer.pipeline import ScoredPostsPipeline
from home_mixer.selectors.top_k_score_selector import TopKScoreSelector
from protos import events_pb2, home_mixer_pb2, phoenix_pb2, thunder_pb2

ON = Params(enable_video_carousel=True)


def video(fakes: SimpleNamespace, seq: int, score: float, vo: float | None, **kw: object) -> PostCandidate:
    scores = {"favorite": 0.1} if vo is None else {"favorite": 0.1, "video_open": vo}
    kw.setdefault("video_duration_ms", 20_000)
    return fakes.cand(fakes.pid(seq=seq), 10 + seq, score=score, phoenix_scores=scores, **kw)


def test_selector_appends_extra_videos(fakes: SimpleNamespace) -> None:
    feed = [fakes.cand(fakes.pid(seq=i), 10, score=1.0 - i / 100) for i in range(50)]
    rest = [
        video(fakes, 100, 0.1, 0.30),
        video(fakes, 101, 0.2, 0.90),
        video(fakes, 102, 0.3, 0.95, in_reply_to_post_id=7),  # a reply: never
        video(fakes, 103, 0.1, None),  # no video-open score: never
        video(fakes, 104, 0.1, 0.99, video_duration_ms=None),  # not a video: never
        video(fakes, 105, 0.05, 0.90),  # ties with 101: the selector's order decides
        fakes.cand(fakes.pid(seq=106), 9, score=0.3),
    ]
    sel = TopKScoreSelector()
    selected, non_selected = sel.select(fakes.query(), feed + rest)
    assert len(selected) == 50 and not any(c.video_carousel_extra for c in selected)  # off by default
    selected, non_selected = sel.select(fakes.query(params=ON), feed + rest)
    extras = selected[50:]
    assert [c.author_id for c in extras] == [111, 115, 110] and all(c.video_carousel_extra for c in extras)
    assert {c.author_id for c in non_selected} == {112, 113, 114, 9}
    # at most VIDEO_CAROUSEL_EXTRA_CANDIDATES (30)
    many = [video(fakes, 200 + i, 0.01, 0.5 + i / 1000) for i in range(40)]
    selected, _ = sel.select(fakes.query(params=ON), feed + many)
    assert len(selected) == 80 and selected[50].author_id == 10 + 239
    # not on an in-network-only request, nor when the viewer is not eligible
    for q in (
        fakes.query(params=ON, in_network_only=True),
        fakes.query(params=ON, video_carousel_eligible=False),
    ):
        assert len(sel.select(q, feed + rest)[0]) == 50


def test_carousel_filter_module_rule(fakes: SimpleNamespace) -> None:
    f = VideoCarouselFilter()
    assert not f.enable(fakes.query()) and f.enable(fakes.query(params=ON))
    feed = [fakes.cand(fakes.pid(seq=i), 10, score=1.0) for i in range(3)]
    extras = [
        video(fakes, 10, 0.0, 0.50, video_aspect_ratio=9 / 16),
        video(fakes, 11, 0.0, 0.90, video_aspect_ratio=16 / 9),  # landscape: not in the module
        video(fakes, 12, 0.0, 0.70, video_aspect_ratio=9 / 16),
        video(fakes, 13, 0.0, 0.20, video_aspect_ratio=0.8),
        video(fakes, 14, 0.0, 0.95, video_aspect_ratio=1.0),  # square is not vertical (< 1.0)
        video(fakes, 15, 0.0, 0.60, video_aspect_ratio=None),  # unknown: not vertical
        video(fakes, 16, 0.0, 0.65, video_aspect_ratio=0.5),
        video(fakes, 17, 0.0, 0.10, video_aspect_ratio=0.5),
        video(fakes, 18, 0.0, 0.40, video_aspect_ratio=0.5625),
    ]
    for c in extras:
        c.video_carousel_extra = True
    q = fakes.query(params=ON)
    kept, removed = f.filter(q, feed + extras)
    # the 6 vertical ones by P(video_open): .70 .65 .50 .40 .20 | .10 -> the module is the top 5
    module = [22, 26, 20, 28, 23]
    assert [c.author_id for c in kept] == [10, 10, 10, *module]
    assert [c.author_id for c in q.video_carousel] == module and all(
        c.video_carousel for c in q.video_carousel
    )
    assert sorted(c.author_id for c in removed) == [21, 24, 25, 27]
    # fewer than 3 vertical videos: no module, every extra removed
    two = [extras[0], extras[1], extras[2]]
    q2 = fakes.query(params=ON)
    kept, removed = f.filter(q2, feed + two)
    assert kept == feed and len(removed) == 3 and q2.video_carousel == []


def test_dedup_conversation_leaves_the_extras_alone(fakes: SimpleNamespace) -> None:
    root = fakes.pid(seq=1)
    feed = fakes.cand(root, 10, score=0.5)
    extra = video(fakes, 2, 0.9, 0.9, ancestors=[root])
    extra.video_carousel_extra = True
    kept, removed = DedupConversationFilter().filter(fakes.query(), [feed, extra])
    assert kept == [feed, extra] and removed == []


class VideoRanker:
    """favorite from `fav`, video_open from `vo` (per post)."""

    def __init__(self, fav: dict[int, float], vo: dict[int, float]) -> None:
        self.fav, self.vo = fav, vo

    async def predict(self, request: phoenix_pb2.PredictRequest) -> phoenix_pb2.PredictResponse:
        out = phoenix_pb2.PredictResponse(model_version="rank-test")
        for c in request.candidates:
            probs = [0.0] * 64
            probs[ACTION_HEADS["favorite"]] = self.fav.get(c.post_id, 0.1)
            probs[ACTION_HEADS["video_open"]] = self.vo.get(c.post_id, 0.0)
            out.predictions.add(post_id=c.post_id, action_probs=probs, continuous=[0.0] * 8)
        return out


def build(fakes: SimpleNamespace, vertical: int) -> SimpleNamespace:
    """60 in-network text posts (the feed), then 8 low-scored videos: `vertical` of them 9:16."""
    store = fakes.UserState()
    store.graphs[1] = SocialGraph(1, following=frozenset({10, 11, 12}))
    seq = phoenix_pb2.ActionSequence()
    seq.items.add(post_id=5, author_id=10, action_mask=2)
    store.sequences[1] = seq
    light, fav, vo = [], {}, {}
    for i in range(68):
        a = 10 + i % 3
        p = fakes.pid(age_s=600 + 30 * i, seq=i)
        is_video = i >= 60
        ratio = (9 / 16 if i - 60 < vertical else 16 / 9) if is_video else 0.0
        store.posts[p] = events_pb2.Post(
            post_id=p,
            author_id=a,
            text=f"topic{i} words{i}",
            has_video=is_video,
            video_duration_ms=30_000 if is_video else 0,
            video_aspect_ratio=ratio,
        )
        store.authors.setdefault(a, AuthorData(a, f"user{a}", 1_000))
        fav[p] = 0.02 if is_video else 0.5 + i / 1000
        vo[p] = 0.1 + (i - 60) / 100 if is_video else 0.0
        light.append(thunder_pb2.LightPost(post_id=p, author_id=a))
    clients = HomeMixerClients(
        thunder=fakes.Thunder(light),
        retrieval=fakes.Retrieval([]),
        ranking=VideoRanker(fav, vo),
        user_state=store,
    )
    w = SimpleNamespace(videos=[lp.post_id for lp in light[60:]])
    w.handler = ScoredPostsHandler(ScoredPostsPipeline(clients), clients)
    return w


def _request(on: bool) -> home_mixer_pb2.GetDebugScoredPostsRequest:
    return home_mixer_pb2.GetDebugScoredPostsRequest(
        query=home_mixer_pb2.GetScoredPostsRequest(viewer_id=1),
        param_overrides={"enable_video_carousel": "true", "dpp_enabled": "false"}
        if on
        else {"dpp_enabled": "false"},
    )


def test_whole_pipeline_module_follows_the_feed(fakes: SimpleNamespace) -> None:
    w = build(fakes, vertical=6)
    off = asyncio.run(w.handler.get_debug_scored_posts(_request(False)))
    assert sum(c.outcome == "selected" for c in off.candidates) == 35
    assert not any(c.fields.get("video_carousel") for c in off.candidates)

    resp = asyncio.run(w.handler.get_debug_scored_posts(_request(True)))
    selected = sorted((c for c in resp.candidates if c.outcome == "selected"), key=lambda c: c.position)
    assert len(selected) == 40 and len({c.post_id for c in resp.candidates}) == len(resp.candidates)
    feed, module = selected[:35], selected[35:]
    assert not any(c.post_id in w.videos for c in feed)
    # the vertical videos are the first 6 (P(video_open) .10 … .15): the best 5, best first
    assert [c.post_id for c in module] == w.videos[5:0:-1]
    assert all(
        c.fields["video_carousel"] == "module" and c.fields["video_aspect_ratio"] == "0.5625" for c in module
    )
    by_id = {c.post_id: c for c in resp.candidates}
    assert by_id[w.videos[0]].filtered_by == "VideoCarouselFilter"  # the 6th vertical one
    assert by_id[w.videos[7]].filtered_by == "VideoCarouselFilter"  # landscape
    assert by_id[w.videos[7]].fields["video_carousel"] == "extra"
    # the plain response: off by default; a module video is flagged `video_carousel`
    plain = asyncio.run(w.handler.get_scored_posts(_request(True).query))
    assert len(plain.scored_posts) == 35 and not any(p.video_carousel for p in plain.scored_posts)
    c = video(fakes, 1, 0.5, 0.5)
    c.video_carousel = True
    assert scored_post(c).video_carousel and not scored_post(fakes.cand(1, 10)).video_carousel
    stages = {s.component for s in resp.stages if s.stage == "post_selection_filter"}
    assert "VideoCarouselFilter" in stages


def test_whole_pipeline_no_module_below_three(fakes: SimpleNamespace) -> None:
    w = build(fakes, vertical=2)
    resp = asyncio.run(w.handler.get_debug_scored_posts(_request(True)))
    selected = [c for c in resp.candidates if c.outcome == "selected"]
    assert len(selected) == 35 and not any(c.post_id in w.videos for c in selected)
    assert all(c.filtered_by == "VideoCarouselFilter" for c in resp.candidates if c.post_id in w.videos)
