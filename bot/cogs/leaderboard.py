"""/leaderboard: submit a kernel and watch it run; list, show and read leaderboards and their tasks; list,
download and delete one's own submissions (and, after a revealing board's end, download anyone's ranked
one)."""

from __future__ import annotations

import io
from collections.abc import Callable, Coroutine
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.cogs.autocomplete import gpu_types, leaderboard_names, site_names
from bot.embeds import (
    leaderboard_embed,
    leaderboards_embed,
    personal_embed,
    submission_embed,
    submissions_embed,
    task_embed,
)
from bot.identity import caller_of, reader_of
from bot.live import SubmissionFollower, SubmissionMessage
from bot.progress import SubmissionStatus
from bot.replies import answer_in_time, reply
from bot.settings import BotSettings
from gateway.core.errors import NotFoundError, UserError
from gateway.core.modes import Mode, modes_help
from gateway.service.competitions import deleted_text
from gateway.service.facade import Caller, Gateway
from gateway.service.intake import check_upload_name, take_upload
from gateway.service.model import Submission, SubmitRequest

# runs a submission's follower in the background once the command has answered (GatewayBot.follow)
Follow = Callable[[Coroutine[Any, Any, Any]], object]


class LeaderboardCog(commands.GroupCog, group_name="leaderboard", group_description="Kernel leaderboards"):
    def __init__(self, gateway: Gateway, settings: BotSettings, follow: Follow) -> None:
        self.gateway = gateway
        self.settings = settings
        self.follow = follow
        super().__init__()

    @app_commands.command(description="Submit a kernel: its message follows the run to its result and rank")
    @app_commands.describe(
        file="your submission (a source file for the task)",
        leaderboard="the leaderboard to submit to",
        gpu="the GPU type to run on (default: the leaderboard's only one)",
        mode=modes_help(),
        site="a site by name (admins only; default: routed by the GPU type)",
    )
    @app_commands.autocomplete(leaderboard=leaderboard_names, gpu=gpu_types, site=site_names)
    async def submit(
        self,
        interaction: discord.Interaction,
        file: discord.Attachment,
        leaderboard: str,
        gpu: str | None = None,
        mode: Mode = "leaderboard",
        site: str | None = None,
    ) -> None:
        caller = await caller_of(interaction, self.gateway, self.settings)
        submission = await answer_in_time(
            interaction, self._enqueue(file, leaderboard, gpu, mode, site, caller), ephemeral=False
        )
        status = SubmissionStatus.of(submission, interaction.user.name, file.filename, mode)
        status.queue_position = await self.gateway.queue_position(submission.public_run.run_id)
        await reply(interaction, embed=submission_embed(status), ephemeral=False)
        settings = self.settings
        follower = SubmissionFollower(
            self.gateway,
            status,
            SubmissionMessage(interaction),
            caller=caller,
            edit_interval_s=settings.edit_interval_s,
            position_interval_s=settings.position_interval_s,
        )
        self.follow(follower.run())

    async def _enqueue(
        self,
        file: discord.Attachment,
        leaderboard: str,
        gpu: str | None,
        mode: str,
        site: str | None,
        caller: Caller,
    ) -> Submission:
        limit = self.gateway.settings.max_submission_bytes
        task = await self.gateway.boards.task_of(leaderboard, caller=caller)
        check_upload_name(file.filename, file.size, task.lang, limit)  # before downloading anything
        # the one intake of every front end (gateway/service/intake.py)
        upload = take_upload(await file.read(), file.filename, max_bytes=limit, lang=task.lang, mode=mode)
        return await self.gateway.enqueue(
            SubmitRequest(
                code=upload.code,
                file_name=upload.file_name,
                user=caller.account or "",
                leaderboard=leaderboard,
                site=site,
                gpu_type=gpu,  # None: the board's only GPU type (gateway.service.intake.gpu_for_board)
                mode=upload.mode,
                admin=caller.admin,
            )
        )

    @app_commands.command(name="list", description="The open leaderboards")
    async def list_(self, interaction: discord.Interaction) -> None:
        boards = await self.gateway.boards.leaderboards(caller=reader_of(interaction, self.settings))
        await interaction.response.send_message(embed=leaderboards_embed(boards))

    @app_commands.command(description="A leaderboard's top entries per GPU type")
    @app_commands.describe(leaderboard="the leaderboard", gpu="only this GPU type", top="how many entries")
    @app_commands.autocomplete(leaderboard=leaderboard_names, gpu=gpu_types)
    async def show(
        self,
        interaction: discord.Interaction,
        leaderboard: str,
        gpu: str | None = None,
        top: app_commands.Range[int, 1, 25] = 10,
    ) -> None:
        reader = reader_of(interaction, self.settings)
        view = await self.gateway.boards.leaderboard(leaderboard, recent=0, top=top, gpu=gpu, caller=reader)
        await interaction.response.send_message(embed=leaderboard_embed(view))

    @app_commands.command(name="show-personal", description="Your own runs on a leaderboard")
    @app_commands.autocomplete(leaderboard=leaderboard_names)
    async def show_personal(self, interaction: discord.Interaction, leaderboard: str) -> None:
        caller = await caller_of(interaction, self.gateway, self.settings)
        runs = await self.gateway.boards.history(leaderboard, caller.account or "", caller=caller)
        embed = personal_embed(leaderboard, interaction.user.name, runs)
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @app_commands.command(description="Your submissions, newest first, with the ids to download or delete")
    async def submissions(self, interaction: discord.Interaction) -> None:
        caller = await caller_of(interaction, self.gateway, self.settings)
        mine = await self.gateway.own_submissions(caller.account or "", limit=20, caller=caller)
        embed = submissions_embed(interaction.user.name, mine)
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @app_commands.command(description="Download a submission's code: yours, or a revealed one after the end")
    @app_commands.describe(submission="the submission's id (see /leaderboard submissions)")
    async def download(self, interaction: discord.Interaction, submission: str) -> None:
        caller = await caller_of(interaction, self.gateway, self.settings)
        found = await self.gateway.competitions.code(submission, caller=caller)
        await interaction.response.send_message(
            f"{discord.utils.escape_markdown(found.file_name)} of submission `{found.public_id}`:",
            file=_template_file(found.file_name, found.code),
            ephemeral=True,
        )

    @app_commands.command(description="Delete one of your submissions: its runs leave the ranking")
    @app_commands.describe(submission="the submission's id (see /leaderboard submissions)")
    async def delete(self, interaction: discord.Interaction, submission: str) -> None:
        caller = await caller_of(interaction, self.gateway, self.settings)
        done = await self.gateway.competitions.delete(submission, caller=caller)
        await interaction.response.send_message(deleted_text(done), ephemeral=True)

    @app_commands.command(
        description="Your API token for the web API and `gateway login` (replaces the old one)"
    )
    async def token(self, interaction: discord.Interaction) -> None:
        caller = await caller_of(interaction, self.gateway, self.settings)
        made = await self.gateway.accounts.create_token(caller.account or "", caller=caller)
        await interaction.response.send_message(
            "Your API token, shown once and only to you (it replaces any earlier one; "
            "`/leaderboard revoke-token` revokes it):\n"
            f"```\n{made}\n```\n"
            "Use it with `gateway login <gateway URL>`, or send it as `Authorization: Bearer <token>`.",
            ephemeral=True,
        )

    @app_commands.command(name="revoke-token", description="Revoke your API token")
    async def revoke_token(self, interaction: discord.Interaction) -> None:
        caller = await caller_of(interaction, self.gateway, self.settings)
        try:
            revoked = await self.gateway.accounts.revoke_token(caller.account or "", caller=caller)
        except NotFoundError:  # never submitted nor made a token
            revoked = False
        await interaction.response.send_message(
            "Your API token is revoked." if revoked else "You have no API token.", ephemeral=True
        )

    @app_commands.command(description="A leaderboard's task: its description and the starter file")
    @app_commands.autocomplete(leaderboard=leaderboard_names)
    async def task(self, interaction: discord.Interaction, leaderboard: str) -> None:
        task = await self.gateway.boards.task_of(leaderboard, caller=reader_of(interaction, self.settings))
        files = [_template_file(task.submission_name, task.starter[1])] if task.starter else []
        await interaction.response.send_message(embed=task_embed(leaderboard, task), files=files)

    @app_commands.command(description="The starter file of a leaderboard's task, to fill in and submit")
    @app_commands.describe(language="the template's language (default: the first the task offers)")
    @app_commands.autocomplete(leaderboard=leaderboard_names)
    async def template(
        self, interaction: discord.Interaction, leaderboard: str, language: str | None = None
    ) -> None:
        task = await self.gateway.boards.task_of(leaderboard, caller=reader_of(interaction, self.settings))
        if not task.templates:
            raise UserError(f"the task of {leaderboard} has no template; see /leaderboard task")
        if language is None:
            language = next(iter(task.templates))
        if language not in task.templates:
            raise UserError(f"no {language!r} template; the task offers {', '.join(task.templates)}")
        await interaction.response.send_message(
            f"{language} template for {discord.utils.escape_markdown(leaderboard)}:",
            file=_template_file(task.submission_name, task.templates[language]),
        )


def _template_file(name: str, content: str) -> discord.File:
    return discord.File(io.BytesIO(content.encode()), filename=name)
