"""Modal and GitHub Actions as fallbacks, without network: Modal through its local execution path behind
the client seam, GitHub against a local server speaking its REST API and running the shipped workflow's
steps. In both, the harness really runs and the gateway verifies its result as for Slurm."""

from __future__ import annotations

import base64
import io
import json
import lzma
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from nacl.public import PrivateKey, SealedBox
from pydantic import SecretStr

from gateway.cli.fallback import make_key_pair
from gateway.config.settings import REPO_ROOT, Settings
from gateway.config.sites import SiteConfig
from gateway.config.tasks import load_task
from gateway.core.errors import BackendError
from gateway.core.states import JobState
from gateway.running.backends.base import Backend, JobRequest
from gateway.running.backends.fallback_config import GithubConfig, ModalConfig
from gateway.running.backends.github import GithubApi, GithubBackend
from gateway.running.backends.modal import ModalBackend
from gateway.running.bundle import build_spec
from gateway.running.jobscript import TemplateRenderer
from gateway.running.policy import RoutingPolicy, fallback_site
from gateway.service.facade import Gateway, RunReport
from gateway.service.model import SubmitRequest
from tests.conftest import PROBLEMS, solution
from tests.fake_github import FakeGithub
from tests.fake_modal import LocalModalClient

TOKENS = ["ghp_revokedTOKENaaaaaaaaaaaaaaaaaaaaaaaa", "ghp_goodTOKENbbbbbbbbbbbbbbbbbbbbbbbbbbb"]
PUBLIC_KEY, PRIVATE_KEY = make_key_pair()  # the policy's bundle_public_key, the GATEWAY_BUNDLE_KEY secret
RENDERER = TemplateRenderer(REPO_ROOT / "templates")
FAST: dict[str, Any] = {"poll_min_s": 0.05, "poll_max_s": 0.2, "python": sys.executable}


def modal_config(**changes: Any) -> ModalConfig:
    return ModalConfig.model_validate({"kind": "modal", "gpus": {"H100": "run_h100"}} | FAST | changes)


def github_config(url: str, **changes: Any) -> GithubConfig:
    fields = {
        "kind": "github",
        "repository": "octo-org/kernel-runners",
        "api_url": url,
        "gpus": {"L4": "gpu-l4"},
        "bundle_public_key": PUBLIC_KEY,
    }
    return GithubConfig.model_validate(fields | FAST | changes)


def policy_of(**backends: ModalConfig | GithubConfig) -> RoutingPolicy:
    return RoutingPolicy.model_validate(
        {"backends": backends, "rules": [{"gpu_types": ["*"], "fallbacks": list(backends)}]}
    )


def gateway_with(tmp_path: Path, policy: RoutingPolicy, make: dict[str, Any]) -> Gateway:
    settings = Settings(sites_dir=tmp_path, local_workdir=tmp_path, templates_dir=REPO_ROOT / "templates")

    def factory(site: SiteConfig) -> Backend:
        return make[site.name](site)  # type: ignore[no-any-return]

    return Gateway(settings, {}, None, backend_factory=factory, policy=policy)


async def submit_to(
    tmp_path: Path, name: str, backend: Backend, config: ModalConfig | GithubConfig, request: SubmitRequest
) -> RunReport:
    """A gateway without a database and without Slurm sites, whose policy sends every run to ``name``."""
    gateway = gateway_with(tmp_path, policy_of(**{name: config}), {name: lambda _site: backend})
    try:
        return await gateway.submit(request)
    finally:
        await gateway.close()


def vectoradd(gpu: str, name: str = "correct.py", mode: str = "test") -> SubmitRequest:
    return SubmitRequest(
        code=solution("vectoradd", name),
        file_name=name,
        user="fallback",
        task=load_task(PROBLEMS / "vectoradd"),
        gpu_type=gpu,
        mode=mode,  # type: ignore[arg-type]
        admin=True,
    )


@pytest.fixture
def github() -> Iterator[FakeGithub]:
    """The repository as set up by docs/fallbacks.md: the private key as its secret, a Python with
    PyNaCl as its variable GATEWAY_PYTHON."""
    fake = FakeGithub({TOKENS[1]})
    fake.secrets["GATEWAY_BUNDLE_KEY"] = PRIVATE_KEY
    fake.variables["GATEWAY_PYTHON"] = sys.executable
    yield fake
    fake.close()


# -- Modal ------------------------------------------------------------------------------------------------


async def test_a_run_with_no_slurm_site_for_its_gpu_goes_to_modal_and_its_result_is_verified(
    tmp_path: Path,
) -> None:
    client = LocalModalClient()
    config = modal_config()
    backend = ModalBackend(fallback_site("modal", config), config, RENDERER, client)
    report = await submit_to(tmp_path, "modal", backend, config, vectoradd("H100"))
    assert report.passed, report.error
    assert (report.site, report.partition) == ("modal", "H100")
    assert report.events[0].startswith("routed to modal/H100 (H100): fallback 1 of 1 (modal)")
    assert report.result is not None and report.result.run_id == report.run_id
    assert [t.passed for t in report.result.tests] == [True, True, True]
    [(function, call_id, limit)] = client.spawned
    assert (function, report.job_id, limit) == ("run_h100", call_id, 1800 - 30)
    assert "[harness] result written" in report.output_tail  # the job's output came back with it
    assert client.closed


async def test_a_modal_result_signed_with_another_key_is_refused(tmp_path: Path) -> None:
    """The same verification as for Slurm: a result whose tag does not verify is not believed."""

    class ForgingClient(LocalModalClient):
        async def spawn(self, function: str, archive: bytes, time_limit_s: float) -> str:
            tar = tarfile.open(fileobj=io.BytesIO(lzma.decompress(archive)))
            members = [(m, tar.extractfile(m)) for m in tar.getmembers()]
            out = io.BytesIO()
            with tarfile.open(fileobj=out, mode="w") as forged:
                for member, data in members:
                    if member.name.endswith("/key"):
                        content = b"cd" * 32 + b"\n"  # the runner signs with a key of its own choosing
                        member.size = len(content)
                        forged.addfile(member, io.BytesIO(content))
                    else:
                        forged.addfile(member, data)
            return await super().spawn(function, out.getvalue(), time_limit_s)

    config = modal_config()
    backend = ModalBackend(fallback_site("modal", config), config, RENDERER, ForgingClient())
    report = await submit_to(tmp_path, "modal", backend, config, vectoradd("H100"))
    assert not report.passed
    assert report.error is not None and "failed authentication" in report.error


async def test_a_modal_call_past_its_deadline_is_cancelled_and_reported_timeout() -> None:
    client = LocalModalClient()
    config = modal_config()
    site = fallback_site("modal", config)
    backend = ModalBackend(site, config, RENDERER, client)
    task = load_task(PROBLEMS / "vectoradd")
    request = JobRequest(
        "r-late", site, site.partitions[0], task, "x = 1\n", build_spec("r-late", "test", task), "ab" * 32
    )
    [handle] = await backend.submit([request])
    handle.submitted_at = time.time() - (config.queue_timeout_s + config.timeout_s + 1)
    status = (await backend.status([handle]))[handle.job_id]
    assert status.state is JobState.TIMEOUT and "not finished 2700 s after" in (status.reason or "")
    assert client.cancelled == [handle.job_id]
    await backend.close()


def test_the_modal_function_body_runs_a_bundle_and_kills_it_at_its_time_limit(tmp_path: Path) -> None:
    """Modal's local execution path, straight: an endless job script is stopped at the limit given."""
    from gateway.running.backends import modal_app

    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in (("r1/job.sh", b"echo started; sleep 60\n"),):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    started = time.monotonic()
    value = modal_app.FUNCTIONS["L4"].local(out.getvalue(), 0.5)
    assert time.monotonic() - started < 10
    assert value["timed_out"] and value["result"] is None and value["output"] == "started\n"
    assert value["run_id"] == "r1"


# -- GitHub Actions ---------------------------------------------------------------------------------------


def github_backend(fake: FakeGithub, tokens: list[str] = TOKENS, **changes: Any) -> GithubBackend:
    config = github_config(fake.url, **changes)
    api = GithubApi(config, [SecretStr(t) for t in tokens])
    return GithubBackend(fallback_site("github", config), config, RENDERER, api)


async def test_a_run_goes_through_the_shipped_workflow_and_its_artifact_is_verified(
    tmp_path: Path, github: FakeGithub
) -> None:
    backend = github_backend(github)
    report = await submit_to(tmp_path, "github", backend, backend.github, vectoradd("L4"))
    assert report.passed, report.error
    assert (report.site, report.partition) == ("github", "L4")
    assert report.result is not None and len(report.result.tests) == 3
    [run] = github.runs.values()
    assert str(run["id"]) == report.job_id and run["display_title"] == f"gw-{report.run_id}"
    inputs = github.inputs[run["id"]]
    assert inputs["runner"] == "gpu-l4" and inputs["time_limit_s"] == "1770"
    # the bundle input is sealed: only the workflow's private key opens it (test_fallback_secrets.py)
    sealed = base64.b64decode(inputs["bundle"])
    with pytest.raises(tarfile.ReadError):
        tarfile.open(fileobj=io.BytesIO(sealed))
    opened = SealedBox(PrivateKey(base64.b64decode(PRIVATE_KEY))).decrypt(sealed)
    assert tarfile.open(fileobj=io.BytesIO(opened)).getmember(f"{report.run_id}/key")
    # the event payload (which holds the key) was emptied before the job script ran
    assert github.event_after_unpack == ["{}\n"]
    # token rotation: the revoked first token was tried once, the second served every later call
    used = [token for _, _, token in github.requests]
    assert used[0] == TOKENS[0] and set(used[1:]) == {TOKENS[1]}
    # the artifact's storage URL never saw a token
    assert github.storage_auth == [None]
    assert "[harness] result written" in report.output_tail


async def test_a_failing_submission_on_github_is_a_failed_run_with_its_result(
    tmp_path: Path, github: FakeGithub
) -> None:
    backend = github_backend(github)
    report = await submit_to(tmp_path, "github", backend, backend.github, vectoradd("L4", "wrong.py"))
    assert not report.passed and report.result is not None
    assert report.error is not None and "mismatch" in report.error.lower()


async def test_a_github_run_past_its_deadline_is_cancelled(github: FakeGithub) -> None:
    github.hold.set()  # no runner picks it up
    backend = github_backend(github)
    site, task = backend.site, load_task(PROBLEMS / "vectoradd")
    request = JobRequest(
        "r-stuck", site, site.partitions[0], task, "x = 1\n", build_spec("r-stuck", "test", task), "ab" * 32
    )
    [handle] = await backend.submit([request])
    assert (await backend.status([handle]))[handle.job_id].state is JobState.PENDING
    handle.submitted_at = time.time() - 10_000
    assert (await backend.status([handle]))[handle.job_id].state is JobState.TIMEOUT
    assert ("POST", f"/repos/octo-org/kernel-runners/actions/runs/{handle.job_id}/cancel", TOKENS[1]) in (
        github.requests
    )
    await backend.close()


async def test_a_dispatch_after_a_restart_finds_the_run_by_name_instead_of_dispatching_again(
    github: FakeGithub,
) -> None:
    backend = github_backend(github)
    site, task = backend.site, load_task(PROBLEMS / "vectoradd")
    request = JobRequest(
        "r-again", site, site.partitions[0], task, "x = 1\n", build_spec("r-again", "test", task), "ab" * 32
    )
    [first] = await backend.submit([request])
    other = github_backend(github)  # a worker that took the run over
    [again] = await other.submit([JobRequest(**(request.__dict__ | {"maybe_submitted": True}))])
    assert again.job_id == first.job_id and len(github.runs) == 1
    await backend.close()
    await other.close()


async def test_tokens_never_appear_in_errors_or_reprs(github: FakeGithub) -> None:
    github.rate_limited.add(TOKENS[1])
    backend = github_backend(github)
    with pytest.raises(BackendError) as raised:
        await backend.load()
    text = f"{raised.value!r} {raised.value} {backend.api!r} {backend!r} {backend.github!r}"
    assert "every token is rejected or rate limited" in str(raised.value)
    assert not any(token in text for token in TOKENS)
    settings = Settings(github_tokens=",".join(TOKENS))
    assert not any(token in f"{settings!r} {settings}" for token in TOKENS)
    assert [t.get_secret_value() for t in settings.github_token_list()] == TOKENS
    await backend.close()


async def test_a_bundle_too_large_for_a_dispatch_is_refused_before_sending(github: FakeGithub) -> None:
    backend = github_backend(github, max_bundle_chars=1000)
    site, task = backend.site, load_task(PROBLEMS / "vectoradd")
    request = JobRequest(
        "r-big", site, site.partitions[0], task, "x = 1\n", build_spec("r-big", "t", task), "ab" * 32
    )
    with pytest.raises(BackendError, match="over the 1000 a workflow dispatch can carry"):
        await backend.submit([request])
    assert github.runs == {}
    await backend.close()


def test_the_shipped_workflow_names_its_run_after_the_job_and_takes_the_bundle_as_an_input() -> None:
    import yaml

    workflow = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "gateway-run.yml").read_text())
    assert workflow["run-name"] == "${{ inputs.job_name }}"
    assert set(workflow[True]["workflow_dispatch"]["inputs"]) == {
        "job_name",
        "runner",
        "bundle",
        "time_limit_s",
    }
    uploads = [s for s in workflow["jobs"]["run"]["steps"] if "upload-artifact" in str(s.get("uses"))]
    assert uploads[0]["with"]["name"] == "result" and uploads[0]["if"] == "always()"
    assert json.dumps(workflow).count("inputs.bundle") == 1  # only through an env variable, never inline
