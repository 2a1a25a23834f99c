"""What bench/api_load.py measured, as a table and notes, and the checks that fail the bench: every answer as
it should be, the ranking the store's, every accepted submission stored, the limits held across servers."""

from __future__ import annotations

import importlib.util
import io
import json
import math
import os
import pstats
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.api_load_plan import (
    BASELINE_CALLS,
    CONCURRENCY,
    DIRECT_SUBMISSIONS,
    LIMIT_STREAMS,
    LIMIT_SUBMISSIONS,
    LIMITS_PHASE,
    MAX_ERROR_SHARE,
    METRICS_PHASE,
    PHASES,
    PROFILE_LINES,
    SERVERS,
    TARGET_RANKING_P99_MS,
    TARGET_RANKING_X,
    TARGET_SUBMIT_P99_MS,
    TARGET_SUBMIT_X,
    TODAY_QUERY_MS,
    TODAY_RANKING_RPS,
    TODAY_SUBMIT_RPS,
    TOKENS,
    TOP,
    UNCACHED_PHASES,
    UNLIMITED,
)
from bench.common import Row, report


@dataclass(frozen=True)
class LoadRun:
    """One run of the bench: the baselines (ms, one call after another), the client's results by phase,
    what the database holds afterwards, and the conditions it ran in."""

    query_ms: list[float]
    service_ms: list[float]
    enqueue_ms: list[float]
    ping_ms: list[float]
    take_ms: list[float]
    old_scrape_ms: list[float]
    expected_top: list[str]
    results: dict[str, dict[str, Any]]
    server_cpu: dict[str, tuple[float, float]]  # phase -> (CPU s of the servers, wall s)
    stored: list[Any]  # the API's submissions in the database, with their queued runs
    api_ids: list[str]
    ranked: int
    seeded_s: float
    started: float  # perf_counter at the start
    load_before: float
    profiles: list[Path] | None


def p50(samples: list[float]) -> float:
    return statistics.median(samples) if samples else math.nan


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[-1] if len(samples) > 1 else math.nan


def show(run: LoadRun, console: Console) -> list[str]:
    """Print the table, the notes and the servers' profiles; return what failed the bench."""
    results, stored, api_ids, server_cpu = run.results, run.stored, run.api_ids, run.server_cpu
    query_ms, service_ms, enqueue_ms = run.query_ms, run.service_ms, run.enqueue_ms
    ping_ms, take_ms, old_scrape_ms = run.ping_ms, run.take_ms, run.old_scrape_ms
    ranked, seeded_s, started, load_before = run.ranked, run.seeded_s, run.started, run.load_before
    profiles, profile, expected_top = run.profiles, run.profiles is not None, run.expected_top
    ranking_1, ranking_n = results["ranking-1"], results["ranking-n"]
    submit_1, submit_n = results["submit-1"], results["submit-n"]
    ranking_u, submit_u, revalidate = (
        results["ranking-n-uncached"],
        results["submit-n-uncached"],
        results["revalidate-n"],
    )
    scrapes, limits = results["metrics"], results["limits"]
    first = json.loads(ranking_1["first_body"]) if ranking_1["first_body"] else [{"entries": []}]
    shown_top = [entry["run_id"] for entry in first[0]["entries"]]

    def rate(phase: dict[str, Any]) -> float:
        return float(len(phase["latencies_ms"]) / phase["elapsed_s"]) or math.nan

    q50, e50 = p50(query_ms), p50(enqueue_ms)
    ranking_rps, submit_rps = rate(ranking_n), rate(submit_n)
    # the machine against issue 21's run: the ranking query's code is unchanged, its time says how loaded
    slower = q50 / TODAY_QUERY_MS
    targets = []  # issue 21's checks, each met at 1.00x or more: as stated, and scaled by the baseline
    for what, rps, p99_ms, today_rps, times, p99_target in (
        (
            "ranking",
            ranking_rps,
            p99(ranking_n["latencies_ms"]),
            TODAY_RANKING_RPS,
            TARGET_RANKING_X,
            TARGET_RANKING_P99_MS,
        ),
        (
            "submissions",
            submit_rps,
            p99(submit_n["latencies_ms"]),
            TODAY_SUBMIT_RPS,
            TARGET_SUBMIT_X,
            TARGET_SUBMIT_P99_MS,
        ),
    ):
        scaled = f"x {slower:.2f} (query p50 / issue 21's)"
        targets += [
            Row(
                f"{what} {rps:.0f} req/s, {CONCURRENCY} conn.",
                f"{times:g} x today's {today_rps} req/s",
                1000 / (times * today_rps),
                1000 / rps,
                unit="ms/req",
            ),
            Row(
                f"{what} {rps:.0f} req/s, {CONCURRENCY} conn.",
                f"{times:g} x today's, {scaled}",
                1000 * slower / (times * today_rps),
                1000 / rps,
                unit="ms/req",
            ),
            Row(f"{what} p99, {CONCURRENCY} connections", "target p99", p99_target, p99_ms),
            Row(f"{what} p99, {CONCURRENCY} conn.", f"target p99, {scaled}", p99_target * slower, p99_ms),
        ]
    same_run = [  # the caches' own effect: the same servers keeping nothing, in this run
        Row(
            f"ranking {ranking_rps:.0f} req/s, {CONCURRENCY} conn.",
            f"uncached servers ({rate(ranking_u):.0f}/s)",
            1000 / rate(ranking_u),
            1000 / ranking_rps,
            unit="ms/req",
        ),
        Row(
            f"ranking p99, {CONCURRENCY} connections",
            "uncached servers' p99",
            p99(ranking_u["latencies_ms"]),
            p99(ranking_n["latencies_ms"]),
        ),
        Row(
            f"ranking 304 (If-None-Match) {rate(revalidate):.0f} req/s",
            "ranking 200, cached",
            1000 / ranking_rps,
            1000 / rate(revalidate),
            unit="ms/req",
        ),
        Row(
            f"submissions {submit_rps:.0f} req/s, {CONCURRENCY} conn.",
            f"token looked up each time ({rate(submit_u):.0f}/s)",
            1000 / rate(submit_u),
            1000 / submit_rps,
            unit="ms/req",
        ),
    ]
    rows = [
        Row("service call p50 (Gateway.leaderboard)", "ranking query p50", q50, p50(service_ms)),
        Row("ranking p50, 1 connection", "ranking query p50", q50, p50(ranking_1["latencies_ms"])),
        Row(
            f"ranking p50, {CONCURRENCY} connections",
            "ranking query p50",
            q50,
            p50(ranking_n["latencies_ms"]),
        ),
        Row(
            f"ranking {rate(ranking_n):.0f} req/s, {CONCURRENCY} conn.",
            f"1 / query p50 ({1000 / q50:.0f}/s)",
            q50,
            1000 / rate(ranking_n),
            unit="ms/req",
        ),
        Row("submission p50, 1 connection", "Gateway.enqueue p50", e50, p50(submit_1["latencies_ms"])),
        Row(
            f"submission p50, {CONCURRENCY} connections",
            "Gateway.enqueue p50",
            e50,
            p50(submit_n["latencies_ms"]),
        ),
        Row(
            f"submissions {rate(submit_n):.0f} req/s, {CONCURRENCY} conn.",
            f"1 / enqueue p50 ({1000 / e50:.0f}/s)",
            e50,
            1000 / rate(submit_n),
            unit="ms/req",
        ),
        Row(
            "rate-limit take p50 (Gateway.take_token)", "SELECT 1 round trip p50", p50(ping_ms), p50(take_ms)
        ),
        Row(
            "/metrics scrape p50 over HTTP",
            "old scrape's queries p50 (in process)",
            p50(old_scrape_ms),
            p50(scrapes["latencies_ms"]),
        ),
    ]
    report(
        f"API under load, {SERVERS} server processes: ranking (top {TOP} of {ranked:,} ranked runs), "
        "submissions, limits and metrics over HTTP",
        rows,
        console,
    )
    report("API under load: issue 21's targets (met at 1.00x or more)", targets, console)
    report("API under load: the caches against uncached servers in the same run", same_run, console)

    phases = [*UNCACHED_PHASES, *PHASES, METRICS_PHASE]
    warmups = sum(spec.get("warmup", 0) for spec in phases)
    measured = [results[spec["name"]] for spec in phases]
    sent = sum(phase["sent"] for phase in measured) + warmups
    good = sum(len(phase["latencies_ms"]) for phase in measured) + warmups
    good -= sum(phase["warmup_failed"] for phase in measured)
    bad = {
        f"{phase['name']}: {status}": count
        for phase in measured
        for status, count in phase["statuses"].items()
        if status not in ("200", "202", "304")
    } | {f"{phase['name']}: wrong body": phase["wrong"] for phase in measured if phase["wrong"]}
    bad |= {f"{p['name']}: warm-up": p["warmup_failed"] for p in measured if p["warmup_failed"]}
    stored_ok = [row["id"] for row in stored if row["queued"] == (1 if row["limit_phase"] else 2)]
    r1, rn, s1 = (p50(phase["latencies_ms"]) for phase in (ranking_1, ranking_n, submit_1))
    counted = ", ".join(
        f"{phase['name']} {phase['sent']}/{len(phase['latencies_ms'])} in {phase['elapsed_s']:.1f} s"
        for phase in measured
    )
    cpu_text = "; ".join(
        f"{name} servers {server_cpu[name][0] / server_cpu[name][1]:.2f} cores, "
        f"{1000 * server_cpu[name][0] / (phase['sent'] + spec.get('warmup', 0)):.1f} ms CPU/request, "
        f"client {phase['cpu_s'] / phase['elapsed_s']:.2f} cores"
        for spec in phases
        for name, phase in [(spec["name"], results[spec["name"]])]
    )
    submitted = limits["extra"]["submissions"]
    streamed = limits["extra"].get("streams", {})
    accepted, opened = submitted.get("202", 0), streamed.get("200", 0)
    refill = int(limits["extra"]["submissions_s"] * LIMIT_SUBMISSIONS / 60)  # tokens refilled meanwhile
    notes = [
        f"HTTP+JSON overhead, endpoint p50 / query p50: ranking {r1 / q50:.1f}x on 1 connection, "
        f"{rn / q50:.1f}x on {CONCURRENCY}; submission {s1 / e50:.1f}x (vs Gateway.enqueue) on 1 connection.",
        f"Requests (sent/answered as they should): {counted}; "
        f"{sum(bad.values())} otherwise ({json.dumps(bad) if bad else 'none'}).",
        f"{len(stored_ok)} of {len(api_ids)} submissions answered 202 are stored with their queued runs "
        f"({len(stored)} API submissions in the database).",
        f"Limits across {SERVERS} servers ({LIMIT_SUBMISSIONS} submissions/min per user, "
        f"{LIMIT_STREAMS} streams per client): {LIMITS_PHASE['count']} submissions of one user sent at "
        "once answered "
        f"{json.dumps(submitted)} in {limits['extra']['submissions_s']:.2f} s (limit {LIMIT_SUBMISSIONS}"
        f" + {refill} refilled); {LIMITS_PHASE['streams']} streams of one client held at once answered "
        f"{json.dumps(streamed)}: {limits['extra'].get('stream_refusal', '')}",
        f"Load: one client process (bench/api_load_wire.py: raw HTTP/1.1 over asyncio streams; issue 21's "
        f"'today' was measured with httpx), {CONCURRENCY} keep-alive connections, to the {SERVERS} servers "
        f"in turn, {TOKENS} users' tokens in turn; each phase stops at its count or its time. Uncached "
        "servers: GATEWAY_API_RANKING_CACHE=false, GATEWAY_API_TOKEN_CACHE_S=0, first, on the same data.",
        f"API rate limits raised to {UNLIMITED:,}/min so the limiter does not decide the numbers (each "
        "request still takes a token from the shared bucket: one statement); no worker (runs stay queued).",
        f"Servers: {SERVERS} processes of uvicorn ({_uvicorn_stack()}, no access log), the service's default "
        f"pool each; baselines timed in this process before the load ({BASELINE_CALLS} queries, "
        f"{DIRECT_SUBMISSIONS} enqueues, {BASELINE_CALLS} round trips and takes, 20 old scrapes, one after "
        "another).",
        f"CPU (servers: both processes over the phase's client run; client: over the phase): {cpu_text}.",
        f"Machine: {os.cpu_count()} CPU cores shared by servers, client and PostgreSQL; load average "
        f"{load_before:.1f} before the bench (other work on the machine competes). Data seeded in "
        f"{seeded_s:.0f} s; the whole bench took {time.perf_counter() - started:.0f} s"
        + (" (profiled: cProfile slows the servers)" if profile else "")
        + ".",
    ]
    console.print("\n".join(notes), highlight=False)
    for number, path in enumerate(profiles or [], 1):
        _print_profile(f"server {number}", path, console)

    problems = []
    if shown_top != expected_top or len(shown_top) != TOP:
        problems.append("the ranking endpoint's entries are not the store's ranking")
    if sent and (sent - good) / sent > MAX_ERROR_SHARE:
        problems.append(f"{sent - good} of {sent} requests were not answered as they should be")
    if sorted(row["id"] for row in stored) != sorted(api_ids) or len(stored_ok) != len(api_ids):
        problems.append(
            f"{len(api_ids)} submissions answered 202 but {len(stored_ok)} stored with their runs"
        )
    if not LIMIT_SUBMISSIONS <= accepted <= LIMIT_SUBMISSIONS + refill or set(submitted) - {"202", "429"}:
        problems.append(
            f"{accepted} submissions accepted across the servers, the limit is {LIMIT_SUBMISSIONS}"
        )
    if opened != LIMIT_STREAMS or set(streamed) - {"200", "429"}:
        problems.append(
            f"{opened} streams opened for one client across the servers, the cap is {LIMIT_STREAMS}"
        )
    return problems


def _uvicorn_stack() -> str:
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio loop"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return f"{loop}, {http}"


def _print_profile(server: str, path: Path, console: Console) -> None:
    if not path.exists():
        console.print(f"{server}: no profile written", highlight=False)
        return
    out = io.StringIO()
    pstats.Stats(str(path), stream=out).sort_stats("tottime").print_stats(PROFILE_LINES)
    console.print(
        f"{server} process, all phases, by own time:\n{out.getvalue()}", highlight=False, markup=False
    )
