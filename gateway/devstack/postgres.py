"""PostgreSQL 15 for the gateway: a private cluster in the state folder on 127.0.0.1:42240."""

from __future__ import annotations

import secrets
from pathlib import Path

from gateway.devstack.paths import PG_BIN, POSTGRES_PORT, Paths
from gateway.devstack.proc import chown, read_pid, require_free, run, running_pid, say, user_env

PART = "postgres"
ROLE = "gateway"
DATABASE = "gateway"
_MARK = "# gateway.devstack settings"


def data_dir(paths: Paths) -> Path:
    return paths.postgres / "data"


def socket_dir(paths: Paths) -> Path:
    return paths.postgres / "run"


def password_file(paths: Paths) -> Path:
    return paths.postgres / "password"


def password(paths: Paths) -> str:
    file = password_file(paths)
    if not file.exists():
        file.write_text(secrets.token_hex(16) + "\n")
    file.chmod(0o600)
    return file.read_text().strip()


def database_url(paths: Paths) -> str:
    return f"postgresql://{ROLE}:{password(paths)}@127.0.0.1:{POSTGRES_PORT}/{DATABASE}"


def pid(paths: Paths) -> int | None:
    return running_pid(paths.pidfile(PART), "postgres")


def _as_postgres(argv: list[str], *, sql: str | None = None, timeout: float = 60) -> str:
    return run(
        argv, user="postgres", env=user_env("postgres"), input=sql, timeout=timeout, cwd=Path("/")
    ).stdout


def _psql(paths: Paths, sql: str, *variables: str) -> str:
    argv = [
        str(PG_BIN / "psql"),
        "-X",
        "-q",
        "-t",
        "-A",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        str(socket_dir(paths)),
        "-p",
        str(POSTGRES_PORT),
        "-d",
        "postgres",
    ]
    for variable in variables:
        argv += ["-v", variable]
    return _as_postgres(argv, sql=sql)


def start(paths: Paths) -> str:
    running = pid(paths)
    if running:
        return f"already up (pid {running})"
    paths.postgres.mkdir(exist_ok=True)
    paths.postgres.chmod(0o755)
    chown(paths.postgres, "postgres")
    socket_dir(paths).mkdir(exist_ok=True)
    chown(socket_dir(paths), "postgres")
    data = data_dir(paths)
    if not (data / "PG_VERSION").exists():
        say("postgres: initdb")
        _as_postgres(
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth-local=peer",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--no-sync",
            ],
            timeout=120,
        )
    conf = data / "postgresql.conf"
    text = conf.read_text()
    if _MARK not in text:
        extra = [
            _MARK,
            f"port = {POSTGRES_PORT}",
            "listen_addresses = '127.0.0.1'",
            f"unix_socket_directories = '{socket_dir(paths)}'",
            "fsync = off",
            "synchronous_commit = off",
            "full_page_writes = off",
        ]
        conf.write_text(text + "\n" + "\n".join(extra) + "\n")
    log = paths.postgres / "postgres.log"
    require_free(POSTGRES_PORT, "postgres")
    _as_postgres(
        [str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60", "start"], timeout=90
    )
    new = read_pid(data / "postmaster.pid")
    paths.pidfile(PART).write_text(f"{new}\n")
    _ensure_role(paths)
    return f"started (pid {new}, port {POSTGRES_PORT})"


def _ensure_role(paths: Paths) -> None:
    pw = f"pw={password(paths)}"
    has_role = _psql(paths, f"SELECT 1 FROM pg_roles WHERE rolname = '{ROLE}'").strip()  # noqa: S608 (constant)
    verb = "ALTER" if has_role else "CREATE"
    # CREATEDB: tests and benchmarks make scratch databases (migration round trips, a million runs)
    _psql(paths, f"{verb} ROLE {ROLE} WITH LOGIN CREATEDB PASSWORD :'pw';", pw)
    has_db = _psql(paths, f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'").strip()  # noqa: S608 (constant)
    if not has_db:
        _psql(paths, f"CREATE DATABASE {DATABASE} OWNER {ROLE};")


def stop_part(paths: Paths) -> str | None:
    running = pid(paths)
    if running is None:
        return None
    _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data_dir(paths)), "-m", "fast", "-w", "-t", "30", "stop"])
    return "stopped"
