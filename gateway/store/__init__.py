"""The store: PostgreSQL through asyncpg. The only package with SQL; every statement is parameterised.

One ``Store`` object, assembled from one module per concern: boards (users, leaderboards, rate limits,
site health), submissions (a submission and its queued runs), queue (claims, records), events (run events,
LISTEN/NOTIFY) and ranking (reading runs back), stats (queue positions, standings, totals), limits (the HTTP
API's rate limits and event-stream leases, shared by its processes), profiles (profile mode's Nsight Compute
reports), competition sync (the leaderboards a competition sync writes), submission files (a submission's
code read back, a submission deleted), pools (warm pool jobs, every worker's)."""

from __future__ import annotations

from gateway.store.base import StoreBase, TransientStoreError
from gateway.store.boards import BoardsStore
from gateway.store.competition_sync import BoardWrite, CompetitionSyncStore
from gateway.store.events import CANCEL_CHANNEL, EVENTS_CHANNEL, QUEUE_CHANNEL, EventsStore
from gateway.store.limits import LimitsStore
from gateway.store.pools import PoolRecord, PoolsStore
from gateway.store.profiles import ProfilesStore
from gateway.store.ranking import RankingStore
from gateway.store.records import (
    ClaimedRun,
    DeletedSubmission,
    GatewayStats,
    IsolationCheck,
    LeaderboardRecord,
    LeaderboardSummary,
    NewRun,
    RankedEntry,
    RateLimit,
    RunEvent,
    RunRecord,
    ScorePoint,
    SiteHealth,
    SiteStats,
    Standing,
    SubmissionCode,
    UserRecord,
)
from gateway.store.stats import StatsStore
from gateway.store.submissions import SubmissionFilesStore


class Store(
    BoardsStore,
    EventsStore,
    RankingStore,
    StatsStore,
    LimitsStore,
    ProfilesStore,
    CompetitionSyncStore,
    SubmissionFilesStore,
    PoolsStore,
):
    """Everything the service reads and writes in PostgreSQL."""


__all__ = [
    "CANCEL_CHANNEL",
    "EVENTS_CHANNEL",
    "QUEUE_CHANNEL",
    "BoardWrite",
    "ClaimedRun",
    "DeletedSubmission",
    "GatewayStats",
    "IsolationCheck",
    "LeaderboardRecord",
    "LeaderboardSummary",
    "NewRun",
    "PoolRecord",
    "RankedEntry",
    "RateLimit",
    "RunEvent",
    "RunRecord",
    "ScorePoint",
    "SiteHealth",
    "SiteStats",
    "Standing",
    "Store",
    "StoreBase",
    "SubmissionCode",
    "TransientStoreError",
    "UserRecord",
]
