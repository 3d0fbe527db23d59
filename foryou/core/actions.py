"""The one name of every engagement action: `ActionName` code (protos/events.proto) <-> short name.

Logs may give an action by this name or by its code (docs/ranker.md, "Bring your own log"); the
serving API's head names (home_mixer.params.ACTION_HEADS) are these same names. A name is the enum
name without its SERVER_/CLIENT_TWEET_ prefix, lower-case, shortened where the prefix-free name is
long or ambiguous (FAV -> favorite, RECAP_DWELLED -> dwell)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from protos import events_pb2

ACTION_NAMES: dict[int, str] = {
    1: "favorite",
    2: "unfavorite",
    3: "create",
    4: "reply",
    5: "quote",
    6: "retweet",
    7: "unreply",
    8: "unquote",
    9: "unretweet",
    10: "server_report",
    11: "dwell",
    12: "not_dwelled",
    13: "vqv",
    14: "photo_expand",
    15: "click_mention",
    16: "report",
    17: "not_interested",
    18: "undo_not_interested",
    19: "see_fewer",
    20: "undo_see_fewer",
    21: "follow_author",
    22: "unfollow_author",
    23: "block_author",
    24: "unblock_author",
    25: "mute_author",
    26: "unmute_author",
    27: "mute_conversation",
    28: "unmute_conversation",
    29: "click",
    30: "profile_click",
    31: "click_share",
    32: "share_via_copy_link",
    33: "share_via_dm",
    34: "unbookmark",
    35: "click_hashtag",
    36: "bookmark",
    37: "share",
    38: "quoted_click",
    39: "open_link",
    40: "screenshot",
    41: "translate",
    42: "not_relevant",
    43: "undo_not_relevant",
    44: "card_click",
    45: "show_more",
    46: "grok_analyze",
    47: "video_open",
    48: "quoted_vqv",
    49: "quoted_photo_expand",
    50: "notification_open",
    51: "notification_click",
    52: "notification_see_less_often",
    53: "notification_dismiss",
    54: "app_enter",
    55: "app_exit",
    56: "notification_impression",
    57: "profile_visit",
    58: "notification_sent",
    59: "post_unexplored",
    60: "external_link_long_dwelled",
    61: "follow",
    62: "unfollow",
    63: "block",
    events_pb2.ActionName.IMPRESSION: "impression",
}
ACTION_CODES: dict[str, int] = {name: code for code, name in ACTION_NAMES.items()}


def action_name(code: int) -> str:
    """The short name of an ActionName code (KeyError for INVALID = 0 and unknown codes)."""
    return ACTION_NAMES[int(code)]


def action_code(name_or_code: str | int) -> int:
    """A short name, an enum name (SERVER_TWEET_FAV) or a code (int or digit string) -> the code;
    KeyError when it names no action."""
    if isinstance(name_or_code, int):
        if name_or_code not in ACTION_NAMES:
            raise KeyError(name_or_code)
        return name_or_code
    s = name_or_code.strip()
    if s.lstrip("-").isdigit():
        return action_code(int(s))
    if s.lower() in ACTION_CODES:
        return ACTION_CODES[s.lower()]
    enum = {n: int(v) for n, v in events_pb2.ActionName.items() if v != 0}
    if s.upper() in enum:
        return enum[s.upper()]
    raise KeyError(name_or_code)


# old spellings of a short name, still read (early registries and eval.json files)
ACTION_ALIASES: dict[str, str] = {"repost": "retweet"}


def short_action_name(key: str) -> str:
    """One name per action when reading stored keys: a proto enum name (SERVER_TWEET_FAV, as
    registry versions and eval.json files written before issue 21 have them) or an old alias
    (repost) -> the short name; any other key (short names, metric names, …) unchanged."""
    if key in ACTION_ALIASES:
        return ACTION_ALIASES[key]
    if key.isupper():
        try:
            code = events_pb2.ActionName.Value(key)
        except ValueError:
            return key
        return ACTION_NAMES.get(code, key)
    return key


def normalize_action_keys(value: Any) -> Any:
    """`value` with every dict key that names an action (at any depth) renamed by
    `short_action_name`: metrics stored with enum-style keys read like new ones. Lists are walked
    too; other values (strings included) are returned as they are."""
    if isinstance(value, Mapping):
        return {
            (short_action_name(k) if isinstance(k, str) else k): normalize_action_keys(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [normalize_action_keys(v) for v in value]
    return value
