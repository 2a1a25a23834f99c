"""Every route of the app (API, admin, event streams, web pages), walked with hostile values in each of its
path parameters, and the event streams with hostile resume points: never a server error. Ids out of
range are 404 (no such thing), malformed ones 4xx saying what is wrong; nothing reaches the database as
an overflow (which answered 503)."""

from __future__ import annotations

import re
from urllib.parse import quote

import httpx
import pytest

from gateway.config.settings import Settings
from tests.conftest import solution
from tests.integration.api_harness import ADMIN_TOKEN, api_server

pytestmark = pytest.mark.integration

HOSTILE = [
    "99999999999999999999999",
    "9223372036854775808",  # bigint's last + 1
    "9223372036854775807",  # bigint's last: in range, names nothing
    "-9223372036854775809",
    "-1",
    "0",
    "1e3",
    "0x1f",
    "١٢٣",  # Arabic-Indic digits: int() takes them
    "²",  # a digit to str.isdigit(), not to int()
    "ü",
    "💥",
    "%00",  # raw: a NUL once decoded
    "%ff",  # raw: not UTF-8 once decoded
    "%2e%2e",
    " ",
    "9" * 5000,
    "a" * 10_240,
]
PARAM = re.compile(r"{(\w+)(?::\w+)?}")


def paths(template: str) -> list[str]:
    """``template`` with each hostile value in each of its parameters (the others a plain "1")."""
    names = PARAM.findall(template)
    out = []
    for name in names:
        for value in HOSTILE:
            raw = value if value.startswith("%") else quote(value, safe="")
            out.append(PARAM.sub(lambda m, n=name, r=raw: r if m.group(1) == n else "1", template))  # type: ignore[misc]
    return out


async def test_no_route_answers_a_hostile_id_with_a_server_error(stack_settings: Settings) -> None:
    async with api_server(stack_settings, worker=False, api_requests_per_minute=100_000) as api:
        user = await api.user_token("hostile")
        board = await api.board(("H100",))
        async with httpx.AsyncClient(base_url=api.url, timeout=30) as client:
            spec = (await client.get("/openapi.json")).json()
            routes = [(path, method.upper()) for path, item in spec["paths"].items() for method in item]
            routes += [("/submissions/{submission_id}", "GET"), ("/runs/{run_id}", "GET")]  # the pages
            routes += [("/leaderboards/{name}", "GET")]
            walked = [(p, m) for p, m in routes if PARAM.search(p)]
            assert len(walked) >= 20
            answers: dict[str, list[str]] = {}
            for template, method in walked:
                token = ADMIN_TOKEN if template.startswith("/api/admin/") else user
                for path in paths(template):
                    request = client.build_request(
                        method, path, headers={"Authorization": f"Bearer {token}"}, params={"gpu": "H100"}
                    )
                    answer = await client.send(request, stream=True)  # an event stream would not end
                    await answer.aclose()
                    answers.setdefault(str(answer.status_code), []).append(f"{method} {path[:80]}")

            # resume points of event streams: out of range or odd digits
            run = (
                await client.post(
                    "/api/submissions",
                    headers={"Authorization": f"Bearer {user}"},
                    files={"file": ("k.py", solution("vectoradd", "correct.py"))},
                    data={"leaderboard": board, "mode": "test"},
                )
            ).json()["public_run_id"]
            await api.gateway.store.add_event(run, "finished", "COMPLETED", "done")  # type: ignore[union-attr]
            for value in ("99999999999999999999999", "9223372036854775807", "²", "١٢٣", "-5", "9" * 5000):
                # header bytes as latin-1, as Starlette decodes them (so "²" arrives as "²")
                header = value.encode("latin-1") if value != "١٢٣" else value.encode()
                for how in ({"params": {"after": value}}, {"headers": {"Last-Event-ID": header}}):
                    request = client.build_request("GET", f"/api/runs/{run}/events", **how)
                    answer = await client.send(request, stream=True)  # after the end: it waits for more
                    await answer.aclose()
                    answers.setdefault(str(answer.status_code), []).append(f"events {how}"[:80])
                    assert answer.status_code in (200, 422), (how, answer.status_code)
    server_errors = {status: where for status, where in answers.items() if status.startswith("5")}
    assert not server_errors, server_errors
    assert set(answers) <= {"200", "400", "403", "404", "405", "409", "422"}, sorted(answers)


async def test_out_of_range_submission_ids_are_not_found(stack_settings: Settings) -> None:
    async with api_server(stack_settings, worker=False) as api, httpx.AsyncClient(base_url=api.url) as client:
        for value in ("99999999999999999999999", "9223372036854775808", "-1", "0"):
            answer = await client.get(f"/api/submissions/{value}")
            assert answer.status_code == 404 and "no submission" in answer.json()["error"], answer.text
            assert (await client.get(f"/api/submissions/{value}/events")).status_code == 404
            assert (await client.get(f"/submissions/{value}")).status_code == 404  # the page
        assert (
            await client.get("/api/submissions/abc")
        ).status_code == 404  # a public id names no submission
