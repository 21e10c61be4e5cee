"""The `kubernetes` backend with the real `kubernetes_asyncio` client against a small fake API server on 127.0.0.1.

respx cannot intercept it (the client speaks aiohttp, not httpx), so the fake serves the documented paths of the
batch/v1 Jobs and v1 Secrets APIs, records every request, and garbage-collects a deleted Job's owned Secrets as the
cluster would. It checks the shapes the backend sends: the Job (backoffLimit 0, deadline, TTL, resources, labels,
security context) and its Secret (owned by the Job, holding the spec and the credentials)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from kubernetes_asyncio import client

from bot.runners.base import RunnerError
from bot.runners.kubernetes import JobTemplate, KubernetesRunner, job_name, parse_ref, status_of
from bot.runs.spec import ENV_GIT_TOKEN, ENV_RUN_SECRET, RunSpec
from tests.runners.remote_support import SECRETS, Exits, make_spec

NS = "agents"
IMAGE = "ghcr.io/octo/kickoff-runner:1.0"


@dataclass
class FakeCluster:
    """The Jobs and Secrets of one namespace, over HTTP."""

    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    secrets: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    refuse_secrets: bool = False

    def app(self) -> web.Application:
        app = web.Application()
        base = "/apis/batch/v1/namespaces/{ns}/jobs"
        app.router.add_post(base, self.create_job)
        app.router.add_get(base, self.list_jobs)
        app.router.add_get(base + "/{name}/status", self.read_job)
        app.router.add_delete(base + "/{name}", self.delete_job)
        app.router.add_post("/api/v1/namespaces/{ns}/secrets", self.create_secret)
        app.router.add_delete("/api/v1/namespaces/{ns}/secrets/{name}", self.delete_secret)
        return app

    def _seen(self, request: web.Request) -> None:
        self.requests.append((request.method, request.path_qs))

    @staticmethod
    def _missing(kind: str, name: str) -> web.Response:
        return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
                                  "message": f'{kind} "{name}" not found', "code": 404}, status=404)

    async def create_job(self, request: web.Request) -> web.Response:
        self._seen(request)
        job = await request.json()
        job["metadata"]["uid"] = str(uuid.uuid4())
        job["status"] = {}
        self.jobs[job["metadata"]["name"]] = job
        return web.json_response(job, status=201)

    async def list_jobs(self, request: web.Request) -> web.Response:
        self._seen(request)
        key, _, value = request.query.get("labelSelector", "").partition("=")
        items = [j for j in self.jobs.values() if not key or j["metadata"]["labels"].get(key) == value]
        return web.json_response({"kind": "JobList", "apiVersion": "batch/v1", "metadata": {}, "items": items})

    async def read_job(self, request: web.Request) -> web.Response:
        self._seen(request)
        job = self.jobs.get(request.match_info["name"])
        return web.json_response(job) if job else self._missing("jobs.batch", request.match_info["name"])

    async def delete_job(self, request: web.Request) -> web.Response:
        self._seen(request)
        job = self.jobs.pop(request.match_info["name"], None)
        if job is None:
            return self._missing("jobs.batch", request.match_info["name"])
        uid = job["metadata"]["uid"]
        for name, secret in list(self.secrets.items()):  # the garbage collector
            if any(o["uid"] == uid for o in secret["metadata"].get("ownerReferences", [])):
                del self.secrets[name]
        return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Success"})

    async def create_secret(self, request: web.Request) -> web.Response:
        self._seen(request)
        if self.refuse_secrets:
            return web.json_response({"kind": "Status", "status": "Failure", "reason": "Forbidden",
                                      "code": 403}, status=403)
        secret = await request.json()
        self.secrets[secret["metadata"]["name"]] = secret
        return web.json_response(secret, status=201)

    async def delete_secret(self, request: web.Request) -> web.Response:
        self._seen(request)
        if self.secrets.pop(request.match_info["name"], None) is None:
            return self._missing("secrets", request.match_info["name"])
        return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Success"})

    def finish(self, name: str, kind: str, reason: str = "") -> None:
        self.jobs[name]["status"] = {"conditions": [{"type": kind, "status": "True", "reason": reason}]}


@pytest.fixture
async def cluster() -> AsyncIterator[tuple[FakeCluster, str]]:
    fake = FakeCluster()
    runner = web.AppRunner(fake.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield fake, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def k8s(cluster: tuple[FakeCluster, str]) -> AsyncIterator[KubernetesRunner]:
    _, url = cluster

    async def api_client() -> client.ApiClient:
        configuration = client.Configuration(host=url)
        return client.ApiClient(configuration)

    template = JobTemplate(namespace=NS, image=IMAGE, service_account="kickoff-runner", agent_secret="agent-keys")
    backend = KubernetesRunner(template, api_client, poll_seconds=0.02, grace_seconds=0.3)
    yield backend
    await backend.aclose()


async def test_a_run_is_a_job_and_an_owned_secret(k8s: KubernetesRunner, cluster: tuple[FakeCluster, str]) -> None:
    fake, _ = cluster
    spec = make_spec(42, timeout_seconds=1800)
    ref = await k8s.start(spec, SECRETS, deadline=1860)
    assert ref == f"k8s:{NS}/kickoff-run-42"
    job = fake.jobs["kickoff-run-42"]
    assert job["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "kickoff"
    assert job["metadata"]["labels"]["kickoff.dev/run-id"] == "42"
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["activeDeadlineSeconds"] == 1860
    assert job["spec"]["ttlSecondsAfterFinished"] == 3600
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == "kickoff-runner"
    [container] = pod["containers"]
    assert container["image"] == IMAGE
    assert container["command"] == ["kickoff", "run-agent", "--spec", "/kickoff/spec/spec.json"]
    assert container["resources"] == {"requests": {"cpu": "1", "memory": "2Gi"},
                                      "limits": {"cpu": "2", "memory": "4Gi"}}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["envFrom"] == [{"secretRef": {"name": "agent-keys"}}]
    env = {e["name"]: e for e in container["env"]}
    assert env[ENV_GIT_TOKEN]["valueFrom"]["secretKeyRef"]["name"] == "kickoff-run-42"
    assert "value" not in env[ENV_GIT_TOKEN]
    assert "value" not in env[ENV_RUN_SECRET]
    assert SECRETS[ENV_GIT_TOKEN] not in json.dumps(job)  # the Job itself holds no credential

    secret = fake.secrets["kickoff-run-42"]
    [owner] = secret["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("Job", "kickoff-run-42", job["metadata"]["uid"])
    data = secret["stringData"]
    assert data["git-token"] == SECRETS[ENV_GIT_TOKEN]
    assert data["run-secret"] == SECRETS[ENV_RUN_SECRET]
    assert RunSpec.model_validate_json(data["spec.json"]) == spec
    assert [m for m, p in fake.requests[:2]] == ["POST", "POST"]  # the Job first, then its Secret


@pytest.mark.parametrize(("kind", "reason", "code", "timed_out"), [
    ("Complete", "", 0, False),
    ("Failed", "BackoffLimitExceeded", 1, False),
    ("Failed", "DeadlineExceeded", None, True),
])
async def test_the_jobs_end_is_reported_and_the_job_deleted(
    k8s: KubernetesRunner, cluster: tuple[FakeCluster, str], kind: str, reason: str, code: int | None,
    timed_out: bool,
) -> None:
    fake, _ = cluster
    exits = Exits()
    k8s.bind(exits)
    await k8s.start(make_spec(7), SECRETS, deadline=600)
    fake.jobs["kickoff-run-7"]["status"] = {"active": 1}
    fake.finish("kickoff-run-7", kind, reason)
    [exit_] = await exits.wait()
    assert (exit_.exit_code, exit_.timed_out, exit_.cancelled) == (code, timed_out, False)
    assert "kickoff-run-7" not in fake.jobs
    assert "kickoff-run-7" not in fake.secrets
    assert ("DELETE", f"/apis/batch/v1/namespaces/{NS}/jobs/kickoff-run-7") in [
        (m, p.split("?")[0]) for m, p in fake.requests]


async def test_kickoffs_deadline_deletes_the_job(k8s: KubernetesRunner, cluster: tuple[FakeCluster, str]) -> None:
    fake, _ = cluster
    exits = Exits()
    k8s.bind(exits)
    await k8s.start(make_spec(8), SECRETS, deadline=0.1)
    [exit_] = await exits.wait()
    assert exit_.timed_out
    assert not exit_.cancelled
    assert fake.jobs == {}
    assert fake.secrets == {}


async def test_cancel_deletes_the_job_and_its_secret(k8s: KubernetesRunner, cluster: tuple[FakeCluster, str]) -> None:
    fake, _ = cluster
    exits = Exits()
    k8s.bind(exits)
    await k8s.start(make_spec(9), SECRETS, deadline=600)
    await k8s.cancel(9)
    [exit_] = exits.seen
    assert exit_.cancelled
    assert fake.jobs == {}
    assert fake.secrets == {}
    delete = next(p for m, p in fake.requests if m == "DELETE" and "/jobs/" in p)
    assert "propagationPolicy=Background" in delete


async def test_a_refused_secret_removes_the_job(k8s: KubernetesRunner, cluster: tuple[FakeCluster, str]) -> None:
    fake, _ = cluster
    fake.refuse_secrets = True
    with pytest.raises(RunnerError, match="403"):
        await k8s.start(make_spec(10), SECRETS, deadline=600)
    assert fake.jobs == {}
    assert k8s.running() == {}


async def test_restart_follows_live_jobs_and_sweeps_orphans(
    k8s: KubernetesRunner, cluster: tuple[FakeCluster, str]
) -> None:
    fake, _ = cluster
    exits = Exits()
    k8s.bind(exits)
    for run_id in (11, 12):
        await k8s.start(make_spec(run_id), SECRETS, deadline=600)
    await k8s.aclose()  # Kickoff stops; the Jobs run on
    assert set(fake.jobs) == {"kickoff-run-11", "kickoff-run-12"}
    assert await k8s.follow(11, f"k8s:{NS}/kickoff-run-11", deadline=600)
    assert not await k8s.follow(13, f"k8s:{NS}/kickoff-run-13", deadline=600)
    assert await k8s.sweep({11}) == [f"k8s:{NS}/kickoff-run-12"]
    assert set(fake.jobs) == {"kickoff-run-11"}
    assert any("labelSelector=app.kubernetes.io" in p for m, p in fake.requests if m == "GET")
    fake.finish("kickoff-run-11", "Complete")
    assert [e.run_id for e in await exits.wait()] == [11]


def test_statuses_and_refs() -> None:
    assert status_of({}).state == "pending"
    assert status_of({"active": 1}).state == "running"
    assert status_of({"succeeded": 1}).exit_code == 0
    assert status_of({"conditions": [{"type": "Failed", "status": "False"}], "active": 1}).state == "running"
    assert parse_ref("k8s:ns/job") == ("ns", "job")
    assert parse_ref("fly:a/b") is None
    assert job_name(3) == "kickoff-run-3"
