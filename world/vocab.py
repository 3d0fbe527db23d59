"""Topic names and the words that carry them in generated post text (so muted keywords can match).
Beyond the 16 named topics, topics get deterministic pseudo-words."""

from __future__ import annotations

import numpy as np

TOPIC_WORDS: dict[str, list[str]] = {
    "sports": ["goal", "striker", "playoffs", "referee", "stadium", "league", "transfer", "hattrick"],
    "music": ["album", "guitar", "concert", "chorus", "vinyl", "drummer", "setlist", "remix"],
    "tech": ["compiler", "startup", "gpu", "kernel", "python", "database", "latency", "opensource"],
    "politics": ["senate", "ballot", "policy", "election", "minister", "campaign", "debate", "treaty"],
    "movies": ["trailer", "director", "boxoffice", "sequel", "screenplay", "premiere", "cinema", "oscars"],
    "gaming": ["speedrun", "console", "raid", "patch", "esports", "loot", "boss", "multiplayer"],
    "food": ["recipe", "sourdough", "ramen", "espresso", "bbq", "vegan", "brunch", "spices"],
    "travel": ["passport", "backpacking", "airport", "itinerary", "hostel", "roadtrip", "island", "visa"],
    "science": ["telescope", "genome", "quantum", "fossil", "neutrino", "vaccine", "galaxy", "enzyme"],
    "finance": ["stocks", "inflation", "dividend", "bitcoin", "earnings", "bonds", "mortgage", "ipo"],
    "fashion": ["runway", "sneakers", "denim", "couture", "streetwear", "tailoring", "handbag", "lookbook"],
    "pets": ["puppy", "kitten", "adoption", "leash", "aquarium", "parrot", "vet", "fetch"],
    "art": ["canvas", "sketch", "gallery", "sculpture", "watercolor", "mural", "portrait", "exhibit"],
    "fitness": ["deadlift", "marathon", "yoga", "protein", "cardio", "squats", "gym", "stretching"],
    "books": ["novel", "chapter", "paperback", "poetry", "bestseller", "memoir", "library", "author"],
    "weather": ["storm", "heatwave", "forecast", "snowfall", "hurricane", "drizzle", "humidity", "tornado"],
}

COMMON_WORDS: list[str] = [
    "the",
    "a",
    "today",
    "just",
    "really",
    "think",
    "new",
    "this",
    "what",
    "about",
    "so",
    "love",
    "here",
    "now",
    "more",
    "best",
    "time",
    "people",
    "good",
    "great",
    "check",
    "out",
    "my",
    "your",
    "we",
    "all",
    "get",
    "see",
    "day",
    "week",
    "thread",
    "update",
    "quick",
    "take",
]

_SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "ta", "vi", "zo", "pe", "shi", "dra", "qu", "bel", "mor"]


def topic_names(n_topics: int) -> list[str]:
    names = list(TOPIC_WORDS)[:n_topics]
    names += [f"topic{i}" for i in range(len(names), n_topics)]
    return names


def topic_vocab(n_topics: int, words_per_topic: int = 8) -> list[list[str]]:
    """Words of each topic: the named lists, then pseudo-words (fixed RNG, independent of the seed)."""
    rng = np.random.default_rng(12345)
    out: list[list[str]] = []
    used = {w for ws in TOPIC_WORDS.values() for w in ws} | set(COMMON_WORDS)
    for i, name in enumerate(topic_names(n_topics)):
        if name in TOPIC_WORDS:
            out.append(list(TOPIC_WORDS[name]))
            continue
        words: list[str] = []
        while len(words) < words_per_topic:
            w = "".join(rng.choice(_SYLLABLES, size=3)) + str(i)
            if w not in used:
                used.add(w)
                words.append(w)
        out.append(words)
    return out
