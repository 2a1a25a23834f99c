"""The dev stack's one exception type."""

from __future__ import annotations

from gateway.core.errors import GatewayError


class DevStackError(GatewayError):
    """A part of the local dev stack could not be installed, started, checked or stopped."""
