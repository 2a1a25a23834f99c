"""Accounts: who a Discord user is (their account, keyed by their Discord user id), which accounts hold
an admin's rights, and API tokens for the HTTP API and the remote CLI: made for a user, shown once, kept
only as a SHA-256 hash (users.token_sha256), so a copy of the database holds no usable token. A user has
at most one; making a new one replaces it, and revoking removes it. ``Accounts`` is built from the
store."""

from __future__ import annotations

import hashlib
import secrets

from gateway.core.errors import NotFoundError, UserError
from gateway.core.validation import MAX_NAME_CHARS, check_account, shown
from gateway.service.authority import Caller, require_admin
from gateway.service.model import require_store
from gateway.store import Store, UserRecord

TOKEN_PREFIX = "gwt_"  # noqa: S105 (a prefix, not a secret): recognisable in a leaked-secret scan, and in a user's shell history
_TOKEN_BYTES = 32
MAX_TOKEN_CHARS = 200


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class Accounts:
    def __init__(self, store: Store | None) -> None:
        self.store = store

    def _require_store(self) -> Store:
        return require_store(self.store)

    async def create_token(self, user: str, *, caller: Caller) -> str:
        """A new API token for ``user`` (recorded if not seen yet), replacing the one they had; the
        token itself is returned once and never stored. Users make their own; admins anyone's."""
        _require_self_or_admin(caller, user, "making another user's token")
        check_account(user)
        token = TOKEN_PREFIX + secrets.token_urlsafe(_TOKEN_BYTES)
        await self._require_store().set_token(user, token_hash(token))
        return token

    async def revoke_token(self, user: str, *, caller: Caller) -> bool:
        """Revoke ``user``'s API token; False if they had none."""
        _require_self_or_admin(caller, user, "revoking another user's token")
        check_account(user)
        store = self._require_store()
        if await store.get_user(user) is None:
            raise NotFoundError(f"no user named {shown(user)}")
        return await store.set_token(user, None)

    async def user_for_token(self, token: str) -> UserRecord | None:
        """The user a token belongs to; None for an unknown, revoked or malformed one."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > MAX_TOKEN_CHARS:
            return None
        return await self._require_store().user_by_token(token_hash(token))

    async def discord_user(self, discord_id: int, display_name: str) -> UserRecord:
        """The account of a Discord user, by their user id (made on first sight): a rename keeps its
        history, ban and token, and a newcomer taking a freed name gets none of them. ``display_name``
        is only shown."""
        _check_discord_id(discord_id)
        shown_name = "".join(c for c in display_name if c.isprintable())[:MAX_NAME_CHARS].strip()
        return await self._require_store().discord_user(str(discord_id), shown_name or str(discord_id))

    async def link_discord(self, name: str, discord_id: int, *, caller: Caller) -> str:
        """Make an account from before Discord ids were kept (named by a Discord username then) the
        account of Discord user ``discord_id``; says what was done."""
        require_admin(caller, "linking accounts is for the gateway's admins")
        check_account(name)
        _check_discord_id(discord_id)
        outcome = await self._require_store().link_discord(name, str(discord_id))
        if outcome == "missing":
            raise NotFoundError(f"no account named {shown(name)} without a Discord id")
        target = f"discord:{discord_id}"
        return {
            "renamed": f"{name} is now {target}: its history, ban and token are Discord user {discord_id}'s",
            "merged": f"{name}'s history went into {target}, which already existed; {name} is gone",
        }[outcome]

    async def set_admin(self, name: str, admin: bool, *, caller: Caller) -> bool:
        """Give an account (made if unknown) an admin's rights, or take them away; True if it changed.
        Its API token then carries them (naming a site, hidden boards, the admin endpoints)."""
        require_admin(caller, "making admins is for the gateway's admins")
        check_account(name)
        return await self._require_store().set_admin(name, admin)


def _check_discord_id(discord_id: int) -> None:
    if not 0 < discord_id < 2**64:  # Discord's ids are unsigned 64-bit snowflakes
        raise UserError(f"{discord_id} is not a Discord user id")


def _require_self_or_admin(caller: Caller, account: str, action: str) -> None:
    if not caller.may_act_for(account):
        require_admin(caller, f"{action} is for the gateway's admins")
