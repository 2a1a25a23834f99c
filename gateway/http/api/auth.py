"""Who is asking: a user's API token, or the admin token, as `Authorization: Bearer <token>`, turned into
the service's ``Caller`` (gateway.service.authority), which the service checks.

User tokens are looked up by their SHA-256 hash (gateway.service.accounts); the admin token is compared in
constant time. A user token carries an admin's rights when its account is an admin's (`gateway users
admin NAME`). Reading needs no token (anonymous: public boards only); a token that is sent must be
valid. A missing, unknown or revoked token is 401 with a message saying how to get one; a non-admin
token on an admin endpoint is 403."""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gateway.config.settings import Settings
from gateway.http.api.caches import CallerCache
from gateway.service.facade import ANONYMOUS, Caller, Gateway, UserRecord

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


async def user_for_token(request: Request, token: str) -> UserRecord | None:
    """The user a token is (None: no one's), from this process's memory while it is current
    (gateway/http/api/caches.py: dropped when any token, ban or admin's rights change)."""
    callers: CallerCache = request.app.state.caches.callers
    user = callers.get(token)
    if user is None:
        generation = callers.generation  # before the read: a change heard during it keeps it out
        user = await gateway_of(request).accounts.user_for_token(token)
        if user is not None:
            callers.put(token, user, generation)
    return user


async def current_user(request: Request, credentials: Credentials) -> UserRecord:
    """The user whose token came with the request; 401 without a valid one."""
    if credentials is None:
        raise HTTPException(401, f"no API token: {HOW_TO_AUTHENTICATE}", {"WWW-Authenticate": "Bearer"})
    user = await user_for_token(request, credentials.credentials)
    if user is None:
        raise HTTPException(
            401,
            f"the API token is unknown or was revoked: {HOW_TO_AUTHENTICATE}",
            {"WWW-Authenticate": "Bearer"},
        )
    return user


async def optional_caller(request: Request, credentials: Credentials) -> Caller:
    """Who reads: anonymous without a token; the admin token's or a user token's caller with one."""
    if credentials is None:
        return ANONYMOUS
    if is_admin_token(settings_of(request), credentials.credentials):
        return Caller(None, admin=True)
    user = await current_user(request, credentials)
    return Caller(user.name, user.admin)


async def require_admin(request: Request, credentials: Credentials) -> Caller:
    """The admin token, or an admin account's token; 401 without a token, 403 with another one."""
    if credentials is None:
        raise HTTPException(
            401, "admin endpoints need the admin token (or an admin's token) as a Bearer token"
        )
    caller = await optional_caller(request, credentials)
    if not caller.admin:
        configured = "" if settings_of(request).admin_token else " (and no GATEWAY_ADMIN_TOKEN is configured)"
        raise HTTPException(403, f"this endpoint is for the gateway's admins{configured}")
    return caller


Service = Annotated[Gateway, Depends(_service)]
User = Annotated[UserRecord, Depends(current_user)]
Viewer = Annotated[Caller, Depends(optional_caller)]
Admin = Annotated[Caller, Depends(require_admin)]
