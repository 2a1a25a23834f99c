"""`gateway demo`: every example solution through a real site, concurrently, then the leaderboards."""

from __future__ import annotations

import asyncio
from pathlib import Path

from rich.console import Console

from gateway.cli.output import print_leaderboard
from gateway.config.tasks import load_task
from gateway.core.errors import UserError
from gateway.core.formatting import format_seconds
from gateway.service.facade import OPERATOR, Gateway, RunReport
from gateway.service.model import SubmitRequest

# problem -> (site, GPU type); solution -> the demo user who submits it
DEMO_ROUTES = {"vectoradd": ("alpha", "H100"), "softmax": ("beta", "A100")}
DEMO_USERS = {"correct.py": "ada", "slow.py": "bob", "wrong.py": "eve"}


async def run_demo(gateway: Gateway, problems_dir: Path, console: Console) -> bool:
    if gateway.store is None:
        raise UserError("the demo records into the database: start the dev stack (`make up`) first")
    requests: list[SubmitRequest] = []
    for problem, (site, gpu) in DEMO_ROUTES.items():
        task = load_task(problems_dir / problem)
        for solution, user in DEMO_USERS.items():
            path = problems_dir / problem / "solutions" / solution
            requests.append(
                SubmitRequest(
                    code=path.read_text(encoding="utf-8"),
                    file_name=solution,
                    user=user,
                    task=task,
                    site=site,
                    gpu_type=gpu,
                    mode="leaderboard",
                    admin=True,  # the demo names its sites: the operator's right
                )
            )

    async def show(run_id: str, message: str) -> None:
        console.print(f"[dim]{run_id[:8]}[/] {message}", highlight=False)

    console.print(f"submitting {len(requests)} runs to {', '.join(s for s, _ in DEMO_ROUTES.values())} ...")
    reports = await asyncio.gather(*(gateway.submit(r, on_event=show) for r in requests))
    for report in reports:
        verdict = (
            f"passed, score {format_seconds(report.score)}" if report.passed else f"failed: {report.error}"
        )
        console.print(
            f"{report.leaderboard}: {report.user} {report.file_name} on {report.site} "
            f"job {report.job_id}: {verdict}",
            highlight=False,
        )
    ok = True
    for problem in DEMO_ROUTES:
        view = await gateway.boards.leaderboard(problem, caller=OPERATOR)
        print_leaderboard(console, view)
        ok &= _expected(problem, [r for r in reports if r.leaderboard == problem], console)
    return ok


def _expected(problem: str, reports: list[RunReport], console: Console) -> bool:
    """The demo's own check: correct beats slow, and wrong fails."""
    by_file = {r.file_name: r for r in reports}
    correct, slow, wrong = by_file["correct.py"], by_file["slow.py"], by_file["wrong.py"]
    problems = []
    if not (correct.passed and slow.passed):
        problems.append("a correct solution did not pass")
    elif (correct.score or 0) >= (slow.score or 0):
        problems.append("the slow solution did not score worse than the fast one")
    if wrong.passed:
        problems.append("the wrong solution passed")
    for line in problems:
        console.print(f"[red]{problem}: {line}[/]")
    return not problems
