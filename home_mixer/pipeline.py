"""The declared scored-posts pipeline (reference Oct-7 PhoenixCandidatePipeline wiring, issue 19;
components the reference has and we do not are listed in docs/home_mixer.md)."""

from __future__ import annotations

from typing import Any

from candidate_pipeline import CandidatePipeline, PipelineConfig
from home_mixer.candidate import PostCandidate
from home_mixer.candidate_hydrators.author_data_candidate_hydrator import AuthorDataCandidateHydrator
from home_mixer.candidate_hydrators.author_relation_candidate_hydrator import AuthorRelationCandidateHydrator
from home_mixer.candidate_hydrators.bidirectional_follow_hydrator import BidirectionalFollowHydrator
from home_mixer.candidate_hydrators.core_data_candidate_hydrator import CoreDataCandidateHydrator
from home_mixer.candidate_hydrators.engagement_counts_hydrator import EngagementCountsHydrator
from home_mixer.candidate_hydrators.in_network_candidate_hydrator import InNetworkCandidateHydrator
from home_mixer.candidate_hydrators.subscription_hydrator import SubscriptionHydrator
from home_mixer.candidate_hydrators.video_aspect_ratio_hydrator import VideoAspectRatioHydrator
from home_mixer.candidate_hydrators.video_duration_candidate_hydrator import VideoDurationCandidateHydrator
from home_mixer.clients import HomeMixerClients
from home_mixer.filters.age_filter import AgeFilter
from home_mixer.filters.author_socialgraph_filter import AuthorSocialgraphFilter
from home_mixer.filters.core_data_hydration_filter import CoreDataHydrationFilter
from home_mixer.filters.dedup_conversation_filter import DedupConversationFilter
from home_mixer.filters.drop_duplicates_filter import DropDuplicatesFilter
from home_mixer.filters.fav_holdout_filter import FavHoldoutFilter
from home_mixer.filters.ineligible_subscription_filter import IneligibleSubscriptionFilter
from home_mixer.filters.muted_keyword_filter import MutedKeywordFilter
from home_mixer.filters.new_user_min_engagement_filter import NewUserMinEngagementFilter
from home_mixer.filters.oon_retweet_reply_filter import OONRetweetReplyFilter
from home_mixer.filters.previously_seen_posts_filter import PreviouslySeenPostsFilter
from home_mixer.filters.previously_served_posts_filter import PreviouslyServedPostsFilter
from home_mixer.filters.repost_deduplication_filter import RepostDeduplicationFilter
from home_mixer.filters.self_post_filter import SelfPostFilter
from home_mixer.filters.video_carousel_filter import VideoCarouselFilter
from home_mixer.filters.visibility_filter import VisibilityFilter
from home_mixer.params import DEFAULT_PARAMS
from home_mixer.query import ScoredPostsQuery
from home_mixer.query_hydrators.served_history_query_hydrator import ServedHistoryQueryHydrator
from home_mixer.query_hydrators.user_action_seq_query_hydrator import UserActionSeqQueryHydrator
from home_mixer.query_hydrators.user_features_query_hydrator import UserFeaturesQueryHydrator
from home_mixer.scorers.author_cold_start_scorer import AuthorColdStartScorer
from home_mixer.scorers.author_diversity_scorer import AuthorDiversityScorer
from home_mixer.scorers.oon_scorer import OONScorer
from home_mixer.scorers.phoenix_scorer import PhoenixScorer
from home_mixer.scorers.weighted_scorer import WeightedScorer
from home_mixer.selectors.dpp_selector import DppSelector
from home_mixer.side_effects.served_history_side_effect import ServedHistorySideEffect
from home_mixer.side_effects.served_impressions_side_effect import ServedImpressionsSideEffect
from home_mixer.side_effects.shadow_scoring_side_effect import ShadowScoringSideEffect
from home_mixer.sources.phoenix_source import PhoenixSource
from home_mixer.sources.popular_posts_source import PopularPostsSource
from home_mixer.sources.sid_source import SidSource
from home_mixer.sources.thunder_source import ThunderSource

DEFAULT_CONFIG = PipelineConfig(component_timeout_s=0.5, request_deadline_s=1.0)


class ScoredPostsPipeline(CandidatePipeline[ScoredPostsQuery, PostCandidate]):
    def __init__(
        self,
        clients: HomeMixerClients,
        producer: Any = None,
        served_topic: str = "served",
        config: PipelineConfig | None = None,
    ) -> None:
        store = clients.user_state
        # shadow scoring acts only on requests the params file's [shadow] share picked
        side_effects: list[Any] = [ServedHistorySideEffect(store), ShadowScoringSideEffect(clients.ranking)]
        self.served_impressions: ServedImpressionsSideEffect | None = None
        if producer is not None:
            self.served_impressions = ServedImpressionsSideEffect(producer, served_topic)
            side_effects.append(self.served_impressions)
        super().__init__(
            query_hydrators=[
                UserActionSeqQueryHydrator(store),
                UserFeaturesQueryHydrator(store),
                ServedHistoryQueryHydrator(store),
            ],
            sources=[
                ThunderSource(clients.thunder),
                PopularPostsSource(store),
                PhoenixSource(clients.retrieval),
                SidSource(clients.sid_retrieval),
            ],
            hydrators=[
                InNetworkCandidateHydrator(),
                BidirectionalFollowHydrator(store),
                CoreDataCandidateHydrator(),
                VideoDurationCandidateHydrator(),
                SubscriptionHydrator(),
                AuthorDataCandidateHydrator(store),
                EngagementCountsHydrator(store),
            ],
            filters=[
                DropDuplicatesFilter(),
                CoreDataHydrationFilter(),
                AgeFilter(),
                SelfPostFilter(),
                OONRetweetReplyFilter(),
                RepostDeduplicationFilter(),
                IneligibleSubscriptionFilter(),
                PreviouslySeenPostsFilter(),
                PreviouslyServedPostsFilter(),
                MutedKeywordFilter(),
                AuthorSocialgraphFilter(),
                NewUserMinEngagementFilter(),
                FavHoldoutFilter(),  # off by default (EnableFavHoldout)
            ],
            # the value-model path (reference PhoenixScorer + VMRanker): local weighted score, cold
            # start, then the vm-ranker steps (diversity, OON; DPP in the selector)
            scorers=[
                PhoenixScorer(clients.ranking),
                WeightedScorer(),
                AuthorColdStartScorer(),
                AuthorDiversityScorer(),
                OONScorer(),
            ],
            selector=DppSelector(),
            # the video carousel (off by default): the selector appends extra videos, the aspect-ratio
            # hydrator reads their shape, the last filter keeps the module (listed after the feed)
            post_selection_hydrators=[AuthorRelationCandidateHydrator(store), VideoAspectRatioHydrator()],
            post_selection_filters=[VisibilityFilter(), DedupConversationFilter(), VideoCarouselFilter()],
            side_effects=side_effects,
            result_size=DEFAULT_PARAMS.result_size,  # per request: result_size_for
            config=config or DEFAULT_CONFIG,
        )

    def served_log_failing(self) -> bool:
        """Is the `served` impression log currently failing to deliver (Kafka down)?"""
        return self.served_impressions is not None and self.served_impressions.check()

    def result_size_for(self, query: ScoredPostsQuery) -> int:
        return query.params.result_size  # a debug override may ask for more or fewer than 35

    def finalize(self, query: ScoredPostsQuery, selected: list[PostCandidate]) -> None:
        """The video-carousel module (VideoCarouselFilter's choice) follows the feed's result_size
        posts, in module order, whether or not the cut to result_size reached it."""
        if query.video_carousel:
            selected[:] = [c for c in selected if not c.video_carousel] + query.video_carousel
