"""A local HTTP server speaking the few GitHub REST calls the Actions fallback uses, with bodies shaped
like GitHub's documented ones (https://docs.github.com/rest/actions: workflow runs, artifacts), and a
runner that executes the shipped workflow file's own steps (.github/workflows/gateway-run.yml): its
shell steps with bash, upload-artifact as a zip. So the harness really runs, from the bundle the
gateway dispatched, and the artifact holds the result.json it authenticated.

As on GitHub, the dispatch's inputs are kept as given (``dispatches``: the raw request bodies, which is
what anyone who can read the repository's Actions sees), the repository's secrets (``secrets``) and
variables (``variables``) reach a step only through ``${{ secrets.X }}`` / ``${{ vars.X }}`` in the
workflow, and each run has a log (``logs``): per step, its environment as GitHub prints it (secrets as
***) and everything the step wrote, unmasked (stricter than GitHub, which masks secrets there too)."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
import zipfile
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import yaml

from gateway.config.settings import REPO_ROOT

WORKFLOW_FILE = REPO_ROOT / ".github" / "workflows" / "gateway-run.yml"
DOCS = "https://docs.github.com/rest"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeGithub:
    def __init__(self, tokens: set[str], repository: str = "octo-org/kernel-runners") -> None:
        self.tokens = set(tokens)
        self.revoked: set[str] = set()
        self.rate_limited: set[str] = set()
        self.repository = repository
        self.runs: dict[int, dict[str, Any]] = {}
        self.inputs: dict[int, dict[str, str]] = {}
        self.dispatches: list[bytes] = []  # the dispatch requests' bodies, as sent
        self.secrets: dict[str, str] = {}  # the repository's Actions secrets
        self.variables: dict[str, str] = {}  # the repository's Actions variables
        self.logs: dict[int, str] = {}  # a run's log
        self.artifacts: dict[int, tuple[dict[str, Any], bytes]] = {}
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, token used)
        self.storage_auth: list[str | None] = []  # Authorization headers the storage URL received
        self.event_after_unpack: list[str] = []
        self.hold = threading.Event()  # set: runs stay queued until released
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        self._cancelled: set[int] = set()
        self._lock = threading.Lock()
        self._next_id = 30433642
        self.workdir = Path(tempfile.mkdtemp(prefix="fake-github-"))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.hold.clear()
        for run_id in list(self._procs):
            self._kill(run_id)
        self._server.shutdown()
        self._server.server_close()

    # -- the REST API ------------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return None

            def _send(self, code: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
                data = (
                    b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
                )
                self.send_response(code)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                if body is not None and not isinstance(body, bytes):
                    self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                fake._route(self, "GET")

            def do_POST(self) -> None:
                fake._route(self, "POST")

        return Handler

    def _route(self, req: Any, method: str) -> None:
        url = urlparse(req.path)
        path, query = url.path, parse_qs(url.query)
        if path.startswith("/storage/"):  # the signed storage URL: no token expected, none wanted
            self.storage_auth.append(req.headers.get("Authorization"))
            artifact = self.artifacts.get(int(path.rsplit("/", 1)[1]))
            req._send(200, artifact[1]) if artifact else req._send(404, b"")
            return
        token = (req.headers.get("Authorization") or "").removeprefix("Bearer ") or None
        self.requests.append((method, path, token))
        if token is None or token not in self.tokens or token in self.revoked:
            req._send(401, {"message": "Bad credentials", "documentation_url": DOCS, "status": "401"})
            return
        if token in self.rate_limited:
            reset = str(int(time.time()) + 3600)
            req._send(
                403,
                {"message": "API rate limit exceeded for user ID 1.", "documentation_url": DOCS},
                {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "0", "x-ratelimit-reset": reset},
            )
            return
        prefix = f"/repos/{self.repository}/actions"
        raw = req.rfile.read(int(req.headers.get("Content-Length") or 0))
        body = json.loads(raw or b"{}")
        if method == "POST" and (m := re.fullmatch(prefix + r"/workflows/([^/]+)/dispatches", path)):
            self.dispatches.append(raw)
            self._dispatch(m.group(1), body)
            req._send(204)
        elif method == "GET" and re.fullmatch(prefix + r"/workflows/([^/]+)/runs", path):
            since = query.get("created", [">=1970-01-01T00:00:00Z"])[0].removeprefix(">=")
            runs = [r for r in self.runs.values() if r["created_at"] >= since]
            runs.sort(key=lambda r: -int(r["id"]))
            req._send(200, {"total_count": len(runs), "workflow_runs": runs[:100]})
        elif method == "GET" and (m := re.fullmatch(prefix + r"/runs/(\d+)", path)):
            run = self.runs.get(int(m.group(1)))
            req._send(200, run) if run else req._send(
                404, {"message": "Not Found", "documentation_url": DOCS}
            )
        elif method == "GET" and (m := re.fullmatch(prefix + r"/runs/(\d+)/artifacts", path)):
            found = [a for a, _ in self.artifacts.values() if a["workflow_run"]["id"] == int(m.group(1))]
            req._send(200, {"total_count": len(found), "artifacts": found})
        elif method == "GET" and (m := re.fullmatch(prefix + r"/artifacts/(\d+)/zip", path)):
            # GitHub answers 302 to a storage URL on another host: httpx must not send it the token
            port = self._server.server_address[1]
            location = f"http://localhost:{port}/storage/{m.group(1)}?sig=signed"
            req._send(302, b"", {"Location": location})
        elif method == "POST" and (m := re.fullmatch(prefix + r"/runs/(\d+)/cancel", path)):
            run = self.runs.get(int(m.group(1)))
            if run is None:
                req._send(404, {"message": "Not Found", "documentation_url": DOCS})
            elif run["status"] == "completed":
                req._send(
                    409,
                    {"message": "Cannot cancel a workflow run that is completed.", "documentation_url": DOCS},
                )
            else:
                self._cancelled.add(int(run["id"]))
                self._kill(int(run["id"]))
                req._send(202, {})
        else:
            req._send(404, {"message": "Not Found", "documentation_url": DOCS})

    def _dispatch(self, workflow: str, body: dict[str, Any]) -> None:
        with self._lock:
            run_id = self._next_id = self._next_id + 1
        inputs = body["inputs"]
        self.inputs[run_id] = inputs
        self.runs[run_id] = {
            "id": run_id,
            "name": "gateway-run",
            "node_id": f"WFR_{run_id}",
            "head_branch": body["ref"],
            "path": f".github/workflows/{workflow}",
            "display_title": inputs["job_name"],
            "run_number": run_id - 30433642,
            "event": "workflow_dispatch",
            "status": "queued",
            "conclusion": None,
            "workflow_id": 159038,
            "run_attempt": 1,
            "url": f"https://api.github.com/repos/{self.repository}/actions/runs/{run_id}",
            "html_url": f"https://github.com/{self.repository}/actions/runs/{run_id}",
            "created_at": _now(),
            "updated_at": _now(),
            "run_started_at": _now(),
        }
        threading.Thread(target=self._execute, args=(run_id,), daemon=True).start()

    # -- the runner: the workflow file's own steps ------------------------------------------------------

    def _kill(self, run_id: int) -> None:
        proc = self._procs.get(run_id)
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _execute(self, run_id: int) -> None:
        while self.hold.is_set() and run_id not in self._cancelled:
            time.sleep(0.05)
        run, inputs = self.runs[run_id], self.inputs[run_id]
        run.update(status="in_progress", updated_at=_now())
        temp = self.workdir / str(run_id)
        temp.mkdir()
        event = temp / "event.json"
        event.write_text(json.dumps({"inputs": inputs}))

        contexts = {
            "inputs": inputs,
            "secrets": self.secrets,
            "vars": self.variables,
            "runner": {"temp": str(temp)},
        }

        def value(operand: str) -> str:
            """One operand of an expression: a quoted literal, or context.name (missing: empty)."""
            if operand.startswith("'") and operand.endswith("'"):
                return operand[1:-1].replace("''", "'")
            context, _, name = operand.partition(".")
            return str(contexts[context].get(name, ""))

        def expand(text: str) -> str:  # ${{ a.b }} and ${{ a.b || 'default' }}, as GitHub evaluates them
            return re.sub(
                r"\$\{\{\s*(.*?)\s*\}\}",
                lambda m: next((v for o in m.group(1).split("||") if (v := value(o.strip()))), ""),
                text,
            )

        log: list[str] = []

        steps = yaml.safe_load(WORKFLOW_FILE.read_text())["jobs"]["run"]["steps"]
        failed = False
        for step in steps:
            if (failed or run_id in self._cancelled) and step.get("if") != "always()":
                continue
            if "run" in step:
                step_env = {key: expand(str(value)) for key, value in (step.get("env") or {}).items()}
                env = os.environ | {"RUNNER_TEMP": str(temp), "GITHUB_EVENT_PATH": str(event)} | step_env
                log.append(f"##[group]Run {step['name']}\n{step['run']}")
                log.extend(f"  {key}: {self._masked(value)}" for key, value in step_env.items())
                with tempfile.TemporaryFile() as output:
                    proc = subprocess.Popen(
                        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
                        env=env,
                        stdin=subprocess.DEVNULL,
                        stdout=output,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                    self._procs[run_id] = proc
                    failed = proc.wait() != 0 or failed
                    output.seek(0)
                    log.append(output.read().decode(errors="replace"))
                if step is steps[0]:  # the step that opens and unpacks the bundle
                    self.event_after_unpack.append(event.read_text())
            elif str(step.get("uses", "")).startswith("actions/upload-artifact@"):
                self._upload(run_id, step["with"]["name"], Path(expand(step["with"]["path"])))
        self.logs[run_id] = "\n".join(log)
        conclusion = "cancelled" if run_id in self._cancelled else "failure" if failed else "success"
        run.update(status="completed", conclusion=conclusion, updated_at=_now())

    def _masked(self, value: str) -> str:
        for secret in self.secrets.values():
            if secret:
                value = value.replace(secret, "***")
        return value

    def _upload(self, run_id: int, name: str, folder: Path) -> None:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for path in sorted(folder.glob("*")) if folder.is_dir() else []:
                archive.write(path, path.name)
        data = buffer.getvalue()
        artifact_id = 11 + len(self.artifacts)
        base = f"https://api.github.com/repos/{self.repository}/actions/artifacts/{artifact_id}"
        self.artifacts[artifact_id] = (
            {
                "id": artifact_id,
                "node_id": f"MDg6QXJ0aWZhY3Qx{artifact_id}",
                "name": name,
                "size_in_bytes": len(data),
                "url": base,
                "archive_download_url": f"{base}/zip",
                "expired": False,
                "created_at": _now(),
                "expires_at": _now(),
                "updated_at": _now(),
                "workflow_run": {"id": run_id, "head_branch": self.runs[run_id]["head_branch"]},
            },
            data,
        )
