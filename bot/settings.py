"""Process settings: one typed object built at start-up from the environment or `.env`, never at import."""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path
from typing import Annotated, Final, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

RUNNERS: Final = ("local", "github-actions", "kubernetes", "fly")
NO_AGENT_ENV: Final = "none"
"""`KICKOFF_AGENT_ENV=none`: agents receive no environment name at all (unset or empty means the default)."""
_ENV_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_REPOSITORY: Final = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[-.\w]{1,100}$")


class SettingsError(Exception):
    """A setting is missing or malformed; the message names it in one line."""


def normalize_private_key(raw: str) -> str:
    """Accept PEM text, PEM with literal `\\n` escapes (as `.env` files and secret stores keep it), or base64 of PEM."""
    text = raw.strip().strip('"').strip("'")
    if "-----BEGIN" in text:
        pem = text.replace("\\n", "\n")
    else:
        try:
            pem = base64.b64decode("".join(text.split()), validate=True).decode("ascii")
        except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
            raise ValueError("is neither PEM text nor base64-encoded PEM") from exc
        if "-----BEGIN" not in pem:
            raise ValueError("is base64 but does not decode to a PEM key")
    if "PRIVATE KEY-----" not in pem or "-----END" not in pem:
        raise ValueError("is not a PEM private key (expected -----BEGIN ... PRIVATE KEY-----)")
    return pem.strip() + "\n"


def _names(value: object) -> object:
    """A comma-separated setting as a tuple of its non-empty items (None when it lists nothing)."""
    if isinstance(value, str):
        items = tuple(item.strip() for item in value.split(",") if item.strip())
        return items or None
    return value


def agent_env_names(listed: tuple[str, ...] | None) -> frozenset[str]:
    """The environment names agents may receive under `KICKOFF_AGENT_ENV=listed` (None: the default)."""
    if listed is None:
        from bot.config.model import DEFAULT_AGENT_ENV

        return DEFAULT_AGENT_ENV
    return frozenset(name for name in listed if name != NO_AGENT_ENV)


def _check_agent_env(value: tuple[str, ...] | None) -> tuple[str, ...] | None:
    from bot.config.model import is_kickoff_env

    if value is None or value == (NO_AGENT_ENV,):
        return value
    for name in value:
        if not _ENV_NAME.match(name):
            raise ValueError(f"`{name}` is not an environment variable name (letters, digits and _)")
        if is_kickoff_env(name):
            raise ValueError(f"`{name}` is one of Kickoff's own secrets or settings and is never passed to an agent")
    return value


class Settings(BaseSettings):
    """Everything the process reads from its environment. Names are the ones users set (see DESIGN.md)."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    app_id: int | None = Field(default=None, validation_alias="APP_ID")
    private_key: SecretStr | None = Field(default=None, validation_alias="PRIVATE_KEY")
    private_key_path: Path | None = Field(default=None, validation_alias="PRIVATE_KEY_PATH")
    webhook_secret: SecretStr | None = Field(default=None, validation_alias="WEBHOOK_SECRET")
    github_api_url: str = Field(default="https://api.github.com", validation_alias="GITHUB_API_URL")
    database_url: str = Field(default="sqlite:///./kickoff.db", validation_alias="DATABASE_URL")
    public_url: str = Field(default="http://localhost:3000", validation_alias="PUBLIC_URL")
    runner: Literal["local", "github-actions", "kubernetes", "fly"] = Field(
        default="local", validation_alias="KICKOFF_RUNNER"
    )
    # Operator policy (docs/configuration.md, "What the operator decides"): what a repository's config may ask for.
    runners: Annotated[tuple[str, ...] | None, NoDecode] = Field(default=None, validation_alias="KICKOFF_RUNNERS")
    agent_env: Annotated[tuple[str, ...] | None, NoDecode] = Field(default=None, validation_alias="KICKOFF_AGENT_ENV")
    config_extends: Annotated[tuple[str, ...] | None, NoDecode] = Field(
        default=None, validation_alias="KICKOFF_CONFIG_EXTENDS"
    )
    max_parallel_runs: int = Field(default=4, ge=1, validation_alias="KICKOFF_MAX_PARALLEL_RUNS")
    dashboard_token: SecretStr | None = Field(default=None, validation_alias="DASHBOARD_TOKEN")
    metrics_token: SecretStr | None = Field(default=None, validation_alias="METRICS_TOKEN")
    # The address `kickoff serve` listens on (its --host, which also reads HOST). The dashboard and /metrics go
    # without a token only on a loopback address; `serve` writes its real --host here before building the app.
    host: str = Field(default="127.0.0.1", validation_alias="HOST")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", validation_alias="LOG_LEVEL")
    log_format: Literal["plain", "json"] = Field(default="plain", validation_alias="LOG_FORMAT")

    # Dispatcher tuning; the defaults suit one process serving a team.
    dispatch_concurrency: int = Field(default=32, ge=1, validation_alias="KICKOFF_DISPATCH_CONCURRENCY")
    handler_timeout_seconds: float = Field(default=60.0, gt=0, validation_alias="KICKOFF_HANDLER_TIMEOUT")
    lease_seconds: float = Field(default=120.0, gt=0, validation_alias="KICKOFF_LEASE_SECONDS")
    max_attempts: int = Field(default=6, ge=1, validation_alias="KICKOFF_MAX_ATTEMPTS")
    retry_base_seconds: float = Field(default=2.0, ge=0, validation_alias="KICKOFF_RETRY_BASE_SECONDS")
    poll_seconds: float = Field(default=0.5, gt=0, validation_alias="KICKOFF_POLL_SECONDS")
    # How often `serve` asks GitHub to redeliver deliveries that failed to reach it; 0 turns it off.
    redeliver_seconds: float = Field(default=600.0, ge=0, validation_alias="KICKOFF_REDELIVER_SECONDS")
    # The webhook ingress reads a body before its signature can be checked: at most this many unauthenticated
    # bytes are held at once (past it a new body gets 503), and a body must arrive within this many seconds (408).
    # The budget is at least GitHub's 25 MiB payload cap, so one legitimate delivery always fits.
    webhook_body_budget: int = Field(
        default=64 * 1024 * 1024, ge=25 * 1024 * 1024, validation_alias="KICKOFF_WEBHOOK_BODY_BUDGET"
    )
    webhook_read_seconds: float = Field(default=30.0, gt=0, validation_alias="KICKOFF_WEBHOOK_READ_SECONDS")
    # Extra routers to compose at the root, as `module:attribute` (a plugin's handlers).
    plugins: str = Field(default="", validation_alias="KICKOFF_PLUGINS")

    _split = field_validator("runners", "agent_env", "config_extends", mode="before")(_names)
    _check_env = field_validator("agent_env")(_check_agent_env)

    @field_validator("runners")
    @classmethod
    def _known_runners(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for name in value or ():
            if name not in RUNNERS:
                raise ValueError(f"`{name}` is not a runner backend; use {', '.join(RUNNERS)}")
        return tuple(dict.fromkeys(value)) if value else None

    @field_validator("config_extends")
    @classmethod
    def _repositories(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for name in value or ():
            if not _REPOSITORY.match(name):
                raise ValueError(f"`{name}` is not a repository as `owner/name`")
        return tuple(name.lower() for name in value) if value else None

    @model_validator(mode="after")
    def _default_runner_is_enabled(self) -> Settings:
        if self.runners is not None and self.runner not in self.runners:
            raise ValueError(
                f"KICKOFF_RUNNERS ({', '.join(self.runners)}) must include KICKOFF_RUNNER ({self.runner})"
            )
        return self

    @property
    def enabled_runners(self) -> tuple[str, ...]:
        """The backends repositories may pick (`KICKOFF_RUNNERS`); the default backend alone when unset."""
        return self.runners or (self.runner,)

    @property
    def agent_env_names(self) -> frozenset[str]:
        """The environment names agents may receive (`KICKOFF_AGENT_ENV`)."""
        return agent_env_names(self.agent_env)

    @field_validator("private_key", mode="before")
    @classmethod
    def _normalize_key(cls, value: object) -> object:
        if value is None or value == "":
            return None
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if not isinstance(value, str):
            raise ValueError("must be text")
        return normalize_private_key(value)

    @field_validator("app_id", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("webhook_secret", "dashboard_token", "metrics_token", mode="before")
    @classmethod
    def _empty_secret_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        from bot.store.db import async_database_url

        async_database_url(value)  # raises ValueError naming the problem
        return value

    @field_validator("github_api_url", "public_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    def private_key_pem(self) -> str | None:
        """The App's private key as PEM, from PRIVATE_KEY or the file PRIVATE_KEY_PATH names."""
        if self.private_key is not None:
            return self.private_key.get_secret_value()
        if self.private_key_path is not None:
            try:
                return normalize_private_key(self.private_key_path.read_text())
            except OSError as exc:
                raise SettingsError(f"PRIVATE_KEY_PATH: cannot read {self.private_key_path}: {exc.strerror}") from exc
            except ValueError as exc:
                raise SettingsError(f"PRIVATE_KEY_PATH: {self.private_key_path} {exc}") from exc
        return None

    def require_webhook_secret(self) -> str:
        if self.webhook_secret is None or not self.webhook_secret.get_secret_value():
            raise SettingsError(
                "WEBHOOK_SECRET is not set: Kickoff never accepts unsigned deliveries. "
                "Run `kickoff setup` to create an App and write .env, or set WEBHOOK_SECRET."
            )
        return self.webhook_secret.get_secret_value()

    def require_app_credentials(self) -> tuple[int, str]:
        if self.app_id is None:
            raise SettingsError("APP_ID is not set: run `kickoff setup` or set APP_ID to the GitHub App's id.")
        pem = self.private_key_pem()
        if pem is None:
            raise SettingsError("PRIVATE_KEY (or PRIVATE_KEY_PATH) is not set: run `kickoff setup` or set it.")
        return self.app_id, pem


def load_settings(**overrides: object) -> Settings:
    """Build settings, turning validation errors into one line that names the setting."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        if not first["loc"]:  # a check across settings: its message names them
            raise SettingsError(str(first["msg"]).removeprefix("Value error, ")) from None
        name = str(first["loc"][0]).upper()
        raise SettingsError(f"{name}: {str(first['msg']).removeprefix('Value error, ')}") from None
