"""Gateway fixtures: real githubkit over a respx-mocked transport, an RSA key per session, and a fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import respx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bot.github import GitHubGateway
from tests.github.harness import APP_ID, BASE_URL, AppKey, FakeTime


@pytest.fixture(scope="session")
def app_key() -> AppKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return AppKey(private_pem, public_pem)


@pytest.fixture
def clock() -> FakeTime:
    return FakeTime()


@pytest.fixture
def mock_github() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        yield router


@pytest.fixture
async def gateway(app_key: AppKey, clock: FakeTime) -> AsyncIterator[GitHubGateway]:
    async with GitHubGateway(
        APP_ID,
        app_key.private_pem,
        base_url=BASE_URL,
        sleep=clock.sleep,
        now=clock.now,
        monotonic=clock.monotonic,
    ) as gw:
        yield gw
