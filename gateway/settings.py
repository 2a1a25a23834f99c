"""Settings from the environment (prefix ``GATEWAY_``) or a ``.env`` file; no import-time globals."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", env_file=".env", extra="ignore")

    database_url: SecretStr | None = Field(
        default=None, description="postgresql://user:password@host:port/db; unset means no database"
    )
    sites_dir: Path = Field(default=REPO_ROOT / "site_configs", description="folder of site YAML files")
    templates_dir: Path = Field(default=REPO_ROOT / "templates", description="sbatch Jinja templates")
    local_workdir: Path = Field(
        default=Path.home() / ".cache" / "kernel-gateway" / "runs",
        description="where the built-in local site keeps its job bundles",
    )
    max_submission_bytes: int = Field(default=256 * 1024, description="largest submission file accepted")

    def database_dsn(self) -> str | None:
        return self.database_url.get_secret_value() if self.database_url else None
