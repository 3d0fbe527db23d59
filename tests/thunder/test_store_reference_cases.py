"""More store cases for the insert, delete, trim and query rules (docs/thunder.md): delete
ordering inside and across batches, replies whose parent arrives late or is deleted, self-reposts
in every map, video list caps, duplicate followees, and restart determinism of the ingest
applier."""

from __future__ import annotations

from foryou.core.kafka import Decoded
from protos import events_pb2 as ev
from thunder.config import StoreConfig
from thunder.ingest import PostEventApplier
from thunder.store import PostRecord, PostStore

NOW = 1_800_000_000
VIEWER = 999


def post(pid: int, author: int, age_s: int = 60, **kw: object) -> PostRecord:
    return PostRecord(post_id=pid, author_id=author, created_at=NOW - age_s, **kw)  # type: ignore[arg-type]


def ids(store: PostStore, following: list[int], **kw: object) -> list[int]:
    return store.get_posts(VIEWER, following, now_s=NOW, **kw).post_ids  # type: ignore[arg-type]


def test_delete_before_create_keeps_the_post_out() -> None:
    s = PostStore()
    s.delete([(5, NOW)])
    assert s.insert([post(5, 10), post(6, 10, 30)], now_s=NOW) == 1
    assert ids(s, [10]) == [6] and s.get(5) is None


def test_tombstones_expire_with_retention_and_stop_blocking_ids() -> None:
    s = PostStore(StoreConfig(retention_s=1000))
    s.delete([(5, NOW - 900)])
    s.trim(now_s=NOW)
    assert s.num_tombstones == 1  # still inside the window
    s.trim(now_s=NOW + 200)
    assert s.num_tombstones == 0
    assert s.insert([PostRecord(5, 10, NOW + 150)], now_s=NOW + 200) == 1


def test_reply_whose_parent_arrives_later_or_is_deleted() -> None:
    s = PostStore()
    reply = post(2, 10, 100, is_reply=True, in_reply_to_post_id=1, in_reply_to_user_id=20)
    s.insert([reply], now_s=NOW)
    assert ids(s, [10]) == []  # parent not in the store: dropped
    s.insert([post(1, 20, 200)], now_s=NOW)
    assert ids(s, [10]) == [2]  # parent (an original) now present
    s.delete([(1, NOW)])
    assert ids(s, [10]) == []  # parent gone again


def test_reply_to_a_retweet_parent_is_dropped_and_replies_never_in_originals() -> None:
    s = PostStore()
    s.insert(
        [
            post(1, 20, 300, is_retweet=True, source_post_id=77, source_user_id=21),
            post(2, 10, 200, is_reply=True, in_reply_to_post_id=1, in_reply_to_user_id=20),
        ],
        now_s=NOW,
    )
    # the parent is a repost (not an original) and the reply has no conversation id
    assert ids(s, [10, 20]) == [1]
    assert ids(s, [10, 20], max_replies=0) == []  # both live in the replies + reposts list


def test_is_reply_is_forced_by_reply_ids() -> None:
    s = PostStore()
    s.insert([post(2, 10, 100, in_reply_to_post_id=12345)], now_s=NOW)  # is_reply unset, parent unknown
    assert ids(s, [10]) == []
    assert ids(s, [10], is_video=True) == []


def test_self_reposts_are_dropped_from_the_video_map_too() -> None:
    s = PostStore()
    s.insert([post(1, VIEWER, 500, has_video=True)], now_s=NOW)
    s.insert([post(2, 10, 100, is_retweet=True, source_post_id=1, source_user_id=VIEWER)], now_s=NOW)
    assert ids(s, [10], is_video=True) == []
    assert s.get_posts(123, [10], now_s=NOW, is_video=True).post_ids == [2]


def test_video_repost_of_deleted_or_reply_source_is_not_video() -> None:
    s = PostStore()
    s.insert(
        [
            post(1, 20, 500, has_video=True),
            post(2, 20, 450, has_video=True, is_reply=True, in_reply_to_post_id=1, in_reply_to_user_id=20),
        ],
        now_s=NOW,
    )
    s.delete([(1, NOW)])
    s.insert(
        [
            post(3, 10, 300, is_retweet=True, source_post_id=1, source_user_id=20),
            post(4, 10, 200, is_retweet=True, source_post_id=2, source_user_id=20),
        ],
        now_s=NOW,
    )
    assert ids(s, [10], is_video=True) == []


def test_video_list_cap_keeps_posts_in_the_other_lists() -> None:
    s = PostStore(StoreConfig(max_posting_list_size=3, max_videos_per_author=10))
    s.insert([post(1, 10, 100, has_video=True), post(2, 10, 90, has_video=True)], now_s=NOW)
    s.insert([post(3, 10, 80, is_retweet=True, source_post_id=1, source_user_id=20)], now_s=NOW)
    s.insert([post(4, 10, 70, is_retweet=True, source_post_id=2, source_user_id=20)], now_s=NOW)
    s.rebuild_snapshot()  # where the cap is applied
    # the video list (1, 2, 3, 4) overflowed: 1 leaves it but stays an original
    assert ids(s, [10], is_video=True) == [4, 3, 2]
    assert s.get(1) is not None and 1 in ids(s, [10])


def test_duplicate_followees_do_not_duplicate_posts_and_exclusions_apply_to_videos() -> None:
    s = PostStore()
    s.insert([post(1, 10, 100, has_video=True), post(2, 10, 50, has_video=True)], now_s=NOW)
    assert ids(s, [10, 10, 10]) == [2, 1]
    assert ids(s, [10], is_video=True, exclude=[2]) == [1]


def test_caps_apply_per_list_then_merge_sorts_everything() -> None:
    s = PostStore(StoreConfig(max_originals_per_author=2, max_replies_per_author=1))
    s.insert([post(1, 10, 900), post(2, 10, 800), post(3, 10, 700)], now_s=NOW)
    s.insert(
        [
            post(4, 10, 850, is_reply=True, in_reply_to_post_id=1, in_reply_to_user_id=10),
            post(5, 10, 50, is_retweet=True, source_post_id=77, source_user_id=30),
        ],
        now_s=NOW,
    )
    # newest 2 originals (3, 2) + newest 1 of replies/reposts (5), merged newest first
    assert ids(s, [10]) == [5, 3, 2]


def _events(now_ms: int) -> list[ev.PostEvent]:
    out = []
    for i in range(1, 40):
        out.append(
            ev.PostEvent(create=ev.Post(post_id=i, author_id=10 + i % 4, created_at=now_ms // 1000 - 500 + i))
        )
    out.append(ev.PostEvent(delete=ev.PostDelete(post_id=7, author_id=13, deleted_at_ms=now_ms)))
    out.append(ev.PostEvent(create=ev.Post(post_id=7, author_id=13, created_at=now_ms // 1000 - 1)))
    return out


def _apply_in_batches(events: list[ev.PostEvent], batch: int) -> list[int]:
    s = PostStore()
    apply = PostEventApplier(s)
    decoded = [Decoded(e, "posts", 0, i, 0, None) for i, e in enumerate(events)]
    for j in range(0, len(decoded), batch):
        apply(decoded[j : j + batch])
    return s.get_posts(VIEWER, [10, 11, 12, 13]).post_ids


def test_applier_same_state_whatever_the_batching() -> None:
    import time

    now_ms = int(time.time() * 1000)
    events = _events(now_ms)
    a, b, c = (_apply_in_batches(events, n) for n in (1, 7, 1000))
    assert a == b == c
    assert 7 not in a and len(a) == 38


def test_applier_create_and_delete_in_one_batch_leaves_a_tombstone() -> None:
    import time

    now_ms = int(time.time() * 1000)
    s = PostStore()
    apply = PostEventApplier(s)
    evs = [
        ev.PostEvent(delete=ev.PostDelete(post_id=1, author_id=10, deleted_at_ms=now_ms)),
        ev.PostEvent(create=ev.Post(post_id=1, author_id=10, created_at=now_ms // 1000 - 5)),
        ev.PostEvent(create=ev.Post(post_id=2, author_id=10, created_at=now_ms // 1000 - 4)),
    ]
    apply([Decoded(e, "posts", 0, i, 0, None) for i, e in enumerate(evs)])
    assert s.get(1) is None and s.num_tombstones == 1
    assert s.get_posts(VIEWER, [10]).post_ids == [2]


def test_applier_video_needs_5_seconds_and_created_at_falls_back_to_the_snowflake() -> None:
    import time

    from foryou.core.snowflake import make_id

    now_ms = int(time.time() * 1000)
    s = PostStore()
    apply = PostEventApplier(s)
    short = make_id(now_ms - 3000, 1)
    long_ = make_id(now_ms - 2000, 2)
    no_time = make_id(now_ms - 1000, 3)
    evs = [
        ev.PostEvent(
            create=ev.Post(
                post_id=short,
                author_id=10,
                created_at=now_ms // 1000 - 3,
                has_video=True,
                video_duration_ms=4999,
            )
        ),
        ev.PostEvent(
            create=ev.Post(
                post_id=long_,
                author_id=10,
                created_at=now_ms // 1000 - 2,
                has_video=True,
                video_duration_ms=5000,
            )
        ),
        ev.PostEvent(create=ev.Post(post_id=no_time, author_id=10)),
    ]
    apply([Decoded(e, "posts", 0, i, 0, None) for i, e in enumerate(evs)])
    assert s.get_posts(VIEWER, [10], is_video=True).post_ids == [long_]
    rec = s.get(no_time)
    assert rec is not None and rec.created_at == (now_ms - 1000) // 1000
    assert s.get_posts(VIEWER, [10]).post_ids == [no_time, long_, short]


def test_reply_parent_facts_follow_the_parent_through_folds_trims_and_row_reuse() -> None:
    """A folded reply entry remembers its parent's row; once the parent is deleted and its row is
    recycled for an unrelated original, the reply must still be dropped."""
    s = PostStore(StoreConfig(retention_s=1000))
    s.insert([post(1, 20, 200), post(2, 10, 100, is_reply=True, in_reply_to_post_id=1)], now_s=NOW)
    s.rebuild_snapshot()
    assert ids(s, [10]) == [2]
    s.delete([(1, NOW)])
    assert ids(s, [10]) == []
    s.trim(now_s=NOW)  # the parent's row waits in quarantine
    s.trim(now_s=NOW)  # ... and is free now
    s.insert([post(3, 30, 50)], now_s=NOW)  # reuses the parent's row
    s.rebuild_snapshot()
    assert s.get(3) is not None and s._n == 2
    assert ids(s, [10, 30]) == [3]
    # the parent id never comes back (tombstone), so the reply stays out after more trims
    s.trim(now_s=NOW)
    assert ids(s, [10, 30]) == [3]


def test_reply_that_is_also_a_repost() -> None:
    """Both flags: the self-repost check reads the reposted user, the reply rule the replied-to one."""
    s = PostStore()
    root = post(1, 20, 500, conversation_id=1)
    mid = post(2, 21, 400, is_reply=True, in_reply_to_post_id=1, in_reply_to_user_id=20, conversation_id=1)
    both = dict(is_retweet=True, is_reply=True, in_reply_to_post_id=2, conversation_id=1)
    followed = post(3, 10, 300, in_reply_to_user_id=21, source_user_id=40, **both)  # type: ignore[arg-type]
    not_followed = post(4, 10, 200, in_reply_to_user_id=22, source_user_id=40, **both)  # type: ignore[arg-type]
    own = post(5, 10, 100, in_reply_to_user_id=21, source_user_id=VIEWER, **both)  # type: ignore[arg-type]
    s.insert([root, mid, followed, not_followed, own], now_s=NOW)
    want = [3, 2]  # 2: a reply to the root by the followed 21
    assert ids(s, [10, 21, 40]) == want
    s.rebuild_snapshot()
    assert ids(s, [10, 21, 40]) == want
    assert ids(s, [10, 40]) == []  # the replied-to account (21) is not followed
