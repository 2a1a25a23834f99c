"""GitHub Actions on self-hosted runners: dispatch .github/workflows/gateway-run.yml with the bundle as
an input, find the run by the name the workflow gives it (the Slurm job name, gw-<run>[-attempt]),
follow it with backoff, download its result artifact, cancel it past its deadline.

Workflow inputs are readable by anyone who can read the repository's Actions (the UI and the API show
them), so the bundle (submitted code, spec.json with a secret rerun's seed, the per-run key) never goes
there in clear: it is sealed (PyNaCl ``SealedBox``: X25519 + XSalsa20-Poly1305, a fresh ephemeral key
per dispatch) for the policy's ``bundle_public_key``, and only the workflow, holding the private key as
the repository secret GATEWAY_BUNDLE_KEY, opens it. The gateway holds no private key.

Only the few REST calls below are used (https://docs.github.com/rest/actions): dispatch, list the
workflow's runs, get a run, list its artifacts, download one, cancel. httpx.AsyncClient serves them, so
nothing blocks the event loop. Tokens rotate: one that GitHub rejects (401) or that is rate limited is
set aside and the next is used. No token ever appears in a log, an error or a repr.
"""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import time
import zipfile
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
from nacl.public import PublicKey, SealedBox
from pydantic import SecretStr

from gateway.config.sites import SiteConfig
from gateway.core.errors import BackendError, TransportError
from gateway.core.states import JobState
from gateway.running.backends.base import JobHandle, JobRequest, JobStatus, PartitionLoad
from gateway.running.backends.fallback import FallbackBackend, Outcome, state_of_exit
from gateway.running.backends.fallback_config import GithubConfig
from gateway.running.jobscript import TemplateRenderer

log = logging.getLogger(__name__)
API_VERSION = "2022-11-28"
REQUEST_TIMEOUT_S = 30.0
OUTPUT_KEEP_BYTES = 64 * 1024
FIND_TIMEOUT_S = 90.0  # a dispatched run appears in the list within seconds; give up after this
LOOKBACK_S = 7 * 24 * 3600
WAITING = {"queued", "waiting", "requested", "pending"}
CONCLUSIONS = {
    "success": JobState.COMPLETED,
    "failure": JobState.FAILED,
    "cancelled": JobState.CANCELLED,
    "timed_out": JobState.TIMEOUT,
}


class GithubApi:
    """The REST calls, with token rotation. ``client`` is for tests that bring their own transport."""

    def __init__(
        self, config: GithubConfig, tokens: Sequence[SecretStr], client: httpx.AsyncClient | None = None
    ) -> None:
        self.config = config
        self._tokens = list(tokens)
        self._current = 0
        self._resting: dict[int, float] = {}  # token index -> when it may be used again (monotonic)
        self._client = client or httpx.AsyncClient(
            base_url=config.api_url.rstrip("/"), timeout=REQUEST_TIMEOUT_S, follow_redirects=False
        )
        self.repo_path = f"/repos/{config.repository}/actions"

    def __repr__(self) -> str:
        return f"GithubApi({self.config.repository!r}, {len(self._tokens)} token(s))"

    def _token(self) -> tuple[int, str]:
        if not self._tokens:
            raise BackendError("github: no token configured (GATEWAY_GITHUB_TOKENS)")
        now = time.monotonic()
        for step in range(len(self._tokens)):
            index = (self._current + step) % len(self._tokens)
            if self._resting.get(index, 0.0) <= now:
                self._current = index
                return index, self._tokens[index].get_secret_value()
        wait = min(self._resting.values()) - now
        raise BackendError(f"github: every token is rejected or rate limited (the next in {wait:.0f} s)")

    def _rest(self, index: int, response: httpx.Response) -> bool:
        """Set a token aside after GitHub refused it; True when another may be tried."""
        if response.status_code == 401:
            self._resting[index] = time.monotonic() + 3600.0  # revoked or expired: retried in an hour
            why = "rejected"
        elif response.status_code in (403, 429) and (
            response.headers.get("x-ratelimit-remaining") == "0" or "retry-after" in response.headers
        ):
            reset = response.headers.get("x-ratelimit-reset")
            retry = response.headers.get("retry-after")
            wait = float(retry) if retry else max(1.0, float(reset or 0) - time.time()) if reset else 60.0
            self._resting[index] = time.monotonic() + wait
            why = "rate limited"
        else:
            return False
        log.warning("github: token %d of %d %s; rotating", index + 1, len(self._tokens), why)
        self._current = (index + 1) % len(self._tokens)
        return True

    async def request(
        self,
        method: str,
        path: str,
        *,
        expect: tuple[int, ...] = (200,),
        json: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
    ) -> httpx.Response:
        for _ in range(len(self._tokens) + 1):
            index, token = self._token()
            headers = {
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
            }
            try:
                response = await self._client.request(method, path, headers=headers, json=json, params=params)
            except httpx.HTTPError as exc:  # its message names the URL, never the headers
                raise TransportError(f"github: {method} {path}: {type(exc).__name__}: {exc}") from None
            if response.status_code in expect:
                return response
            if not self._rest(index, response):
                break
        message = _message(response)
        raise BackendError(f"github: {method} {path} answered {response.status_code}: {message}")

    async def download(self, path: str, max_bytes: int) -> bytes:
        """An artifact's zip: GitHub answers with a redirect to storage, which gets no token."""
        response = await self.request("GET", path, expect=(200, 302))
        if response.status_code == 302:
            try:
                async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S, follow_redirects=True) as storage:
                    response = await storage.get(response.headers["location"])
            except (httpx.HTTPError, KeyError) as exc:
                raise TransportError(f"github: artifact download failed: {type(exc).__name__}") from None
        if response.status_code != 200:
            raise BackendError(f"github: artifact download answered {response.status_code}")
        if len(response.content) > max_bytes:
            raise BackendError(f"github: the result artifact is larger than {max_bytes} bytes")
        return response.content

    async def close(self) -> None:
        await self._client.aclose()


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("message", ""))[:300]
    except ValueError:
        return response.text[:300]


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class GithubBackend(FallbackBackend):
    name = "github"

    def __init__(
        self, site: SiteConfig, config: GithubConfig, renderer: TemplateRenderer, api: GithubApi
    ) -> None:
        super().__init__(site, config, renderer)
        self.github = config
        self.api = api
        self._workflow = f"{api.repo_path}/workflows/{config.workflow}"
        self._seal = SealedBox(PublicKey(config.public_key_bytes()))

    def inputs(self, request: JobRequest, archive: bytes) -> dict[str, str]:
        """The workflow's inputs: the bundle sealed for the workflow's key, in base64 (48 bytes more than
        the xz'd tar); GitHub refuses inputs of more than 65,535 characters in all."""
        bundle = base64.b64encode(self._seal.encrypt(archive)).decode()
        if len(bundle) > self.github.max_bundle_chars:
            raise BackendError(
                f"run {request.run_id}: the bundle is {len(bundle)} characters compressed and sealed, over "
                f"the {self.github.max_bundle_chars} a workflow dispatch can carry: make the task's files "
                "smaller"
            )
        return {
            "job_name": request.job_name,
            "runner": self.target(request.partition.gpu_type),
            "bundle": bundle,
            "time_limit_s": str(self.time_limit_s()),
        }

    async def _start(self, request: JobRequest, archive: bytes) -> str:
        inputs = self.inputs(request, archive)
        since = time.time() - 60  # GitHub's clock may differ from ours
        try:
            await self.api.request(
                "POST",
                f"{self._workflow}/dispatches",
                expect=(200, 204),
                json={"ref": self.github.ref, "inputs": inputs},
            )
        except TransportError as exc:
            # the dispatch may have gone through all the same: look for the run before trying again
            log.warning("github: dispatch of run %s interrupted (%s); looking it up", request.run_id, exc)
            if found := await self._find_names([request.job_name], since):
                return found[request.job_name]
            raise
        delay, deadline = 1.0, time.monotonic() + FIND_TIMEOUT_S
        while time.monotonic() < deadline:
            found = await self._find_names([request.job_name], since)
            if request.job_name in found:
                return found[request.job_name]
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
        raise BackendError(
            f"github: run {request.run_id} was dispatched but no workflow run named {request.job_name} "
            f"appeared in {FIND_TIMEOUT_S:.0f} s"
        )

    async def _list_runs(self, since: float, **params: Any) -> list[dict[str, Any]]:
        response = await self.api.request(
            "GET",
            f"{self._workflow}/runs",
            params={"event": "workflow_dispatch", "created": f">={_iso(since)}", "per_page": 100} | params,
        )
        runs = response.json().get("workflow_runs", [])
        return [run for run in runs if isinstance(run, dict)]

    async def _find_names(self, names: Sequence[str], since: float) -> dict[str, str]:
        """Run ids by name (display_title is the workflow's run-name); the newest run of a name wins."""
        wanted = set(names)
        found: dict[str, tuple[int, str]] = {}
        for run in await self._list_runs(since):
            name = str(run.get("display_title", ""))
            if name in wanted and int(run["id"]) > found.get(name, (0, ""))[0]:
                found[name] = (int(run["id"]), str(run["id"]))
        return {name: run_id for name, (_, run_id) in found.items()}

    async def _find(self, requests: Sequence[JobRequest]) -> dict[str, str]:
        found = await self._find_names([r.job_name for r in requests], time.time() - LOOKBACK_S)
        return {r.run_id: found[r.job_name] for r in requests if r.job_name in found}

    async def _poll(self, handles: Sequence[JobHandle]) -> dict[str, Outcome]:
        """ONE list of the workflow's recent runs for all handles; a run not in it is asked alone."""
        since = min(h.submitted_at for h in handles) - 3600
        listed = {str(run["id"]): run for run in await self._list_runs(since)}
        outcomes = {}
        for handle in handles:
            run = listed.get(handle.job_id)
            if run is None:
                run = (await self.api.request("GET", f"{self.api.repo_path}/runs/{handle.job_id}")).json()
            outcomes[handle.job_id] = await self._outcome(handle, run)
        return outcomes

    async def _outcome(self, handle: JobHandle, run: dict[str, Any]) -> Outcome:
        status, conclusion = run.get("status"), run.get("conclusion")
        if status in WAITING:
            return Outcome(JobStatus(JobState.PENDING, "waiting for a self-hosted runner"))
        if status != "completed":
            return Outcome(JobStatus(JobState.RUNNING))
        files = await self._artifact(handle)
        output = files.get("output.log", b"").decode(errors="replace")
        state = CONCLUSIONS.get(str(conclusion), JobState.FAILED)
        if state is JobState.COMPLETED and "exit_code" in files:
            code = files["exit_code"].decode().strip()
            # 124: the workflow's `timeout` stopped the job script
            end = state_of_exit(
                {"exit_code": int(code) if code.isdigit() else code, "timed_out": code == "124"}, "GitHub"
            )
            return Outcome(end, files.get("result.json"), output)
        reason = None if state is JobState.COMPLETED else f"the workflow run ended {conclusion}"
        if reason is not None and (said := files.get("error", b"").decode(errors="replace").strip()):
            reason = f"{reason}: {said[:500]}"  # the workflow's own words (e.g. the bundle did not open)
        return Outcome(JobStatus(state, reason), files.get("result.json"), output)

    async def _artifact(self, handle: JobHandle) -> dict[str, bytes]:
        """The files of the run's result artifact (result.json, output.log, exit_code), or none."""
        response = await self.api.request("GET", f"{self.api.repo_path}/runs/{handle.job_id}/artifacts")
        artifacts = [
            a
            for a in response.json().get("artifacts", [])
            if a.get("name") == self.github.artifact and not a.get("expired")
        ]
        if not artifacts:
            return {}
        data = await self.api.download(
            f"{self.api.repo_path}/artifacts/{artifacts[0]['id']}/zip", 16 * 1024 * 1024
        )
        return await asyncio.to_thread(_unzip, data)

    async def _cancel(self, handle: JobHandle) -> None:
        await self.api.request("POST", f"{self.api.repo_path}/runs/{handle.job_id}/cancel", expect=(202, 409))

    async def _load(self) -> dict[str, PartitionLoad]:
        """Queue status: this workflow's runs of the last day still waiting or running (runner labels are
        not in the list, so every GPU type sees the same numbers)."""
        runs = await self._list_runs(time.time() - 86400)
        waiting = sum(1 for run in runs if run.get("status") in WAITING)
        running = sum(1 for run in runs if run.get("status") == "in_progress")
        return {
            gpu: PartitionLoad(gpu, True, waiting, running, f"github runners labelled {label}")
            for gpu, label in self.github.gpus.items()
        }

    async def close(self) -> None:
        await self.api.close()


def _unzip(data: bytes) -> dict[str, bytes]:
    """result.json (refused when over 4 MiB), the tail of output.log, the job's exit code and the
    workflow's error when it could not run the job."""
    wanted = {"result.json": 4 * 1024 * 1024, "output.log": 64 * 1024 * 1024, "exit_code": 64, "error": 4096}
    files = {}
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for info in archive.infolist():
                name = info.filename.rsplit("/", 1)[-1]
                if name in wanted and info.file_size <= wanted[name]:
                    files[name] = (
                        archive.read(info)[-OUTPUT_KEEP_BYTES:]
                        if name == "output.log"
                        else archive.read(info)
                    )
    except zipfile.BadZipFile as exc:
        raise BackendError(f"github: the result artifact is not a zip: {exc}") from exc
    return files
