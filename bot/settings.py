"""Process settings: one typed object built at start-up from the environment or `.env`, never at import."""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path
from typing import Annotated, Any, Final, Literal, TypeVar

from pydantic import Field, PrivateAttr, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

RUNNERS: Final = ("local", "github-actions", "kubernetes", "fly")
NO_AGENT_ENV: Final = "none"
"""`KICKOFF_AGENT_ENV=none`: agents receive no environment name at all (unset or empty means the default)."""
_ENV_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
S = TypeVar("S", bound=BaseSettings)
MIN_RETENTION_DAYS: Final = 7
"""The shortest `KICKOFF_DELIVERY_RETENTION_DAYS`: GitHub Enterprise Server's redelivery window (GitHub.com: 3)."""
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


_ENV: Final = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")


class DispatchSettings(BaseSettings):
    """The dispatcher of stored deliveries, and redelivery; the defaults suit one process serving a team."""

    model_config = _ENV

    concurrency: int = Field(default=32, ge=1, validation_alias="KICKOFF_DISPATCH_CONCURRENCY")
    handler_timeout_seconds: float = Field(default=60.0, gt=0, validation_alias="KICKOFF_HANDLER_TIMEOUT")
    lease_seconds: float = Field(default=120.0, gt=0, validation_alias="KICKOFF_LEASE_SECONDS")
    max_attempts: int = Field(default=6, ge=1, validation_alias="KICKOFF_MAX_ATTEMPTS")
    retry_base_seconds: float = Field(default=2.0, ge=0, validation_alias="KICKOFF_RETRY_BASE_SECONDS")
    poll_seconds: float = Field(default=0.5, gt=0, validation_alias="KICKOFF_POLL_SECONDS")
    # How often the worker asks GitHub to redeliver deliveries that failed to reach it; 0 turns it off.
    redeliver_seconds: float = Field(default=600.0, ge=0, validation_alias="KICKOFF_REDELIVER_SECONDS")
    # How long handled deliveries (and their payloads) are kept: the inbox dedups redeliveries by delivery id only
    # while it holds the id, so at least a week (GitHub keeps deliveries for 3 days, Enterprise Server for 7, and
    # `kickoff redeliver --since` looks back that far). See docs/operations.md, "What is kept".
    delivery_retention_days: float = Field(default=14.0, validation_alias="KICKOFF_DELIVERY_RETENTION_DAYS")
    retention_batch: int = Field(default=500, ge=1, le=10_000, validation_alias="KICKOFF_RETENTION_BATCH")
    retention_seconds: float = Field(default=3600.0, gt=0, validation_alias="KICKOFF_RETENTION_SECONDS")

    @field_validator("delivery_retention_days")
    @classmethod
    def _beyond_redelivery(cls, value: float) -> float:
        if value < MIN_RETENTION_DAYS:
            raise ValueError(
                f"{value:g} days is too short: at least {MIN_RETENTION_DAYS} (GitHub redelivers for up to 7 days, and "
                "a delivery pruned earlier would be handled again when redelivered)"
            )
        return value


class IngressSettings(BaseSettings):
    """The webhook ingress reads a body before its signature can be checked: at most `body_budget` unauthenticated
    bytes are held at once (past it a new body gets 503), and a body must arrive within `read_seconds` (408). The
    budget is at least GitHub's 25 MiB payload cap, so one legitimate delivery always fits."""

    model_config = _ENV

    body_budget: int = Field(
        default=64 * 1024 * 1024, ge=25 * 1024 * 1024, validation_alias="KICKOFF_WEBHOOK_BODY_BUDGET"
    )
    read_seconds: float = Field(default=30.0, gt=0, validation_alias="KICKOFF_WEBHOOK_READ_SECONDS")


class SchedulerSettings(BaseSettings):
    """The run scheduler and the tracking comments."""

    model_config = _ENV

    tick_seconds: float = Field(default=5.0, gt=0, validation_alias="KICKOFF_SCHEDULER_TICK_SECONDS")
    tracking_interval_seconds: float = Field(default=3.0, ge=0, validation_alias="KICKOFF_TRACKING_INTERVAL_SECONDS")
    config_ttl_seconds: float = Field(default=30.0, ge=0, validation_alias="KICKOFF_CONFIG_TTL_SECONDS")
    timeout_margin_seconds: float = Field(default=60.0, ge=0, validation_alias="KICKOFF_RUN_TIMEOUT_MARGIN_SECONDS")
    clone_url: str | None = Field(
        default=None, validation_alias="KICKOFF_CLONE_URL",
        description="A template with {repo}, e.g. file:///srv/git/{repo}.git; default: derived from GITHUB_API_URL",
    )


class LocalRunnerSettings(BaseSettings):
    """The local backend: where its workspaces live, its runner program, and the agent sandbox (docs/runners.md,
    "The sandbox"): the bwrap program, and the one opt-out."""

    model_config = _ENV

    keep_workspaces: bool = Field(default=False, validation_alias="KICKOFF_KEEP_WORKSPACES")
    workspace_dir: Path | None = Field(default=None, validation_alias="KICKOFF_WORKSPACE_DIR")
    grace_seconds: float = Field(default=10.0, ge=0, validation_alias="KICKOFF_RUNNER_GRACE_SECONDS")
    command: list[str] | None = Field(default=None, validation_alias="KICKOFF_LOCAL_RUNNER_COMMAND")
    bwrap: str = Field(default="bwrap", min_length=1, validation_alias="KICKOFF_BWRAP")
    unsafe_no_sandbox: bool = Field(default=False, validation_alias="KICKOFF_UNSAFE_NO_SANDBOX")
    sweep_seconds: float = Field(default=60.0, gt=0, validation_alias="KICKOFF_RUNNER_SWEEP_SECONDS")


class RemoteRunnerSettings(BaseSettings):
    """The remote backends. Documented in docs/runners.md, "Backends"."""

    model_config = _ENV

    # github-actions
    actions_workflow: str = Field(default="kickoff-agent.yml", validation_alias="KICKOFF_ACTIONS_WORKFLOW")
    actions_ref: str | None = Field(default=None, validation_alias="KICKOFF_ACTIONS_REF")
    actions_poll_seconds: float = Field(default=60.0, gt=0, validation_alias="KICKOFF_ACTIONS_POLL_SECONDS")
    spec_ticket_ttl_seconds: int = Field(default=1800, ge=60, validation_alias="KICKOFF_SPEC_TICKET_TTL_SECONDS")
    # kubernetes
    k8s_image: str | None = Field(default=None, validation_alias="KICKOFF_K8S_IMAGE")
    k8s_namespace: str = Field(default="default", validation_alias="KICKOFF_K8S_NAMESPACE")
    k8s_kubeconfig: str | None = Field(default=None, validation_alias="KICKOFF_K8S_KUBECONFIG")
    k8s_context: str | None = Field(default=None, validation_alias="KICKOFF_K8S_CONTEXT")
    k8s_service_account: str | None = Field(default=None, validation_alias="KICKOFF_K8S_SERVICE_ACCOUNT")
    k8s_agent_secret: str | None = Field(default=None, validation_alias="KICKOFF_K8S_AGENT_SECRET")
    k8s_cpu_request: str = Field(default="1", validation_alias="KICKOFF_K8S_CPU_REQUEST")
    k8s_cpu_limit: str = Field(default="2", validation_alias="KICKOFF_K8S_CPU_LIMIT")
    k8s_memory_request: str = Field(default="2Gi", validation_alias="KICKOFF_K8S_MEMORY_REQUEST")
    k8s_memory_limit: str = Field(default="4Gi", validation_alias="KICKOFF_K8S_MEMORY_LIMIT")
    k8s_ttl_seconds: int = Field(default=3600, ge=0, validation_alias="KICKOFF_K8S_TTL_SECONDS")
    k8s_poll_seconds: float = Field(default=5.0, gt=0, validation_alias="KICKOFF_K8S_POLL_SECONDS")
    # fly
    fly_api_token: SecretStr | None = Field(default=None, validation_alias="FLY_API_TOKEN")
    fly_app: str | None = Field(default=None, validation_alias="KICKOFF_FLY_APP")
    fly_image: str | None = Field(default=None, validation_alias="KICKOFF_FLY_IMAGE")
    fly_region: str | None = Field(default=None, validation_alias="KICKOFF_FLY_REGION")
    fly_cpu_kind: str = Field(default="shared", validation_alias="KICKOFF_FLY_CPU_KIND")
    fly_cpus: int = Field(default=2, ge=1, validation_alias="KICKOFF_FLY_CPUS")
    fly_memory_mb: int = Field(default=4096, ge=256, validation_alias="KICKOFF_FLY_MEMORY_MB")
    fly_api_url: str = Field(default="https://api.machines.dev", validation_alias="KICKOFF_FLY_API_URL")


class QueueSettings(BaseSettings):
    """The review queue."""

    model_config = _ENV

    sweep_seconds: float = Field(default=300.0, gt=0, validation_alias="KICKOFF_QUEUE_SWEEP_SECONDS")
    checks_timeout_minutes: float = Field(default=120.0, gt=0, validation_alias="KICKOFF_QUEUE_CHECKS_TIMEOUT_MINUTES")


class WorkerSettings(BaseSettings):
    """Workers' membership (docs/deploy.md, "When a worker dies"): each worker heartbeats every
    `heartbeat_seconds`; one silent for `timeout_seconds` is dead, and the others take its claims over."""

    model_config = _ENV

    heartbeat_seconds: float = Field(default=2.0, gt=0, validation_alias="KICKOFF_HEARTBEAT_SECONDS")
    timeout_seconds: float = Field(default=10.0, gt=0, validation_alias="KICKOFF_WORKER_TIMEOUT_SECONDS")

    @model_validator(mode="after")
    def _timeout_outlasts_heartbeats(self) -> WorkerSettings:
        if self.timeout_seconds <= 2 * self.heartbeat_seconds:
            raise ValueError(
                "KICKOFF_WORKER_TIMEOUT_SECONDS must be more than twice KICKOFF_HEARTBEAT_SECONDS, or a live worker"
                " that misses one heartbeat is taken for dead"
            )
        return self


SECTIONS: Final[dict[str, type[BaseSettings]]] = {
    "dispatch": DispatchSettings,
    "ingress": IngressSettings,
    "scheduler": SchedulerSettings,
    "local": LocalRunnerSettings,
    "remote": RemoteRunnerSettings,
    "queue": QueueSettings,
    "workers": WorkerSettings,
}
"""Settings' sections: each reads its own names (all flat, as users set them) from the same sources."""


def _aliases(section: type[BaseSettings]) -> frozenset[str]:
    return frozenset(str(info.validation_alias) for info in section.model_fields.values())


_SECTION_NAMES: Final = {name: _aliases(section) for name, section in SECTIONS.items()}


class Settings(BaseSettings):
    """Everything the process reads from its environment, built once at start-up: the App, the server and the
    operator's policy here, each part's tuning in a section (`settings.dispatch`, `.ingress`, `.scheduler`,
    `.local`, `.remote`, `.queue`, `.workers`). Names are the ones users set (see DESIGN.md); overrides in code use
    them too, whichever section they belong to: `Settings(_env_file=None, KICKOFF_QUEUE_SWEEP_SECONDS=1)`."""

    model_config = _ENV

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
    # Log the event loop's stack when it stalls for longer than this (bot.stalls); unset: off.
    stall_log_ms: float | None = Field(default=None, gt=0, validation_alias="KICKOFF_STALL_LOG_MS")

    # Extra routers to compose at the root, as `module:attribute` (a plugin's handlers).
    plugins: str = Field(default="", validation_alias="KICKOFF_PLUGINS")

    # The sections: not fields (no one environment variable holds a section), built with the rest in __init__.
    _sections: dict[str, BaseSettings] = PrivateAttr(default_factory=dict)

    def __init__(self, **values: Any) -> None:
        """Each section is built from the same sources as the rest (`_env_file` included), with the overrides
        that name its settings."""
        sources = {key: values[key] for key in ("_env_file",) if key in values}
        sections: dict[str, BaseSettings] = {}
        for name, section in SECTIONS.items():
            picked = {key: values.pop(key) for key in [key for key in values if key in _SECTION_NAMES[name]]}
            sections[name] = section(**sources, **picked)
        super().__init__(**values)
        self._sections = sections

    def _section(self, name: str, kind: type[S]) -> S:
        section = self._sections[name]
        assert isinstance(section, kind)
        return section

    @property
    def dispatch(self) -> DispatchSettings:
        return self._section("dispatch", DispatchSettings)

    @property
    def ingress(self) -> IngressSettings:
        return self._section("ingress", IngressSettings)

    @property
    def scheduler(self) -> SchedulerSettings:
        return self._section("scheduler", SchedulerSettings)

    @property
    def local(self) -> LocalRunnerSettings:
        return self._section("local", LocalRunnerSettings)

    @property
    def remote(self) -> RemoteRunnerSettings:
        return self._section("remote", RemoteRunnerSettings)

    @property
    def queue(self) -> QueueSettings:
        return self._section("queue", QueueSettings)

    @property
    def workers(self) -> WorkerSettings:
        return self._section("workers", WorkerSettings)

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
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        if not first["loc"]:  # a check across settings: its message names them
            raise SettingsError(str(first["msg"]).removeprefix("Value error, ")) from None
        name = str(first["loc"][0]).upper()
        raise SettingsError(f"{name}: {str(first['msg']).removeprefix('Value error, ')}") from None
