"""Following one submission in Discord: the interaction's message is edited as its runs move, from
queued (with its place in line) to pending (Slurm's reason) to running (streamed progress) to results,
score and rank.

Events come from ``Gateway.follow`` (LISTEN/NOTIFY), so a worker in any process drives the message.
Edits are coalesced: at most one per ``edit_interval_s``, always the latest state, and always a last
one with the results. An interaction token lasts 15 minutes; after that the bot posts a fresh message
in the channel and edits that one instead."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import discord

from bot.embeds import profile_attachment, submission_embed
from bot.progress import SubmissionStatus
from gateway.core.errors import GatewayError
from gateway.service.facade import Caller, Gateway
from gateway.service.runview import run_view

log = logging.getLogger(__name__)
TOKEN_LIFETIME_S = 14 * 60  # Discord's interaction tokens last 15 minutes; keep a minute in hand


class SubmissionMessage:
    """Where a submission's embed is shown: the interaction's response while its token lasts, then a
    message of the bot's own in the same channel."""

    def __init__(self, interaction: discord.Interaction) -> None:
        self.interaction = interaction
        self.expires = time.monotonic() + TOKEN_LIFETIME_S
        self.message: discord.Message | None = None
        self.gone = False  # deleted by someone, or the channel is no longer reachable

    async def show(self, embed: discord.Embed, files: list[discord.File] | None = None) -> None:
        """Show ``embed``; ``files`` (the last edit's profiler tables) are attached to the message."""
        if self.gone:
            return
        extra: dict[str, Any] = {"attachments": files} if files else {}  # edits replace attachments
        try:
            if self.message is None and time.monotonic() < self.expires:
                await self.interaction.edit_original_response(content=None, embed=embed, **extra)
            elif self.message is None:
                channel = self.interaction.channel
                if not isinstance(channel, discord.abc.Messageable):
                    self.gone = True
                    return
                if files:
                    self.message = await channel.send(embed=embed, files=files)
                else:
                    self.message = await channel.send(embed=embed)
            else:
                await self.message.edit(embed=embed, **extra)
        except (discord.NotFound, discord.Forbidden) as exc:
            log.info("submission message gone (%s): no more updates", exc)
            self.gone = True
        except discord.HTTPException as exc:  # a hiccup: the next edit carries the latest state anyway
            log.warning("could not edit a submission message: %s", exc)


class SubmissionFollower:
    def __init__(
        self,
        gateway: Gateway,
        status: SubmissionStatus,
        message: SubmissionMessage,
        *,
        caller: Caller,
        edit_interval_s: float = 1.0,
        position_interval_s: float = 3.0,
    ) -> None:
        self.gateway = gateway
        self.caller = caller  # who submitted: the runs are read back as they may see them
        self.status = status
        self.message = message
        self.edit_interval_s = edit_interval_s
        self.position_interval_s = position_interval_s

    async def run(self) -> SubmissionStatus:
        """Follow every run of the submission to its end; the message's last edit holds the results."""
        changed = asyncio.Event()
        events = asyncio.create_task(self._events(changed))
        positions = asyncio.create_task(self._positions(changed))
        try:
            while not events.done():
                waiter = asyncio.create_task(changed.wait())
                await asyncio.wait({events, waiter}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                if events.done():
                    break
                changed.clear()
                await self._show()
                await asyncio.sleep(self.edit_interval_s)
            events.result()
            await self._complete()
        except GatewayError as exc:
            log.warning("submission %s: stopped following: %s", self.status.submission_id, exc)
            self.status.public.detail = (
                "the bot lost track of this run; it goes on: see /leaderboard show-personal for its result"
            )
        finally:
            for task in (events, positions):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, GatewayError):
                    await task
        attachment = profile_attachment(self.status.public.view)
        await self.message.show(submission_embed(self.status), [attachment] if attachment else None)
        return self.status

    async def _show(self) -> None:
        await self.message.show(submission_embed(self.status))

    async def _events(self, changed: asyncio.Event) -> None:
        async for event in self.gateway.follow(list(self.status.runs)):
            self.status.apply(event)
            changed.set()

    async def _positions(self, changed: asyncio.Event) -> None:
        """A queued run's place in line moves as other runs are claimed: look it up while it waits."""
        while self.status.waiting_in_line:
            position = await self.gateway.queue_position(self.status.public.run_id)
            if position != self.status.queue_position:
                self.status.queue_position = position
                changed.set()
            await asyncio.sleep(self.position_interval_s)

    async def _complete(self) -> None:
        """Read the finished runs back (results, score) and the user's new standing."""
        for run in self.status.runs.values():
            run.view = run_view(await self.gateway.run(run.run_id, caller=self.caller))
        public = self.status.public
        if (
            self.status.mode == "leaderboard"
            and self.status.leaderboard
            and public.view
            and public.view.ranked
        ):
            self.status.standing = await self.gateway.boards.standing(
                self.status.leaderboard, public.gpu_type, public.view.account, caller=self.caller
            )
