"""The CLI says only what it was asked (issue 18's first cut): no library warnings, and --version."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

GATEWAY = str(Path(sys.executable).parent / "gateway")


def test_no_command_prints_asyncssh_s_dsa_warnings() -> None:
    # a fresh interpreter: pytest's own warning filters must not hide what a user would see
    done = subprocess.run(
        [sys.executable, "-c", "import gateway.running.transport.ssh, gateway.cli.main"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "Warning" not in done.stderr, done.stderr
    help_text = subprocess.run([GATEWAY, "sites", "--help"], capture_output=True, text=True, check=True)
    assert "Warning" not in help_text.stderr, help_text.stderr


def test_version() -> None:
    done = subprocess.run([GATEWAY, "--version"], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == f"gateway {importlib.metadata.version('kernel-gateway')}"
