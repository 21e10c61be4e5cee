"""Process settings: names from DESIGN.md, private key formats, one clear line for a bad setting."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bot.settings import Settings, SettingsError, load_settings, normalize_private_key


@pytest.fixture(scope="module")
def pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("APP_ID", "PRIVATE_KEY", "PRIVATE_KEY_PATH", "WEBHOOK_SECRET", "GITHUB_API_URL", "DATABASE_URL",
                 "PUBLIC_URL", "KICKOFF_RUNNER", "KICKOFF_MAX_PARALLEL_RUNS", "DASHBOARD_TOKEN", "LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_defaults_match_the_design() -> None:
    settings = load_settings()
    assert settings.database_url == "sqlite:///./kickoff.db"
    assert settings.github_api_url == "https://api.github.com"
    assert settings.runner == "local"
    assert settings.app_id is None
    assert settings.webhook_secret is None


@pytest.mark.parametrize("form", ["pem", "escaped", "base64", "quoted-escaped"])
def test_private_key_forms(pem: str, form: str, monkeypatch: pytest.MonkeyPatch) -> None:
    value = {
        "pem": pem,
        "escaped": pem.replace("\n", "\\n"),
        "base64": base64.b64encode(pem.encode()).decode(),
        "quoted-escaped": '"' + pem.replace("\n", "\\n") + '"',
    }[form]
    monkeypatch.setenv("PRIVATE_KEY", value)
    monkeypatch.setenv("APP_ID", "123")
    settings = load_settings()
    assert settings.require_app_credentials() == (123, pem.strip() + "\n")
    serialization.load_pem_private_key(settings.require_app_credentials()[1].encode(), password=None)


def test_private_key_path(pem: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "key.pem").write_text(pem)
    monkeypatch.setenv("PRIVATE_KEY_PATH", str(tmp_path / "key.pem"))
    assert load_settings().private_key_pem() == pem.strip() + "\n"
    monkeypatch.setenv("PRIVATE_KEY_PATH", str(tmp_path / "missing.pem"))
    with pytest.raises(SettingsError, match="PRIVATE_KEY_PATH: cannot read"):
        load_settings().private_key_pem()


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("PRIVATE_KEY", "not a key", "PRIVATE_KEY"),
        ("PRIVATE_KEY", base64.b64encode(b"hello").decode(), "PRIVATE_KEY"),
        ("APP_ID", "twelve", "APP_ID"),
        ("GITHUB_API_URL", "api.github.com", "GITHUB_API_URL"),
        ("KICKOFF_RUNNER", "docker", "KICKOFF_RUNNER"),
        ("KICKOFF_MAX_PARALLEL_RUNS", "0", "KICKOFF_MAX_PARALLEL_RUNS"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL"),
    ],
)
def test_malformed_setting_names_itself_in_one_line(
    name: str, value: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    text = str(caught.value)
    assert text.startswith(message)
    assert "\n" not in text
    assert value not in text or name != "PRIVATE_KEY"  # never echo a would-be key


def test_webhook_secret_is_mandatory() -> None:
    with pytest.raises(SettingsError, match=r"WEBHOOK_SECRET is not set.*kickoff setup"):
        load_settings().require_webhook_secret()


def test_dotenv_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("WEBHOOK_SECRET=from-dotenv\nAPP_ID=7\n")
    settings = load_settings()
    assert settings.require_webhook_secret() == "from-dotenv"
    assert settings.app_id == 7


def test_secrets_do_not_show_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOK_SECRET", "very-secret-value")
    assert "very-secret-value" not in repr(Settings())


def test_normalize_rejects_non_pem() -> None:
    with pytest.raises(ValueError, match="neither PEM"):
        normalize_private_key("%%%")


def test_each_part_reads_its_section_from_the_same_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One object built once: the environment, `.env` and overrides in code reach every section, by the flat
    names users set, whichever section holds them."""
    monkeypatch.setenv("KICKOFF_QUEUE_SWEEP_SECONDS", "7")
    (tmp_path / ".env").write_text("KICKOFF_SCHEDULER_TICK_SECONDS=0.25\nKICKOFF_K8S_IMAGE=runner:2\n")
    settings = load_settings(KICKOFF_LEASE_SECONDS=9, KICKOFF_BWRAP="/opt/bwrap")
    assert settings.queue.sweep_seconds == 7
    assert settings.scheduler.tick_seconds == 0.25
    assert settings.remote.k8s_image == "runner:2"
    assert settings.dispatch.lease_seconds == 9
    assert settings.local.bwrap == "/opt/bwrap"
    assert settings.ingress.body_budget == 64 * 1024 * 1024
    # Without the env file, no section reads it either; a copy keeps its sections.
    bare = Settings(_env_file=None)
    assert bare.scheduler.tick_seconds == 5.0
    assert bare.remote.k8s_image is None
    assert bare.model_copy(update={"host": "::1"}).queue.sweep_seconds == 7


def test_a_malformed_section_setting_names_itself_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KICKOFF_QUEUE_CHECKS_TIMEOUT_MINUTES", "-1")
    with pytest.raises(SettingsError, match=r"^KICKOFF_QUEUE_CHECKS_TIMEOUT_MINUTES: Input should be greater than 0$"):
        load_settings()


def test_a_section_is_not_one_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Variables named like the sections (common words) are nobody's settings and break nothing."""
    for name in ("QUEUE", "LOCAL", "REMOTE", "SCHEDULER", "DISPATCH", "INGRESS"):
        monkeypatch.setenv(name, "not json")
    assert load_settings().queue.sweep_seconds == 300.0
