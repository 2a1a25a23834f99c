"""The local development stack: real Slurm (two clusters), sshd per site and PostgreSQL on this machine.

``gateway dev up|down|status|env`` (gateway/cli/dev.py, which `make up` and `make down` run) drives it;
nothing in the product depends on this package, and it imports nothing of the CLI.
"""

from __future__ import annotations

from gateway.devstack.errors import DevStackError
from gateway.devstack.stack import DevStack, PartStatus, slurm_conf

__all__ = ["DevStack", "DevStackError", "PartStatus", "slurm_conf"]
