"""The `kubernetes` backend: one Job per run (`kubernetes_asyncio`, in-cluster or kubeconfig auth).

Each Job runs the runner image with `kickoff run-agent --spec /kickoff/spec/spec.json`: `backoffLimit: 0` (a run is
never retried behind Kickoff's back), `activeDeadlineSeconds` from the run's timeout plus Kickoff's margin,
`ttlSecondsAfterFinished` so the cluster cleans up even when Kickoff does not, resource requests and limits, a
restricted security context, and labels naming the run. The spec and the two credentials sit in a per-run Secret
that the Job owns (`ownerReferences`), so deleting the Job deletes it. The Job is created first and the Secret
second, naming the Job's uid: the pod cannot start before the Secret exists, since it refers to it (not optional).
The agents' API keys come from one Secret the operator names (`KICKOFF_K8S_AGENT_SECRET`, `envFrom`).

Status comes by watch: `_observe` lists the Job (`fieldSelector=metadata.name=…`) for a resourceVersion, then
watches from it (`?watch=true`) for up to the watchdog's window, reading ADDED/MODIFIED events through `status_of`
and DELETED as gone. A stream that ends or times out, or a 410 Gone (the resourceVersion is too old), re-lists and
watches again. Only when the watch endpoint errors `WATCH_ERRORS_BEFORE_POLLING` times in a row does that Job fall
back to polling `read_namespaced_job_status` every `KICKOFF_K8S_POLL_SECONDS`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, cast

from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.exceptions import ApiException

from bot.runners.watchdog import RemoteRunner, RemoteStatus
from bot.runs.backend import RunnerError
from bot.runspec import ENV_GIT_TOKEN, ENV_RUN_SECRET, RunSpec

log = logging.getLogger(__name__)

MANAGED_BY: Final = "app.kubernetes.io/managed-by"
RUN_LABEL: Final = "kickoff.dev/run-id"
SPEC_DIR: Final = "/kickoff/spec"
SPEC_KEY: Final = "spec.json"
GIT_TOKEN_KEY: Final = "git-token"  # noqa: S105 - a key name in the Secret
RUN_SECRET_KEY: Final = "run-secret"  # noqa: S105 - a key name in the Secret
WATCH_ERRORS_BEFORE_POLLING: Final = 3  # watch failures in a row (410 aside) before a Job is polled instead

ApiClientFactory = Callable[[], Awaitable[client.ApiClient]]


@dataclass(frozen=True)
class JobTemplate:
    """What every run's Job looks like, from the `KICKOFF_K8S_*` settings."""

    namespace: str
    image: str
    image_pull_policy: str = "IfNotPresent"
    service_account: str | None = None
    agent_secret: str | None = None
    requests: Mapping[str, str] = field(default_factory=lambda: {"cpu": "1", "memory": "2Gi"})
    limits: Mapping[str, str] = field(default_factory=lambda: {"cpu": "2", "memory": "4Gi"})
    ttl_seconds_after_finished: int = 3600


def job_name(run_id: int) -> str:
    return f"kickoff-run-{run_id}"


def parse_ref(ref: str) -> tuple[str, str] | None:
    """`k8s:namespace/job name` → (namespace, name)."""
    if not ref.startswith("k8s:"):
        return None
    namespace, _, name = ref[4:].partition("/")
    return (namespace, name) if namespace and name else None


def labels(run_id: int) -> dict[str, str]:
    return {MANAGED_BY: "kickoff", "app.kubernetes.io/name": "kickoff-runner", RUN_LABEL: str(run_id)}


def job_manifest(template: JobTemplate, spec: RunSpec, deadline: float) -> dict[str, Any]:
    """The Job of one run (the Secret it refers to is `secret_manifest`)."""
    name = job_name(spec.run_id)

    def from_secret(variable: str, key: str) -> dict[str, Any]:
        return {"name": variable, "valueFrom": {"secretKeyRef": {"name": name, "key": key}}}

    container: dict[str, Any] = {
        "name": "runner",
        "image": template.image,
        "imagePullPolicy": template.image_pull_policy,
        "command": ["kickoff", "run-agent", "--spec", f"{SPEC_DIR}/{SPEC_KEY}"],
        "env": [
            from_secret(ENV_GIT_TOKEN, GIT_TOKEN_KEY),
            from_secret(ENV_RUN_SECRET, RUN_SECRET_KEY),
            {"name": "TMPDIR", "value": "/work"},
        ],
        "resources": {"requests": dict(template.requests), "limits": dict(template.limits)},
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [
            {"name": "spec", "mountPath": SPEC_DIR, "readOnly": True},
            {"name": "work", "mountPath": "/work"},
        ],
    }
    if template.agent_secret:
        container["envFrom"] = [{"secretRef": {"name": template.agent_secret}}]
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": [
            {"name": "spec", "secret": {"secretName": name, "items": [{"key": SPEC_KEY, "path": SPEC_KEY}]}},
            {"name": "work", "emptyDir": {}},
        ],
    }
    if template.service_account:
        pod["serviceAccountName"] = template.service_account
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": template.namespace, "labels": labels(spec.run_id)},
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": max(1, math.ceil(deadline)),
            "ttlSecondsAfterFinished": template.ttl_seconds_after_finished,
            "template": {"metadata": {"labels": labels(spec.run_id)}, "spec": pod},
        },
    }


def secret_manifest(
    template: JobTemplate, spec: RunSpec, secrets: Mapping[str, str], job_uid: str
) -> dict[str, Any]:
    """The run's Secret (spec and credentials), owned by its Job so that it goes with it."""
    name = job_name(spec.run_id)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": name,
            "namespace": template.namespace,
            "labels": labels(spec.run_id),
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": job_uid,
                                 "blockOwnerDeletion": False}],
        },
        "stringData": {
            SPEC_KEY: spec.model_dump_json(),
            GIT_TOKEN_KEY: secrets.get(ENV_GIT_TOKEN, ""),
            RUN_SECRET_KEY: secrets.get(ENV_RUN_SECRET, ""),
        },
    }


def status_of(status: Mapping[str, Any] | None) -> RemoteStatus:
    """A Job's `status` (as the API spells it) as the watchdog reads it."""
    status = status or {}
    for condition in status.get("conditions") or []:
        if condition.get("status") != "True":
            continue
        kind, reason = condition.get("type"), condition.get("reason") or ""
        detail = f"the Job {kind or 'ended'}: {reason} {condition.get('message') or ''}".strip()
        if kind in ("Complete", "SuccessCriteriaMet"):
            return RemoteStatus("finished", 0, detail=detail)
        if kind in ("Failed", "FailureTarget"):
            return RemoteStatus("finished", None if reason == "DeadlineExceeded" else 1,
                                timed_out=reason == "DeadlineExceeded", detail=detail)
    if status.get("succeeded"):
        return RemoteStatus("finished", 0, detail="the Job's pod succeeded")
    if status.get("failed"):
        return RemoteStatus("finished", 1, detail="the Job's pod failed")
    return RemoteStatus("running" if status.get("active") else "pending")


async def load_api_client(kubeconfig: str | None = None, context: str | None = None) -> client.ApiClient:
    """In-cluster auth (a service account) inside a pod, else the kubeconfig (`KUBECONFIG`, `~/.kube/config`)."""
    configuration = client.Configuration()
    if kubeconfig is None and context is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    else:
        await config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=configuration)
    return client.ApiClient(configuration)


def _body(manifest: dict[str, Any]) -> Any:
    """A manifest as a request body: the client sends a dict as the JSON it is (as `kubectl` would the YAML)."""
    return manifest


def _reason(exc: ApiException) -> str:
    return f"{exc.status} {exc.reason or ''}".strip()


@dataclass
class _Followed:
    """What the watch of one Job knows between two `_observe` calls."""

    version: str | None = None  # the resourceVersion to watch from; None: list first
    status: RemoteStatus = field(default_factory=lambda: RemoteStatus("pending"))
    errors: int = 0  # watch failures in a row

    @property
    def polling(self) -> bool:
        return self.errors >= WATCH_ERRORS_BEFORE_POLLING


class KubernetesRunner(RemoteRunner):
    """Runs each runner as a Job in `template.namespace`."""

    name = "kubernetes"
    prefix = "k8s:"

    def __init__(
        self,
        template: JobTemplate,
        api_client: ApiClientFactory,
        *,
        poll_seconds: float = 5.0,
        watch_seconds: float = 60.0,
        grace_seconds: float = 60.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        # The watchdog's window is one watch; `poll_seconds` is the fallback polling interval, within a window.
        super().__init__(poll_seconds=watch_seconds, grace_seconds=grace_seconds, clock=clock)
        self.fallback_poll_seconds = poll_seconds
        self.template = template
        self._factory = api_client
        self._client: client.ApiClient | None = None
        self._followed: dict[str, _Followed] = {}
        self._stopping: set[str] = set()

    async def _api(self) -> tuple[client.BatchV1Api, client.CoreV1Api]:
        if self._client is None:
            self._client = await self._factory()
        return client.BatchV1Api(self._client), client.CoreV1Api(self._client)

    async def _launch(self, spec: RunSpec, secrets: Mapping[str, str], deadline: float) -> str:
        batch, core = await self._api()
        namespace, name = self.template.namespace, job_name(spec.run_id)
        self._stopping.discard(f"k8s:{namespace}/{name}")
        try:
            job = await batch.create_namespaced_job(namespace, _body(job_manifest(self.template, spec, deadline)))
        except ApiException as exc:
            raise RunnerError(f"Kubernetes refused the Job {namespace}/{name} ({_reason(exc)})") from None
        try:
            await core.create_namespaced_secret(
                namespace, _body(secret_manifest(self.template, spec, secrets, job.metadata.uid))
            )
        except ApiException as exc:
            await self._remove(f"k8s:{namespace}/{name}")
            raise RunnerError(f"Kubernetes refused the Secret {namespace}/{name} ({_reason(exc)})") from None
        return f"k8s:{namespace}/{name}"

    long_polls = True  # `_observe` watches for up to `within` seconds

    async def _observe(self, ref: str, within: float) -> RemoteStatus:
        parsed = parse_ref(ref)
        if parsed is None:
            return RemoteStatus("gone")
        namespace, name = parsed
        if within <= 0 or ref in self._stopping:
            return await self._read(namespace, name)  # a glance (re-attaching) or confirming a stop: one GET
        loop = asyncio.get_running_loop()
        end = loop.time() + within
        followed = self._followed.setdefault(ref, _Followed())
        while (remaining := end - loop.time()) > 0:
            if followed.polling:
                status = await self._read(namespace, name)
                if status.ended:
                    return status
                await asyncio.sleep(min(self.fallback_poll_seconds, max(0.0, end - loop.time())))
                continue
            if followed.version is None:
                try:
                    await self._relist(namespace, name, followed)
                except Exception as exc:
                    self._watch_failed(ref, followed, str(exc) or type(exc).__name__)
                    await asyncio.sleep(min(self.fallback_poll_seconds, max(0.0, end - loop.time())))
                    continue
                if followed.status.ended:
                    return followed.status
            try:
                async with asyncio.timeout(remaining):
                    await self._watch_job(namespace, name, followed, remaining)
            except TimeoutError:
                if loop.time() >= end:
                    return followed.status  # the window is over; the watchdog calls again
                followed.version = None  # the client timed out the stream: re-list
            except ApiException as exc:
                if exc.status != 410:
                    self._watch_failed(ref, followed, _reason(exc))
                followed.version = None  # 410 Gone: the resourceVersion is too old to watch from
            except Exception as exc:  # the connection failed, a malformed event, …
                self._watch_failed(ref, followed, str(exc) or type(exc).__name__)
                followed.version = None
            else:
                followed.errors = 0
                if followed.status.ended:
                    return followed.status
                followed.version = None  # the server ended the stream: re-list for a fresh resourceVersion
            if followed.errors and not followed.polling:
                await asyncio.sleep(min(self.fallback_poll_seconds, max(0.0, end - loop.time())))
        return followed.status

    def _watch_failed(self, ref: str, followed: _Followed, why: str) -> None:
        followed.errors += 1
        if followed.polling:
            log.warning("cannot watch the Job %s (%s); polling it every %ss instead", ref, why,
                        self.fallback_poll_seconds)
        else:
            log.info("cannot watch the Job %s (%s); trying again", ref, why)

    async def _read(self, namespace: str, name: str) -> RemoteStatus:
        batch, _ = await self._api()
        try:
            job = await batch.read_namespaced_job_status(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return RemoteStatus("gone")
            raise RunnerError(f"cannot read the Job {namespace}/{name} ({_reason(exc)})") from None
        raw = client.ApiClient.sanitize_for_serialization(cast(client.ApiClient, self._client), job)
        return status_of(raw.get("status") if isinstance(raw, dict) else None)

    async def _relist(self, namespace: str, name: str, followed: _Followed) -> None:
        """The Job's status and a resourceVersion to watch from (the list's, as a watch wants)."""
        batch, _ = await self._api()
        try:
            jobs = await batch.list_namespaced_job(namespace, field_selector=f"metadata.name={name}")
        except ApiException as exc:
            raise RunnerError(f"cannot list the Job {namespace}/{name} ({_reason(exc)})") from None
        raw = client.ApiClient.sanitize_for_serialization(cast(client.ApiClient, self._client), jobs)
        items = (raw.get("items") or []) if isinstance(raw, dict) else []
        followed.status = status_of(items[0].get("status")) if items else RemoteStatus("gone")
        followed.version = (raw.get("metadata") or {}).get("resourceVersion") if isinstance(raw, dict) else None
        followed.version = followed.version or ""  # "": watch from any version (still not None: no re-list)

    async def _watch_job(self, namespace: str, name: str, followed: _Followed, within: float) -> None:
        """Follow the Job's events until it ends or the stream does; raises what the watch raises."""
        batch, _ = await self._api()
        options: dict[str, Any] = {"field_selector": f"metadata.name={name}",
                                   "timeout_seconds": max(1, math.ceil(within)), "allow_watch_bookmarks": True}
        if followed.version:
            options["resource_version"] = followed.version
        async with watch.Watch() as stream:
            async for event in stream.stream(batch.list_namespaced_job, namespace, **options):
                kind, raw = event.get("type"), event.get("raw_object")
                if not isinstance(raw, dict):
                    continue
                followed.version = (raw.get("metadata") or {}).get("resourceVersion") or followed.version
                if kind == "DELETED":
                    followed.status = RemoteStatus("gone")
                elif kind in ("ADDED", "MODIFIED"):
                    followed.status = status_of(raw.get("status"))
                followed.errors = 0
                if followed.status.ended:
                    return

    async def _stop(self, ref: str) -> None:
        self._stopping.add(ref)
        await self._remove(ref)  # deleting a Job stops its pod (SIGTERM, then the pod's grace period)

    async def _remove(self, ref: str) -> None:
        parsed = parse_ref(ref)
        if parsed is None:
            return
        self._followed.pop(ref, None)
        namespace, name = parsed
        batch, core = await self._api()
        try:
            await batch.delete_namespaced_job(name, namespace, propagation_policy="Background")
        except ApiException as exc:
            if exc.status != 404:
                raise RunnerError(f"cannot delete the Job {namespace}/{name} ({_reason(exc)})") from None
        try:
            # Garbage collection deletes it with the Job; deleting it now takes the credentials away at once.
            await core.delete_namespaced_secret(name, namespace)
        except ApiException as exc:
            if exc.status != 404:
                log.info("could not delete the Secret %s/%s (%s)", namespace, name, _reason(exc))

    async def _list(self) -> dict[int, str]:
        batch, _ = await self._api()
        jobs = await batch.list_namespaced_job(self.template.namespace, label_selector=f"{MANAGED_BY}=kickoff")
        found: dict[int, str] = {}
        for job in jobs.items or []:
            run_id = (job.metadata.labels or {}).get(RUN_LABEL, "")
            if run_id.isdigit():
                found[int(run_id)] = f"k8s:{job.metadata.namespace or self.template.namespace}/{job.metadata.name}"
        return found

    async def _close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
