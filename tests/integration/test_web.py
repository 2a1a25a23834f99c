"""The web pages in headless Chromium (Debian's, driven by Playwright) against the API harness's real server,
database and Slurm sites: a leaderboard page follows submissions made over HTTP into its recent runs, its
ranking and its chart without a reload; a submission page follows its runs to their timings; a user name
and a file name full of HTML stay text; hidden leaderboards and unknown pages are 404 pages while /api keeps
its JSON errors; no page logs an error (a blocked Content-Security-Policy load would). Screenshots for
review are saved in build/screenshots/."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Dialog,
    Page,
    async_playwright,
    expect,
)

from gateway.config.settings import REPO_ROOT, Settings
from gateway.core.formatting import format_seconds
from gateway.service.facade import OPERATOR
from tests.conftest import solution
from tests.integration.api_harness import ApiUnderTest, api_server
from tests.integration.scratch import finish_submission
from tests.integration.scratch import submit as scratch_submission

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
]
SCREENSHOTS = REPO_ROOT / "build" / "screenshots"
HOSTILE_USER = "<img src=x onerror=alert(1)>"
HOSTILE_FILE = "<b onmouseover=alert(2)>add.py"
RUN_MS = 90_000  # a vectoradd submission (public run and secret rerun) takes about 10 s
DURATION = re.compile(r"^\d+\.\d{3} (s|ms|µs)$|^\d+\.\d ns$")
RECONNECT_S = 3.5  # longer than EventSource's reconnection delay (3 s)
PAGE_404 = "Failed to load resource: the server responded with a status of 404"


@pytest.fixture(scope="module")
async def browser(dev_env: dict[str, str]) -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():  # the dev stack installs it when it starts (gateway/devstack/packages.py)
        pytest.fail(
            f"{CHROMIUM} is missing: the web tests drive Debian's chromium. Install it with "
            "`apt-get install chromium` (`gateway dev up` does when it starts the stack).",
            pytrace=False,
        )
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


@dataclass
class Web:
    """The server under test and a browser context on it; each page opened records what went wrong in
    it: console errors and warnings, uncaught exceptions, dialogs (an alert() would be an injection)."""

    api: ApiUnderTest
    context: BrowserContext
    problems: list[str] = field(default_factory=list)

    async def page(self) -> Page:
        page = await self.context.new_page()

        def console(message: ConsoleMessage) -> None:
            if message.type in ("error", "warning"):
                self.problems.append(f"console {message.type}: {message.text} ({message.location['url']})")

        async def dialog(shown: Dialog) -> None:
            self.problems.append(f"a {shown.type} dialog: {shown.message}")
            await shown.dismiss()

        page.on("console", console)
        page.on("pageerror", lambda error: self.problems.append(f"uncaught: {error}"))
        page.on("dialog", dialog)
        return page

    async def submit(self, board: str, user: str, file_name: str = "correct.py") -> dict[str, Any]:
        token = await self.api.user_token(user)
        async with httpx.AsyncClient(base_url=self.api.url, timeout=30) as client:
            answer = await client.post(
                "/api/submissions",
                headers={"Authorization": f"Bearer {token}"},
                files={"file": (file_name, solution("vectoradd", "correct.py"))},
                data={"leaderboard": board, "gpu_type": "H100"},
            )
        assert answer.status_code == 202, answer.text
        submitted: dict[str, Any] = answer.json()
        return submitted


@pytest.fixture
async def web(stack_settings: Settings, browser: Browser) -> AsyncIterator[Web]:
    async with api_server(stack_settings) as api:
        context = await browser.new_context(base_url=api.url, viewport={"width": 1280, "height": 900})
        try:
            yield Web(api, context)
        finally:
            await context.close()  # before the server stops: its event streams would hold it open


@pytest.fixture
async def web_no_worker(stack_settings: Settings, browser: Browser) -> AsyncIterator[Web]:
    """The same without a worker: runs made through the store stay as the test records them."""
    async with api_server(stack_settings, worker=False) as api:
        context = await browser.new_context(base_url=api.url, viewport={"width": 1280, "height": 900})
        try:
            yield Web(api, context)
        finally:
            await context.close()


async def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=SCREENSHOTS / name, full_page=True)


async def test_pages_follow_submissions_live_into_the_ranking_chart_and_timings(web: Web) -> None:
    board = await web.api.board(("H100",))
    leaderboard = await web.page()
    await leaderboard.goto(f"/leaderboards/{board}")
    await expect(leaderboard.locator("#ranking-empty")).to_be_visible()
    await expect(leaderboard.locator("#live")).to_have_text("live")  # its event stream is open
    await leaderboard.evaluate("window.loadedOnce = true")  # gone if the page reloads

    alice = await web.submit(board, "alice")
    await web.submit(board, HOSTILE_USER, HOSTILE_FILE)
    submission = await web.page()
    streams: list[str] = []
    submission.on("request", lambda r: streams.append(r.url) if r.url.endswith("/events") else None)
    await submission.goto(alice["page_url"])

    await expect(leaderboard.locator("#runs tbody tr")).to_have_count(2)  # queued or running, live
    await follow_the_submission_page(submission)
    await the_timings_are_the_stored_ones(web, submission, alice["public_run_id"])
    ended = time.monotonic()
    await follow_the_leaderboard_page(web, leaderboard, board)
    await asyncio.sleep(RECONNECT_S - (time.monotonic() - ended))
    assert len(streams) == 2, streams  # one stream per load of the submission page, none reconnected
    assert web.problems == []


async def follow_the_submission_page(page: Page) -> None:
    """The page follows its runs' events while they run, then comes again with the results."""
    assert await page.locator("#submission").get_attribute("data-finished") == "false"
    await expect(page.locator("#follow")).to_have_text("Following the runs live…")
    running = page.locator("#log li.kind-state .state", has_text="running")
    await expect(running.first).to_be_visible(timeout=RUN_MS)
    assert await page.locator("table.benchmarks").count() == 0  # running: no results yet

    await expect(page.locator("#follow")).to_have_text("Finished.", timeout=RUN_MS)
    public, secret = page.locator("section.run").nth(0), page.locator("section.run").nth(1)
    await expect(public.locator("h2 .status")).to_have_text("passed")
    await expect(public.locator("table.tests tbody tr")).to_have_count(3)
    benchmarks = public.locator("table.benchmarks tbody tr")
    await expect(benchmarks).to_have_count(2)
    for row in await benchmarks.all():
        for value in (await row.locator("td.num").all_text_contents())[:4]:  # mean, best, worst, std
            assert DURATION.match(value), value
    await expect(secret.locator("h2")).to_contain_text("Secret rerun")
    await expect(secret.locator("h2 .status")).to_have_text("passed")
    assert await secret.locator("table").count() == 0  # a secret rerun shows only its verdict
    await expect(page.locator("#log li.kind-finished")).to_have_count(2)  # the events again, replayed
    await screenshot(page, "submission.png")


async def the_timings_are_the_stored_ones(web: Web, page: Page, run_id: str) -> None:
    """Each benchmark's mean, best and spread (worst, std) on the page are the run's stored statistics."""
    run = await _json(web, f"/api/runs/{run_id}")
    rows = page.locator("section.run").nth(0).locator("table.benchmarks tbody tr")
    for row, bench in zip(await rows.all(), run["benchmarks"], strict=True):
        shown = (await row.locator("td.num").all_text_contents())[:4]
        stored = [format_seconds(bench[key]) for key in ("mean_s", "best_s", "worst_s", "std_s")]
        assert shown == stored, (shown, stored)
        assert bench["best_s"] <= bench["mean_s"] <= bench["worst_s"] and bench["std_s"] > 0, bench


async def follow_the_leaderboard_page(web: Web, page: Page, board: str) -> None:
    """The ranking, recent runs and chart change in place (no reload); names full of HTML stay text."""
    await expect(page.locator("#ranking tbody tr")).to_have_count(2, timeout=RUN_MS)
    await expect(page.locator("#runs .status")).to_have_text(["passed", "passed"], timeout=RUN_MS)
    assert await page.evaluate("window.loadedOnce === true"), "the page reloaded instead of updating"

    ranked = (await _json(web, f"/api/leaderboards/{board}/ranking?gpu=H100"))[0]["entries"]
    await expect(page.locator("#ranking td.name")).to_have_text([entry["user"] for entry in ranked])
    await expect(page.locator("#ranking td.score")).to_have_text([entry["score_text"] for entry in ranked])
    assert sorted(entry["user"] for entry in ranked) == sorted(["alice", HOSTILE_USER])
    assert HOSTILE_FILE in await page.locator("#ranking td.file").all_text_contents()
    for score in await page.locator("#ranking td.score").all_text_contents():
        assert DURATION.match(score), score
    assert await page.locator("main img, main b").count() == 0  # the names stayed text

    chart = page.locator("#chart")
    await expect(chart.locator(".u-legend .u-series .u-label")).to_have_text(
        ["time", "best", *(entry["user"] for entry in ranked)]
    )
    box = await chart.locator("canvas").bounding_box()
    assert box is not None and box["width"] > 600 and box["height"] > 200, box
    await expect(page.locator("#chart-empty")).to_be_hidden()
    await screenshot(page, "leaderboard.png")
    colours = await chart.locator("canvas").evaluate(COUNT_SERIES_PIXELS)
    assert colours["first"] > 5 and colours["second"] > 5, colours


# Pixels of the chart's canvas in the colours of the first two users' series (static/chart.js PALETTE):
# a drawn chart, not only its axes.
COUNT_SERIES_PIXELS = """canvas => {
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  const wanted = {first: [37, 99, 235], second: [234, 88, 12]};
  const counts = {first: 0, second: 0};
  for (let i = 0; i < data.length; i += 4) {
    if (data[i + 3] < 200) continue;
    for (const [name, [r, g, b]] of Object.entries(wanted)) {
      if (Math.abs(data[i] - r) + Math.abs(data[i + 1] - g) + Math.abs(data[i + 2] - b) < 30) counts[name]++;
    }
  }
  return counts;
}"""


async def _json(web: Web, path: str) -> Any:
    async with httpx.AsyncClient(base_url=web.api.url) as client:
        answer = await client.get(path)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def test_hidden_leaderboards_and_unknown_pages_are_404_pages(web: Web) -> None:
    public = await web.api.board(("H100",))
    hidden = f"hidden-{uuid.uuid4().hex[:8]}"
    task = await web.api.gateway.boards.load_task_directory("vectoradd")
    await web.api.gateway.boards.create_leaderboard(
        hidden, task, ["H100"], visibility="hidden", caller=OPERATOR
    )
    page = await web.page()

    await page.goto("/")
    names = await page.locator("main table a").all_text_contents()
    assert public in names and hidden not in names
    await screenshot(page, "index.png")

    for path, message in (
        (f"/leaderboards/{hidden}", f"no leaderboard named '{hidden}'"),
        ("/leaderboards/no-such-board", "no leaderboard named 'no-such-board'"),
        (f"/leaderboards/{public}?gpu=B200", "does not rank 'B200'"),
        ("/submissions/987654321", "no submission '987654321'"),
        ("/no/such/page", "There is no page at this address."),
    ):
        response = await page.goto(path)
        assert response is not None and response.status == 404, path
        assert "default-src 'self'" in (await response.all_headers())["content-security-policy"]
        await expect(page.locator("h1")).to_have_text("Not found")
        await expect(page.locator(".message")).to_contain_text(message)
    await screenshot(page, "not-found.png")

    async with httpx.AsyncClient(base_url=web.api.url) as client:  # the API still answers JSON
        for path in (f"/api/leaderboards/{hidden}", "/api/no-such-endpoint"):
            answer = await client.get(path, headers={"Accept": "text/html"})
            assert answer.status_code == 404 and "error" in answer.json(), path
    assert [p for p in web.problems if PAGE_404 not in p] == []


async def ranked(web: Web, board: str, gpu: str, scores: dict[str, float]) -> None:
    """Ranked runs (a public run and its secret rerun, both passed) by each user with their score, made
    through the store as a worker records them."""
    store = web.api.gateway.store
    assert store is not None
    record = await store.get_leaderboard(board)
    assert record is not None
    for user, score in scores.items():
        sub = await scratch_submission(store, record, user, gpu=gpu)
        await finish_submission(store, sub, score)


async def test_a_leaderboard_opens_on_its_ranked_gpu_and_wide_scores_get_a_log_axis(
    web_no_worker: Web,
) -> None:
    web = web_no_worker
    wide = await web.api.board(("A100", "H100"))
    # A100 has no ranked run
    await ranked(web, wide, "H100", {"fast": 39.9e-6, "middle": 300e-6, "slow": 2.4e-3})
    page = await web.page()
    await page.goto(f"/leaderboards/{wide}")
    await expect(page.locator("section h2").first).to_have_text("Ranking on H100")
    await expect(page.locator("nav.tabs a[aria-current=page]")).to_have_text("H100")
    await expect(page.locator("#ranking td.name")).to_have_text(["fast", "middle", "slow"])
    await expect(page.locator("#chart")).to_have_attribute("data-scale", "log")
    await expect(page.locator("#chart-scale")).to_be_visible()
    await screenshot(page, "leaderboard-log-scale.png")
    rows = await page.locator("#chart canvas").evaluate(SERIES_ROWS)
    # 300 µs between 39.9 µs and 2.4 ms: half way up on a log axis, a tenth of the way on a linear one
    height = (rows["first"] - rows["second"]) / (rows["first"] - rows["third"])
    assert 0.35 < height < 0.65, rows

    await page.goto(f"/leaderboards/{wide}?gpu=A100")  # asked for: an empty tab still wins
    await expect(page.locator("section h2").first).to_have_text("Ranking on A100")
    await expect(page.locator("#ranking-empty")).to_be_visible()

    close = await web.api.board(("A100", "H100"))
    await ranked(web, close, "A100", {"ann": 40e-6, "bob": 50e-6})
    await ranked(web, close, "H100", {"cat": 45e-6})
    await page.goto(f"/leaderboards/{close}")
    await expect(page.locator("section h2").first).to_have_text("Ranking on A100")  # 2 ranked against 1
    await expect(page.locator("#chart")).to_have_attribute("data-scale", "linear")
    await expect(page.locator("#chart-scale")).to_be_hidden()

    tie = await web.api.board(("A100", "H100"))  # nothing ranked: the board's first GPU type
    await page.goto(f"/leaderboards/{tie}")
    await expect(page.locator("section h2").first).to_have_text("Ranking on A100")
    assert web.problems == []


# The mean row of the canvas's pixels in each of the first three users' colours (static/chart.js PALETTE):
# where each user's point is drawn.
SERIES_ROWS = """canvas => {
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  const wanted = {first: [37, 99, 235], second: [234, 88, 12], third: [22, 163, 74]};
  const sums = {first: [0, 0], second: [0, 0], third: [0, 0]};
  for (let i = 0; i < data.length; i += 4) {
    if (data[i + 3] < 200) continue;
    for (const [name, [r, g, b]] of Object.entries(wanted)) {
      if (Math.abs(data[i] - r) + Math.abs(data[i + 1] - g) + Math.abs(data[i + 2] - b) < 30) {
        sums[name][0] += Math.floor(i / 4 / canvas.width);
        sums[name][1] += 1;
      }
    }
  }
  return Object.fromEntries(Object.entries(sums).map(([name, [total, n]]) => [name, n ? total / n : null]));
}"""


HOSTILE_PROFILE = """import torch
from task import input_t, output_t


def custom_kernel(data: input_t) -> output_t:
    a, b = data
    with torch.profiler.record_function("<b onmouseover=alert(3)>mine</b>"):
        return a + b
"""


async def test_a_profile_runs_tables_reach_its_page_and_its_json_as_text(web: Web) -> None:
    board = await web.api.board(("H100",))
    token = await web.api.user_token("alice")
    async with httpx.AsyncClient(base_url=web.api.url, timeout=30) as client:
        answer = await client.post(
            "/api/submissions",
            headers={"Authorization": f"Bearer {token}"},
            files={"file": ("mine.py", HOSTILE_PROFILE)},
            data={"leaderboard": board, "gpu_type": "H100", "mode": "profile"},
        )
    assert answer.status_code == 202, answer.text
    submitted = answer.json()
    page = await web.page()
    await page.goto(submitted["page_url"])
    await expect(page.locator("#follow")).to_have_text("Finished.", timeout=RUN_MS)
    tables = page.locator("pre.profile")
    await expect(tables).to_have_count(2)
    for table in await tables.all_text_contents():
        assert "aten::add" in table and "<b onmouseover=alert(3)>mine</b>" in table, table
    assert await page.locator("main b").count() == 0  # the submission's text stayed text
    await screenshot(page, "submission-profile.png")

    run = await _json(web, f"/api/runs/{submitted['public_run_id']}")
    assert run["mode"] == "profile" and run["passed"] is True and run["benchmarks"] == []
    assert [item["report"] for item in run["profile"]] == await tables.all_text_contents()
    assert web.problems == []
