"""Discord embeds for everything the bot shows. Pure functions of the service's records and run views
(gateway/service/runview.py), so they are tested without Discord.

Every string a user or their code chose (names, file names, test specs, error messages) goes through
``text`` (markdown and mentions escaped, control characters dropped) or ``code`` (inside a code block,
where only a fence could break out), and is cut to what Discord accepts."""

from __future__ import annotations

import io
from collections.abc import Iterable
from datetime import UTC, datetime

import discord

from bot.progress import RunProgress, SubmissionStatus
from gateway.config.sites import SiteConfig
from gateway.config.tasks import TaskDefinition
from gateway.core.formatting import duration, format_seconds
from gateway.core.validation import printable
from gateway.service.competition_sync import SyncReport
from gateway.service.competitions import is_final
from gateway.service.facade import (
    GatewayStats,
    LeaderboardSummary,
    LeaderboardView,
    RankedEntry,
    RunRecord,
    SiteHealth,
)
from gateway.service.runview import RunView

FIELD_LIMIT = 1024  # characters in an embed field's value
DESCRIPTION_LIMIT = 4096
PROFILE_FIELD = "Profile (torch.profiler, in the submission's process)"
GREY, AMBER, BLUE, GREEN, RED = 0x95A5A6, 0xF1C40F, 0x3498DB, 0x2ECC71, 0xE74C3C


def clean(value: object) -> str:
    return "".join(c for c in str(value) if printable(c) or c in "\n\t")


def text(value: object, limit: int = 200) -> str:
    """A user's string for markdown: escaped, mentions defused, at most ``limit`` characters."""
    cut = clean(value)
    cut = cut if len(cut) <= limit else cut[: limit - 1] + "…"
    return discord.utils.escape_mentions(discord.utils.escape_markdown(cut))


def code(lines: Iterable[str], limit: int = FIELD_LIMIT) -> str:
    """Lines in a code block within ``limit`` characters (the last lines kept: they matter most)."""
    body = clean("\n".join(lines)).replace("```", "`\u200b``")
    room = limit - 8
    if len(body) > room:
        body = "…" + body[-(room - 1) :]
    return f"```\n{body}\n```"


def _state_line(run: RunProgress, position: int | None) -> tuple[str, int]:
    if run.finished:
        return ("✅ passed" if run.passed else "❌ failed"), (GREEN if run.passed else RED)
    if run.state == "QUEUED" and not run.routed:
        where = f": #{position} in line" if position else ""
        return f"⏳ queued{where}", GREY
    if run.state == "QUEUED":
        return "📨 handing it to the site", GREY
    if run.state in ("PENDING", "CONFIGURING", "REQUEUED"):
        return "⏸️ pending on the cluster", AMBER
    if run.state == "RUNNING" or run.state == "COMPLETING":
        return "🏃 running", BLUE
    return f"… {run.state.lower()}", AMBER


def submission_embed(status: SubmissionStatus) -> discord.Embed:
    """The one message a submission's runs edit as they go: queued, pending, running, results, rank."""
    public = status.public
    line, colour = _state_line(public, status.queue_position)
    board = f"**{text(status.leaderboard)}**" if status.leaderboard else "no leaderboard"
    embed = discord.Embed(
        title=f"{status.mode} · {text(status.file_name, 100)}",
        description=f"{line}\n{board} · {text(public.gpu_type, 50)} · by {text(status.user, 100)}",
        colour=colour,
    )
    if public.where:
        embed.add_field(name="Site", value=text(public.where, 200), inline=True)
    if public.detail and not public.finished:
        embed.add_field(name="Status", value=text(public.detail, 500), inline=False)
    if public.progress and not public.finished:
        embed.add_field(name="Progress", value=code(public.progress), inline=False)
    if public.view is not None:
        _add_results(embed, public.view)
    secret = status.secret
    if secret is not None:
        embed.add_field(name="Secret rerun (hidden inputs)", value=_secret_line(secret), inline=True)
    if status.standing is not None:
        s = status.standing
        embed.add_field(
            name="Rank",
            value=f"**#{s.rank}** of {s.total} on {text(public.gpu_type, 50)} (your best: "
            f"{format_seconds(s.score)})",
            inline=True,
        )
    elif status.done and status.mode == "leaderboard" and public.passed and secret is not None:
        embed.add_field(name="Rank", value="not ranked: the secret rerun did not pass", inline=True)
    embed.set_footer(text=f"submission {status.submission_id} · run {public.run_id[:8]}")
    return embed


def _secret_line(run: RunProgress) -> str:
    if not run.finished:
        return "waiting" if run.state == "QUEUED" else "running"
    return "passed" if run.passed else f"failed: {text(run.error or '', 300)}"


def _add_results(embed: discord.Embed, view: RunView) -> None:
    if view.tests:
        lines = [
            f"{'✔' if t.passed else '✘'} {t.spec}" + (f"  {t.error}" if t.error else "") for t in view.tests
        ]
        passed = sum(t.passed for t in view.tests)
        embed.add_field(name=f"Tests: {passed}/{len(view.tests)} passed", value=code(lines), inline=False)
    if view.benchmarks:
        lines = [
            f"{b.spec}: mean {format_seconds(b.mean_s)}, best {format_seconds(b.best_s)} ({b.runs} runs)"
            if b.mean_s is not None and b.best_s is not None
            else f"✘ {b.spec}: {b.error}"
            for b in view.benchmarks
        ]
        embed.add_field(name="Benchmarks", value=code(lines), inline=False)
    if view.profiles:
        body = profile_text(view)
        if len(code([body], FIELD_LIMIT * 4)) <= FIELD_LIMIT:  # short enough to show whole
            embed.add_field(name=PROFILE_FIELD, value=code([body]), inline=False)
        else:
            embed.add_field(
                name=PROFILE_FIELD,
                value=f"attached as {profile_file_name(view)} ({len(body)} characters)",
                inline=False,
            )
    if view.score is not None:
        embed.add_field(name="Score", value=f"**{format_seconds(view.score)}**", inline=True)
    if view.passed is False:
        error = view.error or view.failure_message or "no result"
        embed.add_field(name="Why it failed", value=code([error], 700), inline=False)
    if view.system:
        system = view.system
        device = system.get("gpu") or system.get("cpu") or system.get("device", "?")
        ran = f"{device}, torch {system.get('torch') or '?'} on {system.get('hostname', '?')}"
        embed.add_field(name="Ran on", value=text(ran, 300), inline=False)


def profile_text(view: RunView) -> str:
    """Profile mode's tables as one text, each under the benchmark it profiled; the submission's process made
    them, so control characters are dropped (``clean``). A secret rerun's view has none."""
    return "\n\n".join(clean(f"benchmark {p.spec}\n{p.report.rstrip()}") for p in view.profiles)


def profile_file_name(view: RunView) -> str:
    return f"profile-{view.run_id[:8]}.txt"


def profile_attachment(view: RunView | None) -> discord.File | None:
    """The profiler's tables as a text file, for a run whose tables do not fit in its embed (Discord's
    limits); None when there are none or they are shown inline."""
    if view is None:
        return None
    body = profile_text(view)
    if not body or len(code([body], FIELD_LIMIT * 4)) <= FIELD_LIMIT:
        return None
    return discord.File(io.BytesIO(body.encode()), filename=profile_file_name(view))


def leaderboards_embed(boards: list[LeaderboardSummary], now: datetime | None = None) -> discord.Embed:
    embed = discord.Embed(title="Leaderboards", colour=BLUE)
    if not boards:
        embed.description = "No leaderboards yet."
    now = now or datetime.now(UTC)
    boards = sorted(
        boards, key=lambda b: (b.deadline is not None and b.deadline <= now, b.name)
    )  # open first
    for board in boards[:25]:
        closes = _deadline(board.deadline, now)
        embed.add_field(
            name=text(board.name, 100),
            value=f"{text(board.description.splitlines()[0] if board.description else '', 150)}\n"
            f"GPUs: {text(', '.join(board.gpu_types), 200)} · {closes} · {board.submissions} submissions",
            inline=False,
        )
    if len(boards) > 25:
        embed.set_footer(text=f"and {len(boards) - 25} more")
    return embed


def _deadline(deadline: datetime | None, now: datetime | None = None) -> str:
    if deadline is None:
        return "open"
    if deadline <= (now or datetime.now(UTC)):
        return "closed"
    return f"closes {discord.utils.format_dt(deadline, 'R')}"


def ranking_lines(entries: list[RankedEntry], highlight: str | None = None) -> str:
    if not entries:
        return "no ranked runs yet"
    lines = []
    for entry in entries:
        mark = "**" if entry.user_name == highlight else ""
        lines.append(
            f"{mark}#{entry.rank} {text(entry.user_name, 60)} · {format_seconds(entry.score)}{mark}"
            f" · {text(entry.file_name, 40)}"
        )
    joined = "\n".join(lines)
    return joined if len(joined) <= FIELD_LIMIT else joined[: FIELD_LIMIT - 1] + "…"


def leaderboard_embed(view: LeaderboardView) -> discord.Embed:
    board = view.board
    embed = discord.Embed(
        title=f"{text(board.name, 200)}",
        description=f"ranked by {board.ranking_by} of the benchmark means, lower is better · "
        f"{_deadline(board.deadline)}{': the ranking is final' if is_final(board.deadline) else ''}",
        colour=BLUE,
    )
    for gpu, entries in list(view.ranking.items())[:25]:
        embed.add_field(name=text(gpu, 100), value=ranking_lines(entries), inline=False)
    if view.limits:
        limits = ", ".join(
            f"{lim.max_submissions} {lim.mode} per {duration(lim.per_seconds)}" for lim in view.limits
        )
        embed.set_footer(text=f"limits per user: {limits}")
    return embed


def personal_embed(board: str, user: str, runs: list[RunRecord]) -> discord.Embed:
    embed = discord.Embed(title=f"Your runs on {text(board, 200)}", colour=BLUE)
    if not runs:
        embed.description = "You have no runs here yet: try `/leaderboard submit`."
        return embed
    lines = []
    for run in runs[:20]:
        verdict = "…" if run.finished_at is None else ("✅" if run.passed else "❌")
        score = (  # a secret rerun shows only whether it passed, as everywhere
            format_seconds(run.score)
            if run.score is not None and not run.secret
            else (run.state.lower() if not run.passed else "")
        )
        secret = " (secret rerun)" if run.secret else ""
        lines.append(
            f"{verdict} {discord.utils.format_dt(run.queued_at, 'd')} {run.mode}{secret} · "
            f"{text(run.gpu_type or '-', 30)} · {text(run.file_name, 40)} · {score} · `{run.run_id[:8]}`"
        )
    embed.description = "\n".join(lines)[:DESCRIPTION_LIMIT]
    embed.set_footer(text=f"runs of {clean(user)[:100]}, newest first")
    return embed


def submissions_embed(user: str, submissions: list[list[RunRecord]]) -> discord.Embed:
    """One's own submissions, newest first, each by its public run, with the id to download or delete it
    by."""
    embed = discord.Embed(title="Your submissions", colour=BLUE)
    if not submissions:
        embed.description = "You have no submissions: try `/leaderboard submit`."
        return embed
    lines = []
    for runs in submissions:
        run = runs[0]
        verdict = "…" if run.finished_at is None else ("✅" if all(r.passed for r in runs) else "❌")
        score = format_seconds(run.score) if run.score is not None else run.state.lower()
        ranked = " · ranked" if run.ranked else " · late: not ranked" if run.late else ""
        lines.append(
            f"{verdict} {discord.utils.format_dt(run.queued_at, 'd')} {text(run.leaderboard or '-', 40)} · "
            f"{text(run.file_name, 40)} · {score}{ranked} · `{run.public_id}`"
        )
    embed.description = "\n".join(lines)[:DESCRIPTION_LIMIT]
    embed.set_footer(text=f"{clean(user)[:100]}: /leaderboard download or delete by the id")
    return embed


def task_embed(board: str, task: TaskDefinition) -> discord.Embed:
    embed = discord.Embed(
        title=f"Task of {text(board, 200)}",
        description=text(task.description or "(no description)", 3000),
        colour=BLUE,
    )
    embed.add_field(name="Tests", value=str(len(task.tests)), inline=True)
    embed.add_field(name="Benchmarks", value=str(len(task.benchmarks)), inline=True)
    embed.add_field(name="Ranked by", value=task.ranking_by, inline=True)
    starter = task.starter
    embed.add_field(
        name="Starter file",
        value=f"attached ({text(starter[0], 50)}): fill it in and use `/leaderboard submit`"
        if starter
        else "this task has no template; submit a file named like the task's submission",
        inline=False,
    )
    return embed


def sites_embed(sites: dict[str, SiteConfig], health: dict[str, SiteHealth]) -> discord.Embed:
    embed = discord.Embed(title="Sites", colour=BLUE)
    for name, site in list(sites.items())[:25]:
        h = health.get(name)
        state = "drained" if h and h.drained else ("failing" if h and h.consecutive_failures else "ok")
        lines = [f"{state} · {site.kind} · GPUs: {text(', '.join(site.gpu_types()) or '-', 200)}"]
        if h and h.drained:
            lines.append(f"drained: {text(h.drain_reason or 'no reason given', 200)}")
        if h and h.consecutive_failures:
            lines.append(f"{h.consecutive_failures} failures in a row, last: {text(h.last_error or '', 300)}")
        embed.add_field(name=text(name, 100), value="\n".join(lines), inline=False)
    if not sites:
        embed.description = "No Slurm sites are configured."
    return embed


def stats_embed(stats: GatewayStats) -> discord.Embed:
    window = duration(stats.window_s)
    embed = discord.Embed(title="Gateway stats", colour=BLUE)
    embed.add_field(
        name="Totals",
        value=f"{stats.users} users · {stats.leaderboards} leaderboards · {stats.submissions} submissions · "
        f"{stats.runs} runs ({stats.recent_runs} in the last {window})",
        inline=False,
    )
    unfinished = ", ".join(f"{state.lower()} {n}" for state, n in stats.unfinished.items()) or "none"
    embed.add_field(name="Unfinished runs", value=unfinished, inline=False)
    for site in stats.sites[:20]:
        wait = format_seconds(site.median_wait_s) if site.median_wait_s is not None else "-"
        total = format_seconds(site.median_total_s) if site.median_total_s is not None else "-"
        embed.add_field(
            name=text(site.site, 100),
            value=f"{site.runs} runs in the last {window}, {site.failed} failed · median wait {wait}, "
            f"median end to end {total}",
            inline=False,
        )
    return embed


def sync_embed(report: SyncReport) -> discord.Embed:
    """A competition sync: its outcome, then each leaderboard's change and notes (the last lines kept
    when they do not all fit)."""
    lines = [f"competition {name} ({file})" for name, file in report.competitions]
    for change in report.changes:
        lines.append(change.summary(report.dry_run))
        lines += [f"  note: {note}" for note in change.notes]
    colour = GREY if report.dry_run or not report.changed else GREEN
    embed = discord.Embed(title="Competition sync", colour=colour)
    headline = text(report.headline(), 400)
    embed.description = f"{headline}\n{code(lines, DESCRIPTION_LIMIT - len(headline) - 1)}"
    return embed
