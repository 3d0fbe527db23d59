"""Ranking policy before/after issue 19 on the demo world: ground truth and diversity of the served
feeds of the demo's 100 sampled users, with the October policy (the defaults: value-model weights,
cold start, DPP, popular posts, served filter on every request) and with the policy of main before it
(param overrides: Aug weights, no mutual-follow boost, no in-network reply/repost discount, no cold
start, no DPP, no popular posts, served filter on bottom requests only). The OON reply/repost filter
and the core-data filter's text rule cannot be switched off, so "before" keeps them: it
approximates main's policy on the same code, world and models.

Per policy: mean true P(favorite) / P(negative) of the served posts, mean distinct authors and
distinct topics among the served posts, the share of served posts by small authors (the quarter of
authors with the fewest followers) and the served posts lifted by the cold start.

    .venv/bin/python bench/feed_diversity.py            # the demo world, cached models reused
    .venv/bin/python bench/feed_diversity.py --preset tiny --tiny-model --ranker-max-steps 200 \
        --retrieval-max-steps 200 --users 60             # a quick smoke run
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import grpc
import numpy as np
import polars as pl
from rich.console import Console

from foryou.app import infra
from foryou.app.demo import DemoConfig, _train_ranker, _train_retrieval, _world, feed_truth
from foryou.core.settings import Settings
from protos import home_mixer_pb2 as hm
from protos import home_mixer_pb2_grpc
from world.ground_truth import GroundTruth

BEFORE = {  # main's policy (Aug-12 weights, no Oct components)
    "video_open_weight": "0.05",
    "click_weight": "0.4",
    "vqv_weight": "0.05",
    "dwell_weight": "0.0",
    "cont_click_dwell_time_weight": "0.0",
    "not_interested_weight": "-43.2",
    "post_unexplored_weight": "0.02",
    "bidirectional_follow_reply_weight_boost": "0.0",
    "enable_oon_rescore_in_network_replies_retweets": "false",
    "enable_viewer_cold_start": "false",
    "dpp_enabled": "false",
    "enable_popular_posts_source": "false",
    "enable_served_filter_all_requests": "false",
}
POLICIES = {"before (main's policy)": BEFORE, "after (October policy)": {}}


def feed_stats(world, truth: GroundTruth, user: int, resp, small: set[int]) -> dict[str, float]:  # type: ignore[no-untyped-def]
    sel = [c for c in resp.candidates if c.outcome == "selected"]
    t = feed_truth(truth, user, resp)["served"]
    ids = [c.post_id for c in sel]
    topics = world.posts.filter(pl.col("post_id").is_in(ids))["topic"].to_list()
    return {
        "favorite": t["favorite"],
        "negative": t["negative"],
        "authors": float(len({c.author_id for c in sel})),
        "topics": float(len(set(topics))),
        "small_author_share": float(np.mean([c.author_id in small for c in sel])) if sel else 0.0,
        "cold_started": float(sum(bool(c.fields.get("cold_start_lift_rank")) for c in sel)),
        "posts": float(len(sel)),
    }


async def measure(settings: Settings, console: Console, cfg: DemoConfig) -> dict[str, dict[str, float]]:
    from foryou.app.stack import Stack, StackConfig
    from world.publish import publish_world

    world, world_dir = _world(settings, console, cfg)
    stack = Stack(settings, StackConfig(sids_path=str(Path(world_dir) / "posts.parquet")))
    try:
        await stack.start_ingestion()
        await asyncio.to_thread(publish_world, world, settings, None, True)
        await stack.wait_caught_up()
        stack.config.ranker_dir = str(
            await asyncio.to_thread(_train_ranker, settings, console, cfg, world_dir)
        )
        stack.config.retrieval_dir = str(
            await asyncio.to_thread(_train_retrieval, settings, console, cfg, world_dir)
        )
        await stack.start_retrieval()
        await stack.start_serving()
        followers = world.follows.filter(pl.col("kind") == "follow")["user_id"].unique().sort()
        users = followers.sample(min(cfg.quality_users, len(followers)), seed=cfg.seed).to_list()
        fc = world.authors.sort("follower_count")
        small = set(fc["author_id"].head(max(1, fc.height // 4)).to_list())
        truth = GroundTruth(world_dir)
        out: dict[str, dict[str, float]] = {}
        async with grpc.aio.insecure_channel(stack.addresses["home_mixer"]) as ch:
            stub = home_mixer_pb2_grpc.ScoredPostsServiceStub(ch)
            for name, overrides in POLICIES.items():
                rows = []
                for user in users:
                    req = hm.GetDebugScoredPostsRequest(
                        query=hm.GetScoredPostsRequest(viewer_id=user), param_overrides=overrides
                    )
                    resp = await stub.GetDebugScoredPosts(req, timeout=30)
                    if any(c.outcome == "selected" for c in resp.candidates):
                        rows.append(feed_stats(world, truth, user, resp, small))
                out[name] = {k: float(np.nanmean([r[k] for r in rows])) for k in rows[0]}
                out[name]["users"] = float(len(rows))
        return out
    finally:
        await stack.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--users", type=int, default=100)
    ap.add_argument("--tiny-model", action="store_true", help="tiny ranker/retrieval (smoke runs)")
    ap.add_argument("--ranker-max-steps", type=int, default=0)
    ap.add_argument("--retrieval-max-steps", type=int, default=0)
    a = ap.parse_args()
    console = Console()
    cfg = DemoConfig(
        preset=a.preset,
        quality_users=a.users,
        tiny_model=a.tiny_model,
        ranker_max_steps=a.ranker_max_steps,
        retrieval_max_steps=a.retrieval_max_steps,
    )
    settings = Settings.from_env()
    external = bool(settings.kafka_bootstrap and settings.redis_url)
    state = infra.up(settings)
    settings = settings.replace(kafka_bootstrap=state.kafka_bootstrap, redis_url=state.redis_url)
    if not external:
        infra.clear_user_state(settings)
    try:
        res = asyncio.run(measure(settings, console, cfg))
    finally:
        if not external:
            infra.down(settings)
    for name, r in res.items():
        console.print(
            f"{name}: over {r['users']:.0f} users, P(favorite) {r['favorite']:.4f} / P(negative) "
            f"{r['negative']:.5f}; distinct authors {r['authors']:.2f}, topics {r['topics']:.2f} "
            f"of {r['posts']:.1f} served; small-author share {r['small_author_share']:.3f}; "
            f"cold-started {r['cold_started']:.2f}"
        )


if __name__ == "__main__":
    main()
