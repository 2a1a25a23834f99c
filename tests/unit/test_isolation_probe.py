"""The isolation probe's network attempt counts a connection as reaching the site's sshd only when sshd
answers: a loopback connect that met itself (TCP simultaneous open, a port in the ephemeral range picked
as its own source port) or a silent service is not the sshd."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.sitecheck.isolation import probe_code


@pytest.fixture
def service() -> Iterator[tuple[int, list[bytes]]]:
    """A loopback server that greets each connection with what the list holds (nothing: it stays silent)."""
    greeting: list[bytes] = []
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                if greeting:
                    conn.sendall(greeting[0])
                stop.wait(1)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], greeting
    finally:
        stop.set()
        thread.join()
        server.close()


def reached(tmp_path: Path, port: int) -> str:
    code = probe_code(str(tmp_path / "decoy"), str(tmp_path / "home"), "127.0.0.1", port, "t")
    script = code + "\ntry:\n    custom_kernel(None)\nexcept RuntimeError as exc:\n    print(exc)\n"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    return done.stdout


def test_an_answering_sshd_is_reached_and_a_silent_port_is_not(
    tmp_path: Path, service: tuple[int, list[bytes]]
) -> None:
    port, greeting = service
    assert f"open a TCP connection to 127.0.0.1:{port}" not in reached(tmp_path, port)
    greeting.append(b"SSH-2.0-OpenSSH_9.2\r\n")
    assert f"open a TCP connection to 127.0.0.1:{port}" in reached(tmp_path, port)
