"""`foryou feed USER_ID --explain`: the debug response as a rich table, served posts first (in
order), then the candidates that were not selected or were filtered, with the filter's name. Each
multiplier of the value-model path is listed (AuthorColdStart lift, AuthorDiversity, OON, Dpp×0 for
a post DPP dropped); the `dpp` column shows the DPP move: rank by score before DPP → served
position (✗ = dropped by DPP, - = picked but not served); `net` marks a mutual follow with ⇄."""

from __future__ import annotations

from rich.table import Table

from protos import home_mixer_pb2 as pb

TOP_HEADS = ("favorite", "reply", "retweet", "click", "share", "not_interested", "report")
_ORDER = {"selected": 0, "not_selected": 1, "filtered": 2}


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def dpp_move(c: pb.DebugCandidate) -> str:
    """ "rank before DPP → served position" (1-based), "r → ✗" when DPP dropped it, "r → -" when
    picked but not served; "" when the post did not enter the DPP pool."""
    before = c.fields.get("rank_before_dpp")
    if not before:
        return ""
    if c.fields.get("dpp") == "dropped":
        return f"{int(before) + 1}→✗"
    return f"{int(before) + 1}→{c.position + 1 if c.outcome == 'selected' else '-'}"


def render_feed_table(response: pb.GetDebugScoredPostsResponse, max_rows: int = 80) -> Table:
    cands = sorted(
        response.candidates,
        key=lambda c: (_ORDER.get(c.outcome, 3), c.position if c.outcome == "selected" else -c.final_score),
    )
    title = f"feed {response.request_id} model={response.model_version or '-'}"
    if response.degraded:
        title += f" DEGRADED: {','.join(response.degraded)}"
    t = Table(title=title, show_lines=False)
    for col in (
        "#",
        "post",
        "author",
        "source",
        "net",
        *TOP_HEADS,
        "weighted",
        "multipliers",
        "dpp",
        "final",
        "outcome",
    ):
        t.add_column(col, justify="right" if col not in ("source", "multipliers", "outcome") else "left")
    for c in cands[:max_rows]:
        probs = [_fmt(c.action_probs[h]) if h in c.action_probs else "-" for h in TOP_HEADS]
        mults = " ".join(
            f"{m.name.removesuffix('Scorer').removesuffix('Selector')}×{m.value:.3g}" for m in c.multipliers
        )
        outcome = c.outcome if c.outcome != "filtered" else f"filtered: {c.filtered_by}"
        if c.fields.get("visibility_reason"):
            outcome += f" ({c.fields['visibility_reason']})"
        t.add_row(
            str(c.position) if c.position >= 0 else "",
            str(c.post_id),
            c.fields.get("author_screen_name") or str(c.author_id),
            c.source,
            ("in" if c.in_network else "oon") + (" ⇄" if c.fields.get("mutual_follow") == "True" else ""),
            *probs,
            _fmt(c.weighted_score),
            mults,
            dpp_move(c),
            _fmt(c.final_score),
            outcome,
        )
    if len(cands) > max_rows:
        t.caption = f"{len(cands) - max_rows} more candidates not shown"
    return t
