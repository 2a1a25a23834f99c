"""Who may do what: one check, in the service, for every front end.

A front end says who is asking as a ``Caller``: the account (``users.name``) and whether it holds an
admin's rights, as that front end established them, by identity and never by a display name:

- the CLI on the gateway's own machine holds the database's credentials, so it is the operator (admin);
- the HTTP API: a user's token is that account, an admin if the account is marked so
  (``gateway users admin NAME``); the admin token (GATEWAY_ADMIN_TOKEN) is an admin without an account;
- the Discord bot: the account of the Discord user id; an admin only in a configured guild, holding one
  of the configured role ids (bot/settings.py);
- the web pages: anonymous.

The service then decides: naming a site, the local site, hidden boards, making boards, banning, draining,
cancelling others' runs and making others' tokens are an admin's; everything else is anyone's. A hidden
board is answered to a non-admin exactly as a board that does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.core.errors import RefusedError

FORBIDDEN = "forbidden"  # RefusedError.reason of an action the caller has no right to (HTTP 403)


@dataclass(frozen=True)
class Caller:
    account: (
        str | None
    )  # users.name of the caller; None: no account (anonymous, the operator, the admin token)
    admin: bool = False

    def may_act_for(self, account: str) -> bool:
        """Whether this caller may act on ``account``'s behalf (their runs, their token)."""
        return self.admin or self.account == account


ANONYMOUS = Caller(None)
OPERATOR = Caller(None, admin=True)  # the CLI on the gateway's machine, with the database's credentials


def require_admin(caller: Caller, refusal: str) -> None:
    """RefusedError (forbidden) with ``refusal`` as its message unless the caller holds an admin's
    rights."""
    if not caller.admin:
        raise RefusedError(refusal, FORBIDDEN)
