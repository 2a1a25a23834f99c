"""The small part of Discord's REST API the bot uses, served on 127.0.0.1 for offline bot tests.

discord.py talks to it over real HTTP (its ``Route.BASE`` points here): log-in, the command sync, the
interaction callbacks, edits of the original response, channel messages and attachment downloads. The
server keeps every message as Discord would and records each request. Interactions reach the bot as the
gateway would deliver them (``ConnectionState.parse_interaction_create``), so a command runs through
discord.py's own parsing, checks, transformers, autocomplete and error handling.

Payload shapes follow Discord's documented objects (User, Application, Guild, Role, Channel, Message,
Interaction, Interaction Callback Response)."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import discord
from aiohttp import BodyPartReader, web

APP_ID = 910_000_000_000_000_001
BOT_ID = 910_000_000_000_000_002
GUILD_ID = 910_000_000_000_000_003
CHANNEL_ID = 910_000_000_000_000_004
ADMIN_ROLE_ID = 910_000_000_000_000_005
ADMIN_ROLE = "Leaderboard Admin"
# attackers' roles: one named like the admin role in the served guild, and the bot invited to a guild of
# an attacker's own with a role of that name too
IMPOSTOR_ROLE_ID = 910_000_000_000_000_006
OTHER_GUILD_ID = 910_000_000_000_000_007
OTHER_ADMIN_ROLE_ID = 910_000_000_000_000_008
# Discord's option types (Application Command Option Type)
SUB_COMMAND, STRING, INTEGER, BOOLEAN, USER, ATTACHMENT = 1, 3, 4, 5, 6, 11


def user_payload(user_id: int, name: str, *, bot: bool = False) -> dict[str, Any]:
    return {
        "id": str(user_id),
        "username": name,
        "discriminator": "0",
        "global_name": name,
        "avatar": None,
        "bot": bot,
    }


@dataclass
class Member:
    id: int
    name: str
    roles: list[int] = field(default_factory=list)

    def payload(self) -> dict[str, Any]:
        return {
            "user": user_payload(self.id, self.name),
            "roles": [str(r) for r in self.roles],
            "joined_at": "2026-01-01T00:00:00+00:00",
            "deaf": False,
            "mute": False,
            "flags": 0,
            "permissions": str(discord.Permissions.all().value if self.roles else 0),
        }


@dataclass
class Recorded:
    method: str
    path: str
    body: dict[str, Any] | list[Any] | None
    files: dict[str, bytes]


class FakeDiscord:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.messages: dict[int, dict[str, Any]] = {}  # message id -> message, as Discord keeps it
        # message id -> every version, oldest first, with when it was received (time.perf_counter())
        self.history: dict[int, list[dict[str, Any]]] = {}
        self.originals: dict[str, int] = {}  # interaction token -> its original response's id
        self.autocompletes: dict[str, list[dict[str, Any]]] = {}  # token -> choices offered
        self.files: dict[str, bytes] = {}  # attachments the "CDN" serves, by name
        self.commands: list[dict[str, Any]] = []
        self._ids = itertools.count(920_000_000_000_000_000)
        self._runner: web.AppRunner | None = None
        self.base = ""
        self.changed = asyncio.Event()

    # -- server -------------------------------------------------------------------------------------

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base = f"http://127.0.0.1:{port}"
        return self.base

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def next_id(self) -> int:
        return next(self._ids)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body, files = await _read_body(request)
        path = request.path
        self.requests.append(Recorded(request.method, path, body, files))
        self.changed.set()
        if path.startswith("/cdn/"):
            data = self.files.get(path.removeprefix("/cdn/"))
            return web.Response(body=data) if data is not None else web.Response(status=404)
        parts = path.removeprefix("/api/v10/").split("/")
        route = (request.method, *parts)
        match route:
            case ("GET", "users", "@me"):
                return _json(user_payload(BOT_ID, "gateway-bot", bot=True))
            case ("GET", "oauth2", "applications", "@me"):
                return _json(self._application())
            case ("PUT", "applications", _, "commands") | ("PUT", "applications", _, "guilds", _, "commands"):
                assert isinstance(body, list)
                self.commands = [
                    dict(c, id=str(self.next_id()), application_id=str(APP_ID), version="1") for c in body
                ]
                return _json(self.commands)
            case ("POST", "interactions", interaction_id, token, "callback"):
                assert isinstance(body, dict)
                return _json(self._callback(int(interaction_id), token, body, files))
            case ("GET", "webhooks", _, token, "messages", "@original"):
                return self._message_or_404(self.originals.get(token))
            case ("PATCH", "webhooks", _, token, "messages", "@original"):
                assert isinstance(body, dict)
                return self._edit(self.originals.get(token), body, files)
            case ("POST", "webhooks", _, _token):
                assert isinstance(body, dict)
                return _json(self._new_message(body, files))
            case ("POST", "channels", _, "messages"):
                assert isinstance(body, dict)
                return _json(self._new_message(body, files, webhook=False))
            case ("PATCH", "channels", _, "messages", message_id):
                assert isinstance(body, dict)
                return self._edit(int(message_id), body, files)
        return _json({"message": f"fake Discord does not serve {request.method} {path}"}, status=404)

    def _application(self) -> dict[str, Any]:
        return {
            "id": str(APP_ID),
            "name": "gateway-bot",
            "icon": None,
            "description": "",
            "bot_public": False,
            "bot_require_code_grant": False,
            "owner": user_payload(BOT_ID + 100, "owner"),
            "verify_key": "0" * 64,
            "flags": 0,
            "team": None,
            "summary": "",
            "rpc_origins": [],
        }

    def _callback(
        self, interaction_id: int, token: str, body: dict[str, Any], files: dict[str, bytes]
    ) -> dict[str, Any]:
        kind, data = body["type"], body.get("data") or {}
        interaction: dict[str, Any] = {"id": str(interaction_id), "type": 2}
        if kind == 8:  # autocomplete result
            self.autocompletes[token] = data.get("choices", [])
            return {"interaction": interaction}
        if kind in (4, 5):  # a message now, or "thinking…" until the response is edited
            loading = kind == 5
            message = self._new_message(
                {**data, "content": data.get("content") or ""}, files, loading=loading
            )
            self.originals[token] = int(message["id"])
            interaction.update(
                response_message_id=message["id"],
                response_message_loading=loading,
                response_message_ephemeral=bool(data.get("flags", 0) & 64),
            )
            return {"interaction": interaction, "resource": {"type": kind, "message": message}}
        return {"interaction": interaction, "resource": {"type": kind}}

    def _new_message(
        self, data: dict[str, Any], files: dict[str, bytes], *, loading: bool = False, webhook: bool = True
    ) -> dict[str, Any]:
        message_id = self.next_id()
        message = {
            "id": str(message_id),
            "channel_id": str(CHANNEL_ID),
            "author": user_payload(BOT_ID, "gateway-bot", bot=True),
            "content": data.get("content") or "",
            "timestamp": datetime.now(UTC).isoformat(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": _attachments(data, files),
            "embeds": data.get("embeds") or [],
            "pinned": False,
            "type": 20 if webhook else 0,
            "flags": (data.get("flags") or 0) | (128 if loading else 0),
            "components": [],
            "loading": loading,
        }
        if webhook:
            message["webhook_id"] = str(APP_ID)
            message["application_id"] = str(APP_ID)
        self.messages[message_id] = message
        self.history[message_id] = [{**message, "received_at": time.perf_counter()}]
        return message

    def _edit(self, message_id: int | None, body: dict[str, Any], files: dict[str, bytes]) -> web.Response:
        message = self.messages.get(message_id) if message_id is not None else None
        if message is None:
            return _json({"message": "Unknown Message", "code": 10008}, status=404)
        for key in ("content", "embeds"):
            if key in body:
                message[key] = body[key] if body[key] is not None else ("" if key == "content" else [])
        if "attachments" in body or files:
            message["attachments"] = _attachments(body, files)
        message["edited_timestamp"] = datetime.now(UTC).isoformat()
        message["loading"] = False
        self.history[int(message["id"])].append({**message, "received_at": time.perf_counter()})
        return _json(message)

    def _message_or_404(self, message_id: int | None) -> web.Response:
        message = self.messages.get(message_id) if message_id is not None else None
        if message is None:
            return _json({"message": "Unknown Message", "code": 10008}, status=404)
        return _json(message)

    # -- what tests ask -----------------------------------------------------------------------------

    def original(self, token: str) -> dict[str, Any] | None:
        message_id = self.originals.get(token)
        return self.messages.get(message_id) if message_id is not None else None

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Wait until ``predicate()`` returns something truthy (re-checked on every request)."""
        deadline = time.monotonic() + timeout
        while not (value := predicate()):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out after {timeout} s; last requests: {self.requests[-5:]}")
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), min(left, 0.5))
            except TimeoutError:
                pass
        return value

    def attach(self, name: str, data: bytes) -> dict[str, Any]:
        """An uploaded attachment (served by the fake CDN) as an interaction's resolved data lists it."""
        self.files[name] = data
        attachment_id = self.next_id()
        return {
            "id": str(attachment_id),
            "filename": name,
            "size": len(data),
            "url": f"{self.base}/cdn/{name}",
            "proxy_url": f"{self.base}/cdn/{name}",
            "content_type": "text/x-python; charset=utf-8",
        }

    def guild_payload(self, members: list[Member], guild_id: int = GUILD_ID) -> dict[str, Any]:
        """The served guild (its admin role, and an impostor's role of the same name), or with
        ``guild_id=OTHER_GUILD_ID`` an attacker's guild with a role named like the admin role."""
        role = {"color": 0, "hoist": False, "managed": False, "mentionable": False, "flags": 0}
        named_admin = [ADMIN_ROLE_ID, IMPOSTOR_ROLE_ID] if guild_id == GUILD_ID else [OTHER_ADMIN_ROLE_ID]
        return {
            "id": str(guild_id),
            "name": "Kernel Contest" if guild_id == GUILD_ID else "Totally Legit",
            "owner_id": str(BOT_ID + 100),
            "roles": [
                {**role, "id": str(guild_id), "name": "@everyone", "permissions": "0", "position": 0},
                *(
                    {**role, "id": str(rid), "name": ADMIN_ROLE, "permissions": "0", "position": n + 1}
                    for n, rid in enumerate(named_admin)
                ),
            ],
            "channels": [
                {
                    "id": str(CHANNEL_ID),
                    "type": 0,
                    "name": "submissions",
                    "position": 0,
                    "permission_overwrites": [],
                }
            ],
            "members": [m.payload() for m in members],
            "member_count": len(members),
            "features": [],
            "emojis": [],
            "stickers": [],
            "unavailable": False,
            "large": False,
            "threads": [],
            "voice_states": [],
            "presences": [],
        }

    def interaction(
        self,
        member: Member,
        group: str,
        command: str,
        options: dict[str, Any] | None = None,
        *,
        autocomplete: str | None = None,
        users: dict[str, Member] | None = None,
        guild_id: int = GUILD_ID,
    ) -> tuple[str, dict[str, Any]]:
        """A slash command (or, with ``autocomplete`` naming the focused option, an autocomplete request)
        as Discord's gateway delivers it; returns its token and payload."""
        resolved: dict[str, Any] = {}
        built = []
        for name, value in (options or {}).items():
            if isinstance(value, dict) and "filename" in value:  # an attachment from attach()
                resolved.setdefault("attachments", {})[value["id"]] = value
                built.append({"name": name, "type": ATTACHMENT, "value": value["id"]})
            elif users and name in users:
                target = users[name]
                resolved.setdefault("users", {})[str(target.id)] = user_payload(target.id, target.name)
                member_data = {k: v for k, v in target.payload().items() if k != "user"}
                resolved.setdefault("members", {})[str(target.id)] = member_data
                built.append({"name": name, "type": USER, "value": str(target.id)})
            else:
                kind = BOOLEAN if isinstance(value, bool) else INTEGER if isinstance(value, int) else STRING
                option: dict[str, Any] = {"name": name, "type": kind, "value": value}
                if name == autocomplete:
                    option["focused"] = True
                built.append(option)
        token = f"token-{self.next_id()}"
        registered = next((c for c in self.commands if c["name"] == group), None)
        data: dict[str, Any] = {
            "id": registered["id"] if registered else str(self.next_id()),
            "name": group,
            "type": 1,
            "options": [{"name": command, "type": SUB_COMMAND, "options": built}],
            "guild_id": str(guild_id),
        }
        if resolved:
            data["resolved"] = resolved
        payload: dict[str, Any] = {
            "id": str(self.next_id()),
            "application_id": str(APP_ID),
            "type": 4 if autocomplete else 2,
            "data": data,
            "guild_id": str(guild_id),
            "channel_id": str(CHANNEL_ID),
            "channel": {"id": str(CHANNEL_ID), "type": 0, "name": "submissions", "guild_id": str(guild_id)},
            "member": member.payload(),
            "token": token,
            "version": 1,
            "app_permissions": str(discord.Permissions.all().value),
            "locale": "en-US",
            "guild_locale": "en-US",
            "attachment_size_limit": 25 * 1024 * 1024,
            "entitlements": [],
            "authorizing_integration_owners": {},
            "context": 0,
        }
        return token, payload


async def _read_body(request: web.Request) -> tuple[dict[str, Any] | list[Any] | None, dict[str, bytes]]:
    """A JSON body, or a multipart one (payload_json and files[n] parts) as discord.py sends uploads."""
    if request.content_type == "application/json":
        return json.loads(await request.read()), {}
    if request.content_type.startswith("multipart/"):
        body: dict[str, Any] | None = None
        files: dict[str, bytes] = {}
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                continue
            data = await part.read()
            if part.name == "payload_json":
                body = json.loads(data)
            else:
                files[part.filename or part.name or "file"] = bytes(data)
        return body, files
    return None, {}


def _json(data: Any, status: int = 200) -> web.Response:
    # exactly Discord's content type: discord.py decodes a body as JSON only when it reads just this
    return web.Response(
        body=json.dumps(data).encode(), status=status, headers={"Content-Type": "application/json"}
    )


def _attachments(data: dict[str, Any], files: dict[str, bytes]) -> list[dict[str, Any]]:
    declared = data.get("attachments") or []
    out = []
    for index, (name, content) in enumerate(files.items()):
        meta = declared[index] if index < len(declared) else {}
        out.append(
            {
                "id": str(920_000_000_000_100_000 + index),
                "filename": meta.get("filename", name),
                "size": len(content),
                "url": f"attachment://{name}",
                "proxy_url": f"attachment://{name}",
                "content": content.decode("utf-8", "replace"),
            }
        )
    return out
