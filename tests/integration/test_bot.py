"""The Discord bot end to end, offline: commands arrive as Discord's gateway delivers them, the bot
answers the fake Discord API over HTTP, the real service and PostgreSQL store the submission, and a worker
runs it on the dev stack's Slurm site while the bot edits its message from LISTEN/NOTIFY events."""

from __future__ import annotations

import io
import re
import tarfile
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.embeds import PROFILE_FIELD
from gateway.config.settings import Settings
from gateway.config.tasks import load_task
from gateway.service.facade import OPERATOR, Gateway
from gateway.service.model import SubmitRequest
from tests.conftest import PROBLEMS, solution
from tests.fake_discord import OTHER_GUILD_ID, Member
from tests.integration.bot_harness import (
    ADMIN,
    ALICE,
    BOB,
    IMPOSTOR,
    OUTSIDER,
    BotUnderTest,
    account,
    bot_under_test,
)

pytestmark = pytest.mark.integration


def embed_text(message: dict[str, Any]) -> str:
    """Everything an embed shows, as one string."""
    parts = [message.get("content") or ""]
    for embed in message.get("embeds") or []:
        parts += [embed.get("title", ""), embed.get("description", "")]
        parts += [f"{f['name']}: {f['value']}" for f in embed.get("fields", [])]
        parts.append((embed.get("footer") or {}).get("text", ""))
    return "\n".join(parts)


async def new_board(gateway: Gateway, gpus: list[str] | None = None) -> str:
    name = f"bot-{uuid.uuid4().hex[:8]}"
    await gateway.boards.create_leaderboard(
        name, load_task(PROBLEMS / "vectoradd"), gpus or ["H100"], caller=OPERATOR
    )
    return name


async def submit(
    t: BotUnderTest,
    member: Any,
    board: str,
    file_name: str,
    data: bytes,
    mode: str = "leaderboard",
    gpu: str = "H100",
) -> str:
    attachment = t.discord.attach(file_name, data)
    return await t.command(
        member, "leaderboard", "submit", {"file": attachment, "leaderboard": board, "gpu": gpu, "mode": mode}
    )


async def test_a_submission_reaches_the_leaderboard_and_its_message_shows_result_and_rank(
    stack_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the runs are executed by `gateway worker` in a process of its own: the bot hears of them only
    # through PostgreSQL's LISTEN/NOTIFY
    async with bot_under_test(stack_settings, monkeypatch, worker="process") as t:
        board = await new_board(t.gateway)
        token = await submit(t, ALICE, board, "correct.py", solution("vectoradd", "correct.py").encode())
        first = await t.answer(token)
        assert "queued" in embed_text(first), embed_text(first)
        await t.followers_done()
        message = t.discord.original(token)
        assert message is not None
        final = embed_text(message)
        assert "✅ passed" in final and "Score" in final and "#1** of 1" in final, final
        assert "Tests: 3/3 passed" in final and "Secret rerun (hidden inputs): passed" in final, final
        seen = [embed_text(version) for version in t.discord.history[int(message["id"])]]
        assert any("running" in s or "pending" in s for s in seen), seen

        view = await t.gateway.boards.leaderboard(board, caller=OPERATOR)
        assert [e.user_name for e in view.ranking["H100"]] == [ALICE.name]


def ephemeral(message: dict[str, Any]) -> bool:
    return bool(message["flags"] & 64)


async def test_each_bad_submission_gets_a_clear_message_and_stores_nothing(
    stack_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with bot_under_test(stack_settings, monkeypatch, worker="none") as t:
        board = await new_board(t.gateway)
        code = solution("vectoradd", "correct.py").encode()
        limit = t.gateway.settings.max_submission_bytes
        cases = [
            ("kernel.txt", code, {}, "is not a Python file: this task takes a .py file"),
            ("big.py", b"#" * (limit + 1), {}, f"the limit is {limit} bytes"),
            ("latin1.py", b"x = '\xe9t\xe9'\n", {}, "is not UTF-8 text (byte 0xe9 at offset 5)"),
            ("empty.py", b"   \n", {}, "is empty"),
            ("k.py", code, {"gpu": "L4"}, f"leaderboard {board} does not rank 'L4'; it ranks H100"),
            ("k.py", code, {"gpu": "TPU"}, "no site offers GPU type 'TPU'"),
            ("k.py", code, {"leaderboard": "no-such-board"}, "no leaderboard named 'no-such-board'"),
        ]
        for file_name, data, overrides, expected in cases:
            options = {
                "file": t.discord.attach(file_name, data),
                "leaderboard": board,
                "gpu": "H100",
                "mode": "test",
            }
            answer = await t.answer(await t.command(BOB, "leaderboard", "submit", {**options, **overrides}))
            assert expected in answer["content"] and ephemeral(answer), (file_name, answer["content"])
            assert "Traceback" not in answer["content"]
        assert await t.gateway.runs(user=account(BOB), leaderboard=board, caller=OPERATOR) == []

        # refusals by policy: a rate limit, a ban, a deadline; each says what to do, nothing is stored
        await t.gateway.boards.set_rate_limit(board, "test", 1, 3600, caller=OPERATOR)
        first = await t.answer(await submit(t, BOB, board, "k.py", code, mode="test"))
        assert "queued" in embed_text(first)
        limited = await t.answer(await submit(t, BOB, board, "k.py", code, mode="test"))
        assert "rate limited: 1 test submission(s) per 1 h" in limited["content"], limited["content"]
        assert "try again in" in limited["content"] and ephemeral(limited)
        await t.gateway.boards.set_banned(account(BOB), True, caller=OPERATOR)
        banned = await t.answer(await submit(t, BOB, board, "k.py", code, mode="benchmark"))
        assert "banned" in banned["content"] and ephemeral(banned), banned["content"]
        await t.gateway.boards.set_deadline(board, datetime(2020, 1, 1, tzinfo=UTC), caller=OPERATOR)
        closed = await t.answer(await submit(t, ALICE, board, "k.py", code, mode="benchmark"))
        assert f"leaderboard {board} closed at 2020-01-01 00:00" in closed["content"], closed["content"]
        runs = await t.gateway.runs(leaderboard=board, caller=OPERATOR)
        assert len(runs) == 1  # only the first, accepted submission
        await t.gateway.cancel_run(runs[0].run_id, caller=OPERATOR)  # no worker here: leave nothing queued
        await t.gateway.boards.set_banned(account(BOB), False, caller=OPERATOR)
        await t.followers_done(30)


async def test_an_unexpected_error_is_logged_with_a_reference_never_shown(
    stack_settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async with bot_under_test(stack_settings, monkeypatch, worker="none") as t:

        async def broken(*_args: Any, **_kwargs: Any) -> Any:
            raise RuntimeError("secret internals: password=hunter2")

        monkeypatch.setattr(t.gateway.boards, "leaderboards", broken)
        answer = await t.run(ALICE, "leaderboard", "list")
        assert "something went wrong on our side" in answer["content"] and ephemeral(answer)
        assert "hunter2" not in answer["content"]
        reference = answer["content"].split("reference `")[1].split("`")[0]
        assert any(reference in r.getMessage() and r.exc_info for r in caplog.records)


async def test_admin_commands_need_the_admin_role_by_id_in_a_served_guild(
    stack_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A member without the role, a member with a role of the admin role's name but another id, and a
    member of another guild (the bot invited there, a role named like the admin role made there) are all
    refused, /admin and its autocompletes alike; nothing changes."""
    async with bot_under_test(stack_settings, monkeypatch, worker="none") as t:
        board = await new_board(t.gateway)
        for command, options in [
            ("stats", {}),
            ("ban", {"user": "alice"}),
            ("delete", {"name": board, "confirm": board}),
            ("drain", {"site": "alpha"}),
        ]:
            users = {"user": ALICE} if "user" in options else None
            for member in (BOB, IMPOSTOR):
                answer = await t.run(member, "admin", command, options, users=users)
                assert "only the gateway's admins" in answer["content"], answer
                assert ephemeral(answer)
            answer = await t.run(OUTSIDER, "admin", command, options, users=users, guild_id=OTHER_GUILD_ID)
            assert "serves only the servers its operators configured" in answer["content"], answer
            # the admin's own role id, from a guild the bot does not serve, counts for nothing either
            answer = await t.run(ADMIN, "admin", command, options, users=users, guild_id=OTHER_GUILD_ID)
            assert "serves only the servers its operators configured" in answer["content"], answer
        assert (await t.gateway.boards.get_leaderboard(board, caller=OPERATOR)).name == board  # not deleted
        assert (
            not (await t.gateway.sites.health()).get("alpha", None)
            or not (await t.gateway.sites.health())["alpha"].drained
        )
        assert not (await t.gateway.accounts.discord_user(ALICE.id, ALICE.name)).banned
        # autocompletes of admin options offer nothing to non-admins: no site names, no task directories
        for member, option in [(BOB, "site"), (IMPOSTOR, "site"), (BOB, "task")]:
            command = "drain" if option == "site" else "create"
            token = await t.command(member, "admin", command, {option: ""}, autocomplete=option)
            await t.discord.wait_for(lambda tok=token: tok in t.discord.autocompletes)  # type: ignore[misc]
            assert t.discord.autocompletes[token] == [], (member, option)
        token = await t.command(ADMIN, "admin", "drain", {"site": ""}, autocomplete="site")
        offered = await t.discord.wait_for(lambda: t.discord.autocompletes.get(token))
        assert "alpha" in [c["value"] for c in offered]


async def test_admins_create_leaderboards_ban_drain_cancel_and_read_stats(
    stack_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with bot_under_test(stack_settings, monkeypatch, worker="none") as t:
        from_dir = f"bot-{uuid.uuid4().hex[:8]}"
        created = await t.run(
            ADMIN, "admin", "create", {"name": from_dir, "task": "vectoradd", "gpus": "H100"}
        )
        assert f"leaderboard **{from_dir}** created: task vectoradd, GPUs H100, 3 tests" in created["content"]
        assert ephemeral(created)

        from_archive = f"bot-{uuid.uuid4().hex[:8]}"
        archive = t.discord.attach("softmax.tar.gz", task_archive("softmax"))
        created = await t.run(ADMIN, "admin", "create", {"name": from_archive, "archive": archive})
        assert f"leaderboard **{from_archive}** created: task softmax" in created["content"], created[
            "content"
        ]
        assert (await t.gateway.boards.task_of(from_archive, caller=OPERATOR)).starter is not None

        both = await t.run(ADMIN, "admin", "create", {"name": "x", "task": "vectoradd", "archive": archive})
        assert "give either task" in both["content"]
        escape = t.discord.attach("evil.tar.gz", evil_archive())
        refused = await t.run(ADMIN, "admin", "create", {"name": "evil", "archive": escape})
        assert "would unpack outside the archive's folder" in refused["content"], refused["content"]

        deadline = await t.run(ADMIN, "admin", "deadline", {"name": from_dir, "when": "2031-01-01T00:00Z"})
        assert "closes: <t:1924992000:F>" in deadline["content"], deadline["content"]
        assert (await t.gateway.boards.get_leaderboard(from_dir, caller=OPERATOR)).deadline == datetime(
            2031, 1, 1, tzinfo=UTC
        )

        banned = await t.run(ADMIN, "admin", "ban", {"user": "bob"}, users={"user": BOB})
        assert f"{BOB.name} is now banned" in banned["content"], banned["content"]
        unbanned = await t.run(ADMIN, "admin", "unban", {"user": "bob"}, users={"user": BOB})
        assert f"{BOB.name} may submit again" in unbanned["content"]

        sites = await t.run(ADMIN, "admin", "sites")
        assert "alpha" in embed_text(sites) and "beta" in embed_text(sites)
        try:
            drained = await t.run(ADMIN, "admin", "drain", {"site": "beta", "reason": "maintenance"})
            assert "beta is drained" in drained["content"]
            assert (await t.gateway.sites.health())["beta"].drain_reason == "maintenance"
        finally:
            resumed = await t.run(ADMIN, "admin", "resume", {"site": "beta"})
        assert "beta takes runs again" in resumed["content"]
        assert not (await t.gateway.sites.health())["beta"].drained

        submission = await t.gateway.enqueue(
            SubmitRequest(
                solution("vectoradd", "correct.py"),
                "k.py",
                "alice",
                leaderboard=from_dir,
                gpu_type="H100",
                mode="test",
            )
        )
        cancelled = await t.run(ADMIN, "admin", "cancel", {"run": submission.public_run.run_id[:8]})
        assert "was cancelled before it started" in cancelled["content"], cancelled["content"]

        stats = embed_text(await t.run(ADMIN, "admin", "stats"))
        assert "Gateway stats" in stats and "submissions" in stats, stats

        kept = await t.run(ADMIN, "admin", "delete", {"name": from_dir, "confirm": "wrong"})
        assert "nothing deleted" in kept["content"]
        deleted = await t.run(ADMIN, "admin", "delete", {"name": from_dir, "confirm": from_dir})
        assert f"deleted {from_dir}: 1 submissions, 1 runs" in deleted["content"], deleted["content"]
        await t.gateway.boards.delete_leaderboard(from_archive, caller=OPERATOR)


async def test_competitors_list_show_read_the_task_get_the_template_and_an_api_token(
    stack_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with bot_under_test(stack_settings, monkeypatch) as t:
        board = await new_board(t.gateway)
        for member, name in ((ALICE, "correct.py"), (BOB, "slow.py")):
            await t.answer(await submit(t, member, board, name, solution("vectoradd", name).encode()))
        await t.followers_done()

        listed = embed_text(await t.run(ALICE, "leaderboard", "list"))
        assert board in listed
        shown = embed_text(await t.run(BOB, "leaderboard", "show", {"leaderboard": board}))
        ranking = shown.split("H100: ")[1]
        assert ranking.index(ALICE.name) < ranking.index(BOB.name), shown
        personal = await t.run(BOB, "leaderboard", "show-personal", {"leaderboard": board})
        assert "slow.py" in embed_text(personal) and "correct.py" not in embed_text(personal)
        assert ephemeral(personal)

        task = await t.run(ALICE, "leaderboard", "task", {"leaderboard": board})
        assert "adds two float32 vectors" in embed_text(task)
        starter = (PROBLEMS / "vectoradd" / "submission.py").read_text()
        assert [a["content"] for a in task["attachments"]] == [starter]
        template = await t.run(ALICE, "leaderboard", "template", {"leaderboard": board})
        assert template["attachments"][0]["filename"] == "submission.py"
        assert template["attachments"][0]["content"] == starter
        other = await t.run(ALICE, "leaderboard", "template", {"leaderboard": board, "language": "CUDA"})
        assert "no 'CUDA' template; the task offers Python" in other["content"]

        made = await t.run(ALICE, "leaderboard", "token")
        assert ephemeral(made) and "shown once and only to you" in made["content"]
        api_token = made["content"].split("```")[1].strip()
        assert (await t.gateway.accounts.user_for_token(api_token)).name == account(ALICE)  # type: ignore[union-attr]
        revoked = await t.run(ALICE, "leaderboard", "revoke-token")
        assert ephemeral(revoked) and "revoked" in revoked["content"]
        assert await t.gateway.accounts.user_for_token(api_token) is None
        again = await t.run(ALICE, "leaderboard", "revoke-token")
        assert "You have no API token" in again["content"]

        # each lists, downloads and deletes their own submission, and nobody else's
        listed_mine = await t.run(BOB, "leaderboard", "submissions")
        assert ephemeral(listed_mine) and "slow.py" in embed_text(listed_mine)
        assert "correct.py" not in embed_text(listed_mine)
        bobs = re.findall(r"`([0-9a-f]{32})`", embed_text(listed_mine))
        assert len(bobs) == 1
        got = await t.run(BOB, "leaderboard", "download", {"submission": bobs[0]})
        assert ephemeral(got) and got["attachments"][0]["filename"] == "slow.py"
        assert got["attachments"][0]["content"] == solution("vectoradd", "slow.py")
        theirs = await t.run(ALICE, "leaderboard", "download", {"submission": bobs[0]})
        assert "is not yours to read" in theirs["content"] and not theirs.get("attachments")
        refused = await t.run(ALICE, "leaderboard", "delete", {"submission": bobs[0]})
        assert "you can delete only your own submissions" in refused["content"]
        deleted = await t.run(BOB, "leaderboard", "delete", {"submission": bobs[0]})
        assert f"submission {bobs[0]} deleted; it left the ranking" in deleted["content"]
        after = embed_text(await t.run(BOB, "leaderboard", "show", {"leaderboard": board}))
        assert ALICE.name in after and BOB.name not in after.split("H100: ")[1]

        token = await t.command(
            ALICE, "leaderboard", "show", {"leaderboard": board[:8]}, autocomplete="leaderboard"
        )
        choices = await t.discord.wait_for(lambda: t.discord.autocompletes.get(token))
        assert board in [c["value"] for c in choices]


async def test_after_the_interaction_token_expires_the_bot_edits_a_message_of_its_own(
    stack_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.live.TOKEN_LIFETIME_S", 0.0)
    async with bot_under_test(stack_settings, monkeypatch) as t:
        board = await new_board(t.gateway)
        token = await submit(
            t, ALICE, board, "k.py", solution("vectoradd", "correct.py").encode(), mode="test"
        )
        await t.answer(token)
        await t.followers_done()
        own = [m for m in t.discord.messages.values() if "webhook_id" not in m]
        assert len(own) == 1 and "✅ passed" in embed_text(own[0]), [embed_text(m) for m in own]
        assert "Tests: 3/3 passed" in embed_text(own[0])


def task_archive(problem: str) -> bytes:
    """A task directory as an admin would upload it: the folder and the shared utils.py beside it."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(PROBLEMS / problem, arcname=problem)
        archive.add(PROBLEMS / "utils.py", arcname="utils.py")
    return buffer.getvalue()


def evil_archive() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        data = b"pwned\n"
        info = tarfile.TarInfo("../../outside.txt")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


async def test_members_cannot_name_sites_or_see_hidden_boards_and_renames_keep_bans(
    stack_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tried as an attacker would through the bot: naming a site or the gateway's machine is refused and
    stores nothing; a hidden board is answered exactly as one that does not exist, by every command and
    autocomplete; a ban follows the Discord user id through a rename, and a newcomer who takes the freed
    name gets none of that account (history, ban, token)."""
    async with bot_under_test(stack_settings, monkeypatch, worker="none") as t:
        board = await new_board(t.gateway)
        code = solution("vectoradd", "correct.py").encode()
        for overrides, message in [
            ({"site": "alpha"}, "naming a site is for the gateway's admins"),
            ({"site": "local"}, "naming a site is for the gateway's admins"),
            ({"gpu": "local"}, "runs on the gateway's own machine are for its admins"),
        ]:
            options = {
                "file": t.discord.attach("k.py", code),
                "leaderboard": board,
                "gpu": "H100",
                "mode": "test",
            }
            for member in (BOB, IMPOSTOR):
                answer = await t.answer(
                    await t.command(member, "leaderboard", "submit", {**options, **overrides})
                )
                assert message in answer["content"] and ephemeral(answer), (overrides, answer["content"])
        assert await t.gateway.runs(leaderboard=board, caller=OPERATOR) == []
        named = await t.answer(
            await t.command(
                ADMIN,
                "leaderboard",
                "submit",
                {"file": t.discord.attach("k.py", code), "leaderboard": board, "gpu": "H100", "mode": "test",
                 "site": "alpha"},
            )
        )  # fmt: skip
        assert "queued" in embed_text(named), named
        [queued] = await t.gateway.runs(leaderboard=board, caller=OPERATOR)
        await t.gateway.cancel_run(queued.run_id, caller=OPERATOR)

        hidden, missing = f"bot-{uuid.uuid4().hex[:8]}", f"bot-{uuid.uuid4().hex[:8]}"
        task = load_task(PROBLEMS / "vectoradd")
        await t.gateway.boards.create_leaderboard(
            hidden, task, ["H100"], visibility="hidden", caller=OPERATOR
        )
        commands: list[tuple[str, dict[str, Any]]] = [
            ("show", {}),
            ("task", {}),
            ("template", {}),
            ("show-personal", {}),
            ("submit", {"file": "k.py", "gpu": "H100", "mode": "test"}),
        ]
        for command, options in commands:
            said = []
            for name in (hidden, missing):
                given: dict[str, Any] = {"leaderboard": name, **options}
                if "file" in given:
                    given["file"] = t.discord.attach("k.py", code)
                said.append(
                    (await t.run(BOB, "leaderboard", command, given))["content"].replace(name, "NAME")
                )
            assert said[0] == said[1] and "no leaderboard named 'NAME'" in said[0], (command, said)
        for member, sees in ((BOB, False), (ADMIN, True)):
            token = await t.command(
                member, "leaderboard", "show", {"leaderboard": hidden}, autocomplete="leaderboard"
            )
            await t.discord.wait_for(lambda tok=token: tok in t.discord.autocompletes)  # type: ignore[misc]
            assert (hidden in [c["value"] for c in t.discord.autocompletes[token]]) == sees, member
        assert hidden not in embed_text(await t.run(BOB, "leaderboard", "list"))
        assert hidden in embed_text(await t.run(ADMIN, "leaderboard", "list"))

        # a ban and a history follow the user id through a rename; a newcomer with the freed name is new
        first = await t.answer(await submit(t, ALICE, board, "mine.py", code, mode="test"))
        assert "queued" in embed_text(first)
        [mine] = await t.gateway.runs(user=account(ALICE), caller=OPERATOR)
        await t.gateway.cancel_run(mine.run_id, caller=OPERATOR)
        old_token = (await t.run(ALICE, "leaderboard", "token"))["content"].split("```")[1].strip()
        banned = await t.run(ADMIN, "admin", "ban", {"user": "alice"}, users={"user": ALICE})
        assert "is now banned" in banned["content"], banned
        renamed = Member(ALICE.id, f"{ALICE.name}-renamed")
        refused = await t.answer(await submit(t, renamed, board, "k.py", code, mode="test"))
        assert "is banned from submitting" in refused["content"], refused["content"]
        kept = embed_text(await t.run(renamed, "leaderboard", "show-personal", {"leaderboard": board}))
        assert "mine.py" in kept, kept
        newcomer = Member(930_000_000_000_000_099, ALICE.name)  # took the freed name
        fresh = await t.answer(await submit(t, newcomer, board, "theirs.py", code, mode="test"))
        assert "queued" in embed_text(fresh), fresh
        theirs = embed_text(await t.run(newcomer, "leaderboard", "show-personal", {"leaderboard": board}))
        assert "mine.py" not in theirs and "theirs.py" in theirs, theirs
        made = (await t.run(newcomer, "leaderboard", "token"))["content"].split("```")[1].strip()
        owner = await t.gateway.accounts.user_for_token(made)
        assert owner is not None and owner.name == account(newcomer) != account(ALICE)
        assert (await t.gateway.accounts.user_for_token(old_token)).name == account(ALICE)  # type: ignore[union-attr]
        for run in await t.gateway.runs(user=account(newcomer), caller=OPERATOR):
            await t.gateway.cancel_run(run.run_id, caller=OPERATOR)
        await t.followers_done(30)


async def test_profile_mode_shows_the_profilers_tables_attached_when_long(
    stack_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with bot_under_test(stack_settings, monkeypatch) as t:
        board = await new_board(t.gateway)
        code = solution("vectoradd", "correct.py").encode()
        token = await submit(t, ALICE, board, "k.py", code, mode="profile")
        await t.answer(token)
        await t.followers_done()
        message = t.discord.original(token)
        assert message is not None
        final = embed_text(message)
        assert "✅ passed" in final and PROFILE_FIELD in final, final
        # vectoradd's two tables are longer than an embed field holds: they come as a text file
        [attachment] = message["attachments"]
        assert attachment["filename"] == f"profile-{message_run_id(final)}.txt", attachment
        body = attachment["content"]
        assert body.count("aten::add") >= 2 and body.count("Self CPU time total") == 2, body
        assert f"attached as {attachment['filename']}" in final


def message_run_id(shown: str) -> str:
    """The short run id in an embed's footer (``submission … · run 1234abcd``)."""
    return shown.rsplit("· run ", 1)[1].split()[0]
