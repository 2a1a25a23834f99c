"""The GitHub Actions fallback leaks nothing: a workflow's inputs (and its logs) are readable by anyone
who can read the repository's Actions, so the bundle goes there sealed for the workflow's key. What the
fake GitHub recorded of a dispatch, decoded in every way it decodes (base64, gzip, xz, zlib, tar), holds
neither the submission's code, nor the run's key, nor the secret seed; the run still completes; a runner
with the wrong key fails saying so; a policy without the public key names its file and field."""

from __future__ import annotations

import asyncio
import base64
import binascii
import gzip
import io
import json
import lzma
import os
import re
import tarfile
import time
import uuid
import zipfile
import zlib
from pathlib import Path

import pytest
import yaml
from nacl.public import PrivateKey, SealedBox
from typer.testing import CliRunner

from gateway.cli.fallback import make_key_pair
from gateway.cli.main import app
from gateway.config.settings import REPO_ROOT
from gateway.config.tasks import load_task
from gateway.core.errors import ConfigError
from gateway.core.states import JobState
from gateway.running.backends.base import JobRequest, JobStatus
from gateway.running.backends.github import GithubBackend
from gateway.running.bundle import build_spec
from gateway.running.policy import load_policy
from gateway.running.results import verified_result
from tests.conftest import PROBLEMS, solution
from tests.fake_github import FakeGithub
from tests.unit.test_fallback_backends import PRIVATE_KEY, github, github_backend

__all__ = ["github"]  # the fixture, shared with test_fallback_backends.py
SEED = 3141592653  # a secret rerun's seed: ten digits, under 2**32 for every generator


def decodings(data: bytes, depth: int = 0) -> list[bytes]:
    """``data`` and everything it decodes to: base64 (of any run of base64 characters in it), gzip, xz,
    zlib, and the members of a zip or a tar, recursively."""
    found = [data]
    if depth > 4:
        return found
    for run in re.findall(rb"[A-Za-z0-9+/=_-]{16,}", data):
        for alphabet in (None, b"-_"):
            try:
                decoded = base64.b64decode(run + b"=" * (-len(run) % 4), altchars=alphabet)
            except (binascii.Error, ValueError):
                continue
            found += decodings(decoded, depth + 1)
    for decompress in (gzip.decompress, lzma.decompress, zlib.decompress):
        try:
            found += decodings(decompress(data), depth + 1)
        except (OSError, EOFError, zlib.error, lzma.LZMAError):
            pass
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for name in archive.namelist():
                found += decodings(archive.read(name), depth + 1)
    except (zipfile.BadZipFile, OSError, EOFError):
        pass
    try:
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for member in tar.getmembers():
                if (handle := tar.extractfile(member)) is not None:
                    found += decodings(handle.read(), depth + 1)
    except (tarfile.TarError, EOFError, OSError):
        pass
    return found


def secrets_in(data: bytes, code_marker: str, key_hex: str) -> list[str]:
    """Which of the run's secrets ``data`` shows, in clear or in anything it decodes to."""
    needles: dict[str, list[bytes | re.Pattern[bytes]]] = {
        "code": [code_marker.encode()],
        "run key": [key_hex.encode(), key_hex.upper().encode(), bytes.fromhex(key_hex)],
        "seed": [re.compile(rb'"seed":\s*' + str(SEED).encode())],
    }
    return sorted(
        {
            what
            for blob in decodings(data)
            for what, patterns in needles.items()
            if any(p.search(blob) if isinstance(p, re.Pattern) else p in blob for p in patterns)
        }
    )


def secret_request(backend: GithubBackend) -> tuple[JobRequest, str]:
    """A secret rerun of a correct vectoradd submission, its code marked; (request, marker)."""
    marker = f"sealed-marker-{uuid.uuid4().hex}"
    code = solution("vectoradd", "correct.py") + f"\n# {marker}\n"
    task, site = load_task(PROBLEMS / "vectoradd"), backend.site
    run_id = f"r-{uuid.uuid4().hex[:12]}"
    spec = build_spec(run_id, "leaderboard", task, secret_seed=SEED)
    return JobRequest(run_id, site, site.partitions[0], task, code, spec, os.urandom(32).hex()), marker


async def until_done(backend: GithubBackend, request: JobRequest) -> tuple[JobStatus, bytes | None]:
    [handle] = await backend.submit([request])
    deadline = time.monotonic() + 120
    while not (status := (await backend.status([handle]))[handle.job_id]).state.is_terminal:
        assert time.monotonic() < deadline, "the workflow run did not finish"
        await asyncio.sleep(0.05)
    return status, await backend.fetch_result(handle)


async def test_the_dispatch_and_the_run_s_log_hold_no_code_key_or_seed_and_the_run_completes(
    github: FakeGithub,
) -> None:
    backend = github_backend(github)
    request, marker = secret_request(backend)
    status, result = await until_done(backend, request)
    # the run completed through the workflow, and its result verifies with the run's key
    assert status.state is JobState.COMPLETED, status.reason
    verified = verified_result(result, request.key_hex, request.run_id)
    assert verified.run_id == request.run_id and all(t.passed for t in verified.tests)
    # what anyone who reads the repository's Actions sees: the dispatch as sent, the run's inputs, its log
    [dispatch] = github.dispatches
    [(run_id, inputs)] = github.inputs.items()
    assert set(inputs) == {"job_name", "runner", "bundle", "time_limit_s"}
    assert secrets_in(dispatch, marker, request.key_hex) == []
    assert secrets_in(json.dumps(inputs).encode(), marker, request.key_hex) == []
    log = github.logs[run_id]
    assert "[harness] result written" in log  # the job's own output is there (the log is real)
    assert secrets_in(log.encode(), marker, request.key_hex) == []
    assert PRIVATE_KEY not in log and "BUNDLE_KEY: ***" in log  # the secret is masked as GitHub does
    # what comes back (the result artifact: result.json, the output's tail, the exit code) neither
    [(_, artifact)] = github.artifacts.values()
    assert secrets_in(artifact, marker, request.key_hex) == []
    assert str(SEED).encode() not in b"".join(decodings(artifact))
    # the search would have found them: the same bundle, opened with the workflow's key, shows all three
    opened = SealedBox(PrivateKey(base64.b64decode(PRIVATE_KEY))).decrypt(base64.b64decode(inputs["bundle"]))
    assert secrets_in(opened, marker, request.key_hex) == ["code", "run key", "seed"]
    await backend.close()


@pytest.mark.parametrize(
    ("secret", "said"),
    [
        (make_key_pair()[1], "cannot be opened with GATEWAY_BUNDLE_KEY: it was sealed for another key"),
        ("", "the repository secret GATEWAY_BUNDLE_KEY is not set"),
        ("not a key", "GATEWAY_BUNDLE_KEY is not a private key"),
    ],
    ids=["another-key", "no-secret", "not-a-key"],
)
async def test_a_runner_without_the_right_private_key_fails_saying_why(
    github: FakeGithub, secret: str, said: str
) -> None:
    github.secrets["GATEWAY_BUNDLE_KEY"] = secret
    backend = github_backend(github)
    request, _ = secret_request(backend)
    status, result = await until_done(backend, request)
    assert status.state is JobState.FAILED and result is None
    assert status.reason is not None and status.reason.startswith("the workflow run ended failure: ")
    assert said in status.reason
    [log] = github.logs.values()
    assert "::error::" in log and said in log and "Run the harness" not in log  # no later step ran
    await backend.close()


POLICY = """\
backends:
  github:
    kind: github
    repository: octo-org/kernel-runners
    gpus: {L4: gpu-l4}
rules:
  - fallbacks: [github]
"""


def test_a_github_backend_without_a_valid_public_key_is_a_config_error_naming_file_and_field(
    tmp_path: Path,
) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(POLICY)
    with pytest.raises(ConfigError) as raised:
        load_policy(path)
    assert str(raised.value).startswith(f"{path}:3: backends.github.bundle_public_key: missing")
    assert "gateway fallback github-keys" in str(raised.value)
    path.write_text(POLICY.replace("gpus:", "bundle_public_key: c2hvcnQ=\n    gpus:"))
    with pytest.raises(
        ConfigError, match=r"routing.yaml:5: backends.github.bundle_public_key: .*not a public"
    ):
        load_policy(path)


def test_the_cli_makes_a_pair_whose_public_key_seals_what_the_private_key_file_opens(tmp_path: Path) -> None:
    key_file = tmp_path / "bundle.key"
    done = CliRunner().invoke(
        app, ["fallback", "github-keys", "-o", str(key_file), "--repo", "octo-org/kernel-runners"]
    )
    assert done.exit_code == 0, done.output
    assert key_file.stat().st_mode & 0o777 == 0o600
    private = key_file.read_text().strip()
    assert private not in done.output  # the private key is only in the file
    [public] = re.findall(r"bundle_public_key: (\S+)", done.output)
    assert f"gh secret set GATEWAY_BUNDLE_KEY --repo octo-org/kernel-runners < {key_file}" in done.output
    sealed = SealedBox(PrivateKey(base64.b64decode(private)).public_key).encrypt(b"bundle")
    assert SealedBox(PrivateKey(base64.b64decode(private))).decrypt(sealed) == b"bundle"
    assert bytes(PrivateKey(base64.b64decode(private)).public_key) == base64.b64decode(public)
    again = CliRunner().invoke(app, ["fallback", "github-keys", "-o", str(key_file)])
    assert again.exit_code == 2 and "exists" in again.output and key_file.read_text().strip() == private


def test_the_workflow_reads_the_secret_in_its_first_step_only_and_uploads_only_the_result_folder() -> None:
    workflow = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "gateway-run.yml").read_text())
    steps = workflow["jobs"]["run"]["steps"]
    with_secret = [s["name"] for s in steps if "secrets." in json.dumps(s)]
    assert with_secret == [steps[0]["name"]]
    assert steps[0]["env"]["BUNDLE_KEY"] == "${{ secrets.GATEWAY_BUNDLE_KEY }}"
    # the shell never expands it (no echo, no argv): Python takes it out of its environment, once
    assert not re.search(r"\$\{?BUNDLE_KEY", steps[0]["run"])
    assert steps[0]["run"].count('BUNDLE_KEY"') == 1 and 'os.environ.pop("BUNDLE_KEY"' in steps[0]["run"]
    assert not any("set -x" in str(s.get("run", "")) for s in steps)
    [upload] = [s for s in steps if "upload-artifact" in str(s.get("uses"))]
    assert upload["with"]["path"] == "${{ runner.temp }}/gateway-result/"
    assert workflow["permissions"] == {}
