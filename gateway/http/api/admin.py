"""Admin endpoints, with the admin token (GATEWAY_ADMIN_TOKEN) or an admin account's token: users' API
tokens, bans, admins, sites, runs. The service checks the caller again (gateway.service.authority)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from gateway.http.api.auth import Admin, Service, require_admin
from gateway.http.api.schemas import ErrorOut, TokenOut

router = APIRouter(
    prefix="/api/admin",
    tags=["admin"],
    dependencies=[Depends(require_admin)],
    responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}},
)


class DrainIn(BaseModel):
    reason: str | None = None


@router.post("/users/{name}/token", response_model=TokenOut)
async def create_token(name: str, gateway: Service, admin: Admin) -> TokenOut:
    """A new API token for user NAME (recorded if new), replacing theirs; shown once."""
    return TokenOut(user=name, token=await gateway.accounts.create_token(name, caller=admin))


@router.delete("/users/{name}/token")
async def revoke_token(name: str, gateway: Service, admin: Admin) -> dict[str, Any]:
    """Revoke user NAME's API token: requests with it are refused from now on."""
    return {"user": name, "revoked": await gateway.accounts.revoke_token(name, caller=admin)}


@router.post("/users/{name}/ban")
async def ban(name: str, gateway: Service, admin: Admin) -> dict[str, Any]:
    return {
        "user": name,
        "banned": True,
        "changed": await gateway.boards.set_banned(name, True, caller=admin),
    }


@router.post("/users/{name}/unban")
async def unban(name: str, gateway: Service, admin: Admin) -> dict[str, Any]:
    return {
        "user": name,
        "banned": False,
        "changed": await gateway.boards.set_banned(name, False, caller=admin),
    }


@router.post("/sites/{site}/drain")
async def drain(site: str, gateway: Service, admin: Admin, body: DrainIn | None = None) -> dict[str, Any]:
    """Drain a site: routing skips it; its running jobs go on."""
    await gateway.sites.set_drained(site, True, body.reason if body else None, caller=admin)
    return {"site": site, "drained": True}


@router.post("/sites/{site}/resume")
async def resume(site: str, gateway: Service, admin: Admin) -> dict[str, Any]:
    await gateway.sites.set_drained(site, False, caller=admin)
    return {"site": site, "drained": False}


@router.post("/runs/{run_id}/cancel")
async def cancel(run_id: str, gateway: Service, admin: Admin) -> dict[str, str]:
    """Cancel anyone's run."""
    return {"run_id": run_id, "message": await gateway.cancel_run(run_id, caller=admin)}


@router.post("/users/{name}/admin")
async def make_admin(name: str, gateway: Service, admin: Admin) -> dict[str, Any]:
    """Give account NAME an admin's rights: its token may name sites and see hidden boards."""
    return {
        "user": name,
        "admin": True,
        "changed": await gateway.accounts.set_admin(name, True, caller=admin),
    }


@router.delete("/users/{name}/admin")
async def revoke_admin(name: str, gateway: Service, admin: Admin) -> dict[str, Any]:
    return {
        "user": name,
        "admin": False,
        "changed": await gateway.accounts.set_admin(name, False, caller=admin),
    }
