"""API tokens saved by `gateway login`: ``{base URL: token}`` as JSON in
``$XDG_CONFIG_HOME/kernel-gateway/credentials.json`` (``~/.config/...`` without XDG_CONFIG_HOME).

The file is created mode 0600 in a directory made 0700, and replaced atomically (a temporary file in
the same directory, fsync'd, then renamed over it), so a crash never leaves half a file and no other
user can read a token at any moment. ``GATEWAY_TOKEN`` in the environment overrides the file."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gateway.core.errors import UserError

ENV_OVERRIDE = "GATEWAY_TOKEN"
FILE_MODE, DIR_MODE = 0o600, 0o700


@dataclass(frozen=True)
class Token:
    value: str
    source: str  # for messages: where the token came from (never the token itself)


def credentials_path(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME") or ""
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".config"
    return root / "kernel-gateway" / "credentials.json"


def load(path: Path) -> dict[str, str]:
    """The saved tokens by URL; {} when there is no file. UserError naming the file when it is unreadable."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {path}: {exc}; fix or delete it, then `gateway login URL`") from None
    try:
        saved = json.loads(text)
    except ValueError:
        saved = None
    if not isinstance(saved, dict) or not all(isinstance(v, str) for v in saved.values()):
        raise UserError(
            f"{path} is not a JSON object of URL to token: fix or delete it, then `gateway login URL`"
        )
    return saved


def save(path: Path, url: str, token: str) -> None:
    """Add or replace the token of ``url``, keeping the others; 0600 file, 0700 directory, atomic."""
    saved = load(path)
    saved[url] = token
    path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    os.chmod(path.parent, DIR_MODE)
    fd, temporary = tempfile.mkstemp(prefix=".credentials-", suffix=".tmp", dir=path.parent)  # 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(saved, out, indent=2, sort_keys=True)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, FILE_MODE)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def token_for(url: str, path: Path, environ: Mapping[str, str] | None = None) -> Token:
    """The token to use with ``url``: GATEWAY_TOKEN, else the one saved for it. UserError saying to log
    in when there is none."""
    env = os.environ if environ is None else environ
    if env.get(ENV_OVERRIDE, "").strip():
        return Token(env[ENV_OVERRIDE].strip(), f"the token in {ENV_OVERRIDE}")
    token = load(path).get(url)
    if not token:
        raise UserError(f"no API token for {url}: run `gateway login {url}` (or set {ENV_OVERRIDE})")
    return Token(token, f"the token saved in {path}")
