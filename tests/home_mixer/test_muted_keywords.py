"""Muted keyword matching: case-insensitive, diacritics folded, punctuation ignored, whole tokens only,
multi-word keywords as contiguous ordered phrases, a bare keyword also matching #hashtag and @mention,
a #keyword only the hashtag."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from home_mixer.filters.muted_keyword_filter import MutedKeywordFilter, matches, tokenize
from home_mixer.query import UserFeatures


@pytest.mark.parametrize(
    ("keyword", "text", "hit"),
    [
        ("Rust", "I love rust!", True),  # case-insensitive, punctuation ignored
        ("rust", "trusting nobody", False),  # whole words only
        ("rust", "new #Rust release", True),  # bare keyword matches the hashtag
        ("#rust", "rust is nice", False),  # hashtag keyword matches only the hashtag
        ("#rust", "so #rust", True),
        ("elon", "ask @Elon about it", True),  # bare keyword matches a mention
        ("machine learning", "machine-learning talk", True),  # phrase, punctuation ignored
        ("machine learning", "learning machine", False),  # phrase must be contiguous and ordered
        ("machine learning", "machine deep learning", False),
        ("café", "meet at the cafe", True),  # diacritics folded both ways
        ("cafe", "Café au lait", True),
        ("東京", "東京タワー", False),  # CJK: whole tokens only
        ("東京", "東京 タワー", True),
    ],
)
def test_keyword_rules(keyword: str, text: str, hit: bool) -> None:
    assert matches(keyword, tokenize(text)) is hit


def test_muted_keyword_filter(fakes: SimpleNamespace) -> None:
    q = fakes.query(user_features=UserFeatures(muted_keywords=("football", "world cup")))
    f = MutedKeywordFilter()
    assert f.enable(q) and not f.enable(fakes.query())
    a = fakes.cand(1, 10, text="Football tonight", core_data_found=True)
    b = fakes.cand(2, 10, text="the World Cup final", core_data_found=True)
    c = fakes.cand(3, 10, text="a cup of world tea", core_data_found=True)
    kept, removed = f.filter(q, [a, b, c])
    assert kept == [c] and removed == [a, b]
