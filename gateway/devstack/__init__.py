"""The local development stack: real Slurm (two clusters), sshd per site and PostgreSQL on this machine.

``python -m gateway.devstack up|down|status|env`` or ``gateway dev ...`` drive it; nothing in the product
depends on this package.
"""

from __future__ import annotations

from gateway.devstack.errors import DevStackError
from gateway.devstack.stack import DevStack, PartStatus, slurm_conf

__all__ = ["DevStack", "DevStackError", "PartStatus", "slurm_conf"]
