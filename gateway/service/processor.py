"""Processing one claimed run: route it (or find its job again after a takeover), execute it on its site,
record its end once, and say so in its events. ``RunProcessor`` is built from the store, the site
directory (the runtimes), the placement and the router; the queue worker (gateway.service.queue_worker) and
the service call it, it calls neither."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
import uuid

from gateway.config.settings import Settings
from gateway.config.sites import SiteConfig
from gateway.config.tasks import TaskDefinition
from gateway.core.errors import BackendError, GatewayError, TransportError, UserError
from gateway.core.modes import as_mode
from gateway.core.states import JobState
from gateway.running.backends.base import JobRequest, JobStatus, PoolSlot
from gateway.running.bundle import build_spec
from gateway.running.execution import RunReport, execute
from gateway.running.routing import Router
from gateway.service.authority import Caller, require_admin
from gateway.service.model import (
    DEFAULT_SWEEP_GRACE_S,
    LOCAL_GPU_LABEL,
    Claim,
    EventCallback,
    SubmitRequest,
    Sweep,
    require_store,
)
from gateway.service.placement import Placement
from gateway.service.pools import WarmPools
from gateway.service.sitedir import SiteDirectory
from gateway.store import ClaimedRun, RunRecord, Store
from harness.protocol import HarnessError
from harness.run_result import RunResult

log = logging.getLogger(__name__)
# How a run's first event says where it goes: text for people, and the same as fields (the event's data)
# for front ends, which never parse the text.
ROUTED, TAKEN_OVER = "routed to ", "taken over on "


def routed_event(
    site: str, partition: str, gpu_type: str, backend: str, why: str
) -> tuple[str, dict[str, str]]:
    """The routing event of a run: its message and its fields (site, partition, gpu_type, backend, why)."""
    fields = {"site": site, "partition": partition, "gpu_type": gpu_type, "backend": backend, "why": why}
    return f"{ROUTED}{site}/{partition} ({gpu_type}): {why}", fields


class RunProcessor:
    """Runs a claimed run (or a direct one) to its recorded end."""

    def __init__(
        self,
        settings: Settings,
        store: Store | None,
        sites: SiteDirectory,
        placement: Placement,
        router: Router,
        pools: WarmPools,
    ) -> None:
        self.settings = settings
        self.store = store
        self.sites = sites
        self.placement = placement
        self.router = router
        self.pools = pools

    async def process(
        self,
        run: ClaimedRun,
        claim: Claim,
        on_event: EventCallback | None = None,
        task: TaskDefinition | None = None,
    ) -> RunReport:
        """Run one claimed run to its recorded end: route it (first claim), or find its job again by
        name when an earlier worker may have submitted it (a takeover), never submitting it twice.
        ``task``: the run's task when the caller has it parsed already (the submitter's own runs)."""
        store = require_store(self.store)
        report = RunReport(
            run.run_id,
            run.user_name,
            run.file_name,
            run.site or "",
            run.partition or "",
            run.gpu_type or LOCAL_GPU_LABEL,
            job_id=run.job_id,
            attempt=run.attempt,
            leaderboard=run.leaderboard,
        )
        try:
            if task is None and run.task is None:
                raise UserError("its task is not stored (an ad-hoc run without a leaderboard)")
            key = run.result_key
            if key is None:  # dropped when a run is recorded: it never runs again
                raise UserError("its key is gone: the run has already ended")
            if task is None:
                assert run.task is not None
                task = TaskDefinition.from_json(run.task)
            if run.site is None:
                choice = await self.placement.route(
                    run.requested_site, run.gpu_type, run.leaderboard, mode=run.mode, gpus=task.gpus_per_run
                )
                site, partition, why = choice.site, choice.partition, choice.why
                if site.kind == "local" and not self.settings.worker_runs_local:
                    raise UserError(
                        "this gateway's workers do not run submissions on their own machine "
                        "(its operator has not set GATEWAY_WORKER_RUNS_LOCAL)"
                    )
                # the backend that runs it (slurm, local, modal, github) is the site's kind
                await store.assign_route(run.run_id, claim.worker, site.name, partition.name, site.kind, why)
                first = routed_event(site.name, partition.name, report.gpu_type, site.kind, why)
                # a free warm pool of that partition takes it at once (and none free starts one more)
                pool = await self.pools.take(site, partition, run.run_id, task.gpus_per_run)
            else:
                site = self.sites.site(run.site)
                partition = site.partition(run.partition or "") or site.partitions[0]
                last = f" (last seen as job {run.job_id})" if run.job_id else ""
                held = {"site": site.name, "partition": partition.name, "gpu_type": report.gpu_type}
                first = (f"{TAKEN_OVER}{site.name}{last}", held | {"backend": site.kind})
                pool = PoolSlot.of_handle_id(run.job_id) if run.job_id else None  # it was a pool's
        except GatewayError as exc:
            report.state, report.error = JobState.FAILED, f"cannot run: {exc}"
            await self._record(report)
            if run.site is not None:  # taken over: an earlier attempt's bundle may be on its site
                with contextlib.suppress(UserError):  # a site no longer configured
                    await self._remove_bundle(self.sites.site(run.site), run.run_id)
            return report
        report.site, report.partition = site.name, partition.name
        seed = run.secret_seed if run.secret else None
        job = JobRequest(
            run.run_id,
            site,
            partition,
            task,
            run.code,
            build_spec(
                run.run_id,
                as_mode(run.mode),
                task,
                secret_seed=seed,
                ncu=site.profile.ncu,
                file_name=run.file_name,
            ),
            key,
            attempt=run.attempt,
            # an earlier claim may have handed it to the site: the backend finds the job by its name
            # gw-<run>[-attempt] (whether or not its id was recorded) and submits only if there is none
            maybe_submitted=run.claims > 1 or run.job_id is not None,
            pool=pool,
        )
        return await self.execute(job, report, on_event, first, claim)

    async def run_direct(
        self, request: SubmitRequest, task: TaskDefinition, on_event: EventCallback | None
    ) -> RunReport:
        """Run a checked request straight on its site, recording nothing (no database, or an admin's
        run on this machine)."""
        choice = await self.placement.route(
            request.site, request.gpu_type, request.leaderboard, mode=request.mode, gpus=task.gpus_per_run
        )
        run_id = str(uuid.uuid4())
        report = RunReport(
            run_id,
            request.user,
            request.file_name,
            choice.site.name,
            choice.partition.name,
            choice.partition.gpu_type or LOCAL_GPU_LABEL,
        )
        job = JobRequest(
            run_id,
            choice.site,
            choice.partition,
            task,
            request.code,
            build_spec(run_id, request.mode, task, ncu=choice.site.profile.ncu, file_name=request.file_name),
            secrets.token_hex(32),
        )
        first = routed_event(
            choice.site.name, choice.partition.name, report.gpu_type, choice.site.kind, choice.why
        )
        return await self.execute(job, report, on_event, first, None)

    async def execute(
        self,
        job: JobRequest,
        report: RunReport,
        on_event: EventCallback | None,
        first_event: tuple[str, dict[str, str]],  # the routing event: message and fields
        claim: Claim | None,
    ) -> RunReport:
        site, partition = job.site, job.partition
        store = self.store

        async def event(message: str, *, progress: bool = False, data: dict[str, str] | None = None) -> None:
            report.events.append(message)
            if store is not None:
                kind = "progress" if progress else "state"
                await store.add_event(job.run_id, kind, report.state.value, message, data)
            if on_event is not None:
                await on_event(job.run_id, message)

        async def persist(report: RunReport, status: JobStatus | None) -> None:
            if store is None:
                return
            if status is None and report.job_id is not None:
                await store.mark_submitted(report.run_id, report.job_id, report.state.value, report.attempt)
            elif status is not None:
                await store.update_state(
                    report.run_id, status.state.value, started=status.state is JobState.RUNNING
                )

        await event(first_event[0], data=first_event[1])
        self.router.started(site.name, partition.name)
        try:
            await execute(self.sites.runtime(site), job, report, event, persist)
            await self._site_outcome(site.name, None)
        except asyncio.CancelledError:
            if claim is not None and claim.lost:
                raise  # another worker follows the job now: leave it and its row alone
            # the caller gave up (Ctrl-C, a closed request) or an admin cancelled: cancel the job, record it
            reason = claim.cancel_reason if claim and claim.cancel_reason else "the submitter stopped waiting"
            await asyncio.shield(self._abandon(report, site, reason))
            raise
        except GatewayError as exc:
            if isinstance(exc, TransportError | BackendError):
                await self._site_outcome(site.name, str(exc))
            report.error = report.error or str(exc)
            if not report.state.is_terminal:
                report.state = JobState.FAILED
            log.warning("run %s failed: %s", job.run_id, exc)
        finally:
            self.router.finished(site.name, partition.name)
        await self._record(report)
        try:
            if on_event is not None:  # the verdict first: the bundle's removal is one more SSH round trip
                await on_event(job.run_id, _verdict(report))
        finally:
            # recorded: nothing on the site is needed any more (its output and result were read above,
            # and a run that could not be recorded keeps its bundle for the worker that takes it over)
            await self._remove_bundle(site, job.run_id)
            if job.pool is not None:
                try:
                    await self.pools.release(job.pool, report)
                except GatewayError as exc:  # the pool is free again once any run takes it after this
                    log.warning("run %s: pool %s not released: %s", job.run_id, job.pool.pool_id, exc)
        return report

    async def _site_outcome(self, site: str, error: str | None) -> None:
        self.router.record(site, error)
        if self.store is not None:
            try:
                await self.store.record_site_outcome(site, error)
            except GatewayError as exc:  # health is advisory: never fail a run over it
                log.warning("site %s: could not record its health: %s", site, exc)

    async def _record(self, report: RunReport) -> None:
        if self.store is None:
            return
        result = report.result
        if report.ncu_report is not None:  # first: followers read the run back as soon as it is recorded
            await self.store.save_ncu_report(report.run_id, report.ncu_report)
        await self.store.record_result(
            report.run_id,
            state=report.state.value,
            passed=report.passed,
            score=report.score,
            result=result.to_payload() if result else None,
            system_info=result.system if result else None,
            error=report.error,
            message=_verdict(report),
        )

    async def _abandon(self, report: RunReport, site: SiteConfig, reason: str) -> None:
        try:
            if report.handle is not None:
                await self.sites.runtime(site).backend.cancel([report.handle])
        except GatewayError as exc:
            log.warning("run %s: could not cancel job %s: %s", report.run_id, report.job_id, exc)
        # set last: nothing that followed the job may write its state over this one any more
        report.state, report.error = JobState.CANCELLED, f"cancelled: {reason}"
        await self._record(report)
        await self._remove_bundle(site, report.run_id)

    async def clean_site(
        self, name: str, older_than_s: float = DEFAULT_SWEEP_GRACE_S, *, caller: Caller
    ) -> Sweep:
        """Remove the leftovers in site ``name``'s work folder: the bundles of runs that are finished or
        unknown to the database and have not changed for ``older_than_s`` (a worker that died after
        recording a run, a removal that failed, a run from before bundles were removed). A folder of a run
        still queued or running is never touched; a site's keep_bundles applies as at a run's end."""
        require_admin(caller, "cleaning a site's work folder is for the gateway's admins")
        if older_than_s < 0:
            raise UserError("the grace period cannot be negative")
        store = require_store(self.store)
        site = self.sites.site(name)
        backend = self.sites.runtime(site).backend
        folders = await backend.bundles()
        cutoff = time.time() - older_than_s
        old = sorted(run_id for run_id, changed in folders.items() if changed <= cutoff)
        unfinished = await store.unfinished_among(old) if old else set()
        removed = [run_id for run_id in old if run_id not in unfinished]
        if removed:
            await backend.remove(removed, site.keep_bundles)
        log.info("site %s: swept %d leftover bundle(s)", site.name, len(removed))
        return Sweep(site.name, removed, len(unfinished), len(folders) - len(old))

    async def _remove_bundle(self, site: SiteConfig, run_id: str) -> None:
        """Remove an ended, recorded run's bundle from its site (keeping its logs where the site's
        keep_bundles says so): its code, key and spec do not stay there. A failure is logged: the run's
        end is recorded already, and `gateway sites clean` sweeps what is left."""
        try:
            await self.sites.runtime(site).backend.remove([run_id], site.keep_bundles)
        except (GatewayError, OSError) as exc:
            log.warning("run %s: could not remove its bundle from site %s: %s", run_id, site.name, exc)


def _verdict(report: RunReport) -> str:
    return "passed" if report.passed else f"failed: {report.error}"


def report_of(record: RunRecord) -> RunReport:
    """A report rebuilt from a recorded run (one another worker saw through)."""
    result = None
    if record.result is not None:
        try:
            result = RunResult.from_payload(record.result)
        except HarnessError as exc:
            log.warning("run %s: stored result unreadable: %s", record.run_id, exc)
    return RunReport(
        record.run_id,
        record.user_name,
        record.file_name,
        record.site or "",
        record.partition or "",
        record.gpu_type or LOCAL_GPU_LABEL,
        job_id=record.job_id,
        attempt=record.attempt,
        state=JobState(record.state) if record.state in JobState.__members__ else JobState.UNKNOWN,
        result=result,
        score=record.score,
        error=record.error,
        leaderboard=record.leaderboard,
    )
