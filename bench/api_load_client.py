"""The load generator of bench/api_load.py, run as a process of its own: `python -m bench.api_load_client`
reads its plan as JSON on stdin, sends HTTP requests to the API servers on loopback only (``urls``: the
connections go to them in turn), and writes what it saw as JSON on stdout. It knows nothing of the gateway
but its URLs (no gateway import: a client as any other).

Each phase runs ``concurrency`` keep-alive connections (bench/api_load_wire.py: httpx's CPU per request
would be the limit on 2 cores), each sending one request after another, until ``count`` requests were sent
or ``seconds`` passed, whichever comes first; ``warmup`` requests before it are not counted. A ranking
answer must be byte for byte the first one (the ranking does not change while it is read); a revalidated
ranking (If-None-Match with the first answer's ETag) must be 304; a submission answer must be 202 with its
submission id and runs; a metrics answer 200 with the queue depth. The ``limits`` phase is one of its own
(with httpx): ``count`` submissions of one user sent at once across the servers, then ``streams`` event
streams of one client opened across them and held open together; it counts the answers by status."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from bench.api_load_wire import Answer, Connection, multipart

TIMEOUT_S = 30.0  # one request; a phase also stops at its own time limit


@dataclass
class PhaseResult:
    name: str
    concurrency: int
    sent: int = 0
    elapsed_s: float = 0.0
    cpu_s: float = 0.0  # this process's CPU time over the phase (the load generator's own cost)
    latencies_ms: list[float] = field(default_factory=list)  # of the 200/202 answers, in the order sent
    statuses: dict[str, int] = field(default_factory=dict)  # status (or exception name) -> count
    wrong: int = 0  # a 200/202 whose body is not what it should be
    warmup_failed: int = 0  # warm-up requests not answered as they should be (not in `sent`)
    first_body: str = ""  # the first good answer, for the caller to check
    submission_ids: list[str] = field(default_factory=list)  # public ids (unguessable)
    extra: dict[str, Any] = field(default_factory=dict)  # the limits phase's counts


class Phase:
    """One kind of request under one concurrency."""

    def __init__(self, plan: dict[str, Any], spec: dict[str, Any]) -> None:
        self.kind: str = spec["kind"]
        self.result = PhaseResult(spec["name"], spec["concurrency"])
        self.count: int = spec["count"]
        self.seconds: float = spec["seconds"]
        self.warmup: int = spec.get("warmup", 0)
        self.plan = plan
        self._numbers = itertools.count()
        self._expected: bytes | None = None

    async def _send(self, connection: Connection, number: int) -> Answer:
        if self.kind == "ranking":
            return await connection.request("GET", self.plan["ranking_path"], {"gpu": self.plan["gpu"]})
        if self.kind == "revalidate":
            headers = {"If-None-Match": self.plan["etag"]}
            return await connection.request(
                "GET", self.plan["ranking_path"], {"gpu": self.plan["gpu"]}, headers
            )
        if self.kind == "metrics":
            return await connection.request("GET", "/metrics")
        tokens = self.plan["tokens"]
        code = self.plan["code"] + f"\n# {self.result.name} {number}\n"  # each file new, as real ones are
        content_type, body = multipart(
            {"leaderboard": self.plan["leaderboard"], "gpu_type": self.plan["gpu"], "mode": "leaderboard"},
            {"file": (f"sub-{number}.py", code.encode())},
        )
        headers = {"Authorization": f"Bearer {tokens[number % len(tokens)]}", "Content-Type": content_type}
        return await connection.request("POST", "/api/submissions", headers=headers, body=body)

    def _good(self, answer: Answer) -> bool:
        if self.kind == "ranking":
            if answer.status != 200:
                return False
            if self._expected is None:
                self._expected = answer.content
                self.result.first_body = answer.text
                self.result.extra["etag"] = answer.headers.get("etag", "")
            return answer.content == self._expected
        if self.kind == "revalidate":
            return answer.status == 304 and answer.headers.get("etag") == self.plan["etag"]
        if self.kind == "metrics":
            return answer.status == 200 and b"\ngateway_queue_depth " in answer.content
        if answer.status != 202:
            return False
        body = json.loads(answer.content)
        if not (isinstance(body.get("submission_id"), str) and len(body.get("runs", [])) == 2):
            return False
        self.result.submission_ids.append(body["submission_id"])
        if not self.result.first_body:
            self.result.first_body = answer.text
        return True

    async def _one(self, connection: Connection, counted: bool) -> None:
        number = next(self._numbers)
        start = time.perf_counter()
        try:
            answer = await asyncio.wait_for(self._send(connection, number), TIMEOUT_S)
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            status = type(exc).__name__
            ok = False
        else:
            ms = (time.perf_counter() - start) * 1000
            status = str(answer.status)
            ok = self._good(answer)
            if ok and counted:
                self.result.latencies_ms.append(ms)
            elif answer.status in (200, 202, 304) and counted:
                self.result.wrong += 1
        if counted:
            self.result.sent += 1
            self.result.statuses[status] = self.result.statuses.get(status, 0) + 1
        elif not ok:
            self.result.warmup_failed += 1

    async def run(self) -> PhaseResult:
        urls, concurrency = self.plan["urls"], self.result.concurrency
        connections = [Connection(urls[n % len(urls)]) for n in range(concurrency)]  # the servers in turn

        async def warm(number: int) -> None:  # opens the connections
            for _ in range(number, self.warmup, concurrency):
                await self._one(connections[number], counted=False)

        await asyncio.gather(*(warm(n) for n in range(concurrency)))
        started, cpu = time.perf_counter(), time.process_time()
        deadline = started + self.seconds
        budget = itertools.count()  # shared by the connections: `count` requests in all

        async def load(connection: Connection) -> None:
            while time.perf_counter() < deadline and next(budget) < self.count:
                await self._one(connection, counted=True)

        await asyncio.gather(*(load(connection) for connection in connections))
        self.result.elapsed_s = time.perf_counter() - started
        self.result.cpu_s = time.process_time() - cpu
        for connection in connections:
            await connection.close()
        return self.result


async def limits(client: httpx.AsyncClient, plan: dict[str, Any], spec: dict[str, Any]) -> PhaseResult:
    """``count`` submissions of one user at once, then ``streams`` streams of one client, across the
    servers in turn; what each answered, by status."""
    result = PhaseResult(spec["name"], spec["concurrency"])
    urls = plan["urls"]
    started, cpu = time.perf_counter(), time.process_time()
    gate = asyncio.Semaphore(spec["concurrency"])

    async def submit(number: int) -> httpx.Response:
        async with gate:
            return await client.post(
                urls[number % len(urls)] + "/api/submissions",
                headers={"Authorization": f"Bearer {plan['limit_token']}"},
                files={"file": (f"limit-{number}.py", (plan["code"] + f"\n# limit {number}\n").encode())},
                data={"leaderboard": plan["leaderboard"], "gpu_type": plan["gpu"], "mode": "test"},
            )

    answers = await asyncio.gather(*(submit(n) for n in range(spec["count"])))
    result.extra["submissions_s"] = time.perf_counter() - started
    result.extra["submissions"] = _by_status(answers)
    accepted = [a.json() for a in answers if a.status_code == 202]
    result.submission_ids = [a["submission_id"] for a in accepted]
    result.sent = len(answers)
    if accepted:  # a queued run's stream stays open (no worker): hold ``streams`` of them at once
        path = f"/api/runs/{accepted[0]['public_run_id']}/events"
        async with contextlib.AsyncExitStack() as held:
            opened = []
            for number in range(spec["streams"]):
                stream = client.stream("GET", urls[number % len(urls)] + path)
                opened.append(await held.enter_async_context(stream))
            result.extra["streams"] = _by_status(opened)
            refused = [o for o in opened if o.status_code == 429]
            if refused:
                result.extra["stream_refusal"] = (await refused[0].aread()).decode()
    result.elapsed_s = time.perf_counter() - started
    result.cpu_s = time.process_time() - cpu
    return result


def _by_status(answers: list[httpx.Response]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for answer in answers:
        counts[str(answer.status_code)] = counts.get(str(answer.status_code), 0) + 1
    return counts


async def main(plan: dict[str, Any]) -> list[PhaseResult]:
    for url in plan["urls"]:
        if urlsplit(url).hostname != "127.0.0.1":
            raise SystemExit(f"the load generator sends only to 127.0.0.1, not {url}")
    most = max(spec["concurrency"] for spec in plan["phases"]) * 2  # the streams stay open
    pool = httpx.Limits(max_connections=most, max_keepalive_connections=most)
    results = []
    async with httpx.AsyncClient(timeout=TIMEOUT_S, limits=pool) as client:
        for spec in plan["phases"]:
            if spec["kind"] == "limits":
                results.append(await limits(client, plan, spec))
            else:
                results.append(await Phase(plan, spec).run())
    return results


if __name__ == "__main__":
    done = asyncio.run(main(json.load(sys.stdin)))
    json.dump([asdict(result) for result in done], sys.stdout)
