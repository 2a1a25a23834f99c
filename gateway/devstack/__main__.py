"""``python -m gateway.devstack up|down|status|env`` (the same commands as ``gateway dev``)."""

from __future__ import annotations

from gateway.cli.dev import app

if __name__ == "__main__":
    app(prog_name="python -m gateway.devstack")
