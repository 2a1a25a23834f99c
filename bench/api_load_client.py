"""The load generator of bench/api_load.py, run as a process of its own: `python -m bench.api_load_client`
reads its plan as JSON on stdin, sends HTTP requests to the API servers on loopback only (``urls``: each
request goes to the next one in turn), and writes what it saw as JSON on stdout. It knows nothing of the
gateway but its URLs (no gateway import: a client as any other).

Each phase runs ``concurrency`` connections, each sending one request after another, until ``count``
requests were sent or ``seconds`` passed, whichever comes first; ``warmup`` requests before it are not
counted. A ranking answer must be byte for byte the first one (the ranking does not change while it is
read); a submission answer must be 202 with its submission id and runs; a metrics answer 200 with the
queue depth. The ``limits`` phase is one of its own: ``count`` submissions of one user sent at once across
the servers, then ``streams`` event streams of one client opened across them and held open together; it
counts the answers by status."""

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

    def __init__(self, client: httpx.AsyncClient, plan: dict[str, Any], spec: dict[str, Any]) -> None:
        self.client = client
        self.kind: str = spec["kind"]
        self.result = PhaseResult(spec["name"], spec["concurrency"])
        self.count: int = spec["count"]
        self.seconds: float = spec["seconds"]
        self.warmup: int = spec.get("warmup", 0)
        self.plan = plan
        self._numbers = itertools.count()
        self._expected: bytes | None = None

    def _request(self, number: int) -> httpx.Request:
        url = self.plan["urls"][number % len(self.plan["urls"])]  # the servers in turn
        if self.kind == "ranking":
            return self.client.build_request(
                "GET", url + self.plan["ranking_path"], params={"gpu": self.plan["gpu"]}
            )
        if self.kind == "metrics":
            return self.client.build_request("GET", url + "/metrics")
        tokens = self.plan["tokens"]
        code = self.plan["code"] + f"\n# {self.result.name} {number}\n"  # each file new, as real ones are
        return self.client.build_request(
            "POST",
            url + "/api/submissions",
            headers={"Authorization": f"Bearer {tokens[number % len(tokens)]}"},
            files={"file": (f"sub-{number}.py", code.encode())},
            data={
                "leaderboard": self.plan["leaderboard"],
                "gpu_type": self.plan["gpu"],
                "mode": "leaderboard",
            },
        )

    def _good(self, answer: httpx.Response) -> bool:
        if self.kind == "ranking":
            if answer.status_code != 200:
                return False
            if self._expected is None:
                self._expected = answer.content
                self.result.first_body = answer.text
            return answer.content == self._expected
        if self.kind == "metrics":
            return answer.status_code == 200 and b"\ngateway_queue_depth " in answer.content
        if answer.status_code != 202:
            return False
        body = answer.json()
        if not (isinstance(body.get("submission_id"), str) and len(body.get("runs", [])) == 2):
            return False
        self.result.submission_ids.append(body["submission_id"])
        if not self.result.first_body:
            self.result.first_body = answer.text
        return True

    async def _one(self, counted: bool) -> None:
        number = next(self._numbers)
        request = self._request(number)
        start = time.perf_counter()
        try:
            answer = await self.client.send(request)
        except httpx.HTTPError as exc:
            status = type(exc).__name__
            ok = False
        else:
            ms = (time.perf_counter() - start) * 1000
            status = str(answer.status_code)
            ok = self._good(answer)
            if ok and counted:
                self.result.latencies_ms.append(ms)
            elif answer.status_code in (200, 202) and counted:
                self.result.wrong += 1
        if counted:
            self.result.sent += 1
            self.result.statuses[status] = self.result.statuses.get(status, 0) + 1
        elif not ok:
            self.result.warmup_failed += 1

    async def run(self) -> PhaseResult:
        await asyncio.gather(*(self._one(counted=False) for _ in range(self.warmup)))  # opens the connections
        started, cpu = time.perf_counter(), time.process_time()
        deadline = started + self.seconds
        budget = itertools.count()  # shared by the connections: `count` requests in all

        async def connection() -> None:
            while time.perf_counter() < deadline and next(budget) < self.count:
                await self._one(counted=True)

        await asyncio.gather(*(connection() for _ in range(self.result.concurrency)))
        self.result.elapsed_s = time.perf_counter() - started
        self.result.cpu_s = time.process_time() - cpu
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
                results.append(await Phase(client, plan, spec).run())
    return results


if __name__ == "__main__":
    done = asyncio.run(main(json.load(sys.stdin)))
    json.dump([asdict(result) for result in done], sys.stdout)
