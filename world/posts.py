"""World generator section "posts": kinds and targets, hidden content traits, semantic ids,
conversations, text and deletions, and the `posts` frame."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from foryou.core.snowflake import make_ids
from world.config import HOUR_MS, WorldConfig
from world.population import Authors
from world.sid import multimodal_vectors, rq_kmeans
from world.vocab import COMMON_WORDS

MINUTE_MS = 60_000
KIND_ORIGINAL, KIND_REPLY, KIND_REPOST, KIND_QUOTE = 0, 1, 2, 3
_MIN_DELETE_AGE_MS = 4 * HOUR_MS  # only posts at least this old at `now` are ever deleted


@dataclass(slots=True)
class Posts:
    """Per-post arrays, index = post row (id = post_ids[row]), plus the `posts` frame."""

    post_ids: np.ndarray
    author: np.ndarray  # author row
    created: np.ndarray
    topic: np.ndarray
    quality: np.ndarray
    has_video: np.ndarray
    spam: np.ndarray
    nsfw: np.ndarray
    popularity: np.ndarray
    deleted_at: np.ndarray  # 0 = live
    frame: pl.DataFrame


@dataclass(slots=True)
class _Structure:
    created: np.ndarray
    kind: np.ndarray
    author: np.ndarray  # author row
    target: np.ndarray  # post row of the reply/repost/quote target, -1 for originals


@dataclass(slots=True)
class _Content:
    topic: np.ndarray
    quality: np.ndarray
    spam: np.ndarray
    nsfw: np.ndarray
    has_video: np.ndarray
    duration: np.ndarray  # video duration ms, 0 without video
    subscriber_only: np.ndarray
    popularity: np.ndarray


def draw_posts(c: WorldConfig, rng: np.random.Generator, authors: Authors, vocab: list[list[str]]) -> Posts:
    # the order of these calls is the order of the random draws: keep it (same seed, same world)
    created, kind = _times_and_kinds(c, rng)
    author, target = _authors_and_targets(c, rng, authors, kind)
    s = _Structure(created, kind, author, target)
    content = _content(c, rng, authors, s)
    is_repost = kind == KIND_REPOST
    sids = _post_sids(c, content.topic, author)
    sids[is_repost] = sids[target[is_repost]]  # same content, same SID
    post_ids = make_ids(created, np.arange(c.n_posts, dtype=np.int64))
    root = _conversation_roots(s)
    texts = _texts(rng, s, content.topic, vocab, authors.names)
    _media_only(c, s, content.has_video, texts, authors.names)
    aspect = _aspect_ratios(c, s, content.has_video)
    deleted_at = _deletions(c, rng, created)
    frame = _frame(s, content, authors, post_ids, root, texts, deleted_at, sids, aspect)
    return Posts(
        post_ids,
        author,
        created,
        content.topic,
        content.quality,
        content.has_video,
        content.spam,
        content.nsfw,
        content.popularity,
        deleted_at,
        frame,
    )


def _times_and_kinds(c: WorldConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Creation times uniform over the post window (sorted: row order is time order) and kinds."""
    N = c.n_posts
    lo_ms = c.now_ms - int(c.post_window_h * HOUR_MS)
    hi_ms = c.now_ms - int(c.min_post_age_min * MINUTE_MS)
    created = np.sort(rng.integers(lo_ms, hi_ms, size=N)).astype(np.int64)
    r = rng.random(N)
    kind = np.full(N, KIND_ORIGINAL)
    kind[r < c.reply_frac + c.repost_frac + c.quote_frac] = KIND_QUOTE
    kind[r < c.reply_frac + c.repost_frac] = KIND_REPOST
    kind[r < c.reply_frac] = KIND_REPLY
    kind[: min(N, 10)] = KIND_ORIGINAL  # so every derived post has an earlier target
    return created, kind


def _authors_and_targets(
    c: WorldConfig, rng: np.random.Generator, authors: Authors, kind: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Author rows ∝ posting activity; target rows (-1 for originals): a uniformly chosen earlier
    non-repost post. A repost is never of one's own post."""
    N, A = c.n_posts, c.n_authors
    author = rng.choice(A, size=N, p=authors.activity / authors.activity.sum())
    non_repost = np.flatnonzero(kind != KIND_REPOST)
    n_before = np.searchsorted(non_repost, np.arange(N))
    derived = kind != KIND_ORIGINAL
    target = np.full(N, -1, dtype=np.int64)
    target[derived] = non_repost[(rng.random(derived.sum()) * n_before[derived]).astype(np.int64)]
    own = (kind == KIND_REPOST) & (author == author[np.maximum(target, 0)])
    author[own] = (author[own] + 1 + rng.integers(0, A - 1, size=own.sum())) % A if A > 1 else author[own]
    return author, target


def _content(c: WorldConfig, rng: np.random.Generator, authors: Authors, s: _Structure) -> _Content:
    """Hidden traits: topic (the author's primary or secondary), quality ~ Beta around the author's,
    spam (more from low-quality authors), NSFW, video, subscriber-only, popularity. Replies inherit
    the parent's topic; reposts copy the source's content."""
    N, author, kind, target = c.n_posts, s.author, s.kind, s.target
    on_secondary = rng.random(N) < c.secondary_topic_frac
    topic = np.where(on_secondary, authors.secondary[author], authors.primary[author])
    k = c.post_quality_concentration
    a_quality = authors.quality[author]
    quality = rng.beta(k * a_quality, k * (1.0 - a_quality))
    spam = rng.random(N) < c.spam_frac * 2.0 * (1.0 - a_quality)
    nsfw = authors.nsfw[author] & (rng.random(N) < 0.8)
    quality = np.where(spam, quality * 0.3, quality)
    has_video = rng.random(N) < c.video_frac
    duration = np.clip(np.exp(rng.normal(np.log(30_000.0), 0.9, size=N)), 2_000, 600_000).astype(np.int64)
    subscriber_only = (kind == KIND_ORIGINAL) & (rng.random(N) < c.subscriber_only_frac)
    rank = rng.permutation(N)
    popularity = (rank + 1.0) ** -c.popularity_zipf * np.where(kind == KIND_REPLY, 0.5, 1.0)
    is_reply, is_repost = kind == KIND_REPLY, kind == KIND_REPOST
    topic[is_reply] = topic[target[is_reply]]
    for arr in (topic, quality, spam, nsfw, has_video, duration):
        arr[is_repost] = arr[target[is_repost]]
    duration = np.where(has_video, duration, 0)
    return _Content(topic, quality, spam, nsfw, has_video, duration, subscriber_only, popularity)


def _post_sids(c: WorldConfig, topic: np.ndarray, author: np.ndarray) -> np.ndarray:
    """int16 [N, sid_levels] semantic ids of the posts' content."""
    if c.sid_levels <= 0:
        return np.zeros((len(topic), 0), np.int16)
    rng = np.random.default_rng([c.seed, 0x51D])  # own stream: the rest of the world is unchanged
    vectors = multimodal_vectors(topic, author, c.n_topics, c.n_authors, c.mm_dim, rng)
    return rq_kmeans(vectors, c.sid_levels, c.sid_codebook, seed=c.seed)


def _conversation_roots(s: _Structure) -> np.ndarray:
    """Post row of each post's conversation root: reply/repost targets followed to a fixed point
    (targets are never reposts); originals and quotes are their own root."""
    root = np.arange(len(s.kind))
    chained = (s.kind != KIND_ORIGINAL) & (s.kind != KIND_QUOTE)
    root[chained] = s.target[chained]
    while True:
        nxt = root[root]
        if np.array_equal(nxt, root):
            return root
        root = nxt


def _texts(
    rng: np.random.Generator, s: _Structure, topic: np.ndarray, vocab: list[list[str]], a_names: list[str]
) -> list[str]:
    """Topic words mixed with common words (muted keywords are topic words, so they match); replies
    start with @parent_author, reposts are "RT @author: <source text>"."""
    N = len(topic)
    n_words = rng.integers(6, 15, size=N)
    total = int(n_words.sum())
    from_topic = rng.random(total) < 0.45
    word_topic = np.repeat(topic, n_words)
    word_idx = rng.integers(0, 1 << 30, size=total)
    flat_vocab = [w for ws in vocab for w in ws]
    vocab_start = np.concatenate([[0], np.cumsum([len(ws) for ws in vocab])[:-1]])
    vocab_len = np.array([len(ws) for ws in vocab])
    topic_word = vocab_start[word_topic] + word_idx % vocab_len[word_topic]
    common_word = word_idx % len(COMMON_WORDS)
    words = np.where(from_topic, topic_word, len(flat_vocab) + common_word)
    lexicon = np.array(flat_vocab + COMMON_WORDS, dtype=object)
    ends = np.cumsum(n_words)
    texts = [" ".join(seg) for seg in np.split(lexicon[words], ends[:-1])]
    for i in np.flatnonzero(s.kind != KIND_ORIGINAL):
        j = s.target[i]
        if s.kind[i] == KIND_REPOST:
            texts[i] = f"RT @{a_names[s.author[j]]}: {texts[j]}"
        elif s.kind[i] == KIND_REPLY:
            texts[i] = f"@{a_names[s.author[j]]} {texts[i]}"
    return texts


def _media_only(
    c: WorldConfig, s: _Structure, has_video: np.ndarray, texts: list[str], a_names: list[str]
) -> np.ndarray:
    """Media-only posts: `media_only_frac` of the original video posts carry no text (empty string; the
    reference's core-data filter keeps them). A repost of one is "RT @author: ". Own random stream
    (`[seed, 0x3ED1A]`): every other draw is unchanged. Returns the media-only mask."""
    rng = np.random.default_rng([c.seed, 0x3ED1A])
    media_only = (s.kind == KIND_ORIGINAL) & has_video & (rng.random(len(s.kind)) < c.media_only_frac)
    for i in np.flatnonzero(media_only):
        texts[i] = ""
    reposts = np.flatnonzero((s.kind == KIND_REPOST) & media_only[np.maximum(s.target, 0)])
    for i in reposts:
        texts[i] = f"RT @{a_names[s.author[s.target[i]]]}: "
    return media_only


# video shapes (width / height) and their shares: vertical 9:16, landscape 16:9, square
VIDEO_ASPECT_RATIOS = np.array([9 / 16, 16 / 9, 1.0])
VIDEO_ASPECT_SHARES = np.array([0.35, 0.5, 0.15])


def _aspect_ratios(c: WorldConfig, s: _Structure, has_video: np.ndarray) -> np.ndarray:
    """Video aspect ratio (width / height; 0 without video): 35% vertical 9:16, 50% landscape 16:9,
    15% square; a repost has its source's. Own random stream (`[seed, 0xA5EC7]`)."""
    rng = np.random.default_rng([c.seed, 0xA5EC7])
    shape = rng.choice(len(VIDEO_ASPECT_RATIOS), size=len(s.kind), p=VIDEO_ASPECT_SHARES)
    ratio = VIDEO_ASPECT_RATIOS[shape]
    is_repost = s.kind == KIND_REPOST
    ratio[is_repost] = ratio[s.target[is_repost]]
    return np.where(has_video, ratio, 0.0).astype(np.float32)


def _deletions(c: WorldConfig, rng: np.random.Generator, created: np.ndarray) -> np.ndarray:
    """deleted_at_ms per post (0 = live): a few old-enough posts, 10 min-3 h after creation."""
    N = len(created)
    deleted_at = np.zeros(N, dtype=np.int64)
    eligible = np.flatnonzero(created < c.now_ms - _MIN_DELETE_AGE_MS)
    n_del = min(len(eligible), max(2, round(N * c.deleted_frac)))
    dels = rng.choice(eligible, size=n_del, replace=False) if n_del else np.empty(0, np.int64)
    deleted_at[dels] = created[dels] + rng.integers(10 * MINUTE_MS, 3 * HOUR_MS, size=n_del)
    return deleted_at


def _frame(
    s: _Structure,
    content: _Content,
    authors: Authors,
    post_ids: np.ndarray,
    root: np.ndarray,
    texts: list[str],
    deleted_at: np.ndarray,
    sids: np.ndarray,
    aspect: np.ndarray,
) -> pl.DataFrame:
    """Absent target ids are 0, never null."""
    kind, author = s.kind, s.author
    tgt = np.maximum(s.target, 0)
    zero = np.zeros(len(kind), dtype=np.int64)
    tgt_post, tgt_author = post_ids[tgt], authors.ids[author[tgt]]
    is_reply, is_repost, is_quote = kind == KIND_REPLY, kind == KIND_REPOST, kind == KIND_QUOTE
    return pl.DataFrame(
        {
            "post_id": post_ids,
            "author_id": authors.ids[author],
            "created_at_ms": s.created,
            "text": texts,
            "is_reply": is_reply,
            "in_reply_to_post_id": np.where(is_reply, tgt_post, zero),
            "in_reply_to_user_id": np.where(is_reply, tgt_author, zero),
            "is_retweet": is_repost,
            "source_post_id": np.where(is_repost, tgt_post, zero),
            "source_user_id": np.where(is_repost, tgt_author, zero),
            "quoted_post_id": np.where(is_quote, tgt_post, zero),
            "quoted_user_id": np.where(is_quote, tgt_author, zero),
            "conversation_id": post_ids[root],
            "has_video": content.has_video,
            "video_duration_ms": content.duration,
            "video_aspect_ratio": aspect,
            "subscriber_only": content.subscriber_only,
            "labels": [
                (["spam"] if sp else []) + (["nsfw"] if ns else [])
                for sp, ns in zip(content.spam, content.nsfw, strict=True)
            ],
            "topic": content.topic.astype(np.int32),
            "quality": content.quality,
            "popularity": content.popularity,
            "deleted_at_ms": deleted_at,
            "sid": list(sids),
        },
        schema_overrides={"labels": pl.List(pl.Utf8), "sid": pl.List(pl.Int16)},
    )
