"""MariaDB for slurmdbd, from its own datadir in the state folder, on 127.0.0.1:42231 and a private socket."""

from __future__ import annotations

import secrets
from pathlib import Path

from gateway.devstack.paths import MARIADB_PORT, Paths
from gateway.devstack.proc import (
    chown,
    port_open,
    require_free,
    run,
    running_pid,
    say,
    spawn,
    stop,
    wait_until,
)

PART = "mariadb"
DB_NAME = "slurm_acct_db"
DB_USER = "slurm"


def socket_path(paths: Paths) -> Path:
    return paths.mariadb / "mysqld.sock"


def password(paths: Paths) -> str:
    """The slurmdbd user's password, made once and kept (0600) in the state folder."""
    file = paths.mariadb / "slurm-password"
    if not file.exists():
        file.write_text(secrets.token_hex(16) + "\n")
        file.chmod(0o600)
    return file.read_text().strip()


def pid(paths: Paths) -> int | None:
    return running_pid(paths.pidfile(PART), "mariadbd")


def _client(paths: Paths, sql: str) -> None:
    run(["mariadb", "--no-defaults", f"--socket={socket_path(paths)}", "--user=root", "--batch"], input=sql)


def start(paths: Paths) -> str:
    running = pid(paths)
    if running:
        return f"already up (pid {running})"
    data = paths.mariadb / "data"
    paths.mariadb.mkdir(exist_ok=True)
    paths.mariadb.chmod(0o755)
    chown(paths.mariadb, "mysql")
    log = paths.mariadb / "error.log"
    if not (data / "mysql").is_dir():
        say("mariadb: initialising a datadir (mariadb-install-db)")
        data.mkdir(exist_ok=True)
        chown(data, "mysql")
        run(
            [
                "mariadb-install-db",
                "--no-defaults",
                "--user=mysql",
                f"--datadir={data}",
                "--skip-test-db",
                "--auth-root-authentication-method=socket",
            ],
            timeout=180,
        )
    require_free(MARIADB_PORT, "mariadbd")
    argv = [
        "/usr/sbin/mariadbd",
        "--no-defaults",
        f"--datadir={data}",
        f"--socket={socket_path(paths)}",
        f"--pid-file={paths.mariadb / 'mariadbd.pid'}",
        f"--log-error={log}",
        "--bind-address=127.0.0.1",
        f"--port={MARIADB_PORT}",
        "--skip-name-resolve",
        "--innodb-buffer-pool-size=64M",
        "--innodb-log-file-size=48M",
        "--max-connections=50",
    ]
    new = spawn(argv, pidfile=paths.pidfile(PART), log=paths.log(PART), user="mysql")
    wait_until(
        lambda: socket_path(paths).exists() and port_open(MARIADB_PORT),
        what="mariadbd",
        timeout=60,
        log=log,
        pid=new,
    )
    pw = password(paths)
    grants = "".join(
        f"CREATE USER IF NOT EXISTS '{DB_USER}'@'{host}' IDENTIFIED BY '{pw}';"
        f"ALTER USER '{DB_USER}'@'{host}' IDENTIFIED BY '{pw}';"
        f"GRANT ALL ON {DB_NAME}.* TO '{DB_USER}'@'{host}';"
        for host in ("127.0.0.1", "localhost")
    )
    _client(paths, f"CREATE DATABASE IF NOT EXISTS {DB_NAME};{grants}FLUSH PRIVILEGES;")
    return f"started (pid {new}, port {MARIADB_PORT})"


def stop_part(paths: Paths) -> str | None:
    running = pid(paths)
    return None if running is None else stop(running, timeout=20)
