"""Settings from the environment (prefix ``GATEWAY_``) or a ``.env`` file; no import-time globals."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.config.sites import KeepBundles, check_keep_bundles
from gateway.core import resources

# The source checkout's root, for the dev stack, tests and benchmarks that run from one; the gateway's own
# files (templates, migrations, example sites and problems) are found through gateway.core.resources instead.
REPO_ROOT = Path(__file__).resolve().parents[2]


def dev_env_file() -> Path | None:
    """The env file the dev stack writes while it is up (and removes on `down`): GATEWAY_DEV_DIR's, else
    the checkout's .dev/; None for an installed gateway with no GATEWAY_DEV_DIR."""
    dev_dir = os.environ.get("GATEWAY_DEV_DIR")
    if dev_dir:
        return Path(dev_dir) / "env"
    root = resources.checkout_root()
    return root / ".dev" / "env" if root is not None else None


class Settings(BaseSettings):
    """Read from GATEWAY_* variables, then ./.env, then the running dev stack's env file."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore")

    def __init__(self, **values: Any) -> None:
        # env files are resolved per instance, so GATEWAY_DEV_DIR set at run time is honoured
        dev_env = dev_env_file()
        env_files = (dev_env, Path(".env")) if dev_env is not None else (Path(".env"),)
        super().__init__(_env_file=env_files, **values)

    database_url: SecretStr | None = Field(
        default=None, description="postgresql://user:password@host:port/db; unset means no database"
    )
    sites_dir: Path = Field(
        default_factory=resources.default_sites_dir,
        description="folder of site YAML files; default: site_configs/ in a checkout, else "
        "$XDG_CONFIG_HOME/kernel-gateway/sites (~/.config/kernel-gateway/sites)",
    )
    tasks_dir: Path = Field(
        default_factory=resources.problems_dir,
        description="task directories admins may create leaderboards from, and where `--task NAME` is "
        "looked up; default: the example problems shipped with the gateway",
    )
    templates_dir: Path = Field(
        default_factory=resources.templates_dir,
        description="sbatch Jinja templates; default: the templates shipped with the gateway",
    )
    local_workdir: Path = Field(
        default=Path.home() / ".cache" / "kernel-gateway" / "runs",
        description="where the built-in local site keeps its job bundles",
    )
    local_isolation: Literal["bubblewrap", "none"] = Field(
        default="bubblewrap",
        description="the sandbox around submitted code on the built-in local site; `none` runs it "
        "unconfined as you (fine for your own code on your own machine, never for others')",
    )
    local_keep_bundles: KeepBundles = Field(
        default="none",
        description="what of a local run's bundle stays after it ended: none, or logs (output.log and "
        "result.json only); as a site's keep_bundles",
    )
    max_submission_bytes: int = Field(default=256 * 1024, description="largest submission file accepted")
    worker_concurrency: int = Field(default=16, ge=1, description="runs one worker follows at once")
    worker_heartbeat_s: float = Field(default=2.0, gt=0, description="how often a worker renews its claims")
    worker_stale_s: float = Field(
        default=45.0,
        gt=0,
        description="a claim not renewed for this long is taken over by another worker; keep it above "
        "the submit timeout (30 s) so a worker killed mid-sbatch is not raced",
    )
    worker_runs_local: bool = Field(
        default=False,
        description="let this gateway's workers run queued submissions on their own machine (the "
        "built-in local site), which holds the database URL and every site's keys; off: such runs fail "
        "with a message saying so (`gateway submit` on this machine still runs its own local runs)",
    )

    max_unfinished_runs_per_user: int = Field(
        default=20,
        ge=0,
        description="runs (queued or running) one user may have unfinished at once, every leaderboard "
        "together; a leaderboard may set its own (`gateway leaderboard limit NAME --unfinished N`); "
        "0: no cap",
    )
    submissions_per_minute: int = Field(
        default=20,
        ge=0,
        description="submissions one user may make a minute through any front end, every leaderboard "
        "together (each leaderboard's own limits apply too); 0: no limit",
    )

    routing_policy_file: Path | None = Field(
        default=None,
        description="the routing policy: preferred sites and fallbacks (Modal, GitHub Actions) per "
        "leaderboard and GPU type; default: policy/routing.yaml in the sites folder; none: no fallbacks",
    )
    github_tokens: SecretStr | None = Field(
        default=None,
        description="GitHub tokens for the Actions fallback, comma-separated: the next is used when one "
        "is rejected or rate limited",
    )
    modal_token_id: SecretStr | None = Field(
        default=None, description="Modal token id (else Modal's own MODAL_TOKEN_ID or ~/.modal.toml)"
    )
    modal_token_secret: SecretStr | None = Field(default=None, description="Modal token secret")

    admin_token: SecretStr | None = Field(
        default=None,
        description="the HTTP API's admin token (Bearer) for /api/admin; unset: no admin endpoints",
    )
    api_requests_per_minute: int = Field(
        default=600, ge=1, description="HTTP API requests one client (token or address) may make a minute"
    )
    api_submissions_per_minute: int = Field(
        default=20,
        ge=1,
        description="submissions one user may post a minute (leaderboard limits apply too)",
    )
    api_max_streams: int = Field(
        default=500,
        ge=1,
        description="event streams (SSE) the HTTP API serves at once, all processes together",
    )
    api_max_streams_per_client: int = Field(
        default=8,
        ge=1,
        description="event streams one client (the user of its token, else its address) may hold open at "
        "once, all API processes together",
    )
    api_header_timeout_s: float = Field(
        default=10.0, gt=0, description="a request's headers must arrive within this after it starts"
    )
    api_body_timeout_s: float = Field(
        default=30.0, gt=0, description="a request's body must arrive whole within this (else 408)"
    )
    api_ranking_cache: bool = Field(
        default=True,
        description="each API process keeps rankings in memory until PostgreSQL's NOTIFY says they changed "
        "(false: every ranking read queries the database)",
    )
    api_token_cache_s: float = Field(
        default=10.0,
        ge=0,
        description="each API process remembers who a token is for this long, or until a token, ban or "
        "admin's rights change (0: every request looks its token up)",
    )
    metrics_token: SecretStr | None = Field(
        default=None, description="if set, /metrics needs it as a Bearer token (else 401)"
    )

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO",
        description="level of the logs of `gateway worker`, `serve` and `bot` (DEBUG, INFO, WARNING, ERROR; "
        "-v: DEBUG); other libraries log warnings only, unless DEBUG",
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="their format on stderr: text (ISO timestamp, level, logger, message) or json (one "
        "object a line: ts, level, logger, message, exc_info); --log-format wins",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_any_case(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _format_any_case(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("local_keep_bundles", mode="before")
    @classmethod
    def _keep_bundles(cls, value: Any) -> Any:
        return check_keep_bundles(value)

    def github_token_list(self) -> list[SecretStr]:
        raw = self.github_tokens.get_secret_value() if self.github_tokens else ""
        return [SecretStr(token.strip()) for token in raw.split(",") if token.strip()]

    def database_dsn(self) -> str | None:
        return self.database_url.get_secret_value() if self.database_url else None
