"""Request payloads for `bench/load.py`, built from a saved world: viewer ids that exist (users who
follow someone and have an engagement history), their real follow lists, their action sequences
merged exactly as the action-sequence ingester merges them (foryou.core.user_state), and candidate
sets drawn from the world's posts. Each payload is serialised once; the load loop only picks one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from foryou.core import user_state as us
from protos import events_pb2, home_mixer_pb2, phoenix_pb2, thunder_pb2

Factory = Callable[[int], bytes]


@dataclass(slots=True)
class PayloadSizes:
    viewers: int = 64  # distinct viewers, requests cycle over them
    history: int = us.DEFAULT_SEQ_CAP  # history items per Predict / Retrieve (the serving cap)
    candidates: int = 1000  # Predict candidates (home_mixer sends ~1,000-2,200)
    top_k: int = 1000  # Retrieve top_k (home_mixer's phoenix_max_results)
    following: int = 0  # Thunder followees; 0 = the viewer's real follow list
    seed: int = 0


class Payloads:
    """Serialised requests for each service, one per viewer."""

    def __init__(self, world_dir: str | Path, sizes: PayloadSizes | None = None) -> None:
        from world import World

        self.sizes = sizes = sizes or PayloadSizes()
        world = World.load(world_dir)
        rng = np.random.default_rng(sizes.seed)
        follows = world.follows.filter(pl.col("kind") == "follow")
        eng = world.engagements.sort("timestamp_ms")
        active = (
            eng.group_by("user_id")
            .len()
            .join(follows.group_by("user_id").len().rename({"len": "f"}), on="user_id")
            .sort(["len", "user_id"], descending=[True, False])
        )
        self.viewers: list[int] = active["user_id"].head(sizes.viewers).to_list()
        if not self.viewers:
            raise ValueError(f"{world_dir}: no user both follows someone and has engaged")
        viewer_set = set(self.viewers)
        following = {
            u: ids
            for u, ids in follows.group_by("user_id").agg(pl.col("target_user_id")).iter_rows()
            if u in viewer_set
        }
        # the world's own ids, to pad follow lists past a viewer's real ones (`--following`)
        pad_ids = np.unique(
            np.concatenate([world.authors["author_id"].to_numpy(), world.users["user_id"].to_numpy()])
        )
        live = world.posts.filter(pl.col("deleted_at_ms") == 0)
        self.post_ids = live["post_id"].to_numpy()
        self.author_ids = live["author_id"].to_numpy()
        histories = self._histories(eng, sizes.history)

        self.thunder: list[bytes] = []
        self.retrieve: list[bytes] = []
        self.predict: list[bytes] = []
        self.home_mixer: list[bytes] = []
        for v in self.viewers:
            seq = us.action_sequence_to_proto(histories.get(v, us.empty_sequence()))
            fol = list(following.get(v, []))
            if sizes.following:
                extra = rng.permutation(pad_ids[~np.isin(pad_ids, [*fol, v])]).tolist()
                fol = (fol + extra)[: sizes.following]
            self.thunder.append(
                thunder_pb2.GetInNetworkPostsRequest(
                    user_id=v, following_user_ids=sorted(fol), algorithm="default"
                ).SerializeToString()
            )
            self.retrieve.append(
                phoenix_pb2.RetrieveRequest(
                    user_id=v, action_sequence=seq, top_k=sizes.top_k
                ).SerializeToString()
            )
            n = sizes.candidates
            pick = rng.choice(len(self.post_ids), n, replace=n > len(self.post_ids))
            req = phoenix_pb2.PredictRequest(user_id=v, action_sequence=seq)
            surface = events_pb2.PRODUCT_SURFACE_HOME_TIMELINE
            for p, a in zip(self.post_ids[pick].tolist(), self.author_ids[pick].tolist(), strict=True):
                req.candidates.add(post_id=p, author_id=a, product_surface=surface)
            self.predict.append(req.SerializeToString())
            self.home_mixer.append(home_mixer_pb2.GetScoredPostsRequest(viewer_id=v).SerializeToString())

    def _histories(self, eng: pl.DataFrame, cap: int) -> dict[int, np.ndarray]:
        """Each viewer's action sequence as the ingester would hold it; shorter ones are padded with
        other users' most recent impressions (older than the viewer's own) up to `cap` items, so
        every request carries a realistic amount of history even in a tiny world."""
        mine = eng.filter(pl.col("user_id").is_in(self.viewers))
        owner_index = {u: i for i, u in enumerate(self.viewers)}
        items = us.sequence_items(
            mine["post_id"].to_numpy(),
            mine["author_id"].to_numpy(),
            mine["action"].to_numpy(),
            mine["product_surface"].to_numpy(),
            mine["timestamp_ms"].to_numpy(),
            mine["dwell_ms"].to_numpy(),
        )
        owner = np.array([owner_index[u] for u in mine["user_id"].to_list()], dtype=np.int64)
        merged = us.merge_sequences([us.empty_sequence() for _ in self.viewers], items, owner, cap)
        recent = eng.tail(cap * 4).unique("post_id", keep="last", maintain_order=True)
        out: dict[int, np.ndarray] = {}
        for v, seq in zip(self.viewers, merged, strict=True):
            if len(seq) < cap:
                have = set(seq["post_id"].tolist())
                fill = recent.filter(~pl.col("post_id").is_in(list(have))).tail(cap - len(seq))
                pad = us.sequence_items(
                    fill["post_id"].to_numpy(),
                    fill["author_id"].to_numpy(),
                    np.full(fill.height, 1000),  # impressions: no action bits
                    fill["product_surface"].to_numpy(),
                    # older than the viewer's own items, so they stay the most recent
                    np.arange(fill.height, dtype=np.int64)
                    + (int(seq["timestamp_ms"].min()) if len(seq) else 0)
                    - fill.height,
                    np.zeros(fill.height, dtype=np.int64),
                )
                seq = np.concatenate([pad, seq])
            out[v] = seq
        return out

    def factory(self, service: str, unique: bool = True) -> Factory:
        """`i -> request bytes` cycling over the viewers. For Predict with `unique`, one fresh
        impression is appended to the history of each request (serialised messages concatenate:
        the sub-message merges and `items` appends) so the ranker's score cache, keyed by the exact
        history, misses as it would for a viewer whose history moved on; without it a load test
        measures the cache."""
        pool: list[bytes] = getattr(self, service)
        if service != "predict" or not unique:
            return lambda i: pool[i % len(pool)]
        post_ids, author_ids = self.post_ids, self.author_ids
        base_ms = int(time.time() * 1000)  # newer than any world event: the history's latest item

        def make(i: int) -> bytes:
            j = i % len(post_ids)
            extra = phoenix_pb2.PredictRequest(
                action_sequence=phoenix_pb2.ActionSequence(
                    items=[
                        phoenix_pb2.HistoryItem(
                            post_id=int(post_ids[j]),
                            author_id=int(author_ids[j]),
                            product_surface=events_pb2.PRODUCT_SURFACE_HOME_TIMELINE,
                            timestamp_ms=base_ms + i,
                        )
                    ]
                )
            )
            return pool[i % len(pool)] + extra.SerializeToString()

        return make

    def describe(self) -> dict[str, int]:
        """Sizes actually sent (for the report)."""
        fol = [
            len(thunder_pb2.GetInNetworkPostsRequest.FromString(b).following_user_ids) for b in self.thunder
        ]
        p = phoenix_pb2.PredictRequest.FromString(self.predict[0])
        return {
            "viewers": len(self.viewers),
            "thunder_following_mean": round(float(np.mean(fol))),
            "history_items": len(p.action_sequence.items),
            "predict_candidates": len(p.candidates),
            "retrieve_top_k": self.sizes.top_k,
            "predict_request_bytes": len(self.predict[0]),
        }
