"""The vectorised store against a plain-Python model of the reference rules, on random streams of
creates, deletes, snapshot folds and trims (small caps so every limit is hit)."""

from __future__ import annotations

import random

from thunder.config import StoreConfig
from thunder.store import PostRecord, PostStore

NOW = 1_800_000_000
CFG = StoreConfig(
    retention_s=5_000,
    max_originals_per_author=4,
    max_replies_per_author=3,
    max_videos_per_author=5,
    max_scan_per_author=6,
    max_posting_list_size=8,
)


class Model:
    """The store's rules applied one post at a time with plain dicts and lists: insert (retention
    window, created_at order, first copy wins, tombstones block, video lists), the posting-list cap,
    delete, trim, and the query (scan window after exclusion, per-author caps, reply rule, newest
    first)."""

    def __init__(self) -> None:
        self.posts: dict[int, PostRecord] = {}
        # list entries are the records themselves: an entry stands for the post it was made for
        self.lists: dict[str, dict[int, list[PostRecord]]] = {"o": {}, "s": {}, "v": {}}
        self.deleted: set[int] = set()
        self.deleted_at: dict[int, int] = {}

    def insert(self, batch: list[PostRecord], now: int) -> None:
        for p in sorted(batch, key=lambda p: p.created_at):
            if not now - CFG.retention_s <= p.created_at <= now:
                continue
            if p.post_id in self.deleted or p.post_id in self.posts:
                continue
            reply = p.is_reply or bool(p.in_reply_to_post_id or p.in_reply_to_user_id)
            self.posts[p.post_id] = p
            name = "s" if (reply or p.is_retweet) else "o"
            self.lists[name].setdefault(p.author_id, []).append(p)
            src = self.posts.get(p.source_post_id) if p.is_retweet else None
            src_video = src is not None and src.has_video and not src.is_reply and not src.in_reply_to_post_id
            if not reply and (p.has_video or src_video):
                self.lists["v"].setdefault(p.author_id, []).append(p)

    def fold(self) -> None:
        """The posting-list cap (the store applies it when recent entries are folded)."""
        for name, lists in self.lists.items():
            for lst in lists.values():
                while len(lst) > CFG.max_posting_list_size:
                    old = lst.pop(0)
                    if name != "v" and self.posts.get(old.post_id) is old:  # the post leaves the store
                        del self.posts[old.post_id]

    def trim(self, now: int) -> None:
        """Expired posts leave; deleted and expired entries leave every list (the store cleans dead
        entries at trim; the reference leaves deleted ones until they age out)."""
        self.fold()
        cutoff = now - CFG.retention_s
        self.posts = {k: p for k, p in self.posts.items() if p.created_at >= cutoff}
        for lists in self.lists.values():
            for a in list(lists):
                lists[a] = [p for p in lists[a] if self.posts.get(p.post_id) is p]
                if not lists[a]:
                    del lists[a]
        # tombstones expire with the retention window (all deletes here happen at `now`)
        self.deleted = {pid for pid in self.deleted if self.deleted_at[pid] >= cutoff}

    def delete(self, pid: int, now: int) -> None:
        self.deleted_at.setdefault(pid, now)
        self.posts.pop(pid, None)
        self.deleted.add(pid)

    def query(self, viewer: int, following: list[int], exclude: set[int], video: bool, now: int) -> list[int]:
        def from_map(name: str, cap: int, reply_rule: bool) -> list[PostRecord]:
            out = []
            for a in following:
                taken, scanned = [], 0
                for entry in reversed(self.lists[name].get(a, [])):
                    if entry.post_id in exclude:
                        continue
                    if scanned == CFG.max_scan_per_author:
                        break
                    scanned += 1
                    # if the entry's post left and its id came back later (eviction or expiry, then a
                    # re-delivery), the old entry stays dead (the reference's id-based lists would
                    # show the newcomer through it)
                    p = self.posts.get(entry.post_id)
                    if p is not entry or p.created_at < now - CFG.retention_s:
                        continue
                    if p.is_retweet and p.source_user_id == viewer:
                        continue
                    if reply_rule and (p.is_reply or p.in_reply_to_post_id):
                        parent = self.posts.get(p.in_reply_to_post_id)
                        if parent is None:
                            continue
                        original = not (parent.is_reply or parent.in_reply_to_post_id or parent.is_retweet)
                        to_root = p.conversation_id != 0 and parent.in_reply_to_post_id == p.conversation_id
                        if not (original or (to_root and p.in_reply_to_user_id in following)):
                            continue
                    taken.append(p)
                    if len(taken) == cap:
                        break
                out += taken
            return out

        if video:
            found = from_map("v", CFG.max_videos_per_author, False)
        else:
            found = from_map("o", CFG.max_originals_per_author, False) + from_map(
                "s", CFG.max_replies_per_author, True
            )
        found.sort(key=lambda p: (p.created_at, p.post_id), reverse=True)
        return [p.post_id for p in found]


def _random_post(rng: random.Random, pid: int, now: int, known: list[int]) -> PostRecord:
    author = rng.randint(1, 12)
    created = now - rng.randint(0, 6_000)
    kind = rng.random()
    if kind < 0.5 or not known:
        return PostRecord(pid, author, created, has_video=rng.random() < 0.3)
    # mostly an earlier post; sometimes one that arrives later (same batch or after)
    parent = rng.choice(known) if rng.random() < 0.8 else pid + rng.randint(1, 30)
    if kind < 0.7:
        return PostRecord(
            pid, author, created, is_retweet=True, source_post_id=parent, source_user_id=rng.randint(1, 12)
        )
    conv = rng.choice([0, parent, rng.choice(known)])
    return PostRecord(
        pid,
        author,
        created,
        is_reply=True,
        is_retweet=rng.random() < 0.1,  # both flags: reply rule and self-repost rule apply
        source_user_id=rng.randint(1, 12),
        in_reply_to_post_id=parent,
        in_reply_to_user_id=rng.randint(1, 12),
        conversation_id=conv,
        has_video=rng.random() < 0.2,
    )


def test_store_matches_the_reference_model_on_random_streams() -> None:
    for seed in range(6):
        rng = random.Random(seed)
        store, model = PostStore(CFG), Model()
        known: list[int] = []
        now = NOW
        for step in range(40):
            now += rng.randint(0, 200)
            batch = [_random_post(rng, 1 + len(known) + i, now, known) for i in range(rng.randint(1, 25))]
            if known and rng.random() < 0.3:
                batch.append(_random_post(rng, rng.choice(known), now, known))  # re-delivered id
            known += [p.post_id for p in batch]
            store.insert(batch, now_s=now)
            model.insert(batch, now)
            if known and rng.random() < 0.3:
                gone = rng.sample(known, k=min(3, len(known)))
                store.delete([(g, now) for g in gone])
                for g in gone:
                    model.delete(g, now)
            r = rng.random()
            if r < 0.3:
                store.rebuild_snapshot()
                model.fold()
            elif r < 0.4:
                store.trim(now_s=now)
                model.trim(now)
            following = rng.sample(range(1, 13), k=rng.randint(1, 12))
            exclude = set(rng.sample(known, k=min(len(known), rng.randint(0, 4))))
            video = rng.random() < 0.3
            viewer = rng.randint(1, 12)
            want = model.query(viewer, following, exclude, video, now)
            got = store.get_posts(viewer, following, sorted(exclude), is_video=video, now_s=now).post_ids
            assert got == want, f"seed {seed} step {step}"
