"""Which runner backends this Kickoff server offers, built once at start-up from its settings.

Exactly the operator's list, `KICKOFF_RUNNERS` (default: `KICKOFF_RUNNER` alone): a backend the operator did not
enable is never built, so no repository config can reach it, whatever else is configured on the server. Every
listed backend must be usable: when one's settings are missing, start-up fails with one line naming them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from bot.runners.local import DEFAULT_COMMAND, LocalRunner, check_sandbox, secret_paths
from bot.runs.backend import RunnerBackend
from bot.runs.scheduler import Scheduler
from bot.services import Services
from bot.settings import RemoteRunnerSettings, SettingsError

log = logging.getLogger(__name__)


def missing_settings(runner: str, services: Services) -> list[str]:
    """The settings `runner` still needs on this server (empty: it can be offered)."""
    settings = services.settings.remote
    if runner == "github-actions":
        needs = [] if services.github is not None else ["APP_ID", "PRIVATE_KEY"]
        if services.settings.public_url.startswith(("http://localhost", "http://127.")):
            needs.append("PUBLIC_URL (an address GitHub's runners can reach)")
        return needs
    if runner == "kubernetes":
        return [] if settings.k8s_image else ["KICKOFF_K8S_IMAGE"]
    if runner == "fly":
        wanted = {"FLY_API_TOKEN": settings.fly_api_token, "KICKOFF_FLY_APP": settings.fly_app,
                  "KICKOFF_FLY_IMAGE": settings.fly_image}
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


def check_runner_settings(services: Services) -> None:
    """At start-up: every enabled backend must be usable; `SettingsError` names what the first one lacks."""
    for runner in services.settings.enabled_runners:
        missing = missing_settings(runner, services)
        if not missing:
            continue
        if services.settings.runners is None:
            named = f"KICKOFF_RUNNER={runner}"
        else:
            named = f"KICKOFF_RUNNERS lists {runner}, which"
        raise SettingsError(f"{named} needs {', '.join(missing)} (see docs/runners.md, Backends)")


def remote_backends(services: Services) -> dict[str, RunnerBackend]:
    """The remote backends this server offers: those on the operator's list, each checked to be usable."""
    check_runner_settings(services)
    backends: dict[str, RunnerBackend] = {}
    for name in services.settings.enabled_runners:
        if name in BUILDERS:
            backends[name] = build = BUILDERS[name](services, services.settings.remote)
            log.info("runner %s is available", build.name)
    return backends


def build_scheduler(services: Services) -> Scheduler:
    """The scheduler of `kickoff serve` and `kickoff worker`, with the runner backends the operator enabled.

    The local backend is offered only when `KICKOFF_RUNNERS` (or `KICKOFF_RUNNER`) names it, and only once its
    sandbox is known to work here (or the operator opted out): `SettingsError` otherwise, before anything runs.
    """
    backends: dict[str, RunnerBackend] = {}
    if "local" in services.settings.enabled_runners:
        settings = services.settings.local
        mode = check_sandbox(settings.bwrap, unsafe_no_sandbox=settings.unsafe_no_sandbox)
        local = LocalRunner(
            command=settings.command or DEFAULT_COMMAND,
            workspace_root=settings.workspace_dir,
            keep_workspaces=settings.keep_workspaces,
            grace_seconds=settings.grace_seconds,
            sandbox=mode,
            bwrap=settings.bwrap,
            hide=secret_paths(database_url=services.settings.database_url,
                              private_key_path=services.settings.private_key_path),
            agent_env=services.settings.agent_env_names,
        )
        backends[local.name] = local
    backends.update(remote_backends(services))
    scheduling = services.settings.scheduler
    template = scheduling.clone_url
    return Scheduler(
        services,
        backends,
        clone_url=(lambda repo: template.format(repo=repo)) if template else None,
        tick=scheduling.tick_seconds,
        tracking_interval=scheduling.tracking_interval_seconds,
        config_ttl=scheduling.config_ttl_seconds,
        timeout_margin=scheduling.timeout_margin_seconds,
        sweep_interval=services.settings.local.sweep_seconds,
    )
