"""The rules of a competition's end (gateway/service/competitions.py) at the store seam: who may read a
submission's code and who may delete it, before and after the deadline, with and without revealed code;
the export's CSV and JSON; the remote client's requests for them."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, cast

import httpx
import pytest

from gateway.client.remote import RemoteGateway
from gateway.core.errors import NotFoundError, RefusedError
from gateway.service.authority import ANONYMOUS, OPERATOR, Caller
from gateway.service.boards import Boards
from gateway.service.competitions import Competitions, ExportValue, RankingExport, export_file_name
from gateway.store import DeletedSubmission, Store, SubmissionCode

PUBLIC_ID = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
ANN, BOB = Caller("ann"), Caller("bob")
OPEN = SubmissionCode(
    PUBLIC_ID, "ann", "Ann", "board", "k.py", "code", datetime(2026, 1, 1, tzinfo=UTC),
    closed=False, reveal_code=False, ranked=True, hidden=False, deleted_at=None,
)  # fmt: skip


class FakeStore:
    def __init__(self, found: SubmissionCode | None) -> None:
        self.found = found
        self.deleted: list[tuple[str, str | None]] = []

    async def submission_code(self, public_id: str) -> SubmissionCode | None:
        return self.found if self.found and public_id == self.found.public_id else None

    async def delete_submission(self, public_id: str, deleted_by: str | None) -> DeletedSubmission:
        self.deleted.append((public_id, deleted_by))
        return DeletedSubmission(public_id, 1, 0, 0)


def competitions(found: SubmissionCode | None) -> tuple[Competitions, FakeStore]:
    store = FakeStore(found)
    return Competitions(cast(Store, store), cast(Boards, None)), store


@pytest.mark.parametrize(
    ("changes", "caller", "readable"),
    [
        ({}, ANN, True),
        ({}, OPERATOR, True),
        ({}, BOB, False),
        ({"closed": True}, BOB, False),  # the board does not reveal code
        ({"reveal_code": True}, BOB, False),  # not before the deadline
        ({"reveal_code": True, "closed": True}, BOB, True),
        ({"reveal_code": True, "closed": True}, ANONYMOUS, True),
        ({"reveal_code": True, "closed": True, "ranked": False}, BOB, False),
    ],
)
async def test_code_is_the_owners_and_after_a_revealing_boards_end_everyones(
    changes: dict[str, Any], caller: Caller, readable: bool
) -> None:
    service, _ = competitions(replace(OPEN, **changes))
    if readable:
        assert (await service.code(PUBLIC_ID, caller=caller)).code == "code"
    else:
        with pytest.raises(RefusedError, match="is not yours to read"):
            await service.code(PUBLIC_ID, caller=caller)


@pytest.mark.parametrize("changes", [{"deleted_at": datetime(2026, 1, 2, tzinfo=UTC)}, {"hidden": True}])
async def test_deleted_and_hidden_submissions_are_not_found_but_to_admins(changes: dict[str, Any]) -> None:
    service, _ = competitions(replace(OPEN, **changes))
    with pytest.raises(NotFoundError, match="no submission"):
        await service.code(PUBLIC_ID, caller=ANN)
    assert (await service.code(PUBLIC_ID, caller=OPERATOR)).code == "code"


async def test_owners_delete_until_the_deadline_admins_always_nobody_else() -> None:
    service, store = competitions(OPEN)
    with pytest.raises(RefusedError, match="only your own"):
        await service.delete(PUBLIC_ID, caller=BOB)
    with pytest.raises(NotFoundError):
        await service.delete("1", caller=ANN)  # numbers name nothing; neither do other strings
    assert (await service.delete(PUBLIC_ID, caller=ANN)).unranked == 1
    closed, store = competitions(replace(OPEN, closed=True))
    with pytest.raises(RefusedError, match="final ranking stays"):
        await closed.delete(PUBLIC_ID, caller=ANN)
    await closed.delete(PUBLIC_ID, caller=Caller("root", admin=True))
    assert store.deleted == [(PUBLIC_ID, "root")]


def test_the_export_writes_csv_and_json_with_formulas_made_inert() -> None:
    row: dict[str, ExportValue] = {
        "leaderboard": "b", "gpu_type": "H100", "rank": 1, "user": "=HYPERLINK(1)", "score": 0.5,
        "submission_id": PUBLIC_ID, "file_name": "k.py", "site": "alpha",
        "submitted_at": "2026-01-01T00:00:00+00:00", "finished_at": None, "run_id": "r",
    }  # fmt: skip
    done = RankingExport("b", "geom", None, True, [row])
    parsed = list(csv.DictReader(io.StringIO(done.csv())))
    assert (
        parsed[0]["user"] == "'=HYPERLINK(1)" and parsed[0]["rank"] == "1" and parsed[0]["finished_at"] == ""
    )
    document = json.loads(done.json())
    assert document["final"] is True and document["entries"] == [row]
    assert export_file_name("../a b/ü", "csv") == "_a_b__-ranking.csv"


async def test_the_remote_client_asks_for_exports_code_and_deletion() -> None:
    seen: list[tuple[str, str]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, str(request.url.copy_with(scheme="https", host="gw"))))
        if request.url.path.endswith("/export"):
            return httpx.Response(200, text="leaderboard,gpu_type\n")
        return httpx.Response(200, json={"message": "ok"})

    async with RemoteGateway("https://gw", "gwt_t", transport=httpx.MockTransport(handle)) as gateway:
        assert await gateway.export("a/b", "csv", "H100") == "leaderboard,gpu_type\n"
        await gateway.submission_code(PUBLIC_ID)
        await gateway.delete_submission(PUBLIC_ID)
    assert seen == [
        ("GET", "https://gw/api/leaderboards/a%2Fb/export?format=csv&gpu=H100"),
        ("GET", f"https://gw/api/submissions/{PUBLIC_ID}/code"),
        ("DELETE", f"https://gw/api/submissions/{PUBLIC_ID}"),
    ]
