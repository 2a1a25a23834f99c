"""The bot's messages, without Discord: a submission's embed as its events arrive, and hostile strings
(names, file names, error messages from user code) that must stay inert and within Discord's limits."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import discord

from bot.embeds import code, submission_embed, text
from bot.errors import NotAdminError, user_message
from bot.progress import SubmissionStatus
from gateway.core.errors import RefusedError, SubmissionError
from gateway.service.facade import RunEvent, RunRecord
from gateway.service.model import QueuedRun, Submission
from gateway.service.runview import HIDDEN_ERROR, run_view

PUBLIC, SECRET = "11111111-0000-0000-0000-000000000000", "22222222-0000-0000-0000-000000000000"
NOW = datetime(2026, 11, 23, tzinfo=UTC)


def status(user: str = "alice", file_name: str = "k.py") -> SubmissionStatus:
    submission = Submission(
        7, "vectoradd", [QueuedRun(PUBLIC, "H100", False), QueuedRun(SECRET, "H100", True)]
    )
    return SubmissionStatus.of(submission, user, file_name, "leaderboard")


def event(
    run: str, kind: str, state: str, message: str, n: int = 1, data: dict[str, str] | None = None
) -> RunEvent:
    return RunEvent(n, run, NOW, kind, state, message, data)


def shown(embed: discord.Embed) -> str:
    fields = [f"{f.name}: {f.value}" for f in embed.fields]
    return "\n".join([embed.title or "", embed.description or "", *fields, embed.footer.text or ""])


def record(
    run_id: str, *, passed: bool, error: str | None = None, result: Any = None, secret: bool = False
) -> RunRecord:
    return RunRecord(
        run_id, 7, "alice", "k.py", "vectoradd", "leaderboard", secret, "H100", "alpha", "h100", "12", 1,
        "COMPLETED" if passed else "FAILED", passed, 1.5e-5 if passed else None, error, result, NOW, NOW, NOW,
        "w", 1, passed,
    )  # fmt: skip


def test_the_embed_follows_a_run_from_the_queue_to_its_result() -> None:
    s = status()
    s.queue_position = 3
    assert "⏳ queued: #3 in line" in shown(submission_embed(s))
    where = {
        "site": "alpha",
        "partition": "h100",
        "gpu_type": "H100",
        "backend": "slurm",
        "why": "the only one",
    }
    s.apply(
        event(PUBLIC, "state", "QUEUED", "routed to elsewhere/x (H100): the text is for people", data=where)
    )
    assert "handing it to the site" in shown(submission_embed(s)) and "alpha/h100" in shown(
        submission_embed(s)
    )
    s.apply(event(PUBLIC, "state", "PENDING", "PENDING (Resources: waiting for a free GPU)"))
    embed = submission_embed(s)
    assert "pending on the cluster" in shown(embed) and "Resources: waiting for a free GPU" in shown(embed)
    assert embed.colour == discord.Colour(0xF1C40F)
    s.apply(event(PUBLIC, "state", "RUNNING", "RUNNING"))
    for n in range(10):
        s.apply(event(PUBLIC, "progress", "RUNNING", f"test {n} passed"))
    progress = shown(submission_embed(s))
    assert "🏃 running" in progress and "test 9 passed" in progress and "test 3 passed" not in progress
    s.apply(event(PUBLIC, "finished", "COMPLETED", "passed"))
    s.runs[PUBLIC].view = run_view(record(PUBLIC, passed=True))
    s.apply(event(SECRET, "finished", "FAILED", "failed"))
    s.runs[SECRET].view = run_view(
        record(SECRET, passed=False, error="wrong answer on hidden input", secret=True)
    )
    final = shown(submission_embed(s))
    assert "✅ passed" in final and "Score: **15.000 µs**" in final
    # a secret rerun's error may quote its hidden inputs: the bot shows only that it failed, as the API does
    assert f"Secret rerun (hidden inputs): failed: {HIDDEN_ERROR}" in final, final
    assert "wrong answer on hidden input" not in final
    assert "not ranked: the secret rerun did not pass" in final and "Progress" not in final


def test_hostile_strings_stay_inert() -> None:
    role, user = "<@&123456789012345678>", "<@123456789012345678>"
    s = status(user=f"@everyone **boss** {role}", file_name=f"`x`{user}.py")
    s.apply(event(PUBLIC, "state", "PENDING", "PENDING (@here ||spoiler|| \x1b[31mred)"))
    embed = shown(submission_embed(s))
    assert (
        "@everyone" not in embed and "@here" not in embed and "<@&123>" not in embed and "<@1>" not in embed
    )
    assert "\\*\\*boss\\*\\*" in embed and "\x1b" not in embed
    block = code(["Traceback", "```", "@everyone escaped the block?"])
    assert block.startswith("```\n") and block.endswith("\n```") and block.count("```") == 2
    assert text("a" * 500, 100) == "a" * 99 + "…"


def test_long_results_fit_discords_limits() -> None:
    s = status()
    tests = [{"spec": f"size: {n}; seed: {n}", "passed": False, "error": "x" * 300} for n in range(200)]
    s.apply(event(PUBLIC, "finished", "FAILED", "failed"))
    s.runs[PUBLIC].view = run_view(record(PUBLIC, passed=False, error="y" * 5000, result=None))
    for n in range(200):
        s.apply(event(PUBLIC, "progress", "RUNNING", "z" * 900 + str(n)))
    embed = submission_embed(s)
    assert all(len(f.value or "") <= 1024 for f in embed.fields) and len(embed) <= 6000, len(embed)
    assert tests  # the record's result stays None: a failure before any result shows its error only
    assert "Why it failed" in shown(embed)


def test_user_messages_say_what_to_fix_and_hide_the_rest() -> None:
    assert user_message(SubmissionError("k.txt is not a py source file")) == "⚠️ k.txt is not a py source file"
    assert user_message(RefusedError("rate limited: try again in 5 min", "rate_limited")).startswith(
        "⛔ rate limited"
    )
    assert "admins" in user_message(NotAdminError())
    hidden = user_message(KeyError("db password=hunter2"))
    assert "hunter2" not in hidden and "reference `" in hidden
