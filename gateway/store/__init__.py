"""The store: PostgreSQL through asyncpg. The only package with SQL; every statement is parameterised.

One ``Store`` object, assembled from one module per concern: boards (users, leaderboards, rate limits,
site health), queue (submissions, claims, records), events (run events, LISTEN/NOTIFY) and ranking
(reading runs back)."""

from __future__ import annotations

from gateway.store.base import StoreBase, TransientStoreError
from gateway.store.boards import BoardsStore
from gateway.store.events import CANCEL_CHANNEL, EVENTS_CHANNEL, QUEUE_CHANNEL, EventsStore
from gateway.store.ranking import RankingStore
from gateway.store.records import (
    ClaimedRun,
    LeaderboardRecord,
    LeaderboardSummary,
    NewRun,
    RankedEntry,
    RateLimit,
    RunEvent,
    RunRecord,
    SiteHealth,
    UserRecord,
)


class Store(BoardsStore, EventsStore, RankingStore):
    """Everything the service reads and writes in PostgreSQL."""


__all__ = [
    "CANCEL_CHANNEL",
    "EVENTS_CHANNEL",
    "QUEUE_CHANNEL",
    "ClaimedRun",
    "LeaderboardRecord",
    "LeaderboardSummary",
    "NewRun",
    "RankedEntry",
    "RateLimit",
    "RunEvent",
    "RunRecord",
    "SiteHealth",
    "Store",
    "StoreBase",
    "TransientStoreError",
    "UserRecord",
]
