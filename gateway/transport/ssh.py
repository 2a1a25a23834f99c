"""SSH transport: ONE asyncssh connection per site, shared by every job, channels capped.

sshd allows 10 sessions per connection by default (MaxSessions); opening more fails with
ChannelOpenError, so commands wait on a semaphore instead. One SFTP channel is kept open beside them.
"""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Sequence
from pathlib import Path

import asyncssh

from gateway.errors import CommandError, TransportError
from gateway.runner import CompletedCommand
from gateway.sites import LoginConfig

KEEPALIVE_S = 15.0
CHANNEL_OPEN_RETRIES = 8


class SSHTransport:
    def __init__(self, site_name: str, login: LoginConfig) -> None:
        self._site = site_name
        self._login = login
        self._conn: asyncssh.SSHClientConnection | None = None
        self._sftp: asyncssh.SFTPClient | None = None
        self._lock = asyncio.Lock()
        self._sftp_lock = asyncio.Lock()
        # one channel stays reserved for SFTP
        self._channels = asyncio.Semaphore(max(1, login.max_channels - 1))
        self._home: str | None = None
        self.connects = 0  # how many connections were opened (benchmarks and tests read it)
        self.channel_retries = 0

    def _where(self) -> str:
        return f"site {self._site} ({self._login.user}@{self._login.host}:{self._login.port})"

    async def _connection(self) -> asyncssh.SSHClientConnection:
        async with self._lock:
            if self._conn is not None and not self._conn.is_closed():
                return self._conn
            if not self._login.known_hosts.is_file():
                raise TransportError(
                    f"{self._where()}: known_hosts file {self._login.known_hosts} is missing; "
                    "host keys are pinned, so add the site's host key there"
                )
            try:
                self._conn = await asyncssh.connect(
                    self._login.host,
                    port=self._login.port,
                    username=self._login.user,
                    client_keys=[str(self._login.identity_file)],
                    known_hosts=str(self._login.known_hosts),
                    connect_timeout=self._login.connect_timeout_s,
                    keepalive_interval=KEEPALIVE_S,
                    agent_path=None,
                    config=[],
                )
            except asyncssh.HostKeyNotVerifiable as exc:
                raise TransportError(
                    f"{self._where()}: host key does not match {self._login.known_hosts}: {exc}"
                ) from exc
            except (OSError, asyncssh.Error) as exc:
                raise TransportError(f"{self._where()}: cannot connect: {exc}") from exc
            self._sftp = None
            self.connects += 1
            return self._conn

    async def _sftp_client(self) -> asyncssh.SFTPClient:
        conn = await self._connection()
        async with self._sftp_lock:  # concurrent uploads share one SFTP channel
            if self._sftp is None:
                try:
                    self._sftp = await conn.start_sftp_client()
                except (OSError, asyncssh.Error) as exc:
                    raise TransportError(f"{self._where()}: cannot start SFTP: {exc}") from exc
            return self._sftp

    async def run(
        self,
        argv: Sequence[str],
        *,
        stdin: str | None = None,
        timeout: float | None = 30.0,
        check: bool = True,
    ) -> CompletedCommand:
        conn = await self._connection()
        command = shlex.join(argv)  # the remote shell sees each argument quoted
        async with self._channels:
            for attempt in range(CHANNEL_OPEN_RETRIES + 1):
                try:
                    proc = await conn.run(command, input=stdin, check=False, timeout=timeout)
                    break
                except asyncssh.ChannelOpenError as exc:
                    # sshd frees a closed session slightly after the client sees it close, so a
                    # burst can briefly exceed MaxSessions: wait a moment and open again
                    if attempt == CHANNEL_OPEN_RETRIES:
                        raise TransportError(f"{self._where()}: no SSH channel for {argv[0]}: {exc}") from exc
                    self.channel_retries += 1
                    await asyncio.sleep(0.005 * 2**attempt)
                except asyncssh.TimeoutError as exc:
                    raise CommandError(
                        argv, None, str(exc.stdout or ""), str(exc.stderr or ""), timed_out=True
                    ) from exc
                except (OSError, asyncssh.Error) as exc:
                    raise TransportError(f"{self._where()}: {argv[0]} failed to run: {exc}") from exc
        done = CompletedCommand(
            tuple(argv),
            proc.exit_status if proc.exit_status is not None else -1,
            str(proc.stdout or ""),
            str(proc.stderr or ""),
        )
        return done.check() if check else done

    async def home_dir(self) -> str:
        if self._home is None:
            sftp = await self._sftp_client()
            self._home = await sftp.realpath(".")
        return self._home

    async def upload_dir(self, local_dir: Path, remote_dir: str) -> None:
        sftp = await self._sftp_client()
        try:
            await sftp.put(str(local_dir), remote_dir, recurse=True, preserve=True)
        except (OSError, asyncssh.Error) as exc:
            raise TransportError(f"{self._where()}: upload to {remote_dir} failed: {exc}") from exc

    async def read_file(self, remote_path: str, max_bytes: int) -> bytes | None:
        sftp = await self._sftp_client()
        try:
            async with sftp.open(remote_path, "rb") as handle:
                data = await handle.read(max_bytes)
                return data.encode() if isinstance(data, str) else bytes(data)
        except asyncssh.SFTPNoSuchFile:
            return None
        except (OSError, asyncssh.Error) as exc:
            raise TransportError(f"{self._where()}: cannot read {remote_path}: {exc}") from exc

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            await self._conn.wait_closed()
            self._conn = None
            self._sftp = None
