"""Drops posts whose text matches one of the viewer's muted keywords. A match is case-insensitive,
with diacritics folded and punctuation ignored; a multi-word keyword matches only as a contiguous
phrase; a bare keyword also matches the #hashtag and the @mention, a #keyword only the hashtag; a
CJK run counts as one whole token. Safety: fails closed. While the viewer's muted keywords are unknown
(user state down) every post is removed; with keywords, a post whose text was not loaded (post store
down) is removed; both with the reason recorded."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from candidate_pipeline import Filter, FilterResult
from home_mixer.candidate import PostCandidate
from home_mixer.filters.fail_closed import SafetySplit, remove_all
from home_mixer.query import ScoredPostsQuery

KEYWORDS_UNAVAILABLE = "muted keywords unavailable"
TEXT_UNAVAILABLE = "post text unavailable"
Token = tuple[str, str]  # (marker "" | "#" | "@", folded word)
_TOKEN = re.compile(r"([#@]?)(\w+)")


def fold(text: str) -> str:
    if text.isascii():  # fast path: nothing to decompose
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def tokenize(text: str) -> list[Token]:
    return [(m.group(1), m.group(2)) for m in _TOKEN.finditer(fold(text))]


@lru_cache(maxsize=4096)
def keyword_tokens(keyword: str) -> tuple[Token, ...]:
    return tuple(tokenize(keyword))


def _token_matches(kw: Token, tok: Token) -> bool:
    if kw[1] != tok[1]:
        return False
    return kw[0] == "" or kw[0] == tok[0]  # bare matches word/#tag/@mention; marked needs the marker


def matches(keyword: str, tokens: list[Token]) -> bool:
    kw = keyword_tokens(keyword)
    n = len(kw)
    if n == 0:
        return False
    for i in range(len(tokens) - n + 1):
        if all(_token_matches(kw[j], tokens[i + j]) for j in range(n)):
            return True
    return False


class MutedKeywordFilter(Filter[ScoredPostsQuery, PostCandidate]):
    def enable(self, query: ScoredPostsQuery) -> bool:
        uf = query.user_features
        return not uf.available or bool(uf.muted_keywords)

    def filter(self, query: ScoredPostsQuery, candidates: list[PostCandidate]) -> FilterResult[PostCandidate]:
        if not query.user_features.available:  # any post might match a keyword we cannot read
            return remove_all(query, self.name, KEYWORDS_UNAVAILABLE, candidates)
        keywords = [k for k in query.user_features.muted_keywords if keyword_tokens(k)]
        # cheap prefilter: a post can only match if it contains every word of the keyword
        kw_words = [(k, {w for _, w in keyword_tokens(k)}) for k in keywords]
        needles = {w for _, ws in kw_words for w in ws}
        split = SafetySplit()
        for c in candidates:
            if c.core_data_found is not True:  # text never loaded: it cannot be cleared
                split.uncleared(c, TEXT_UNAVAILABLE)
                continue
            folded = fold(c.text)
            hit = False
            if any(n in folded for n in needles):  # substring prefilter before tokenizing
                tokens = tokenize(folded)
                words = {w for _, w in tokens}
                hit = any(ws <= words and matches(k, tokens) for k, ws in kw_words)
            (split.removed if hit else split.kept).append(c)
        return split.result(query, self.name)
