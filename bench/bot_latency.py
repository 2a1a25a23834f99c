"""How soon a submission's Discord message shows what just happened to its run.

A run event is written (as a worker writes it); the bot hears it through LISTEN/NOTIFY, updates its
embed and edits the message over HTTP (the fake Discord API of the tests, on 127.0.0.1). Baseline: the
same event reaching a plain ``Gateway.follow`` consumer in the same run, which is the floor any front end
has. Measured twice: with no edit coalescing (the pipeline's own cost) and with the default 1 s between
edits (what users see; Discord rate-limits edits, so the bot never edits faster)."""

from __future__ import annotations

import asyncio
import statistics
import time

import pytest
from pydantic import SecretStr
from rich.console import Console

from bench.common import Row, report
from gateway.config.settings import Settings
from gateway.config.tasks import load_task
from gateway.service.facade import OPERATOR, Gateway
from gateway.store.admin import scratch_database
from gateway.store.migrate import apply_migrations
from tests.conftest import PROBLEMS, solution
from tests.integration.bot_harness import ALICE, BotUnderTest, bot_on

EVENTS = 40
GAP_S = 0.23  # between events: not a multiple of the edit interval, and fewer per second than the
# embed keeps progress lines (6), so every event is in some edit


async def _latencies(t: BotUnderTest, gateway: Gateway) -> tuple[list[float], list[float]]:
    """(follow latencies, edit latencies) in ms for EVENTS progress events of one queued run."""
    board = "bench-bot"
    await gateway.boards.create_leaderboard(
        board, load_task(PROBLEMS / "vectoradd"), ["H100"], caller=OPERATOR
    )
    options = {"file": t.discord.attach("k.py", solution("vectoradd", "correct.py").encode()),
               "leaderboard": board, "gpu": "H100", "mode": "test"}  # fmt: skip
    token = await t.command(ALICE, "leaderboard", "submit", options)
    message = await t.answer(token)
    [run] = await gateway.runs(leaderboard=board, caller=OPERATOR)
    store = gateway.store
    assert store is not None
    heard: dict[str, float] = {}

    async def follow() -> None:
        async for event in gateway.follow([run.run_id]):
            heard[event.message] = time.perf_counter()

    follower = asyncio.create_task(follow())
    history = t.discord.history[int(message["id"])]
    sent: dict[str, float] = {}
    for n in range(EVENTS):  # a steady stream, as a running harness prints progress
        tick = f"tick {n:03d}"
        sent[tick] = time.perf_counter()
        await store.add_event(run.run_id, "progress", "RUNNING", tick)
        await asyncio.sleep(GAP_S)
    last = f"tick {EVENTS - 1:03d}"
    await t.discord.wait_for(lambda: any(last in str(v["embeds"]) for v in history), 10)
    await t.discord.wait_for(lambda: last in heard, 10)
    follows = [(heard[tick] - start) * 1000 for tick, start in sent.items()]
    edits = [
        (next(v["received_at"] for v in history if tick in str(v["embeds"])) - start) * 1000
        for tick, start in sent.items()
    ]
    await gateway.cancel_run(run.run_id, caller=OPERATOR)
    await t.followers_done(30)
    follower.cancel()
    return follows, edits


def _p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1]


async def main(console: Console) -> None:
    base = Settings()
    dsn = base.database_dsn()
    assert dsn is not None, "the dev stack's database is needed (make up)"
    rows: list[Row] = []
    for interval in (0.0, 1.0):
        async with scratch_database(dsn, "bench_bot") as scratch:
            await asyncio.to_thread(apply_migrations, scratch)
            settings = base.model_copy(update={"database_url": SecretStr(scratch)})
            with pytest.MonkeyPatch.context() as patch:
                async with bot_on(settings, patch, "none", edit_interval_s=interval) as t:
                    follows, edits = await _latencies(t, t.gateway)
        label = "no coalescing" if interval == 0 else f"edits {interval:.0f} s apart (default)"
        rows.append(Row(f"event -> Discord edit, {label}, p50", "event -> Gateway.follow, p50",
                        statistics.median(follows), statistics.median(edits)))  # fmt: skip
        rows.append(Row(f"event -> Discord edit, {label}, p90", "event -> Gateway.follow, p90",
                        _p(follows, 90), _p(edits, 90)))  # fmt: skip
    report(f"Bot: a run event to the submission's Discord message ({EVENTS} events)", rows, console)


if __name__ == "__main__":
    asyncio.run(main(Console(width=150)))
