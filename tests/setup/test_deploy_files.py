"""The Dockerfile, .dockerignore and fly.toml, parsed and checked (no Docker engine or Fly account needed), and the
image's install steps against README's install command."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

from bot.cli import app as cli

ROOT = Path(__file__).resolve().parents[2]


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", dockerfile)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        out.append((word.upper(), " ".join(rest.split())))
    return out


def stages(dockerfile: str) -> list[list[tuple[str, str]]]:
    out: list[list[tuple[str, str]]] = []
    for word, rest in instructions(dockerfile):
        if word == "FROM":
            out.append([])
        if out:
            out[-1].append((word, rest))
    return out


def exec_form(arguments: str) -> list[str]:
    parsed = json.loads(arguments)
    assert isinstance(parsed, list), arguments
    assert all(isinstance(a, str) for a in parsed), arguments
    return parsed


def pip_commands(lines: list[str]) -> list[str]:
    """Every `pip install`/`pip wheel`/`venv` command in shell lines, one per `&&` part, whitespace normalized."""
    out = []
    for line in "\n".join(lines).replace("\\\n", " ").splitlines():
        if "pip" not in line and "venv" not in line:
            continue
        for part in line.split("&&"):
            words = shlex.split(part, comments=True)
            if any(w.endswith("pip") for w in words) or "venv" in words:
                out.append(" ".join(words))
    return out


def readme_install_lines() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Deploy\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.DOTALL)
    assert blocks, "README's Deploy section has no install command"
    return [line for block in blocks for line in block.splitlines()]


def test_the_dockerfile_is_multi_stage_non_root_with_a_healthcheck() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    builder, final = stages(dockerfile)
    assert builder[0] == ("FROM", "python:3.11-slim AS builder")
    assert final[0] == ("FROM", "python:3.11-slim")
    assert ("COPY", "--from=builder /opt/kickoff /opt/kickoff") in final
    final_runs = " ".join(rest for word, rest in final if word == "RUN")
    assert "apt-get install" in final_runs
    assert " git " in f"{final_runs} "
    assert "pip" not in final_runs, "the final stage installs nothing from PyPI; the builder's venv is copied"

    users = [rest for word, rest in final if word == "USER"]
    assert users
    assert users[-1] not in ("root", "0", "0:0")
    assert "useradd" in final_runs
    assert users[-1] in final_runs

    healthcheck = [rest for word, rest in final if word == "HEALTHCHECK"]
    assert len(healthcheck) == 1
    check = exec_form(healthcheck[0].split(" CMD ", 1)[1])
    assert check[0] == "python"
    assert "/healthz" in check[-1]
    assert "curl" not in dockerfile
    assert "wget" not in dockerfile
    compile(check[-1], "HEALTHCHECK", "exec")  # the one-liner is valid Python

    cmd = [rest for word, rest in final if word == "CMD"]
    assert exec_form(cmd[-1]) == ["kickoff", "serve", "--host", "0.0.0.0"]  # noqa: S104
    assert ("EXPOSE", "3000") in final


def test_the_image_installs_exactly_what_the_readme_says() -> None:
    builder = stages((ROOT / "Dockerfile").read_text())[0]
    docker = pip_commands([rest for word, rest in builder if word == "RUN"])
    readme = pip_commands(readme_install_lines())
    assert docker == readme
    assert docker == [
        "python3 -m venv /opt/kickoff",
        "/opt/kickoff/bin/pip wheel --no-deps --wheel-dir dist .",
        "/opt/kickoff/bin/pip install dist/kickoff_bot-*.whl",
    ]
    # The service without the development extras; scripts/bootstrap installs the same project with them.
    bootstrap = pip_commands((ROOT / "scripts" / "bootstrap").read_text().splitlines())
    assert any("install" in c and ".[dev]" in c for c in bootstrap), bootstrap
    assert not any("[" in c for c in docker)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert set(pyproject["project"]["optional-dependencies"]) == {"dev"}
    assert pyproject["project"]["name"].replace("-", "_") == "kickoff_bot"


def test_the_build_context_keeps_secrets_and_tooling_out() -> None:
    ignored = {
        line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".env", ".env.*", "*.pem", ".venv", ".git", "*.db", "tests"} <= ignored
    copied = [rest for word, rest in instructions((ROOT / "Dockerfile").read_text()) if word == "COPY"]
    sources = {src for rest in copied if not rest.startswith("--from") for src in rest.split()[:-1]}
    assert sources == {"pyproject.toml", "README.md", "bot"}
    assert not any(pattern.rstrip("/") in sources for pattern in ignored)


def fly() -> dict[str, Any]:
    return tomllib.loads((ROOT / "fly.toml").read_text())


def test_fly_runs_web_and_worker_on_one_database() -> None:
    config = fly()
    assert config["processes"] == {"web": "kickoff serve --no-worker --host 0.0.0.0", "worker": "kickoff worker"}
    assert config["deploy"]["release_command"] == "kickoff db upgrade"
    assert config["build"]["dockerfile"] == "Dockerfile"
    assert "DATABASE_URL" not in config.get("env", {}), "DATABASE_URL is a secret (fly postgres attach)"
    assert not {"APP_ID", "PRIVATE_KEY", "WEBHOOK_SECRET"} & set(config.get("env", {}))

    service = config["http_service"]
    assert service["processes"] == ["web"]
    assert service["internal_port"] == int(config["env"]["PORT"]) == 3000
    assert [c["path"] for c in service["checks"]] == ["/healthz"]
    assert service["checks"][0]["method"] == "GET"


def test_fly_publishes_no_metrics_and_keeps_the_tokens_secret() -> None:
    """Fly's own scraper (a `[metrics]` section) cannot send METRICS_TOKEN: the shipped file publishes nothing."""
    config = fly()
    assert "metrics" not in config
    for service in [config["http_service"], *config.get("services", [])]:
        assert "metrics" not in service
    assert not {"DASHBOARD_TOKEN", "METRICS_TOKEN", "HOST"} & set(config.get("env", {}))
    # The web machines bind every interface, so the app is told so and serves nothing tokenless.
    assert "--host 0.0.0.0" in config["processes"]["web"]


def test_fly_never_auto_stops_the_worker_or_the_webhook_receiver() -> None:
    config = fly()
    services = [config["http_service"], *config.get("services", [])]
    for service in services:
        if "worker" in service.get("processes", ["app"]):
            assert service.get("auto_stop_machines") in ("off", False), service
    assert config["http_service"]["auto_stop_machines"] in ("off", False)
    assert config["http_service"]["min_machines_running"] >= 1
    assert {p for vm in config["vm"] for p in vm["processes"]} == {"web", "worker"}


def test_the_commands_the_deployment_runs_exist() -> None:
    """Every command in the Dockerfile, fly.toml and docs/deploy.md's process table names a real CLI command."""
    names = {c.name or (c.callback.__name__ if c.callback else "") for c in cli.registered_commands}
    names |= {g.name for g in cli.registered_groups if g.name}
    commands = [*fly()["processes"].values(), fly()["deploy"]["release_command"], "kickoff serve --host 0.0.0.0"]
    for command in commands:
        words = command.split()
        assert words[0] == "kickoff"
        assert words[1] in names, command
    assert {"serve", "worker", "setup", "db"} <= names
