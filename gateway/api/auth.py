"""Who is asking: a user's API token, or the admin token, as `Authorization: Bearer <token>`.

User tokens are looked up by their SHA-256 hash (gateway.accounts); the admin token is compared in
constant time. A missing, unknown or revoked token is 401 with a message saying how to get one; a user
token on an admin endpoint is 403."""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gateway.service import Gateway, UserRecord
from gateway.settings import Settings

bearer = HTTPBearer(auto_error=False, description="a user's API token, or the admin token")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
HOW_TO_AUTHENTICATE = (
    "send `Authorization: Bearer <token>`; get a token with `/leaderboard token` in Discord or ask an "
    "admin (`gateway users token NAME`), then `gateway login URL`"
)


def gateway_of(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


async def _service(request: Request) -> Gateway:
    """The service, as a dependency (async: FastAPI runs a plain function in its thread pool)."""
    return gateway_of(request)


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def is_admin_token(settings: Settings, token: str) -> bool:
    if settings.admin_token is None:
        return False
    expected = hashlib.sha256(settings.admin_token.get_secret_value().encode()).digest()
    return hmac.compare_digest(expected, hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest())


async def current_user(request: Request, credentials: Credentials) -> UserRecord:
    """The user whose token came with the request; 401 without a valid one."""
    if credentials is None:
        raise HTTPException(401, f"no API token: {HOW_TO_AUTHENTICATE}", {"WWW-Authenticate": "Bearer"})
    user = await gateway_of(request).user_for_token(credentials.credentials)
    if user is None:
        raise HTTPException(
            401,
            f"the API token is unknown or was revoked: {HOW_TO_AUTHENTICATE}",
            {"WWW-Authenticate": "Bearer"},
        )
    return user


async def optional_admin(request: Request, credentials: Credentials) -> bool:
    """True when the request carries the admin token (hidden leaderboards are shown to it)."""
    return credentials is not None and is_admin_token(settings_of(request), credentials.credentials)


async def require_admin(request: Request, credentials: Credentials) -> None:
    settings = settings_of(request)
    if credentials is None:
        raise HTTPException(401, "admin endpoints need the admin token as a Bearer token")
    if settings.admin_token is None:
        raise HTTPException(403, "no admin token is configured on this gateway (GATEWAY_ADMIN_TOKEN)")
    if not is_admin_token(settings, credentials.credentials):
        raise HTTPException(403, "this endpoint needs the admin token, not a user's token")


Service = Annotated[Gateway, Depends(_service)]
User = Annotated[UserRecord, Depends(current_user)]
IsAdmin = Annotated[bool, Depends(optional_admin)]
