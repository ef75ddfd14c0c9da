"""Deployment settings: one TOML file plus `RATA_*` environment variables and `DATABASE_URL`.

Settings are read once by pydantic-settings into a frozen object and passed where needed. Secrets
(the database URL with its password, API keys) come only from the environment, never from the TOML
file: a TOML file that contains one is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from framework.errors import ParameterError

__all__ = ["RUN_TABLES", "SECRET_FIELDS", "Settings", "load_settings"]

SECRET_FIELDS = ("database_url", "master_key", "jwt_secret")
RUN_TABLES = ("runner", "feed", "broker", "risk", "strategies")


class Settings(BaseSettings):
    """rata's settings; see `load_settings`."""

    model_config = SettingsConfigDict(env_prefix="RATA_", frozen=True, extra="forbid")

    data_dir: Path = Field(Path(".rata"), description="where the embedded PostgreSQL and spools live")
    database_url: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("DATABASE_URL", "RATA_DATABASE_URL"),
        description="an external PostgreSQL; without it rata starts an embedded one in data_dir",
    )
    db_pool_min: int = Field(2, ge=1, le=100)
    db_pool_max: int = Field(10, ge=1, le=500)
    db_command_timeout: float = Field(30.0, gt=0)
    log_level: str = "INFO"
    master_key: SecretStr | None = Field(
        None, description="Fernet key(s) encrypting broker credentials, comma-separated, newest first"
    )
    master_key_file: Path | None = Field(None, description="a file of Fernet keys, one a line, newest first")
    jwt_secret: SecretStr | None = Field(None, description="HS256 key of access tokens (at least 32 bytes)")
    jwt_secret_file: Path | None = Field(None, description="a file holding the HS256 key of access tokens")
    jwt_issuer: str = "rata"
    jwt_audience: str = "rata-api"
    access_token_ttl_s: int = Field(600, ge=30, le=86_400)
    refresh_token_ttl_s: int = Field(14 * 86_400, ge=300, le=366 * 86_400)

    @property
    def embedded_db_dir(self) -> Path:
        """Return the data folder of the embedded PostgreSQL."""
        return self.data_dir / "pgdata"

    @property
    def spool_dir(self) -> Path:
        """Return the folder of the on-disk spool used while the database is unreachable."""
        return self.data_dir / "spool"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, file_secret_settings


def load_settings(config: str | Path | None = None, **overrides: Any) -> Settings:
    """Return settings from `config` (a TOML file, optional), the environment and `overrides`.

    Precedence: overrides > environment > TOML file > defaults.
    """
    file_values: dict[str, Any] = {}
    if config is not None:
        path = Path(config)
        if not path.exists():
            raise ParameterError(f"no such config file: {path}")
        file_values = dict(TomlConfigSettingsSource(Settings, toml_file=path).toml_data)
        for table in RUN_TABLES:  # the runner's own tables (`runner.config`), not settings
            file_values.pop(table, None)
        secrets = sorted(set(file_values) & set(SECRET_FIELDS))
        if secrets:
            raise ParameterError(f"{path}: secrets must come from the environment, not the config file: {secrets}")
    env_only = Settings()
    env_set = env_only.model_fields_set
    merged = {**{k: v for k, v in file_values.items() if k not in env_set}, **overrides}
    return Settings(**merged) if merged else env_only
