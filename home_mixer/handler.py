"""Transport-free scored-posts handler: request proto -> query -> pipeline -> response proto. The
gRPC servicer and in-process callers (tests, CLI, bench) both use it."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from candidate_pipeline import ComponentTrace, PipelineResult
from foryou.core.admission import AdmissionConfig, AsyncAdmission
from foryou.core.metrics import DEGRADED
from home_mixer.candidate import PostCandidate, finite_or_zero
from home_mixer.clients import HomeMixerClients
from home_mixer.experiments import Assignment, ServingConfig
from home_mixer.params import DEFAULT_LIMITS, DEFAULT_PARAMS, Params, RequestLimits
from home_mixer.pipeline import ScoredPostsPipeline
from home_mixer.post_lookup import PostLookup
from home_mixer.query import InvalidQuery, ScoredPostsQuery, validate_request
from home_mixer.value_model import DEGRADED_ENTRY as VALUE_MODEL_DEGRADED
from protos import home_mixer_pb2 as pb

log = logging.getLogger(__name__)
SERVICE = "home_mixer"
# the viewer has no following and no engagement history at all: a brand-new user, or user state
# lost (a Redis wipe). Only flagged: the feed is served (out-of-network) either way
USER_STATE_MISSING = "user_state_missing"

# component -> the dependency whose failure it reveals
DEPENDENCY_OF: dict[str, str] = {
    "ThunderSource": "thunder",
    "PhoenixSource": "retrieval",
    "PhoenixScorer": "ranker",
    "UserActionSeqQueryHydrator": "redis",
    "UserFeaturesQueryHydrator": "redis",
    "ServedHistoryQueryHydrator": "redis",
    "CoreDataCandidateHydrator": "redis",
    "VideoDurationCandidateHydrator": "redis",
    "SubscriptionHydrator": "redis",
    "AuthorDataCandidateHydrator": "redis",
    "AuthorRelationCandidateHydrator": "redis",
    "BidirectionalFollowHydrator": "redis",
    "EngagementCountsHydrator": "redis",
    "PopularPostsSource": "redis",
    "SidSource": "sid_retrieval",
}


def user_state_missing(query: ScoredPostsQuery) -> bool:
    """Both reads succeeded and found nothing. The ingesters never write an empty following set (an
    empty Redis set is no key) nor an empty history, so this is "no key at all"."""
    uf = query.user_features
    return (
        uf.available and query.action_sequence_loaded and not uf.following and query.action_sequence is None
    )


def degraded_entries(
    query: ScoredPostsQuery, failures: list[ComponentTrace], kafka_failing: bool
) -> list[str]:
    """The response's `degraded` list: failed-open dependencies and sources that answered stale
    ("thunder_stale", "retrieval_stale") (sorted), then `user_state_missing`, then each
    "<Filter>: <reason>" under which a safety filter failed closed (sorted)."""
    deps = {_dependency(t) for t in failures} | query.stale
    if kafka_failing:
        deps.add("kafka")  # this request's impressions are likely lost too
    if query.value_model_failed is not None:
        deps.add(VALUE_MODEL_DEGRADED)  # served on local scores: no diversity, OON discount or DPP
    out = sorted(deps)
    if user_state_missing(query):
        out.append(USER_STATE_MISSING)
    out += sorted(query.fail_closed)
    return out


def _dependency(trace: ComponentTrace) -> str:
    # a timeout of a component that never started (~0 ms) means the request deadline had already
    # passed, not that its dependency failed
    if trace.error_kind == "timeout" and trace.latency_ms < 1.0:
        return "deadline"
    return DEPENDENCY_OF.get(trace.component, trace.component)


def feed_admission() -> AdmissionConfig:
    """home_mixer's admission defaults: ~50 ms a request until measured, and 50 ms of margin for
    the way back through an event loop busy with other requests."""
    return AdmissionConfig(initial_cost_s=0.05, margin_s=0.05)


@dataclass(slots=True)
class FeedResult:
    query: ScoredPostsQuery
    result: PipelineResult[ScoredPostsQuery, PostCandidate]
    selected: list[PostCandidate]
    degraded: list[str]


class ScoredPostsHandler:
    def __init__(
        self,
        pipeline: ScoredPostsPipeline,
        clients: HomeMixerClients,
        params: Params = DEFAULT_PARAMS,
        limits: RequestLimits = DEFAULT_LIMITS,
        admission: AdmissionConfig | None = None,
    ) -> None:
        """`admission`: how the gRPC servicer admits requests (`self.admission.admitted`); in-process
        callers (tests, CLI, bench) call `get_scored_posts` directly, without it."""
        self.pipeline, self.clients, self.limits = pipeline, clients, limits
        # params, experiments and shadow scoring (a params file's; replaced whole by its watcher)
        self.serving = ServingConfig(params)
        self.admission = AsyncAdmission("home_mixer", admission or feed_admission())

    @property
    def params(self) -> Params:
        """The base params (before a viewer's experiment overrides)."""
        return self.serving.params

    def set_serving(self, config: ServingConfig) -> None:
        """Serve `config` from the next request on (one reference swap: a request in flight keeps
        the config it started with)."""
        self.serving = config

    def check(self, request: pb.GetScoredPostsRequest) -> None:
        """InvalidQuery (logged here, one line) for a request with a field out of range: checked
        before admission, so a bad request is answered INVALID_ARGUMENT even under overload."""
        try:
            validate_request(request, self.limits)
        except InvalidQuery as e:
            log.warning("INVALID_ARGUMENT viewer_id=%d: %s", request.viewer_id, e)
            raise

    async def run(
        self,
        request: pb.GetScoredPostsRequest,
        params: Params | None = None,
        assignment: Assignment | None = None,
    ) -> FeedResult:
        """Raises home_mixer.query.InvalidQuery for a bad request (logged here, one line). The
        viewer's experiment `assignment` (default: from the serving config) sets the params (unless
        `params` are given), the bucket and the ranker version; a share of requests is also scored
        by the shadow ranker (a side effect)."""
        serving = self.serving
        a = assignment or serving.assign(request.viewer_id)
        try:
            query = ScoredPostsQuery.from_request(
                request,
                params or a.params,
                self.limits,
                experiment_bucket=a.bucket,
                ranker_version=a.ranker_version,
            )
        except InvalidQuery as e:
            log.warning("INVALID_ARGUMENT viewer_id=%d: %s", request.viewer_id, e)
            raise
        if serving.shadow is not None and serving.shadow.wants(query.request_id):
            query.shadow_ranker_version = serving.shadow.ranker_version
        query.post_lookup = PostLookup(self.clients.user_state)
        res = await self.pipeline.execute(query, request_id=query.request_id)
        selected = res.selected  # already cut to query.params.result_size by the pipeline
        degraded = degraded_entries(query, res.failures, self.pipeline.served_log_failing())
        for dep in degraded:
            DEGRADED.labels(SERVICE, dep).inc()
        if degraded:
            # a brand-new user alone is not a problem worth a warning per request
            level = logging.INFO if degraded == [USER_STATE_MISSING] else logging.WARNING
            log.log(level, "request %s degraded: %s", query.request_id, ",".join(degraded))
        return FeedResult(query, res, selected, degraded)

    async def get_scored_posts(self, request: pb.GetScoredPostsRequest) -> pb.GetScoredPostsResponse:
        fr = await self.run(request)
        return pb.GetScoredPostsResponse(
            scored_posts=[scored_post(c) for c in fr.selected],
            request_id=fr.query.request_id,
            model_version=fr.query.model_version,
            degraded=fr.degraded,
        )

    async def get_debug_scored_posts(
        self, request: pb.GetDebugScoredPostsRequest
    ) -> pb.GetDebugScoredPostsResponse:
        """Raises ValueError (InvalidQuery or a bad param override) for a bad request."""
        a = self.serving.assign(request.query.viewer_id)
        try:  # a request's overrides apply on top of the viewer's bucket
            params = a.params.with_overrides(dict(request.param_overrides))
        except ValueError as e:
            log.warning("INVALID_ARGUMENT viewer_id=%d: %s", request.query.viewer_id, e)
            raise
        fr = await self.run(request.query, params, a)
        res = fr.result
        out = pb.GetDebugScoredPostsResponse(
            request_id=fr.query.request_id,
            model_version=fr.query.model_version,
            params=params.as_strings(),
            degraded=fr.degraded,
            query_features=query_features(fr.query),
            experiment_bucket=fr.query.experiment_bucket,
        )
        for i, c in enumerate(fr.selected):
            out.candidates.append(debug_candidate(c, "selected", position=i))
        for c in res.non_selected:
            if not c.video_carousel:  # the module follows the feed (pipeline finalize): selected
                out.candidates.append(debug_candidate(c, "not_selected"))
        for r in res.filtered:
            out.candidates.append(debug_candidate(r.candidate, "filtered", filtered_by=r.filter))
        for st in res.stages:
            for ct in st.components:
                out.stages.append(
                    pb.StageSummary(
                        stage=st.stage,
                        component=ct.component,
                        latency_ms=ct.latency_ms,
                        kept=ct.output_count,
                        removed=ct.removed,
                        error=ct.error,
                    )
                )
        return out


def _ids(ids: frozenset[int] | set[int], shown: int = 20) -> str:
    """A set of ids for the debug view: the count, then the first `shown` (sorted)."""
    if not ids:
        return "0"
    head = " ".join(str(i) for i in sorted(ids)[:shown])
    return f"{len(ids)}: {head}{' …' if len(ids) > shown else ''}"


def query_features(q: ScoredPostsQuery) -> dict[str, str]:
    """What the query hydrators filled in (and the request fields they used), stringified for the
    debug response: the viewer's social graph, muted keywords, engagement history, served history."""
    uf = q.user_features
    items = list(q.action_sequence.items) if q.action_sequence is not None else []
    out = {
        "viewer_id": str(q.viewer_id),
        "user_features_available": str(uf.available),
        "following": _ids(uf.following),
        "blocked": _ids(uf.blocked),
        "muted": _ids(uf.muted),
        "subscriptions": _ids(uf.subscriptions),
        "muted_keywords": ", ".join(uf.muted_keywords),
        "viewer_followers_count": "" if uf.viewer_followers_count is None else str(uf.viewer_followers_count),
        "action_sequence_loaded": str(q.action_sequence_loaded),
        "history_items": str(len(items)),
        "history_recent_posts": " ".join(str(it.post_id) for it in items[-10:][::-1]),
        "seen_ids": _ids(q.seen_ids),
        "served_ids": _ids(q.served_ids),
        "in_network_only": str(q.in_network_only),
        "is_bottom_request": str(q.is_bottom_request),
        "country_code": q.country_code,
        "language_code": q.language_code,
        "stale": ", ".join(sorted(q.stale)),
        "value_model_failed": q.value_model_failed or "",
        "experiment_bucket": q.experiment_bucket,
        "ranker_version_requested": q.ranker_version,
    }
    return {k: v for k, v in out.items() if v}


def scored_post(c: PostCandidate) -> pb.ScoredPost:
    sp = pb.ScoredPost(
        post_id=c.post_id,
        author_id=c.author_id,
        score=finite_or_zero(c.score),
        in_network=c.in_network is True,
        source=c.source,
        screen_name=c.author_screen_name,
        video_carousel=c.video_carousel,
    )
    if c.retweeted_post_id:
        sp.retweeted_post_id = c.retweeted_post_id
    if c.retweeted_user_id:
        sp.retweeted_user_id = c.retweeted_user_id
    if c.in_reply_to_post_id:
        sp.in_reply_to_post_id = c.in_reply_to_post_id
    if c.conversation_id:
        sp.conversation_id = c.conversation_id
    return sp


def debug_candidate(
    c: PostCandidate, outcome: str, filtered_by: str = "", position: int = -1
) -> pb.DebugCandidate:
    fields = {
        "served_type": c.served_type,
        "text": c.text,
        "labels": ",".join(c.labels),
        "in_reply_to_post_id": str(c.in_reply_to_post_id or ""),
        "retweeted_post_id": str(c.retweeted_post_id or ""),
        "conversation_id": str(c.conversation_id or ""),
        "video_duration_ms": str(c.video_duration_ms or ""),
        "subscription_author_id": str(c.subscription_author_id or ""),
        "author_followers_count": str(
            c.author_followers_count if c.author_followers_count is not None else ""
        ),
        "author_screen_name": c.author_screen_name,
        "retrieval_score": "" if c.retrieval_score is None else f"{c.retrieval_score:.4f}",
        "visibility_reason": c.visibility_reason or "",
        "removal_reason": c.removal_reason or "",
        "author_blocks_viewer": "" if c.author_blocks_viewer is None else str(c.author_blocks_viewer),
        "prediction_request_id": c.prediction_request_id,
        "mutual_follow": "" if c.is_mutual_follow_author is None else str(c.is_mutual_follow_author),
        "view_count_on_home": "" if c.view_count_on_home is None else str(c.view_count_on_home),
        "fav_count": "" if c.fav_count is None else str(c.fav_count),
        "local_score": "" if c.local_score is None else f"{c.local_score:.6g}",
        "cold_start_lift_rank": "" if c.cold_start_lift_rank is None else str(c.cold_start_lift_rank),
        # DPP: the rank by value-model score entering the DPP pool (0-based) and whether DPP picked it;
        # the served position is `position`
        "rank_before_dpp": "" if c.rank_before_dpp is None else str(c.rank_before_dpp),
        "dpp": "" if c.dpp_selected is None else ("selected" if c.dpp_selected else "dropped"),
        # video carousel: "module" = a video of the module, "extra" = an extra video not chosen
        "video_carousel": "module" if c.video_carousel else ("extra" if c.video_carousel_extra else ""),
        "video_aspect_ratio": "" if c.video_aspect_ratio is None else f"{c.video_aspect_ratio:.4g}",
    }
    d = pb.DebugCandidate(
        post_id=c.post_id,
        author_id=c.author_id,
        source=c.source,
        in_network=c.in_network is True,
        outcome=outcome,
        filtered_by=filtered_by,
        weighted_score=finite_or_zero(c.weighted_score),
        final_score=finite_or_zero(c.score),
        fields={k: v for k, v in fields.items() if v},
        position=position,
    )
    for k, v in c.head_scores().items():
        d.action_probs[k] = v
    for name, value in c.multipliers:
        d.multipliers.add(name=name, value=value)
    return d
