"""/admin: leaderboards, bans, sites, runs and stats, for members of a configured guild holding a
configured admin role id (bot.identity).

The check runs on every /admin command (``interaction_check``), the service checks the caller again, and
the autocompletes offer nothing to others; the commands are also hidden from members without Manage
Server by default, which a server's admins may change in its integration settings, never loosening the
check."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.cogs.autocomplete import leaderboard_names, site_names, task_directories
from bot.embeds import sites_embed, stats_embed, sync_embed, text
from bot.errors import NotAdminError
from bot.identity import caller_of, is_admin
from bot.replies import answer_in_time, reply
from bot.settings import BotSettings
from gateway.config.task_archive import check_archive
from gateway.config.tasks import TaskDefinition
from gateway.core.errors import UserError
from gateway.core.formatting import parse_deadline
from gateway.service.facade import Caller, Gateway


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class AdminCog(commands.GroupCog, group_name="admin", group_description="Gateway administration"):
    def __init__(self, gateway: Gateway, settings: BotSettings) -> None:
        self.gateway = gateway
        self.settings = settings
        super().__init__()

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if not is_admin(interaction, self.settings):
            raise NotAdminError()
        return True

    async def _caller(self, interaction: discord.Interaction) -> Caller:
        return await caller_of(interaction, self.gateway, self.settings)

    @app_commands.command(
        description="Create a leaderboard from a task directory or an uploaded task archive"
    )
    @app_commands.describe(
        name="the new leaderboard's name",
        task="a task directory on the gateway",
        archive="or a task directory as .zip / .tar.gz",
        gpus="GPU types to rank, comma-separated (default: every type a site offers)",
        deadline="when it closes, ISO 8601 (e.g. 2026-12-31T23:59Z)",
    )
    @app_commands.autocomplete(task=task_directories)
    async def create(
        self,
        interaction: discord.Interaction,
        name: str,
        task: str | None = None,
        archive: discord.Attachment | None = None,
        gpus: str | None = None,
        deadline: str | None = None,
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        if (task is None) == (archive is None):
            raise UserError("give either task (a task directory) or archive (an uploaded task), not both")
        closes = parse_deadline(deadline) if deadline else None
        definition = await self._task(task, archive)
        gpu_types = [g.strip() for g in gpus.split(",") if g.strip()] if gpus else None
        caller = await self._caller(interaction)
        board = await self.gateway.boards.create_leaderboard(
            name,
            definition,
            gpu_types,
            deadline=closes,
            creator=caller.account,
            exist_ok=False,
            caller=caller,
        )
        await interaction.edit_original_response(
            content=f"✅ leaderboard **{text(board.name)}** created: task {text(definition.name)}, "
            f"GPUs {text(', '.join(board.gpu_types))}, {len(definition.tests)} tests, "
            f"{len(definition.benchmarks)} benchmarks"
        )

    async def _task(self, task: str | None, archive: discord.Attachment | None) -> TaskDefinition:
        if task is not None:
            return await self.gateway.boards.load_task_directory(task)
        assert archive is not None
        check_archive(archive.filename, archive.size)  # before downloading it
        return await self.gateway.boards.load_task_archive(await archive.read(), archive.filename)

    @app_commands.command(
        name="problems-sync",
        description="Create or update the leaderboards of a reference-kernels checkout's competitions",
    )
    @app_commands.describe(
        archive="the checkout as .zip / .tar.gz (git archive -o problems.tar.gz HEAD)",
        competition="only this competition file in problems/ (e.g. amd for amd.yaml)",
        dry_run="say what would change; write nothing",
    )
    async def problems_sync(
        self,
        interaction: discord.Interaction,
        archive: discord.Attachment,
        competition: str | None = None,
        dry_run: bool = False,
    ) -> None:
        # an upload, not a path on the bot's host: an admin's command then reads only what they sent
        await interaction.response.defer(ephemeral=True, thinking=True)
        check_archive(archive.filename, archive.size)  # before downloading it
        report = await self.gateway.competition_sync.sync_archive(
            await archive.read(),
            archive.filename,
            competition=competition,
            dry_run=dry_run,
            caller=await self._caller(interaction),
        )
        await interaction.edit_original_response(embed=sync_embed(report))

    @app_commands.command(description="Delete a leaderboard with its submissions and runs")
    @app_commands.describe(confirm="type the leaderboard's name again")
    @app_commands.autocomplete(name=leaderboard_names)
    async def delete(self, interaction: discord.Interaction, name: str, confirm: str) -> None:
        if confirm != name:
            raise UserError("nothing deleted: confirm must repeat the leaderboard's name exactly")
        submissions, runs = await self.gateway.boards.delete_leaderboard(
            name, caller=await self._caller(interaction)
        )
        await interaction.response.send_message(
            f"🗑️ deleted {text(name)}: {submissions} submissions, {runs} runs", ephemeral=True
        )

    @app_commands.command(description="Close a leaderboard at a time (or 'none' to keep it open)")
    @app_commands.describe(when="ISO 8601 such as 2026-12-31T23:59Z, or none")
    @app_commands.autocomplete(name=leaderboard_names)
    async def deadline(self, interaction: discord.Interaction, name: str, when: str) -> None:
        closes = None if when.strip().lower() == "none" else parse_deadline(when)
        board = await self.gateway.boards.set_deadline(name, closes, caller=await self._caller(interaction))
        shown = discord.utils.format_dt(board.deadline, "F") if board.deadline else "never"
        await interaction.response.send_message(f"⏰ {text(board.name)} closes: {shown}", ephemeral=True)

    @app_commands.command(description="Ban a user from submitting")
    async def ban(self, interaction: discord.Interaction, user: discord.User) -> None:
        account = await self.gateway.accounts.discord_user(
            user.id, user.name
        )  # by id: a rename keeps the ban
        changed = await self.gateway.boards.set_banned(
            account.name, True, caller=await self._caller(interaction)
        )
        state = "is now banned" if changed else "was banned already"
        await interaction.response.send_message(f"🔨 {text(user.name)} {state}", ephemeral=True)

    @app_commands.command(description="Lift a user's ban")
    async def unban(self, interaction: discord.Interaction, user: discord.User) -> None:
        account = await self.gateway.accounts.discord_user(user.id, user.name)
        changed = await self.gateway.boards.set_banned(
            account.name, False, caller=await self._caller(interaction)
        )
        state = "may submit again" if changed else "was not banned"
        await interaction.response.send_message(f"🕊️ {text(user.name)} {state}", ephemeral=True)

    @app_commands.command(description="The Slurm sites and their health")
    async def sites(self, interaction: discord.Interaction) -> None:
        health = await self.gateway.sites.health()
        await interaction.response.send_message(
            embed=sites_embed(self.gateway.sites.configured, health), ephemeral=True
        )

    @app_commands.command(description="Stop routing new runs to a site (its running jobs go on)")
    @app_commands.autocomplete(site=site_names)
    async def drain(self, interaction: discord.Interaction, site: str, reason: str | None = None) -> None:
        await self.gateway.sites.set_drained(site, True, reason, caller=await self._caller(interaction))
        await interaction.response.send_message(f"🚧 {text(site)} is drained", ephemeral=True)

    @app_commands.command(description="Route runs to a drained site again")
    @app_commands.autocomplete(site=site_names)
    async def resume(self, interaction: discord.Interaction, site: str) -> None:
        await self.gateway.sites.set_drained(site, False, caller=await self._caller(interaction))
        await interaction.response.send_message(f"🟢 {text(site)} takes runs again", ephemeral=True)

    @app_commands.command(description="Cancel a run (its id, or its first characters)")
    async def cancel(self, interaction: discord.Interaction, run: str) -> None:
        caller = await self._caller(interaction)
        outcome = await answer_in_time(
            interaction, self.gateway.cancel_run(run, caller=caller), ephemeral=True
        )
        await reply(interaction, f"🛑 {text(outcome, 500)}")

    @app_commands.command(description="Totals, unfinished runs and per-site numbers of the last day")
    async def stats(self, interaction: discord.Interaction) -> None:
        stats = await answer_in_time(interaction, self.gateway.stats(), ephemeral=True)
        await reply(interaction, embed=stats_embed(stats))
