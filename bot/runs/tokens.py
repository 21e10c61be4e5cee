"""Run tokens kept so they can be revoked: sealed in the `run_tokens` table, revoked by whoever ends the run.

A run's token (one repository, contents:write) is minted when its runner starts. It used to live only in the memory
of the process that minted it, so a kill left it valid for up to an hour. Now it is recorded, sealed, before the
runner starts, and revoked (`DELETE /installation/token`, authenticated with the token itself) by whoever ends or
recovers the run: the process watching the runner when it exits, the report handler when a `finished` report ends
the run, start-up recovery, and every sweep pass for any ended run whose token is still unrevoked.

Sealing: AES-256-GCM, with a key derived by HKDF-SHA256 from the App's private key (with no App key, as in tests
without GitHub, from the webhook secret); a fresh 96-bit nonce per token, the run id as associated data, so a sealed
token copied onto another run's row does not open. The database never holds the token in clear; a copy of it
without the App key holds nothing usable.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Connection, delete, insert, select, update

from bot.github import GitHubError, InstallationToken
from bot.services import Services
from bot.store.models import Run, RunState, RunToken

log = logging.getLogger(__name__)

HKDF_INFO: Final = b"kickoff run tokens v1"
TOKEN_LIFETIME: Final = timedelta(hours=1)  # GitHub's, for every installation token
NONCE_BYTES: Final = 12


class TokenSealer:
    """Seals and opens run tokens with a key derived from `secret` (the App's private key, PEM)."""

    def __init__(self, secret: bytes) -> None:
        if not secret:
            raise ValueError("sealing run tokens needs a secret")
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO).derive(secret)
        self._aead = AESGCM(key)

    @classmethod
    def for_services(cls, services: Services) -> TokenSealer:
        settings = services.settings
        pem = settings.private_key_pem()
        if pem is not None:
            return cls(pem.encode())
        if settings.webhook_secret is not None:
            return cls(settings.webhook_secret.get_secret_value().encode())
        log.warning("no App key and no webhook secret: run tokens are sealed under a key of this process only")
        return cls(os.urandom(32))

    def seal(self, run_id: int, token: str) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, token.encode(), _aad(run_id))

    def open(self, run_id: int, sealed: bytes) -> str | None:
        """The token, or None when `sealed` does not open under this key for this run."""
        try:
            return self._aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], _aad(run_id)).decode()
        except (InvalidTag, ValueError, UnicodeDecodeError):
            return None


def _aad(run_id: int) -> bytes:
    return f"run:{run_id}".encode()


class RunTokens:
    """The `run_tokens` table: record a run's token, revoke it once, find the ended runs' tokens still live."""

    def __init__(self, services: Services, sealer: TokenSealer | None = None) -> None:
        self.services = services
        self.sealer = sealer or TokenSealer.for_services(services)

    async def intend(self, run_id: int) -> int:
        """Write the row of a token about to be minted for `run_id` (sealed empty); its id, for `record`.

        Written first, so a kill between GitHub's answer and `record` leaves a trace: such a token cannot be revoked
        (only the token itself can do that), but whoever ends the run knows it was lost and until when it lives."""
        now = self.services.clock()
        statement = insert(RunToken).values(run_id=run_id, sealed=None, expires_at=now + TOKEN_LIFETIME,
                                            created_at=now, revoked_at=None)

        def write(conn: Connection) -> int:
            key = conn.execute(statement).inserted_primary_key
            assert key is not None  # an INSERT of one row
            return int(key[0])

        # Each write here is one short transaction through `Store.write` (on SQLite: one synchronous call, the
        # write lock never held across an await): 32 starts at once held it for hundreds of milliseconds through
        # the async session, and webhook acks waited behind it (issue 19).
        return await self.services.store.write(write)

    async def record(self, token_id: int, run_id: int, token: InstallationToken) -> bool:
        """Keep `token` (sealed) in its row, beside the tokens of earlier starts of the run. False when the run ended
        meanwhile and its tokens were given up (the caller revokes this one itself)."""
        statement = (update(RunToken).where(RunToken.id == token_id, RunToken.revoked_at.is_(None))
                     .values(sealed=self.sealer.seal(run_id, token.token), expires_at=token.expires_at))

        def write(conn: Connection) -> bool:
            return bool(conn.execute(statement).rowcount == 1)

        return await self.services.store.write(write)

    async def forget(self, token_id: int) -> None:
        """Drop the row of a mint that failed: no token exists."""
        statement = delete(RunToken).where(RunToken.id == token_id, RunToken.sealed.is_(None))
        await self.services.store.write(lambda conn: conn.execute(statement))

    async def revoke(self, run_id: int) -> bool:
        """Revoke every token of the run that is recorded and not revoked yet; whether they are all dead now (or
        there is none).

        Idempotent and safe to race: a token revoked twice is answered 401 the second time, which counts as dead.
        A network failure leaves it unrevoked, for the sweep to try again.
        """
        async with self.services.store.sessions() as session:
            rows = (await session.scalars(
                select(RunToken).where(RunToken.run_id == run_id, RunToken.revoked_at.is_(None))
                .order_by(RunToken.id))).all()
        dead = True
        for row in rows:
            dead = await self._revoke(row) and dead
        return dead

    async def revoke_one(self, token_id: int) -> bool:
        """Revoke one recorded token (a start that lost its run to another worker: that one's token stays)."""
        async with self.services.store.sessions() as session:
            row = await session.get(RunToken, token_id)
        if row is None or row.revoked_at is not None:
            return True
        return await self._revoke(row)

    async def revoke_ended(self, limit: int = 200) -> int:
        """One sweep pass: revoke the tokens of ended runs (or of deleted runs) still unrevoked; how many."""
        async with self.services.store.sessions() as session:
            rows: Sequence[RunToken] = (await session.scalars(
                select(RunToken)
                .outerjoin(Run, Run.id == RunToken.run_id)
                .where(RunToken.revoked_at.is_(None), (Run.id.is_(None)) | Run.state.in_(RunState.FINAL))
                .order_by(RunToken.id)
                .limit(limit)
            )).all()
        revoked = 0
        for row in rows:
            if await self._revoke(row):
                revoked += 1
        if revoked:
            log.info("revoked %d run token(s) of ended runs", revoked)
        return revoked

    async def unrevoked(self) -> list[int]:
        """The runs whose token is recorded and not revoked (for tests and `kickoff status`)."""
        async with self.services.store.sessions() as session:
            return list(await session.scalars(
                select(RunToken.run_id).where(RunToken.revoked_at.is_(None)).distinct().order_by(RunToken.run_id)))

    async def lost(self) -> list[tuple[int, datetime]]:
        """Tokens minted for runs whose worker was killed before recording them: (run id, when it expires)."""
        async with self.services.store.sessions() as session:
            rows = (await session.execute(
                select(RunToken.run_id, RunToken.expires_at)
                .where(RunToken.sealed.is_(None), RunToken.revoked_at.is_not(None))
                .order_by(RunToken.id))).all()
        return [(int(run_id), expires) for run_id, expires in rows]

    async def _revoke(self, row: RunToken) -> bool:
        now = self.services.clock()
        if row.sealed is None:
            # Its run is being ended: a start still under way finds its row given up when it records, and revokes
            # the token itself; a start that was killed after GitHub answered took the token with it.
            log.warning("run %s: a token minted for it may have been lost to a kill before it was recorded; it "
                        "cannot be revoked and expires by %s", row.run_id, row.expires_at.isoformat())
        elif row.expires_at > now:
            clear = self.sealer.open(row.run_id, row.sealed)
            if clear is None:
                log.warning("run %s: its recorded token does not open with this App key; it expires at %s",
                            row.run_id, row.expires_at.isoformat())
            elif self.services.github is None:
                return False
            else:
                try:
                    await self.services.github.revoke_token(InstallationToken(clear, row.expires_at))
                except GitHubError as exc:
                    log.info("run %s: could not revoke its token yet (%s); the sweep tries again", row.run_id, exc)
                    return False
        await self._mark(row.id, now)
        return True

    async def _mark(self, token_id: int, when: datetime) -> None:
        statement = update(RunToken).where(RunToken.id == token_id, RunToken.revoked_at.is_(None)).values(
            revoked_at=when)
        await self.services.store.write(lambda conn: conn.execute(statement))


__all__ = ["RunTokens", "TokenSealer"]
