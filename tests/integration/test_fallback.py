"""The fallback decision end to end on the dev stack: H100 runs go to alpha while it is up, to the
configured fallback (Modal, through its local execution path behind the client seam) while alpha is down,
and to alpha again once it is back; every run is recorded with the backend that ran it and why.

alpha is reached through a private sshd of its own (tests/integration/test_resilience.py's PrivateSshd on
another port), so taking "the site" down disturbs nothing else on the shared stack; the runs live in a
scratch database, so no other worker on the shared database can claim them."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.config.settings import Settings
from gateway.config.sites import SiteConfig
from gateway.config.tasks import load_task
from gateway.running.backends.base import Backend
from gateway.running.backends.modal import ModalBackend
from gateway.running.policy import load_policy
from gateway.running.routing import LOAD_TTL_S, CircuitBreaker
from gateway.service.facade import Gateway
from gateway.service.model import SubmitRequest
from gateway.store import RunRecord
from harness.run_result import RunResult
from tests.conftest import PROBLEMS, solution
from tests.fake_modal import LocalModalClient
from tests.integration.scratch import migrated_store
from tests.integration.test_resilience import PrivateSshd, alpha_on

pytestmark = pytest.mark.integration
PORT = 42208  # not test_resilience's 42209: another engineer's run of it may hold that one
POLICY = f"""\
backends:
  modal:
    kind: modal
    python: {sys.executable}
    poll_min_s: 0.1
    poll_max_s: 0.5
    gpus: {{H100: run_h100}}
rules:
  - gpu_types: [H100]
    sites: [alpha]
    fallbacks: [modal]
"""


@pytest.fixture
async def fallback_gateway(
    stack_settings: Settings, dev_env: dict[str, str], tmp_path: Path
) -> AsyncIterator[tuple[Gateway, PrivateSshd, LocalModalClient]]:
    sshd = PrivateSshd(tmp_path, PORT)
    sshd.start()
    (tmp_path / "routing.yaml").write_text(POLICY)
    policy = load_policy(tmp_path / "routing.yaml", ["alpha"])
    client = LocalModalClient()
    async with migrated_store(dev_env["GATEWAY_DATABASE_URL"], "test_fallback") as (store, _dsn):

        def backends(site: SiteConfig) -> Backend:
            config = policy.backends["modal"]
            if site.kind == "modal":
                assert config.kind == "modal"
                return ModalBackend(site, config, gateway.sites.renderer, client)
            return gateway.sites.default_backend(site)

        sites = {"alpha": alpha_on(PORT, sshd.known_hosts)}
        gateway = Gateway(stack_settings, sites, store, backend_factory=backends, policy=policy)
        gateway.router.breakers["alpha"] = CircuitBreaker(cooldown_s=2.0)  # production: 60 s
        try:
            yield gateway, sshd, client
        finally:
            await gateway.close()
            if sshd.proc is not None:
                sshd.kill()


async def run_h100(gateway: Gateway, board: str) -> RunRecord:
    report = await gateway.submit(
        SubmitRequest(
            code=solution("vectoradd", "correct.py"),
            file_name="correct.py",
            user="fallback",
            task=load_task(PROBLEMS / "vectoradd"),
            leaderboard=board,
            gpu_type="H100",
            mode="test",
            admin=True,
        )
    )
    assert report.passed, report.error
    assert gateway.store is not None
    record = await gateway.store.get_run(report.run_id)
    assert record is not None and record.passed and record.state == "COMPLETED"
    return record


async def test_h100_runs_fall_back_to_modal_while_alpha_is_down_and_return_to_it_after(
    fallback_gateway: tuple[Gateway, PrivateSshd, LocalModalClient],
) -> None:
    gateway, sshd, client = fallback_gateway
    board = f"fb-{uuid.uuid4().hex[:8]}"
    before = await run_h100(gateway, board)
    assert (before.site, before.backend) == ("alpha", "slurm")
    assert client.spawned == []

    sshd.kill()  # alpha is down, for this gateway only
    try:
        await asyncio.sleep(LOAD_TTL_S)  # alpha's last good load has expired: routing asks again
        during = await run_h100(gateway, board)
    finally:
        sshd.start()
    assert (during.site, during.partition, during.backend) == ("modal", "H100", "modal")
    assert during.route_reason is not None
    assert during.route_reason.startswith("fallback 1 of 1 (modal): alpha: unhealthy (cannot read")
    assert [call for _, call, _ in client.spawned] == [during.job_id]

    await asyncio.sleep(2.0)  # the circuit's cooldown in this test: one try goes through to alpha
    after = await run_h100(gateway, board)
    assert (after.site, after.backend) == ("alpha", "slurm")
    assert after.route_reason is not None and not after.route_reason.startswith("fallback")

    # the fallback's result was verified and parsed as the Slurm ones: the same shape, from the same harness
    results = [RunResult.from_payload(r.result or {}) for r in (before, during, after)]
    assert [[t.passed for t in result.tests] for result in results] == [[True] * 3] * 3
    assert [result.run_id for result in results] == [before.run_id, during.run_id, after.run_id]
