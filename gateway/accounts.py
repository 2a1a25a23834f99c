"""API tokens for the HTTP API and the remote CLI: made for a user, shown once, kept only as a SHA-256
hash (users.token_sha256), so a copy of the database holds no usable token. A user has at most one;
making a new one replaces it, and revoking removes it. Mixed into gateway.service.Gateway."""

from __future__ import annotations

import hashlib
import secrets
from typing import TYPE_CHECKING

from gateway.errors import NotFoundError
from gateway.store import Store, UserRecord
from gateway.validation import check_name, shown

TOKEN_PREFIX = "gwt_"  # noqa: S105 (a prefix, not a secret): recognisable in a leaked-secret scan, and in a user's shell history
_TOKEN_BYTES = 32
MAX_TOKEN_CHARS = 200


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class Accounts:
    if TYPE_CHECKING:  # provided by gateway.service.Gateway

        def _require_store(self) -> Store: ...

    async def create_token(self, user: str) -> str:
        """A new API token for ``user`` (recorded if not seen yet), replacing the one they had; the
        token itself is returned once and never stored."""
        check_name("user name", user)
        token = TOKEN_PREFIX + secrets.token_urlsafe(_TOKEN_BYTES)
        await self._require_store().set_token(user, token_hash(token))
        return token

    async def revoke_token(self, user: str) -> bool:
        """Revoke ``user``'s API token; False if they had none."""
        check_name("user name", user)
        store = self._require_store()
        if await store.get_user(user) is None:
            raise NotFoundError(f"no user named {shown(user)}")
        return await store.set_token(user, None)

    async def user_for_token(self, token: str) -> UserRecord | None:
        """The user a token belongs to; None for an unknown, revoked or malformed one."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > MAX_TOKEN_CHARS:
            return None
        return await self._require_store().user_by_token(token_hash(token))
