"""Which runner backends this Kickoff server offers, built once at start-up from its settings.

Exactly the operator's list, `KICKOFF_RUNNERS` (default: `KICKOFF_RUNNER` alone): a backend the operator did not
enable is never built, so no repository config can reach it, whatever else is configured on the server. Every
listed backend must be usable: when one's settings are missing, start-up fails with one line naming them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.runners.local import DEFAULT_COMMAND, LocalRunner, check_sandbox, secret_paths
from bot.runs.backend import RunnerBackend
from bot.runs.scheduler import Scheduler, SchedulerSettings
from bot.services import Services
from bot.settings import SettingsError

log = logging.getLogger(__name__)


class RemoteRunnerSettings(BaseSettings):
    """The remote backends' process settings (env or `.env`). Documented in docs/runners.md, "Backends"."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

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

    def missing(self, runner: str, services: Services) -> list[str]:
        """The settings `runner` still needs on this server (empty: it can be offered)."""
        if runner == "github-actions":
            needs = [] if services.github is not None else ["APP_ID", "PRIVATE_KEY"]
            if services.settings.public_url.startswith(("http://localhost", "http://127.")):
                needs.append("PUBLIC_URL (an address GitHub's runners can reach)")
            return needs
        if runner == "kubernetes":
            return [] if self.k8s_image else ["KICKOFF_K8S_IMAGE"]
        if runner == "fly":
            wanted = {"FLY_API_TOKEN": self.fly_api_token, "KICKOFF_FLY_APP": self.fly_app,
                      "KICKOFF_FLY_IMAGE": self.fly_image}
            return [name for name, value in wanted.items() if not value]
        return []


def _github_actions(services: Services, settings: RemoteRunnerSettings) -> RunnerBackend:
    from bot.runners.github_actions import GitHubActionsRunner
    from bot.runs.tickets import TicketStore

    return GitHubActionsRunner(
        services.require_github,
        TicketStore(services.store, clock=services.clock),
        workflow=settings.actions_workflow,
        ref=settings.actions_ref,
        poll_seconds=settings.actions_poll_seconds,
        ticket_ttl=timedelta(seconds=settings.spec_ticket_ttl_seconds),
    )


def _kubernetes(services: Services, settings: RemoteRunnerSettings) -> RunnerBackend:
    try:
        from bot.runners.kubernetes import JobTemplate, KubernetesRunner, load_api_client
    except ImportError:
        message = "the kubernetes runner needs kubernetes_asyncio (a dependency of kickoff-bot): reinstall it"
        raise SettingsError(message) from None

    assert settings.k8s_image is not None
    template = JobTemplate(
        namespace=settings.k8s_namespace,
        image=settings.k8s_image,
        service_account=settings.k8s_service_account,
        agent_secret=settings.k8s_agent_secret,
        requests={"cpu": settings.k8s_cpu_request, "memory": settings.k8s_memory_request},
        limits={"cpu": settings.k8s_cpu_limit, "memory": settings.k8s_memory_limit},
        ttl_seconds_after_finished=settings.k8s_ttl_seconds,
    )
    kubeconfig, context = settings.k8s_kubeconfig, settings.k8s_context
    return KubernetesRunner(template, lambda: load_api_client(kubeconfig, context),
                            poll_seconds=settings.k8s_poll_seconds)


def _fly(services: Services, settings: RemoteRunnerSettings) -> RunnerBackend:
    from bot.runners.fly import FlyRunner

    assert settings.fly_api_token is not None
    assert settings.fly_app
    assert settings.fly_image
    return FlyRunner(app=settings.fly_app, token=settings.fly_api_token.get_secret_value(), image=settings.fly_image,
                     region=settings.fly_region, cpu_kind=settings.fly_cpu_kind, cpus=settings.fly_cpus,
                     memory_mb=settings.fly_memory_mb, api_url=settings.fly_api_url)


BUILDERS: dict[str, Callable[[Services, RemoteRunnerSettings], RunnerBackend]] = {
    "github-actions": _github_actions,
    "kubernetes": _kubernetes,
    "fly": _fly,
}


def check_runner_settings(services: Services, settings: RemoteRunnerSettings) -> None:
    """At start-up: every enabled backend must be usable; `SettingsError` names what the first one lacks."""
    for runner in services.settings.enabled_runners:
        missing = settings.missing(runner, services)
        if not missing:
            continue
        if services.settings.runners is None:
            named = f"KICKOFF_RUNNER={runner}"
        else:
            named = f"KICKOFF_RUNNERS lists {runner}, which"
        raise SettingsError(f"{named} needs {', '.join(missing)} (see docs/runners.md, Backends)")


def remote_backends(services: Services, settings: RemoteRunnerSettings | None = None) -> dict[str, RunnerBackend]:
    """The remote backends this server offers: those on the operator's list, each checked to be usable."""
    settings = settings or RemoteRunnerSettings()
    check_runner_settings(services, settings)
    backends: dict[str, RunnerBackend] = {}
    for name in services.settings.enabled_runners:
        if name in BUILDERS:
            backends[name] = build = BUILDERS[name](services, settings)
            log.info("runner %s is available", build.name)
    return backends


def build_scheduler(services: Services, settings: SchedulerSettings | None = None) -> Scheduler:
    """The scheduler of `kickoff serve` and `kickoff worker`, with the runner backends the operator enabled.

    The local backend is offered only when `KICKOFF_RUNNERS` (or `KICKOFF_RUNNER`) names it, and only once its
    sandbox is known to work here (or the operator opted out): `SettingsError` otherwise, before anything runs.
    """
    settings = settings or SchedulerSettings()
    backends: dict[str, RunnerBackend] = {}
    if "local" in services.settings.enabled_runners:
        mode = check_sandbox(settings.bwrap, unsafe_no_sandbox=settings.unsafe_no_sandbox)
        local = LocalRunner(
            command=settings.local_runner_command or DEFAULT_COMMAND,
            workspace_root=settings.workspace_dir,
            keep_workspaces=settings.keep_workspaces,
            grace_seconds=settings.runner_grace_seconds,
            sandbox=mode,
            bwrap=settings.bwrap,
            hide=secret_paths(database_url=services.settings.database_url,
                              private_key_path=services.settings.private_key_path),
            agent_env=services.settings.agent_env_names,
        )
        backends[local.name] = local
    backends.update(remote_backends(services))
    template = settings.clone_url
    return Scheduler(
        services,
        backends,
        clone_url=(lambda repo: template.format(repo=repo)) if template else None,
        tick=settings.tick_seconds,
        tracking_interval=settings.tracking_interval_seconds,
        config_ttl=settings.config_ttl_seconds,
        timeout_margin=settings.timeout_margin_seconds,
    )
