"""The `kubernetes` backend with the real `kubernetes_asyncio` client against a small fake API server on 127.0.0.1.

respx cannot intercept it (the client speaks aiohttp, not httpx), so the fake serves the documented paths of the
batch/v1 Jobs and v1 Secrets APIs, records every request, and garbage-collects a deleted Job's owned Secrets as the
cluster would. It serves `?watch=true` as the API server does: a chunked stream of JSON lines
(`{"type": "MODIFIED", "object": {...}}`) from a resourceVersion, ending after `timeoutSeconds`, and can end streams
early, answer a 410 Gone, or fail watches outright. It checks the shapes the backend sends: the Job (backoffLimit 0,
deadline, TTL, resources, labels, security context) and its Secret (owned by the Job, holding the spec and the
credentials)."""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from kubernetes_asyncio import client

from bot.runners.kubernetes import JobTemplate, KubernetesRunner, job_name, parse_ref, status_of
from bot.runs.backend import RunnerError
from bot.runspec import ENV_GIT_TOKEN, ENV_RUN_SECRET, RunSpec
from tests.runners.remote_support import SECRETS, Exits, eventually, make_spec

NS = "agents"
IMAGE = "ghcr.io/octo/kickoff-runner:1.0"


@dataclass
class FakeCluster:
    """The Jobs and Secrets of one namespace, over HTTP."""

    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    secrets: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    refuse_secrets: bool = False
    version: int = 0  # the cluster's resourceVersion
    events: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    end_watches: int = 0  # the next N watches end at once, with no event
    expire_watches: int = 0  # the next N watches from a resourceVersion get a 410 Gone (an ERROR event)
    watch_error: int | None = None  # every watch request fails with this HTTP status
    closed: bool = False

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

    def _changed(self, kind: str, job: dict[str, Any]) -> None:
        self.version += 1
        job["metadata"]["resourceVersion"] = str(self.version)
        self.events.append((self.version, kind, copy.deepcopy(job)))

    def watches(self) -> list[str]:
        return [p for m, p in self.requests if m == "GET" and "watch=true" in p.lower()]

    def status_reads(self) -> list[str]:
        return [p for m, p in self.requests if m == "GET" and p.split("?")[0].endswith("/status")]

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
        self._changed("ADDED", job)
        return web.json_response(job, status=201)

    @staticmethod
    def _selected(request: web.Request, job: dict[str, Any]) -> bool:
        key, _, value = request.query.get("labelSelector", "").partition("=")
        field_, _, wanted = request.query.get("fieldSelector", "").partition("=")
        if key and job["metadata"]["labels"].get(key) != value:
            return False
        return not field_ or (field_ == "metadata.name" and job["metadata"]["name"] == wanted)

    async def list_jobs(self, request: web.Request) -> web.StreamResponse:
        self._seen(request)
        if request.query.get("watch", "").lower() == "true":
            return await self.watch_jobs(request)
        items = [j for j in self.jobs.values() if self._selected(request, j)]
        return web.json_response({"kind": "JobList", "apiVersion": "batch/v1",
                                  "metadata": {"resourceVersion": str(self.version)}, "items": items})

    async def watch_jobs(self, request: web.Request) -> web.StreamResponse:
        if self.watch_error is not None:
            return web.json_response({"kind": "Status", "status": "Failure", "code": self.watch_error},
                                     status=self.watch_error)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)

        async def send(kind: str, obj: dict[str, Any]) -> None:
            await response.write(json.dumps({"type": kind, "object": obj}).encode() + b"\n")

        since = request.query.get("resourceVersion", "")
        if self.end_watches:
            self.end_watches -= 1
            return response
        if since and self.expire_watches:
            self.expire_watches -= 1
            await send("ERROR", {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 410,
                                 "reason": "Expired", "message": f"too old resource version: {since}"})
            return response
        if since:
            sent = int(since)
        else:  # no resourceVersion: the current objects first, as ADDED
            sent = self.version
            for job in list(self.jobs.values()):
                if self._selected(request, job):
                    await send("ADDED", job)
        deadline = asyncio.get_running_loop().time() + float(request.query.get("timeoutSeconds", "300"))
        while not self.closed and asyncio.get_running_loop().time() < deadline:
            if request.transport is None or request.transport.is_closing():
                break
            for version, kind, job in [e for e in self.events if e[0] > sent]:
                sent = version
                if self._selected(request, job):
                    await send(kind, job)
            await asyncio.sleep(0.01)
        return response

    async def read_job(self, request: web.Request) -> web.Response:
        self._seen(request)
        job = self.jobs.get(request.match_info["name"])
        return web.json_response(job) if job else self._missing("jobs.batch", request.match_info["name"])

    async def delete_job(self, request: web.Request) -> web.Response:
        self._seen(request)
        job = self.jobs.pop(request.match_info["name"], None)
        if job is None:
            return self._missing("jobs.batch", request.match_info["name"])
        self._changed("DELETED", job)
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
        self.set_status(name, {"conditions": [{"type": kind, "status": "True", "reason": reason}]})

    def set_status(self, name: str, status: dict[str, Any]) -> None:
        self.jobs[name]["status"] = status
        self._changed("MODIFIED", self.jobs[name])


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
        fake.closed = True
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
    fake.set_status("kickoff-run-7", {"active": 1})
    fake.finish("kickoff-run-7", kind, reason)
    [exit_] = await exits.wait()
    assert (exit_.exit_code, exit_.timed_out, exit_.cancelled) == (code, timed_out, False)
    await _until(lambda: "kickoff-run-7" not in fake.jobs)  # deleted right after the exit is reported
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
    assert await k8s.sweep({11}) == []  # unheld at two sweeps in a row, not one
    assert await k8s.sweep({11}) == [f"k8s:{NS}/kickoff-run-12"]
    assert set(fake.jobs) == {"kickoff-run-11"}
    assert any("labelSelector=app.kubernetes.io" in p for m, p in fake.requests if m == "GET")
    fake.finish("kickoff-run-11", "Complete")
    assert [e.run_id for e in await exits.wait()] == [11]


async def test_a_job_is_followed_by_watch_not_by_polling(
    k8s: KubernetesRunner, cluster: tuple[FakeCluster, str]
) -> None:
    fake, _ = cluster
    exits = Exits()
    k8s.bind(exits)
    await k8s.start(make_spec(20), SECRETS, deadline=600)
    await asyncio.sleep(0.2)  # ten polling intervals: a poller would have read the Job ten times
    fake.set_status("kickoff-run-20", {"active": 1})
    await asyncio.sleep(0.1)
    fake.finish("kickoff-run-20", "Complete")
    [exit_] = await exits.wait()
    assert exit_.exit_code == 0
    [watch] = fake.watches()
    assert "metadata.name%3Dkickoff-run-20" in watch or "metadata.name=kickoff-run-20" in watch
    assert "resourceVersion=" in watch
    assert fake.status_reads() == []  # no polling GET of the Job


async def test_a_watch_that_ends_early_is_resumed(k8s: KubernetesRunner, cluster: tuple[FakeCluster, str]) -> None:
    fake, _ = cluster
    fake.end_watches = 3
    exits = Exits()
    k8s.bind(exits)
    await k8s.start(make_spec(21), SECRETS, deadline=600)
    await _until(lambda: len(fake.watches()) >= 4)
    fake.finish("kickoff-run-21", "Failed", "BackoffLimitExceeded")
    [exit_] = await exits.wait()
    assert exit_.exit_code == 1
    lists = [p for m, p in fake.requests if m == "GET" and "fieldSelector" in p and "watch=true" not in p.lower()]
    assert len(lists) >= 4  # each ended stream re-listed for a fresh resourceVersion
    assert fake.status_reads() == []


async def test_a_410_gone_relists_and_watches_again(k8s: KubernetesRunner, cluster: tuple[FakeCluster, str]) -> None:
    fake, _ = cluster
    fake.expire_watches = 1
    exits = Exits()
    k8s.bind(exits)
    await k8s.start(make_spec(22), SECRETS, deadline=600)
    await _until(lambda: len(fake.watches()) >= 2)
    fake.finish("kickoff-run-22", "Complete")
    [exit_] = await exits.wait()
    assert exit_.exit_code == 0
    gets = [p for m, p in fake.requests if m == "GET"]
    first_watch = next(i for i, p in enumerate(gets) if "watch=true" in p.lower())
    assert any("watch=true" not in p.lower() for p in gets[first_watch + 1:])  # re-listed after the 410
    assert fake.status_reads() == []


async def test_a_failing_watch_falls_back_to_polling(k8s: KubernetesRunner, cluster: tuple[FakeCluster, str]) -> None:
    fake, _ = cluster
    fake.watch_error = 500
    exits = Exits()
    k8s.bind(exits)
    await k8s.start(make_spec(23), SECRETS, deadline=600)
    await _until(lambda: len(fake.status_reads()) >= 2)
    fake.finish("kickoff-run-23", "Complete")
    [exit_] = await exits.wait()
    assert exit_.exit_code == 0
    assert len(fake.watches()) == 3  # WATCH_ERRORS_BEFORE_POLLING, then no more watches


async def _until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    async def check_async() -> bool:
        return check()

    await eventually(check_async, timeout)


def test_statuses_and_refs() -> None:
    assert status_of({}).state == "pending"
    assert status_of({"active": 1}).state == "running"
    assert status_of({"succeeded": 1}).exit_code == 0
    assert status_of({"conditions": [{"type": "Failed", "status": "False"}], "active": 1}).state == "running"
    assert parse_ref("k8s:ns/job") == ("ns", "job")
    assert parse_ref("fly:a/b") is None
    assert job_name(3) == "kickoff-run-3"
