"""SSH transport: ONE asyncssh connection per site, shared by every job, channels capped.

sshd allows 10 sessions per connection by default (MaxSessions); opening more fails with ChannelOpenError,
so channels are budgeted: one SFTP channel, ``tail_channels`` for streaming job output and long-lived
processes (the login agent), and the rest for commands, each kind waiting on its own semaphore. A lost
connection is reopened on next use, with backoff;
a host key that does not match the pinned one is refused at once and never retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
from collections.abc import AsyncGenerator, Sequence
from pathlib import Path

import asyncssh

from gateway.config.site_parts import LoginConfig
from gateway.core.commands import CompletedCommand
from gateway.core.errors import CommandError, TransportError
from gateway.running.transport import ProcessChannel

log = logging.getLogger(__name__)
CHANNEL_OPEN_RETRIES = 8
CONNECT_ATTEMPTS = 3
MAX_BACKOFF_S = 5.0


class HostKeyError(TransportError):
    """The site presented a host key that is not the pinned one (or none is pinned)."""


def known_host_pattern(host: str, port: int) -> str:
    """How known_hosts names a host: ``host``, or ``[host]:port`` off port 22."""
    return host if port == 22 else f"[{host}]:{port}"


def is_pinned(known_hosts: Path, host: str, port: int) -> bool:
    """Whether ``known_hosts`` holds a key (or a CA) for host:port: the one check the transport and
    `gateway sites check` share. HostKeyError when the file exists but cannot be read or parsed (never
    "not pinned": trust on first use would append to a file it cannot read)."""
    if not known_hosts.is_file():
        return False
    try:
        host_keys, ca_keys, *_ = asyncssh.read_known_hosts(str(known_hosts)).match(host, "", port)
    except (OSError, ValueError, asyncssh.Error) as exc:
        raise HostKeyError(f"cannot read the pinned host keys in {known_hosts}: {exc}") from exc
    return bool(host_keys or ca_keys)


class SSHTransport:
    def __init__(self, site_name: str, login: LoginConfig) -> None:
        self._site = site_name
        self._login = login
        self._conn: asyncssh.SSHClientConnection | None = None
        self._jump: asyncssh.SSHClientConnection | None = None
        self._sftp: asyncssh.SFTPClient | None = None
        self._lock = asyncio.Lock()
        self._sftp_lock = asyncio.Lock()
        self._commands = asyncio.Semaphore(max(1, login.max_channels - 1 - login.tail_channels))
        self._tails = asyncio.Semaphore(max(1, login.tail_channels))
        self._home: str | None = None
        self._failures = 0  # consecutive failed connects: the backoff before the next try grows with it
        self.connects = 0  # connections opened (benchmarks and tests read it)
        self.channel_retries = 0

    def _where(self) -> str:
        return f"site {self._site} ({self._login.user}@{self._login.host}:{self._login.port})"

    def _drop(self, conn: asyncssh.SSHClientConnection) -> None:
        """Forget a connection that broke, so the next use opens a new one."""
        if self._conn is conn:
            self._conn, self._sftp = None, None
            conn.abort()

    async def _connection(self) -> asyncssh.SSHClientConnection:
        async with self._lock:
            if self._conn is not None and not self._conn.is_closed():
                return self._conn
            last: Exception | None = None
            for attempt in range(CONNECT_ATTEMPTS):
                if self._failures:
                    await asyncio.sleep(min(MAX_BACKOFF_S, 0.1 * 2 ** (self._failures - 1)))
                try:
                    self._conn = await self._open()
                except HostKeyError:
                    raise  # a wrong key does not get better by asking again
                except TransportError as exc:
                    self._failures += 1
                    last = exc
                    log.info("%s: connect attempt %d failed: %s", self._where(), attempt + 1, exc)
                    continue
                self._failures = 0
                self._sftp = None
                self.connects += 1
                return self._conn
            assert last is not None
            raise last

    async def _open(self) -> asyncssh.SSHClientConnection:
        login = self._login
        tunnel = None
        if login.jump_host is not None:
            jump = login.jump_host
            if self._jump is None or self._jump.is_closed():
                self._jump = await self._connect(
                    jump.host, jump.port, jump.user, jump.identity_file or login.identity_file, None
                )
            tunnel = self._jump
        return await self._connect(login.host, login.port, login.user, login.identity_file, tunnel)

    async def _connect(
        self,
        host: str,
        port: int,
        user: str,
        identity: Path,
        tunnel: asyncssh.SSHClientConnection | None,
    ) -> asyncssh.SSHClientConnection:
        login = self._login
        where = f"{user}@{host}:{port}" + (" (through the jump host)" if tunnel else "")
        pinned = is_pinned(login.known_hosts, host, port)
        if not pinned and not login.trust_on_first_use:
            raise HostKeyError(
                f"site {self._site}: no host key for {host}:{port} in {login.known_hosts}; host keys are "
                f"pinned: add it (ssh-keyscan -p {port} {host} >> {login.known_hosts}) after checking its "
                "fingerprint with the site's admins, or set login.trust_on_first_use: true"
            )
        try:
            conn = await asyncssh.connect(
                host,
                port=port,
                username=user,
                client_keys=[str(identity)],
                known_hosts=str(login.known_hosts) if pinned else None,
                connect_timeout=login.connect_timeout_s,
                keepalive_interval=login.keepalive_s,
                keepalive_count_max=3,
                tunnel=tunnel,
                agent_path=None,
                config=[],
            )
        except asyncssh.HostKeyNotVerifiable as exc:
            raise HostKeyError(
                f"site {self._site}: the host key of {where} does not match {login.known_hosts}; refusing "
                f"to connect ({exc.reason}). If the site really changed its key, replace the entry."
            ) from exc
        except (OSError, asyncssh.Error) as exc:
            raise TransportError(f"site {self._site}: cannot connect to {where}: {exc}") from exc
        if not pinned:
            await asyncio.to_thread(self._record_first_key, conn, host, port)
        return conn

    def _record_first_key(self, conn: asyncssh.SSHClientConnection, host: str, port: int) -> None:
        key = conn.get_server_host_key()
        if key is None:
            return
        line = f"{known_host_pattern(host, port)} {key.export_public_key('openssh').decode().strip()}\n"
        self._login.known_hosts.parent.mkdir(parents=True, exist_ok=True)
        with self._login.known_hosts.open("a") as handle:
            handle.write(line)
        log.warning("site %s: trusted %s's host key on first use and pinned it", self._site, host)

    async def _sftp_client(self) -> asyncssh.SFTPClient:
        conn = await self._connection()
        async with self._sftp_lock:  # concurrent uploads share one SFTP channel
            if self._sftp is None:
                try:
                    self._sftp = await conn.start_sftp_client()
                except (OSError, asyncssh.Error) as exc:
                    self._drop(conn)
                    raise TransportError(f"{self._where()}: cannot start SFTP: {exc}") from exc
            return self._sftp

    async def run(
        self,
        argv: Sequence[str],
        *,
        stdin: str | bytes | None = None,
        timeout: float | None = None,
        check: bool = True,
    ) -> CompletedCommand:
        command = shlex.join(argv)  # the remote shell sees each argument quoted
        timeout = self._login.command_timeout_s if timeout is None else timeout
        binary = isinstance(stdin, bytes)
        async with self._commands:
            # a connection found broken before the command started is reopened once: nothing ran yet
            for reconnects in range(2):
                conn = await self._connection()
                try:
                    proc = await self._run_on(conn, argv, command, stdin, timeout, binary)
                    break
                except _NotStarted as exc:
                    self._drop(conn)
                    if reconnects == 1:
                        raise TransportError(f"{self._where()}: {argv[0]} could not start: {exc}") from exc
        out = proc.stdout or ""
        err = proc.stderr or ""
        done = CompletedCommand(
            tuple(argv),
            proc.exit_status if proc.exit_status is not None else -1,
            out.decode(errors="replace") if isinstance(out, bytes) else out,
            err.decode(errors="replace") if isinstance(err, bytes) else err,
        )
        return done.check() if check else done

    async def _run_on(
        self,
        conn: asyncssh.SSHClientConnection,
        argv: Sequence[str],
        command: str,
        stdin: str | bytes | None,
        timeout: float,
        binary: bool,
    ) -> asyncssh.SSHCompletedProcess:
        for attempt in range(CHANNEL_OPEN_RETRIES + 1):
            try:
                return await conn.run(
                    command, input=stdin, check=False, timeout=timeout, encoding=None if binary else "utf-8"
                )
            except asyncssh.ChannelOpenError as exc:
                if conn.is_closed():
                    raise _NotStarted(str(exc)) from exc
                # sshd frees a closed session slightly after the client sees it close, so a burst can
                # briefly exceed MaxSessions: wait a moment and open again
                if attempt == CHANNEL_OPEN_RETRIES:
                    raise TransportError(f"{self._where()}: no SSH channel for {argv[0]}: {exc}") from exc
                self.channel_retries += 1
                await asyncio.sleep(0.005 * 2**attempt)
            except asyncssh.TimeoutError as exc:
                raise CommandError(
                    argv, None, str(exc.stdout or ""), str(exc.stderr or ""), timed_out=True
                ) from exc
            except (OSError, asyncssh.Error) as exc:
                # the connection broke while the command ran: it may or may not have taken effect
                self._drop(conn)
                raise TransportError(f"{self._where()}: lost the connection during {argv[0]}: {exc}") from exc
        raise AssertionError("unreachable")

    async def stream_lines(self, argv: Sequence[str], *, max_line: int = 4096) -> AsyncGenerator[str, None]:
        if self._login.tail_channels == 0:
            return  # the site gives no channel to streams: results come by polling alone
        async with self._tails:
            conn = await self._connection()
            try:
                proc = await conn.create_process(shlex.join(argv), stdin=asyncssh.DEVNULL, encoding=None)
            except (OSError, asyncssh.Error) as exc:
                raise TransportError(f"{self._where()}: cannot start {argv[0]}: {exc}") from exc
            try:
                while True:
                    try:
                        raw = await proc.stdout.readline()
                    except (OSError, asyncssh.Error) as exc:
                        raise TransportError(f"{self._where()}: stream of {argv[0]} broke: {exc}") from exc
                    if not raw:
                        if conn.is_closed():  # not the command's end: the connection went away
                            self._drop(conn)
                            raise TransportError(f"{self._where()}: lost the connection streaming {argv[0]}")
                        return
                    yield raw.decode(errors="replace").rstrip("\n")[:max_line]
            finally:
                # ask the remote command to stop; closing the channel ends it if the signal is ignored
                with contextlib.suppress(OSError, asyncssh.Error):
                    proc.terminate()
                proc.close()

    async def open_process(self, argv: Sequence[str]) -> ProcessChannel | None:
        if self._login.tail_channels == 0:
            return None  # the site gives no channel to long-lived processes
        await self._tails.acquire()  # held until the process's channel is closed
        try:
            conn = await self._connection()
            proc = await conn.create_process(shlex.join(argv), stderr=asyncssh.STDOUT, encoding=None)
        except (OSError, asyncssh.Error) as exc:
            self._tails.release()
            raise TransportError(f"{self._where()}: cannot start {argv[0]}: {exc}") from exc
        except BaseException:
            self._tails.release()
            raise
        return _SSHProcess(self, conn, proc)

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
            if self._conn is not None and self._conn.is_closed():
                self._drop(self._conn)
            raise TransportError(f"{self._where()}: cannot read {remote_path}: {exc}") from exc

    async def close(self) -> None:
        for conn in (self._conn, self._jump):
            if conn is not None:
                conn.close()
                with contextlib.suppress(OSError, asyncssh.Error):
                    await conn.wait_closed()
        self._conn = self._jump = None
        self._sftp = None


class _SSHProcess:
    """A process started by SSHTransport.open_process, holding one of the stream channels until closed."""

    def __init__(
        self,
        transport: SSHTransport,
        conn: asyncssh.SSHClientConnection,
        proc: asyncssh.SSHClientProcess[bytes],
    ) -> None:
        self._transport = transport
        self._conn = conn
        self._proc = proc
        self._closed = False

    def write(self, data: bytes) -> None:
        if not self._closed:
            with contextlib.suppress(OSError, asyncssh.Error):
                self._proc.stdin.write(data)

    async def readline(self) -> bytes:
        if self._closed:
            return b""
        try:
            raw = await self._proc.stdout.readline()
        except (OSError, asyncssh.Error) as exc:
            log.info("%s: a long-lived process's output broke: %s", self._transport._where(), exc)
            raw = b""
        if not raw and self._conn.is_closed():
            self._transport._drop(self._conn)
        return raw

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # ask it to stop; closing the channel ends it if the signal is ignored (its stdin closes too)
        with contextlib.suppress(OSError, asyncssh.Error):
            self._proc.terminate()
        self._proc.close()
        self._transport._tails.release()


class _NotStarted(Exception):
    """The channel could not be opened because the connection was gone: the command never ran."""
