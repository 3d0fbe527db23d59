"""The feed pages: `/` (pick a viewer) and `/feed/{viewer}`: home_mixer's debug (explain)
response for the viewer as HTML: the served posts in order with each one's action probabilities,
the weights they are multiplied by, the multipliers, the final score, its source and the model
version; then the removed candidates grouped by the filter that removed them, the candidates
scored but not selected, the query's hydrated features, the pipeline's stages and the params."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import grpc
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from foryou.app.feed_client import get_debug_feed
from foryou.app.ui.context import ui_of
from foryou.app.ui.models import fmt, model_for_version
from protos import home_mixer_pb2 as hm

TOP_CONTRIBUTIONS = 4  # per post in the main table; every head is in the post's details
GROUP_ROWS = 50  # rows shown per removed-by-filter group and of the not-selected candidates


@dataclass(slots=True)
class Head:
    name: str
    prob: float
    weight: float | None  # None: no weight param for this head (not part of the weighted sum)

    @property
    def contribution(self) -> float:
        return self.prob * (self.weight or 0.0)


@dataclass(slots=True)
class PostRow:
    rank: int  # 1-based among the served posts; 0 for candidates not served
    c: hm.DebugCandidate
    heads: list[Head]
    top: list[Head]
    multipliers: list[tuple[str, float]]
    fields: list[tuple[str, str]] = field(default_factory=list)

    @property
    def author(self) -> str:
        return self.c.fields.get("author_screen_name") or str(self.c.author_id)


def weight_of(params: dict[str, str], head: str) -> float | None:
    """The weight param the weighted scorer multiplies `head`'s prediction by."""
    for name in (f"{head}_weight", f"cont_{head}_weight"):
        if name in params:
            try:
                return float(params[name])
            except ValueError:
                return None
    return None


def post_row(c: hm.DebugCandidate, params: dict[str, str]) -> PostRow:
    heads = [Head(h, p, weight_of(params, h)) for h, p in sorted(c.action_probs.items())]
    weighted = [h for h in heads if h.weight]
    top = sorted(weighted, key=lambda h: -abs(h.contribution))[:TOP_CONTRIBUTIONS]
    return PostRow(
        rank=c.position + 1 if c.outcome == "selected" else 0,
        c=c,
        heads=heads,
        top=top,
        multipliers=[(m.name, m.value) for m in c.multipliers],
        fields=sorted(c.fields.items()),
    )


@dataclass(slots=True)
class FeedView:
    viewer_id: int
    response: hm.GetDebugScoredPostsResponse
    served: list[PostRow]
    removed: dict[str, list[PostRow]]  # filter -> candidates it removed (filters in pipeline order)
    removed_total: dict[str, int]  # filter -> how many it removed (rows above: the first GROUP_ROWS)
    not_selected: list[PostRow]  # the GROUP_ROWS best-scored of them
    not_selected_total: int
    features: list[tuple[str, str]]
    params: list[tuple[str, str]]
    model_link: str  # the model page's name for the response's model version ("" = none found)


def feed_view(viewer_id: int, resp: hm.GetDebugScoredPostsResponse, model_link: str = "") -> FeedView:
    params = dict(resp.params)
    served = sorted((c for c in resp.candidates if c.outcome == "selected"), key=lambda c: c.position)
    order = {s.component: i for i, s in enumerate(resp.stages)}
    removed: dict[str, list[PostRow]] = defaultdict(list)
    removed_total: dict[str, int] = defaultdict(int)
    for c in sorted(
        (c for c in resp.candidates if c.outcome == "filtered"),
        key=lambda c: (order.get(c.filtered_by, len(order)), c.filtered_by, c.post_id),
    ):
        name = c.filtered_by or "unknown filter"
        removed_total[name] += 1
        if removed_total[name] <= GROUP_ROWS:
            removed[name].append(post_row(c, params))
    rest = sorted((c for c in resp.candidates if c.outcome == "not_selected"), key=lambda c: -c.final_score)
    return FeedView(
        viewer_id=viewer_id,
        response=resp,
        served=[post_row(c, params) for c in served],
        removed=dict(removed),
        removed_total=dict(removed_total),
        not_selected=[post_row(c, params) for c in rest[:GROUP_ROWS]],
        not_selected_total=len(rest),
        features=sorted(resp.query_features.items()),
        params=sorted(params.items()),
        model_link=model_link,
    )


def index(request: Request) -> Response:
    ui = ui_of(request)
    viewer = request.query_params.get("viewer", "").strip()
    if viewer:
        if not viewer.isdigit() or int(viewer) <= 0:
            raise HTTPException(400, f"viewer must be a positive user id, got {viewer!r}")
        return RedirectResponse(request.url_for("feed", viewer_id=int(viewer)), status_code=303)
    return ui.render(request, "index.html", {})


def feed(request: Request) -> Response:
    ui = ui_of(request)
    viewer_id: int = request.path_params["viewer_id"]
    cfg = ui.config
    try:
        resp = get_debug_feed(cfg.home_mixer_address, cfg.settings, viewer_id, cfg.timeout_s)
    except grpc.RpcError as e:
        status = 400 if e.code() == grpc.StatusCode.INVALID_ARGUMENT else 502
        raise HTTPException(
            status, f"home_mixer at {cfg.home_mixer_address}: {e.code().name}: {e.details()}"
        ) from None
    model = model_for_version(cfg.models_root, resp.model_version)
    view = feed_view(viewer_id, resp, model.name if model else "")
    return ui.render(request, "feed.html", {"v": view, "fmt": fmt})


ROUTES = [
    Route("/", index, name="index"),
    Route("/feed", index, name="feed_form"),
    Route("/feed/{viewer_id:int}", feed, name="feed"),
]
