"""Federation scale, simulated: what routing, claims and monitoring cost per run as sites and queued runs
grow, at (10 sites, 10,000 queued runs of 1,000 users) and at (100 sites, 100,000 of 10,000), in one run.

Each scale gets a scratch database (PostgreSQL only) whose queue is bulk-loaded (generate_series: far too many
runs for the store's API; each user's runs take turns as the store gives them). The sites are simulated Slurm
clusters at the command seam (tests/unit/slurm_sim.py: hundreds of others' jobs per partition, pending
reasons, our jobs waiting in the queue, then running, then only in sacct) behind the real SlurmBackend;
routing is the real Placement, routing policy and Router (with their load cache); claims are the real
Store.claim.

- Routing + claim: workers already hold 16 runs per site (in flight, their heartbeats fresh); one worker
  claims 16 runs, routes each (Placement.route: policy, isolation, drain, partition loads) and records its
  route (Store.assign_route); the runs then end (recorded, not timed), so the runs in flight stay the same.
  Per run: the median over the claim rounds of the round's time divided by its runs.
- Monitoring: each site's Monitor follows 16 of our jobs there (one squeue per round for all of them); per
  tracked job and round: this process's CPU time over the job ids the rounds asked about (the simulated
  squeue's answers included).

The target: per-run routing + claim at 100 sites / 100k runs within 2x of that at 10 sites / 10k.

`python -m bench.federation` runs it alone."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field

import asyncpg
from rich.console import Console
from rich.table import Table

from bench.common import RESULTS
from gateway.config.settings import Settings
from gateway.config.sites import SiteConfig
from gateway.running.backends.base import JobHandle, JobStatus
from gateway.running.backends.slurm import SlurmBackend
from gateway.running.bundle import BundlePaths
from gateway.running.jobscript import TemplateRenderer
from gateway.running.monitor import Monitor
from gateway.running.policy import RoutingPolicy, Rule
from gateway.running.routing import Router
from gateway.service.isolation import IsolationGate
from gateway.service.placement import Placement
from gateway.service.sitedir import SiteDirectory
from gateway.store import Store
from gateway.store.admin import scratch_database
from gateway.store.migrate import apply_migrations
from tests.unit.slurm_sim import GPU_TYPES, SimulatedSlurm

SCALES = ((10, 10_000, 1_000), (100, 100_000, 10_000))  # sites, queued runs, users
IN_FLIGHT_PER_SITE = (
    16  # runs held by workers per site (our jobs there), and jobs each site's monitor follows
)
CLAIM = 16  # runs per claim (a worker's default concurrency)
WARMUP, ROUNDS = 5, 60  # claim rounds per scale: not timed (the first loads every site), timed
MONITOR_S = 3.0
STALE_S = 45.0
TARGET = 2.0

# the queued runs' GPU types: H100 most, B200 least (every site offers H100 and one to three others)
GPU_OF = (
    "CASE WHEN s.id * 7919 % 100 < 50 THEN 'H100' WHEN s.id * 7919 % 100 < 75 THEN 'A100' "
    "WHEN s.id * 7919 % 100 < 85 THEN 'L4' WHEN s.id * 7919 % 100 < 95 THEN 'H200' ELSE 'B200' END"
)


def queue_statements(runs: int, users: int) -> list[str]:
    """``runs`` queued test runs of ``users`` users, as many each, one per submission, in arrival order: user
    u's k-th run is submission k * users + u, with turn k and place k + 1 (each user queued its runs into
    an empty queue, as gateway/store/submissions.py numbers them)."""
    gpus = "{" + ",".join(GPU_TYPES) + "}"
    return [
        f"INSERT INTO users (id, name) SELECT i, 'user-' || i FROM generate_series(1, {users}) i",
        "SELECT setval('users_id_seq', (SELECT max(id) FROM users))",
        "INSERT INTO leaderboards (id, name, task, ranking_by) VALUES (1, 'federation', '{}', 'mean')",
        "SELECT setval('leaderboards_id_seq', 1)",
        f"INSERT INTO leaderboard_gpus SELECT 1, g FROM unnest('{gpus}'::text[]) g",
        "INSERT INTO code_blobs (sha256, code) VALUES ('c0de', 'def custom_kernel(data): ...')",
        "INSERT INTO submissions (id, user_id, leaderboard_id, task_name, file_name, code_sha256, mode, "
        f"created_at) SELECT i, 1 + (i - 1) % {users}, 1, 'task', 'k.py', 'c0de', 'test', "
        f"now() - interval '1 hour' + i * interval '10 ms' FROM generate_series(1, {runs}) i",
        "SELECT setval('submissions_id_seq', (SELECT max(id) FROM submissions))",
        "INSERT INTO runs (id, submission_id, leaderboard_id, user_id, mode, result_key, gpu_type, state, "
        "queued_at, turn, user_place) "
        "SELECT gen_random_uuid(), s.id, 1, s.user_id, 'test', md5(s.id::text) || md5('k' || s.id), "
        f"{GPU_OF}, 'QUEUED', s.created_at, (s.id - 1) / {users}, (s.id - 1) / {users} + 1 "
        "FROM submissions s",
        "VACUUM ANALYZE users, submissions, runs",
    ]


def simulated_sites(count: int) -> list[SimulatedSlurm]:
    """``count`` clusters, each with H100 and one to three other GPU types (every type somewhere)."""
    sims = []
    for n in range(count):
        sim = SimulatedSlurm(f"site{n:03d}", ["H100"], seed=n + 1)
        others = [g for g in GPU_TYPES if g != "H100"]
        extra = {others[n % len(others)], *sim.rng.sample(others, sim.rng.randrange(0, 3))}
        sims.append(SimulatedSlurm(sim.name, ["H100", *sorted(extra)], seed=n + 1))
    return sims


@dataclass
class Federation:
    """One scale: its store (a scratch database), simulated sites and the real routing over them."""

    sites: int
    runs: int
    users: int
    store: Store
    sims: list[SimulatedSlurm]
    directory: SiteDirectory
    router: Router
    placement: Placement
    claim: list[float] = field(default_factory=list)  # seconds per run, per timed round
    route: list[float] = field(default_factory=list)
    record: list[float] = field(default_factory=list)
    used: set[str] = field(default_factory=set)  # sites the timed rounds' runs went to


@dataclass(frozen=True)
class Figures:
    sites: int
    runs: int
    users: int
    claim_us: float  # per run: Store.claim of CLAIM runs
    route_us: float  # per run: Placement.route (policy, isolation, drain, loads)
    record_us: float  # per run: Store.assign_route
    probes: int  # partition-load reads (sinfo + squeue) during the timed rounds
    spread: int  # sites the timed rounds' runs went to
    refresh_ms: float  # a choice among every site after their loads expired (once per LOAD_TTL_S)
    monitor_us: float  # CPU per tracked job and round
    squeues_per_round: float  # status queries per monitor round (1: one for all the site's jobs)
    tracked: int

    @property
    def total_us(self) -> float:
        return self.claim_us + self.route_us + self.record_us


@asynccontextmanager
async def federation(
    base_dsn: str, settings: Settings, sites: int, runs: int, users: int
) -> AsyncIterator[Federation]:
    """A scratch database with ``runs`` queued runs of ``users`` users, 16 per site held by other workers,
    and ``sites`` simulated Slurm sites behind the real routing."""
    async with scratch_database(base_dsn, "bench_federation") as dsn:
        await asyncio.to_thread(apply_migrations, dsn)
        conn = await asyncpg.connect(dsn)
        store: Store = await Store.connect(dsn, max_size=8)
        try:
            for statement in queue_statements(runs, users):
                await conn.execute(statement)
            sims = simulated_sites(sites)
            configs: dict[str, SiteConfig] = {sim.name: sim.site() for sim in sims}
            transports = {sim.name: sim.transport() for sim in sims}
            renderer = TemplateRenderer(settings.templates_dir)
            # a realistic policy: H100 runs prefer three sites, then any other
            policy = RoutingPolicy(rules=[Rule(gpu_types=["H100"], sites=[sim.name for sim in sims[:3]])])
            directory = SiteDirectory(
                settings, configs, store, policy=policy,
                backend_factory=lambda site: SlurmBackend(site, transports[site.name], renderer),
            )  # fmt: skip
            router = Router(lambda site: directory.runtime(site).backend.load())
            placement = Placement(directory, router, IsolationGate(store, None))
            for n in range(sites):  # other workers hold the runs in flight, heart-beating
                assert (
                    len(await store.claim(f"worker-{n}", IN_FLIGHT_PER_SITE, STALE_S)) == IN_FLIGHT_PER_SITE
                )
            await conn.execute("VACUUM ANALYZE runs")
            yield Federation(sites, runs, users, store, sims, directory, router, placement)
            await directory.close()
        finally:
            await conn.close()
            await store.close()


async def claim_round(fed: Federation, timed: bool) -> None:
    """One worker's round: claim CLAIM runs, route each and record its route; the runs then end (not
    timed), so the runs in flight stay IN_FLIGHT_PER_SITE per site."""
    start = time.perf_counter()
    claimed = await fed.store.claim("bench", CLAIM, STALE_S)
    claimed_at = time.perf_counter()
    assert len(claimed) == CLAIM, "the queue ran dry"
    routes, routing_s = [], 0.0
    for run in claimed:
        before = time.perf_counter()
        choice = await fed.placement.route(run.requested_site, run.gpu_type, run.leaderboard, mode=run.mode)
        routing_s += time.perf_counter() - before
        site, part = choice.site.name, choice.partition.name
        await fed.store.assign_route(run.run_id, "bench", site, part, choice.site.kind, choice.why)
        fed.router.started(site, part)
        routes.append((run.run_id, site, part))
    done = time.perf_counter()
    if timed:
        fed.claim.append((claimed_at - start) / CLAIM)
        fed.route.append(routing_s / CLAIM)
        fed.record.append((done - claimed_at - routing_s) / CLAIM)
        fed.used.update(site for _, site, _ in routes)
    await asyncio.gather(*(finish(fed.store, run_id) for run_id, _, _ in routes))
    for _, site, part in routes:
        fed.router.finished(site, part)


async def refresh(router: Router, sites: list[SiteConfig]) -> float:
    """A choice among every site right after their loads expired: each site's sinfo and squeue read (the
    simulated ones: parsing hundreds of lines each) and the candidates ranked again, median ms."""
    times = []
    for _ in range(5):
        router.forget_loads()
        start = time.perf_counter()
        await router.choose("H100", sites)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


async def finish(store: Store, run_id: str) -> None:
    await store.record_result(
        run_id, state="COMPLETED", passed=True, score=None, result=None, system_info=None, error=None,
        message="completed",
    )  # fmt: skip


async def monitoring(fed: Federation) -> tuple[float, float, int]:
    """Every site's Monitor following its jobs for MONITOR_S: (CPU µs per tracked job and round, status
    queries per round, jobs tracked)."""
    changes = 0

    async def changed(handle: JobHandle, status: JobStatus) -> None:
        nonlocal changes
        changes += 1

    monitors, waits = [], []
    for sim in fed.sims:
        # the real backend; rounds back to back (the service's monitor waits 0.2 to 1 s between them)
        monitor = Monitor(fed.directory.backend_for(sim.name), min_interval_s=0.001, max_interval_s=0.001)
        monitors.append(monitor)
        for k in range(IN_FLIGHT_PER_SITE):
            job_id = sim.add_job(sim.partitions[k % len(sim.partitions)], sim.rng.randrange(2, 300),
                                 sim.rng.randrange(5, 100))  # fmt: skip
            run_id = str(uuid.uuid4())
            handle = JobHandle(run_id, job_id, BundlePaths.under("runs", run_id))
            waits.append(asyncio.create_task(monitor.wait(handle, changed)))
    asked_before = sum(s.jobs_asked for s in fed.sims)
    cpu = time.process_time()
    await asyncio.sleep(MONITOR_S)
    cpu = time.process_time() - cpu
    asked = sum(s.jobs_asked for s in fed.sims) - asked_before
    rounds = sum(m.rounds for m in monitors)
    queries = sum(s.status_queries + s.sacct_queries for s in fed.sims)
    for monitor in monitors:
        await monitor.close()
    for wait in waits:
        wait.cancel()
    await asyncio.gather(*waits, return_exceptions=True)
    assert changes > 0 and asked > 0
    return cpu / asked * 1e6, queries / rounds, len(waits)


async def measure(base_dsn: str, settings: Settings) -> tuple[Figures, Figures]:
    """Both scales, their claim rounds alternating (the machine's noise falls on both alike)."""
    (sites_a, runs_a, users_a), (sites_b, runs_b, users_b) = SCALES
    async with (
        federation(base_dsn, settings, sites_a, runs_a, users_a) as small,
        federation(base_dsn, settings, sites_b, runs_b, users_b) as large,
    ):
        probes = {}
        for n in range(WARMUP + ROUNDS):
            if n == WARMUP:  # every site's load has been read
                probes = {id(fed): sum(s.load_queries for s in fed.sims) for fed in (small, large)}
            for fed in (small, large) if n % 2 else (large, small):
                await claim_round(fed, n >= WARMUP)
        figures = []
        for fed in (small, large):
            refresh_ms = await refresh(fed.router, list(fed.directory.configured.values()))
            monitor_us, per_round, tracked = await monitoring(fed)
            claim_us, route_us, record_us = (
                statistics.median(xs) * 1e6 for xs in (fed.claim, fed.route, fed.record)
            )
            probed = sum(s.load_queries for s in fed.sims) - probes[id(fed)]
            figures.append(Figures(fed.sites, fed.runs, fed.users, claim_us, route_us, record_us, probed,
                                   len(fed.used), refresh_ms, monitor_us, per_round, tracked))  # fmt: skip
        return figures[0], figures[1]


def report(small: Figures, large: Figures, console: Console) -> None:
    title = f"federation, simulated: per-run cost as sites and queued runs grow (target: within {TARGET:g}x)"
    table = Table(title=title, title_justify="left")
    for column in (
        "per run",
        f"{small.sites} sites, {small.runs:,} runs, {small.users:,} users",
        f"{large.sites} sites, {large.runs:,} runs, {large.users:,} users",
        "growth",
        "target",
    ):
        table.add_column(column, justify="left" if column == "per run" else "right")  # fmt: skip
    rows = [
        ("claim (Store.claim of 16)", small.claim_us, large.claim_us, False),
        ("routing decision (Placement.route)", small.route_us, large.route_us, False),
        ("route recorded (Store.assign_route)", small.record_us, large.record_us, False),
        ("routing + claim", small.total_us, large.total_us, True),
        ("monitor round, per tracked job (CPU)", small.monitor_us, large.monitor_us, True),
    ]
    for name, a, b, checked in rows:
        growth = b / a
        verdict = ("ok" if growth <= TARGET else "MISSED") if checked else ""
        table.add_row(
            name, f"{a:.1f} µs", f"{b:.1f} µs", f"{growth:.2f}x", f"≤ {TARGET:.0f}x {verdict}".strip()
        )
    growth = large.refresh_ms / small.refresh_ms
    table.add_row("every site's load read anew (once per 5 s)", f"{small.refresh_ms:.2f} ms",
                  f"{large.refresh_ms:.2f} ms", f"{growth:.2f}x", "one per site")  # fmt: skip
    for name, key in (
        ("load probes in the timed rounds", "probes"),
        ("sites the runs went to", "spread"),
        ("status queries per monitor round", "squeues_per_round"),
        ("jobs tracked", "tracked"),
    ):
        a, b = getattr(small, key), getattr(large, key)
        table.add_row(name, f"{a:.3g}" if isinstance(a, float) else f"{a:,}",
                      f"{b:.3g}" if isinstance(b, float) else f"{b:,}", "", "")  # fmt: skip
    console.print(table)
    RESULTS.mkdir(exist_ok=True)
    saved = [asdict(figures) | {"total_us": figures.total_us} for figures in (small, large)]
    (RESULTS / "federation.json").write_text(json.dumps(saved, indent=1) + "\n")


async def main(console: Console) -> None:
    settings = Settings()
    dsn = settings.database_dsn()
    if dsn is None:
        console.print("federation bench skipped: no database (start the dev stack)")
        return
    small, large = await measure(dsn, settings)
    report(small, large, console)


if __name__ == "__main__":
    asyncio.run(main(Console(width=150)))
